// AVX512-VNNI integer generator (compute=int8): 2-, 3-, 4- and 8-bit weights, any group size,
// zero none/int/float, fp32/bf16/fp16 activations and output, optional bias and equalization
// scale. The launcher quantizes x per row and block to s8 (activation_quantizer.h; the
// equalization scale is folded into that pass); the kernel multiplies the weights' unsigned
// codes with them by vpdpbusd (u8 x s8 -> s32, four products per 32-bit lane):
//
//   per step, the packed bytes of a 16-column panel are zero-extended to dwords (vpmovzxwd:
//   dword j = bytes 2j, 2j+1 of the block) and two shifts and one vpternlogd turn them into
//   four codes of column j as bytes in k order (docs/layout.md gives the bit places;
//   int8_code_decoder.cpp derives each width). vpdpbusd adds their products with the broadcast
//   dword xq[k0..k0+3] into the block's int32 accumulator.
//
// Per activation block (the weight group, or 128 k for group=-1), exactly in int32:
//   acc[n] = sum_k q[n,k] * xq[k]
// then, in fp32, with the launcher's sx and sx * sum_k xq:
//   y[n] += scale[n,g] * (acc[n] * sx - zero'[n,g] * sx * sum_k xq)
// zero' = the zero point (zero=none: 2^(bits-1)). acc < 2^24 (255 * 127 * 256), so its
// conversion to fp32 is exact.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/x86/block_program.h"
#include "codegen/x86/x86_variant.h"
#include "codegen/x86/zmm_output.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"

namespace lowbit::x86 {

class Avx512VnniInt8Program : public BlockProgram {
 public:
  Avx512VnniInt8Program(const OpDesc& desc, const X86Variant& variant);

 private:
  struct Block;  // the shape and pointer registers of the block function being emitted

  void emit_block_function(int panels, int rows, const KRange& range);
  // Emits `steps` steps of every panel (k_unroll at a time in a loop), advancing x and w.
  void emit_steps(const Block& block, int64_t steps);
  // One step of every panel, decoded by Int8CodeDecoder (int8_code_decoder.h), each dword of
  // four codes (in k order) handed to consume.
  void emit_step(const Block& block, int step);
  void consume(const Block& block, int panel, int k_offset, const Xbyak::Zmm& codes);
  void emit_block_epilogue(const Block& block);
  void emit_constants();

  Xbyak::Label constants_;
  ZmmOutput output_;  // bias, conversion and stores
};

class Avx512VnniInt8Generator {
 public:
  static constexpr std::string_view family = "x86_avx512_vnni_int8";
  static constexpr int version = 2;  // bump when emitted code changes: old cache entries miss (2: prefetch)

  std::vector<X86Variant> candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
  Validity is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const;
  std::unique_ptr<Avx512VnniInt8Program> emit(const OpDesc& desc, const X86Variant& variant) const;
  X86Variant heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
};

// Register budget: an int32 accumulator and an fp32 running sum per (row, panel); the
// decoders and the epilogue use at most 8 of the 32 zmm registers (masks and temporaries), so
// 12 cells.
constexpr int int8_max_block_cells = 12;

}  // namespace lowbit::x86
