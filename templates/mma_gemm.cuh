// Tensor-core GEMM family for medium M (up to a few hundred rows): 2-, 3-, 4- or 8-bit weights
// in lowbit's native layout, bf16 or fp16 activations, mma.sync m16n8k16 with fp32
// accumulation, a multi-stage cp.async pipeline in shared memory and dequantization in
// registers. Needs gemv.cuh's conversion helpers (the generator emits both) and
// mma_format.cuh's per-width decode (inlined below by the build). Compiled by NVRTC;
// codegen/cuda/mma_generator.cpp writes the Config and the entry point.
//
// y^T = W x^T, as in gemv_mma_int4.cuh: the weights are the mma's A operand (16 output
// columns x 16 k), x^T is B (16 k x 8 rows of x), C is [16 columns][8 rows] in fp32.
//
// Operand labelling. B comes from ldmatrix on the x tile in shared memory ([rows][k], k
// contiguous), so lane (g = lane/4, t = lane%4) holds x[row g][k 2t, 2t+1] in b0 and
// x[row g][k 8+2t, 9+2t] in b1: the mma's own k order. A must then hold, for the same k, the
// weights of the column its row stands for. A row g stands for panel column 2g, row g+8 for
// column 2g+1, so both columns of A's lane come from one 4-byte word of the native layout:
//   word g of step s (bytes 4g..4g+3) = [column 2g even k, column 2g odd k,
//                                        column 2g+1 even k, column 2g+1 odd k],
//   low nibbles k = 4s, 4s+1; high nibbles k = 4s+2, 4s+3 (docs/layout.md).
// k pair (2t, 2t+1) of a 16-k tile lies in step t/2, nibble t%2; pair (8+2t, 9+2t) in step
// 2+t/2, same nibble. So a0, a1 come from word g of step t/2 and a2, a3 from step 2+t/2.
//
// Dequantization: a nibble OR-ed into 0x4300 (bf16) or 0x6400 (fp16) is the number MAGIC + q
// (128 + q, 1024 + q), exact. One packed fma then subtracts MAGIC + z (zero=int, and
// zero=none with its implicit z = 8): q - z, a small integer, exact in bf16/fp16, so every
// product in the accumulator is exact and no sum of x is needed. zero=float (z not an integer)
// subtracts MAGIC only and keeps the sum of x per group from a second mma with an all-ones A:
//   y[c][m] += s[c] * (sum_k x[m][k] (q - z)) = s[c] * (C[c][m] - z[c] * sum_k x[m][k]).
// Scales are applied per group to an fp32 group accumulator (one fma per element and group).
//
// Other widths (2, 3, 8 bits): MmaFormat<BITS> decodes each tile into MAGIC + q (its OFFSET) (the k
// order its x_pair gives) and the same packed fma subtracts MAGIC + z: q - z, exact, the
// scale and zero=float as above. 8-bit bf16 decodes two nibble fragments (bf16 holds 8
// significant bits, 2^n + q is not exact for 8-bit q); they are combined before the mma:
// q - z = (low - z % 16) + 16 (high - z / 16), every term and the sum exact in bf16 (|q - z| <=
// 255), so one mma per tile as for the other widths. B: the 8-bit order is the mma's own
// (x_pair(t, p) = 2t + 8p), read with ldmatrix as int4; 2- and 3-bit take k 4t .. 4t+3 (pairs
// contiguous), one 8-byte load per row tile from a tile whose pitch keeps them conflict-free.
//
// eqscale=1: y = sum_k x[k] eq[k] W[k]. x * eq is formed in fp32 from the B registers and fed
// as two 16-bit parts (hi = round16(x eq), lo = round16(x eq - hi), one mma each), as in
// gemv_mma.cuh: one part would round x * eq to 8 (bf16) or 11 (fp16) bits, outside
// tolerance.h. eq goes through the pipeline with x ([BLOCK_K] fp32 per stage). With fp16
// activations, |x * eq| above 65504 becomes infinite here.

#include "mma_format.cuh"

namespace lowbit_gemv {

// c += A . B for one m16n8k16 tile with fp32 accumulation; A and B bf16 (or fp16) pairs.
template <bool IS_BF16>
__device__ __forceinline__ void mma_m16n8k16(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  if (IS_BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// a * 1 + b on two bf16 (or fp16) lanes, rounded to nearest: here always exact (small integers).
template <bool IS_BF16>
__device__ __forceinline__ u32 add_pair(u32 a, u32 b) {
  u32 result;
  if (IS_BF16) {
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(result) : "r"(a), "r"(0x3f803f80u), "r"(b));
  } else {
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(result) : "r"(a), "r"(0x3c003c00u), "r"(b));
  }
  return result;
}

// a * 16 + b on two bf16 lanes (the 8-bit high nibbles), rounded to nearest: exact here.
__device__ __forceinline__ u32 sixteen_times_plus_pair(u32 a, u32 b) {
  u32 result;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(result) : "r"(a), "r"(0x41804180u), "r"(b));
  return result;
}

