// Tensor-core GEMV family for small M (1..16): 2-, 3-, 4- or 8-bit weights in lowbit's native
// layout, bf16 or fp16 activations, mma.sync m16n8k16 with fp32 accumulation. Needs gemv.cuh's
// helpers (the generator emits both). Compiled by NVRTC; codegen/cuda/gemv_generator.cpp writes
// the Config and the entry point.
//
// y^T = W x^T: the weights are the mma's A operand (16 output columns x 16 k, in registers),
// x^T is B (16 k x 8 rows of x, unused rows zero), C is [16 columns][8 rows] in fp32.
// A tile is 16 consecutive k of the panel. Lane (g = lane/4, t = lane%4) holds
//   A row g   = column 2g,   A row g+8 = column 2g+1,
//   A cols 2t, 2t+1 = the lane's first k pair;  A cols 2t+8, 2t+9 = its second k pair,
// and any assignment of the tile's 16 k to (t, pair) works as long as B row 2t (2t+1, 2t+8,
// 2t+9) is x at the same k: each format picks the one its bytes give with the fewest
// instructions (MmaFormat below). In the native layout bytes 4g..4g+3 of a 32-byte block are
// columns 2g and 2g+1, so a lane's weights are whole 4-byte words.
// Tiles stream through shared memory (cp.async), a chunk of tiles at a time.
//
// Dequantization: a code OR-ed under the exponent of a bf16/fp16 power of two is the number
// OFFSET + q, exact; products with x are exact in the fp32 accumulator. Per group:
//   y[c][m] += s[c] * (C[c][m] - (OFFSET + z[c]) * sum_k x[m][k])
// With eqscale, x * eq is formed in fp32 and fed as two 16-bit parts (hi + lo, one mma each):
// one part would round x * eq to 8 (bf16) or 11 (fp16) bits, far outside tolerance.h. With
// fp16 activations, |x * eq| above 65504 becomes infinite here (the CUDA-core family keeps
// x * eq in fp32 and has no such limit).

#include "mma_format.cuh"

namespace lowbit_gemv {

// c += A . B for one m16n8k16 tile with fp32 accumulation; A and B bf16 (or fp16) pairs.
template <bool IS_BF16>
__device__ __forceinline__ void mma_16816(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  if (IS_BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

// Bulk copies (cp.async.bulk, the TMA engine's 1-D form) exist from sm_90 on; below, a
// BULK_COPY config takes the per-lane cp.async path (the generator refuses it there anyway).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define LOWBIT_GEMV_BULK_COPY 1
#else
#define LOWBIT_GEMV_BULK_COPY 0
#endif

// One warp's barrier for one ring stage: bulk copies complete on it (transaction bytes), the
// warp waits on its phase parity.
__device__ __forceinline__ void bulk_barrier_init(u32 barrier) {
#if LOWBIT_GEMV_BULK_COPY
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(barrier));
#endif
}

// Lane-0 only: expects `bytes` of copies on the barrier (and arrives, the one arrival).
__device__ __forceinline__ void bulk_barrier_expect(u32 barrier, u32 bytes) {
#if LOWBIT_GEMV_BULK_COPY
  asm volatile("{ .reg .b64 state; mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1; }\n" ::"r"(barrier),
               "r"(bytes));
#endif
}

// `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to shared memory,
// completing on the barrier.
__device__ __forceinline__ void bulk_copy(u32 target, const void* source, u32 bytes, u32 barrier) {
#if LOWBIT_GEMV_BULK_COPY
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(target),
               "l"(source), "r"(bytes), "r"(barrier)
               : "memory");
#endif
}

__device__ __forceinline__ void bulk_barrier_wait(u32 barrier, u32 parity) {
#if LOWBIT_GEMV_BULK_COPY
  u32 done = 0;
  while (!done)
    asm volatile("{ .reg .pred ready; mbarrier.try_wait.parity.shared::cta.b64 ready, [%1], %2; selp.u32 %0, 1, 0, ready; }\n"
                 : "=r"(done)
                 : "r"(barrier), "r"(parity)
                 : "memory");
#endif
}

// Orders this thread's earlier generic-proxy accesses to shared memory before later
// async-proxy ones (a stage read by the mma's, then refilled by a bulk copy).
__device__ __forceinline__ void fence_proxy_async() {
#if LOWBIT_GEMV_BULK_COPY
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Programmatic dependent launch (sm_90 on; RunArgs::overlap_previous, CudaKernel::run): returns
// once the grids this one depends on (the stream's previous kernel) have completed and their
// memory writes are visible. Without the launch attribute there is nothing to wait for and it
// returns at once; below sm_90 it is not compiled.
__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Lets the stream's next kernel, if launched to overlap this one, start once every block of this
// grid has passed here (or exited): its blocks may take free SM slots and run what precedes their
// own wait_for_previous_grid, which still returns only once this grid has completed and its
// writes are visible. Without such a dependent it does nothing; below sm_90 it is not compiled.
__device__ __forceinline__ void let_next_grid_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// fp32 pair -> packed 16-bit pair (first value in the low half), round to nearest even.
template <bool IS_BF16>
__device__ __forceinline__ u32 pack_pair(float first, float second) {
  u32 packed;
  if (IS_BF16) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(second), "f"(first));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(second), "f"(first));
  }
  return packed;
}

template <bool IS_BF16>
__device__ __forceinline__ float unpack_element(u32 packed, int index) {
  const u16 bits = static_cast<u16>(packed >> (16 * index));
  return IS_BF16 ? bf16_to_float(bits) : half_to_float(bits);
}

