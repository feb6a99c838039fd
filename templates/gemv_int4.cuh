// GEMV family for small M (1..8): int4 weights in lowbit's native layout, fp16/bf16
// activations, fp32 accumulation. Compiled by NVRTC; codegen/cuda/gemv_generator.cpp writes
// the Config and the extern "C" entry point, nothing else. Header-free on purpose: NVRTC
// needs no include path, and every conversion below is one PTX instruction.
//
// Work split: one thread block per 16-column panel; its WARPS warps split the panel's K.
// A lane loads 16 bytes, half (l & 1) of a 32-byte block: 8 columns x 4 k. Byte 2j+h of that
// half, field f (4 bits, low first), is q[column j, k0 + 2f + h] (docs/layout.md).
//
// Dequantization without per-element int->float conversion: a nibble moved to bits 16..19
// and OR-ed with 0x43000000 is the fp32 number 128 + q. Per lane and run of steps in a group:
//   y[c] += s[c] * (sum_k x_k * (128 + q_kc) - (128 + z[c]) * sum_k x_k)
// which is exact algebra; the +128 costs fp32 rounding of about 1e-5 relative (tolerance.h).

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

// 128 + (nibble of `word` starting at bit `shift`), as fp32.
template <int shift>
__device__ __forceinline__ float offset_code(u32 word) {
  const u32 moved = shift <= 16 ? (word << (16 - shift)) : (word >> (shift - 16));
  return __uint_as_float((moved & 0x000f0000u) | 0x43000000u);
}

// Sums a block's per-warp results, partial [WARPS][ROW_CAPACITY][16] fp32 in shared memory
// (rows >= ROWS ignored), adds the bias and writes the panel's columns inside N to y. Called by
// every thread of the block after the barrier that completes `partial`.
template <class Config, int ROW_CAPACITY>
__device__ __forceinline__ void store_panel(const float (*partial)[ROW_CAPACITY][16], const void* bias, void* y,
                                            long long panel) {
  for (int index = threadIdx.x; index < Config::ROWS * 16; index += Config::WARPS * 32) {
    const int r = index / 16;
    const int column = index % 16;
    const long long n = panel * 16 + column;
    if (n >= Config::N) continue;
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < Config::WARPS; ++w) total += partial[w][r][column];
    if (Config::HAS_BIAS) total += load_element<Config::ACT>(bias, n);
    store_element<Config::OUT>(y, r * Config::N + n, total);
  }
}

// Config (generated): ROWS (M, 1..8), N, K, GROUP (k per group; K for group=-1), ZERO, ACT,
// OUT, HAS_BIAS, WARPS (warps per block splitting K), UNROLL (steps whose loads are in flight
// together).
//
// Lane mapping: the two lanes of a pair (l >> 1) read the two 16-byte halves of one 32-byte
// block, so every load instruction uses whole 32-byte sectors; the block's WARPS * 16 pairs
// each walk their own contiguous run of steps. Consecutive steps of a pair share a group, so
// scales and zero points are applied once per group run instead of once per step.
template <class Config>
__device__ __forceinline__ void gemv_int4(const void* __restrict__ x, const uint4* __restrict__ qweight,
                                          const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                          const void* __restrict__ bias, void* __restrict__ y) {
  constexpr int ROWS = Config::ROWS;
  constexpr int WARPS = Config::WARPS;
  constexpr int UNROLL = Config::UNROLL;
  // In-panel positions are 32-bit (the generator keeps K below 2^27): 64-bit index math costs
  // several instructions per operation, and this loop is issue-bound.
  constexpr int K = Config::K;
  constexpr long long N = Config::N;
  constexpr int GROUP = Config::GROUP;
  constexpr int GROUPS = K / GROUP;
  constexpr int STEPS = (K + 3) / 4;  // 4-k steps (32-byte blocks) per panel
  constexpr int PAIRS = WARPS * 16;
  constexpr int RUN = (STEPS + PAIRS - 1) / PAIRS;  // steps per pair
  constexpr float MAGIC = 128.0f;

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const long long panel = blockIdx.x;
  const int half = lane & 1;  // columns 8*half .. 8*half+7 of the panel
  const int pair = warp * 16 + (lane >> 1);
  const int first_step = pair * RUN;
  const int end_step = first_step + RUN < STEPS ? first_step + RUN : STEPS;

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
  int group = first_step * 4 / GROUP;

  // Folds the group run into the totals: sum += s * (dot - (128 + z) * x_sum).
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
      float zero = 1 << 3;  // zero=none: implicit 2^(bits-1)
      if (Config::ZERO != zero_none) zero = half_to_float(static_cast<u16>(zero_words[c >> 1] >> (16 * (c & 1))));
      const float offset_zero = MAGIC + zero;
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        sum[r][c] = fmaf(scale, fmaf(-offset_zero, x_sum[r], dot[r][c]), sum[r][c]);
        dot[r][c] = 0.0f;
      }
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r) x_sum[r] = 0.0f;
  };

  const uint4* panel_weights = qweight + panel * STEPS * 2;  // 2 x 16 bytes per step
  for (int base = first_step; base < end_step; base += UNROLL) {
    uint4 packed[UNROLL];
    // Issue every load of the unrolled steps before the first use.
#pragma unroll
    for (int u = 0; u < UNROLL; ++u)
      packed[u] = base + u < end_step ? panel_weights[(base + u) * 2 + half] : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int step = base + u;
      if (step >= end_step) break;
      const int k0 = step * 4;
      if (k0 / GROUP != group) {
        fold_group();
        group = k0 / GROUP;
      }
      // [ROWS][4] fp32 activations of this step (0 past K).
      float xs[ROWS][4];
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        if (K % 4 == 0 && Config::ACT != fp32) {
          // Rows start 8-byte aligned when K % 4 == 0: one 8-byte load for the 4 values.
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
        x_sum[r] += (xs[r][0] + xs[r][1]) + (xs[r][2] + xs[r][3]);
      }
      const u32 words[4] = {packed[u].x, packed[u].y, packed[u].z, packed[u].w};
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        // Word c/2 holds column c in its low (even c) or high (odd c) 16 bits:
        // bits 0-3 k0, 4-7 k0+2, 8-11 k0+1, 12-15 k0+3 (plus 16 for the odd column).
        const u32 word = words[c >> 1];
        float w0, w1, w2, w3;
        if ((c & 1) == 0) {
          w0 = offset_code<0>(word); w2 = offset_code<4>(word); w1 = offset_code<8>(word); w3 = offset_code<12>(word);
        } else {
          w0 = offset_code<16>(word); w2 = offset_code<20>(word); w1 = offset_code<24>(word); w3 = offset_code<28>(word);
        }
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          float value = fmaf(xs[r][0], w0, dot[r][c]);
          value = fmaf(xs[r][1], w1, value);
          value = fmaf(xs[r][2], w2, value);
          dot[r][c] = fmaf(xs[r][3], w3, value);
        }
      }
    }
  }
  if (first_step < end_step) fold_group();

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