// fp32 -> bf16 (or fp16) bits, round to nearest even.
template <bool IS_BF16>
__device__ __forceinline__ u32 float_to_act(float value) {
  return IS_BF16 ? float_to_bf16(value) : float_to_half(value);
}

// eqscale: a B register (x at two k) times eq at those k, as hi + lo 16-bit pairs (the file's
// head says why two). Register contract: reads pair, eq; writes hi, lo.
template <bool IS_BF16>
__device__ __forceinline__ void scale_pair(u32 pair, float2 eq, u32& hi, u32& lo) {
  const float value0 = (IS_BF16 ? bf16_to_float(static_cast<u16>(pair)) : half_to_float(static_cast<u16>(pair))) * eq.x;
  const float value1 =
      (IS_BF16 ? bf16_to_float(static_cast<u16>(pair >> 16)) : half_to_float(static_cast<u16>(pair >> 16))) * eq.y;
  const u32 hi0 = float_to_act<IS_BF16>(value0);
  const u32 hi1 = float_to_act<IS_BF16>(value1);
  const float rest0 = value0 - (IS_BF16 ? bf16_to_float(static_cast<u16>(hi0)) : half_to_float(static_cast<u16>(hi0)));
  const float rest1 = value1 - (IS_BF16 ? bf16_to_float(static_cast<u16>(hi1)) : half_to_float(static_cast<u16>(hi1)));
  hi = hi0 | hi1 << 16;
  lo = float_to_act<IS_BF16>(rest0) | float_to_act<IS_BF16>(rest1) << 16;
}

// 16 bytes global -> shared, asynchronously; bytes past `valid` (0..16) are zero-filled.
// CACHE_IN_L1: the blocks of one SM read the same x at nearly the same k (they start
// together), so x goes through L1 (.ca) and most of its re-reads stay off L2; weights are
// read once per block and bypass L1 (.cg).
template <bool CACHE_IN_L1 = false>
__device__ __forceinline__ void copy_16_async(void* shared_target, const void* global_source, int valid) {
  const u32 target = static_cast<u32>(__cvta_generic_to_shared(shared_target));
  if (CACHE_IN_L1) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(target), "l"(global_source), "r"(valid));
  } else {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(target), "l"(global_source), "r"(valid));
  }
}