// The shared memory of one block (dynamic; the generator asks for SHARED_BYTES at launch).
// Per warp and stage of the cp.async ring: the chunk's weight tiles of each of the warp's
// WARP_PANELS panels, [WARP_PANELS][CHUNK_WORDS] (Config::CHUNK_TILES, a multiple of the
// format's: each lane then issues several 16-byte copies, more bytes in flight for the same
// bookkeeping; each panel's tiles keep the one-panel layout, so a decode's word reads stay
// conflict-free) and the chunk's slice of x, shared by those panels,
// [ROWS][X_STRIDE bytes] (CHUNK_K k of each row, then 32 bytes of padding: B fragments read
// 8 bytes at 8t + 160g, which keeps a half-warp's 16 lanes on distinct banks). After the
// warps: one zero row that lanes of rows past M read instead of branching.
template <class Config>
struct GemvMmaShared {
  typedef MmaFormat<Config::BITS, Config::ACT == bf16> Format;
  static constexpr int STAGES = Config::UNROLL;
  static constexpr int CHUNK_TILES = Config::CHUNK_TILES;
  static_assert(CHUNK_TILES % Format::CHUNK_TILES == 0, "a stage is whole 16-byte copies per lane");
  static constexpr int CHUNK_K = CHUNK_TILES * 16;
  static constexpr int CHUNK_WORDS = CHUNK_TILES * Format::TILE_WORDS;  // weights of one chunk of one panel
  static constexpr int WEIGHT_WORDS = Config::WARP_PANELS * CHUNK_WORDS;  // a stage's weights, every panel
  static constexpr int X_STRIDE = CHUNK_K * 2 + 32;                     // bytes of one row of x
  static constexpr int X_WORDS = Config::X_RESIDENT ? 0 : Config::ROWS * X_STRIDE / 4;  // x of one chunk
  static constexpr int STAGE_WORDS = WEIGHT_WORDS + X_WORDS;
  // X_RESIDENT: the warp's whole slice of x, [ROWS][RESIDENT_STRIDE bytes], copied once before
  // the ring starts. A warp's k span is at most WARP_RUNS fold runs (the block's runs, split
  // over WARPS warps as in gemv_mma); the row stride is 32 bytes past a multiple of 128, which
  // keeps the B reads (8 bytes at 8t + stride * g) of a half-warp on distinct banks.
  static constexpr int GROUPS = static_cast<int>(Config::K / Config::GROUP);
  static constexpr int TILES = static_cast<int>((Config::K + 15) / 16);
  static constexpr int RUN_TILES = GROUPS == 1 ? 16 : (Config::GROUP <= 256 ? Config::GROUP : 256) / 16;
  static constexpr int RUNS = (TILES + RUN_TILES - 1) / RUN_TILES;
  static constexpr int BLOCK_RUNS = (RUNS + Config::SPLIT_K - 1) / Config::SPLIT_K;
  static constexpr int WARP_RUNS = (BLOCK_RUNS + Config::WARPS - 1) / Config::WARPS;
  static constexpr int RESIDENT_K = WARP_RUNS * RUN_TILES * 16;
  static constexpr int RESIDENT_STRIDE = (RESIDENT_K * 2 + 127) / 128 * 128 + 32;
  static constexpr int RESIDENT_WORDS = Config::X_RESIDENT ? Config::ROWS * RESIDENT_STRIDE / 4 : 0;
  static constexpr int WARP_WORDS = STAGES * STAGE_WORDS + RESIDENT_WORDS;  // [ring][resident x]
  static constexpr int ZERO_WORDS = CHUNK_K * 2 / 4;
  static constexpr int SHARED_BYTES = (Config::WARPS * WARP_WORDS + ZERO_WORDS) * 4;
};

// SPLIT_K > 1: this block's part of one panel, the warps' totals summed in warp order, no bias,
// fp32, into the workspace y: [SPLIT_K][ROWS][N], part blockIdx.y.
template <class Config, int ROW_CAPACITY>
__device__ __forceinline__ void store_split_part(const float (*partial)[ROW_CAPACITY][16], void* y, long long panel) {
  float* part = static_cast<float*>(y) + static_cast<long long>(blockIdx.y) * Config::ROWS * Config::N;
  for_each_panel_sum<Config>(partial, panel, [&](int r, long long n, float sum) { part[r * Config::N + n] = sum; });
}

