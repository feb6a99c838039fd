#include "lowbit/reference.h"

#include <cmath>
#include <limits>

#include "lowbit/half.h"

namespace lowbit {

std::vector<double> reference_matmul(const OpDesc& desc, int64_t m, const void* x,
                                     const QuantizedWeights& weights, const void* bias,
                                     const float* eq_scale) {
  const int64_t n_size = desc.n;
  const int64_t k_size = desc.k;
  // Activations after the equalization scale, in double, once.
  std::vector<double> activations(static_cast<std::size_t>(m * k_size));
  for (int64_t row = 0; row < m; ++row)
    for (int64_t k = 0; k < k_size; ++k) {
      double value = load_as_float(x, desc.act, row * k_size + k);
      if (desc.eqscale) value *= eq_scale[k];
      activations[row * k_size + k] = value;
    }
  std::vector<double> y(static_cast<std::size_t>(m * n_size));
  std::vector<double> column(static_cast<std::size_t>(k_size));
  for (int64_t n = 0; n < n_size; ++n) {
    for (int64_t group = 0; group < weights.group_count(); ++group) {
      const double zero = weights.zero_point(n, group);
      const double scale = weights.scale(n, group);
      for (int64_t k = group * weights.group_size(); k < (group + 1) * weights.group_size(); ++k)
        column[k] = (static_cast<double>(weights.q[n * k_size + k]) - zero) * scale;
    }
    const double bias_value = desc.bias ? load_as_float(bias, desc.act, n) : 0.0;
    for (int64_t row = 0; row < m; ++row) {
      const double* a = activations.data() + row * k_size;
      double sum = 0.0;
      for (int64_t k = 0; k < k_size; ++k) sum += a[k] * column[k];
      y[row * n_size + n] = sum + bias_value;
    }
  }
  return y;
}

double relative_error(const void* out, DType out_dtype, const std::vector<double>& ref) {
  double difference = 0.0;
  double norm = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    double value = load_as_float(out, out_dtype, static_cast<int64_t>(i));
    if (!std::isfinite(value)) return std::numeric_limits<double>::infinity();
    difference += (value - ref[i]) * (value - ref[i]);
    norm += ref[i] * ref[i];
  }
  if (norm == 0.0) return difference == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(difference / norm);
}

}  // namespace lowbit
