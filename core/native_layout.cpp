#include "lowbit/native_layout.h"

#include <fmt/format.h>

#include <cstring>

#include "lowbit/errors.h"

namespace lowbit {
namespace {

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// One plane of a block: `width`-bit fields, byte 2j+h field f <-> (column j, k0 + 2f + h).
// Calls visit(byte_index, shift, column_in_panel, k_offset) for every field.
template <class Visit>
void for_each_field_of_block(int width, Visit&& visit) {
  const int fields = 8 / width;
  for (int j = 0; j < native_panel_width; ++j)
    for (int h = 0; h < 2; ++h)
      for (int f = 0; f < fields; ++f) visit(2 * j + h, f * width, j, 2 * f + h);
}

struct Plane {
  int width;          // bits per field
  int64_t offset;     // byte offset of the plane's first block inside the step
  int blocks;         // 32-byte blocks in the step
  int value_shift;    // which bits of q this plane holds (q >> value_shift) & mask
};

// The planes of one step: 2/4/8 bits are one plane of one block; 3 bits are the low
// two bits (two blocks, 8 k each) then the high bit (one block, 16 k).
std::vector<Plane> step_planes(int bits) {
  if (bits == 3) return {{2, 0, 2, 0}, {1, 2 * native_block_bytes, 1, 2}};
  return {{bits, 0, 1, 0}};
}

}  // namespace

NativeGeometry native_geometry(const OpDesc& desc) {
  NativeGeometry geometry;
  geometry.panels = (desc.n + native_panel_width - 1) / native_panel_width;
  geometry.k_per_block = desc.bits == 3 ? 16 : 16 / desc.bits;
  geometry.step_bytes = desc.bits == 3 ? 3 * native_block_bytes : native_block_bytes;
  geometry.steps = (desc.k + geometry.k_per_block - 1) / geometry.k_per_block;
  geometry.panel_bytes = geometry.steps * geometry.step_bytes;
  geometry.groups = desc.group_count();
  return geometry;
}

int64_t native_weight_bytes(const OpDesc& desc) {
  NativeGeometry geometry = native_geometry(desc);
  int64_t side_tables = geometry.scale_count() * 2 * (desc.zero == ZeroPoint::none ? 1 : 2);
  return geometry.qweight_bytes() + side_tables;
}

const uint8_t* NativeWeights::qweight() const { return storage.data(); }
const uint16_t* NativeWeights::scales() const {
  return reinterpret_cast<const uint16_t*>(storage.data() + scales_offset);
}
const uint16_t* NativeWeights::zeros() const {
  return zeros_offset < 0 ? nullptr : reinterpret_cast<const uint16_t*>(storage.data() + zeros_offset);
}

NativeWeights pack_native(const OpDesc& desc, const QuantizedWeights& weights) {
  if (weights.n != desc.n || weights.k != desc.k || weights.bits != desc.bits ||
      weights.group != desc.group || weights.zero != desc.zero)
    throw InvalidArgument("weights", fmt::format("quantized weights (n={}, k={}, bits={}, group={}) do not "
                                                 "match the descriptor {}",
                                                 weights.n, weights.k, weights.bits, weights.group,
                                                 to_string(desc)));
  NativeWeights packed;
  packed.geometry = native_geometry(desc);
  const NativeGeometry& g = packed.geometry;
  const int64_t table_bytes = round_up(g.scale_count() * 2, AlignedBuffer::alignment);
  packed.scales_offset = round_up(g.qweight_bytes(), AlignedBuffer::alignment);
  int64_t total = packed.scales_offset + table_bytes;
  if (desc.zero != ZeroPoint::none) {
    packed.zeros_offset = total;
    total += table_bytes;
  }
  packed.storage = AlignedBuffer(static_cast<std::size_t>(total));
  uint8_t* qweight = packed.storage.data();

  for (int64_t panel = 0; panel < g.panels; ++panel) {
    for (int64_t step = 0; step < g.steps; ++step) {
      uint8_t* step_base = qweight + panel * g.panel_bytes + step * g.step_bytes;
      for (const Plane& plane : step_planes(desc.bits)) {
        const int64_t k_per_plane_block = 16 / plane.width;
        for (int block = 0; block < plane.blocks; ++block) {
          uint8_t* bytes = step_base + plane.offset + block * native_block_bytes;
          int64_t k0 = step * g.k_per_block + block * k_per_plane_block;
          for_each_field_of_block(plane.width, [&](int byte, int shift, int j, int dk) {
            int64_t n = panel * native_panel_width + j;
            int64_t k = k0 + dk;
            if (n >= desc.n || k >= desc.k) return;
            uint8_t value = (weights.q[n * desc.k + k] >> plane.value_shift) & ((1 << plane.width) - 1);
            bytes[byte] = static_cast<uint8_t>(bytes[byte] | (value << shift));
          });
        }
      }
    }
  }
  auto* scales = reinterpret_cast<uint16_t*>(qweight + packed.scales_offset);
  auto* zeros = packed.zeros_offset < 0 ? nullptr : reinterpret_cast<uint16_t*>(qweight + packed.zeros_offset);
  for (int64_t n = 0; n < desc.n; ++n) {
    int64_t panel = n / native_panel_width;
    int64_t j = n % native_panel_width;
    for (int64_t group = 0; group < g.groups; ++group) {
      int64_t index = (panel * g.groups + group) * native_panel_width + j;
      scales[index] = weights.scales[n * g.groups + group];
      if (zeros) zeros[index] = weights.zeros[n * g.groups + group];
    }
  }
  return packed;
}

QuantizedWeights unpack_native(const OpDesc& desc, const WeightsView& packed) {
  if (packed.qweight == nullptr || packed.scales == nullptr ||
      (desc.zero != ZeroPoint::none && packed.zeros == nullptr))
    throw InvalidArgument("weights", "packed weights are missing a buffer (qweight, scales, or zeros for "
                                     "zero=int/float)");
  const NativeGeometry g = native_geometry(desc);
  QuantizedWeights weights = QuantizedWeights::allocate(desc);
  const auto* qweight = static_cast<const uint8_t*>(packed.qweight);
  for (int64_t panel = 0; panel < g.panels; ++panel) {
    for (int64_t step = 0; step < g.steps; ++step) {
      const uint8_t* step_base = qweight + panel * g.panel_bytes + step * g.step_bytes;
      for (const Plane& plane : step_planes(desc.bits)) {
        const int64_t k_per_plane_block = 16 / plane.width;
        for (int block = 0; block < plane.blocks; ++block) {
          const uint8_t* bytes = step_base + plane.offset + block * native_block_bytes;
          int64_t k0 = step * g.k_per_block + block * k_per_plane_block;
          for_each_field_of_block(plane.width, [&](int byte, int shift, int j, int dk) {
            int64_t n = panel * native_panel_width + j;
            int64_t k = k0 + dk;
            if (n >= desc.n || k >= desc.k) return;
            uint8_t value = (bytes[byte] >> shift) & ((1 << plane.width) - 1);
            weights.q[n * desc.k + k] = static_cast<uint8_t>(weights.q[n * desc.k + k] | (value << plane.value_shift));
          });
        }
      }
    }
  }
  const auto* scales = static_cast<const uint16_t*>(packed.scales);
  const auto* zeros = static_cast<const uint16_t*>(packed.zeros);
  for (int64_t n = 0; n < desc.n; ++n) {
    for (int64_t group = 0; group < g.groups; ++group) {
      int64_t index = (n / native_panel_width * g.groups + group) * native_panel_width + n % native_panel_width;
      weights.scales[n * g.groups + group] = scales[index];
      if (desc.zero != ZeroPoint::none) weights.zeros[n * g.groups + group] = zeros[index];
    }
  }
  return weights;
}

}  // namespace lowbit