// Config (generated): ROWS (1..32), N, K, BITS, GROUP, ZERO, ACT (bf16 or fp16), OUT, HAS_BIAS,
// EQSCALE, WARPS (warps per block splitting K), UNROLL (stages of the cp.async ring),
// CHUNK_TILES (16-k tiles a warp copies per stage), SPLIT_K (blocks per panel along K),
// BULK_COPY (sm_90: lane 0 fills a stage with bulk copies, weights as one copy and x as one
// per row, completing on the stage's mbarrier; else every lane issues 16-byte cp.async's),
// PANELS_PER_BLOCK (panels one block walks, blockIdx.x + i * gridDim.x: the ring runs on across
// the panel boundary, so the block's start (zero row, barriers) and the ring's fill and drain
// are paid once per block, not per panel; 1 with SPLIT_K > 1 or BULK_COPY), X_RESIDENT (x
// copied once per warp, see GemvMmaShared), PREFETCH (each warp's weight span prefetched into
// L2 when it starts; PANELS_PER_BLOCK 1), WARP_PANELS (1, 2 or 4 adjacent panels every warp
// covers over its k range: each chunk of x it copies, each B fragment it loads and each
// ones-mma's x sums then serve that many panels' A tiles, so x crosses L2 -> SM once per
// WARP_PANELS panels, not once per panel; 1 with BULK_COPY).
//
// Work split: a panel set is WARP_PANELS adjacent panels (the last set may reach past N's
// panels: those copy zeros, read the set's first panel's scales, and store nothing).
// SPLIT_K blocks per panel set (blockIdx.x the set, or the block's first of
// PANELS_PER_BLOCK, each walked in full in turn; blockIdx.y its part of K),
// each a contiguous range of fold runs (a group, at most 256 k); a block's warps take
// contiguous runs of that range, so a fold never falls inside a warp's chunk except where groups are
// shorter than a chunk, and the inner loop has no per-tile group test. Rows 0-7 of x are one
// n8 B operand, rows 8-15 a second, and so on (HALVES mma's per tile and panel: two from M = 9
// on, four from M = 25). With SPLIT_K > 1, y is the
// caller's workspace: [SPLIT_K][ROWS][N] fp32 partials without bias, summed by gemv_split_sum.
template <class Config>
__device__ __forceinline__ void gemv_mma(const void* __restrict__ x, const u32* __restrict__ qweight,
                                         const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                         const void* __restrict__ bias, const float* __restrict__ eq_scale,
                                         void* __restrict__ y, bool overlapping) {
  constexpr bool IS_BF16 = Config::ACT == bf16;
  typedef MmaFormat<Config::BITS, IS_BF16> Format;
  typedef GemvMmaShared<Config> Shared;
  constexpr int ROWS = Config::ROWS;
  constexpr int HALVES = (ROWS + 7) / 8;  // n8 B operands: rows 8h .. 8h + 7
  constexpr int WARPS = Config::WARPS;
  constexpr int STAGES = Shared::STAGES;
  // In-panel positions are 32-bit (the generator keeps K below 2^27): 64-bit index math costs
  // several instructions per operation, and this loop is issue-bound.
  constexpr int K = Config::K;
  constexpr int GROUP = Config::GROUP;
  constexpr int GROUPS = K / GROUP;
  constexpr int TILES = (K + 15) / 16;  // 16-k mma tiles per panel
  constexpr int TILE_BYTES = Format::TILE_WORDS * 4;
  // Native steps pad K to BLOCK_K only, so the panel may end inside its last tile.
  constexpr int BLOCK_K = Config::BITS == 3 ? 16 : 16 / Config::BITS;  // 32 bytes = 16 columns x BLOCK_K
  constexpr int PANEL_BYTES = (K + BLOCK_K - 1) / BLOCK_K * (Config::BITS == 3 ? 96 : 32);
  constexpr int CHUNK_TILES = Shared::CHUNK_TILES;
  constexpr int CHUNK_K = Shared::CHUNK_K;
  constexpr int CHUNK_PIECES = Shared::CHUNK_WORDS / 4;  // 16-byte copies of weights
  constexpr int X_STRIDE_WORDS = Shared::X_STRIDE / 4;
  constexpr bool SPLIT = Format::SPLIT;
  constexpr int PARTS = Config::EQSCALE ? 2 : 1;  // B as hi (+ lo) 16-bit parts
  // A fold run: a group, never more than 256 k (with fp16's offset of 1024 a whole-K group
  // makes the accumulator's partial sums large enough to cost fp32 precision: seen 1.1e-4 at
  // K=4097). group=-1 folds every 256 k with the one scale. Powers of two, as CHUNK_TILES.
  constexpr int RUN_TILES = GROUPS == 1 ? 16 : (GROUP <= 256 ? GROUP : 256) / 16;
  constexpr int RUNS = (TILES + RUN_TILES - 1) / RUN_TILES;
  // Whether a warp's tiles can end inside a chunk (else the loop has no tile test).
  constexpr bool TILE_TEST = !(RUN_TILES % CHUNK_TILES == 0 && TILES % CHUNK_TILES == 0);
  static_assert(Config::PANELS_PER_BLOCK == 1 || (Config::SPLIT_K == 1 && !Config::BULK_COPY),
                "a block walks several panels only without split-K and bulk copies (the generator refuses them)");
  static_assert(!(Config::X_RESIDENT && Config::BULK_COPY),
                "resident x is copied with cp.async (the generator keeps it off with bulk copies)");
  constexpr int P = Config::WARP_PANELS;
  static_assert(P == 1 || P == 2 || P == 4, "a warp covers 1, 2 or 4 panels");
  static_assert(P == 1 || !Config::BULK_COPY, "bulk copies fill one panel's stage (the generator refuses P > 1 there)");

  extern __shared__ __align__(16) u32 shared_words[];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int g = lane >> 2;
  const int t = lane & 3;
  // This block's panel sets: blockIdx.x, + gridDim.x, ... (PANELS_PER_BLOCK of them at most; the
  // generator launches ceil(sets / PANELS_PER_BLOCK) blocks, so counts differ by at most one).
  // With one set a block everything below folds to the single-set kernel: a general walk
  // there cost registers (63 against 46) and 12 % at M=1 on 28672x4096 (40.4 against 36.0 us).
  // `panel` and panel_of: the first panel of a set.
  constexpr bool WALK = Config::PANELS_PER_BLOCK > 1;
  constexpr int PANELS = static_cast<int>((Config::N + 15) / 16);
  constexpr int PANEL_SETS = (PANELS + P - 1) / P;
  const int walk_panels = (PANEL_SETS - 1 - static_cast<int>(blockIdx.x)) / static_cast<int>(gridDim.x) + 1;
  const int block_panels = !WALK ? 1 : walk_panels < Config::PANELS_PER_BLOCK ? walk_panels : Config::PANELS_PER_BLOCK;
  auto panel_of = [&](int step) {
    return (static_cast<long long>(blockIdx.x) + static_cast<long long>(step) * gridDim.x) * P;
  };
  // The panels of the set starting at `first` that exist (P but in the last set).
  // (Where P divides the panels every set is whole: P at compile time, so the copies' per-panel
  // tests and fallback addresses fold away.)
  auto live_panels_of = [&](long long first) {
    return P == 1 || PANELS % P == 0 || first + P <= PANELS ? P : static_cast<int>(PANELS - first);
  };
  long long panel = panel_of(0);
  const int block_first_run = RUNS * static_cast<int>(blockIdx.y) / Config::SPLIT_K;
  const int block_runs = RUNS * (static_cast<int>(blockIdx.y) + 1) / Config::SPLIT_K - block_first_run;
  const int first_run = block_first_run + block_runs * warp / WARPS;
  const int end_run = block_first_run + block_runs * (warp + 1) / WARPS;
  const int first_tile = first_run * RUN_TILES;
  const int end_tile = end_run * RUN_TILES < TILES ? end_run * RUN_TILES : TILES;
  u32* warp_ring = shared_words + warp * Shared::WARP_WORDS;  // [STAGES][weights, x]
  u32* x_resident = warp_ring + STAGES * Shared::STAGE_WORDS;  // X_RESIDENT: [ROWS][RESIDENT_STRIDE]
  u32* zero_row = shared_words + WARPS * Shared::WARP_WORDS;  // [CHUNK_K] 16-bit zeros
  for (int word = threadIdx.x; word < Shared::ZERO_WORDS; word += WARPS * 32) zero_row[word] = 0u;
  constexpr bool BULK = Config::BULK_COPY && LOWBIT_GEMV_BULK_COPY;
  __shared__ __align__(8) unsigned long long bulk_barriers[BULK ? WARPS : 1][BULK ? STAGES : 1];
  auto stage_barrier = [&](int stage) {
    return static_cast<u32>(__cvta_generic_to_shared(&bulk_barriers[BULK ? warp : 0][BULK ? stage : 0]));
  };
  if (BULK && lane == 0) {
    for (int stage = 0; stage < STAGES; ++stage) bulk_barrier_init(stage_barrier(stage));
    fence_proxy_async();  // the initialized barriers, before any bulk copy completes on them
  }
  __syncthreads();

  // Per panel of the set (first index), as one panel's: x_sum alone is shared by the set.
  float total[P][HALVES][4];   // [panel][half][column 2g, 2g+1] x [row 8h+2t, 8h+2t+1]
  float c[P][HALVES][4];       // mma accumulator of the current run
  float c_high[P][HALVES][4];  // SPLIT formats: the high fragments' accumulator
  // sum_k x[row][k] over the run, from a second mma whose A is all ones: lane (g, t) receives
  // the sums of rows 2t and 2t+1 of its half in x_sum[h][0], [1], exactly where c holds those
  // rows. The tensor cores are idle at this M; the sums cost no conversion, add or shuffle.
  // (Sums formed once per warp from resident x instead, halving the loop's mma's at M <= 8,
  // were slower: docs/benchmarks.md, "CUDA small M, sixth round".)
  float x_sum[HALVES][4];
#pragma unroll
  for (int h = 0; h < HALVES; ++h)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      x_sum[h][i] = 0.0f;
#pragma unroll
      for (int p = 0; p < P; ++p) total[p][h][i] = c[p][h][i] = c_high[p][h][i] = 0.0f;
    }
  // The ones-mma's A: four registers of 1.0 pairs. OR-ed with words of the zero row (zero, but
  // not known to ptxas) they stay live across the loop; as constants ptxas rebuilt them before
  // every chunk's ones-mma's (4 IMAD.MOV a chunk), the value mma's having taken their registers.
  constexpr u32 ONES = IS_BF16 ? 0x3f803f80u : 0x3c003c00u;
  u32 ones[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) ones[i] = ONES | zero_row[i];
  int run = first_run;
  // The run's scales and zero points, loaded when the run starts so the load's latency hides
  // behind the run's mma's: [panel of the set][columns 2g, 2g+1] as two fp16 each.
  u32 scale_pair[P] = {};
  u32 zero_pair[P] = {};
  // The set's panels that exist (set_panel_tables): the rest read the first panel's tables.
  int table_panels = 1;
  // The lane's pairs of the panel's first group (64-bit, once a panel: set_panel_tables); a
  // run's group is then a 32-bit word index (the 64-bit form of the whole index cost 20
  // instructions a fold in the SASS, the per-fold panel start 10).
  const u32* scale_words = nullptr;
  const u32* zero_words = nullptr;
  // Where groups are at most 256 k a run is one group: the pointers then start at the warp's first
  // run and advance a group (8 words) a run. Loop-carried, ptxas keeps them; rebuilt from the
  // panel at every fold they cost 10 instructions there.
  constexpr bool RUN_IS_GROUP = GROUPS > 1 && GROUP <= 256;
  auto set_panel_tables = [&]() {
    const long long panel_table = panel * (GROUPS * 16) + 2 * g + (RUN_IS_GROUP ? first_run * 16 : 0);
    scale_words = reinterpret_cast<const u32*>(scales + panel_table);
    if (Config::ZERO != zero_none) zero_words = reinterpret_cast<const u32*>(zeros + panel_table);
    table_panels = live_panels_of(panel);
  };
  // The set's panels' tables are GROUPS * 8 words apart (one panel's [GROUPS][16] fp16).
  auto load_group_tables = [&]() {
    const int group = RUN_IS_GROUP || GROUPS == 1 ? 0 : run * RUN_TILES * 16 / GROUP;
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const int word = group * 8 + (p < table_panels ? p * GROUPS * 8 : 0);
      scale_pair[p] = scale_words[word];
      if (Config::ZERO != zero_none) zero_pair[p] = zero_words[word];
    }
  };
  auto next_group_tables = [&]() {
    ++run;
    if (RUN_IS_GROUP) {
      scale_words += 8;
      if (Config::ZERO != zero_none) zero_words += 8;
    }
    load_group_tables();
  };

  // Folds the run's accumulators into the totals, every panel of the set with the one x_sum.
  // Register contract: reads c, c_high, x_sum, scale_pair, zero_pair; writes total; clears c,
  // c_high and x_sum.
  auto fold_group = [&]() {
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const float scale0 = half_to_float(static_cast<u16>(scale_pair[p]));
      const float scale1 = half_to_float(static_cast<u16>(scale_pair[p] >> 16));
      float zero0 = 1 << (Config::BITS - 1);  // zero=none: implicit 2^(bits-1)
      float zero1 = 1 << (Config::BITS - 1);
      if (Config::ZERO != zero_none) {
        zero0 = half_to_float(static_cast<u16>(zero_pair[p]));
        zero1 = half_to_float(static_cast<u16>(zero_pair[p] >> 16));
      }
#pragma unroll
      for (int h = 0; h < HALVES; ++h) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          if (SPLIT) c[p][h][i] = fmaf(Format::HIGH_WEIGHT, c_high[p][h][i], c[p][h][i]);
          c_high[p][h][i] = 0.0f;
        }
        total[p][h][0] = fmaf(scale0, fmaf(-(Format::OFFSET + zero0), x_sum[h][0], c[p][h][0]), total[p][h][0]);
        total[p][h][1] = fmaf(scale0, fmaf(-(Format::OFFSET + zero0), x_sum[h][1], c[p][h][1]), total[p][h][1]);
        total[p][h][2] = fmaf(scale1, fmaf(-(Format::OFFSET + zero1), x_sum[h][0], c[p][h][2]), total[p][h][2]);
        total[p][h][3] = fmaf(scale1, fmaf(-(Format::OFFSET + zero1), x_sum[h][1], c[p][h][3]), total[p][h][3]);
