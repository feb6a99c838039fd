// The AVX2 twin of activation_quantizer.h's quantize_activation_rows, for the AVX2 int8
// kernels (CPUs without AVX-512): the same definition (lowbit/reference.h,
// quantize_activations_int8), the same layout (int8_activation_layout) and the same bits.
#pragma once

#include <cstdint>

#include "codegen/x86/activation_quantizer.h"
#include "lowbit/descriptor.h"

namespace lowbit::x86 {

// Quantizes rows [row_begin, row_end) of x (desc.act, [m][k]) into xq ([m][row_bytes], padding
// zeroed) and factors ([m][blocks]), eq_scale (fp32 [k], or null) folded in. Needs AVX2 and F16C
// (the caller's kernel does).
void quantize_activation_rows_avx2(const OpDesc& desc, const void* x, const float* eq_scale, int64_t row_begin,
                                   int64_t row_end, int8_t* xq, Int8BlockFactors* factors);

}  // namespace lowbit::x86
