// lowbit_weights_in_shared_bench: would the wgmma family beat cuBLAS at M = 256 with its operands
// swapped? Today's wgmma kernels (templates/wgmma_gemm.cuh) take the dequantized weights as the
// A operand from registers, 64 weight columns a consumer warpgroup, so a tile is 64 or 128 weight
// columns by up to 256 rows of x: 48-96 tiles at M = 256 on 6144x4096, under a wave of the H100's
// 132 SMs, hence stream-K and its fix-ups. cuBLAS runs 96 x 128 tiles there, 128 of them, one wave
// (docs/benchmarks.md, session 26). With the operands swapped, x is A (64 rows a consumer
// warpgroup, from shared memory) and the weights are B (any multiple of 16 columns up to 256):
// one more warpgroup copies x and the packed weights, dequantizes the weights into shared memory
// in B's 128-byte-swizzled layout (stmatrix), and hands the stage over through mbarriers. Any
// tile of 64 or 128 rows by 16..256 columns is then a grid, cuBLAS's 96 x 128 included.
//
// --operands weights_a keeps today's roles (the decoded weights as A, 64 columns a consumer
// warpgroup, x as B, up to 256 rows) with the decode still moved to the copy warpgroups: does
// taking the decode off the consumers pay?
//
// This is a prototype, not a lowbit variant: whole tiles only (M, N, K multiples of the tile, a
// stage inside one group or holding whole groups), no bias. Each tile is checked against the
// GPU reference (tuner/device_reference.h) on random inputs with a poisoned output first, then
// timed under the read protocol (bench/l2_flush.h) beside the registry's no-tune kernel for the
// same descriptor, in the same process. Prints one JSON line per kernel.
// Usage: lowbit_weights_in_shared_bench DESCRIPTOR [--tiles N:M:K:S:L:D[:P],...] [--copies cp_async|tma|both]
//        [--operands x_a|weights_a|both] [--constants per_unit|per_group|both] [--arrivals thread|warp|both]
//        [--repeats R] [--compile-only]
// (a tile: weight columns, rows of x, k per stage, ring slots, stages copied ahead, copy warpgroups;
// an optional 7th field probes what sets the pace, by bits: 1 leaves the dequantization out, 2 the
// wgmmas, 4 (TMA, with 1) the weights' and tables' copies; a probe is timed but not verified).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/compile_only.h"
#include "bench/cuda_module.h"
#include "bench/l2_flush.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/embedded_templates.h"
#include "codegen/cuda/registry.h"
#include "codegen/cuda/template_constants.h"
#include "codegen/cuda/wgmma_generator.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tuner/device_reference.h"

