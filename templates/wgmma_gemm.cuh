// Hopper tensor-core GEMM family for medium and large M (sm_90a only): 2-, 4- or 8-bit weights in
// lowbit's native layout, bf16 or fp16 activations, wgmma.mma_async with the dequantized weights as the
// A operand from registers and x from shared memory, fp32 accumulation. Needs gemv.cuh's
// conversion helpers and mma_gemm.cuh's copy and pair helpers (the generator emits all three).
// Compiled by NVRTC; codegen/cuda/wgmma_generator.cpp writes the Config and the entry point.
//
// y^T = W x^T, as in mma_gemm.cuh: a warpgroup's wgmma m64nNk16 multiplies A = 64 weight
// columns x 16 k by B = 16 k x N rows of x (N = BLOCK_M) into D = [64 columns][N rows] fp32.
// Warp i of a warpgroup owns A's rows 16i .. 16i+15, and its register fragment of them has
// mma.sync m16n8k16's A layout, so each warp dequantizes one 16-column panel exactly as
// mma_gemm.cuh does (same word choice, same row permutation: A row g stands for panel column
// 2g, row g+8 for column 2g+1). D's layout per warp is then the mma's C layout per 8-row tile:
// lane (g, t) holds d[4i .. 4i+3] = (column 2g, row 8i+2t), (2g, 8i+2t+1), (2g+1, 8i+2t),
// (2g+1, 8i+2t+1).
//
// B is x's tile [BLOCK_K / 64][BLOCK_M rows][64 k] in shared memory, K-major, each 128-byte row
// swizzled in 16-byte chunks (chunk c of row r stored at chunk c ^ (r % 8)): the canonical
// 128-byte-swizzle layout the shared-memory matrix descriptor names (start >> 4, stride 1024
// bytes between 8-row groups, mode 1 in bits 62-63). The hardware applies the XOR to address
// bits 4-6 from bits 7-9, so each 64-k atom must start 1024-byte aligned, and the k16 steps
// inside an atom are reached by adding 32 bytes to the start address.
//
// Scales are folded into A (one rounding of each dequantized weight s (q - z) to the
// activation type, as Marlin and Machete do): the accumulator then holds y itself, so no fp32
// group accumulators double the registers and no wgmma must be waited for at each group's
// end, which would serialize the tensor cores with the fold. The cost is one rounding per
// weight (2^-8 relative in bf16, 2^-11 in fp16; the family is verified against
// dequantized_weights_tolerance, lowbit/tolerance.h). Each weight is still rounded once only:
//   zero=none/int: MAGIC + q (the code OR-ed under the exponent) minus MAGIC + z is q - z,
//     exact; fp16: one mul.rn.f16x2 by the scale pair rounds (q - z) s once. bf16: the fp16
//     scale s is split into s_hi = bf16(s) and s_lo = s - s_hi (at most 4 significant bits,
//     exact in bf16); (q - z) s_lo is exact (at most 4 x 4 bits), and one fma (q - z) s_hi +
//     that rounds (q - z) s once.
//   zero=float, and bf16 at 8 bits (128 + q needs 9 significant bits, more than bf16's 8, and
//     (q - z) s_lo up to 12): q s + (-z s) in fp32, then one conversion. With an integer z that
//     is exact before the conversion ((q - z) s has at most 8 + 11 significant bits); with a
//     float z, z s is rounded at 2^-24 first.
//
// Group sums (GROUP_SUMS = 1, "_gs"; tiles of up to 64 rows, a stage inside one group, zero=none
// or int outside bf16 at 8 bits): A holds q - z itself, exact (an integer of at most 8 bits), the
// wgmmas sum each group into the accumulator, and at the group's end those fp32 sums are scaled
// into the totals: total += s . sum, with s the fp16 scale taken exactly in fp32. No weight is
// rounded at all, and a register's decode is its extraction and one add: the fp16 multiply and
// bf16's two FMAs go. What it costs: a group's end waits for its wgmmas (wgmma.wait_group 0, just
// before the next stage's wgmmas are issued: the decode of that stage has run beside them) and one
// FMA per accumulator a group, BLOCK_M / 2 a lane; against 1 (fp16) or 2 (bf16) instructions saved
// per A register, 4 K_TILES a stage, it pays where the tile is short (few rows per weight decoded).
// The next group's first wgmma overwrites the sums (scale-d = 0) rather than adding to them.
//
// Widths (WgmmaFormat, below): the lane's two 32-bit words of a k-tile hold, in bytes 0-1 and
// 2-3, its columns' codes of k 2t, 2t+1 and 2t+8, 2t+9 in their low bits, read from the panel's
// steps as the native layout stores them (docs/layout.md): 4 bits, words g of 32-byte steps t/2
// and 2 + t/2 shifted by the nibble; 8 bits, words g of steps t and 4 + t; 2 bits, words g of
// steps 0 and 1 shifted by field t; 3 bits, one 96-byte step a k-tile, words g of its two
// low-bit blocks shifted by field t under bits t and t + 4 of word g of its high-bit block.
//
// Copies: each copying thread works out its sources and its row and panel checks once per block
// (CopyPlan, in the kernel); a stage's copies then lie at compile-time strides from one x and one
// weight pointer, so a stage costs about an instruction and a predicate per 16 bytes. (Recomputing
// every copy's address each stage was most of a consumer's instructions, and the consumers'
// serial instruction stream, not the tensor cores, set the pace: docs/benchmarks.md.)
//
// Pipeline: all threads copy with cp.async into a STAGES-slot ring (one commit group per stage).
// A stage's wgmmas read x from shared memory asynchronously, so a slot is refilled only after
// the wgmmas that read it are known complete: each iteration waits for the previous stage's
// wgmma group (wgmma.wait_group 1 leaves the newest in flight), and the refill two stages later
// comes after the barrier that follows that wait in every warpgroup. So STAGES - 2 stages load
// while one is dequantized and one multiplies. The dequantized A of consecutive stages lives in
// two register sets (the wgmmas of one stage still read theirs while the next is dequantized); the
// main loop is unrolled over turns of lcm(2, STAGES) stages, so slots, shared-memory addresses and
// descriptors are compile-time offsets (the per-stage address work was a fifth of a consumer's
// instructions, docs/benchmarks.md); so are, from a turn's phase computed once, the full
// barriers' parities, and where a group spans one or two stages, which stages start one (their
// per-stage division, masking and group comparison were 18 of 146 instructions a consumer stage). cp.async writes through the generic proxy and
// wgmma reads through the async proxy: a fence.proxy.async between them makes the copies
// visible.
//
// Warp-specialized variant (PRODUCER = 1, for large M): one more warpgroup, after the consumer
// warpgroups, alone issues every copy, and the ring's slots hand over through mbarriers instead
// of cp.async groups and a block barrier per stage. A whole warpgroup because the register file
// is split over the SM's four quadrants, a warp to each in turn: with 9 warps, 3 share one
// quadrant and ptxas caps every thread at 168 registers, too few for a 256-row accumulator. With
// 12 warps, setmaxnreg moves registers from the producer (64: its unrolled copy loops spill
// below that) to the two consumer warpgroups (216). full[slot] (128 arrivals: each producer
// thread's cp.async.mbarrier.arrive.noinc fires when that thread's copies of the stage have
// landed) tells the consumers a stage is there; empty[slot] (one arrival per consumer thread,
// made after the wgmma wait that retires the stage's wgmmas, so its x is no longer read) tells
// the producer the slot may be refilled. So all STAGES slots load ahead, no consumer spends issue
// slots on copies, and no __syncthreads lies in the main loop. The consumer makes the landed
// copies visible to wgmma's async proxy with its own fence.proxy.async after the full wait
// (the mbarrier's acquire orders the copies before that fence).
//
// Split-K across blocks (SPLIT_K > 1, for grids too small to fill the GPU: N = 4096 at small M
// has 32..64 column tiles for 132 SMs): blockIdx.z takes one run of SPLIT_STAGES consecutive
// stages (an even count, whole stages, so whole groups or whole parts of one; the scales are
// folded into A, so a group cut between two blocks is still exact) and stores its fp32
// accumulator, bias-free, into partials [SPLIT_K][M][N] (the caller's workspace). A second
// kernel, wgmma_split_reduce, sums the SPLIT_K partials of each element in split order, adds
// the bias and converts: the same sums in the same order every run, no atomics.
// Cluster split (CLUSTER_SPLIT = 1, "_cs<SPLIT_K>"): the SPLIT_K blocks of a tile run as one
// thread-block cluster and sum their accumulators through distributed shared memory instead
// (ClusterSplitWork): each lays its accumulator over its idle ring, a cluster barrier, then each
// block adds its share of the tile's fragments from the SPLIT_K blocks in split order (mapa,
// ld.shared::cluster) and stores that share with bias and conversion. No workspace, no second
// launch, no partials through L2; the cost is a cluster's co-scheduling (its blocks on one GPC).
//
// Stream-K (Config::STREAM_K blocks, a persistent grid; wgmma_stream_k below): the tile code
// above runs once per segment of a block's equal share of every tile's stage pairs, and a tile
// cut between blocks is summed through the workspace in block order. The tiled grid and the
// stream-K one share wgmma_tile through a Work policy (TiledWork, StreamKWork). With PRODUCER = 1
// the ring lives as long as the block: its mbarriers are initialized once, and the producer and
// the consumers walk the same segments (TilePart: each role runs its own half of wgmma_tile)
// counting one block-lifetime ring position, so the producer loads a segment's first stages while
// the consumers still finish the previous one (wgmma_stream_k says why that is race-free). Where
// BLOCKS divides the tiles, every share is whole tiles (consecutive ones, M fastest): a persistent
// tiled grid with no fix-up, which the generator offers as "whole tiles a persistent block" (the
// ring is refilled across tiles, and a block's tiles share their weight panel).

namespace lowbit_gemv {

typedef unsigned long long u64;

// D = A . B + (accumulate ? D : 0) for one m64nNk16 tile (N = ROWS: 16, 32, 64, 128 or 256): A
// from registers (4 x 2 bf16/fp16 a lane), B from the shared-memory matrix descriptor b, D fp32 in
// N / 2 registers a lane. Asynchronous: D and A may be touched again only after a wgmma.wait_group
// covering it. Its inline PTX names each of the N / 2 accumulators, so the generator writes the
// one specialization a kernel uses after this file (WgmmaGenerator::instruction_source).
template <int ROWS, bool IS_BF16>
__device__ __forceinline__ void wgmma_rows(float (&d)[ROWS / 2], const u32 (&a)[4], u64 b, bool accumulate);

// Orders this warpgroup's register writes (A fragments, accumulators) before the wgmmas after it.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most PENDING of this warpgroup's committed wgmma groups are in flight.
template <int PENDING>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(PENDING) : "memory");
}
// Keeps the compiler from moving accumulator reads or writes across the asynchronous region.
template <int COUNT>
__device__ __forceinline__ void fence_accumulators(float (&d)[COUNT]) {
#pragma unroll
  for (int i = 0; i < COUNT; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// GROUP_SUMS: totals += s . sums, D's layout (top of file): d[4i], d[4i + 1] are column 2g's
// (scale[0]), d[4i + 2], d[4i + 3] column 2g+1's (scale[1]).
template <int COUNT>
__device__ __forceinline__ void fold_group_sums(float (&totals)[COUNT], const float (&sums)[COUNT],
                                                const float (&scale)[2]) {
#pragma unroll
  for (int i = 0; i < COUNT; ++i) totals[i] = fmaf(scale[(i >> 1) & 1], sums[i], totals[i]);
}
// Makes this thread's generic-proxy writes to shared memory (cp.async) visible to the async
// proxy (wgmma's operand reads).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// mbarriers of the warp-specialized ring (shared-window addresses, 8-byte aligned).
__device__ __forceinline__ void mbarrier_init(u32 barrier, u32 count) {
  asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" ::"r"(barrier), "r"(count) : "memory");
}
// Release: this thread's earlier shared-memory reads and writes happen before the phase completes.
__device__ __forceinline__ void mbarrier_arrive(u32 barrier) {
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared.b64 state, [%0];\n}\n" ::"r"(barrier) : "memory");
}
// One arrival, counted in the barrier's init count (.noinc), when every cp.async this thread
// issued so far has landed.
__device__ __forceinline__ void mbarrier_arrive_on_copies(u32 barrier) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];\n" ::"r"(barrier) : "memory");
}
// Acquire: returns once the phase of parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait(u32 barrier, u32 parity) {
  u32 done;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(barrier), "r"(parity)
        : "memory");
  } while (!done);
}

