// GEMV family for small M (1..8): 2-, 3-, 4- or 8-bit weights in lowbit's native layout,
// fp32/bf16/fp16 activations, fp32 accumulation. Compiled by NVRTC;
// codegen/cuda/gemv_generator.cpp writes the Config and the extern "C" entry point, nothing
// else. Header-free on purpose: NVRTC needs no include path, and every conversion below is
// one PTX instruction.
//
// Work split: one thread block per 16-column panel; its WARPS warps split the panel's K.
// A lane reads half (l & 1) of each 32-byte block of a chunk: 8 columns x (4 k for 4-bit, 8 k
// for 2-bit, 2 k for 8-bit; 3-bit reads its three blocks). Byte 2j+h of a half, field f, is
// q[column j, k0 + 2f + h] (docs/layout.md).
//
// Dequantization without per-element int->float conversion: a code moved under the mantissa
// of an fp32 power of two and OR-ed with its exponent is the fp32 number OFFSET + q
// (ChunkFormat below). Per lane and run of chunks in a group:
//   y[c] += s[c] * (sum_k x_k * (OFFSET + q_kc) - (OFFSET + z[c]) * sum_k x_k)
// which is exact algebra; the offset costs fp32 rounding of about 1e-5 relative (tolerance.h).
// With eqscale, x_k above is x_k * eq[k], formed where x is loaded.

namespace lowbit_gemv {

typedef unsigned short u16;
typedef unsigned int u32;

// [act dtype] -> fp32, and fp32 -> [out dtype] (round to nearest even).
__device__ __forceinline__ float half_to_float(u16 bits) {
  float value;
  asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
  return value;
}
__device__ __forceinline__ float bf16_to_float(u16 bits) { return __uint_as_float(static_cast<u32>(bits) << 16); }
__device__ __forceinline__ u16 float_to_half(float value) {
  u16 bits;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
  return bits;
}
__device__ __forceinline__ u16 float_to_bf16(float value) {
  u16 bits;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(value));
  return bits;
}

enum DType { fp32 = 0, bf16 = 1, fp16 = 2 };
enum Zero { zero_none = 0, zero_int = 1, zero_float = 2 };

template <int dtype>
__device__ __forceinline__ float load_element(const void* base, long long index) {
  if (dtype == fp32) return static_cast<const float*>(base)[index];
  const u16 bits = static_cast<const u16*>(base)[index];
  return dtype == bf16 ? bf16_to_float(bits) : half_to_float(bits);
}

template <int dtype>
__device__ __forceinline__ void store_element(void* base, long long index, float value) {
  if (dtype == fp32) {
    static_cast<float*>(base)[index] = value;
  } else {
    static_cast<u16*>(base)[index] = dtype == bf16 ? float_to_bf16(value) : float_to_half(value);
  }
}

// The `width_mask` bits of `word` starting at bit `from`, moved to start at bit `to`; every
// other bit zero. Positions are compile-time constants once inlined and unrolled: one shift
// (none when from == to) and one AND, which the compiler merges with the exponent OR.
__device__ __forceinline__ u32 move_field(u32 word, int from, int to, u32 width_mask) {
  const u32 moved = from <= to ? word << (to - from) : word >> (from - to);
  return moved & (width_mask << to);
}

// How the CUDA-core family reads one format. A lane's chunk is LOADS 16-byte loads (vector
// v = chunk * 2 * LOADS + 2 * i + half of the panel) covering CHUNK_K k of 8 columns; it is
// consumed in sub-steps of 4 k. decode(words, c, sub, w) gives w[i] = OFFSET + q for column c
// (word c/2, low or high 16 bits) at k0 + 4 * sub + i. A code sits in the top mantissa bits of
// EXPONENT's power of two (POSITION = 23 - bits, so OFFSET = 2^bits: the smallest offset that
// keeps one code step = 1.0), except int4, which keeps its measured layout (bit 16, 128 + q).
template <int BITS>
struct ChunkFormat;

template <>
struct ChunkFormat<4> {
  static constexpr int BLOCK_K = 4;        // k per native step
  static constexpr int STEP_VECTORS = 2;   // 16-byte vectors per native step
  static constexpr int CHUNK_K = 4;
  static constexpr int LOADS = 1;
  static constexpr float OFFSET = 128.0f;
  // Halfword bits 0-3 k0, 4-7 k0+2, 8-11 k0+1, 12-15 k0+3.
  static __device__ __forceinline__ void decode(const u32 (&words)[1][4], int c, int, float (&w)[4]) {
    const u32 word = words[0][c >> 1];
    const int half_shift = 16 * (c & 1);
    const int from[4] = {0, 8, 4, 12};
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = __uint_as_float(move_field(word, from[i] + half_shift, 16, 0xfu) | 0x43000000u);
  }
};