namespace {

using lowbit::cuda::check;
using lowbit::cuda::DeviceBuffer;
using lowbit::cuda::driver;

// The kernel, after gemv.cuh, mma_gemm.cuh and wgmma_gemm.cuh (their conversions, group constants,
// WgmmaFormat, mbarriers and descriptors) and a SwapConfig.
constexpr const char* kernel_source = R"CUDA(
namespace lowbit_gemv {

// D[64 rows][COLUMNS] += A . B, A (64 rows of x x 16 k) and B (16 k x COLUMNS weight columns)
// both from shared-memory descriptors, K-major. Generated per COLUMNS (after this file).
template <int COLUMNS, bool IS_BF16>
__device__ __forceinline__ void wgmma_shared(float (&d)[COLUMNS / 2], u64 a, u64 b);

// Four 8x8 b16 matrices from the mma fragment layout (register i: matrix i, lane (g, t) its row
// g, elements 2t and 2t+1) to the rows whose addresses lanes 8i .. 8i+7 give.
__device__ __forceinline__ void store_matrices(u32 address, const u32 (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(address), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}
// One arrival for this thread, or (WARP: the barrier counts warps) one for its warp once every lane
// is here: __syncwarp orders the lanes' shared-memory accesses before lane 0's release.
template <bool WARP>
__device__ __forceinline__ void arrive_once(u32 barrier) {
  if (WARP) {
    __syncwarp();
    if ((threadIdx.x & 31) == 0) mbarrier_arrive(barrier);
  } else {
    mbarrier_arrive(barrier);
  }
}
// The copy warpgroups' own barrier (id 1; the consumers never use it).
template <int THREADS>
__device__ __forceinline__ void copiers_barrier() { asm volatile("bar.sync 1, %0;\n" ::"n"(THREADS) : "memory"); }

template <class Config>
struct SwapTile {
  static constexpr int BLOCK_N = Config::BLOCK_N;  // weight columns: the wgmma's N
  static constexpr int BLOCK_M = Config::BLOCK_M;  // rows of x, 64 a consumer warpgroup
  static constexpr int BLOCK_K = Config::BLOCK_K;
  static constexpr int STAGES = Config::STAGES;
  // Stages copied ahead of the one dequantized. At most STAGES - 2 (the copy for stage s + LEAD
  // waits for the consumers' release of stage s + LEAD - STAGES, which they give after full[s +
  // LEAD - STAGES + 1]); at STAGES - 2 the copiers wait at every stage for the consumers to answer
  // the stage they just handed over. The cp.async mode's only: with TMA the copy warp runs up to
  // STAGES stages ahead, waiting only for the consumers' release (the tile's `_l` is then unused).
  static constexpr int LEAD = Config::LEAD;
  // WEIGHTS_A: the decoded weights are the wgmma's A (64 columns a consumer warpgroup) and x its
  // B (BLOCK_M rows: the wgmma's N), today's kernels' roles with the decode moved to the copy
  // warpgroups; else x is A (64 rows a consumer warpgroup) and the weights B.
  static constexpr bool WEIGHTS_A = Config::WEIGHTS_A != 0;
  static constexpr int CONSUMERS = WEIGHTS_A ? BLOCK_N / 64 : BLOCK_M / 64;
  static constexpr int WGMMA_N = WEIGHTS_A ? BLOCK_M : BLOCK_N;  // the accumulator: WGMMA_N / 2 a thread
  static constexpr int CONSUMER_THREADS = CONSUMERS * 128;
  static constexpr int DEQUANTIZERS = Config::DEQUANTIZERS;  // copy-and-dequantize warpgroups
  static constexpr int COPIERS = DEQUANTIZERS * 128;
  static constexpr bool TMA = Config::TMA != 0;
  static constexpr int THREADS = CONSUMER_THREADS + COPIERS + (TMA ? 32 : 0);  // TMA: one copy warp more
  // WARP_ARRIVALS (TMA only): the full and empty barriers count one arrival a warp, not a thread
  // (a stage's 640 arrivals are as many atomics on two shared-memory words).
  static constexpr bool WARP_ARRIVALS = TMA && Config::WARP_ARRIVALS != 0;
  static constexpr int FULL_ARRIVALS = WARP_ARRIVALS ? COPIERS / 32 : COPIERS;
  static constexpr int EMPTY_ARRIVALS = WARP_ARRIVALS ? CONSUMER_THREADS / 32 : CONSUMER_THREADS;
  static constexpr int BITS = Config::BITS;
  static constexpr int PANELS = BLOCK_N / 16;
  static constexpr int K_TILES = BLOCK_K / 16;
  static constexpr int ATOMS = BLOCK_K / 64;
  static constexpr int K_PER_STEP = WgmmaFormat<BITS>::K_PER_STEP;
  static constexpr int STEP_BYTES = WgmmaFormat<BITS>::STEP_BYTES;
  static constexpr int PANEL_STAGE_BYTES = BLOCK_K / K_PER_STEP * STEP_BYTES;
  static constexpr int STAGE_GROUPS = Config::WHOLE_K_GROUP || Config::GROUP >= BLOCK_K ? 1 : BLOCK_K / Config::GROUP;
  static constexpr int GROUP_K_TILES = STAGE_GROUPS == 1 ? K_TILES : Config::GROUP / 16;
  // A slot: x [ATOMS][BLOCK_M][64] and the dequantized weights [ATOMS][BLOCK_N][64], both
  // 128-byte swizzled; the packed weights [PANELS][PANEL_STAGE_BYTES]; scales then zeros
  // [PANELS][STAGE_GROUPS][16].
  static constexpr int X_BYTES = BLOCK_M * BLOCK_K * 2;
  static constexpr int B_BYTES = BLOCK_N * BLOCK_K * 2;
  static constexpr int PACKED_BYTES = PANELS * PANEL_STAGE_BYTES;
  static constexpr int TABLE_BYTES = PANELS * STAGE_GROUPS * 32;
  // The zeros start 128 bytes aligned after the scales (a tensor copy's target must be).
  static constexpr int ZEROS_OFFSET = (TABLE_BYTES + 127) / 128 * 128;
  static constexpr int SLOT_BYTES = (X_BYTES + B_BYTES + PACKED_BYTES + ZEROS_OFFSET + TABLE_BYTES + 1023) / 1024 * 1024;
  // full[STAGES], empty[STAGES], and (TMA) landed[STAGES] mbarriers after the ring.
  static constexpr int SHARED_BYTES = STAGES * SLOT_BYTES + 1024 + (TMA ? 3 : 2) * STAGES * 8;
  static constexpr int K_STAGES = Config::K / BLOCK_K;
  // setmaxnreg: the copy warpgroup down to 96, two consumer warpgroups up to 200 (128 x 96 +
  // 256 x 200 <= 65536) where their accumulators are wide.
  static constexpr bool MOVE_REGISTERS = CONSUMERS == 2 && BLOCK_N >= 192 && DEQUANTIZERS == 1 && !TMA;
  static_assert(CONSUMERS == 1 || CONSUMERS == 2, "one or two consumer warpgroups");
  static_assert(BLOCK_N % 16 == 0 && BLOCK_N <= 256 && BLOCK_M % 16 == 0 && BLOCK_M <= 256, "whole panels, a wgmma's N");
  static_assert(BLOCK_K % 64 == 0 && Config::K % BLOCK_K == 0 && Config::M % BLOCK_M == 0 && Config::N % BLOCK_N == 0,
                "whole tiles (a prototype)");
  static_assert(Config::WHOLE_K_GROUP || Config::GROUP % BLOCK_K == 0 || BLOCK_K % Config::GROUP == 0,
                "a stage inside one group or holding whole groups");
  static_assert(LEAD >= 1 && LEAD <= STAGES - 2, "copies ahead, and a slot dequantized and one multiplied");
  static_assert(DEQUANTIZERS >= 1 && DEQUANTIZERS <= 3, "one to three copy warpgroups");
};

// A CUtensorMap (128 opaque bytes), passed by value as a __grid_constant__ parameter.
struct __align__(64) TensorMap {
  unsigned long long words[16];
};
// The TMA copy warp's maps: x [M][K]; the weights as u32 words [panels][panel words]; scales and
// zeros [panels][GROUPS x 16] (zeros: a copy of the scales' map with zero=none, never used).
struct StageMaps {
  TensorMap x, weights, scales, zeros;
};
// One arrival that also expects `bytes` of asynchronous copies in this phase.
__device__ __forceinline__ void mbarrier_expect_bytes(u32 barrier, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(barrier), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk_copy(u32 target, const void* source, u32 bytes, u32 barrier) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(target),
               "l"(source), "r"(bytes), "r"(barrier)
               : "memory");
}
// The map's box at (k, row) into `target` (1024-byte aligned: the box lands 128-byte swizzled).
__device__ __forceinline__ void tensor_copy(u32 target, const TensorMap& map, int k, int row, u32 barrier) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
                   target),
               "l"(reinterpret_cast<unsigned long long>(&map)), "r"(k), "r"(row), "r"(barrier)
               : "memory");
}

