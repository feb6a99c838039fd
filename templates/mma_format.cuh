// How the tensor-core families read each weight width of lowbit's native layout
// (docs/layout.md) into mma.sync m16n8k16 A fragments: MmaFormat<BITS, IS_BF16>, shared by
// gemv_mma.cuh (small M) and mma_gemm.cuh (tiled, medium M). Needs gemv.cuh's types (u32).
// Templates name it with an include line, which the build replaces by this text
// (codegen/cuda/embed_templates.cmake); the guard keeps one copy where a program holds two
// templates that include it.
//
// The A fragment of lane (g = lane/4, t = lane%4): A row g = panel column 2g, A row g+8 =
// column 2g+1 (a[0], a[2]: column 2g; a[1], a[3]: column 2g+1); A columns 2t, 2t+1 (a[0],
// a[1]) = the tile-relative k pair x_pair(t, 0), A columns 2t+8, 2t+9 (a[2], a[3]) = pair
// x_pair(t, 1). B must hold x at the same k.
#ifndef LOWBIT_MMA_FORMAT_CUH
#define LOWBIT_MMA_FORMAT_CUH

namespace lowbit_gemv {

// (value & mask) | bits in one LOP3 (ptxas otherwise emits an AND and an OR, and this loop is
// issue-bound: 4 instructions a tile at int4). The mask and bits are disjoint constants; one of
// them lives in a register across the loop.
__device__ __forceinline__ u32 mask_or(u32 value, u32 mask, u32 bits) {
  u32 result;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(result) : "r"(value), "r"(mask), "r"(bits));
  return result;
}

// A word of four byte codes, already masked to each byte's low bits, as two registers of 16-bit
// lanes under MAGIC's exponent byte (0x43: 128 in bf16, 0x64: 1024 in fp16), so each lane is
// MAGIC + q exactly: bytes 0-1 into column_low, bytes 2-3 into column_high. One PRMT a register,
// the bits of (pair & mask) | exponent; the caller masks the whole word once (one LOP3 for four
// codes), where permuting first and masking each pair cost a LOP3 a register.
template <bool IS_BF16>
__device__ __forceinline__ void under_exponent(u32 fields, u32& column_low, u32& column_high) {
  constexpr u32 EXPONENT_BYTES = IS_BF16 ? 0x43434343u : 0x64646464u;
  column_low = __byte_perm(fields, EXPONENT_BYTES, 0x4140);   // [byte0, exp, byte1, exp]
  column_high = __byte_perm(fields, EXPONENT_BYTES, 0x4342);  // [byte2, exp, byte3, exp]
}

// How the tensor-core family reads one format (ACT16 = bf16 or fp16 activations):
//   TILE_WORDS: 4-byte words of one 16-k tile of a panel (tile bytes / 4);
//   CHUNK_TILES: tiles of one 16-byte copy per lane (at most 512 bytes a warp); a stage of the
//   ring is one or more of these (Config::CHUNK_TILES);
//   x_pair(t, p): the tile-relative k of lane t's k pair p (B's registers b0, b1);
//   CONTIGUOUS_PAIRS: x_pair(t, 1) == x_pair(t, 0) + 2 (one 8-byte load of x);
//   decode(tile, g, t, a, a_high): lane (g, t)'s A fragment from the tile's words in shared
//   memory; OFFSET + q per element. SPLIT formats also give a_high, a second fragment whose
//   elements are worth HIGH_WEIGHT each (C = C_low + HIGH_WEIGHT * C_high); each fragment's
//   elements are then OFFSET / (1 + HIGH_WEIGHT) + its nibble.
// Codes sit in the top mantissa bits of a power of two where that costs nothing extra
// (OFFSET = 2^bits); int4 keeps its measured layout (nibble at bit 0: 128 + q, 1024 + q).
template <int BITS, bool IS_BF16>
struct MmaFormat;