template <>
struct ChunkFormat<2> {
  static constexpr int BLOCK_K = 8;
  static constexpr int STEP_VECTORS = 2;
  static constexpr int CHUNK_K = 8;
  static constexpr int LOADS = 1;
  static constexpr float OFFSET = 4.0f;
  // Halfword byte h, field f (bits 2f..2f+1) is k0 + 2f + h.
  static __device__ __forceinline__ void decode(const u32 (&words)[1][4], int c, int sub, float (&w)[4]) {
    const u32 word = words[0][c >> 1];
    const int half_shift = 16 * (c & 1);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int from = 8 * (i & 1) + 4 * sub + 2 * (i >> 1) + half_shift;
      w[i] = __uint_as_float(move_field(word, from, 21, 0x3u) | 0x40800000u);  // 4 + q
    }
  }
};

template <>
struct ChunkFormat<3> {
  static constexpr int BLOCK_K = 16;
  static constexpr int STEP_VECTORS = 6;
  static constexpr int CHUNK_K = 16;
  static constexpr int LOADS = 3;  // low bits of k0..k0+7, of k0+8..k0+15, high bits of all 16
  static constexpr float OFFSET = 8.0f;
  // Low bits as 2-bit fields (load sub/2); high bit of k0 + 2f + h at bit f of byte h (load 2).
  static __device__ __forceinline__ void decode(const u32 (&words)[3][4], int c, int sub, float (&w)[4]) {
    const u32 low = words[sub >> 1][c >> 1];
    const u32 high = words[2][c >> 1];
    const int half_shift = 16 * (c & 1);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int low_from = 8 * (i & 1) + 4 * (sub & 1) + 2 * (i >> 1) + half_shift;
      const int high_from = 8 * (i & 1) + 2 * sub + (i >> 1) + half_shift;
      w[i] = __uint_as_float(move_field(low, low_from, 20, 0x3u) | move_field(high, high_from, 22, 0x1u) |
                             0x41000000u);  // 8 + q
    }
  }
};

template <>
struct ChunkFormat<8> {
  static constexpr int BLOCK_K = 2;
  static constexpr int STEP_VECTORS = 2;
  static constexpr int CHUNK_K = 4;
  static constexpr int LOADS = 2;  // two native steps: k0, k0+1 and k0+2, k0+3
  static constexpr float OFFSET = 256.0f;
  // Halfword byte h of step i is k0 + 2i + h.
  static __device__ __forceinline__ void decode(const u32 (&words)[2][4], int c, int, float (&w)[4]) {
    const int half_shift = 16 * (c & 1);
#pragma unroll
    for (int i = 0; i < 4; ++i)
      w[i] = __uint_as_float(move_field(words[i >> 1][c >> 1], 8 * (i & 1) + half_shift, 15, 0xffu) |
                             0x43800000u);  // 256 + q
  }
};

// Sums a block's per-warp results, partial [WARPS][ROW_CAPACITY][16] fp32 in shared memory
// (rows >= ROWS ignored), in warp order, and hands each of the panel's outputs inside N to
// store(row, column n, sum). Called by every thread of the block after the barrier that
// completes `partial`.
template <class Config, int ROW_CAPACITY, class Store>
__device__ __forceinline__ void for_each_panel_sum(const float (*partial)[ROW_CAPACITY][16], long long panel,
                                                   Store&& store) {
  for (int index = threadIdx.x; index < Config::ROWS * 16; index += Config::WARPS * 32) {
    const int r = index / 16;
    const int column = index % 16;
    const long long n = panel * 16 + column;
    if (n >= Config::N) continue;
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < Config::WARPS; ++w) total += partial[w][r][column];
    store(r, n, total);
  }
}

// The panel's sums (for_each_panel_sum) plus the bias, converted and written to y.
template <class Config, int ROW_CAPACITY>
__device__ __forceinline__ void store_panel(const float (*partial)[ROW_CAPACITY][16], const void* bias, void* y,
                                            long long panel) {
  for_each_panel_sum<Config>(partial, panel, [&](int r, long long n, float total) {
    if (Config::HAS_BIAS) total += load_element<Config::ACT>(bias, n);
    store_element<Config::OUT>(y, r * Config::N + n, total);
  });
}