template <class Config>
__device__ __forceinline__ void swapped_gemm(const StageMaps& maps, const u16* __restrict__ x, const unsigned char* __restrict__ qweight,
                                             const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                             u16* __restrict__ y, unsigned char* shared_raw) {
  using Tile = SwapTile<Config>;
  constexpr int K = Config::K;
  constexpr long long N = Config::N;
  constexpr int GROUPS = Config::WHOLE_K_GROUP ? 1 : K / Config::GROUP;
  constexpr long long PANEL_BYTES = static_cast<long long>(K / Tile::K_PER_STEP) * Tile::STEP_BYTES;
  constexpr bool IS_BF16 = Config::ACT == bf16;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int block_row = blockIdx.y * Tile::BLOCK_M;
  const long long block_panel = static_cast<long long>(blockIdx.x) * Tile::PANELS;

  unsigned char* ring = aligned_ring(shared_raw);
  const u32 ring_address = static_cast<u32>(__cvta_generic_to_shared(ring));
  const u32 barriers = ring_address + Tile::STAGES * Tile::SLOT_BYTES;
  auto full_barrier = [&](int slot) { return barriers + slot * 8; };
  auto empty_barrier = [&](int slot) { return barriers + (Tile::STAGES + slot) * 8; };
  auto landed_barrier = [&](int slot) { return barriers + (2 * Tile::STAGES + slot) * 8; };
  if (threadIdx.x == 0) {
    for (int slot = 0; slot < Tile::STAGES; ++slot) {
      mbarrier_init(full_barrier(slot), Tile::FULL_ARRIVALS);
      mbarrier_init(empty_barrier(slot), Tile::EMPTY_ARRIVALS);
      if (Tile::TMA) mbarrier_init(landed_barrier(slot), 1);
    }
  }
  __syncthreads();

  if (threadIdx.x >= Tile::CONSUMER_THREADS) {
    // ---- The copy warpgroups: copy stage s + LEAD, then dequantize stage s.
    if constexpr (Tile::MOVE_REGISTERS) asm volatile("setmaxnreg.dec.sync.aligned.u32 96;\n" ::: "memory");
    const int copier = threadIdx.x - Tile::CONSUMER_THREADS;
    constexpr int KINDS = Config::ZERO == zero_none ? 1 : 2;  // group tables copied: scales, and zeros
    const int warp = copier >> 5;
    auto copy_stage = [&](int stage) {
      unsigned char* slot = ring + (stage % Tile::STAGES) * Tile::SLOT_BYTES;
      const int first_k = stage * Tile::BLOCK_K;
      constexpr int ROW_CHUNKS = Tile::BLOCK_K / 8;
      constexpr int X_CHUNKS = Tile::BLOCK_M * ROW_CHUNKS;
#pragma unroll
      for (int chunk = copier; chunk < X_CHUNKS; chunk += Tile::COPIERS) {
        const int row = chunk / ROW_CHUNKS;
        const int k_chunk = chunk % ROW_CHUNKS;
        copy_16_async(slot + k_chunk / 8 * (Tile::BLOCK_M * 128) + row * 128 + (((k_chunk % 8) ^ (row & 7)) << 4),
                      x + static_cast<long long>(block_row + row) * K + first_k + k_chunk * 8, 16);
      }
      constexpr int PANEL_CHUNKS = Tile::PANEL_STAGE_BYTES / 16;
#pragma unroll
      for (int chunk = copier; chunk < Tile::PANELS * PANEL_CHUNKS; chunk += Tile::COPIERS) {
        const int panel = chunk / PANEL_CHUNKS;
        copy_16_async(slot + Tile::X_BYTES + Tile::B_BYTES + chunk * 16,
                      qweight + (block_panel + panel) * PANEL_BYTES + static_cast<long long>(first_k) * (2 * Tile::BITS) +
                          chunk % PANEL_CHUNKS * 16,
                      16);
      }
      constexpr int TABLE_CHUNKS = Tile::TABLE_BYTES / 16;
      const int first_group = Config::WHOLE_K_GROUP ? 0 : first_k / Config::GROUP;
#pragma unroll
      for (int chunk = copier; chunk < KINDS * TABLE_CHUNKS; chunk += Tile::COPIERS) {
        const bool is_zero = chunk >= TABLE_CHUNKS;
        const int index = chunk % TABLE_CHUNKS;  // [PANELS][STAGE_GROUPS][2 halves]
        const long long panel = block_panel + index / (2 * Tile::STAGE_GROUPS);
        const int stage_group = index / 2 % Tile::STAGE_GROUPS;
        copy_16_async(slot + Tile::X_BYTES + Tile::B_BYTES + Tile::PACKED_BYTES + (is_zero ? Tile::ZEROS_OFFSET : 0) +
                          index * 16,
                      (is_zero ? zeros : scales) + (panel * GROUPS + first_group + stage_group) * 16 + index % 2 * 8,
                      16);
      }
    };
    // Dequantizes a landed stage's packed weights into its B: warp w of the copiers takes units
    // (panel, k-tile) w, w + WARPS, ... (panel-major); one stmatrix a unit writes its 16 columns x 16 k.
    // CACHED_CONSTANTS (TMA mode): a warp's units are the same (panel, k-tile) every stage, so each
    // unit's group constants are kept in registers and worked out again only at a stage that starts
    // a group (stages inside one group only; else every stage).
    constexpr int WARPS = Tile::COPIERS / 32;
    constexpr int UNITS = Tile::PANELS * Tile::K_TILES;
    constexpr int WARP_UNITS = (UNITS + WARPS - 1) / WARPS;
    constexpr bool CACHED = Config::CACHED_CONSTANTS != 0 && Tile::STAGE_GROUPS == 1;
    GroupConstants cached[CACHED ? WARP_UNITS : 1];
    auto dequantize_stage = [&](int stage) {
      unsigned char* slot = ring + (stage % Tile::STAGES) * Tile::SLOT_BYTES;
      const u32 b_address = static_cast<u32>(__cvta_generic_to_shared(slot + Tile::X_BYTES));
      const u16* tables = reinterpret_cast<const u16*>(slot + Tile::X_BYTES + Tile::B_BYTES + Tile::PACKED_BYTES);
      const int matrix = lane >> 3;
      const int matrix_row = lane & 7;
      const bool starts_group = Config::WHOLE_K_GROUP ? stage == 0 : stage * Tile::BLOCK_K % Config::GROUP == 0;
#pragma unroll
      for (int index = 0; index < WARP_UNITS; ++index) {
        const int unit = warp + index * WARPS;
        if (UNITS % WARPS != 0 && unit >= UNITS) break;
        const int panel = unit / Tile::K_TILES;
        const int k_tile = unit % Tile::K_TILES;
        const u32* panel_words =
            reinterpret_cast<const u32*>(slot + Tile::X_BYTES + Tile::B_BYTES + panel * Tile::PANEL_STAGE_BYTES);
        // This lane's row address. WEIGHTS_A: panel column 2r at row r of the panel's 16 and 2r+1 at
        // row r + 8, so that D's rows g and g + 8 are the column pair 2g, 2g+1 (stored as one word).
        const int column = panel * 16 + (Tile::WEIGHTS_A ? matrix_row + 8 * (matrix & 1) : 2 * matrix_row + (matrix & 1));
        {
          auto constants_of_unit = [&]() {
            const int entry = (panel * Tile::STAGE_GROUPS + k_tile / Tile::GROUP_K_TILES) * 16 + 2 * g;
            const u32 scale_bits = *reinterpret_cast<const u32*>(tables + entry);
            const u32 zero_bits =
                Config::ZERO == zero_none ? 0u : *reinterpret_cast<const u32*>(tables + Tile::ZEROS_OFFSET / 2 + entry);
            return group_constants<IS_BF16, Config::ZERO, Tile::BITS>(scale_bits, zero_bits);
          };
          GroupConstants constants;
          if constexpr (CACHED) {
            if (starts_group) cached[index] = constants_of_unit();
            constants = cached[index];
          } else {
            constants = constants_of_unit();
          }
          u32 low_word, high_word;
          WgmmaFormat<Tile::BITS>::codes(panel_words, k_tile, g, t, low_word, high_word);
          u32 lanes[4], a[4];
          code_lanes<IS_BF16, Config::ZERO, Tile::BITS>(low_word, lanes[0], lanes[1]);
          code_lanes<IS_BF16, Config::ZERO, Tile::BITS>(high_word, lanes[2], lanes[3]);
#pragma unroll
          for (int i = 0; i < 4; ++i) a[i] = dequantize_pair<IS_BF16, Config::ZERO, Tile::BITS, false>(lanes[i], constants, i & 1);
          const int k_chunk = (k_tile % 4) * 2 + (matrix >> 1);
          store_matrices(b_address + k_tile / 4 * (Tile::BLOCK_N * 128) + column * 128 + ((k_chunk ^ (column & 7)) << 4), a);
        }
      }
    };
    // TMA: one more warp, after the copy warpgroups, copies every stage with the TMA engine: x, the
    // panels' packed weights and their group tables, each by one tensor map's box (x lands 128-byte
    // swizzled; the others as [PANELS][stage bytes], the layout the decode reads), completing on
    // landed[slot]. It waits only for the consumers' release of a slot, so it runs up to STAGES
    // stages ahead; the copy warpgroups then only wait for landed[slot] and decode.
    if constexpr (Tile::TMA) {
      if (threadIdx.x >= Tile::CONSUMER_THREADS + Tile::COPIERS) {
        if (lane != 0) return;
        // PROBE & 4: x alone (no weights, no tables).
        constexpr bool X_ONLY = (Config::PROBE & 4) != 0;
        constexpr u32 STAGE_COPY_BYTES = Tile::X_BYTES + (X_ONLY ? 0 : Tile::PACKED_BYTES + KINDS * Tile::TABLE_BYTES);
        for (int stage = 0; stage < Tile::K_STAGES; ++stage) {
          const int slot = stage % Tile::STAGES;
          if (stage >= Tile::STAGES) mbarrier_wait(empty_barrier(slot), (stage / Tile::STAGES - 1) & 1);
          const u32 slot_address = ring_address + slot * Tile::SLOT_BYTES;
          const u32 landed = landed_barrier(slot);
          const int first_k = stage * Tile::BLOCK_K;
          const int first_group = Config::WHOLE_K_GROUP ? 0 : first_k / Config::GROUP;
          mbarrier_expect_bytes(landed, STAGE_COPY_BYTES);
#pragma unroll
          for (int atom = 0; atom < Tile::ATOMS; ++atom)
            tensor_copy(slot_address + atom * (Tile::BLOCK_M * 128), maps.x, first_k + atom * 64, block_row, landed);
          if (X_ONLY) continue;
          // The weights as u32 words: a stage starts first_k 2 BITS bytes into its panel.
          tensor_copy(slot_address + Tile::X_BYTES + Tile::B_BYTES, maps.weights, first_k * 2 * Tile::BITS / 4,
                      static_cast<int>(block_panel), landed);
          tensor_copy(slot_address + Tile::X_BYTES + Tile::B_BYTES + Tile::PACKED_BYTES, maps.scales, first_group * 16,
                      static_cast<int>(block_panel), landed);
          if (KINDS == 2)
            tensor_copy(slot_address + Tile::X_BYTES + Tile::B_BYTES + Tile::PACKED_BYTES + Tile::ZEROS_OFFSET, maps.zeros,
                        first_group * 16, static_cast<int>(block_panel), landed);
        }
        return;
      }
      for (int stage = 0; stage < Tile::K_STAGES; ++stage) {
        mbarrier_wait(landed_barrier(stage % Tile::STAGES), (stage / Tile::STAGES) & 1);
        if (!(Config::PROBE & 1)) dequantize_stage(stage);
        // TMA: x landed through the async proxy already; only the decode's stmatrix writes need
        // the proxy fence, here, where this thread has no copy in flight (a consumer's fence
        // stood in every stage's hand-over).
        fence_proxy_async();
        arrive_once<Tile::WARP_ARRIVALS>(full_barrier(stage % Tile::STAGES));
      }
    } else {
      // cp.async: the copy warpgroups copy stage s + LEAD, then wait for their copies of stage s.
      for (int stage = 0; stage < Tile::LEAD; ++stage) {
        if (stage < Tile::K_STAGES) copy_stage(stage);
        asm volatile("cp.async.commit_group;\n" ::);
      }
      for (int stage = 0; stage < Tile::K_STAGES; ++stage) {
        const int ahead = stage + Tile::LEAD;
        if (ahead < Tile::K_STAGES) {
          // The slot's previous use (stage ahead - STAGES) is released by the consumers.
          if (ahead >= Tile::STAGES) mbarrier_wait(empty_barrier(ahead % Tile::STAGES), (ahead / Tile::STAGES - 1) & 1);
          copy_stage(ahead);
        }
        asm volatile("cp.async.commit_group;\n" ::);
        asm volatile("cp.async.wait_group %0;\n" ::"n"(Tile::LEAD));  // this thread's copies of `stage` landed ...
        copiers_barrier<Tile::COPIERS>();                               // ... and every copier's
        if (!(Config::PROBE & 1)) dequantize_stage(stage);
        mbarrier_arrive(full_barrier(stage % Tile::STAGES));
      }
      asm volatile("cp.async.wait_all;\n" ::: "memory");
    }
    return;
  }

  // ---- Consumers: warpgroup c multiplies rows 64c .. 64c + 63 of the tile by every column.
  if constexpr (Tile::MOVE_REGISTERS) asm volatile("setmaxnreg.inc.sync.aligned.u32 200;\n" ::: "memory");
  const int consumer = threadIdx.x >> 7;
  float accumulator[Tile::WGMMA_N / 2];
#pragma unroll
  for (int i = 0; i < Tile::WGMMA_N / 2; ++i) accumulator[i] = 0.0f;
  const u64 ring_descriptor = swizzled_descriptor(ring_address);
  for (int stage = 0; stage < Tile::K_STAGES; ++stage) {
    const int slot = stage % Tile::STAGES;
    mbarrier_wait(full_barrier(slot), (stage / Tile::STAGES) & 1);
    if (!Tile::TMA) fence_proxy_async();  // the copies and the stmatrix writes, for the async proxy
    wgmma_fence();
#pragma unroll
    for (int k_tile = 0; k_tile < Tile::K_TILES; ++k_tile) {
      const int slot_offset = slot * Tile::SLOT_BYTES;
      const int x_offset = slot_offset + k_tile / 4 * (Tile::BLOCK_M * 128) + k_tile % 4 * 32;
      const int weights_offset = slot_offset + Tile::X_BYTES + k_tile / 4 * (Tile::BLOCK_N * 128) + k_tile % 4 * 32;
      const u64 a = ring_descriptor + ((Tile::WEIGHTS_A ? weights_offset + consumer * 64 * 128 : x_offset + consumer * 64 * 128) >> 4);
      const u64 b = ring_descriptor + ((Tile::WEIGHTS_A ? x_offset : weights_offset) >> 4);
      if (!(Config::PROBE & 2)) wgmma_shared<Tile::WGMMA_N, IS_BF16>(accumulator, a, b);
    }
    wgmma_commit();
    wgmma_wait<1>();  // the previous stage's wgmmas are done: release its slot
    if (stage > 0) arrive_once<Tile::WARP_ARRIVALS>(empty_barrier((stage - 1) % Tile::STAGES));
  }
  wgmma_wait<0>();
  fence_accumulators(accumulator);

  if constexpr (Tile::WEIGHTS_A) {
    // ---- Epilogue: lane (g, t) of warp w holds weight columns 2g and 2g + 1 of the consumer's panel
    // w (D's rows g and g + 8) for rows 8i + 2t and + 1 of x.
    const long long column = static_cast<long long>(blockIdx.x) * Tile::BLOCK_N + consumer * 64 + (threadIdx.x >> 5 & 3) * 16 + 2 * g;
#pragma unroll
    for (int i = 0; i < Tile::BLOCK_M / 8; ++i) {
      const long long row = block_row + 8 * i + 2 * t;
      *reinterpret_cast<u32*>(y + row * N + column) = pack_floats<IS_BF16>(accumulator[4 * i], accumulator[4 * i + 2]);
      *reinterpret_cast<u32*>(y + (row + 1) * N + column) = pack_floats<IS_BF16>(accumulator[4 * i + 1], accumulator[4 * i + 3]);
    }
    return;
  }
  // ---- Epilogue: lane (g, t) of warp w holds rows 16w + g and + 8, columns 8i + 2t and + 1.
  const int row = block_row + consumer * 64 + (threadIdx.x >> 5 & 3) * 16 + g;
  const long long first_column = static_cast<long long>(blockIdx.x) * Tile::BLOCK_N + 2 * t;
#pragma unroll
  for (int i = 0; i < Tile::BLOCK_N / 8; ++i) {
    const long long column = first_column + 8 * i;
    *reinterpret_cast<u32*>(y + static_cast<long long>(row) * N + column) =
        pack_floats<IS_BF16>(accumulator[4 * i], accumulator[4 * i + 1]);
    *reinterpret_cast<u32*>(y + static_cast<long long>(row + 8) * N + column) =
        pack_floats<IS_BF16>(accumulator[4 * i + 2], accumulator[4 * i + 3]);
  }
}

}  // namespace lowbit_gemv
)CUDA";

