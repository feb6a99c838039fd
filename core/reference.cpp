#include "lowbit/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "lowbit/half.h"

namespace lowbit {

namespace {

constexpr int64_t block_columns = 8;

// sums_out[row][j] for every row and the block's block_columns columns: `block` holds their
// dequantized weights interleaved [k][block_columns] (a last block's unused columns zero). Each
// sum is serial in k order (the vector lanes are the columns, never k), so every clone gives the
// same bits; the clones only let the lanes be as wide as the CPU has (the library is built for
// the baseline x86-64).
__attribute__((target_clones("avx512f", "avx2", "default"))) void sum_block_rows(const double* activations, int64_t m,
                                                                                 int64_t k_size, const double* block,
                                                                                 double* sums_out) {
  for (int64_t row = 0; row < m; ++row) {
    const double* a = activations + row * k_size;
    double sums[block_columns] = {};
    for (int64_t k = 0; k < k_size; ++k)
      for (int64_t j = 0; j < block_columns; ++j) sums[j] += a[k] * block[k * block_columns + j];
    for (int64_t j = 0; j < block_columns; ++j) sums_out[row * block_columns + j] = sums[j];
  }
}

}  // namespace

std::vector<double> reference_activations(const OpDesc& desc, int64_t m, const void* x, const float* eq_scale) {
  const int64_t k_size = desc.k;
  std::vector<double> activations(static_cast<std::size_t>(m * k_size));
  for (int64_t row = 0; row < m; ++row)
    for (int64_t k = 0; k < k_size; ++k) {
      double value = load_as_float(x, desc.act, row * k_size + k);
      if (desc.eqscale) value *= eq_scale[k];
      activations[row * k_size + k] = value;
    }
  return activations;
}

std::vector<double> reference_matmul(const OpDesc& desc, int64_t m, const void* x,
                                     const QuantizedWeights& weights, const void* bias,
                                     const float* eq_scale) {
  const int64_t n_size = desc.n;
  const int64_t k_size = desc.k;
  const std::vector<double> activations = reference_activations(desc, m, x, eq_scale);
  std::vector<double> y(static_cast<std::size_t>(m * n_size));
  // Columns [n_begin, n_end), block_columns at a time: their dequantized weights interleaved
  // [k][block_columns], then each row's sums side by side (sum_block_rows). Each output is still
  // one serial sum in k order, whichever thread or block computes it, so the result depends on
  // neither the thread count nor the blocking; but a row's activations are read once per block of
  // columns (not once per column: at M in the hundreds they spill the cache), and independent sums
  // replace one dependent chain of adds per output (2.4x faster at M = 1023).
  auto compute_columns = [&](int64_t n_begin, int64_t n_end) {
    std::vector<double> block(static_cast<std::size_t>(k_size * block_columns));
    std::vector<double> sums(static_cast<std::size_t>(m * block_columns));
    for (int64_t n0 = n_begin; n0 < n_end; n0 += block_columns) {
      const int64_t count = std::min(block_columns, n_end - n0);
      if (count < block_columns) std::fill(block.begin(), block.end(), 0.0);  // the unused columns sum nothing
      for (int64_t j = 0; j < count; ++j) {
        const int64_t n = n0 + j;
        for (int64_t group = 0; group < weights.group_count(); ++group) {
          const double zero = weights.zero_point(n, group);
          const double scale = weights.scale(n, group);
          for (int64_t k = group * weights.group_size(); k < (group + 1) * weights.group_size(); ++k)
            block[k * block_columns + j] = (static_cast<double>(weights.q[n * k_size + k]) - zero) * scale;
        }
      }
      sum_block_rows(activations.data(), m, k_size, block.data(), sums.data());
      for (int64_t j = 0; j < count; ++j) {
        const double bias_value = desc.bias ? load_as_float(bias, desc.act, n0 + j) : 0.0;
        for (int64_t row = 0; row < m; ++row) y[row * n_size + n0 + j] = sums[row * block_columns + j] + bias_value;
      }
    }
  };
  // Tuning verifies every candidate against this oracle; at M in the hundreds on the large
  // shapes a single thread takes tens of seconds, so large problems spread columns over the pool.
  constexpr int64_t parallel_products = int64_t{1} << 24;
  const int tasks = static_cast<int>(std::min<int64_t>(ThreadPool::instance().size(), n_size));
  if (m * n_size * k_size < parallel_products || tasks <= 1) {
    compute_columns(0, n_size);
  } else {
    ThreadPool::instance().run(tasks, [&](int task) {
      compute_columns(n_size * task / tasks, n_size * (task + 1) / tasks);
    });
  }
  return y;
}

int64_t int8_block_size(const OpDesc& desc) { return desc.group == whole_k_group ? 128 : desc.group; }

int64_t int8_block_count(const OpDesc& desc) {
  const int64_t block = int8_block_size(desc);
  return (desc.k + block - 1) / block;
}

Int8Activations quantize_activations_int8(const OpDesc& desc, int64_t m, const void* x, const float* eq_scale) {
  const int64_t k_size = desc.k;
  const int64_t block_size = int8_block_size(desc);
  const int64_t blocks = int8_block_count(desc);
  Int8Activations result;
  result.q.resize(static_cast<std::size_t>(m * k_size));
  result.scale.resize(static_cast<std::size_t>(m * blocks));
  std::vector<float> values(static_cast<std::size_t>(block_size));
  for (int64_t row = 0; row < m; ++row)
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t begin = block * block_size;
      const int64_t end = std::min(k_size, begin + block_size);
      float max_abs = 0.0f;
      for (int64_t k = begin; k < end; ++k) {
        float value = load_as_float(x, desc.act, row * k_size + k);
        if (desc.eqscale) value *= eq_scale[k];
        values[k - begin] = value;
        max_abs = std::max(max_abs, std::fabs(value));
      }
      const float scale = max_abs == 0.0f ? 1.0f : max_abs / 127.0f;
      for (int64_t k = begin; k < end; ++k) {
        const float rounded = std::nearbyint(values[k - begin] / scale);  // default mode: nearest even
        result.q[row * k_size + k] = static_cast<int8_t>(std::clamp(rounded, -127.0f, 127.0f));
      }
      result.scale[row * blocks + block] = scale;
    }
  return result;
}

