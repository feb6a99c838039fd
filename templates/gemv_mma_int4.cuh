// Tensor-core GEMV family for small M (1..8): int4 weights in lowbit's native layout, bf16 or
// fp16 activations, mma.sync m16n8k16 with fp32 accumulation. Needs gemv_int4.cuh's helpers
// (the generator emits both). Compiled by NVRTC; codegen/cuda/gemv_generator.cpp writes the
// Config and the entry point.
//
// y^T = W x^T: the weights are the mma's A operand (16 output columns x 16 k, in registers),
// x^T is B (16 k x 8 rows of x, unused rows zero), C is [16 columns][8 rows] in fp32.
// Operand relabelling lets the native layout feed A with one 4-byte word per lane:
//   lane (g = lane/4, t = lane%4) of a 16-k tile reads the word at byte 4g of step S+t
//   (bytes 4g..4g+3 hold columns 2g and 2g+1, k0..k0+3 with k0 = 4(S+t)), and holds
//   A row g   = column 2g,   A row g+8 = column 2g+1,
//   A cols 2t, 2t+1 = k0, k0+1;  A cols 2t+8, 2t+9 = k0+2, k0+3.
// Every row shares that k relabelling, so B row 2t (and 2t+1, 2t+8, 2t+9) is x at the same k.
// A tile's words are 4 contiguous 32-byte steps (128 bytes); they are staged in shared memory.
//
// Dequantization: a nibble OR-ed into 0x4300 (bf16) or 0x6400 (fp16) is the number MAGIC + q
// (128 + q, 1024 + q), exact; products with x are exact in the fp32 accumulator. Per group:
//   y[c][m] += s[c] * (C[c][m] - (MAGIC + z[c]) * sum_k x[m][k])
// Two columns of one byte pair become one register with a byte permute and one LOP3.

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

