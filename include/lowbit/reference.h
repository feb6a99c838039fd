// The oracle: y = (x * eq_scale) . dequant(W)^T + bias, every product and sum in double.
// Plain loops on purpose: every test and every tuning candidate is checked against it.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/descriptor.h"
#include "lowbit/quantize.h"

namespace lowbit {

// x: [m][k] in desc.act; bias: [n] in desc.act (when desc.bias); eq_scale: fp32 [k] (when
// desc.eqscale). Returns y [m][n] in double, before rounding to desc.out.
std::vector<double> reference_matmul(const OpDesc& desc, int64_t m, const void* x,
                                     const QuantizedWeights& weights, const void* bias,
                                     const float* eq_scale);

// reference_matmul's first step, shared with its GPU twin (tuner/device_reference.h): x [m][k]
// in desc.act, times eq_scale[k] when desc.eqscale, in double.
std::vector<double> reference_activations(const OpDesc& desc, int64_t m, const void* x, const float* eq_scale);

// compute=int8 (docs/descriptor.md): each row of x (times eq_scale) is quantized to symmetric
// s8 in blocks of int8_block_size(desc) consecutive k: the scale group when group > 0, else
// 128 (group=-1: the last block holds K mod 128 when that is not 0). Per block, in fp32:
//   sx = max |x| / 127 (1 when the block is all zero),  xq = round_to_nearest_even(x / sx).
// 128 for group=-1 keeps every block's integer sums below 2^24 (exact in the kernels' fp32
// epilogue) and the error of one scale per 128 x the same as with group=128.
int64_t int8_block_size(const OpDesc& desc);
int64_t int8_block_count(const OpDesc& desc);  // blocks per row: ceil(k / int8_block_size)

struct Int8Activations {
  std::vector<int8_t> q;     // [m][k]
  std::vector<float> scale;  // [m][int8_block_count] sx
};

// The plain, scalar quantizer of the definition above: the twin of the kernels' vectorised one.
Int8Activations quantize_activations_int8(const OpDesc& desc, int64_t m, const void* x, const float* eq_scale);

// The reference of compute=int8: x quantized as above, integer dot products with the codes
// accumulated exactly per block, then, in double,
//   y[r,n] = sum_blocks scale[n,g] * sx[r,b] * (sum_k q[n,k]*xq[r,k] - zero'[n,g] * sum_k xq[r,k]) + bias
// with zero' the zero point (zero=none: 2^(bits-1)). A kernel differs from it only by the fp32
// rounding of its epilogue (tolerance.h: int8_kernel_tolerance).
std::vector<double> reference_int8(const OpDesc& desc, int64_t m, const void* x, const QuantizedWeights& weights,
                                   const void* bias, const float* eq_scale);

// ||out - ref||_2 / ||ref||_2 over m*n outputs of dtype `out`; +infinity when any output is
// NaN or infinite (so an unwritten, poisoned output never passes).
double relative_error(const void* out, DType out_dtype, const std::vector<double>& ref);

}  // namespace lowbit