// The entry point, after the wgmma_shared specialization it instantiates.
constexpr const char* entry_source = R"CUDA(
extern "C" __global__ void __launch_bounds__(lowbit_gemv::SwapTile<SwapConfig>::THREADS, 1)
    swapped_kernel(const __grid_constant__ lowbit_gemv::StageMaps maps, const unsigned short* x,
                   const unsigned char* qweight, const unsigned short* scales, const unsigned short* zeros,
                   unsigned short* y) {
  extern __shared__ __align__(1024) unsigned char shared[];
  lowbit_gemv::swapped_gemm<SwapConfig>(maps, x, qweight, scales, zeros, y, shared);
}
)CUDA";

// wgmma_shared<columns> (declared in kernel_source): one m64n{columns}k16 with both operands from
// shared memory, D accumulated.
std::string instruction_source(int columns, bool bf16) {
  const auto operands = lowbit::cuda::WgmmaGenerator::accumulator_operands(columns / 2);
  const char* type = bf16 ? "bf16" : "f16";
  return fmt::format(
      "namespace lowbit_gemv {{\n"
      "template <>\n"
      "__device__ __forceinline__ void wgmma_shared<{columns}, {is_bf16}>(float (&d)[{half}], u64 a, u64 b) {{\n"
      "  asm volatile(\"{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{one}, 0;\\n\"\n"
      "      \"wgmma.mma_async.sync.aligned.m64n{columns}k16.f32.{type}.{type} {{{registers}}}, %{a}, %{b}, p, 1, 1, 0, "
      "0;\\n}}\\n\"\n"
      "      : {outputs}\n"
      "      : \"l\"(a), \"l\"(b), \"r\"(1));\n"
      "}}\n"
      "}}  // namespace lowbit_gemv\n",
      fmt::arg("columns", columns), fmt::arg("is_bf16", bf16 ? "true" : "false"), fmt::arg("half", columns / 2),
      fmt::arg("type", type), fmt::arg("registers", operands.registers), fmt::arg("outputs", operands.outputs),
      fmt::arg("a", columns / 2), fmt::arg("b", columns / 2 + 1), fmt::arg("one", columns / 2 + 2));
}