// The shared-memory matrix descriptor of a K-major, 128-byte-swizzled operand at `address`
// (a shared-window address; its atom 1024-byte aligned): start >> 4 in bits 0-13, leading
// offset unused by this layout (1, as the canonical encoding writes it), stride 1024 bytes
// (8 rows of 128 bytes) >> 4 in bits 32-45, base offset 0, swizzle mode 1 (128 bytes) in 62-63.
__device__ __forceinline__ u64 swizzled_descriptor(u32 address) {
  return static_cast<u64>((address & 0x3ffffu) >> 4) | static_cast<u64>(1) << 16 | static_cast<u64>(1024 >> 4) << 32 |
         static_cast<u64>(1) << 62;
}

// (a, b) * (c, d) on two bf16 (or fp16) lanes and a + (e, f), each lane rounded once.
template <bool IS_BF16>
__device__ __forceinline__ u32 fma_pair(u32 a, u32 b, u32 c) {
  u32 result;
  if (IS_BF16) {
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(result) : "r"(a), "r"(b), "r"(c));
  } else {
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(result) : "r"(a), "r"(b), "r"(c));
  }
  return result;
}

// Two fp32 -> one word of two bf16 (or fp16), `low` in bits 0..15, round to nearest even.
template <bool IS_BF16>
__device__ __forceinline__ u32 pack_floats(float low, float high) {
  u32 bits;
  if (IS_BF16) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(bits) : "f"(high), "f"(low));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(bits) : "f"(high), "f"(low));
  }
  return bits;
}

// One group's dequantization constants for a lane's two panel columns 2g (index 0) and 2g+1.
struct GroupConstants {
  u32 offset_pair[2];  // zero=none/int: -(MAGIC + z) twice, exact
  u32 scale_pair[2];   // zero=none/int: (s, s) (fp16), or (s_hi, s_hi) (bf16)
  u32 low_pair[2];     // zero=none/int, bf16: (s_lo, s_lo)
  float scale[2];      // zero=float: s
  float offset[2];     // zero=float: -z s
};

template <bool IS_BF16, int ZERO, int BITS>
__device__ __forceinline__ GroupConstants group_constants(u32 scale_bits, u32 zero_bits) {
  constexpr float MAGIC = IS_BF16 ? 128.0f : 1024.0f;
  GroupConstants constants;
#pragma unroll
  for (int column = 0; column < 2; ++column) {
    const u16 scale_half = static_cast<u16>(scale_bits >> (16 * column));
    const float scale = half_to_float(scale_half);
    float zero = static_cast<float>(1 << (BITS - 1));  // zero=none: implicit 2^(bits-1)
    if (ZERO != zero_none) zero = half_to_float(static_cast<u16>(zero_bits >> (16 * column)));
    constants.scale[column] = scale;
    constants.offset[column] = -zero * scale;
    const u32 offset = float_to_act<IS_BF16>(-(MAGIC + zero));  // an integer below 2^8 / 2^11: exact
    constants.offset_pair[column] = offset | offset << 16;
    const u32 high = IS_BF16 ? float_to_bf16(scale) : scale_half;
    const u32 low = IS_BF16 ? float_to_bf16(scale - bf16_to_float(static_cast<u16>(high))) : 0u;  // exact
    constants.scale_pair[column] = high | high << 16;
    constants.low_pair[column] = low | low << 16;
  }
  return constants;
}

// Whether a width and format dequantize in fp32 (top of file): zero=float, and bf16 at 8 bits.
template <bool IS_BF16, int ZERO, int BITS>
__device__ __forceinline__ constexpr bool dequantizes_in_fp32() {
  return ZERO == zero_float || (IS_BF16 && BITS == 8);
}

// One A register: the k pair of one column, dequantized to s (q - z) in the activation type (see
// the top of this file). `lanes` holds the pair in bits 0-15 and 16-31: for the fp32 path, each
// code in its lane's low BITS bits (other bits ignored); otherwise each lane already MAGIC + q in
// the activation type (code_lanes below), exact.
// GROUP_SUMS: q - z only, exact (the scale is applied to the group's sums, top of file).
template <bool IS_BF16, int ZERO, int BITS, bool GROUP_SUMS>
__device__ __forceinline__ u32 dequantize_pair(u32 lanes, const GroupConstants& constants, int column) {
  static_assert(!GROUP_SUMS || !dequantizes_in_fp32<IS_BF16, ZERO, BITS>(), "group sums take q - z exact");
  if (dequantizes_in_fp32<IS_BF16, ZERO, BITS>()) {
    const u32 fields = lanes & ((1u << BITS) - 1) * 0x00010001u;
    const float low = __uint_as_float(0x4b000000u | (fields & 0xffffu)) - 8388608.0f;  // 2^23 + q - 2^23
    const float high = __uint_as_float(0x4b000000u | (fields >> 16)) - 8388608.0f;
    return pack_floats<IS_BF16>(fmaf(low, constants.scale[column], constants.offset[column]),
                                fmaf(high, constants.scale[column], constants.offset[column]));
  }
  const u32 difference = add_pair<IS_BF16>(lanes, constants.offset_pair[column]);  // q - z, exact
  if (GROUP_SUMS) return difference;
  if (!IS_BF16) return fma_pair<false>(difference, constants.scale_pair[column], 0x80008000u);
  const u32 low_part = fma_pair<true>(difference, constants.low_pair[column], 0x80008000u);  // exact
  return fma_pair<true>(difference, constants.scale_pair[column], low_part);
}

// The lanes dequantize_pair takes for the two registers of one codes word (bytes 0-1: column 2g,
// bytes 2-3: column 2g+1, each code in its byte's low BITS bits). Outside the fp32 path the word
// is masked once, for all four codes, then set under MAGIC's exponent byte (under_exponent,
// mma_format.cuh): a register costs one PRMT and half a LOP3 instead of a PRMT and a LOP3, with
// the same bits, so the same results.
template <bool IS_BF16, int ZERO, int BITS>
__device__ __forceinline__ void code_lanes(u32 word, u32& column_low, u32& column_high) {
  if (dequantizes_in_fp32<IS_BF16, ZERO, BITS>()) {
    column_low = __byte_perm(word, 0u, 0x4140);
    column_high = __byte_perm(word, 0u, 0x4342);
    return;
  }
  constexpr u32 FIELDS = ((1u << BITS) - 1) * 0x01010101u;  // every byte's code
  under_exponent<IS_BF16>(word & FIELDS, column_low, column_high);
}

// A lane's (g, t) codes of one k-tile of its warp's panel: `low` holds k 2t, 2t+1 and `high`
// k 2t+8, 2t+9, each with column 2g's pair in bytes 0-1 and column 2g+1's in bytes 2-3, the
// code in each byte's low BITS bits (top of file; the bits above them are ignored). `steps`:
// the panel's stage in shared memory, steps of STEP_BYTES bytes and K_PER_STEP k as words.
// Conflict-free: lanes of one t read 8 consecutive words, and different t either share a word
// or lie 8 banks apart.
template <int BITS>
struct WgmmaFormat;
template <>
struct WgmmaFormat<4> {
  static constexpr int K_PER_STEP = 4;  // nibbles k0+h (low) and k0+2+h (high) of byte 2j+h
  static constexpr int STEP_BYTES = 32;
  static __device__ __forceinline__ void codes(const u32* steps, int k_tile, int g, int t, u32& low, u32& high) {
    const int nibble_shift = 4 * (t & 1);  // pairs 2t, 2t+1 of a step: low (t even) or high nibbles
    low = steps[(k_tile * 4 + (t >> 1)) * 8 + g] >> nibble_shift;
    high = steps[(k_tile * 4 + 2 + (t >> 1)) * 8 + g] >> nibble_shift;
  }
};
template <>
struct WgmmaFormat<8> {
  static constexpr int K_PER_STEP = 2;  // byte 2j+h is k0+h
  static constexpr int STEP_BYTES = 32;
  static __device__ __forceinline__ void codes(const u32* steps, int k_tile, int g, int t, u32& low, u32& high) {
    low = steps[(k_tile * 8 + t) * 8 + g];
    high = steps[(k_tile * 8 + 4 + t) * 8 + g];
  }
};
template <>
struct WgmmaFormat<2> {
  static constexpr int K_PER_STEP = 8;  // field f of byte 2j+h is k0+2f+h
  static constexpr int STEP_BYTES = 32;
  static __device__ __forceinline__ void codes(const u32* steps, int k_tile, int g, int t, u32& low, u32& high) {
    low = steps[(k_tile * 2) * 8 + g] >> (2 * t);
    high = steps[(k_tile * 2 + 1) * 8 + g] >> (2 * t);
  }
};
// 3 bits: a step is one k-tile, three 32-byte blocks (docs/layout.md): the low two bits of k 0..7
// (2-bit fields, field f of byte 2j+h is k 2f+h), of k 8..15, then the high bits of all 16 (bit f
// of byte 2j+h is k 2f+h). Lane t's pairs are field t of the first two blocks and bits t and t+4
// of the third, put under each code's low two bits.
template <>
struct WgmmaFormat<3> {
  static constexpr int K_PER_STEP = 16;
  static constexpr int STEP_BYTES = 96;
  static __device__ __forceinline__ void codes(const u32* steps, int k_tile, int g, int t, u32& low, u32& high) {
    constexpr u32 LOW_BITS = 0x03030303u;  // each byte's bits 0-1 from the low planes, the rest from the high
    const u32* step = steps + k_tile * 24;
    const u32 high_bits = step[16 + g] >> t;  // bit t (k 2t+h) at bit 0 of each byte, bit t+4 (k 2t+8+h) at bit 4
    const u32 first = step[g] >> (2 * t);
    const u32 second = step[8 + g] >> (2 * t);
    low = (first & LOW_BITS) | ((high_bits << 2) & ~LOW_BITS);
    high = (second & LOW_BITS) | ((high_bits >> 2) & ~LOW_BITS);
  }
};

// The rows a stream-K Config's schedule is laid out for: its SCHEDULE_ROWS (an any-M Config, M =
// 0: a row range's top; a call's fewer rows are masked), else its M.
template <class Config, class = void>
struct ScheduleRowsOf {
  static constexpr long long value = Config::M;
};
template <class Config>
struct ScheduleRowsOf<Config, decltype(void(Config::SCHEDULE_ROWS))> {
  static constexpr long long value = Config::SCHEDULE_ROWS;
};

