// Accepted normalised error ||out - ref||_2 / ||ref||_2 of a kernel against the reference,
// per output dtype. Every test and every tuning candidate uses these; the reasoning:
//
// compute=float kernels multiply exactly (bf16 x bf16 and small integers are exact in fp32)
// and sum in fp32. With the +128 offset of the int4 kernels, a group's partial sums are
// about 17x larger than its contribution (128+8 over a typical |q-z| of 8), so fp32 rounding
// (2^-24 per add, random-walk growth over a group of at most a few hundred adds) costs up to
// ~1e-5 relative; 1e-4 leaves a 10x margin for fp32 output. The other widths keep that ratio
// smaller (codegen/x86/code_conversion.h: offset 8 for 2/3-bit, 0 for 8-bit). Measured worst
// case: fp32 activations, group=-1, k=14336: 6e-5 (int4), 1.5e-5 (2-bit), 1e-5 (3-bit).
// Rounding the output to bf16 adds at most 2^-9 relative per element (8 significant bits,
// round to nearest); fp16 at most 2^-12. The bounds below are those plus the fp32 margin.
#pragma once

#include "lowbit/descriptor.h"

namespace lowbit {

inline double tolerance(const OpDesc& desc) {
  switch (desc.out) {
    case DType::fp32: return 1e-4;
    case DType::bf16: return 2.0 / 512 + 1e-4;   // 2^-9 bound, doubled for the output norm
    case DType::fp16: return 2.0 / 4096 + 1e-4;  // 2^-12 bound, doubled
  }
  return 0;
}

// Kernels that round each dequantized weight s*(q-z) (times eq[k] with eqscale=1) to the
// activation type before a 16-bit GEMM (CUDA dequant_gemm): one more rounding per weight, at
// most 2^-8 relative in bf16 (8 significant bits) and 2^-11 in fp16, independent from weight to
// weight, so the normalised output error grows by about that bound's rms (a third of it) and
// at most by the bound itself, which is added to the output dtype's tolerance.
inline double dequantized_weights_tolerance(const OpDesc& desc) {
  const double weight_rounding = desc.act == DType::fp16 ? 2.0 / 4096 : 2.0 / 512;
  return tolerance(desc) + weight_rounding;
}

}  // namespace lowbit
