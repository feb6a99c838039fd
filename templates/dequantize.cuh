// Dequantization of native-layout weights (docs/layout.md) to a dense [N][LD] bf16 or fp16
// matrix, row n = output feature, k contiguous: the K-major operand of a "TN" GEMM
// (codegen/cuda/dequant_gemm_kernel.cpp runs cuBLASLt on it). Bits 2, 3, 4 and 8; zero
// none/int/float; any group; optionally the per-K equalization scale folded in
// (W[n][k] * eq[k], rounded once to the output type). Header-free for NVRTC, like gemv.cuh.
//
// The pass is bandwidth-bound (it reads the packed codes once and writes 16 bits per weight;
// 4-bit: 4 bytes written per byte read), so it is organised like a copy kernel:
//   - a persistent grid (a few blocks per SM, sized by the host from the SM count and the
//     occupancy) walks tiles of one panel x TILE_K k, k fastest: the tiles in flight at once
//     are consecutive, so the reads stream through one panel's contiguous bytes and the writes
//     fill the same 16 rows side by side (whole DRAM pages, no power-of-two stride between
//     concurrent blocks, which the earlier one-tile-per-block grid had: every block in flight
//     wrote at the same offset of 8 KiB rows).
//   - a tile's packed bytes are contiguous: they are copied global -> shared with 16-byte
//     cp.async (bypassing L1), STAGES - 1 tiles in flight per block while one is converted, so
//     the loads need no registers and each one moves 16 bytes; one barrier a tile.
//   - from shared memory, lane j (0..15) of a half-warp reads the 16-bit word at byte 2j of a
//     32-byte block (byte 2j holds column j's even k, byte 2j+1 its odd k): conflict-free.
//   - each lane writes 16 bytes (8 k of its column); the two half-warps of a warp write
//     adjacent chunks of the same rows, so each store instruction fills whole 32-byte sectors.
//   - a group's scale and zero point for the next tile are loaded one tile ahead.

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
// UNROLL (chunks of CHUNK_K k a lane converts per tile), STAGES (tiles in flight per block).
// Grid: any number of blocks of WARPS * 32 threads, one dimension; each walks the tiles
// blockIdx.x, blockIdx.x + gridDim.x, ... (the host launches min(TILES, SMs x occupancy)).
template <class Config>
struct Tiling {
  typedef Format<Config::BITS> F;
  static constexpr int K_PER_STEP = F::K_PER_STEP;
  static constexpr int CHUNK_K = K_PER_STEP > 8 ? K_PER_STEP : 8;  // k per lane and chunk: 16 or 32 bytes out
  static constexpr int STEPS_PER_CHUNK = CHUNK_K / K_PER_STEP;
  static constexpr long long STEPS = (Config::K + K_PER_STEP - 1) / K_PER_STEP;  // per panel
  static constexpr long long PANEL_BYTES = STEPS * F::STEP_BYTES;
  static constexpr long long PANELS = (Config::N + 15) / 16;
  static constexpr long long CHUNKS = Config::LD / CHUNK_K;  // per output row
  static constexpr int SLOTS = Config::WARPS * 2;              // half-warps per block
  static constexpr int THREADS = Config::WARPS * 32;
  static constexpr int TILE_CHUNKS = SLOTS * Config::UNROLL;
  static constexpr int TILE_BYTES = TILE_CHUNKS * STEPS_PER_CHUNK * F::STEP_BYTES;  // contiguous in the panel
  static constexpr int COPIES = (TILE_BYTES / 16 + THREADS - 1) / THREADS;           // 16-byte copies a thread
  static constexpr long long TILES_PER_PANEL = (CHUNKS + TILE_CHUNKS - 1) / TILE_CHUNKS;
  static constexpr long long TILES = PANELS * TILES_PER_PANEL;
  static_assert(Config::LD % 16 == 0 && Config::LD >= Config::K, "LD: a multiple of 16 covering K");
  static_assert(Config::GROUP % CHUNK_K == 0 || Config::GROUPS == 1, "a chunk never straddles two groups");
  static_assert(F::STEP_BYTES % 16 == 0, "a step is whole 16-byte copies, so a copy is all in or all out of a panel");
  static_assert(Config::STAGES >= 2, "one tile converted while the next one lands");
  static_assert(Config::STAGES * TILE_BYTES <= 48 * 1024, "static shared memory: at most 48 KiB a block");
};

// 16 bytes global -> shared without registers or L1; `valid` 0 zero-fills (past the panel).
__device__ __forceinline__ void copy_16_async(void* shared_target, const void* global_source, bool valid) {
  const u32 target = static_cast<u32>(__cvta_generic_to_shared(shared_target));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(target), "l"(global_source),
               "r"(valid ? 16 : 0));
}