// Config (generated): M, N, K, GROUP (K for group=-1), WHOLE_K_GROUP, ZERO, ACT (bf16 or fp16),
// OUT, HAS_BIAS, BITS (2, 3, 4 or 8); the tile: BLOCK_N (weight columns, 64 per consumer warpgroup), BLOCK_M (rows of
// x: the wgmma's N), BLOCK_K (k per stage, whole 64-k atoms), STAGES (>= 3); SPLIT_K (blocks
// along K, each a run of SPLIT_STAGES stages; 1: no split); PRODUCER (1: a warp-specialized copy
// warp, above); SCHEDULE_ROWS (an any-M stream-K program: ScheduleRowsOf); STREAM_K and REMAINDER_SPLIT (stream-K programs only: the persistent blocks and
// the hybrid schedule's sharing, StreamKSchedule).
template <class Config>
struct WgmmaTile {
  static constexpr int BLOCK_N = Config::BLOCK_N;
  static constexpr int BLOCK_M = Config::BLOCK_M;
  static constexpr int BLOCK_K = Config::BLOCK_K;
  static constexpr int STAGES = Config::STAGES;
  static constexpr int WARPGROUPS = BLOCK_N / 64;  // consumer warpgroups
  static constexpr bool PRODUCER = Config::PRODUCER != 0;
  static constexpr int CONSUMER_THREADS = WARPGROUPS * 128;
  // The producer warpgroup comes after the consumers.
  static constexpr int THREADS = CONSUMER_THREADS + (PRODUCER ? 128 : 0);
  static constexpr int COPIERS = PRODUCER ? 128 : THREADS;  // threads that issue the copies
  // setmaxnreg's per-thread counts with two consumer warpgroups: 128 x 64 + 256 x 216 <= 65536.
  // (With one, 8 warps get 255 registers each already.)
  static constexpr bool MOVE_REGISTERS = PRODUCER && WARPGROUPS == 2;
  // Ring uses rounded up to a multiple of STAGES (a stream-K segment's, PRODUCER = 1: the next
  // segment then starts at slot 0, wgmma_stream_k).
  static __device__ __forceinline__ int whole_turns(int uses) { return (uses + STAGES - 1) / STAGES * STAGES; }
  static constexpr int PANELS = BLOCK_N / 16;  // one per warp
  static constexpr int BITS = Config::BITS;
  static constexpr int K_PER_STEP = WgmmaFormat<BITS>::K_PER_STEP;  // k per step of the native layout
  static constexpr int STEP_BYTES = WgmmaFormat<BITS>::STEP_BYTES;  // 32, or 96 at 3 bits
  static constexpr int PANEL_STAGE_BYTES = BLOCK_K / K_PER_STEP * STEP_BYTES;  // one panel's weights of a stage
  static constexpr int K_TILES = BLOCK_K / 16;
  static constexpr int ATOMS = BLOCK_K / 64;  // 128-byte-swizzle atoms along k
  static constexpr int STAGE_GROUPS = Config::WHOLE_K_GROUP || Config::GROUP >= BLOCK_K ? 1 : BLOCK_K / Config::GROUP;
  static constexpr int SPLIT_K = Config::SPLIT_K;
  // Stages run in pairs (one per set of A registers, below), so a split's run is even; stages
  // past K (the last split's padding) are all zeros: their x and weights are zero-filled, their
  // tables too.
  static constexpr int K_STAGES = (Config::K + BLOCK_K - 1) / BLOCK_K;
  static constexpr int SPLIT_STAGES = ((K_STAGES + SPLIT_K - 1) / SPLIT_K + 1) / 2 * 2;
  // One stage, each part 1024- (x) or 16-byte aligned:
  static constexpr int X_BYTES = BLOCK_M * BLOCK_K * 2;           // [ATOMS][BLOCK_M][64] bf16/fp16, swizzled
  static constexpr int WEIGHT_BYTES = PANELS * PANEL_STAGE_BYTES;  // [PANELS][BLOCK_K / K_PER_STEP steps][STEP_BYTES]
  static constexpr int TABLE_BYTES = PANELS * STAGE_GROUPS * 32;  // [PANELS][STAGE_GROUPS][16] fp16
  static constexpr int STAGE_BYTES = (X_BYTES + WEIGHT_BYTES + 2 * TABLE_BYTES + 1023) / 1024 * 1024;
  // Dynamic shared memory is not promised 1024-byte alignment: one more KiB to align the ring.
  // PRODUCER: the full and empty mbarriers (8 bytes each per slot) after the ring.
  static constexpr int BARRIER_BYTES = PRODUCER ? 2 * STAGES * 8 : 0;
  static constexpr int SHARED_BYTES = STAGES * STAGE_BYTES + 1024 + BARRIER_BYTES;
  static_assert(BLOCK_N == 64 || BLOCK_N == 128, "one or two consumer warpgroups");
  static_assert(BLOCK_K % 64 == 0, "whole 64-k swizzle atoms");
  static_assert(STAGES >= 3, "a slot loading, one dequantizing, one multiplying");
  static_assert(Config::WHOLE_K_GROUP || Config::GROUP % BLOCK_K == 0 || BLOCK_K % Config::GROUP == 0,
                "a stage holds whole groups or lies inside one");
  static_assert(Config::K % 8 == 0, "x rows 16-byte aligned for cp.async");
  static_assert(SPLIT_K >= 1 && (SPLIT_K - 1) * SPLIT_STAGES < K_STAGES, "every split holds some of K");
  // CLUSTER_SPLIT: the SPLIT_K blocks of a tile are one thread-block cluster and sum their
  // accumulators through distributed shared memory (ClusterSplitWork), each block's accumulator
  // [BLOCK_M / 8][CONSUMER_THREADS] float4 laid over its ring, which the main loop no longer needs.
  static constexpr bool CLUSTER_SPLIT = Config::CLUSTER_SPLIT != 0;
  // GROUP_SUMS (top of file): each group's sums scaled into fp32 totals, BLOCK_M / 2 more registers.
  static constexpr bool GROUP_SUMS = Config::GROUP_SUMS != 0;
  static_assert(!GROUP_SUMS || (STAGE_GROUPS == 1 && BLOCK_M <= 64 && Config::ZERO != zero_float &&
                                !(Config::ACT == bf16 && BITS == 8)),
                "group sums: a stage inside one group, at most 64 rows, q - z exact in the activation type");
  static constexpr int ACCUMULATOR_BYTES = BLOCK_M * BLOCK_N * 4;
  static_assert(!CLUSTER_SPLIT || (SPLIT_K >= 2 && SPLIT_K <= 8), "a cluster of 2..8 blocks (the portable size)");
  static_assert(!CLUSTER_SPLIT || ACCUMULATOR_BYTES <= STAGES * STAGE_BYTES, "the accumulator fits the ring");
};

// The ring's start in the dynamic shared memory: the first 1024-byte aligned address of the
// shared window at or after shared_raw (the 128-byte swizzle's atoms need that alignment).
__device__ __forceinline__ unsigned char* aligned_ring(unsigned char* shared_raw) {
  const u32 raw_address = static_cast<u32>(__cvta_generic_to_shared(shared_raw));
  return shared_raw + ((1024u - (raw_address & 1023u)) & 1023u);
}

// The work of a block of the tiled grid (blockIdx: M tile, N tile, split), and what its tile
// needs after the wgmmas: nothing, it is stored. (A stream-K segment, below, is the other Work.)
// `rows`: the call's M where the Config's M is 0 (an any-M kernel: this grid or a cluster split).
template <class Tile>
struct TiledWork {
  int rows = 0;
  __device__ __forceinline__ int call_rows() const { return rows; }
  // The ring's uses before this tile's first stage (PRODUCER = 1): none, the block runs one tile.
  __device__ __forceinline__ int ring_base() const { return 0; }
  __device__ __forceinline__ int first_stage() const { return blockIdx.z * Tile::SPLIT_STAGES; }
  __device__ __forceinline__ int end_stage(int first) const { return first + Tile::SPLIT_STAGES; }
  __device__ __forceinline__ int block_row() const { return blockIdx.x * Tile::BLOCK_M; }
  __device__ __forceinline__ long long block_panel() const { return static_cast<long long>(blockIdx.y) * Tile::PANELS; }
  // Whether the tile is stored, after any change to its accumulator (a stream-K fix-up).
  template <int COUNT>
  __device__ __forceinline__ bool fix_up(float (&)[COUNT]) const {
    return true;
  }
  // Whether this thread stores fragment `fragment` (rows 8 fragment .. + 7) of a stored tile:
  // every one (a cluster split's block stores its share only, ClusterSplitWork).
  __device__ __forceinline__ bool stores(int) const { return true; }
};

// A barrier over the consumer threads (defined with the stream-K code below).
template <class Tile>
__device__ __forceinline__ void consumer_barrier();

// Every thread of the cluster that has not exited: release its earlier memory accesses, then
// acquire everyone's (a peer's shared-memory writes before it, for ld.shared::cluster after).
__device__ __forceinline__ void cluster_barrier() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
// This thread's float4 at `address` (a shared-window address) in block `rank` of its cluster.
__device__ __forceinline__ float4 load_from_cluster_block(u32 address, u32 rank) {
  u32 remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(address), "r"(rank));
  float4 value;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(value.x), "=f"(value.y), "=f"(value.z), "=f"(value.w)
               : "r"(remote)
               : "memory");
  return value;
}

// A block of a split summed in its cluster (CLUSTER_SPLIT; grid M tiles x N tiles x SPLIT_K,
// cluster (1, 1, SPLIT_K): the splits of one tile, rank = blockIdx.z = split). After the main
// loop each block lays its fp32 accumulator over its own ring, [FRAGMENTS][CONSUMER_THREADS]
// float4 (thread-major: the same thread of every block holds the same outputs); after a cluster
// barrier, each (fragment, warp) unit is summed by one block, owner = (fragment x WARPS + warp) %
// SPLIT_K (interleaved, so 16-row tiles with fewer fragments than splits still share the work),
// which reads that unit from blocks 0 .. SPLIT_K - 1 in order (its own from its registers), and
// stores only its units with bias and conversion (stores, hiding TiledWork's). The same sums in the same
// order every run; no workspace and no second kernel. A second cluster barrier keeps every block
// (its shared memory) alive until its peers have read it.
template <class Tile>
struct ClusterSplitWork : TiledWork<Tile> {
  static constexpr int FRAGMENTS = Tile::BLOCK_M / 8;  // float4 of accumulator per consumer thread
  static constexpr int WARPS = Tile::CONSUMER_THREADS / 32;
  unsigned char* shared_raw;  // the dynamic shared memory (the ring, 1024-aligned, inside)

  static __device__ __forceinline__ int owner(int fragment, int warp) { return (fragment * WARPS + warp) % Tile::SPLIT_K; }
  __device__ __forceinline__ bool stores(int fragment) const {
    return owner(fragment, static_cast<int>(threadIdx.x >> 5)) == static_cast<int>(blockIdx.z);
  }
  // Consumer threads only, every wgmma retired and (PRODUCER = 0) every copy landed.
  __device__ __forceinline__ bool fix_up(float (&accumulator)[Tile::BLOCK_M / 2]) const {
    // (Not aligned_ring(shared_raw), the same address: ptxas then schedules the cluster split's
    // code differently, 6528 bytes of its cubin, a change for a session with GPU time to check.)
    const u32 raw_address = static_cast<u32>(__cvta_generic_to_shared(shared_raw));
    float4* ring = reinterpret_cast<float4*>(shared_raw + ((1024u - (raw_address & 1023u)) & 1023u));
    float4* mine = ring + threadIdx.x;
    consumer_barrier<Tile>();  // every warpgroup's wgmmas are done reading x from the ring
#pragma unroll
    for (int i = 0; i < FRAGMENTS; ++i)
      mine[i * Tile::CONSUMER_THREADS] =
          make_float4(accumulator[4 * i], accumulator[4 * i + 1], accumulator[4 * i + 2], accumulator[4 * i + 3]);
    cluster_barrier();  // every block's accumulator is in its shared memory
#pragma unroll
    for (int i = 0; i < FRAGMENTS; ++i) {
      if (!stores(i)) continue;
      const u32 address = static_cast<u32>(__cvta_generic_to_shared(mine + i * Tile::CONSUMER_THREADS));
      float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int split = 0; split < Tile::SPLIT_K; ++split) {
        const float4 value = split == static_cast<int>(blockIdx.z)
                                 ? make_float4(accumulator[4 * i], accumulator[4 * i + 1], accumulator[4 * i + 2],
                                               accumulator[4 * i + 3])
                                 : load_from_cluster_block(address, static_cast<u32>(split));
        sum.x += value.x, sum.y += value.y, sum.z += value.z, sum.w += value.w;
      }
      accumulator[4 * i] = sum.x, accumulator[4 * i + 1] = sum.y;
      accumulator[4 * i + 2] = sum.z, accumulator[4 * i + 3] = sum.w;
    }
    cluster_barrier();  // no block exits (freeing its shared memory) while a peer still reads it
    return true;
  }
};

// setmaxnreg's hand-over with two consumer warpgroups (WgmmaTile::MOVE_REGISTERS): the producer
// warpgroup gives up registers down to 64, the consumers take theirs up to 216.
template <class Tile>
__device__ __forceinline__ void producer_gives_registers() {
  if constexpr (Tile::MOVE_REGISTERS) asm volatile("setmaxnreg.dec.sync.aligned.u32 64;\n" ::: "memory");
}
template <class Tile>
__device__ __forceinline__ void consumers_take_registers() {
  if constexpr (Tile::MOVE_REGISTERS) asm volatile("setmaxnreg.inc.sync.aligned.u32 216;\n" ::: "memory");
}