// Config (generated): ROWS (M, 1..8), N, K, BITS, GROUP (k per group; K for group=-1), ZERO,
// ACT, OUT, HAS_BIAS, EQSCALE, WARPS (warps per block splitting K), UNROLL (16-byte loads a
// lane keeps in flight, rounded down to whole chunks, at least one).
//
// Lane mapping: the two lanes of a pair (l >> 1) read the two 16-byte halves of one 32-byte
// block, so every load instruction uses whole 32-byte sectors; the block's WARPS * 16 pairs
// each walk their own contiguous run of chunks. Consecutive chunks of a pair share a group
// (groups are multiples of 32 k, chunks at most 16), so scales and zero points are applied
// once per group run instead of once per chunk.
template <class Config>
__device__ __forceinline__ void gemv(const void* __restrict__ x, const uint4* __restrict__ qweight,
                                     const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                     const void* __restrict__ bias, const float* __restrict__ eq_scale,
                                     void* __restrict__ y) {
  typedef ChunkFormat<Config::BITS> Format;
  constexpr int ROWS = Config::ROWS;
  constexpr int WARPS = Config::WARPS;
  constexpr int LOADS = Format::LOADS;
  constexpr int BATCH = Config::UNROLL / LOADS > 0 ? Config::UNROLL / LOADS : 1;  // chunks in flight
  // In-panel positions are 32-bit (the generator keeps K below 2^27): 64-bit index math costs
  // several instructions per operation, and this loop is issue-bound.
  constexpr int K = Config::K;
  constexpr int GROUP = Config::GROUP;
  constexpr int GROUPS = K / GROUP;
  constexpr int CHUNK_K = Format::CHUNK_K;
  constexpr int CHUNKS = (K + CHUNK_K - 1) / CHUNK_K;  // per panel
  constexpr int PANEL_VECTORS = (K + Format::BLOCK_K - 1) / Format::BLOCK_K * Format::STEP_VECTORS;
  // 8-bit with an odd step count: the last chunk's second step lies past the panel.
  constexpr bool GUARD_LOADS = PANEL_VECTORS % (2 * LOADS) != 0;
  constexpr int PAIRS = WARPS * 16;
  constexpr int RUN = (CHUNKS + PAIRS - 1) / PAIRS;  // chunks per pair

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const long long panel = blockIdx.x;
  const int half = lane & 1;  // columns 8*half .. 8*half+7 of the panel
  const int pair = warp * 16 + (lane >> 1);
  const int first_chunk = pair * RUN;
  const int end_chunk = first_chunk + RUN < CHUNKS ? first_chunk + RUN : CHUNKS;

  // [ROWS][8] fp32 totals of this lane's 8 columns; [ROWS][8] dot products and [ROWS] x sums
  // of the current group run, folded into the totals with the group's scale and zero point.
  float sum[ROWS][8];
  float dot[ROWS][8];
  float x_sum[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    x_sum[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < 8; ++c) sum[r][c] = dot[r][c] = 0.0f;
  }
  int group = first_chunk * CHUNK_K / GROUP;

  // Folds the group run into the totals: sum += s * (dot - (OFFSET + z) * x_sum).
  auto fold_group = [&]() {
    const long long table = (panel * GROUPS + group) * 16 + half * 8;
    const uint4 scale_bits = *reinterpret_cast<const uint4*>(scales + table);
    uint4 zero_bits = make_uint4(0, 0, 0, 0);
    if (Config::ZERO != zero_none) zero_bits = *reinterpret_cast<const uint4*>(zeros + table);
    const u32 scale_words[4] = {scale_bits.x, scale_bits.y, scale_bits.z, scale_bits.w};
    const u32 zero_words[4] = {zero_bits.x, zero_bits.y, zero_bits.z, zero_bits.w};
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const float scale = half_to_float(static_cast<u16>(scale_words[c >> 1] >> (16 * (c & 1))));
      float zero = 1 << (Config::BITS - 1);  // zero=none: implicit 2^(bits-1)
      if (Config::ZERO != zero_none) zero = half_to_float(static_cast<u16>(zero_words[c >> 1] >> (16 * (c & 1))));
      const float offset_zero = Format::OFFSET + zero;
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        sum[r][c] = fmaf(scale, fmaf(-offset_zero, x_sum[r], dot[r][c]), sum[r][c]);
        dot[r][c] = 0.0f;
      }
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r) x_sum[r] = 0.0f;
  };

  const uint4* panel_weights = qweight + panel * PANEL_VECTORS;
  // 8-byte loads of 4 16-bit x values need 8-byte aligned rows: K % 4 == 0 and x itself aligned
  // (a row slice of a larger tensor may start 2 bytes in); else one value at a time.
  const bool x_quads = K % 4 == 0 && (reinterpret_cast<unsigned long long>(x) & 7) == 0;
  for (int base = first_chunk; base < end_chunk; base += BATCH) {
    uint4 packed[BATCH][LOADS];
    // Issue every load of the batch before the first use.
#pragma unroll
    for (int u = 0; u < BATCH; ++u)
#pragma unroll
      for (int i = 0; i < LOADS; ++i) {
        const int vector = (base + u) * 2 * LOADS + 2 * i + half;
        const bool inside = base + u < end_chunk && (!GUARD_LOADS || vector < PANEL_VECTORS);
        packed[u][i] = inside ? panel_weights[vector] : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
    for (int u = 0; u < BATCH; ++u) {
      const int chunk = base + u;
      if (chunk >= end_chunk) break;
      if (chunk * CHUNK_K / GROUP != group) {
        fold_group();
        group = chunk * CHUNK_K / GROUP;
      }
      u32 words[LOADS][4];
#pragma unroll
      for (int i = 0; i < LOADS; ++i) {
        words[i][0] = packed[u][i].x;
        words[i][1] = packed[u][i].y;
        words[i][2] = packed[u][i].z;
        words[i][3] = packed[u][i].w;
      }
#pragma unroll
      for (int sub = 0; sub < CHUNK_K / 4; ++sub) {
        const int k0 = chunk * CHUNK_K + 4 * sub;
        // [4] fp32 equalization scales of this sub-step (1 when eqscale=0; 0 past K).
        float eq[4] = {1.0f, 1.0f, 1.0f, 1.0f};
        if (Config::EQSCALE) {
          if (K % 4 == 0) {
            const float4 quad = *reinterpret_cast<const float4*>(eq_scale + k0);  // 16-byte aligned
            eq[0] = quad.x; eq[1] = quad.y; eq[2] = quad.z; eq[3] = quad.w;
          } else {
#pragma unroll
            for (int i = 0; i < 4; ++i) eq[i] = k0 + i < K ? eq_scale[k0 + i] : 0.0f;
          }
        }
        // [ROWS][4] fp32 activations (times eq) of this sub-step (0 past K).
        float xs[ROWS][4];
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          if (x_quads && Config::ACT != fp32) {
            // Rows start 8-byte aligned (x_quads): one 8-byte load for the 4 values.
            const uint2 pair_bits = *reinterpret_cast<const uint2*>(static_cast<const u16*>(x) + r * K + k0);
            const u16 values[4] = {static_cast<u16>(pair_bits.x), static_cast<u16>(pair_bits.x >> 16),
                                   static_cast<u16>(pair_bits.y), static_cast<u16>(pair_bits.y >> 16)};
#pragma unroll
            for (int i = 0; i < 4; ++i)
              xs[r][i] = Config::ACT == bf16 ? bf16_to_float(values[i]) : half_to_float(values[i]);
          } else {
#pragma unroll
            for (int i = 0; i < 4; ++i) xs[r][i] = k0 + i < K ? load_element<Config::ACT>(x, r * K + k0 + i) : 0.0f;
          }
          if (Config::EQSCALE) {
#pragma unroll
            for (int i = 0; i < 4; ++i) xs[r][i] *= eq[i];
          }
          x_sum[r] += (xs[r][0] + xs[r][1]) + (xs[r][2] + xs[r][3]);
        }
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          float w[4];
          Format::decode(words, c, sub, w);
#pragma unroll
          for (int r = 0; r < ROWS; ++r) {
            float value = fmaf(xs[r][0], w[0], dot[r][c]);
            value = fmaf(xs[r][1], w[1], value);
            value = fmaf(xs[r][2], w[2], value);
            dot[r][c] = fmaf(xs[r][3], w[3], value);
          }
        }
      }
    }
  }
  if (first_chunk < end_chunk) fold_group();

  // Reduce over the 16 lanes of each half (xor offsets 2..16 keep lane & 1).
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int c = 0; c < 8; ++c)
#pragma unroll
      for (int offset = 2; offset < 32; offset <<= 1) sum[r][c] += __shfl_xor_sync(0xffffffffu, sum[r][c], offset);

  // [WARPS][ROWS][16] fp32: each warp's totals, summed by the first 16 * ROWS threads.
  __shared__ float partial[WARPS][ROWS][16];
  if (lane < 2) {
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
      for (int c = 0; c < 8; ++c) partial[warp][r][half * 8 + c] = sum[r][c];
  }
  __syncthreads();
  store_panel<Config, ROWS>(partial, bias, y, panel);
}

}  // namespace lowbit_gemv