#pragma unroll
        for (int i = 0; i < 4; ++i) c[p][h][i] = 0.0f;
      }
    }
#pragma unroll
    for (int h = 0; h < HALVES; ++h)
#pragma unroll
      for (int i = 0; i < 4; ++i) x_sum[h][i] = 0.0f;
  };

  // Weights and x stream through shared memory: each warp copies a chunk (CHUNK_TILES tiles,
  // contiguous bytes, 16 per lane, and the chunk's CHUNK_K k of every row of x) with cp.async
  // into a ring of STAGES stages, STAGES - 1 chunks ahead of the mma's, so many 16-byte loads
  // are in flight while only 4- and 8-byte words feed the fragments, and neither latency is
  // waited for inside a chunk.
  auto panel_bytes_of = [&](long long of) {
    return reinterpret_cast<const unsigned char*>(qweight) + of * PANEL_BYTES;
  };
  // Asks L2 for the warp's weight span of each panel of the first set from its first tile on,
  // at most `limit` bytes of it a panel (one prefetch a 128-byte line, spread over the lanes).
  // A hint: correctness never depends on it.
  auto prefetch_weights = [&](int limit) {
    if (first_tile >= end_tile) return;
    const int span_end = end_tile * TILE_BYTES < PANEL_BYTES ? end_tile * TILE_BYTES : PANEL_BYTES;
    const int span = span_end - first_tile * TILE_BYTES;
    const int live = live_panels_of(panel);
    for (int p = 0; p < live; ++p) {
      const unsigned long long begin =
          reinterpret_cast<unsigned long long>(panel_bytes_of(panel + p) + first_tile * TILE_BYTES);
      const unsigned long long end = begin + (span < limit ? span : limit);
      for (unsigned long long line = (begin & ~127ull) + 128ull * lane; line < end; line += 32 * 128)
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(line));
    }
  };
  // PREFETCH: the warp's whole span at once, before the ring starts, so DRAM streams the block's
  // bytes while the ring's copies and the decode follow behind, hitting L2.
  if (Config::PREFETCH) prefetch_weights(PANEL_BYTES);
  const u16* x_rows = static_cast<const u16*>(x);
  // 16-byte copies of x need 16-byte aligned rows; otherwise each lane loads 16-bit values and
  // stores pairs (a slower path for odd K or offset x, same results).
  const bool x_copies = K % 8 == 0 && (reinterpret_cast<unsigned long long>(x) & 15) == 0;
  const int chunks = (end_tile - first_tile + CHUNK_TILES - 1) / CHUNK_TILES;
  // Bulk copies: lane 0 copies the chunk's weights (clamped to the panel) and, when x_copies,
  // each row's slice of x (clamped to K) and expects their bytes on the stage's barrier; lanes
  // zero what lies past the panel or past K (generic stores, seen after the __syncwarp that
  // follows the wait).
  auto issue_bulk_chunk = [&](u32* stage, int stage_index, int tile0, const unsigned char* panel_bytes) {
    constexpr int CHUNK_BYTES = Shared::CHUNK_WORDS * 4;
    const int byte0 = tile0 * TILE_BYTES;
    const int weight_bytes = PANEL_BYTES - byte0 < CHUNK_BYTES ? PANEL_BYTES - byte0 : CHUNK_BYTES;
    for (int word = weight_bytes / 4 + lane; word < Shared::CHUNK_WORDS; word += 32) stage[word] = 0u;
    u32* x_stage = stage + Shared::WEIGHT_WORDS;  // [ROWS][X_STRIDE_WORDS] (one panel: CHUNK_WORDS on)
    const int k0 = tile0 * 16;
    const int x_k = K - k0 < CHUNK_K ? K - k0 : CHUNK_K;  // x_copies: a multiple of 8
    if (x_copies && x_k < CHUNK_K)
      for (int index = lane; index < ROWS * (CHUNK_K - x_k) / 2; index += 32)
        x_stage[index / ((CHUNK_K - x_k) / 2) * X_STRIDE_WORDS + x_k / 2 + index % ((CHUNK_K - x_k) / 2)] = 0u;
    if (lane == 0) {
      const u32 barrier = stage_barrier(stage_index);
      fence_proxy_async();  // this stage's earlier reads (generic) before the copies' writes
      bulk_barrier_expect(barrier, weight_bytes + (x_copies ? ROWS * x_k * 2 : 0));
      bulk_copy(static_cast<u32>(__cvta_generic_to_shared(stage)), panel_bytes + byte0, weight_bytes, barrier);
      if (x_copies)
        for (int r = 0; r < ROWS; ++r)
          bulk_copy(static_cast<u32>(__cvta_generic_to_shared(x_stage + r * X_STRIDE_WORDS)),
                    x_rows + static_cast<long long>(r) * K + k0, x_k * 2, barrier);
    }
  };
  // The ring runs across the block's panels: the q-th call issues the q-th chunk in (panel
  // step, chunk of the panel) order, the walk tracked incrementally (no division), into stage
  // q % STAGES; calls past the last chunk commit empty groups. One panel: q is the chunk.
  int issue_count = 0;        // calls so far (q)
  int issue_step = 0;         // WALK: panel step of the next chunk
  int issue_chunk_index = 0;  // WALK: its chunk within that panel
  // The lane's first 16-byte weight copy of the next chunk (its piece `lane`; piece lane + 32 i
  // is 512 i bytes on), and that copy's in-panel byte offset: advanced by a chunk per call and
  // reset only where a walk moves to its next panel, so a chunk costs no 64-bit address math.
  // Only where a chunk can reach past the panel (CLAMP) is the offset tested; copies there are
  // zero-filled. Without TILE_TEST every chunk lies inside the warp's whole tiles, so only a
  // panel whose last tile is partial can be reached past.
  constexpr int CHUNK_BYTES = CHUNK_TILES * TILE_BYTES;
  constexpr bool CLAMP = TILE_TEST || TILES * TILE_BYTES > PANEL_BYTES;
  const unsigned char* issue_source = panel_bytes_of(panel) + first_tile * TILE_BYTES + 16 * lane;
  int issue_byte = first_tile * TILE_BYTES + 16 * lane;
  // x in the ring, 16-byte copies: lane copies piece lane + 32 i of the chunk's [ROWS][CHUNK_K / 8]
  // pieces, i.e. column x_column of row x_row0 + i * X_ROW_STEP (a row's pieces divide 32). Its
  // source advances a chunk per call like the weights' (reset where a walk moves on: x is the
  // same for every panel); only where a chunk can reach past K (X_CLAMP) is its k tested.
  constexpr int X_ROW_PIECES = CHUNK_K / 8;  // 16 bytes = 8 k
  constexpr int X_PIECES = ROWS * X_ROW_PIECES;
  constexpr int X_ROW_STEP = 32 / X_ROW_PIECES;
  static_assert(32 % X_ROW_PIECES == 0, "a chunk's row of x is 4, 8, 16 or 32 copies");
  constexpr bool X_CLAMP = TILE_TEST || TILES * 16 > K;
  const int x_row0 = lane / X_ROW_PIECES;
  const int x_column = lane % X_ROW_PIECES;
  const u16* x_issue_source = x_rows + static_cast<long long>(x_row0) * K + first_tile * 16 + x_column * 8;
  int x_issue_k = first_tile * 16 + x_column * 8;
  // The lane's weight and x copy targets in the next call's stage (slot issue_count % STAGES),
  // advanced a stage per call and wrapped at the ring's end. Loop-carried, ptxas keeps them in
  // registers; as a slot offset from a loop-invariant base it rebuilt that base from the thread
  // index in every chunk (7 instructions).
  constexpr u32 STAGE_BYTES = Shared::STAGE_WORDS * 4;
  const u32 ring_target = static_cast<u32>(__cvta_generic_to_shared(warp_ring));
  u32 issue_target = ring_target + 16 * lane;
  u32 x_issue_target = ring_target + Shared::WEIGHT_WORDS * 4 + x_row0 * Shared::X_STRIDE + x_column * 16;
  auto issue_chunk = [&]() {
    const bool live = WALK ? chunks > 0 && issue_step < block_panels : issue_count < chunks;
    const int chunk = WALK ? issue_chunk_index : issue_count;
    const int slot = issue_count % STAGES;
    const unsigned char* panel_bytes = panel_bytes_of(WALK ? panel_of(issue_step) : panel);
    // The set's panels that exist: the others' copies are zero-filled (from a valid address).
    const int issue_panels = live_panels_of(WALK ? panel_of(issue_step) : panel);
    ++issue_count;
    bool next_panel = false;
    if (WALK && live && ++issue_chunk_index == chunks) {
      issue_chunk_index = 0;
      ++issue_step;
      next_panel = true;
    }
    if (BULK && live) {
      issue_bulk_chunk(warp_ring + slot * Shared::STAGE_WORDS, slot, first_tile + chunk * CHUNK_TILES, panel_bytes);
      if (x_copies) return;
    }
    if (live) {
      u32* stage = warp_ring + slot * Shared::STAGE_WORDS;
      const int tile0 = first_tile + chunk * CHUNK_TILES;
#pragma unroll
      for (int i = 0; i < (BULK ? 0 : (CHUNK_PIECES + 31) / 32); ++i) {
        if (CHUNK_PIECES % 32 != 0 && lane + 32 * i >= CHUNK_PIECES) break;  // 3-bit: 24 lanes copy
        const bool inside = !CLAMP || issue_byte + 512 * i + 16 <= PANEL_BYTES;
        // Panel p of the set: the same in-panel bytes, PANEL_BYTES further per panel; its stage
        // slot CHUNK_WORDS further.
#pragma unroll
        for (int p = 0; p < P; ++p) {
          const int valid = inside && (P == 1 || p < issue_panels) ? 16 : 0;
          const u32 target = issue_target + p * Shared::CHUNK_WORDS * 4 + 512 * i;
          asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(target),
                       "l"(valid ? issue_source + static_cast<long long>(p) * PANEL_BYTES + 512 * i : panel_bytes),
                       "r"(valid));
        }
      }
      issue_source += CHUNK_BYTES;
      issue_byte += CHUNK_BYTES;
      if (WALK && next_panel) {
        issue_source = panel_bytes_of(panel_of(issue_step)) + first_tile * TILE_BYTES + 16 * lane;
        issue_byte = first_tile * TILE_BYTES + 16 * lane;
      }
      u32* x_stage = stage + Shared::WEIGHT_WORDS;  // [ROWS][X_STRIDE_WORDS]
      const int k0 = tile0 * 16;
      if (Config::X_RESIDENT) {
        // x is already in shared memory (copy_resident_x)
      } else if (x_copies) {
#pragma unroll
        for (int i = 0; i < (X_PIECES + 31) / 32; ++i) {
          if (X_PIECES % 32 != 0 && lane + 32 * i >= X_PIECES) break;  // rows past M: no copy
          const int valid = !X_CLAMP || x_issue_k < K ? 16 : 0;  // K % 8 == 0: all inside or all past K
          asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(x_issue_target + i * X_ROW_STEP * Shared::X_STRIDE),
                       "l"(valid ? x_issue_source + static_cast<long long>(i * X_ROW_STEP) * K : x_rows), "r"(valid));
        }
        x_issue_source += CHUNK_K;
        x_issue_k += CHUNK_K;
        if (WALK && next_panel) {
          x_issue_source -= chunks * CHUNK_K;
          x_issue_k -= chunks * CHUNK_K;
        }
      } else {
        constexpr int PAIRS = ROWS * CHUNK_K / 2;
        for (int index = lane; index < PAIRS; index += 32) {
          const int r = index / (CHUNK_K / 2);
          const int k = k0 + index % (CHUNK_K / 2) * 2;
          const u32 low = k < K ? x_rows[static_cast<long long>(r) * K + k] : 0u;
          const u32 high = k + 1 < K ? x_rows[static_cast<long long>(r) * K + k + 1] : 0u;
          x_stage[r * X_STRIDE_WORDS + (k - k0) / 2] = low | high << 16;
        }
      }
    }
    const u32 advance = slot == STAGES - 1 ? 0u - (STAGES - 1) * STAGE_BYTES : STAGE_BYTES;
    issue_target += advance;
    x_issue_target += advance;
    asm volatile("cp.async.commit_group;\n" ::);  // an empty group keeps the count uniform
  };
  // X_RESIDENT: the warp's slice of x, k = first_tile * 16 + i for i < RESIDENT_K, zero past K;
  // its copies join the first chunk's commit group, so the first wait covers them.
  auto copy_resident_x = [&]() {
    constexpr int STRIDE_WORDS = Shared::RESIDENT_STRIDE / 4;
    constexpr int SPAN_K = Shared::RESIDENT_K;
    const int k0 = first_tile * 16;
    if (x_copies) {
      constexpr int PIECES = ROWS * SPAN_K / 8;  // 16 bytes = 8 k
      for (int piece = lane; piece < PIECES; piece += 32) {
        const int r = piece / (SPAN_K / 8);
        const int offset = piece % (SPAN_K / 8) * 8;
        const int k = k0 + offset;
        const int valid = k < K ? 16 : 0;  // K % 8 == 0: a piece is all inside or all past K
        const u32 target = static_cast<u32>(__cvta_generic_to_shared(x_resident + r * STRIDE_WORDS + offset / 2));
        asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(target),
                     "l"(x_rows + (valid ? static_cast<long long>(r) * K + k : 0)), "r"(valid));
      }
    } else {
      constexpr int PAIRS = ROWS * SPAN_K / 2;
      for (int index = lane; index < PAIRS; index += 32) {
        const int r = index / (SPAN_K / 2);
        const int offset = index % (SPAN_K / 2) * 2;
        const int k = k0 + offset;
        const u32 low = k < K ? x_rows[static_cast<long long>(r) * K + k] : 0u;
        const u32 high = k + 1 < K ? x_rows[static_cast<long long>(r) * K + k + 1] : 0u;
        x_resident[r * STRIDE_WORDS + offset / 2] = low | high << 16;
      }
    }
  };
  // Up to here only the weights' addresses and shared memory were touched; from here on x,
  // eq_scale, bias and y (or the workspace) are. A launch overlapping the stream's previous
  // kernel (`overlapping`: RunArgs::overlap_previous) waits for it here, and meanwhile has L2
  // fetch the first 2 STAGES chunks of the warp's weights, which the ring then finds there (the
  // weights are the caller's promise: not written by that kernel). Only then: on a lone launch
  // the hints cost 3-10 % on the H100 (M <= 16, docs/benchmarks.md "overlapping calls"), the
  // ring's own copies asking for the same lines at once. (PREFETCH asked for the whole span above.)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (overlapping && !Config::PREFETCH) prefetch_weights(2 * STAGES * CHUNK_BYTES);