// Which threads run a wgmma_tile call. whole_block: every thread of the block, for a block that
// runs one tile (PRODUCER = 1: it initializes the ring's mbarriers and moves registers itself, and
// the producer warpgroup splits off inside). producer, consumers: only that role's threads, for a
// stream-K block's segments (PRODUCER = 1), whose caller set the ring up once for the block's
// lifetime; each call then leaves the ring at a multiple of STAGES uses (below).
enum class TilePart { whole_block, producer, consumers };

// The mbarriers of a PRODUCER = 1 ring: full[STAGES] then empty[STAGES], right after the ring
// (shared-window address; the ring is 1024-byte aligned in the shared window).
template <class Tile>
__device__ __forceinline__ u32 ring_barriers_address(unsigned char* shared_raw) {
  return static_cast<u32>(__cvta_generic_to_shared(aligned_ring(shared_raw))) + Tile::STAGES * Tile::STAGE_BYTES;
}
// By thread 0; every thread must pass a barrier after it before anyone arrives or waits.
// full: one arrival per producer thread (its copies landed); empty: one per consumer thread.
template <class Tile>
__device__ __forceinline__ void init_ring_barriers(unsigned char* shared_raw) {
  const u32 barriers = ring_barriers_address<Tile>(shared_raw);
  for (int slot = 0; slot < Tile::STAGES; ++slot) {
    mbarrier_init(barriers + slot * 8, Tile::COPIERS);
    mbarrier_init(barriers + (Tile::STAGES + slot) * 8, Tile::CONSUMER_THREADS);
  }
}

// One tile of `work` (Work: ring_base(), first_stage(), end_stage(first), block_row(),
// block_panel(), fix_up(accumulator), as TiledWork): rows from block_row, weight panels from
// block_panel, stages [first_stage, end_stage) (an even count). Called by the threads PART names.
// (TilePart::producer's instantiation returns at the producer's end: the consumer code after it
// is unreachable there by design, which NVCC's front end would report as warning 128.)
// The rows of the call: the Config's M, or with M = 0 (an any-M kernel: TiledWork or
// ClusterSplitWork only, the generator refuses the rest) the call's, which the entry point passed on.
template <class Config, class Work>
__device__ __forceinline__ int rows_of(const Work& work) {
  if constexpr (Config::M == 0) {
    return work.call_rows();
  } else {
    return Config::M;
  }
}

