#include "lowbit/quantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "lowbit/errors.h"
#include "lowbit/half.h"

namespace lowbit {
namespace {

// Rounds a positive scale to fp16, keeping it non-zero so q = w / s stays finite.
uint16_t scale_to_fp16(float scale, int64_t row, int64_t group_index) {
  if (!(scale > 0.0f)) scale = 1.0f;  // all-equal or all-zero group: any scale reproduces it
  uint16_t bits = float_to_fp16(scale);
  if ((bits & 0x7fffu) == 0) bits = 0x0001;  // smallest fp16 subnormal
  if ((bits & 0x7c00u) == 0x7c00u)
    throw InvalidArgument("weights", fmt::format("scale {} of row {} group {} exceeds the fp16 range; "
                                                 "weights must stay within about +-1e6",
                                                 scale, row, group_index));
  return bits;
}

}  // namespace

QuantizedWeights QuantizedWeights::allocate(const OpDesc& desc) {
  QuantizedWeights weights;
  weights.n = desc.n;
  weights.k = desc.k;
  weights.bits = desc.bits;
  weights.group = desc.group;
  weights.zero = desc.zero;
  weights.q.assign(static_cast<std::size_t>(desc.n * desc.k), 0);
  weights.scales.assign(static_cast<std::size_t>(desc.n * desc.group_count()), 0);
  if (desc.zero != ZeroPoint::none) weights.zeros.assign(weights.scales.size(), 0);
  return weights;
}

int64_t QuantizedWeights::group_count() const { return group == whole_k_group ? 1 : k / group; }
int64_t QuantizedWeights::group_size() const { return group == whole_k_group ? k : group; }

float QuantizedWeights::scale(int64_t row, int64_t group_index) const {
  return fp16_to_float(scales[row * group_count() + group_index]);
}

float QuantizedWeights::zero_point(int64_t row, int64_t group_index) const {
  if (zero == ZeroPoint::none) return static_cast<float>(1 << (bits - 1));
  return fp16_to_float(zeros[row * group_count() + group_index]);
}

float QuantizedWeights::dequantized(int64_t row, int64_t column) const {
  int64_t group_index = column / group_size();
  return (static_cast<float>(q[row * k + column]) - zero_point(row, group_index)) *
         scale(row, group_index);
}

QuantizedWeights quantize_rtn(const OpDesc& desc, const std::vector<float>& weights) {
  if (static_cast<int64_t>(weights.size()) != desc.n * desc.k)
    throw InvalidArgument("weights", fmt::format("weights have {} elements; n*k = {}*{} = {} expected",
                                                 weights.size(), desc.n, desc.k, desc.n * desc.k));
  QuantizedWeights result = QuantizedWeights::allocate(desc);
  const int64_t groups = desc.group_count();
  const int64_t size = desc.group_size();
  const int levels = 1 << desc.bits;

  for (int64_t row = 0; row < desc.n; ++row) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* values = weights.data() + row * desc.k + g * size;
      float low = values[0];
      float high = values[0];
      for (int64_t i = 0; i < size; ++i) {
        if (!std::isfinite(values[i]))
          throw InvalidArgument("weights", fmt::format("weight [{}, {}] is {}; weights must be finite", row,
                                                       g * size + i, values[i]));
        low = std::min(low, values[i]);
        high = std::max(high, values[i]);
      }
      float zero = 0.0f;
      float scale = 0.0f;
      if (desc.zero == ZeroPoint::none) {
        // Symmetric: codes -2^(b-1) .. 2^(b-1)-1 stored offset by 2^(b-1); choose the scale
        // that reaches both the most negative and the most positive value.
        const float half = static_cast<float>(levels / 2);
        scale = std::max(-low / half, high / (half - 1.0f));
        zero = half;
      } else {
        // Asymmetric: [low, high] (widened to include 0 so zero stays representable) onto 0..2^b-1.
        low = std::min(low, 0.0f);
        high = std::max(high, 0.0f);
        scale = (high - low) / static_cast<float>(levels - 1);
      }
      uint16_t scale_bits = scale_to_fp16(scale, row, g);
      float stored_scale = fp16_to_float(scale_bits);
      if (desc.zero == ZeroPoint::integer) {
        zero = std::clamp(std::nearbyint(-low / stored_scale), 0.0f, static_cast<float>(levels - 1));
      } else if (desc.zero == ZeroPoint::floating) {
        zero = fp16_to_float(float_to_fp16(-low / stored_scale));
      }
      result.scales[row * groups + g] = scale_bits;
      if (desc.zero != ZeroPoint::none) result.zeros[row * groups + g] = float_to_fp16(zero);
      for (int64_t i = 0; i < size; ++i) {
        float code = std::nearbyint(values[i] / stored_scale + zero);
        result.q[row * desc.k + g * size + i] =
            static_cast<uint8_t>(std::clamp(code, 0.0f, static_cast<float>(levels - 1)));
      }
    }
  }
  return result;
}

}  // namespace lowbit