// Config (generated): ROWS (1..8), N, K, GROUP, ZERO, ACT (bf16 or fp16), OUT, HAS_BIAS,
// WARPS (warps per block splitting K), UNROLL (stages of the cp.async ring, 4 tiles each).
template <class Config>
__device__ __forceinline__ void gemv_mma_int4(const void* __restrict__ x, const u32* __restrict__ qweight,
                                              const u16* __restrict__ scales, const u16* __restrict__ zeros,
                                              const void* __restrict__ bias, void* __restrict__ y) {
  constexpr int ROWS = Config::ROWS;
  constexpr int WARPS = Config::WARPS;
  constexpr int UNROLL = Config::UNROLL;
  // In-panel positions are 32-bit (the generator keeps K below 2^27): 64-bit index math costs
  // several instructions per operation, and this loop is issue-bound (ncu: SM 74 % busy).
  constexpr int K = Config::K;
  constexpr int GROUP = Config::GROUP;
  constexpr int GROUPS = K / GROUP;
  constexpr int STEPS = (K + 3) / 4;         // 32-byte steps per panel
  constexpr int TILES = (STEPS + 3) / 4;     // 16-k mma tiles per panel
  constexpr bool IS_BF16 = Config::ACT == bf16;
  constexpr float MAGIC = IS_BF16 ? 128.0f : 1024.0f;
  constexpr u32 EXPONENT = IS_BF16 ? 0x43004300u : 0x64006400u;

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int g = lane >> 2;
  const int t = lane & 3;
  const long long panel = blockIdx.x;
  const int first_tile = TILES * warp / WARPS;
  const int end_tile = TILES * (warp + 1) / WARPS;

  // A fold run never spans more than 256 k: with fp16's offset of 1024 a whole-K group would
  // make the accumulator's partial sums large enough to cost fp32 precision (seen: 1.1e-4 at
  // K=4097). Runs shorter than a group share the group's scale and zero point.
  constexpr int FOLD = GROUP <= 256 ? GROUP : 256;
  float total[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // [column 2g, 2g+1] x [row 2t, 2t+1]
  float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};      // mma accumulator of the current group
  // sum_k x[row][k] over the run, from a second mma whose A is all ones: lane (g, t) receives
  // the sums of rows 2t and 2t+1 in x_sum[0], x_sum[1], exactly where c holds those rows. The
  // tensor cores are idle at this M; the sums cost no conversion, addition or shuffle.
  float x_sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  constexpr u32 ONES = IS_BF16 ? 0x3f803f80u : 0x3c003c00u;
  int run = first_tile * 16 / FOLD;  // the current fold run
  // The run's scales and zero points, loaded when the run starts so the load's latency hides
  // behind the run's mma's: [columns 2g, 2g+1] as two fp16 each.
  u32 scale_pair = 0;
  u32 zero_pair = 0;
  auto load_group_tables = [&]() {
    const int group = run * FOLD / GROUP;
    const long long table = (panel * GROUPS + group) * 16 + 2 * g;
    scale_pair = *reinterpret_cast<const u32*>(scales + table);
    if (Config::ZERO != zero_none) zero_pair = *reinterpret_cast<const u32*>(zeros + table);
  };
  if (first_tile < end_tile) load_group_tables();

  // Folds the run's accumulator into the totals. Register contract: reads c, x_sum,
  // scale_pair, zero_pair; writes total; clears c and x_sum.
  auto fold_group = [&]() {
    const float x_sum_even = x_sum[0];  // row 2t
    const float x_sum_odd = x_sum[1];   // row 2t+1
    const float scale0 = half_to_float(static_cast<u16>(scale_pair));
    const float scale1 = half_to_float(static_cast<u16>(scale_pair >> 16));
    float zero0 = 1 << 3;  // zero=none: implicit 2^(bits-1)
    float zero1 = 1 << 3;
    if (Config::ZERO != zero_none) {
      zero0 = half_to_float(static_cast<u16>(zero_pair));
      zero1 = half_to_float(static_cast<u16>(zero_pair >> 16));
    }
    total[0] = fmaf(scale0, fmaf(-(MAGIC + zero0), x_sum_even, c[0]), total[0]);
    total[1] = fmaf(scale0, fmaf(-(MAGIC + zero0), x_sum_odd, c[1]), total[1]);
    total[2] = fmaf(scale1, fmaf(-(MAGIC + zero1), x_sum_even, c[2]), total[2]);
    total[3] = fmaf(scale1, fmaf(-(MAGIC + zero1), x_sum_odd, c[3]), total[3]);
    c[0] = c[1] = c[2] = c[3] = 0.0f;
    x_sum[0] = x_sum[1] = x_sum[2] = x_sum[3] = 0.0f;
  };

  // Weights stream through shared memory: each warp copies chunks of 4 tiles (512 contiguous
  // bytes, 16 per lane) with cp.async into a ring of UNROLL stages, UNROLL - 1 chunks ahead of
  // the mma's, so many 16-byte loads are in flight while only 4-byte words feed the fragments.
  constexpr int STAGES = UNROLL;
  __shared__ __align__(16) u32 ring[WARPS][STAGES][128];  // [warp][stage][4 tiles x 4 steps x 8 words]
  const unsigned char* panel_bytes = reinterpret_cast<const unsigned char*>(qweight) + panel * STEPS * 32;
  const int chunks = (end_tile - first_tile + 3) / 4;
  auto issue_chunk = [&](int chunk) {
    if (chunk < chunks) {
      const int byte = (first_tile * 4 + chunk * 16) * 32 + lane * 16;  // this lane's 16 bytes
      const int valid = byte + 16 <= STEPS * 32 ? 16 : 0;  // past the panel: zero-filled
      const u32 target = static_cast<u32>(__cvta_generic_to_shared(&ring[warp][chunk % STAGES][lane * 4]));
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(target),
                   "l"(panel_bytes + (valid ? byte : 0)), "r"(valid));
    }
    asm volatile("cp.async.commit_group;\n" ::);  // an empty group keeps the count uniform
  };