#pragma nv_diag_suppress 128
template <class Config, class Work, TilePart PART = TilePart::whole_block>
__device__ __forceinline__ void wgmma_tile(const void* __restrict__ x, const unsigned char* __restrict__ qweight,
                                           const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                           const void* __restrict__ bias, void* __restrict__ y,
                                           unsigned char* shared_raw, const Work& work) {
  // y: the output [M][N] of OUT, or with SPLIT_K > 1 the fp32 partials [SPLIT_K][M][N].
  using Tile = WgmmaTile<Config>;
  const int M = rows_of<Config>(work);
  constexpr long long N = Config::N;
  constexpr int K = Config::K;
  constexpr int GROUP = Config::GROUP;
  constexpr int GROUPS = Config::WHOLE_K_GROUP ? 1 : K / GROUP;
  constexpr int STEPS = (K + Tile::K_PER_STEP - 1) / Tile::K_PER_STEP;  // steps per panel
  constexpr long long PANEL_BYTES = static_cast<long long>(STEPS) * Tile::STEP_BYTES;  // one panel's weights
  constexpr long long PANEL_COUNT = (N + 15) / 16;  // panels in the weights
  // This block's stages: [first_stage, end_stage), an even count.
  const int first_stage = work.first_stage();
  const int end_stage = work.end_stage(first_stage);
  constexpr bool IS_BF16 = Config::ACT == bf16;

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;  // = the block's panel this warp dequantizes (a consumer)
  const int g = lane >> 2;
  const int t = lane & 3;
  const int block_row = work.block_row();
  const long long block_panel = work.block_panel();

  // The ring: [STAGES][STAGE_BYTES], 1024-byte aligned in the shared window.
  unsigned char* ring = aligned_ring(shared_raw);
  const u32 ring_address = static_cast<u32>(__cvta_generic_to_shared(ring));
  const u64 ring_descriptor = swizzled_descriptor(ring_address);  // slot 0's x, k-tile 0
  auto stage_x = [&](int slot) { return ring + slot * Tile::STAGE_BYTES; };
  auto stage_weights = [&](int slot) { return ring + slot * Tile::STAGE_BYTES + Tile::X_BYTES; };
  auto stage_scales = [&](int slot) {
    return reinterpret_cast<u16*>(ring + slot * Tile::STAGE_BYTES + Tile::X_BYTES + Tile::WEIGHT_BYTES);
  };
  // A stage's slot, counted from this block's first stage (a split's run may start anywhere).
  auto slot_of = [&](int stage) { return (stage - first_stage) % Tile::STAGES; };
  // PRODUCER: full[STAGES] then empty[STAGES] mbarriers right after the ring (top of file).
  const u32 barriers_address = ring_barriers_address<Tile>(shared_raw);
  auto full_barrier = [&](int slot) { return barriers_address + slot * 8; };
  auto empty_barrier = [&](int slot) { return barriers_address + (Tile::STAGES + slot) * 8; };

  // ---- Copies: one stage of x, weights and group tables, cp.async into its slot, issued by the
  // COPIERS threads (every thread, or the producer warpgroup's), `copier` = this one's index.
  // A copier's sources, row and panel checks are worked out once (CopyPlan): its copies of one
  // stage then lie at compile-time strides from one pointer each, so a stage costs a copy
  // instruction and a predicate per 16 bytes, not an address computation (the per-copy
  // addresses, recomputed every stage, were most of a consumer's instructions).
  // x: chunk (row, c) of 8 k; a copier's chunks share c (COPIERS is a multiple of the chunks per
  // row) and step over rows by ROW_STRIDE (a multiple of 8, so they share the swizzle too).
  constexpr int COPIERS = Tile::COPIERS;
  const int copier = static_cast<int>(threadIdx.x) - (Tile::PRODUCER ? Tile::CONSUMER_THREADS : 0);
  constexpr int ROW_CHUNKS = Tile::BLOCK_K / 8;
  constexpr int X_CHUNKS = Tile::BLOCK_M * ROW_CHUNKS;
  constexpr int X_COPIES = (X_CHUNKS + COPIERS - 1) / COPIERS;
  constexpr int ROW_STRIDE = COPIERS / ROW_CHUNKS;
  static_assert(COPIERS % ROW_CHUNKS == 0 && ROW_STRIDE % 8 == 0, "a copier's x chunks share their k and swizzle");
  static_assert(X_COPIES <= 32, "one bit per x copy in CopyPlan::x_rows_inside");
  // [PANELS][PANEL_CHUNKS] 16-byte weight chunks; each panel's steps are contiguous in memory.
  // Where COPIERS is a multiple of the chunks per panel (2, 4 and 8 bits), a copier's chunks
  // share their byte in the panel and step over panels by PANEL_STRIDE: one source pointer. 3-bit
  // panels have 24 or 48 chunks a stage, so there each copy keeps its own source and step.
  constexpr int PANEL_CHUNKS = Tile::PANEL_STAGE_BYTES / 16;
  constexpr int WEIGHT_CHUNKS = Tile::WEIGHT_BYTES / 16;
  constexpr int WEIGHT_COPIES = (WEIGHT_CHUNKS + COPIERS - 1) / COPIERS;
  constexpr bool UNIFORM_WEIGHT_COPIES = COPIERS % PANEL_CHUNKS == 0;
  constexpr int PANEL_STRIDE = UNIFORM_WEIGHT_COPIES ? COPIERS / PANEL_CHUNKS : 0;
  constexpr int OWN_WEIGHT_SOURCES = UNIFORM_WEIGHT_COPIES ? 1 : WEIGHT_COPIES;  // CopyPlan's arrays
  static_assert(WEIGHT_COPIES <= 32, "one bit per weight copy in CopyPlan::weight_panels_inside");
  constexpr int TABLE_CHUNKS = Tile::TABLE_BYTES / 16;
  constexpr int TABLE_KINDS = Config::ZERO == zero_none ? 1 : 2;
  constexpr int TABLE_COPIES = (TABLE_KINDS * TABLE_CHUNKS + COPIERS - 1) / COPIERS;
  // Whole stages of K (no k-tail inside a stage): a stage's k is inside K exactly when the stage is.
  constexpr bool WHOLE_STAGES = K % Tile::BLOCK_K == 0;
  // Whole stages and no stage past K in any block's run (no split's or odd count's padding): every
  // copied stage lies inside K, and its copies need no k check.
  constexpr bool RUNS_INSIDE_K = WHOLE_STAGES && Tile::SPLIT_K * Tile::SPLIT_STAGES == Tile::K_STAGES;
  // Every tile whole along M (N) and every copy inside its tile: no row (panel) check at all.
  constexpr bool X_ROWS_INSIDE = Config::M != 0 && Config::M % Tile::BLOCK_M == 0 && X_CHUNKS % COPIERS == 0;
  constexpr bool PANELS_INSIDE = PANEL_COUNT % Tile::PANELS == 0 && WEIGHT_CHUNKS % COPIERS == 0;

  struct CopyPlan {
    const u16* x_source;            // row x_first_row, k = x_chunk * 8 of stage 0 (read only when inside)
    u32 x_rows_inside;              // bit i: copy i's row lies inside M (and the tile)
    // Copy i's source at step 0 (its panel, its byte) and its step within a stage: index i with
    // OWN_WEIGHT_SOURCES, else index 0 for every copy (panel copier / PANEL_CHUNKS, + i PANEL_STRIDE).
    const unsigned char* weight_source[OWN_WEIGHT_SOURCES];
    int weight_step[OWN_WEIGHT_SOURCES];
    u32 weight_panels_inside;       // bit i: copy i's panel lies inside N (and the tile)
    int x_k;                        // x_chunk * 8
    u32 x_target;                   // x_first_row's swizzled chunk offset in a stage's x
    // Group tables: copy i's source at group 0 (its panel's scales or zeros, its group of the
    // stage, its half), its byte offset in a stage's tables, its group within the stage (-1: no
    // such chunk), and whether its panel lies inside N.
    const u16* table_source[TABLE_COPIES];
    int table_target[TABLE_COPIES];
    int table_stage_group[TABLE_COPIES];
    u32 table_panels_inside;
  };
  auto plan_copies = [&]() {
    CopyPlan plan;
    const int x_chunk = copier % ROW_CHUNKS;
    const int x_first_row = copier / ROW_CHUNKS;
    plan.x_k = x_chunk * 8;
    // Pointers to rows past M are formed but never read: their copies have source size 0.
    plan.x_source = static_cast<const u16*>(x) + static_cast<long long>(block_row + x_first_row) * K + plan.x_k;
    plan.x_rows_inside = 0;
#pragma unroll
    for (int i = 0; i < X_COPIES; ++i) {
      const int row = x_first_row + i * ROW_STRIDE;
      if (row < Tile::BLOCK_M && block_row + row < M) plan.x_rows_inside |= 1u << i;
    }
    plan.x_target = x_chunk / 8 * (Tile::BLOCK_M * 128) + x_first_row * 128 + (((x_chunk % 8) ^ (x_first_row & 7)) << 4);
    const int first_panel = copier / PANEL_CHUNKS;
    if constexpr (UNIFORM_WEIGHT_COPIES) {
      plan.weight_step[0] = copier % PANEL_CHUNKS / (Tile::STEP_BYTES / 16);
      plan.weight_source[0] = qweight + (block_panel + first_panel) * PANEL_BYTES + copier % PANEL_CHUNKS * 16;
    }
    plan.weight_panels_inside = 0;
#pragma unroll
    for (int i = 0; i < WEIGHT_COPIES; ++i) {
      const int chunk = copier + i * COPIERS;
      const int panel = UNIFORM_WEIGHT_COPIES ? first_panel + i * PANEL_STRIDE : chunk / PANEL_CHUNKS;
      if constexpr (!UNIFORM_WEIGHT_COPIES) {
        const int byte = chunk % PANEL_CHUNKS * 16;
        plan.weight_source[i] = qweight + (block_panel + panel) * PANEL_BYTES + byte;
        plan.weight_step[i] = byte / Tile::STEP_BYTES;
      }
      if (panel < Tile::PANELS && block_panel + panel < PANEL_COUNT) plan.weight_panels_inside |= 1u << i;
    }
    plan.table_panels_inside = 0;
#pragma unroll
    for (int i = 0; i < TABLE_COPIES; ++i) {
      const int chunk = copier + i * COPIERS;
      // A zero point chunk only where there are zero points: with zero=none `zeros` is null, and
      // the chunks past the scales (no copy, table_stage_group -1) take their address from `scales`.
      const bool is_zero = TABLE_KINDS == 2 && chunk >= TABLE_CHUNKS;
      const int index = chunk % TABLE_CHUNKS;
      const long long global_panel = block_panel + index / (2 * Tile::STAGE_GROUPS);
      const int stage_group = index / 2 % Tile::STAGE_GROUPS;
      plan.table_stage_group[i] = chunk < TABLE_KINDS * TABLE_CHUNKS ? stage_group : -1;
      plan.table_source[i] = (is_zero ? zeros : scales) + (global_panel * GROUPS + stage_group) * 16 + index % 2 * 8;
      plan.table_target[i] = (is_zero ? Tile::TABLE_BYTES : 0) + index * 16;
      if (global_panel < PANEL_COUNT) plan.table_panels_inside |= 1u << i;
    }
    return plan;
  };

  // Copies nothing past the block's run (the caller still closes its commit group). slot: the
  // stage's, slot_of(stage) (a compile-time constant in the unrolled main loop).
  auto copy_stage = [&](const CopyPlan& plan, int stage, int slot) {
    if (stage < end_stage) {
      const int first_k = stage * Tile::BLOCK_K;
      // x: [ATOMS][BLOCK_M][64] swizzled; rows past M and k past K zero-filled.
      const int k = first_k + plan.x_k;
      const int x_bytes = RUNS_INSIDE_K ? 16
                          : WHOLE_STAGES ? (first_k < K ? 16 : 0)
                                         : (k < K ? (K - k >= 8 ? 16 : (K - k) * 2) : 0);
      const u16* x_source = plan.x_source + first_k;
      unsigned char* x_target = stage_x(slot) + plan.x_target;
#pragma unroll
      for (int i = 0; i < X_COPIES; ++i)
        copy_16_async(x_target + i * ROW_STRIDE * 128, x_source + static_cast<long long>(i) * ROW_STRIDE * K,
                      X_ROWS_INSIDE || (plan.x_rows_inside >> i & 1u) ? x_bytes : 0);
      // Weights: steps past the panel's end zero-filled (they meet zero x). A panel holds 2 BITS
      // bytes a k (STEP_BYTES a step of K_PER_STEP k), so a stage starts first_k 2 BITS bytes in.
      auto step_inside = [&](int step) {
        return RUNS_INSIDE_K ? true : WHOLE_STAGES ? first_k < K : first_k / Tile::K_PER_STEP + step < STEPS;
      };
      const bool steps_inside = step_inside(plan.weight_step[0]);  // every copy's, where uniform
      const long long stage_offset = static_cast<long long>(first_k) * (2 * Tile::BITS);
      const unsigned char* weight_source = plan.weight_source[0] + stage_offset;
#pragma unroll
      for (int i = 0; i < WEIGHT_COPIES; ++i) {
        const int chunk = copier + i * COPIERS;
        if (WEIGHT_CHUNKS % COPIERS != 0 && chunk >= WEIGHT_CHUNKS) break;
        const bool inside = UNIFORM_WEIGHT_COPIES ? steps_inside : step_inside(plan.weight_step[i]);
        const unsigned char* source = UNIFORM_WEIGHT_COPIES
                                          ? weight_source + static_cast<long long>(i) * PANEL_STRIDE * PANEL_BYTES
                                          : plan.weight_source[i] + stage_offset;
        copy_16_async(stage_weights(slot) + chunk * 16, source,
                      inside && (PANELS_INSIDE || (plan.weight_panels_inside >> i & 1u)) ? 16 : 0);
      }
      // [PANELS][STAGE_GROUPS][16] scales, then zeros: 32 bytes (2 chunks) per panel and group.
      const int first_group = Config::WHOLE_K_GROUP ? 0 : first_k / GROUP;
#pragma unroll
      for (int i = 0; i < TABLE_COPIES; ++i) {
        if (plan.table_stage_group[i] < 0) break;
        const bool inside = (PANEL_COUNT % Tile::PANELS == 0 || (plan.table_panels_inside >> i & 1u)) &&
                            (RUNS_INSIDE_K || first_group + plan.table_stage_group[i] < GROUPS);
        copy_16_async(reinterpret_cast<unsigned char*>(stage_scales(slot)) + plan.table_target[i],
                      plan.table_source[i] + first_group * 16, inside ? 16 : 0);
      }
    }
  };
  // PRODUCER = 0: every thread copies a stage as one commit group.
  auto issue_stage = [&](const CopyPlan& plan, int stage, int slot) {
    copy_stage(plan, stage, slot);
    asm volatile("cp.async.commit_group;\n" ::);  // an empty group keeps the count uniform
  };

  // ---- PRODUCER = 1: the barriers, then the producer warpgroup's whole loop. Uses of the ring are
  // counted from ring_base (0 for a block's only tile; a stream-K segment's, a multiple of STAGES,
  // so its stage first_stage + i still has slot i % STAGES, compile-time in the unrolled loop).
  // Use u (slot u % STAGES = s) completes full[s]'s phase u / STAGES; the refill for use u waits
  // for empty[s]'s phase u / STAGES - 1 (the consumers' release of use u - STAGES).
  const int ring_base = work.ring_base();
  auto wait_to_refill = [&](int use) {
    if (use >= Tile::STAGES) mbarrier_wait(empty_barrier(use % Tile::STAGES), (use / Tile::STAGES - 1) & 1);
  };
  // A segment's uses up to the next multiple of STAGES, after its own (TilePart::producer and
  // consumers only): each passes through its slot's two phases without a copy (the producer's 128
  // plain arrivals complete full, the consumers' empty), so every phase still completes in use
  // order and the next segment starts at slot 0.
  const int padded_uses_end = Tile::whole_turns(ring_base + end_stage - first_stage);
  if constexpr (Tile::PRODUCER) {
    if constexpr (PART == TilePart::whole_block) {
      if (threadIdx.x == 0) init_ring_barriers<Tile>(shared_raw);
      __syncthreads();  // the barriers are initialized before anyone arrives or waits
    }
    if (PART == TilePart::producer || (PART == TilePart::whole_block && threadIdx.x >= Tile::CONSUMER_THREADS)) {
      if constexpr (PART == TilePart::whole_block) producer_gives_registers<Tile>();
      const CopyPlan plan = plan_copies();
      for (int stage = first_stage; stage < end_stage; ++stage) {
        wait_to_refill(ring_base + stage - first_stage);
        copy_stage(plan, stage, slot_of(stage));
        mbarrier_arrive_on_copies(full_barrier(slot_of(stage)));
      }
      if constexpr (PART == TilePart::producer) {
        for (int use = ring_base + end_stage - first_stage; use < padded_uses_end; ++use) {
          wait_to_refill(use);
          mbarrier_arrive(full_barrier(use % Tile::STAGES));
        }
      } else {
        asm volatile("cp.async.wait_all;\n" ::: "memory");  // no copy outlives its thread
        // A cluster split: the copy warpgroup joins the consumers' two cluster barriers
        // (ClusterSplitWork::fix_up) rather than relying on exited threads being left out.
        if constexpr (Tile::CLUSTER_SPLIT) cluster_barrier(), cluster_barrier();
      }
      return;
    }
    if constexpr (PART == TilePart::whole_block) consumers_take_registers<Tile>();
  }

  // ---- Consumer state: [BLOCK_M / 2] fp32 a lane, D's layout (top of file). GROUP_SUMS: the
  // accumulator holds the current group's sums, totals the tile's sum of the groups before it;
  // constants' scales start at zero, so the run's first stage folds zeros.
  float accumulator[Tile::BLOCK_M / 2];
#pragma unroll
  for (int i = 0; i < Tile::BLOCK_M / 2; ++i) accumulator[i] = 0.0f;
  float totals[Tile::GROUP_SUMS ? Tile::BLOCK_M / 2 : 1];
  GroupConstants constants;
  if constexpr (Tile::GROUP_SUMS) {
#pragma unroll
    for (int i = 0; i < Tile::BLOCK_M / 2; ++i) totals[i] = 0.0f;
    constants.scale[0] = constants.scale[1] = 0.0f;
  }
  int group = -1;

  // ---- Pipeline (PRODUCER = 0): every thread's copy plan (a producer makes its own above), and
  // STAGES - 2 stages in flight ahead of the one dequantized.
  CopyPlan copy_plan{};
  if constexpr (!Tile::PRODUCER) {
    copy_plan = plan_copies();
#pragma unroll
    for (int use = 0; use < Tile::STAGES - 2; ++use) issue_stage(copy_plan, first_stage + use, use);
  }

  // Whether a stage at an odd position of the run (every stage of a_odd) never starts a group:
  // a stage inside one group (STAGE_GROUPS = 1) with groups of an even count of stages, or whole K,
  // starts its group at an even stage only (runs start at even stages).
  constexpr bool ODD_STAGES_KEEP_GROUP =
      Tile::STAGE_GROUPS == 1 && (Config::WHOLE_K_GROUP || (GROUP / Tile::BLOCK_K) % 2 == 0);
  // Whether the stages that start a group are known by position: groups of exactly one stage
  // (every stage starts one) or two (every even position: runs start at even stages, so at a
  // group's first). Such a stage loads its group's constants without comparing groups. (A stage
  // past K, a split's padding, then loads its zero-filled table: its x and codes are zeros as
  // well, so it still adds nothing.)
  constexpr bool POSITIONS_START_GROUPS = Tile::STAGE_GROUPS == 1 && !Config::WHOLE_K_GROUP &&
                                          (GROUP == Tile::BLOCK_K || GROUP == 2 * Tile::BLOCK_K);

  // The phase of the ring's use of `stage` (PRODUCER = 1): uses count from ring_base, STAGES a phase.
  auto phase_of = [&](int stage) { return static_cast<u32>(ring_base + stage - first_stage) / Tile::STAGES; };

  // One stage: dequantize this warp's A fragments into `a`, issue the stage's wgmmas, and wait
  // for the previous stage's (then, PRODUCER = 1, release its slot, unless `first`: the run's
  // first stage). slot: slot_of(stage); odd: whether the stage is at an odd position of the run;
  // full_parity: phase_of(stage) & 1 (PRODUCER = 1). Where the main loop is unrolled, slot, odd
  // and (but at a turn's first stage) first are compile-time constants, and full_parity a
  // compile-time offset from the turn's phase. Register contract: writes a (read by the wgmmas
  // until the next stage's wait), accumulator (asynchronously), constants, group, and with
  // GROUP_SUMS totals (at a group's start).
  auto run_stage = [&](int stage, int slot, bool odd, bool first, u32 full_parity, u32 (&a)[Tile::K_TILES][4]) {
    if constexpr (Tile::PRODUCER) {
      mbarrier_wait(full_barrier(slot), full_parity);  // landed ...
      fence_proxy_async();                             // ... for the async proxy too
    } else {
      asm volatile("cp.async.wait_group %0;\n" ::"n"(Tile::STAGES - 3));  // this stage has landed ...
      fence_proxy_async();                                                  // ... for the async proxy too
      __syncthreads();  // ... for every thread; every warpgroup is done with stage - 2's wgmmas
      issue_stage(copy_plan, stage + Tile::STAGES - 2, (slot + Tile::STAGES - 2) % Tile::STAGES);
    }
    const int stage_first_k = stage * Tile::BLOCK_K;
    // Clamped like tile_group below: the stage past K (an odd count's pair) reads its zero table.
    const int stage_first_group = Config::WHOLE_K_GROUP ? 0 : min(stage_first_k, K - 1) / GROUP;
    const u32* panel_words = reinterpret_cast<const u32*>(stage_weights(slot)) + warp * Tile::PANEL_STAGE_BYTES / 4;
    // GROUP_SUMS: whether this stage starts a group (its first k-tile, STAGE_GROUPS = 1), so the
    // previous group's sums are folded with that group's scales before its wgmmas overwrite them.
    bool folds = false;
    float folded_scale[2] = {0.0f, 0.0f};

    // A: [K_TILES][4] registers, this warp's panel x 16 k each (WgmmaFormat reads the codes).
#pragma unroll
    for (int k_tile = 0; k_tile < Tile::K_TILES; ++k_tile) {
      const int first_k = stage_first_k + k_tile * 16;
      // (k is never negative: an unsigned division is a shift.)
      const int tile_group = Config::WHOLE_K_GROUP ? 0 : static_cast<int>(static_cast<u32>(min(first_k, K - 1)) / GROUP);
      // A stage inside one group (STAGE_GROUPS = 1: GROUP a multiple of BLOCK_K, or whole K)
      // changes group at its first k-tile only, so the others skip the check.
      const bool starts_group =
          POSITIONS_START_GROUPS ? k_tile == 0 && (GROUP == Tile::BLOCK_K || !odd) : tile_group != group;
      if ((Tile::STAGE_GROUPS > 1 || k_tile == 0) && !(ODD_STAGES_KEEP_GROUP && odd) && starts_group) {
        if constexpr (Tile::GROUP_SUMS) {
          folds = true;
          folded_scale[0] = constants.scale[0];
          folded_scale[1] = constants.scale[1];
        }
        group = tile_group;
        const int entry = Tile::STAGE_GROUPS == 1 ? warp * 16 + 2 * g
                                                  : (warp * Tile::STAGE_GROUPS + (tile_group - stage_first_group)) * 16 + 2 * g;
        const u32 scale_bits = *reinterpret_cast<const u32*>(stage_scales(slot) + entry);
        u32 zero_bits = 0;
        if (Config::ZERO != zero_none)
          zero_bits = *reinterpret_cast<const u32*>(stage_scales(slot) + Tile::TABLE_BYTES / 2 + entry);
        constants = group_constants<IS_BF16, Config::ZERO, Tile::BITS>(scale_bits, zero_bits);
      }
      u32 low_word, high_word;
      WgmmaFormat<Tile::BITS>::codes(panel_words, k_tile, g, t, low_word, high_word);
      // Bytes 0-1 (column 2g) and 2-3 (column 2g+1), each to a pair of 16-bit lanes.
      constexpr int ZERO = Config::ZERO;
      u32 lanes[4];
      code_lanes<IS_BF16, ZERO, Tile::BITS>(low_word, lanes[0], lanes[1]);
      code_lanes<IS_BF16, ZERO, Tile::BITS>(high_word, lanes[2], lanes[3]);
#pragma unroll
      for (int i = 0; i < 4; ++i)
        a[k_tile][i] = dequantize_pair<IS_BF16, ZERO, Tile::BITS, Tile::GROUP_SUMS>(lanes[i], constants, i & 1);
    }
    if constexpr (Tile::GROUP_SUMS) {
      if (folds) {
        wgmma_wait<0>();  // the previous group's wgmmas are done: its sums are final
        fence_accumulators(accumulator);
        fold_group_sums(totals, accumulator, folded_scale);
      }
    }

    // B: k-tile j of the stage is atom j / 4, +32 bytes per k16 inside it.
    // Every wgmma input is defined before the fence: ptxas serializes the wgmmas (C7513) when
    // another instruction defines one of their registers while the stage's wgmmas are issued.
    // The ring's descriptor plus the offset >> 4 (the start address field, bits 0-13, holds any
    // shared-window address >> 4 without a carry out: the window is below 2^18 bytes).
    u64 descriptor[Tile::K_TILES];
#pragma unroll
    for (int k_tile = 0; k_tile < Tile::K_TILES; ++k_tile)
      descriptor[k_tile] =
          ring_descriptor + ((slot * Tile::STAGE_BYTES + k_tile / 4 * (Tile::BLOCK_M * 128) + k_tile % 4 * 32) >> 4);
    wgmma_fence();
#pragma unroll
    for (int k_tile = 0; k_tile < Tile::K_TILES; ++k_tile)
      wgmma_rows<Tile::BLOCK_M, IS_BF16>(accumulator, a[k_tile], descriptor[k_tile],
                                         !(Tile::GROUP_SUMS && k_tile == 0 && folds));
    wgmma_commit();
    wgmma_wait<1>();  // the previous stage's wgmmas are done: its slot and its A registers are free
    if constexpr (Tile::PRODUCER)
      if (!first) mbarrier_arrive(empty_barrier((slot + Tile::STAGES - 1) % Tile::STAGES));
  };

  // The stages alternate between two sets of A registers. A wgmma reads its A registers until
  // a wait_group covers it (touching them before is undefined), and a stage's wgmmas are still
  // in flight while the next stage dequantizes: with one set, the next stage would overwrite
  // the registers the previous wgmmas are reading (it did, as garbage, with two warpgroups
  // contending for the tensor cores). Each call site below writes its own registers only after
  // the other site's wait has retired the wgmmas that read them.
  u32 a_even[Tile::K_TILES][4];
  u32 a_odd[Tile::K_TILES][4];
  // No branch between the two: a conditional second call would merge the accumulators of two
  // paths with register moves while wgmmas write them, which ptxas answers by serializing.
  // A turn of TURN stages (both register sets, every slot: a multiple of 2 and of STAGES) is
  // unrolled, so every slot, shared-memory address and descriptor is a compile-time offset and
  // odd positions skip the group check; the stages after the last whole turn (an even count
  // below TURN) run in pairs with runtime slots.
  constexpr int TURN = Tile::STAGES % 2 == 0 ? Tile::STAGES : 2 * Tile::STAGES;
  // A turn starts at a multiple of STAGES uses (ring_base is one, a turn is STAGES or 2 STAGES),
  // so its positions' full parities are the turn's phase plus position / STAGES, computed once a
  // turn (the per-stage division and masking were a tenth of a consumer's overhead, docs/benchmarks.md).
  int stage = first_stage;
  for (; stage + TURN <= end_stage; stage += TURN) {
    const u32 turn_phase = phase_of(stage);
    const bool turn_first = stage == first_stage;
#pragma unroll
    for (int position = 0; position < TURN; position += 2) {
      run_stage(stage + position, position % Tile::STAGES, false, position == 0 && turn_first,
                (turn_phase + position / Tile::STAGES) & 1, a_even);
      run_stage(stage + position + 1, (position + 1) % Tile::STAGES, true, false,
                (turn_phase + (position + 1) / Tile::STAGES) & 1, a_odd);
    }
  }
  for (; stage < end_stage; stage += 2) {
    run_stage(stage, slot_of(stage), false, stage == first_stage, phase_of(stage) & 1, a_even);
    run_stage(stage + 1, slot_of(stage + 1), true, false, phase_of(stage + 1) & 1, a_odd);
  }
  wgmma_wait<0>();
  fence_accumulators(accumulator);
  if constexpr (Tile::GROUP_SUMS) {  // the last group's sums; the totals are then the accumulator
    fold_group_sums(totals, accumulator, constants.scale);
#pragma unroll
    for (int i = 0; i < Tile::BLOCK_M / 2; ++i) accumulator[i] = totals[i];
  }
  asm volatile("cp.async.wait_group 0;\n" ::);
  if constexpr (Tile::PRODUCER && PART == TilePart::consumers) {
    // The ring goes on to the next segment: release the last stage's slot (its wgmmas are done),
    // then pass the padding uses (above), before the fix-up, so the producer can fill the whole
    // ring for the next segment while this one's partials are exchanged.
    mbarrier_arrive(empty_barrier(slot_of(end_stage - 1)));
    for (int use = ring_base + end_stage - first_stage; use < padded_uses_end; ++use) {
      mbarrier_wait(full_barrier(use % Tile::STAGES), (use / Tile::STAGES) & 1);
      mbarrier_arrive(empty_barrier(use % Tile::STAGES));
    }
  }
  if (!work.fix_up(accumulator)) return;

  // ---- Epilogue: bias, output dtype, masked stores. Lane (g, t) writes columns 2g, 2g+1 of
  // rows 8i+2t, 8i+2t+1; with N even the two columns are one aligned pair. A split stores its
  // fp32 partial sums instead, bias-free, into its [M][N] slice (wgmma_split_reduce adds); a
  // cluster split has summed them (fix_up) and stores its share of the fragments as any tile.
  constexpr bool PARTIAL = Tile::SPLIT_K > 1 && !Tile::CLUSTER_SPLIT;
  constexpr int STORED = PARTIAL ? fp32 : Config::OUT;
  if (PARTIAL) y = static_cast<float*>(y) + static_cast<long long>(blockIdx.z) * M * N;
  const long long column = (block_panel + warp) * 16 + 2 * g;
  if (column >= N) return;
  const bool pair_inside = column + 1 < N;
  float bias_value[2] = {0.0f, 0.0f};
  if (Config::HAS_BIAS && !PARTIAL) {
    bias_value[0] = load_element<Config::ACT>(bias, column);
    if (pair_inside) bias_value[1] = load_element<Config::ACT>(bias, column + 1);
  }
#pragma unroll
  for (int i = 0; i < Tile::BLOCK_M / 8; ++i)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = block_row + i * 8 + 2 * t + half;
      if (row >= M || !work.stores(i)) continue;
      const float value0 = accumulator[4 * i + half] + bias_value[0];      // column 2g
      const float value1 = accumulator[4 * i + 2 + half] + bias_value[1];  // column 2g+1
      const long long index = static_cast<long long>(row) * N + column;
      if (N % 2 == 0 && STORED == fp32) {
        *reinterpret_cast<float2*>(static_cast<float*>(y) + index) = make_float2(value0, value1);
      } else if (N % 2 == 0) {
        const u32 bits0 = STORED == bf16 ? float_to_bf16(value0) : float_to_half(value0);
        const u32 bits1 = STORED == bf16 ? float_to_bf16(value1) : float_to_half(value1);
        *reinterpret_cast<u32*>(static_cast<u16*>(y) + index) = bits0 | bits1 << 16;
      } else {
        store_element<STORED>(y, index, value0);
        if (pair_inside) store_element<STORED>(y, index + 1, value1);
      }
    }
}