#endif
  wait_for_previous_grid();
  if (Config::X_RESIDENT) copy_resident_x();
#pragma unroll
  for (int stage = 0; stage < STAGES - 1; ++stage) issue_chunk();

  // [WARPS][8 * HALVES rows][16 columns] fp32: each warp's totals of the current panel (C's 8 columns
  // are x's rows).
  __shared__ float partial[WARPS][8 * HALVES][16];
  // x_row's start and per-chunk (resident) or per-slot step, once: a lane of a row past M
  // reads the zero row at every chunk.
  const u32* x_base[HALVES];
  int x_step[HALVES];
#pragma unroll
  for (int h = 0; h < HALVES; ++h) {
    const bool row_live = 8 * h + g < ROWS;
    x_base[h] = !row_live ? zero_row
                : Config::X_RESIDENT ? x_resident + (8 * h + g) * (Shared::RESIDENT_STRIDE / 4)
                                     : warp_ring + Shared::WEIGHT_WORDS + (8 * h + g) * X_STRIDE_WORDS;
    x_step[h] = !row_live ? 0 : Config::X_RESIDENT ? CHUNK_K / 2 : Shared::STAGE_WORDS;
  }
  int consumed = 0;  // chunks taken out of the ring so far, over every panel
  for (int step = 0; step < block_panels; ++step) {
    panel = panel_of(step);
    run = first_run;
    set_panel_tables();
    if (first_tile < end_tile) load_group_tables();
    for (int chunk = 0; chunk < chunks; ++chunk, ++consumed) {
      issue_chunk();  // STAGES - 1 chunks ahead, across the panel boundary
      asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 1));  // chunk `consumed` has landed
      if (BULK) bulk_barrier_wait(stage_barrier(consumed % STAGES), (consumed / STAGES) & 1);
      __syncwarp();
      const int slot = consumed % STAGES;
      const u32* stage = warp_ring + slot * Shared::STAGE_WORDS;
      // Each half's x rows for this lane: row 8h + g of the chunk's slice (x_base + chunk or
      // slot times x_step), or the zero row (x_step 0).
      const u32* x_row[HALVES];