#pragma unroll
  for (int stage = 0; stage < STAGES - 1; ++stage) issue_chunk(stage);

  const u16* x_row = static_cast<const u16*>(x) + (g < ROWS ? g : 0) * K;
  for (int chunk = 0; chunk < chunks; ++chunk) {
    // B for the chunk's 4 tiles: x[row g][k0 .. k0+3] as two pairs (zero for rows past M and k
    // past K), loaded before waiting for the weights so the two latencies overlap.
    uint2 x_pairs[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int k0 = ((first_tile + chunk * 4 + j) * 4 + t) * 4;
      x_pairs[j] = make_uint2(0, 0);
      if (g >= ROWS || first_tile + chunk * 4 + j >= end_tile) continue;
      if (K % 4 == 0) {
        if (k0 < K) x_pairs[j] = *reinterpret_cast<const uint2*>(x_row + k0);
      } else {
        const u32 v0 = k0 < K ? x_row[k0] : 0u;
        const u32 v1 = k0 + 1 < K ? x_row[k0 + 1] : 0u;
        const u32 v2 = k0 + 2 < K ? x_row[k0 + 2] : 0u;
        const u32 v3 = k0 + 3 < K ? x_row[k0 + 3] : 0u;
        x_pairs[j] = make_uint2(v0 | v1 << 16, v2 | v3 << 16);
      }
    }
    issue_chunk(chunk + STAGES - 1);
    asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 1));  // chunk `chunk` has landed
    __syncwarp();
    const u32* stage_words = ring[warp][chunk % STAGES];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int tile = first_tile + chunk * 4 + j;
      if (tile >= end_tile) break;  // warp-uniform
      if (tile * 16 / FOLD != run) {
        fold_group();
        run = tile * 16 / FOLD;
        load_group_tables();
      }
      const u32 word = stage_words[(j * 4 + t) * 8 + g];  // byte 4g of step 4j+t: conflict-free
      const u32 b0 = x_pairs[j].x;
      const u32 b1 = x_pairs[j].y;
      // A: bytes [b0 b1 b2 b3] of the word; low nibbles are k0/k0+1, high nibbles k0+2/k0+3.
      const u32 low_pair = __byte_perm(word, 0u, 0x4140);   // [byte0, 0, byte1, 0]: column 2g
      const u32 high_pair = __byte_perm(word, 0u, 0x4342);  // [byte2, 0, byte3, 0]: column 2g+1
      const u32 a0 = (low_pair & 0x000f000fu) | EXPONENT;
      const u32 a1 = (high_pair & 0x000f000fu) | EXPONENT;
      const u32 a2 = ((low_pair >> 4) & 0x000f000fu) | EXPONENT;
      const u32 a3 = ((high_pair >> 4) & 0x000f000fu) | EXPONENT;
      mma_16816<IS_BF16>(c, a0, a1, a2, a3, b0, b1);
      mma_16816<IS_BF16>(x_sum, ONES, ONES, ONES, ONES, b0, b1);
    }
    __syncwarp();  // every lane has read this stage before a later chunk refills it
  }
  asm volatile("cp.async.wait_group 0;\n" ::);
  if (first_tile < end_tile) fold_group();

  // [WARPS][8 rows][16 columns] fp32: each warp's totals (C's 8 columns are x's rows).
  __shared__ float partial[WARPS][8][16];
  partial[warp][2 * t][2 * g] = total[0];
  partial[warp][2 * t + 1][2 * g] = total[1];
  partial[warp][2 * t][2 * g + 1] = total[2];
  partial[warp][2 * t + 1][2 * g + 1] = total[3];
  __syncthreads();
  store_panel<Config, 8>(partial, bias, y, panel);
}

}  // namespace lowbit_gemv