#pragma nv_diag_default 128

// One block per tile and split (grid: M tiles x N tiles x SPLIT_K). y: the output [M][N] of OUT, or
// with SPLIT_K > 1 the fp32 partials [SPLIT_K][M][N], stored bias-free into the block's slice
// (wgmma_split_reduce adds them); with CLUSTER_SPLIT (launched in clusters of (1, 1, SPLIT_K))
// the output, summed in the cluster's shared memory.
// rows: the call's M for an any-M Config (M = 0), else unused.
template <class Config>
__device__ __forceinline__ void wgmma_gemm_tiled(const void* __restrict__ x, const unsigned char* __restrict__ qweight,
                                                const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                                const void* __restrict__ bias, void* __restrict__ y,
                                                unsigned char* shared_raw, int rows = 0) {
  using Tile = WgmmaTile<Config>;
  if constexpr (Tile::CLUSTER_SPLIT) {
    ClusterSplitWork<Tile> work;
    work.shared_raw = shared_raw;
    work.rows = rows;
    wgmma_tile<Config>(x, qweight, scales, zeros, bias, y, shared_raw, work);
  } else {
    wgmma_tile<Config>(x, qweight, scales, zeros, bias, y, shared_raw, TiledWork<Tile>{rows});
  }
}

// ---- Stream-K (STREAM_K = BLOCKS > 0; SPLIT_K = 1; either ring). A grid of BLOCKS persistent
// blocks (at most one per SM, so all are resident at once) shares the iterations = tiles x PAIRS
// (a stage pair of one tile: stages run in pairs, above) equally: block b takes
// [b iterations / BLOCKS, (b + 1) iterations / BLOCKS), tile by tile in order (tiles with M
// fastest, as the tiled grid's x: blocks on one weight tile run together). The run of each block
// is then a tile's last part, whole tiles, and a tile's first part; no SM idles in a last partial
// wave. A tile cut between blocks is fixed up without atomics on data: the blocks with a later K
// range than its first (contributors) store their fp32 accumulator, in their registers' order,
// into their own partial slot [BLOCK_M / 8][CONSUMER_THREADS] float4 of the workspace and
// publish a flag; the block with the tile's first K range (the owner) adds the contributors'
// partials in block order after its own and stores the tile. The same sums in the same order
// every run: bit-identical results. The owner is the first block (as in the Stream-K paper):
// a contributor's part is the first thing its block computes, an owner's part the last, so an
// owner's wait is for work done long before (the other way round, each block would wait for
// its predecessor's whole run).
// Hybrid (REMAINDER_SPLIT > 0): where the tiles fill some waves whole and leave a remainder (192
// tiles on 132 SMs), the full waves' tiles run whole first, one per block in turn, and only the
// remainder is shared as above, after them, by the first sharing_blocks blocks. A whole tile
// has no fix-up; the shared part's contributors run their cut tile's end right after their whole
// tiles, at about the time its owner starts the tile, so the owner's wait stays short.
// Measured (docs/benchmarks.md, the per-block timeline below): the deposits are the dear part of a
// fix-up (128 KiB leave an SM at about 50 GB/s; a read comes in at about 125 GB/s), and the
// critical path runs through an owner whose first segment deposited in mid-run. Sharing the
// reduction among the blocks that end in a tile (so the owner deposits too) was slower.
// Planned runs (STREAM_K_PLAN = 1): the same roles, with run boundaries the generator moved so that
// the blocks that deposit run shorter and the owners, which wait and read, longer (a model of each
// block's end: codegen/cuda/stream_k_plan.h); the kernel only reads their table.
// Flags: flag[b] (u64) holds the launch's token (a kernel argument, new every launch, never 0)
// once block b's partial is stored; the owner that consumes it resets it to 0. So a flag left by
// an earlier launch, or anything else in the caller's workspace, is not taken for this launch's
// unless it holds this very token (and replays of one captured launch find the flags reset).
// The layout of one stream-K launch (StreamKSchedule::layout): its tiles, the whole ones run first
// (hybrid), the shared ones' iterations and the blocks that share them.
struct StreamKLayout {
  long long m_tiles;       // tiles along M (x rows)
  long long tiles;         // m_tiles x N_TILES, M fastest
  long long whole_tiles;   // the full waves' tiles, run whole (hybrid; else 0)
  long long first_shared;  // the first shared iteration: whole_tiles x PAIRS
  long long iterations;    // the shared iterations (the shared tiles' stage pairs)
  int sharing_blocks;      // the blocks that share them: 1 .. min(BLOCKS, iterations), 0 when none is left
};