// Four 8x8 b16 matrices from shared memory; lane l gives the address of row l%8 of matrix l/8.
__device__ __forceinline__ void ldmatrix_x4(u32 (&fragment)[4], const void* shared_row) {
  const u32 address = static_cast<u32>(__cvta_generic_to_shared(shared_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(fragment[0]), "=r"(fragment[1]), "=r"(fragment[2]), "=r"(fragment[3])
               : "r"(address));
}

// Config (generated): M (0: any M, the rows given per launch as `rows`), N, K, GROUP (K for
// group=-1), WHOLE_K_GROUP, ZERO, ACT (bf16 or fp16),
// OUT, HAS_BIAS, BITS (2, 3, 4 or 8), EQSCALE; the tile: BLOCK_N (columns, a multiple of 16), BLOCK_M (rows), BLOCK_K (k per
// pipeline stage), STAGES, and the warp layout WARPS_N x WARPS_M x WARPS_K (warps along N,
// along M, and splitting each stage's 16-k tiles, summed through shared memory at the end).
template <class Config>
struct MmaTile {
  static constexpr int BLOCK_N = Config::BLOCK_N;
  static constexpr int BLOCK_M = Config::BLOCK_M;
  static constexpr int BLOCK_K = Config::BLOCK_K;
  static constexpr int STAGES = Config::STAGES;
  static constexpr int WARPS = Config::WARPS_N * Config::WARPS_M * Config::WARPS_K;
  static constexpr int PANELS = BLOCK_N / 16;                         // panels per block
  static constexpr int WARP_PANELS = BLOCK_N / Config::WARPS_N / 16;  // A fragments per warp and k-tile
  static constexpr int WARP_ROW_PAIRS = BLOCK_M / Config::WARPS_M / 16;  // ldmatrix.x4 per warp and k-tile
  static constexpr int WARP_ROW_TILES = 2 * WARP_ROW_PAIRS;            // 8-row B fragments per warp
  static constexpr int K_TILES = BLOCK_K / 16;                        // 16-k mma tiles per stage
  // Groups whose tables one stage needs: 1 when a group spans whole stages.
  static constexpr int STAGE_GROUPS = Config::WHOLE_K_GROUP || Config::GROUP >= BLOCK_K ? 1 : BLOCK_K / Config::GROUP;
  // B through ldmatrix (int4, 8-bit: the mma's k order), else 8-byte loads of k 4t .. 4t+3.
  static constexpr bool LDMATRIX_B = Config::BITS == 4 || Config::BITS == 8;
  // Row pitch in elements: +16 bytes keeps ldmatrix conflict-free; +32 bytes (a pitch of 8 or
  // 24 banks mod 32) keeps a half-warp's 8-byte loads (rows g = 0..3, 8 bytes at 8t) on
  // distinct banks.
  static constexpr int X_PITCH = BLOCK_K + (LDMATRIX_B ? 8 : 16);
  static constexpr int TILE_BYTES = 32 * Config::BITS;  // one panel's 16 k: 16 columns x 16 k x BITS bits
  // Shared memory of one stage, in bytes, each part 16-byte aligned.
  static constexpr int WEIGHT_BYTES = PANELS * K_TILES * TILE_BYTES;  // [PANELS][K_TILES][TILE_BYTES], as in global
  static constexpr int X_BYTES = BLOCK_M * X_PITCH * 2;          // [BLOCK_M][X_PITCH] bf16/fp16
  static constexpr int TABLE_BYTES = PANELS * STAGE_GROUPS * 32;  // [PANELS][STAGE_GROUPS][16] fp16
  static constexpr int EQ_BYTES = Config::EQSCALE ? BLOCK_K * 4 : 0;  // [BLOCK_K] fp32
  static constexpr int STAGE_BYTES = WEIGHT_BYTES + X_BYTES + 2 * TABLE_BYTES + EQ_BYTES;  // scales, then zeros, eq
  static constexpr int PIPELINE_BYTES = STAGES * STAGE_BYTES;
  // The WARPS_K reduction reuses the pipeline's memory: [WARPS_K - 1][BLOCK_N x BLOCK_M] fp32.
  static constexpr int REDUCE_BYTES = (Config::WARPS_K - 1) * BLOCK_N * BLOCK_M * 4;
  static constexpr int SHARED_BYTES = PIPELINE_BYTES > REDUCE_BYTES ? PIPELINE_BYTES : REDUCE_BYTES;
  static_assert(BLOCK_N % (16 * Config::WARPS_N) == 0, "each warp takes whole panels");
  static_assert(BLOCK_M % (16 * Config::WARPS_M) == 0, "each warp takes whole 16-row ldmatrix tiles");
  static_assert(K_TILES % Config::WARPS_K == 0, "each warp takes the same number of k-tiles");
  static_assert(Config::WHOLE_K_GROUP || Config::GROUP % BLOCK_K == 0 || BLOCK_K % Config::GROUP == 0,
                "a stage holds whole groups or lies inside one");
};

template <class Config>
__device__ __forceinline__ void mma_gemm(const void* __restrict__ x, const unsigned char* __restrict__ qweight,
                                         const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                         const void* __restrict__ bias, const float* __restrict__ eq_scale,
                                         void* __restrict__ y, unsigned char* shared, int rows) {
  using Tile = MmaTile<Config>;
  // Rows only bound loads and stores (rows past M read zeros and are not written), so the same
  // code serves an exact M, folded at compile time, and any M given per launch (Config::M = 0).
  const int M = Config::M > 0 ? Config::M : rows;
  constexpr long long N = Config::N;
  constexpr int K = Config::K;
  constexpr int GROUP = Config::GROUP;
  constexpr int GROUPS = Config::WHOLE_K_GROUP ? 1 : K / GROUP;
  // Bytes of one panel: K padded to whole steps (16 k of 96 bytes at 3 bits, else 32 bytes).
  constexpr int PANEL_BYTES = Config::BITS == 3 ? (K + 15) / 16 * 96 : (K + 16 / Config::BITS - 1) / (16 / Config::BITS) * 32;
  constexpr long long PANEL_COUNT = (N + 15) / 16;  // panels in the weights
  constexpr int STAGE_COUNT = (K + Tile::BLOCK_K - 1) / Tile::BLOCK_K;
  constexpr bool IS_BF16 = Config::ACT == bf16;
  constexpr bool FLOAT_ZERO = Config::ZERO == zero_float;
  typedef MmaFormat<Config::BITS, IS_BF16> Format;
  // Each fragment element's offset (int4: 128 for bf16, 1024 for fp16; the split 8-bit format's
  // fragments: 128 each).
  constexpr float MAGIC = Format::SPLIT ? Format::OFFSET / (1.0f + Format::HIGH_WEIGHT) : Format::OFFSET;
  static_assert(!Format::SPLIT || Format::HIGH_WEIGHT == 16.0f, "sixteen_times_plus_pair combines the fragments");

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int warp_n = warp % Config::WARPS_N;
  const int warp_m = warp / Config::WARPS_N % Config::WARPS_M;
  const int warp_k = warp / (Config::WARPS_N * Config::WARPS_M);
  const int block_row = blockIdx.x * Tile::BLOCK_M;          // first row of x and y
  const long long block_panel = static_cast<long long>(blockIdx.y) * Tile::PANELS;  // first panel

  // ---- Producer: one stage of weights, x and group tables, cp.async into slot `slot`.
  auto stage_weights = [&](int slot) { return shared + slot * Tile::STAGE_BYTES; };
  auto stage_x = [&](int slot) { return reinterpret_cast<u16*>(shared + slot * Tile::STAGE_BYTES + Tile::WEIGHT_BYTES); };
  auto stage_scales = [&](int slot) {
    return reinterpret_cast<u16*>(shared + slot * Tile::STAGE_BYTES + Tile::WEIGHT_BYTES + Tile::X_BYTES);
  };
  auto stage_eq = [&](int slot) {
    return reinterpret_cast<float*>(shared + slot * Tile::STAGE_BYTES + Tile::WEIGHT_BYTES + Tile::X_BYTES +
                                    2 * Tile::TABLE_BYTES);
  };
  // What each thread copies is the same in every stage but for the k offset: its chunks'
  // sources, targets and masks are computed once here, so issuing a stage costs a few
  // instructions a chunk (the loop is short of warps at small M, and latency-bound).
  constexpr int THREADS = Tile::WARPS * 32;
  constexpr int PANEL_CHUNKS = Tile::WEIGHT_BYTES / Tile::PANELS / 16;  // a panel's stage: BLOCK_K * BITS / 8 bytes
  constexpr int WEIGHT_CHUNKS = Tile::WEIGHT_BYTES / 16;  // [PANELS][PANEL_CHUNKS] 16-byte chunks
  constexpr int WEIGHT_COPIES = (WEIGHT_CHUNKS + THREADS - 1) / THREADS;
  const unsigned char* weight_source[WEIGHT_COPIES];  // at stage 0; null: nothing to copy
  int weight_step[WEIGHT_COPIES];                     // the chunk's 32-byte block in the panel at stage 0
#pragma unroll
  for (int i = 0; i < WEIGHT_COPIES; ++i) {
    const int chunk = threadIdx.x + i * THREADS;
    const int panel = chunk / PANEL_CHUNKS;
    const int byte = chunk % PANEL_CHUNKS * 16;
    const long long global_panel = block_panel + panel;
    weight_step[i] = byte / 32;
    weight_source[i] = chunk < WEIGHT_CHUNKS && global_panel < PANEL_COUNT ? qweight + global_panel * PANEL_BYTES + byte
                                                                            : nullptr;
  }
  constexpr bool X_ALIGNED = K % 8 == 0;  // rows start 16-byte aligned: 8 elements per copy
  constexpr int X_CHUNKS = Tile::BLOCK_M * Tile::BLOCK_K / 8;  // [BLOCK_M][BLOCK_K / 8]
  constexpr int X_COPIES = (X_CHUNKS + THREADS - 1) / THREADS;
  const u16* x_source[X_COPIES];  // at stage 0; null: a row past M (zero-filled)
  int x_k[X_COPIES];              // the chunk's k at stage 0
#pragma unroll
  for (int i = 0; i < X_COPIES; ++i) {
    const int chunk = threadIdx.x + i * THREADS;
    const int row = chunk / (Tile::BLOCK_K / 8);
    x_k[i] = chunk % (Tile::BLOCK_K / 8) * 8;
    x_source[i] = chunk < X_CHUNKS && block_row + row < M
                      ? static_cast<const u16*>(x) + static_cast<long long>(block_row + row) * K + x_k[i]
                      : nullptr;
  }
  // [PANELS][STAGE_GROUPS][16] scales, then zeros: 32 bytes (2 chunks) per panel and group.
  constexpr int TABLE_CHUNKS = Tile::TABLE_BYTES / 16;
  constexpr int TABLE_KINDS = Config::ZERO == zero_none ? 1 : 2;

  auto issue_stage = [&](int stage) {
    if (stage < STAGE_COUNT) {
      const int slot = stage % Tile::STAGES;
      const int first_k = stage * Tile::BLOCK_K;
      // [PANELS][K_TILES][TILE_BYTES]: each panel's tiles are contiguous in global memory
      // (16 k are TILE_BYTES there too); 32-byte blocks past the panel's end (a whole number
      // of them) are zero-filled. The stage's first block: 16 k are BITS blocks.
      const int stage_block = Config::BITS == 3 ? first_k / 16 * 3 : first_k / (16 / Config::BITS);
#pragma unroll
      for (int i = 0; i < WEIGHT_COPIES; ++i) {
        if (WEIGHT_CHUNKS % THREADS != 0 && threadIdx.x + i * THREADS >= WEIGHT_CHUNKS) break;
        const bool inside = weight_source[i] != nullptr && stage_block + weight_step[i] < PANEL_BYTES / 32;
        copy_16_async(stage_weights(slot) + (threadIdx.x + i * THREADS) * 16,
                      inside ? weight_source[i] + stage_block * 32 : qweight, inside ? 16 : 0);
      }
      // [BLOCK_M][X_PITCH]: rows past M and k past K are zero, so padded weights meet zeros.
      u16* x_tile = stage_x(slot);
      if (X_ALIGNED) {
#pragma unroll
        for (int i = 0; i < X_COPIES; ++i) {
          const int chunk = threadIdx.x + i * THREADS;
          if (X_CHUNKS % THREADS != 0 && chunk >= X_CHUNKS) break;
          const int k = first_k + x_k[i];
          const int valid = x_source[i] != nullptr && k < K ? (K - k >= 8 ? 16 : (K - k) * 2) : 0;
          copy_16_async<true>(x_tile + chunk / (Tile::BLOCK_K / 8) * Tile::X_PITCH + x_k[i],
                        valid ? x_source[i] + first_k : static_cast<const u16*>(x), valid);
        }
      } else {  // whole-K groups with K % 8 != 0: rows are not 16-byte aligned, copy elements
        const u16* x_rows = static_cast<const u16*>(x);
        for (int index = threadIdx.x; index < Tile::BLOCK_M * Tile::BLOCK_K; index += THREADS) {
          const int row = index / Tile::BLOCK_K;
          const int k = first_k + index % Tile::BLOCK_K;
          const bool inside = block_row + row < M && k < K;
          x_tile[row * Tile::X_PITCH + (k - first_k)] =
              inside ? x_rows[static_cast<long long>(block_row + row) * K + k] : static_cast<u16>(0);
        }
      }
      const int first_group = Config::WHOLE_K_GROUP ? 0 : first_k / GROUP;
      for (int chunk = threadIdx.x; chunk < TABLE_KINDS * TABLE_CHUNKS; chunk += THREADS) {
        const bool is_zero = chunk >= TABLE_CHUNKS;
        const int index = chunk % TABLE_CHUNKS;
        const int panel = index / (2 * Tile::STAGE_GROUPS);
        const int group = first_group + index / 2 % Tile::STAGE_GROUPS;
        const long long global_panel = block_panel + panel;
        const bool inside = global_panel < PANEL_COUNT && group < GROUPS;
        const u16* table = is_zero ? zeros : scales;
        const u16* source = table + (inside ? (global_panel * GROUPS + group) * 16 + index % 2 * 8 : 0);
        copy_16_async(stage_scales(slot) + (is_zero ? Tile::TABLE_BYTES / 2 : 0) + index * 8, source, inside ? 16 : 0);
      }
      if (Config::EQSCALE) {
        // [BLOCK_K] fp32, zero past K. eq_scale is 16-byte aligned (operand_alignment.cpp) and
        // first_k a multiple of 4, so 4 k a copy.
        float* eq_tile = stage_eq(slot);
        for (int chunk = threadIdx.x; chunk < Tile::BLOCK_K / 4; chunk += THREADS) {
          const int k = first_k + chunk * 4;
          const int valid = k < K ? (K - k >= 4 ? 16 : (K - k) * 4) : 0;
          copy_16_async<true>(eq_tile + chunk * 4, valid ? eq_scale + k : eq_scale, valid);
        }
      }
    }
    asm volatile("cp.async.commit_group;\n" ::);  // an empty group keeps the count uniform
  };

  // ---- Consumer state. [WARP_PANELS][WARP_ROW_TILES][4] fp32, C's layout: lane (g, t) holds
  // (column 2g, row 2t), (2g, 2t+1), (2g+1, 2t), (2g+1, 2t+1) of each panel x 8-row tile.
  float total[Tile::WARP_PANELS][Tile::WARP_ROW_TILES][4];
  float group_sum[Tile::WARP_PANELS][Tile::WARP_ROW_TILES][4];  // the current group's mma sums
  float x_sum[Tile::WARP_ROW_TILES][4];  // zero=float: sum_k x of rows 2t, 2t+1 in [0], [1]
#pragma unroll
  for (int p = 0; p < Tile::WARP_PANELS; ++p)
#pragma unroll
    for (int r = 0; r < Tile::WARP_ROW_TILES; ++r)
#pragma unroll
      for (int i = 0; i < 4; ++i) total[p][r][i] = group_sum[p][r][i] = 0.0f;
#pragma unroll
  for (int r = 0; r < Tile::WARP_ROW_TILES; ++r)
#pragma unroll
    for (int i = 0; i < 4; ++i) x_sum[r][i] = 0.0f;

  // The current group's tables for this lane's columns 2g, 2g+1 of each warp panel: scales as
  // fp32, zero points as fp32 (zero=float) and the pair subtracted from MAGIC + q.
  float scale[Tile::WARP_PANELS][2];
  float zero_value[Tile::WARP_PANELS][2];
  u32 offset_pair[Tile::WARP_PANELS][2];  // -(MAGIC + z) twice, for column 2g and 2g+1
  u32 high_offset_pair[Tile::WARP_PANELS][2];  // split formats: -16 (MAGIC + z / 16) (see the file's head)
  int group = -1;

  // Reads group `new_group`'s tables of the stage in `slot`. Register contract: writes scale,
  // zero_value, offset_pair, high_offset_pair (split formats), group.
  auto load_tables = [&](int slot, int new_group, int stage_first_group) {
    group = new_group;
    const u16* scale_table = stage_scales(slot);
    const u16* zero_table = scale_table + Tile::TABLE_BYTES / 2;
#pragma unroll
    for (int p = 0; p < Tile::WARP_PANELS; ++p) {
      const int entry = ((warp_n * Tile::WARP_PANELS + p) * Tile::STAGE_GROUPS + (new_group - stage_first_group)) * 16 + 2 * g;
      const u32 scale_bits = *reinterpret_cast<const u32*>(scale_table + entry);
      u32 zero_bits = 0;
      if (Config::ZERO != zero_none) zero_bits = *reinterpret_cast<const u32*>(zero_table + entry);
#pragma unroll
      for (int column = 0; column < 2; ++column) {
        scale[p][column] = half_to_float(static_cast<u16>(scale_bits >> (16 * column)));
        float zero = static_cast<float>(1 << (Config::BITS - 1));  // zero=none: implicit 2^(bits-1)
        if (Config::ZERO != zero_none) zero = half_to_float(static_cast<u16>(zero_bits >> (16 * column)));
        zero_value[p][column] = zero;
        // Split formats take z's low nibble from the low fragment, its high one (x 16) from the
        // high fragment: MAGIC + z % 16 < 2^8 and 16 (MAGIC + z / 16) = 16 x (a value < 2^8).
        const float zero_high = Format::SPLIT && !FLOAT_ZERO ? floorf(zero * (1.0f / 16.0f)) : 0.0f;
        const float zero_low = Format::SPLIT ? zero - 16.0f * zero_high : zero;
        // zero=int/none: -(MAGIC + z) is an integer below 2^8 (bf16) or 2^11 (fp16): exact.
        const u32 offset = float_to_act<IS_BF16>(FLOAT_ZERO ? -MAGIC : -(MAGIC + zero_low));
        offset_pair[p][column] = offset | offset << 16;
        if (Format::SPLIT) {
          const u32 high_offset = float_to_act<IS_BF16>(-16.0f * (MAGIC + zero_high));
          high_offset_pair[p][column] = high_offset | high_offset << 16;
        }
      }
    }
  };

  // Folds the group's sums into the totals. Register contract: reads group_sum, x_sum, scale,
  // zero_value; writes total; clears group_sum and x_sum.
  auto fold_group = [&]() {
#pragma unroll
    for (int p = 0; p < Tile::WARP_PANELS; ++p)
#pragma unroll
      for (int r = 0; r < Tile::WARP_ROW_TILES; ++r)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int column = i >> 1;
          float sum = group_sum[p][r][i];
          if (FLOAT_ZERO) sum = fmaf(-zero_value[p][column], x_sum[r][i & 1], sum);
          total[p][r][i] = fmaf(scale[p][column], sum, total[p][r][i]);
          group_sum[p][r][i] = 0.0f;
        }
    if (FLOAT_ZERO) {
#pragma unroll
      for (int r = 0; r < Tile::WARP_ROW_TILES; ++r)
#pragma unroll
        for (int i = 0; i < 4; ++i) x_sum[r][i] = 0.0f;
    }
  };

  // ---- Pipeline: STAGES - 1 stages in flight ahead of the one the warps compute on.
#pragma unroll
  for (int stage = 0; stage < Tile::STAGES - 1; ++stage) issue_stage(stage);

  const int nibble_shift = 4 * (t & 1);  // pairs 2t, 2t+1 of a step: low (t even) or high nibbles
  for (int stage = 0; stage < STAGE_COUNT; ++stage) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Tile::STAGES - 2));  // this stage has landed
    __syncthreads();  // ... for every thread, and every warp is done with the slot refilled next
    issue_stage(stage + Tile::STAGES - 1);
    const int slot = stage % Tile::STAGES;
    const int stage_first_k = stage * Tile::BLOCK_K;
    const int stage_first_group = Config::WHOLE_K_GROUP ? 0 : stage_first_k / GROUP;
    const u32* weight_words = reinterpret_cast<const u32*>(stage_weights(slot));
    const u16* x_tile = stage_x(slot);
    const float* eq_tile = stage_eq(slot);