struct SwapTileShape {
  int block_n, block_m, block_k, stages, lead, dequantizers;
  int probe = 0;  // bits: 1 no dequantization, 2 no wgmma, 4 (TMA) x alone copied (timed, not verified)
  bool tma = false;  // stages copied by the TMA engine (x by a tensor map) instead of cp.async
  bool cached_constants = false;  // group constants kept across the stages of a group
  bool weights_a = false;  // the decoded weights as A, x as B (today's roles), not swapped
  bool warp_arrivals = false;  // (TMA) the hand-over barriers count warps, not threads
  std::string name() const {
    return fmt::format("{}_n{}m{}k{}_s{}_l{}_d{}{}{}{}{}", weights_a ? "decoded" : "swapped", block_n, block_m, block_k,
                       stages, lead, dequantizers, tma ? "_tma" : "", warp_arrivals ? "_wa" : "",
                       cached_constants ? "_cc" : "",
                       probe == 0 ? std::string() : fmt::format("_probe{}", probe));
  }
  int slot_bytes(const lowbit::OpDesc& desc) const {
    const int panel_stage_bytes = desc.bits == 3 ? block_k / 16 * 96 : block_k * 2 * desc.bits;
    const int groups = desc.group_size() >= block_k ? 1 : block_k / desc.group_size();
    const int table_bytes = block_n / 16 * groups * 32;
    return (block_m * block_k * 2 + block_n * block_k * 2 + block_n / 16 * panel_stage_bytes + (table_bytes + 127) / 128 * 128 +
            table_bytes + 1023) / 1024 * 1024;
  }
  int shared_bytes(const lowbit::OpDesc& desc) const { return stages * slot_bytes(desc) + 1024 + (tma ? 3 : 2) * stages * 8; }
  int threads() const { return ((weights_a ? block_n : block_m) / 64 + dequantizers) * 128 + (tma ? 32 : 0); }
};

