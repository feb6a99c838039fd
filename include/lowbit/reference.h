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

// ||out - ref||_2 / ||ref||_2 over m*n outputs of dtype `out`; +infinity when any output is
// NaN or infinite (so an unwritten, poisoned output never passes).
double relative_error(const void* out, DType out_dtype, const std::vector<double>& ref);

}  // namespace lowbit
