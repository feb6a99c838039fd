// lowbit's native packed weight layout (docs/layout.md has the bit-by-bit description).
//
// Columns of W (output features n) are grouped in panels of 16. A panel stores all of K
// as a run of 32-byte blocks; each block covers the panel's 16 columns and `k_per_block`
// consecutive k. Inside a block, byte 2*j+h (j = column in panel 0..15, h = 0..1) holds
// in its bit field f (width `bits`, f = 0 .. 8/bits-1, least significant first):
//   q[n0 + j, k0 + 2*f + h]
// so that zero-extending the block's bytes to 16-bit lanes and extracting field f yields,
// per 32-bit lane j, the pair (k0+2f, k0+2f+1) of column j: the operand shape of pairwise
// dot products (vdpbf16ps, vpdpwssd) with a broadcast pair of activations.
// 3-bit weights are stored as two planes per 16 k: the low 2 bits (two 2-bit blocks) then
// the high bit (one 1-bit block), 96 bytes per 16 k.
//
// Scales and zero points: fp16, [panel][group][16 columns]. K and N are padded up to whole
// blocks and panels with code 0, scale 0 and zero 0; kernels never write padded columns.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/aligned_buffer.h"
#include "lowbit/descriptor.h"
#include "lowbit/quantize.h"

namespace lowbit {

constexpr int native_panel_width = 16;
constexpr int native_block_bytes = 32;

struct NativeGeometry {
  int64_t panels = 0;           // ceil(n / 16)
  int64_t k_per_block = 0;      // k values per block step (3-bit: per 96-byte step)
  int64_t step_bytes = 0;       // bytes per step: 32, or 96 for 3-bit
  int64_t steps = 0;            // ceil(k / k_per_block)
  int64_t panel_bytes = 0;      // steps * step_bytes
  int64_t groups = 0;
  int64_t qweight_bytes() const { return panels * panel_bytes; }
  int64_t scale_count() const { return panels * groups * native_panel_width; }
};
NativeGeometry native_geometry(const OpDesc& desc);

// Owning packed weights. Each section starts 64-byte aligned, so a 32-byte block never
// straddles a cache line (the kernels' loads need no alignment, but a split load costs).
struct NativeWeights {
  NativeGeometry geometry;
  AlignedBuffer storage;  // qweight, then scales, then zeros (each 64-byte aligned)
  int64_t scales_offset = 0;
  int64_t zeros_offset = -1;  // -1: zero=none
  const uint8_t* qweight() const;
  const uint16_t* scales() const;
  const uint16_t* zeros() const;  // nullptr for zero=none
  int64_t total_bytes() const { return static_cast<int64_t>(storage.size()); }
};

// The pointers a kernel reads; what a host engine passes for layout=native.
struct WeightsView {
  const void* qweight = nullptr;
  const void* scales = nullptr;
  const void* zeros = nullptr;  // null for zero=none
};
// The same sections in a copy of weights.storage that starts at `base` (a device buffer, or one
// of a benchmark's rotated copies).
inline WeightsView view_at(const NativeWeights& weights, const void* base) {
  const auto* bytes = static_cast<const uint8_t*>(base);
  return {bytes, bytes + weights.scales_offset, weights.zeros_offset < 0 ? nullptr : bytes + weights.zeros_offset};
}
inline WeightsView view(const NativeWeights& weights) { return view_at(weights, weights.storage.data()); }

// Bytes a kernel must read for one pass over the packed weights (codes, scales, zeros).
int64_t native_weight_bytes(const OpDesc& desc);

NativeWeights pack_native(const OpDesc& desc, const QuantizedWeights& weights);
QuantizedWeights unpack_native(const OpDesc& desc, const WeightsView& packed);

}  // namespace lowbit