// Why `tile` cannot run `desc` in this prototype (empty: it can).
std::string refusal(const lowbit::OpDesc& desc, const SwapTileShape& tile) {
  if (desc.act == lowbit::DType::fp32 || desc.out != desc.act) return "act bf16 or fp16, out = act";
  if (desc.bias || desc.eqscale) return "no bias, no eqscale";
  if (desc.m % tile.block_m || desc.n % tile.block_n || desc.k % tile.block_k) return "whole tiles only";
  const int group = desc.group_size();
  if (group % tile.block_k != 0 && tile.block_k % group != 0) return "a stage inside one group or whole groups";
  if (tile.shared_bytes(desc) > 227 * 1024) return "more than 227 KiB of shared memory";
  if (tile.lead < 1 || tile.lead > tile.stages - 2) return "lead 1 .. stages - 2";
  if (tile.dequantizers < 1 || tile.dequantizers > 3) return "1 to 3 copy warpgroups";
  if (tile.probe < 0 || tile.probe > 7) return "probe 0 .. 7";
  const int consumers = (tile.weights_a ? tile.block_n : tile.block_m) / 64;
  if (consumers < 1 || consumers > 2 || (tile.weights_a ? tile.block_n : tile.block_m) % 64 != 0)
    return tile.weights_a ? "weights_a: 64 or 128 columns (a consumer warpgroup each 64)" : "64 or 128 rows";
  if (tile.block_m > 256 || tile.block_m % 16 != 0) return "at most 256 rows, a multiple of 16";
  if ((tile.probe & 4) && (!tile.tma || (tile.probe & 1) == 0)) return "probe 4 (x alone) with TMA and no decode";
  if (tile.tma && desc.bits == 3) return "TMA copies of 3-bit panels (96-byte steps) not written";
  if (tile.tma && tile.block_n / 16 > 256) return "at most 256 panels a box";
  return {};
}

std::string program_source(const lowbit::OpDesc& desc, const SwapTileShape& tile) {
  const auto& templates = lowbit::cuda::embedded_templates();
  return templates.at("gemv.cuh") + templates.at("mma_gemm.cuh") + templates.at("wgmma_gemm.cuh") +
         fmt::format("struct SwapConfig {{\n{}  static constexpr int BITS = {};\n  static constexpr int BLOCK_N = {};\n"
                     "  static constexpr int BLOCK_M = {};\n  static constexpr int BLOCK_K = {};\n"
                     "  static constexpr int STAGES = {};\n  static constexpr int LEAD = {};\n"
                     "  static constexpr int DEQUANTIZERS = {};\n  static constexpr int PROBE = {};\n"
                     "  static constexpr int TMA = {};\n  static constexpr int CACHED_CONSTANTS = {};\n"
                     "  static constexpr int WEIGHTS_A = {};\n  static constexpr int WARP_ARRIVALS = {};\n}};\n",
                     lowbit::cuda::problem_constants(desc), desc.bits, tile.block_n, tile.block_m, tile.block_k,
                     tile.stages, tile.lead, tile.dequantizers, tile.probe, tile.tma ? 1 : 0, tile.cached_constants ? 1 : 0,
                     tile.weights_a ? 1 : 0, tile.warp_arrivals ? 1 : 0) +
         kernel_source + instruction_source(tile.weights_a ? tile.block_m : tile.block_n, desc.act == lowbit::DType::bf16) +
         entry_source +
         fmt::format("static_assert(lowbit_gemv::SwapTile<SwapConfig>::SHARED_BYTES == {}, \"bench and kernel agree\");\n",
                     tile.shared_bytes(desc));
}