#pragma unroll
    for (int tile_index = 0; tile_index < Tile::K_TILES / Config::WARPS_K; ++tile_index) {
      const int k_tile = tile_index * Config::WARPS_K + warp_k;
      const int first_k = stage_first_k + k_tile * 16;
      if (first_k >= K) break;  // past K (warp-uniform): only zeros remain
      const int tile_group = Config::WHOLE_K_GROUP ? 0 : first_k / GROUP;
      if (tile_group != group) {
        if (group >= 0) fold_group();
        load_tables(slot, tile_group, stage_first_group);
      }
      // B: [16 k][8 rows] per row tile. ldmatrix: two row tiles per ldmatrix.x4, lane l points
      // at row (l / 16) * 8 + l % 8 of the pair, k half (l / 8) % 2; lane (g, t) then holds k
      // 2t, 2t+1 (b[r][0]) and 8+2t, 9+2t (b[r][1]) of row g. Else lane (g, t) loads k x_pair(t, 0)
      // .. +3 of row g.
      u32 b[Tile::WARP_ROW_TILES][2];
      if (Tile::LDMATRIX_B) {
#pragma unroll
        for (int pair = 0; pair < Tile::WARP_ROW_PAIRS; ++pair) {
          const int row = warp_m * (Tile::BLOCK_M / Config::WARPS_M) + pair * 16 + (lane >> 4) * 8 + (lane & 7);
          u32 fragment[4];
          ldmatrix_x4(fragment, x_tile + row * Tile::X_PITCH + k_tile * 16 + ((lane >> 3) & 1) * 8);
          b[2 * pair][0] = fragment[0];
          b[2 * pair][1] = fragment[1];
          b[2 * pair + 1][0] = fragment[2];
          b[2 * pair + 1][1] = fragment[3];
        }
      } else {
        static_assert(Tile::LDMATRIX_B || Format::CONTIGUOUS_PAIRS, "8-byte B loads need contiguous pairs");
#pragma unroll
        for (int r = 0; r < Tile::WARP_ROW_TILES; ++r) {
          const int row = warp_m * (Tile::BLOCK_M / Config::WARPS_M) + r * 8 + g;
          const uint2 both = *reinterpret_cast<const uint2*>(x_tile + row * Tile::X_PITCH + k_tile * 16 + Format::x_pair(t, 0));
          b[r][0] = both.x;
          b[r][1] = both.y;
        }
      }
      // eqscale: B becomes x * eq as hi (b) and lo (b_low) parts, each multiplied by every A.
      u32 b_low[Tile::WARP_ROW_TILES][2];
      if (Config::EQSCALE) {
        float2 eq[2];  // eq at k pair p of this lane
#pragma unroll
        for (int p = 0; p < 2; ++p)
          eq[p] = *reinterpret_cast<const float2*>(eq_tile + k_tile * 16 + (Tile::LDMATRIX_B ? 2 * t + 8 * p : Format::x_pair(t, p)));
#pragma unroll
        for (int r = 0; r < Tile::WARP_ROW_TILES; ++r)
#pragma unroll
          for (int p = 0; p < 2; ++p) scale_pair<IS_BF16>(b[r][p], eq[p], b[r][p], b_low[r][p]);
      }
      if (FLOAT_ZERO) {
        constexpr u32 ONES = IS_BF16 ? 0x3f803f80u : 0x3c003c00u;
        const u32 ones[4] = {ONES, ONES, ONES, ONES};
#pragma unroll
        for (int r = 0; r < Tile::WARP_ROW_TILES; ++r) {
          mma_m16n8k16<IS_BF16>(x_sum[r], ones, b[r][0], b[r][1]);
          if (Config::EQSCALE) mma_m16n8k16<IS_BF16>(x_sum[r], ones, b_low[r][0], b_low[r][1]);
        }
      }
#pragma unroll
      for (int p = 0; p < Tile::WARP_PANELS; ++p) {
        // A: [16 columns][16 k] of panel p. Words g of steps t/2 and 2 + t/2 of the k-tile
        // (conflict-free: lanes t and t^1 share a word, steps t/2 are 8 banks apart).
        u32 a[4];
        if (Config::BITS == 4) {
          const u32* panel_words = weight_words + ((warp_n * Tile::WARP_PANELS + p) * (Tile::BLOCK_K / 4) + k_tile * 4) * 8;
          // Each word masked once for its four codes, then under_exponent (mma_format.cuh).
          under_exponent<IS_BF16>((panel_words[(t >> 1) * 8 + g] >> nibble_shift) & 0x0f0f0f0fu, a[0], a[1]);
          under_exponent<IS_BF16>((panel_words[(2 + (t >> 1)) * 8 + g] >> nibble_shift) & 0x0f0f0f0fu, a[2], a[3]);
#pragma unroll
          for (int i = 0; i < 4; ++i) a[i] = add_pair<IS_BF16>(a[i], offset_pair[p][i & 1]);
        } else {
          // A: the format's decode of the panel's k-tile ([K_TILES][TILE_WORDS] per panel), then
          // q - z (a[i]: column 2g for even i, 2g+1 for odd i).
          const u32* tile_words = weight_words + ((warp_n * Tile::WARP_PANELS + p) * Tile::K_TILES + k_tile) * Format::TILE_WORDS;
          u32 a_high[4];
          Format::decode(tile_words, g, t, a, a_high);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            a[i] = add_pair<IS_BF16>(a[i], offset_pair[p][i & 1]);
            if (Format::SPLIT) a[i] = add_pair<IS_BF16>(sixteen_times_plus_pair(a_high[i], high_offset_pair[p][i & 1]), a[i]);
          }
        }
#pragma unroll
        for (int r = 0; r < Tile::WARP_ROW_TILES; ++r) {
          mma_m16n8k16<IS_BF16>(group_sum[p][r], a, b[r][0], b[r][1]);
          if (Config::EQSCALE) mma_m16n8k16<IS_BF16>(group_sum[p][r], a, b_low[r][0], b_low[r][1]);
        }
      }
    }
  }
  asm volatile("cp.async.wait_group 0;\n" ::);
  if (group >= 0) fold_group();

  // ---- Warps that split K add their totals into warp_k == 0's, through shared memory:
  // [WARPS_K - 1][WARPS_N x WARPS_M warps][WARP_PANELS x WARP_ROW_TILES x 4][32 lanes] fp32.
  if (Config::WARPS_K > 1) {
    constexpr int WARP_VALUES = Tile::WARP_PANELS * Tile::WARP_ROW_TILES * 4;
    float* reduce = reinterpret_cast<float*>(shared);
    const int warp_nm = warp % (Config::WARPS_N * Config::WARPS_M);
    __syncthreads();  // every warp is done reading the pipeline's memory
    if (warp_k > 0) {
      float* target = reduce + ((warp_k - 1) * Config::WARPS_N * Config::WARPS_M + warp_nm) * WARP_VALUES * 32 + lane;
#pragma unroll
      for (int p = 0; p < Tile::WARP_PANELS; ++p)
#pragma unroll
        for (int r = 0; r < Tile::WARP_ROW_TILES; ++r)
#pragma unroll
          for (int i = 0; i < 4; ++i) target[((p * Tile::WARP_ROW_TILES + r) * 4 + i) * 32] = total[p][r][i];
    }
    __syncthreads();
    if (warp_k > 0) return;
    for (int other = 0; other < Config::WARPS_K - 1; ++other) {
      const float* source = reduce + (other * Config::WARPS_N * Config::WARPS_M + warp_nm) * WARP_VALUES * 32 + lane;
#pragma unroll
      for (int p = 0; p < Tile::WARP_PANELS; ++p)
#pragma unroll
        for (int r = 0; r < Tile::WARP_ROW_TILES; ++r)
#pragma unroll
          for (int i = 0; i < 4; ++i) total[p][r][i] += source[((p * Tile::WARP_ROW_TILES + r) * 4 + i) * 32];
    }
  }

  // ---- Epilogue: bias, output dtype, masked stores. Lane (g, t) writes columns 2g, 2g+1 of
  // rows 2t, 2t+1 of each tile; with N even the two columns are one aligned pair.
