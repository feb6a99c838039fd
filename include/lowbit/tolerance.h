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
//
// compute=int8 kernels (x quantized to s8 per row and block, reference.h) are lossy by design:
// against the float reference (tolerance(desc) of an int8 descriptor, which the tuner's check
// and the tests use) the s8 rounding of x errs by at most sx/2 = max|x|/254 per element. For x
// uniform in [-1, 1) (the test problems) that is an error of rms (1/127)/sqrt(12) = 2.3e-3 per
// element against an rms of 0.58, 3.9e-3 relative, and the outputs, sums of many such
// products with independent errors, inherit about that ratio. Measured over the 7708 cases of
// tests/x86/test_x86_int8.cpp (every width, group, zero point, dtype, eqscale): median 2.1e-3,
// maximum 1.6e-2, reached on the smallest problems (n=21, one row: with a few outputs the ratio
// of norms scatters widely); on the Llama shapes (docs/benchmarks.md) about 4e-3. The bound,
// 3e-2 plus the output rounding, is about twice that maximum; it still fails any kernel that
// is wrong (errors of order 1). Real activations with outliers lose more (max|x| sets the
// step), which is why int8 is only used when asked for.
//
// Against its own twin (reference_int8: the same quantized x, exact integer sums) an int8
// kernel differs only by its fp32 epilogue: per block, acc * scale, * sx, and the zero term,
// each rounded once (2^-24), summed over at most k/32 blocks: measured at most 2.3e-7 with fp32
// output over the same cases; 2e-6 for fp32 output, plus the output rounding for bf16/fp16
// (int8_kernel_tolerance).
#pragma once

#include "lowbit/descriptor.h"

namespace lowbit {

// Bound of the output dtype's rounding on the normalised error (see above).
inline double output_rounding_tolerance(DType out) {
  switch (out) {
    case DType::fp32: return 0;
    case DType::bf16: return 2.0 / 512;   // 2^-9 bound, doubled for the output norm
    case DType::fp16: return 2.0 / 4096;  // 2^-12 bound, doubled
  }
  return 0;
}

// An int8 kernel against reference_int8.
inline double int8_kernel_tolerance(const OpDesc& desc) { return 2e-6 + output_rounding_tolerance(desc.out); }

inline double tolerance(const OpDesc& desc) {
  if (desc.compute == Compute::int8) return 3e-2 + output_rounding_tolerance(desc.out);
  switch (desc.out) {
    case DType::fp32: return 1e-4;
    case DType::bf16: return 2.0 / 512 + 1e-4;   // 2^-9 bound, doubled for the output norm
    case DType::fp16: return 2.0 / 4096 + 1e-4;  // 2^-12 bound, doubled
  }
  return 0;
}

}  // namespace lowbit