std::vector<double> reference_int8(const OpDesc& desc, int64_t m, const void* x, const QuantizedWeights& weights,
                                   const void* bias, const float* eq_scale) {
  const int64_t n_size = desc.n;
  const int64_t k_size = desc.k;
  const int64_t block_size = int8_block_size(desc);
  const int64_t blocks = int8_block_count(desc);
  const Int8Activations activations = quantize_activations_int8(desc, m, x, eq_scale);
  std::vector<double> y(static_cast<std::size_t>(m * n_size));
  for (int64_t row = 0; row < m; ++row) {
    const int8_t* xq = activations.q.data() + row * k_size;
    for (int64_t n = 0; n < n_size; ++n) {
      double sum = desc.bias ? load_as_float(bias, desc.act, n) : 0.0;
      for (int64_t block = 0; block < blocks; ++block) {
        const int64_t begin = block * block_size;
        const int64_t end = std::min(k_size, begin + block_size);
        const int64_t group = begin / weights.group_size();
        int64_t dot = 0;
        int64_t x_sum = 0;
        for (int64_t k = begin; k < end; ++k) {
          dot += int64_t{weights.q[n * k_size + k]} * xq[k];
          x_sum += xq[k];
        }
        const double zero = weights.zero_point(n, group);  // 2^(bits-1) for zero=none
        sum += static_cast<double>(weights.scale(n, group)) * activations.scale[row * blocks + block] *
               (static_cast<double>(dot) - zero * static_cast<double>(x_sum));
      }
      y[row * n_size + n] = sum;
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