#pragma unroll
  for (int p = 0; p < Tile::WARP_PANELS; ++p) {
    const long long column = (block_panel + warp_n * Tile::WARP_PANELS + p) * 16 + 2 * g;
    if (column >= N) continue;
    const bool pair_inside = column + 1 < N;
    float bias_value[2] = {0.0f, 0.0f};
    if (Config::HAS_BIAS) {
      bias_value[0] = load_element<Config::ACT>(bias, column);
      if (pair_inside) bias_value[1] = load_element<Config::ACT>(bias, column + 1);
    }
#pragma unroll
    for (int r = 0; r < Tile::WARP_ROW_TILES; ++r)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = block_row + warp_m * (Tile::BLOCK_M / Config::WARPS_M) + r * 8 + 2 * t + half;
        if (row >= M) continue;
        const float value0 = total[p][r][half] + bias_value[0];      // column 2g
        const float value1 = total[p][r][2 + half] + bias_value[1];  // column 2g+1
        const long long index = static_cast<long long>(row) * N + column;
        if (N % 2 == 0 && Config::OUT == fp32) {
          *reinterpret_cast<float2*>(static_cast<float*>(y) + index) = make_float2(value0, value1);
        } else if (N % 2 == 0) {
          const u32 bits0 = Config::OUT == bf16 ? float_to_bf16(value0) : float_to_half(value0);
          const u32 bits1 = Config::OUT == bf16 ? float_to_bf16(value1) : float_to_half(value1);
          *reinterpret_cast<u32*>(static_cast<u16*>(y) + index) = bits0 | bits1 << 16;
        } else {
          store_element<Config::OUT>(y, index, value0);
          if (pair_inside) store_element<Config::OUT>(y, index + 1, value1);
        }
      }
  }
}

}  // namespace lowbit_gemv
