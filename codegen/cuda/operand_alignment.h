// The pointer alignment the CUDA kernels of a family assume, checked before a launch: a
// misaligned vector load or cp.async on the GPU is a sticky context error (every later call on
// that context fails), so run() refuses it with an InvalidArgument instead.
#pragma once

#include <cstddef>

#include "codegen/cuda/cuda_variant.h"
#include "lowbit/kernel.h"

namespace lowbit::cuda {

// Throws InvalidArgument naming the pointer, its required alignment and why, when args breaks
// a rule of variant.family for desc:
//   every family: weights.qweight, weights.scales and weights.zeros 16-byte aligned (16-byte
//     and cp.async reads; pack_native's sections are 64-byte aligned);
//   mma and wgmma: x 16-byte aligned when k % 8 == 0 (rows copied 16 bytes at a time; with
//     other k they copy elements); the gemv families check x themselves and fall back;
//   every family: y aligned to two output elements when n is even (pairs of columns are
//     stored together), to one otherwise.
//   eq_scale 16-byte aligned when desc.eqscale (read 16 bytes at a time when k % 4 == 0);
//   a split variant (split_k > 1): the workspace 256-byte aligned (partials read as float4).
// dequant_gemm has its own, stricter rules (dequant_gemm_kernel.cpp), spelled with
// require_aligned below.
void check_operand_alignment(const OpDesc& desc, const CudaVariant& variant, const RunArgs& args);

// Throws InvalidArgument "RunArgs.<name> is not <alignment>-byte aligned; <who> needs it (<why>)"
// when pointer is not null and not aligned.
void require_aligned(const void* pointer, std::size_t alignment, const char* name, const char* who, const char* why);

}  // namespace lowbit::cuda
