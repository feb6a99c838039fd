// The per-call pass of compute=int8 kernels: each row of x (times the equalization scale, in
// the same pass) quantized to symmetric s8 in blocks of int8_block_size(desc) k, as
// lowbit/reference.h defines it (quantize_activations_int8 is the scalar twin), with what the
// kernels' per-block epilogue reads.
#pragma once

#include <cstdint>

#include "lowbit/descriptor.h"

namespace lowbit::x86 {

// Per (row, block) the epilogue multiplies the block's integer dot products by sx and removes
// the zero point with sx * sum_k xq: both precomputed here, side by side.
struct Int8BlockFactors {
  float scale;          // sx
  float scaled_sum;     // sx * sum_k xq over the block (the sum is exact in int32 and fp32)
};
static_assert(sizeof(Int8BlockFactors) == 8, "the kernel reads the pair at [factors + 8 * block]");

struct Int8ActivationLayout {
  int64_t row_bytes;  // stride of a quantized row: k rounded up, with zeroed padding (below)
  int64_t blocks;     // blocks per row
};

// Rows of xq are padded with zeros past k: a kernel reads whole native steps (k rounded up to
// k_per_block) and, for 8-bit weights, a 4-byte broadcast at every even k, so a row holds at
// least steps * k_per_block + 4 bytes; rounded to 64 to start every row on a cache line.
Int8ActivationLayout int8_activation_layout(const OpDesc& desc);

// Quantizes rows [row_begin, row_end) of x (desc.act, [m][k]) into xq ([m][row_bytes], padding
// zeroed) and factors ([m][blocks]). eq_scale: fp32 [k], or null. Needs AVX-512 F/BW (the
// caller's kernel does); deterministic: the same bits as quantize_activations_int8.
void quantize_activation_rows(const OpDesc& desc, const void* x, const float* eq_scale, int64_t row_begin,
                              int64_t row_end, int8_t* xq, Int8BlockFactors* factors);

// One block of one row, as each ISA's quantizer writes it: values [begin, begin + count) of the
// row starting at element row_offset of x, into row codes xq (indexed by k) and its factors.
using QuantizeBlock = void (*)(const void* x, const float* eq_scale, int64_t begin, int64_t count, int64_t row_offset,
                               int8_t* xq, Int8BlockFactors* factors);
// The row loop every quantizer shares: each block of rows [row_begin, row_end) through
// quantize_block, then each row's padding past k zeroed (int8_activation_layout).
void quantize_rows_by_block(const OpDesc& desc, const void* x, const float* eq_scale, int64_t row_begin,
                            int64_t row_end, int8_t* xq, Int8BlockFactors* factors, QuantizeBlock quantize_block);

}  // namespace lowbit::x86