// A stream-K Config's schedule. Compile-time Configs (an exact M, or an any-M one laid out for
// SCHEDULE_ROWS) have one layout, FIXED_M_TILES tile rows, folded into constants; an any-M Config
// without SCHEDULE_ROWS (RUN_TIME) lays its schedule out for the call's rows at run time, each block
// from the same rows, so every role of every block agrees (and never with a planned table, which
// the generator computes for one layout).
template <class Config>
struct StreamKSchedule {
  using Tile = WgmmaTile<Config>;
  static constexpr int BLOCKS = Config::STREAM_K;
  static constexpr bool RUN_TIME = Config::M == 0 && ScheduleRowsOf<Config>::value == 0;
  static constexpr long long FIXED_M_TILES = (ScheduleRowsOf<Config>::value + Tile::BLOCK_M - 1) / Tile::BLOCK_M;
  static constexpr long long N_TILES = ((Config::N + 15) / 16 + Tile::PANELS - 1) / Tile::PANELS;
  static constexpr int PAIRS = (Tile::K_STAGES + 1) / 2;  // iterations of one tile
  // REMAINDER_SPLIT > 0 (the hybrid schedule): the whole_tiles of the grid's full waves run whole,
  // block b taking tiles b, b + BLOCKS, ... first (no fix-up); only the tiles left over are
  // shared, by sharing_blocks = min(BLOCKS, REMAINDER_SPLIT x shared tiles) blocks (fewer blocks
  // cut fewer tiles: at 2 x the shared tiles each is cut once, in halves). 0: every tile shared.
  static constexpr int REMAINDER_SPLIT = Config::REMAINDER_SPLIT;
  static constexpr int FRAGMENTS = Tile::BLOCK_M / 8;  // float4 of accumulator per consumer thread
  static constexpr int FLAG_BYTES = (BLOCKS * 8 + 255) / 256 * 256;  // the flags, then the partial slots
  static_assert(Tile::SPLIT_K == 1, "stream-K runs without a split");
  static_assert(!RUN_TIME || !Config::STREAM_K_PLAN, "a planned table is laid out for one layout, not the call's rows");

  // The layout for m_tiles tile rows, the hybrid's with remainder_split > 0 (else every tile
  // shared). A block never gets an empty run (its owner would wait for a partial it never
  // publishes): at most one sharing block an iteration.
  static __host__ __device__ constexpr StreamKLayout layout(long long m_tiles, int remainder_split = REMAINDER_SPLIT) {
    const long long tiles = m_tiles * N_TILES;
    const long long whole_tiles = remainder_split > 0 ? tiles / BLOCKS * BLOCKS : 0;
    const long long shared_tiles = tiles - whole_tiles;
    const long long iterations = shared_tiles * PAIRS;
    long long sharing = remainder_split > 0 && remainder_split * shared_tiles < BLOCKS ? remainder_split * shared_tiles
                                                                                        : BLOCKS;
    if (sharing > iterations) sharing = iterations;
    return StreamKLayout{m_tiles, tiles, whole_tiles, whole_tiles * PAIRS, iterations, static_cast<int>(sharing)};
  }
  // A run-time layout for m_tiles tile rows, chosen as the generator chooses a compile-time one
  // (WgmmaGenerator's heuristic): where the tiles fill their waves to 0.9 or more and split
  // evenly over them, a block's run within one weight panel (waves <= m_tiles), whole
  // consecutive tiles a block on tiles / waves blocks, no tile cut: over two waves the
  // heuristic's persistent blocks (whole_tiles_per_block); at one or two waves of more than 256
  // rows, its tiled grid (tall_tiles_streamed streams only a grid that leaves more than a tenth
  // of its last wave idle; up to 256 rows shared_tiles_streamed streams one under a wave,
  // whatever its fill). Else the hybrid where REMAINDER_SPLIT allows it and it pays
  // (hybrid_pays: its whole waves plus its last phase within 1.05 times the even share); else
  // every tile shared evenly.
  // (constexpr: tests/cuda check it against the generator's choices through NVRTC, without a GPU.)
  static __host__ __device__ __forceinline__ constexpr StreamKLayout run_time_layout(long long m_tiles) {
    const long long tiles = m_tiles * N_TILES;
    const long long waves = (tiles + BLOCKS - 1) / BLOCKS;
    const bool heuristic_runs_whole = waves > 2 || m_tiles * Tile::BLOCK_M > 256;
    if (heuristic_runs_whole && waves <= m_tiles && tiles % waves == 0 && 10 * tiles >= 9 * waves * BLOCKS) {
      StreamKLayout whole = layout(m_tiles, 0);
      whole.sharing_blocks = static_cast<int>(tiles / waves);  // runs of whole tiles
      return whole;
    }
    if constexpr (REMAINDER_SPLIT > 0) {
      const StreamKLayout hybrid = layout(m_tiles);
      const long long remaining = tiles - hybrid.whole_tiles;
      // whole_tiles / BLOCKS + remaining / sharing <= 1.05 tiles / BLOCKS, times 100 BLOCKS sharing
      const long long sharing = hybrid.sharing_blocks;
      const bool pays = tiles > BLOCKS && remaining > 0 &&
                        100 * hybrid.whole_tiles * sharing + 100 * remaining * BLOCKS <= 105 * tiles * sharing;
      if (pays) return hybrid;
    }
    return layout(m_tiles, 0);
  }
  // The layout of a launch of `rows` call rows: RUN_TIME's, else the fixed one (rows unused).
  static __device__ __forceinline__ StreamKLayout launch_layout(int rows) {
    if constexpr (RUN_TIME) {
      return run_time_layout((rows + Tile::BLOCK_M - 1) / Tile::BLOCK_M);
    } else {
      constexpr StreamKLayout fixed = layout(FIXED_M_TILES);
      static_assert(fixed.sharing_blocks >= 1, "every sharing block has at least one iteration");
      static_assert(REMAINDER_SPLIT == 0 || (fixed.tiles > BLOCKS && fixed.tiles > fixed.whole_tiles),
                    "a full wave of whole tiles and a remainder");
      return fixed;
    }
  }
  // The first shared iteration of sharing block `block` (0 .. sharing_blocks): even runs, or with
  // STREAM_K_PLAN the generator's planned ones (Config::planned_begin, a table in constant memory:
  // codegen/cuda/stream_k_plan.h; strictly increasing from 0 to iterations).
  static __device__ __forceinline__ long long begin(const StreamKLayout& at, int block) {
    if constexpr (Config::STREAM_K_PLAN) return at.first_shared + Config::planned_begin(block);
    else return at.first_shared + block * at.iterations / at.sharing_blocks;
  }
};

// A barrier over the consumer threads only (named barrier 1): with PRODUCER = 1 the copy
// warpgroup walks its own segments ahead and never joins the fix-up; without it every thread is
// a consumer and this is the block barrier.
template <class Tile>
__device__ __forceinline__ void consumer_barrier() {
  if constexpr (Tile::PRODUCER) {
    asm volatile("bar.sync 1, %0;\n" ::"n"(Tile::CONSUMER_THREADS) : "memory");
  } else {
    __syncthreads();
  }
}

// Release at GPU scope: the block's partial stores (ordered before by a barrier and a fence) are
// visible to whoever acquires the flag.
__device__ __forceinline__ void publish_flag(u64* flag, u64 token) {
  asm volatile("st.release.gpu.global.u64 [%0], %1;\n" ::"l"(flag), "l"(token) : "memory");
}
__device__ __forceinline__ u64 acquire_flag(const u64* flag) {
  u64 value;
  asm volatile("ld.acquire.gpu.global.u64 %0, [%1];\n" : "=l"(value) : "l"(flag) : "memory");
  return value;
}

// ---- Stream-K timeline (diagnostic; LOWBIT_STREAM_K_TIMELINE, defined by no emitted kernel: only
// bench/stream_k_timeline.cpp prepends it to the generator's source and compiles its own copy, so
// no cached or tuned kernel ever carries it). Consumer thread 0 of each block appends entries
// {%globaltimer ns, %clock64, kind, argument} to its block's log of TIMELINE_ENTRIES after the
// partial slots (the tool allocates the room past workspace_bytes); entry 0's kind holds the
// count. globaltimer orders events across SMs; clock64 (the SM's cycles) times them within a block.
enum StreamKEvent : u32 {
  event_block_start = 0,   // argument: 0
  event_segment_start,     // argument: tile
  event_loop_end,          // argument: tile (main loop and ring padding done, fix-up begins)
  event_deposit_stored,    // argument: tile (thread 0's partial stores issued)
  event_deposit_end,       // argument: tile (barrier, fence and flag done)
  event_wait_start,        // argument: contributing block
  event_wait_end,          // argument: contributing block (its flag seen, consumers released)
  event_read_end,          // argument: contributing block (thread 0's partial added)
  event_segment_end,       // argument: tile (owner: epilogue stored; contributor: after the deposit)
};
struct TimelineEntry {
  u64 global_ns;
  u64 clock;
  u32 kind;
  u32 argument;
  u64 unused;
};
constexpr int TIMELINE_ENTRIES = 64;
#ifdef LOWBIT_STREAM_K_TIMELINE
__device__ __forceinline__ void timeline_stamp(TimelineEntry* log, u32 kind, long long argument) {
  if (threadIdx.x != 0) return;
  u64 global_ns, clock;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(global_ns)::"memory");
  asm volatile("mov.u64 %0, %%clock64;\n" : "=l"(clock)::"memory");
  const u32 count = log[0].kind + 1;
  if (count >= TIMELINE_ENTRIES) return;
  log[count] = TimelineEntry{global_ns, clock, kind, static_cast<u32>(argument), 0};
  log[0].kind = count;
}
#else
__device__ __forceinline__ void timeline_stamp(TimelineEntry*, u32, long long) {}
#endif