#pragma unroll
      for (int h = 0; h < HALVES; ++h) x_row[h] = x_base[h] + (Config::X_RESIDENT ? chunk : slot) * x_step[h];
#pragma unroll
      for (int j = 0; j < CHUNK_TILES; ++j) {
        const int tile = first_tile + chunk * CHUNK_TILES + j;
        if (TILE_TEST && tile >= end_tile) break;  // warp-uniform
        // A new run starts at this tile: fold the last one. Runs and chunks are powers of two
        // and warps start on a run, so the test is on compile-time j where it can be.
        const bool run_starts = CHUNK_TILES >= RUN_TILES ? j % RUN_TILES == 0
                                                           : j == 0 && (chunk * CHUNK_TILES) % RUN_TILES == 0;
        if (run_starts && (chunk > 0 || j > 0)) {
          fold_group();
          next_group_tables();
        }
        // B: x[row][k] at lane t's two k pairs, 16-bit pairs; [half][part][pair].
        u32 b[HALVES][PARTS][2];
#pragma unroll
        for (int h = 0; h < HALVES; ++h) {
          u32 pairs[2];
          if (Format::CONTIGUOUS_PAIRS) {
            const uint2 both = *reinterpret_cast<const uint2*>(x_row[h] + (j * 16 + Format::x_pair(t, 0)) / 2);
            pairs[0] = both.x;
            pairs[1] = both.y;
          } else {
#pragma unroll
            for (int p = 0; p < 2; ++p) pairs[p] = x_row[h][(j * 16 + Format::x_pair(t, p)) / 2];
          }
#pragma unroll
          for (int p = 0; p < 2; ++p) {
            if (Config::EQSCALE) {
              // x * eq in fp32, then hi = round16(x * eq), lo = round16(x * eq - hi).
              const int k = tile * 16 + Format::x_pair(t, p);
              const float eq0 = k < K ? eq_scale[k] : 0.0f;
              const float eq1 = k + 1 < K ? eq_scale[k + 1] : 0.0f;
              const float value0 = unpack_element<IS_BF16>(pairs[p], 0) * eq0;
              const float value1 = unpack_element<IS_BF16>(pairs[p], 1) * eq1;
              const u32 hi = pack_pair<IS_BF16>(value0, value1);
              b[h][0][p] = hi;
              b[h][PARTS - 1][p] = pack_pair<IS_BF16>(value0 - unpack_element<IS_BF16>(hi, 0),
                                                       value1 - unpack_element<IS_BF16>(hi, 1));
            } else {
              b[h][0][p] = pairs[p];
            }
          }
        }
        // The one B (x) against each panel's A tile; x's sums once for the set.
#pragma unroll
        for (int p = 0; p < P; ++p) {
          u32 a[4];
          u32 a_high[4];
          Format::decode(stage + p * Shared::CHUNK_WORDS + j * Format::TILE_WORDS, g, t, a, a_high);
#pragma unroll
          for (int h = 0; h < HALVES; ++h)
#pragma unroll
            for (int part = 0; part < PARTS; ++part) {
              mma_16816<IS_BF16>(c[p][h], a[0], a[1], a[2], a[3], b[h][part][0], b[h][part][1]);
              if (SPLIT)
                mma_16816<IS_BF16>(c_high[p][h], a_high[0], a_high[1], a_high[2], a_high[3], b[h][part][0],
                                   b[h][part][1]);
            }
        }
#pragma unroll
        for (int h = 0; h < HALVES; ++h)
#pragma unroll
          for (int part = 0; part < PARTS; ++part)
            mma_16816<IS_BF16>(x_sum[h], ones[0], ones[1], ones[2], ones[3], b[h][part][0], b[h][part][1]);
      }
      __syncwarp();  // every lane has read this stage before a later chunk refills it
    }
    // The block's weights are all read: an overlapping next call may start (its lead into L2 then
    // fills this grid's tail, not its stream). Measured on the H100 back to back (docs/benchmarks.md,
    // "overlapping calls"): up to 4 rows this took a further 0.2-0.8 us off a call; from 8 rows
    // on it cost 10-22 % on 4096x14336 (at the block's start, 16-33 %), so there the next call
    // starts only when this grid's blocks exit, as without the trigger. Not profiled.
    if (ROWS <= 4 && step + 1 == block_panels) let_next_grid_start();
    if (first_tile < end_tile) fold_group();

    // The set's panels one at a time through `partial` (columns past N, and so panels past the
    // last, are skipped by the stores).
