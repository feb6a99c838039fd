// Dequantization of native-layout weights (docs/layout.md) to a dense [N][LD] bf16 or fp16
// matrix, row n = output feature, k contiguous: the K-major operand of a "TN" GEMM
// (codegen/cuda/dequant_gemm_kernel.cpp runs cuBLASLt on it). Bits 2, 3, 4 and 8; zero
// none/int/float; any group; optionally the per-K equalization scale folded in
// (W[n][k] * eq[k], rounded once to the output type). Header-free for NVRTC, like gemv.cuh.
//
// The pass is bandwidth-bound (it reads the packed codes once and writes 16 bits per weight),
// so the lane mapping is chosen for whole sectors on both sides:
//   - reads: lane j (0..15) of a half-warp reads the 16-bit word at byte 2j of a 32-byte block,
//     so a half-warp reads the whole block; byte 2j holds column j's even k, byte 2j+1 its odd k.
//   - writes: each lane writes 16 bytes (8 k of its column); the two half-warps of a warp write
//     adjacent chunks of the same rows, so each store instruction fills whole 32-byte sectors.

namespace lowbit_dequant {

typedef unsigned short u16;
typedef unsigned int u32;

enum DType { fp32 = 0, bf16 = 1, fp16 = 2 };
enum Zero { zero_none = 0, zero_int = 1, zero_float = 2 };

__device__ __forceinline__ float half_to_float(u16 bits) {
  float value;
  asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
  return value;
}

// Two fp32 -> one 32-bit word of two 16-bit floats, `low` in bits 0..15 (round to nearest even).
template <int dtype>
__device__ __forceinline__ u32 pack_pair(float low, float high) {
  u32 bits;
  if (dtype == bf16) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(bits) : "f"(high), "f"(low));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(bits) : "f"(high), "f"(low));
  }
  return bits;
}

// The code (0 .. 255) as fp32 without an int->float conversion: OR-ed under the exponent of
// 2^23 it is the float 2^23 + code, exact, and one subtraction leaves the code.
__device__ __forceinline__ float code_to_float(u32 code) { return __uint_as_float(0x4b000000u | code) - 8388608.0f; }

// One step of one column: K_PER_STEP codes from BLOCKS 16-bit words (the word at byte 2j of
// each 32-byte block of the step). Field f of byte h (h = k & 1) holds k = 2f + h.
template <int BITS>
struct Format {
  static constexpr int BLOCKS = 1;
  static constexpr int K_PER_STEP = 2 * (8 / BITS);
  static constexpr int STEP_BYTES = 32;
  __device__ __forceinline__ static u32 code(const u32 (&words)[BLOCKS], int k) {
    return (words[0] >> (8 * (k & 1) + BITS * (k >> 1))) & ((1u << BITS) - 1);
  }
};

// 3-bit: a step of 16 k is two 2-bit blocks of the low two bits (k 0..7, then 8..15) and one
// 1-bit block of the high bit (byte h, bit f holds k = 2f + h).
template <>
struct Format<3> {
  static constexpr int BLOCKS = 3;
  static constexpr int K_PER_STEP = 16;
  static constexpr int STEP_BYTES = 96;
  __device__ __forceinline__ static u32 code(const u32 (&words)[BLOCKS], int k) {
    const int low_k = k & 7;
    const u32 low = (words[k >> 3] >> (8 * (low_k & 1) + 2 * (low_k >> 1))) & 3u;
    const u32 high = (words[2] >> (8 * (k & 1) + (k >> 1))) & 1u;
    return low | (high << 2);
  }
};