template <class Config>
__device__ __forceinline__ void dequantize(const unsigned char* __restrict__ qweight, const u16* __restrict__ scales,
                                           const u16* __restrict__ zeros, const float* __restrict__ eq_scale,
                                           u16* __restrict__ weights) {
  typedef Tiling<Config> T;
  typedef typename T::F F;
  constexpr int UNROLL = Config::UNROLL;
  constexpr int STAGES = Config::STAGES;

  // [STAGES][TILE_BYTES] packed bytes of one tile each, as stored: [step][block][16 columns] 16-bit words.
  __shared__ __align__(16) unsigned char stage[STAGES][T::TILE_BYTES];

  const int column = threadIdx.x & 15;
  const int slot = threadIdx.x >> 4;

  // Producer: the whole tile's bytes into stage slot `buffer`; past TILES, nothing (the
  // commit that follows keeps the group count uniform).
  auto issue = [&](long long tile, int buffer) {
    if (tile >= T::TILES) return;
    const long long panel = tile / T::TILES_PER_PANEL;
    const long long offset = tile % T::TILES_PER_PANEL * T::TILE_BYTES;  // within the panel
    const unsigned char* source = qweight + panel * T::PANEL_BYTES + offset;
#pragma unroll
    for (int i = 0; i < T::COPIES; ++i) {
      const int piece = threadIdx.x + i * T::THREADS;
      if (T::TILE_BYTES % (16 * T::THREADS) == 0 || piece < T::TILE_BYTES / 16) {
        const bool inside = offset + piece * 16 < T::PANEL_BYTES;
        copy_16_async(&stage[buffer][piece * 16], inside ? source + piece * 16 : qweight, inside);
      }
    }
  };

  // This lane's group entries (scale, zero point bits) for its UNROLL chunks of `tile`.
  u16 scale_bits[UNROLL];
  u16 zero_bits[UNROLL];
  auto load_tables = [&](long long tile) {
    const long long panel = tile / T::TILES_PER_PANEL;
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const long long chunk = tile % T::TILES_PER_PANEL * T::TILE_CHUNKS + u * T::SLOTS + slot;
      long long group = chunk * T::CHUNK_K / Config::GROUP;
      if (group >= Config::GROUPS) group = Config::GROUPS - 1;  // k past K (padding of LD)
      const long long table = (panel * Config::GROUPS + group) * 16 + column;
      const bool used = tile < T::TILES && chunk < T::CHUNKS;
      scale_bits[u] = used ? scales[table] : u16(0);
      if (Config::ZERO != zero_none) zero_bits[u] = used ? zeros[table] : u16(0);
    }
  };

  const long long first = blockIdx.x;
  const long long stride = gridDim.x;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    issue(first + s * stride, s);
    asm volatile("cp.async.commit_group;\n" ::);
  }
  load_tables(first);

  int buffer = 0;
  for (long long tile = first; tile < T::TILES; tile += stride) {
    // value = code * scale - zero * scale: one FMA a weight. The bits were loaded a tile ago.
    float scale[UNROLL];
    float offset[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      scale[u] = half_to_float(scale_bits[u]);
      float zero = static_cast<float>(1 << (Config::BITS - 1));  // zero=none: implicit 2^(bits-1)
      if (Config::ZERO != zero_none) zero = half_to_float(zero_bits[u]);
      offset[u] = -zero * scale[u];
    }
    load_tables(tile + stride);

    // One barrier a tile: after it, this tile has landed for every thread, and every thread
    // is done with the slot converted last iteration, which the issue below refills. While
    // this tile is converted, the next STAGES - 1 tiles are in flight.
    asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 2));
    __syncthreads();
    issue(tile + (STAGES - 1) * stride, (buffer + STAGES - 1) % STAGES);
    asm volatile("cp.async.commit_group;\n" ::);

    const long long panel = tile / T::TILES_PER_PANEL;
    const long long n = panel * 16 + column;
    const u16* words = reinterpret_cast<const u16*>(stage[buffer]);
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int local_chunk = u * T::SLOTS + slot;
      const long long chunk = tile % T::TILES_PER_PANEL * T::TILE_CHUNKS + local_chunk;
      if (n >= Config::N || chunk >= T::CHUNKS) break;  // padded column or k past LD: no output
      // [STEPS_PER_CHUNK][BLOCKS] 16-bit words of this column.
      u32 step_words[T::STEPS_PER_CHUNK][F::BLOCKS];
#pragma unroll
      for (int s = 0; s < T::STEPS_PER_CHUNK; ++s)
#pragma unroll
        for (int b = 0; b < F::BLOCKS; ++b)
          step_words[s][b] = words[(local_chunk * T::STEPS_PER_CHUNK + s) * (F::STEP_BYTES / 2) + b * 16 + column];

      const long long k0 = chunk * T::CHUNK_K;
      // [CHUNK_K] fp32 weights of column n, k0 .. k0+CHUNK_K-1.
      float values[T::CHUNK_K];
#pragma unroll
      for (int s = 0; s < T::STEPS_PER_CHUNK; ++s)
#pragma unroll
        for (int i = 0; i < T::K_PER_STEP; ++i)
          values[s * T::K_PER_STEP + i] = fmaf(code_to_float(F::code(step_words[s], i)), scale[u], offset[u]);
      if (Config::HAS_EQ) {
#pragma unroll
        for (int i = 0; i < T::CHUNK_K; ++i) values[i] *= k0 + i < Config::K ? eq_scale[k0 + i] : 0.0f;
      }
      uint4* target = reinterpret_cast<uint4*>(weights + n * Config::LD + k0);
#pragma unroll
      for (int store = 0; store < T::CHUNK_K / 8; ++store) {
        const float* eight = values + store * 8;
        target[store] = make_uint4(pack_pair<Config::OUT>(eight[0], eight[1]), pack_pair<Config::OUT>(eight[2], eight[3]),
                                   pack_pair<Config::OUT>(eight[4], eight[5]), pack_pair<Config::OUT>(eight[6], eight[7]));
      }
    }
    buffer = (buffer + 1) % STAGES;
  }
  asm volatile("cp.async.wait_group 0;\n" ::);
}

}  // namespace lowbit_dequant