// One segment of a stream-K block's run: stages [2 (iteration - tile_begin), 2 (segment_end -
// tile_begin)) of tile `tile`. A contributor (iteration past the tile's first: only a block's
// first segment can be one) stores its partial and publishes it, and does not store the tile; the
// owner adds the partials of the next blocks whose runs start inside the tile, in block order,
// then stores it. workspace: [BLOCKS] u64 flags (padded to FLAG_BYTES), then [BLOCKS][FRAGMENTS]
// [CONSUMER_THREADS] float4 partial slots.
template <class Config>
struct StreamKWork {
  using Tile = WgmmaTile<Config>;
  using Schedule = StreamKSchedule<Config>;
  long long tile, tile_begin, iteration, segment_end;
  int ring_uses;  // PRODUCER = 1: the block's ring uses before this segment (a multiple of STAGES)
  u64* flags;
  float4* partials;
  u64 token;  // this launch's, nonzero
  TimelineEntry* timeline;  // this block's log (LOWBIT_STREAM_K_TIMELINE only, above)
  int rows;                 // an any-M Config's (M = 0) call rows (at most SCHEDULE_ROWS where it has one)
  StreamKLayout layout;     // Schedule::launch_layout(rows): constants but for a RUN_TIME Config

  __device__ __forceinline__ int call_rows() const { return rows; }

  __device__ __forceinline__ int ring_base() const { return ring_uses; }
  __device__ __forceinline__ int first_stage() const { return static_cast<int>(2 * (iteration - tile_begin)); }
  __device__ __forceinline__ int end_stage(int) const { return static_cast<int>(2 * (segment_end - tile_begin)); }
  __device__ __forceinline__ int block_row() const { return static_cast<int>(tile % layout.m_tiles) * Tile::BLOCK_M; }
  __device__ __forceinline__ long long block_panel() const { return tile / layout.m_tiles * Tile::PANELS; }
  // An owner stores every fragment of its tile.
  __device__ __forceinline__ bool stores(int) const { return true; }
  // This thread's first float4 of a block's partial slot (float4 i at + i CONSUMER_THREADS).
  __device__ __forceinline__ float4* slot(int block) const {
    return partials + static_cast<long long>(block) * Schedule::FRAGMENTS * Tile::CONSUMER_THREADS + threadIdx.x;
  }

  __device__ __forceinline__ bool fix_up(float (&accumulator)[Tile::BLOCK_M / 2]) const {
    const int block = blockIdx.x;
    timeline_stamp(timeline, event_loop_end, tile);
    if (iteration != tile_begin) {
      float4* mine = slot(block);
#pragma unroll
      for (int i = 0; i < Schedule::FRAGMENTS; ++i)
        __stcg(mine + i * Tile::CONSUMER_THREADS, make_float4(accumulator[4 * i], accumulator[4 * i + 1],
                                                              accumulator[4 * i + 2], accumulator[4 * i + 3]));
      timeline_stamp(timeline, event_deposit_stored, tile);
      consumer_barrier<Tile>();  // every thread's partial is stored ...
      if (threadIdx.x == 0) {
        __threadfence();  // ... and ordered before the flag at GPU scope
        publish_flag(flags + block, token);
      }
      timeline_stamp(timeline, event_deposit_end, tile);
      return false;
    }
    const long long tile_end = tile_begin + Schedule::PAIRS;
    for (int other = block + 1; other < layout.sharing_blocks && Schedule::begin(layout, other) < tile_end; ++other) {
      timeline_stamp(timeline, event_wait_start, other);
      if (threadIdx.x == 0) {
        while (acquire_flag(flags + other) != token) {
        }
        flags[other] = 0;  // consumed: reset for the next launch (nothing else reads it in this one)
      }
      consumer_barrier<Tile>();  // thread 0's acquire orders the partial before every thread's reads
      timeline_stamp(timeline, event_wait_end, other);
      const float4* theirs = slot(other);
#pragma unroll
      for (int i = 0; i < Schedule::FRAGMENTS; ++i) {
        const float4 value = __ldcg(theirs + i * Tile::CONSUMER_THREADS);
        accumulator[4 * i] += value.x, accumulator[4 * i + 1] += value.y;
        accumulator[4 * i + 2] += value.z, accumulator[4 * i + 3] += value.w;
      }
      timeline_stamp(timeline, event_read_end, other);
    }
    return true;
  }
};

// The segments of the persistent block blockIdx.x of BLOCKS, in order: its whole tiles
// (REMAINDER_SPLIT > 0), then its run of shared iterations. Sets work's tile, tile_begin,
// iteration and segment_end, then calls segment(first: whether it is the block's first).
template <class Config, class Segment>
__device__ __forceinline__ void for_each_segment(StreamKWork<Config>& work, Segment&& segment) {
  using Schedule = StreamKSchedule<Config>;
  bool first = true;
  if constexpr (Schedule::REMAINDER_SPLIT > 0) {
    // Whole tiles: each its own owner with no contributor (every shared iteration lies past them).
    for (work.tile = blockIdx.x; work.tile < work.layout.whole_tiles; work.tile += Schedule::BLOCKS) {
      work.tile_begin = work.tile * Schedule::PAIRS;
      work.iteration = work.tile_begin;
      work.segment_end = work.tile_begin + Schedule::PAIRS;
      segment(first);
      first = false;
    }
  }
  // (Fewer sharing blocks than BLOCKS: the hybrid's, or a run-time layout's with few iterations.)
  if constexpr (Schedule::REMAINDER_SPLIT > 0 || Schedule::RUN_TIME)
    if (static_cast<int>(blockIdx.x) >= work.layout.sharing_blocks) return;
  const long long begin = Schedule::begin(work.layout, blockIdx.x);
  const long long end = Schedule::begin(work.layout, blockIdx.x + 1);
  for (work.iteration = begin; work.iteration < end; work.iteration = work.segment_end) {
    work.tile = work.iteration / Schedule::PAIRS;
    work.tile_begin = work.tile * Schedule::PAIRS;
    work.segment_end = min(end, work.tile_begin + Schedule::PAIRS);
    segment(first);
    first = false;
  }
}

// The persistent block blockIdx.x of BLOCKS: its segments (for_each_segment), each a wgmma_tile.
// PRODUCER = 0: every thread runs each segment; a block barrier between two segments (every
// warpgroup's wgmmas of the previous one are done before its ring is refilled).
// PRODUCER = 1: the ring's mbarriers are initialized once, and registers moved once; then the
// producer warpgroup and the consumers each walk the same segments (both roles compute the same
// schedule) through their own part of wgmma_tile, counting one ring position for the block's
// lifetime: each segment's uses padded to a multiple of STAGES (ring_uses, so its stages keep
// their compile-time slots). Race-free without a block barrier between segments, because each
// slot's reuse is ordered by its own two barriers exactly as inside one tile: the producer
// refills use u only after empty's phase for use u - STAGES, which completes only when every
// consumer thread has released it (after the wgmma wait that retired its reads; a segment's last
// stage is released after its final wgmma wait, and padding uses pass straight through); a
// consumer reads use u only after full's phase for it, completed by the producer's 128 copies
// (or plain arrivals for padding) of that use. Phases of one barrier complete strictly in use
// order (a role cannot arrive for use u + STAGES before waiting for a phase that needs use u's
// completion), so the parity (u / STAGES) & 1 that each waits on is never mistaken for an
// older phase of the same parity. The fix-up synchronizes the consumer threads only
// (consumer_barrier), so the producer, free to run a segment ahead, never has to join it.
template <class Config>
__device__ __forceinline__ void wgmma_stream_k(const void* __restrict__ x, const unsigned char* __restrict__ qweight,
                                                    const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                                    const void* __restrict__ bias, void* __restrict__ y,
                                                    void* __restrict__ workspace, u64 token,
                                                    unsigned char* shared_raw, int rows = 0) {
  using Schedule = StreamKSchedule<Config>;
  using Tile = WgmmaTile<Config>;
  StreamKWork<Config> work;
  work.rows = rows;
  work.layout = Schedule::launch_layout(rows);
  work.flags = static_cast<u64*>(workspace);
  work.partials = reinterpret_cast<float4*>(static_cast<unsigned char*>(workspace) + Schedule::FLAG_BYTES);
  work.token = token;
  work.ring_uses = 0;
  // Past the partial slots: [BLOCKS][TIMELINE_ENTRIES] (used only with LOWBIT_STREAM_K_TIMELINE).
  work.timeline = reinterpret_cast<TimelineEntry*>(work.partials + static_cast<long long>(Schedule::BLOCKS) *
                                                                       Schedule::FRAGMENTS * Tile::CONSUMER_THREADS) +
                  static_cast<long long>(blockIdx.x) * TIMELINE_ENTRIES;
  timeline_stamp(work.timeline, event_block_start, 0);
  if constexpr (!Tile::PRODUCER) {
    for_each_segment(work, [&](bool first) {
      if (!first) __syncthreads();
      timeline_stamp(work.timeline, event_segment_start, work.tile);
      wgmma_tile<Config>(x, qweight, scales, zeros, bias, y, shared_raw, work);
      timeline_stamp(work.timeline, event_segment_end, work.tile);
    });
  } else {
    if (threadIdx.x == 0) init_ring_barriers<Tile>(shared_raw);
    __syncthreads();  // the barriers are initialized before anyone arrives or waits
    // After a segment: its stages' uses, padded to a multiple of STAGES (wgmma_tile pads them).
    auto advance_ring = [&]() {
      work.ring_uses += Tile::whole_turns(static_cast<int>(2 * (work.segment_end - work.iteration)));
    };
    if (threadIdx.x >= Tile::CONSUMER_THREADS) {
      producer_gives_registers<Tile>();
      for_each_segment(work, [&](bool) {
        wgmma_tile<Config, StreamKWork<Config>, TilePart::producer>(x, qweight, scales, zeros, bias, y, shared_raw, work);
        advance_ring();
      });
      asm volatile("cp.async.wait_all;\n" ::: "memory");  // no copy outlives its thread
      return;
    }
    consumers_take_registers<Tile>();
    for_each_segment(work, [&](bool) {
      timeline_stamp(work.timeline, event_segment_start, work.tile);
      wgmma_tile<Config, StreamKWork<Config>, TilePart::consumers>(x, qweight, scales, zeros, bias, y, shared_raw, work);
      timeline_stamp(work.timeline, event_segment_end, work.tile);
      advance_ring();
    });
  }
}

// The second pass of a split: y[r][n] = sum over s = 0 .. SPLIT_K-1, in that order, of
// partials[s][r][n], + bias[n], converted to OUT. A thread per REDUCE_VECTOR consecutive
// elements of one row (N % 4 == 0: four, read as one float4 per split; else one), threads
// over the flat [M][N] index; memory-bound, SPLIT_K + 1 passes over M x N. rows: the call's M
// for an any-M Config (M = 0: the partials are [SPLIT_K][rows][N]), else unused.
template <class Config>
struct SplitReduce {
  static constexpr int VECTOR = Config::N % 4 == 0 ? 4 : 1;
  static constexpr int THREADS = 256;
};

template <class Config>
__device__ __forceinline__ void wgmma_split_reduce(const float* __restrict__ partials, const void* __restrict__ bias,
                                                   void* __restrict__ y, int rows = 0) {
  using Reduce = SplitReduce<Config>;
  constexpr int VECTOR = Reduce::VECTOR;
  constexpr long long N = Config::N;
  const long long elements = static_cast<long long>(Config::M == 0 ? rows : Config::M) * N;
  const long long first = (static_cast<long long>(blockIdx.x) * Reduce::THREADS + threadIdx.x) * VECTOR;
  if (first >= elements) return;
  float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // the first VECTOR used
#pragma unroll
  for (int split = 0; split < Config::SPLIT_K; ++split) {
    const float* slice = partials + split * elements + first;
    if (VECTOR == 4) {
      const float4 value = *reinterpret_cast<const float4*>(slice);
      sum[0] += value.x, sum[1] += value.y, sum[2] += value.z, sum[3] += value.w;
    } else {
      sum[0] += slice[0];
    }
  }
  const long long column = first % N;  // the VECTOR elements share a row (N % VECTOR == 0)
#pragma unroll
  for (int i = 0; i < VECTOR; ++i) {
    const float total = sum[i] + (Config::HAS_BIAS ? load_element<Config::ACT>(bias, column + i) : 0.0f);
    store_element<Config::OUT>(y, first + i, total);
  }
}

}  // namespace lowbit_gemv