std::vector<SwapTileShape> parse_tiles(const std::string& text) {
  std::vector<SwapTileShape> tiles;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    SwapTileShape tile{};
    const int fields = std::sscanf(text.substr(start, end - start).c_str(), "%d:%d:%d:%d:%d:%d:%d", &tile.block_n,
                                   &tile.block_m, &tile.block_k, &tile.stages, &tile.lead, &tile.dequantizers, &tile.probe);
    if (fields != 6 && fields != 7)
      throw lowbit::Error(
          fmt::format("--tiles: '{}' is not N:M:K:STAGES:LEAD:DEQUANTIZERS[:PROBE]", text.substr(start, end - start)));
    tiles.push_back(tile);
    start = end + 1;
  }
  return tiles;
}

// A 2-D tensor map of `rows` rows of `row_elements` elements of `type` at `base`, each row `row_bytes`
// apart, whose box is box_elements x box_rows, landing with `swizzle` (NONE: row after row).
CUtensorMap rows_tensor_map(void* base, CUtensorMapDataType type, std::int64_t row_elements, std::int64_t rows,
                            std::int64_t row_bytes, int box_elements, int box_rows, CUtensorMapSwizzle swizzle) {
  const cuuint64_t dimensions[2] = {static_cast<cuuint64_t>(row_elements), static_cast<cuuint64_t>(rows)};
  const cuuint64_t row_stride[1] = {static_cast<cuuint64_t>(row_bytes)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_elements), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  CUtensorMap map;
  check(driver().cuTensorMapEncodeTiled(&map, type, 2, base, dimensions, row_stride, box, element_strides,
                                        CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
        "cuTensorMapEncodeTiled");
  return map;
}

// The TMA copy warp's four maps (the kernel's StageMaps, in its order).
struct StageMaps {
  CUtensorMap x, weights, scales, zeros;
};
StageMaps stage_maps(const lowbit::OpDesc& desc, const SwapTileShape& tile, void* x, void* qweight, void* scales,
                     void* zeros) {
  const lowbit::NativeGeometry geometry = lowbit::native_geometry(desc);
  const int panel_stage_bytes = static_cast<int>(tile.block_k / geometry.k_per_block * geometry.step_bytes);
  const int stage_groups = desc.group_size() >= tile.block_k ? 1 : tile.block_k / desc.group_size();
  StageMaps maps;
  // x ([M][K] 16-bit, row-major): a box of 64 k x block_m rows, landing 128-byte swizzled (64 k
  // of 16-bit values are one 128-byte row of the box).
  maps.x = rows_tensor_map(x, desc.act == lowbit::DType::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                           desc.k, desc.m, desc.k * 2, 64, tile.block_m, CU_TENSOR_MAP_SWIZZLE_128B);
  maps.weights = rows_tensor_map(qweight, CU_TENSOR_MAP_DATA_TYPE_UINT32, geometry.panel_bytes / 4, geometry.panels,
                                 geometry.panel_bytes, panel_stage_bytes / 4, tile.block_n / 16, CU_TENSOR_MAP_SWIZZLE_NONE);
  auto table_map = [&](void* base) {
    return rows_tensor_map(base, CU_TENSOR_MAP_DATA_TYPE_UINT16, geometry.groups * 16, geometry.panels,
                           geometry.groups * 32, stage_groups * 16, tile.block_n / 16, CU_TENSOR_MAP_SWIZZLE_NONE);
  };
  maps.scales = table_map(scales);
  maps.zeros = table_map(zeros);
  return maps;
}

void print(const nlohmann::json& row) {
  std::printf("%s\n", row.dump().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lowbit_weights_in_shared_bench: the wgmma GEMM with x as A and the weights dequantized into shared memory as B"};
  std::string descriptor;
  // Session 28's tiles that compile in every mode (--copies, --operands); a mode a tile does not fit is refused.
  std::string tiles_text = "96:128:64:6:3:2,96:128:64:6:3:3,128:128:64:6:3:2,64:256:64:4:2:1";
  int repeats = 20;
  bool compile_only = false;
  app.add_option("descriptor", descriptor, "the operator (bits 2/3/4/8, act bf16 or fp16, whole tiles)")->required();
  app.add_option("--tiles", tiles_text,
                 "tiles N:M:K:STAGES:LEAD:DEQUANTIZERS (weight columns, rows of x, k a stage, ring slots, stages copied "
                 "ahead, copy warpgroups), comma-separated");
  app.add_option("--repeats", repeats, "timed calls per kernel (the median is printed)")->check(CLI::Range(1, 1000));
  bool print_source = false;
  app.add_flag("--print-source", print_source, "print the first tile's CUDA source and stop");
  std::string copies = "both";
  app.add_option("--copies", copies, "how a stage is copied: cp_async, tma (the TMA engine), or both (each tile twice)")
      ->check(CLI::IsMember({"cp_async", "tma", "both"}));
  std::string operands = "x_a";
  app.add_option("--operands", operands,
                 "x_a (x as A, the weights as B: swapped), weights_a (the decoded weights as A, x as B), or both")
      ->check(CLI::IsMember({"x_a", "weights_a", "both"}));
  std::string arrivals = "thread";
  app.add_option("--arrivals", arrivals,
                 "(TMA) the hand-over barriers' arrivals: thread, warp (one a warp after __syncwarp), or both")
      ->check(CLI::IsMember({"thread", "warp", "both"}));
  std::string constants = "per_unit";
  app.add_option("--constants", constants,
                 "the decode's group constants: per_unit (every stage), per_group (kept across a group's stages), or "
                 "both (each tile twice)")
      ->check(CLI::IsMember({"per_unit", "per_group", "both"}));
  app.add_flag("--compile-only", compile_only, "compile every tile for sm_90a with NVRTC and stop (no GPU needed)");
  CLI11_PARSE(app, argc, argv);
  try {
    const lowbit::OpDesc desc = lowbit::parse_descriptor(descriptor);
    std::vector<SwapTileShape> tiles;
    for (SwapTileShape tile : parse_tiles(tiles_text)) {
      for (const bool tma : {false, true}) {
        if ((tma && copies == "cp_async") || (!tma && copies == "tma")) continue;
        for (const bool cached : {false, true}) {
          if ((cached && constants == "per_unit") || (!cached && constants == "per_group")) continue;
          for (const bool weights_a : {false, true}) {
            if ((weights_a && operands == "x_a") || (!weights_a && operands == "weights_a")) continue;
            for (const bool warp_arrivals : {false, true}) {
              if ((warp_arrivals && (arrivals == "thread" || !tma)) || (!warp_arrivals && arrivals == "warp" && tma))
                continue;
              tile.tma = tma;
              tile.cached_constants = cached;
              tile.weights_a = weights_a;
              tile.warp_arrivals = warp_arrivals;
              tiles.push_back(tile);
            }
          }
        }
      }
    }
    if (print_source) {
      std::printf("%s", program_source(desc, tiles.front()).c_str());
      return 0;
    }
    if (compile_only) {
      if (!lowbit::bench::nvrtc_usable()) return lowbit::bench::kMissingNvrtcExit;
      for (const SwapTileShape& tile : tiles) {
        const std::string why = refusal(desc, tile);
        if (!why.empty()) {
          std::printf("%s: refused (%s)\n", tile.name().c_str(), why.c_str());
          continue;
        }
        const auto cubin = lowbit::cuda::compile_to_cubin(program_source(desc, tile), tile.name(), "sm_90a");
        std::printf("%s: %zu bytes of cubin\n", tile.name().c_str(), cubin.size());
      }
      return 0;
    }
    lowbit::cuda::make_current(0);
    const lowbit::cuda::DeviceInfo& device = lowbit::cuda::device_info(0);
    const lowbit::Problem problem = lowbit::make_random_problem(desc, desc.m, lowbit::seed_for("weights in shared " + descriptor));
    const std::vector<double> reference = lowbit::tuner::device_reference_matmul(problem);
    DeviceBuffer weights(problem.packed.storage.size());
    weights.upload(problem.packed.storage.data(), problem.packed.storage.size());
    DeviceBuffer x(problem.x.size());
    x.upload(problem.x.data(), problem.x.size());
    DeviceBuffer y(static_cast<std::size_t>(desc.m * desc.n * lowbit::dtype_bytes(desc.out)));
    auto* base = static_cast<unsigned char*>(weights.data());
    void* qweight = base;
    void* scales = base + problem.packed.scales_offset;
    void* zeros = base + (problem.packed.zeros_offset < 0 ? problem.packed.scales_offset : problem.packed.zeros_offset);
    void* x_pointer = x.data();
    void* y_pointer = y.data();
    const double tolerance = lowbit::dequantized_weights_tolerance(desc);
    lowbit::bench::L2Flush flush(lowbit::bench::FlushMode::read);
    print({{"descriptor", lowbit::to_string(desc)}, {"device", device.name}, {"sm_count", device.sm_count},
           {"flush", "read"}, {"repeats", repeats}});

    // The registry's no-tune kernel, timed the same way.
    {
      const auto kernel = lowbit::cuda::build(desc, lowbit::cuda::heuristic(desc, device.major, device.sm_count));
      lowbit::RunArgs args;
      args.x = x.data();
      args.y = y.data();
      args.m = desc.m;
      args.weights = lowbit::view_at(problem.packed, weights.data());
      DeviceBuffer workspace(std::max<std::size_t>(kernel->workspace_bytes(desc.m), 256));
      args.workspace = workspace.data();
      args.workspace_size = workspace.size();
      y.fill(0xff);
      kernel->run(args);
      check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
      const double error = lowbit::relative_error(y.download().data(), desc.out, reference);
      const double us = flush.time([&](int) { kernel->run(args); }, 1, repeats).median_us;
      print({{"kernel", kernel->name()}, {"us", us}, {"relative_error", error}});
    }
    for (const SwapTileShape& tile : tiles) {
      const std::string why = refusal(desc, tile);
      if (!why.empty()) {
        print({{"kernel", tile.name()}, {"refused", why}});
        continue;
      }
      std::vector<char> cubin;
      try {  // a tile ptxas cannot fit (registers) is reported, and the others still run
        cubin = lowbit::cuda::compile_to_cubin(program_source(desc, tile), tile.name(), device.arch());
      } catch (const lowbit::Error& error) {
        const std::string what = error.what();
        const std::size_t fatal = what.find("ptxas fatal");
        print({{"kernel", tile.name()}, {"error", fatal == std::string::npos ? what.substr(0, 200) : what.substr(fatal, 160)}});
        continue;
      }
      const lowbit::bench::Module module(cubin);
      const CUfunction function = module.function("swapped_kernel");
      const unsigned grid_x = static_cast<unsigned>(desc.n / tile.block_n);
      const unsigned grid_y = static_cast<unsigned>(desc.m / tile.block_m);
      const unsigned shared = static_cast<unsigned>(tile.shared_bytes(desc));
      check(driver().cuFuncSetAttribute(function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(shared)),
            "cuFuncSetAttribute");
      StageMaps maps{};
      if (tile.tma) maps = stage_maps(desc, tile, x.data(), qweight, scales, zeros);
      auto run = [&] {
        std::vector<void*> args{&maps, &x_pointer, &qweight, &scales, &zeros, &y_pointer};
        check(driver().cuLaunchKernel(function, grid_x, grid_y, 1, static_cast<unsigned>(tile.threads()), 1, 1, shared,
                                      nullptr, args.data(), nullptr),
              "cuLaunchKernel");
      };
      y.fill(0xff);  // poisoned: a tile left unwritten is a NaN
      run();
      check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
      const double error = lowbit::relative_error(y.download().data(), desc.out, reference);
      if (tile.probe != 0) {  // a probe leaves out work: its output is wrong by design
        print({{"kernel", tile.name()}, {"us", flush.time([&](int) { run(); }, 1, repeats).median_us}, {"probe", tile.probe}});
        continue;
      }
      if (!(error <= tolerance)) {
        print({{"kernel", tile.name()}, {"relative_error", error}, {"tolerance", tolerance}, {"verified", false}});
        continue;
      }
      const double us = flush.time([&](int) { run(); }, 1, repeats).median_us;
      print({{"kernel", tile.name()}, {"us", us}, {"relative_error", error}, {"tolerance", tolerance},
             {"blocks", grid_x * grid_y}, {"shared_bytes", shared}});
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_weights_in_shared_bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