// int4: lane t reads step t of the tile's 4 (k 4t .. 4t+3): byte 4g+h holds column 2g, k
// 4t+h (low nibble) and 4t+2+h (high nibble); bytes 4g+2, 4g+3 the same for column 2g+1.
template <bool IS_BF16>
struct MmaFormat<4, IS_BF16> {
  static constexpr int TILE_WORDS = 32;
  static constexpr int CHUNK_TILES = 4;
  static constexpr bool SPLIT = false;
  static constexpr float HIGH_WEIGHT = 0.0f;
  static constexpr float OFFSET = IS_BF16 ? 128.0f : 1024.0f;
  static constexpr bool CONTIGUOUS_PAIRS = true;  // x_pair(t, 1) == x_pair(t, 0) + 2
  static __device__ __forceinline__ int x_pair(int t, int p) { return 4 * t + 2 * p; }
  // Masks first, on the whole word, then under_exponent: 7 instructions a tile (LOP3, SHF, LOP3,
  // 4 PRMT) where permuting first and masking each pair cost 8 (2 PRMT, 2 SHF, 4 LOP3). The
  // registers' bits are the same either way.
  static __device__ __forceinline__ void decode(const u32* tile, int g, int t, u32 (&a)[4], u32 (&)[4]) {
    const u32 word = tile[t * 8 + g];  // byte 4g of step t: conflict-free
    under_exponent<IS_BF16>(word & 0x0f0f0f0fu, a[0], a[1]);         // k 4t+h of each byte: columns 2g, 2g+1
    under_exponent<IS_BF16>((word >> 4) & 0x0f0f0f0fu, a[2], a[3]);  // k 4t+2+h of each byte
  }
};

// 2-bit: a tile is two 8-k steps; lane t reads step t/2 (lanes t, t^1 share the word, a
// broadcast) and takes fields 2(t&1) and 2(t&1)+1: k 4t+h and 4t+2+h.
template <bool IS_BF16>
struct MmaFormat<2, IS_BF16> {
  static constexpr int TILE_WORDS = 16;
  static constexpr int CHUNK_TILES = 8;
  static constexpr bool SPLIT = false;
  static constexpr float HIGH_WEIGHT = 0.0f;
  static constexpr float OFFSET = 4.0f;
  static constexpr bool CONTIGUOUS_PAIRS = true;
  static __device__ __forceinline__ int x_pair(int t, int p) { return 4 * t + 2 * p; }
  static __device__ __forceinline__ void decode(const u32* tile, int g, int t, u32 (&a)[4], u32 (&)[4]) {
    // 4 + q: bf16 code at bits 5-6 under 4.0 (0x4080), fp16 at bits 8-9 under 4.0 (0x4400).
    constexpr int POSITION = IS_BF16 ? 5 : 8;
    constexpr u32 MASK = 0x3u << POSITION | 0x3u << (16 + POSITION);
    constexpr u32 EXPONENT = IS_BF16 ? 0x40804080u : 0x44004400u;
    const u32 word = tile[(t >> 1) * 8 + g];
    const int field_shift = 4 * (t & 1);  // fields 2(t&1), 2(t&1)+1 to bits 0 and 2
    const u32 low_pair = __byte_perm(word, 0u, 0x4140) >> field_shift;   // column 2g
    const u32 high_pair = __byte_perm(word, 0u, 0x4342) >> field_shift;  // column 2g+1
    a[0] = mask_or(low_pair << POSITION, MASK, EXPONENT);
    a[1] = mask_or(high_pair << POSITION, MASK, EXPONENT);
    a[2] = mask_or(low_pair << (POSITION - 2), MASK, EXPONENT);
    a[3] = mask_or(high_pair << (POSITION - 2), MASK, EXPONENT);
  }
};

