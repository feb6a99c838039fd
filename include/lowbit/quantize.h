// Round-to-nearest quantization of float weights into the logical (unpacked) form that
// the reference reads and the packers consume.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/descriptor.h"

namespace lowbit {

// Logical quantized weights, one value per element (no bit packing):
//   dequant[n,k] = (q[n,k] - zero[n,g]) * scale[n,g]
// scale and zero are stored as IEEE fp16 bits, exactly as the native layout carries them,
// so the reference and every kernel read the same numbers. zero=none means the implicit
// zero point 2^(bits-1) (q holds the value + 2^(bits-1), unsigned), and `zeros` is empty.
// For zero=int the zeros are integers 0..2^bits-1 (exact in fp16).
struct QuantizedWeights {
  int64_t n = 0;
  int64_t k = 0;
  int bits = 4;
  int group = 128;
  ZeroPoint zero = ZeroPoint::integer;
  std::vector<uint8_t> q;        // [n][k], values < 2^bits
  std::vector<uint16_t> scales;  // [n][groups] fp16
  std::vector<uint16_t> zeros;   // [n][groups] fp16; empty for zero=none

  // Shaped like desc (n, k, bits, group, zero), every code, scale and zero point 0.
  static QuantizedWeights allocate(const OpDesc& desc);

  int64_t group_count() const;
  int64_t group_size() const;
  float scale(int64_t row, int64_t group_index) const;
  float zero_point(int64_t row, int64_t group_index) const;
  float dequantized(int64_t row, int64_t column) const;
};

// Quantizes weights [n][k] (row-major, the layout of torch.nn.Linear.weight) with the
// bits, group and zero point of desc. Scales are rounded to fp16 before q is computed,
// so q is the best code for the stored scale. Throws InvalidArgument when a scale does
// not fit fp16 or the size does not match desc.
QuantizedWeights quantize_rtn(const OpDesc& desc, const std::vector<float>& weights);

}  // namespace lowbit