// Config (generated): BITS, N, K, LD (output row pitch in elements, a multiple of 16 >= K),
// GROUP (k per group; K for group=-1), GROUPS, ZERO, OUT (bf16 or fp16), HAS_EQ, WARPS,
// UNROLL (chunks a lane handles, their loads all in flight together).
// Grid: x = panel (16 columns), y = run of WARPS * 2 * UNROLL chunks of CHUNK_K k.
template <class Config>
__device__ __forceinline__ void dequantize(const u16* __restrict__ qweight, const u16* __restrict__ scales,
                                           const u16* __restrict__ zeros, const float* __restrict__ eq_scale,
                                           u16* __restrict__ weights) {
  typedef Format<Config::BITS> F;
  constexpr int K_PER_STEP = F::K_PER_STEP;
  constexpr int CHUNK_K = K_PER_STEP > 8 ? K_PER_STEP : 8;  // k per lane and chunk: 16 or 32 bytes out
  constexpr int STEPS_PER_CHUNK = CHUNK_K / K_PER_STEP;
  constexpr long long STEPS = (Config::K + K_PER_STEP - 1) / K_PER_STEP;
  constexpr long long PANEL_WORDS = STEPS * F::STEP_BYTES / 2;
  constexpr long long CHUNKS = Config::LD / CHUNK_K;
  constexpr int SLOTS = Config::WARPS * 2;  // half-warps per thread block
  constexpr int UNROLL = Config::UNROLL;
  static_assert(Config::LD % 16 == 0 && Config::LD >= Config::K, "LD: a multiple of 16 covering K");
  static_assert(Config::GROUP % CHUNK_K == 0 || Config::GROUPS == 1, "a chunk never straddles two groups");

  const int column = threadIdx.x & 15;
  const int slot = threadIdx.x >> 4;
  const long long panel = blockIdx.x;
  const long long n = panel * 16 + column;
  const long long first_chunk = static_cast<long long>(blockIdx.y) * SLOTS * UNROLL + slot;
  const u16* panel_words = qweight + panel * PANEL_WORDS;

  // [UNROLL][STEPS_PER_CHUNK][BLOCKS] 16-bit words of this column: every load before any use.
  u32 words[UNROLL][STEPS_PER_CHUNK][F::BLOCKS];
#pragma unroll
  for (int u = 0; u < UNROLL; ++u)
#pragma unroll
    for (int s = 0; s < STEPS_PER_CHUNK; ++s) {
      const long long step = (first_chunk + u * SLOTS) * STEPS_PER_CHUNK + s;
#pragma unroll
      for (int b = 0; b < F::BLOCKS; ++b)
        words[u][s][b] = step < STEPS ? panel_words[step * (F::STEP_BYTES / 2) + b * 16 + column] : 0u;
    }
  if (n >= Config::N) return;  // padded columns of the last panel: no output row

#pragma unroll
  for (int u = 0; u < UNROLL; ++u) {
    const long long chunk = first_chunk + u * SLOTS;
    if (chunk >= CHUNKS) break;
    const long long k0 = chunk * CHUNK_K;
    long long group = k0 / Config::GROUP;
    if (group >= Config::GROUPS) group = Config::GROUPS - 1;  // k past K (padding of LD)
    const long long table = (panel * Config::GROUPS + group) * 16 + column;
    const float scale = half_to_float(scales[table]);
    float zero = static_cast<float>(1 << (Config::BITS - 1));  // zero=none: implicit 2^(bits-1)
    if (Config::ZERO != zero_none) zero = half_to_float(zeros[table]);
    const float offset = -zero * scale;  // value = code * scale - zero * scale: one FMA a weight

    // [CHUNK_K] fp32 weights of column n, k0 .. k0+CHUNK_K-1.
    float values[CHUNK_K];
#pragma unroll
    for (int s = 0; s < STEPS_PER_CHUNK; ++s)
#pragma unroll
      for (int i = 0; i < K_PER_STEP; ++i)
        values[s * K_PER_STEP + i] = fmaf(code_to_float(F::code(words[u][s], i)), scale, offset);
    if (Config::HAS_EQ) {
#pragma unroll
      for (int i = 0; i < CHUNK_K; ++i) values[i] *= k0 + i < Config::K ? eq_scale[k0 + i] : 0.0f;
    }
    uint4* target = reinterpret_cast<uint4*>(weights + n * Config::LD + k0);
#pragma unroll
    for (int store = 0; store < CHUNK_K / 8; ++store) {
      const float* eight = values + store * 8;
      target[store] = make_uint4(pack_pair<Config::OUT>(eight[0], eight[1]), pack_pair<Config::OUT>(eight[2], eight[3]),
                                 pack_pair<Config::OUT>(eight[4], eight[5]), pack_pair<Config::OUT>(eight[6], eight[7]));
    }
  }
}

}  // namespace lowbit_dequant