// 3-bit: a tile is one 16-k step (low bits of k 0..7, of k 8..15, high bits of all 16); lane
// t takes k 4t .. 4t+3: low fields 2(t&1), 2(t&1)+1 of block t/2, high bits 2t and 2t+1.
template <bool IS_BF16>
struct MmaFormat<3, IS_BF16> {
  static constexpr int TILE_WORDS = 24;
  static constexpr int CHUNK_TILES = 4;  // 384 bytes: 24 lanes copy
  static constexpr bool SPLIT = false;
  static constexpr float HIGH_WEIGHT = 0.0f;
  static constexpr float OFFSET = 8.0f;
  static constexpr bool CONTIGUOUS_PAIRS = true;
  static __device__ __forceinline__ int x_pair(int t, int p) { return 4 * t + 2 * p; }
  static __device__ __forceinline__ void decode(const u32* tile, int g, int t, u32 (&a)[4], u32 (&)[4]) {
    // 8 + q: bf16 code at bits 4-6 under 8.0 (0x4100), fp16 at bits 7-9 under 8.0 (0x4800).
    constexpr int POSITION = IS_BF16 ? 4 : 7;
    constexpr u32 LOW_MASK = 0x3u << POSITION | 0x3u << (16 + POSITION);
    constexpr u32 HIGH_MASK = 0x4u << POSITION | 0x4u << (16 + POSITION);
    constexpr u32 EXPONENT = IS_BF16 ? 0x41004100u : 0x48004800u;
    const u32 low_word = tile[(t >> 1) * 8 + g];
    const u32 high_word = tile[16 + g];
    const int low_shift = 4 * (t & 1);
    const int high_shift = 2 * t;
    const u32 low0 = __byte_perm(low_word, 0u, 0x4140) >> low_shift;    // column 2g
    const u32 low1 = __byte_perm(low_word, 0u, 0x4342) >> low_shift;    // column 2g+1
    const u32 high0 = __byte_perm(high_word, 0u, 0x4140) >> high_shift;
    const u32 high1 = __byte_perm(high_word, 0u, 0x4342) >> high_shift;
    a[0] = ((low0 << POSITION) & LOW_MASK) | ((high0 << (POSITION + 2)) & HIGH_MASK) | EXPONENT;
    a[1] = ((low1 << POSITION) & LOW_MASK) | ((high1 << (POSITION + 2)) & HIGH_MASK) | EXPONENT;
    a[2] = ((low0 << (POSITION - 2)) & LOW_MASK) | ((high0 << (POSITION + 1)) & HIGH_MASK) | EXPONENT;
    a[3] = ((low1 << (POSITION - 2)) & LOW_MASK) | ((high1 << (POSITION + 1)) & HIGH_MASK) | EXPONENT;
  }
};

// 8-bit: a tile is eight 2-k steps; lane t reads steps t and t+4 (conflict-free words), bytes
// 4g+h column 2g and 4g+2+h column 2g+1 at k 2t+h (step t) and 8+2t+h (step t+4). fp16: the
// byte under 0x64 is 1024 + q, one byte permute per register. bf16 has 8 significant bits, so
// 2^n + q is not exact for 8-bit q: the two nibbles are separate fragments (128 + nibble),
// C = C_low + 16 * C_high, offset 128 * 17.
template <bool IS_BF16>
struct MmaFormat<8, IS_BF16> {
  static constexpr int TILE_WORDS = 64;
  static constexpr int CHUNK_TILES = 2;
  static constexpr bool SPLIT = IS_BF16;
  static constexpr float HIGH_WEIGHT = 16.0f;
  static constexpr float OFFSET = IS_BF16 ? 128.0f * 17.0f : 1024.0f;
  static constexpr bool CONTIGUOUS_PAIRS = false;
  static __device__ __forceinline__ int x_pair(int t, int p) { return 2 * t + 8 * p; }
  static __device__ __forceinline__ void decode(const u32* tile, int g, int t, u32 (&a)[4], u32 (&a_high)[4]) {
    const u32 words[2] = {tile[t * 8 + g], tile[(t + 4) * 8 + g]};
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      if (IS_BF16) {
        // Masks first, then under_exponent (as int4): 7 instructions a word where permuting
        // first cost 8; the same bits.
        under_exponent<true>(words[p] & 0x0f0f0f0fu, a[2 * p], a[2 * p + 1]);  // columns 2g, 2g+1
        under_exponent<true>((words[p] >> 4) & 0x0f0f0f0fu, a_high[2 * p], a_high[2 * p + 1]);
      } else {
        a[2 * p] = __byte_perm(words[p], 0x64u, 0x4140);      // [byte0, 0x64, byte1, 0x64]
        a[2 * p + 1] = __byte_perm(words[p], 0x64u, 0x4342);  // [byte2, 0x64, byte3, 0x64]
      }
    }
  }
};

}  // namespace lowbit_gemv

#endif  // LOWBIT_MMA_FORMAT_CUH