#pragma unroll
    for (int p = 0; p < P; ++p) {
#pragma unroll
      for (int h = 0; h < HALVES; ++h) {
        partial[warp][8 * h + 2 * t][2 * g] = total[p][h][0];
        partial[warp][8 * h + 2 * t + 1][2 * g] = total[p][h][1];
        partial[warp][8 * h + 2 * t][2 * g + 1] = total[p][h][2];
        partial[warp][8 * h + 2 * t + 1][2 * g + 1] = total[p][h][3];
#pragma unroll
        for (int i = 0; i < 4; ++i) total[p][h][i] = 0.0f;
      }
      __syncthreads();
      if (Config::SPLIT_K == 1) {
        store_panel<Config, 8 * HALVES>(partial, bias, y, panel + p);
      } else {
        store_split_part<Config, 8 * HALVES>(partial, y, panel + p);
      }
      if (p + 1 < P || step + 1 < block_panels) __syncthreads();  // partial read before the next panel's totals
    }
  }
  asm volatile("cp.async.wait_group 0;\n" ::);  // only empty groups are left: nothing in flight at exit
}

// The second kernel of a split (SPLIT_K > 1): y[r][n] = sum over the parts in part order + bias,
// one thread per output. A fixed order and no atomics: the same bits on every run.
template <class Config>
__device__ __forceinline__ void gemv_split_sum(const float* __restrict__ partials, const void* __restrict__ bias,
                                               void* __restrict__ y) {
  constexpr long long OUTPUTS = Config::ROWS * Config::N;
  const long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= OUTPUTS) return;
  float total = 0.0f;
#pragma unroll
  for (int part = 0; part < Config::SPLIT_K; ++part) total += partials[part * OUTPUTS + index];
  if (Config::HAS_BIAS) total += load_element<Config::ACT>(bias, index % Config::N);
  store_element<Config::OUT>(y, index, total);
}

}  // namespace lowbit_gemv
