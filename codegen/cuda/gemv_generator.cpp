#include "codegen/cuda/gemv_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>

#include "codegen/cuda/embedded_templates.h"
#include "codegen/cuda/template_constants.h"
#include "lowbit/errors.h"
#include "lowbit/native_layout.h"

namespace lowbit::cuda {

namespace {

// Tiles (16 k of a panel) one 16-byte copy per lane of a warp covers in gemv_mma's ring, and
// their 4-byte words: MmaFormat's CHUNK_TILES and TILE_WORDS in templates/gemv_mma.cuh.
int mma_chunk_tiles(int bits) { return bits == 2 ? 8 : bits == 8 ? 2 : 4; }
int mma_tile_words(int bits) { return bits == 2 ? 16 : bits == 3 ? 24 : bits == 8 ? 64 : 32; }
// gemv_mma's wide chunks: block_k twice the format's chunk of k (1 KB a warp and stage).
int mma_wide_chunk_k(int bits) { return 2 * mma_chunk_tiles(bits) * 16; }

// gemv_mma's panels per warp (WARP_PANELS in the template): block_n / 16, 0 meaning one panel.
int mma_warp_panels(const CudaVariant& variant) { return variant.block_n == 0 ? 1 : variant.block_n / 16; }

// gemv_mma's n8 B operands (HALVES in the template): 8 rows of x each.
int mma_row_halves(const OpDesc& desc) { return static_cast<int>((desc.m + 7) / 8); }

// The fp32 registers a gemv_mma thread keeps across its k loop: per panel of its set the totals
// and the run's accumulators (SPLIT formats, 8 bits in bf16, a second accumulator), 4 per n8 B
// operand each, and x's sums, 4 per B operand, shared by the set.
int mma_accumulator_registers(const OpDesc& desc, const CudaVariant& variant) {
  const bool split_format = desc.bits == 8 && desc.act == DType::bf16;
  return mma_warp_panels(variant) * mma_row_halves(desc) * 4 * (split_format ? 3 : 2) + mma_row_halves(desc) * 4;
}

// gemv_mma's fold runs per panel (RUNS in the template): a group, at most 256 k; whole K
// folds every 256 k. Split-K gives each block a contiguous range of them.
int mma_runs(const OpDesc& desc) {
  const int64_t group = desc.group_size();
  const int64_t tiles = (desc.k + 15) / 16;
  const int64_t run_tiles = desc.k / group == 1 ? 16 : std::min<int64_t>(group, 256) / 16;
  return static_cast<int>((tiles + run_tiles - 1) / run_tiles);
}

// gemv_mma's resident x (X_RESIDENT in the template, GemvMmaShared): bytes of one row of a
// warp's slice, the k of at most ceil(ceil(runs / split_k) / warps) fold runs, rounded up to
// 128 bytes plus 32 (conflict-free B reads).
int mma_resident_stride(const OpDesc& desc, const CudaVariant& variant) {
  const int64_t group = desc.group_size();
  const int64_t run_tiles = desc.k / group == 1 ? 16 : std::min<int64_t>(group, 256) / 16;
  const int64_t block_runs = (mma_runs(desc) + variant.split_k - 1) / variant.split_k;
  const int64_t warp_runs = (block_runs + variant.warps - 1) / variant.warps;
  const int64_t bytes = warp_runs * run_tiles * 16 * 2;
  return static_cast<int>((bytes + 127) / 128 * 128 + 32);
}

}  // namespace

Validity GemvGenerator::is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (desc.device.kind != DeviceKind::cuda) return refuse("the CUDA generators serve device=cuda:N only");
  if (arch_major < 8) return refuse("CUDA kernels need compute capability 8.0 or newer");
  if (desc.bits != 2 && desc.bits != 3 && desc.bits != 4 && desc.bits != 8)
    return refuse(fmt::format("bits={}: the CUDA GEMV families read bits 2, 3, 4 and 8", desc.bits));
  if (desc.compute != Compute::floating) return refuse("compute=int8 is not generated on CUDA");
  if (desc.layout != Layout::native) return refuse("only layout=native is read by CUDA kernels");
  const int rows = variant.family == CudaFamily::gemv_mma ? max_mma_rows : max_rows;
  if (desc.m < 1 || desc.m > rows)
    return refuse(fmt::format("m={}: the CUDA GEMV family {} serves m=1..{} (larger M: the mma family)", desc.m,
                              to_string(variant.family), rows));
  // In-panel offsets (k and bytes) are 32-bit in the kernels: 64-bit index math costs several
  // instructions per operation in issue-bound loops.
  if (desc.k >= (int64_t{1} << 27))
    return refuse(fmt::format("k={}: the CUDA GEMV families keep in-panel offsets in 32 bits (k < 2^27)", desc.k));
  if (native_geometry(desc).panel_bytes >= (int64_t{1} << 30))
    return refuse(fmt::format("k={}, bits={}: a panel of {} bytes; the CUDA GEMV families keep in-panel byte "
                              "offsets below 2^30",
                              desc.k, desc.bits, native_geometry(desc).panel_bytes));
  if (variant.family == CudaFamily::gemv_mma && desc.act == DType::fp32)
    return refuse("the gemv_mma family needs act=bf16 or fp16 (tensor-core operands)");
  if (variant.family == CudaFamily::gemv_mma) {
    if (variant.warps != 1 && variant.warps != 2 && variant.warps != 4 && variant.warps != 8 && variant.warps != 16)
      return refuse("warps must be 1, 2, 4, 8 or 16");
  } else if (variant.warps != 1 && variant.warps != 2 && variant.warps != 4 && variant.warps != 8) {
    return refuse("warps must be 1, 2, 4 or 8");
  }
  if (variant.unroll != 1 && variant.unroll != 2 && variant.unroll != 4 && variant.unroll != 8)
    return refuse("unroll must be 1, 2, 4 or 8");
  if (variant.family != CudaFamily::gemv_mma &&
      (variant.block_n != 0 || variant.block_k != 0 || variant.split_k != 1 || variant.bulk_copy != 0 ||
       variant.panels != 1 || variant.prefetch != 0))
    return refuse(fmt::format("block_n={}, block_k={}, split_k={}, bulk_copy={}, panels={}, prefetch={}: the gemv "
                              "family reads none of them (block_n=0, block_k=0, split_k=1, bulk_copy=0, panels=1, "
                              "prefetch=0)",
                              variant.block_n, variant.block_k, variant.split_k, variant.bulk_copy, variant.panels,
                              variant.prefetch));
  if (variant.prefetch != 0 && variant.prefetch != 1) return refuse("prefetch must be 0 or 1");
  if (variant.bulk_copy != 0 && variant.bulk_copy != 1) return refuse("bulk_copy must be 0 or 1");
  if (variant.bulk_copy == 1 && arch_major < 9)
    return refuse("bulk_copy=1: bulk copies (cp.async.bulk) need sm_90 or newer");
  if (variant.family == CudaFamily::gemv_mma) {
    const int format_k = mma_chunk_tiles(desc.bits) * 16;
    if (variant.block_k != 0 && variant.block_k != format_k && variant.block_k != 2 * format_k)
      return refuse(fmt::format("block_k={}: gemv_mma copies {} or {} k per warp and stage at bits={} (0: {})",
                                variant.block_k, format_k, 2 * format_k, desc.bits, format_k));
    if (variant.split_k != 1 && variant.split_k != 2 && variant.split_k != 4 && variant.split_k != 8)
      return refuse(fmt::format("split_k={}: must be 1, 2, 4 or 8", variant.split_k));
    // block_n: the columns each warp (and so the block) covers, 2 or 4 adjacent panels; 0 is one
    // panel (16 is refused, so one kernel has one name).
    if (variant.block_n != 0 && variant.block_n != 32 && variant.block_n != 64)
      return refuse(fmt::format("block_n={}: gemv_mma covers 0 (one panel), 32 or 64 columns per warp",
                                variant.block_n));
    // The accumulators must leave a thread 64 of its registers (65536 an SM over the block's
    // threads, at most 255) for addresses, fragments and the decode: 4 panels of 16 rows at 16
    // warps (72 of 128) spilled 164-312 bytes (ptxas, 8 bits bf16, whose SPLIT format holds
    // 104), and so do 4 panels of 32 rows at 8 bits (208 of 255).
    const int registers = std::min(255, 65536 / (32 * variant.warps));
    const int accumulators = mma_accumulator_registers(desc, variant);
    if (accumulators > registers - 64)
      return refuse(fmt::format("block_n={} with warps={} at m={}, bits={}: {} fp32 accumulators a thread, more than "
                                "the {} registers a thread of {} has less 64 (they would spill); use fewer warps, "
                                "a smaller block_n or fewer rows",
                                variant.block_n, variant.warps, desc.m, desc.bits, accumulators, registers,
                                32 * variant.warps));
    if (variant.block_n != 0 && variant.bulk_copy != 0)
      return refuse(fmt::format("block_n={} with bulk_copy=1: bulk copies fill one panel's stage; several panels "
                                "per warp need bulk_copy=0",
                                variant.block_n));
    if (variant.panels != 1 && variant.panels != 2 && variant.panels != 4 && variant.panels != 8)
      return refuse(fmt::format("panels={}: must be 1, 2, 4 or 8", variant.panels));
    if (variant.panels != 1 && (variant.split_k != 1 || variant.bulk_copy != 0))
      return refuse(fmt::format("panels={} with split_k={}, bulk_copy={}: a block walks several panels only with "
                                "split_k=1 and bulk_copy=0",
                                variant.panels, variant.split_k, variant.bulk_copy));
    if (variant.prefetch != 0 && variant.panels != 1)
      return refuse(fmt::format("prefetch=1 with panels={}: the prefetch covers a block's first panel only; a panel "
                                "walk needs prefetch=0",
                                variant.panels));
    if (variant.split_k > mma_runs(desc))
      return refuse(fmt::format("split_k={}: k={} has only {} fold runs (groups of at most 256 k) to split",
                                variant.split_k, desc.k, mma_runs(desc)));
  }
  // The ring plus the static [WARPS][rows][16] fp32 partial sums, within the smallest opt-in
  // limit of the arch (cudaDevAttrMaxSharedMemoryPerBlockOptin: 99 KiB on sm_86/sm_89, 227 KiB
  // on sm_90).
  const int limit = arch_major >= 9 ? 232448 : 101376;
  // (bulk copies add one 8-byte mbarrier per warp and stage).
  const int partial = variant.family == CudaFamily::gemv_mma
                          ? variant.warps * 8 * mma_row_halves(desc) * 16 * 4 + variant.bulk_copy * variant.warps * variant.unroll * 8
                          : 0;
  if (shared_bytes(desc, variant) + partial > limit)
    return refuse(fmt::format("warps={}, unroll={}: {} bytes of shared memory at m={}, above the {} bytes an "
                              "sm_{}x block may use",
                              variant.warps, variant.unroll, shared_bytes(desc, variant) + partial, desc.m, limit,
                              arch_major));
  return {};
}

int GemvGenerator::chunk_tiles(const OpDesc& desc, const CudaVariant& variant) {
  return variant.block_k != 0 ? variant.block_k / 16 : mma_chunk_tiles(desc.bits);
}

bool GemvGenerator::x_resident(const OpDesc& desc, const CudaVariant& variant) {
  if (variant.family != CudaFamily::gemv_mma || variant.bulk_copy != 0) return false;
  return variant.warps * desc.m * mma_resident_stride(desc, variant) <= max_resident_x_bytes;
}

int GemvGenerator::shared_bytes(const OpDesc& desc, const CudaVariant& variant) {
  if (variant.family != CudaFamily::gemv_mma) return 0;
  // GemvMmaShared: per warp, its ring (per stage the chunk's weights of each of its panels and, unless x is resident,
  // [m][chunk_k * 2 + 32 bytes] of x) and its resident x ([m][mma_resident_stride]); then one
  // zero row of chunk_k 16-bit values.
  const int chunk_tiles = GemvGenerator::chunk_tiles(desc, variant);
  const int chunk_k = chunk_tiles * 16;
  const bool resident = x_resident(desc, variant);
  const int m = static_cast<int>(desc.m);
  const int stage_words = mma_warp_panels(variant) * chunk_tiles * mma_tile_words(desc.bits) +
                          (resident ? 0 : m * (chunk_k * 2 + 32) / 4);
  const int resident_words = resident ? m * mma_resident_stride(desc, variant) / 4 : 0;
  return (variant.warps * (variant.unroll * stage_words + resident_words) + chunk_k * 2 / 4) * 4;
}

LaunchGeometry GemvGenerator::launch_geometry(const OpDesc& desc, const CudaVariant& variant) const {
  LaunchGeometry geometry;  // fields by name: a positional list shifts when LaunchGeometry grows
  // A block per set of warp_panels adjacent panels, or per `panels` such sets walked in turn.
  const int64_t panels = native_geometry(desc).panels;
  const int64_t warp_panels = variant.family == CudaFamily::gemv_mma ? mma_warp_panels(variant) : 1;
  const int64_t sets = (panels + warp_panels - 1) / warp_panels;
  geometry.grid_x = static_cast<unsigned>((sets + variant.panels - 1) / variant.panels);
  geometry.grid_y = static_cast<unsigned>(variant.split_k);
  geometry.threads = static_cast<unsigned>(variant.warps * 32);
  geometry.shared_bytes = static_cast<unsigned>(shared_bytes(desc, variant));
  return geometry;
}

std::size_t GemvGenerator::workspace_bytes(const OpDesc& desc, const CudaVariant& variant) {
  if (variant.split_k == 1) return 0;
  const auto bytes = static_cast<std::size_t>(variant.split_k * desc.m * desc.n) * sizeof(float);
  return (bytes + 255) / 256 * 256;
}

LaunchGeometry GemvGenerator::split_sum_geometry(const OpDesc& desc) {
  constexpr unsigned threads = 256;
  const auto outputs = static_cast<unsigned>(desc.m * desc.n);
  LaunchGeometry geometry;
  geometry.grid_x = (outputs + threads - 1) / threads;
  geometry.threads = threads;
  return geometry;
}

std::vector<CudaVariant> GemvGenerator::candidates(const OpDesc& desc) const {
  std::vector<CudaVariant> variants;
  auto add = [&](CudaVariant variant) {
    if (is_valid(desc, variant, 9)) variants.push_back(variant);
  };
  for (int warps : {2, 4, 8})
    for (int unroll : {2, 4, 8}) add(CudaVariant{CudaFamily::gemv, warps, unroll});
  // gemv_mma: the ring's depth and width (bytes in flight per warp; wide chunks with 2 or 4
  // stages), and below heuristic_many_panels panels split-K in two blocks at 8 warps and 2
  // stages (more blocks for the SMs: 256 panels of N = 4096 on 132 SMs). On the H100 (docs/benchmarks.md, the second
  // small-M round) split 4, split at 16 warps or 4 stages, and bulk_copy=1 never came within
  // 5 % of the best, so they are not searched (bulk copies stay valid on sm_90 when named).
  const int wide_k = mma_wide_chunk_k(desc.bits);
  const bool many_panels = native_geometry(desc).panels >= heuristic_many_panels;
  // One panel a warp only up to 16 rows: above, a chunk's x (M rows) is more than 4 times its
  // weights' bytes at 4 bits, all of it read from L2 again for every panel.
  if (desc.m <= 16) {
    for (int warps : {4, 8, 16})
      for (int unroll : {2, 4, 8})
        for (int block_k : {0, wide_k}) {
          if (block_k != 0 && unroll == 8) continue;  // 8 stages of 1 KB: past what pays
          CudaVariant variant{CudaFamily::gemv_mma, warps, unroll};
          variant.block_k = block_k;
          add(variant);
          if (!many_panels && warps == 8 && unroll == 2) {
            variant.split_k = 2;
            add(variant);
          }
        }
  }
  // Warps covering 2 or 4 panels (block_n 32, 64) from M = 4 on, where x's copies from L2 are
  // at least the weights' bytes with one panel a warp (M / 4 times them): each chunk of x then
  // serves block_n / 16 panels. 4 to 16 warps, both chunk widths, 2 stages; on few panels also
  // split-K in two (a block per set of panels leaves fewer blocks). On the H100 (docs/benchmarks.md,
  // "several panels per warp") they won at M = 4, 8 and 16 on 28672x4096 and at M=16 on
  // 4096-column shapes, and lost by 0.3-0.7 us elsewhere.
  // Below 4 rows only warps of 2 panels at 4 and 8 warps on many panels, where the set's shared
  // B loads, ones-mma and loop cut the instructions a weight (the loop of M=1 28672x4096 at 4
  // bits: 162 SASS instructions for two panels' 4-tile chunks against 2 x 105): on the H100 at
  // M = 1..3 (docs/benchmarks.md, session 25) they won on 28672x4096 by 1-3 % at 4 bits, 7-8 % at
  // 3 bits and 8-15 % at 2 bits, and lost by 2-9 % on 256 and 384 panels; 4 panels a warp and
  // 16 warps never won.
  if (desc.m < 4 && many_panels)
    for (int warps : {4, 8})
      for (int block_k : {0, wide_k}) {
        CudaVariant variant{CudaFamily::gemv_mma, warps, 2};
        variant.block_n = 32;
        variant.block_k = block_k;
        add(variant);
      }
  if (desc.m >= 4)
    for (int warps : {4, 8, 16})
      for (int block_n : {32, 64})
        for (int block_k : {0, wide_k}) {
          CudaVariant variant{CudaFamily::gemv_mma, warps, 2};
          variant.block_n = block_n;
          variant.block_k = block_k;
          if (warps == 16 && block_n == 64) continue;  // spills at 16 rows; 8 warps carry the bytes
          add(variant);
          if (!many_panels && warps == 8 && block_k == 0) {
            variant.split_k = 2;
            add(variant);
          }
        }
  // Blocks walking 2, 4 or 8 panels with one ring (panels) are not searched either: on the
  // H100 at M = 1..16 on 28672x4096 and 4096x14336 (docs/benchmarks.md, third small-M round)
  // the best of them was within 0.2 us of the best single-panel variant or slower (the kernel
  // is issue-bound, not short of bytes in flight); valid when named. Nor is the L2 prefetch
  // (prefetch=1): slower in all 32 pairs of the fifth round, by 1 to 34 % (M=1 28672x4096
  // w8u2: 39.6 against 36.4 us), so valid when named.
  return variants;
}

bool GemvGenerator::short_rows_on_few_panels(const OpDesc& desc) {
  return desc.m > preferred_max_rows && desc.m <= short_rows_max && desc.k <= short_rows_max_k &&
         native_geometry(desc).panels <= heuristic_few_panels;
}

// What the candidates' timings on an H100 favoured (docs/benchmarks.md, "small M to the
// bandwidth floor" and the no-tune heuristic's misses of session 9): the tensor-core family at
// every M (the CUDA-core family only for fp32 activations), 2 stages; the warps a panel's block
// takes and the chunk per warp and stage by the rows and by how many blocks the grid has:
// - Few panels (at most few_panels: about two blocks per SM of the H100's 132) need more warps
//   per block to keep enough bytes in flight; on more panels, the grid's own blocks do, and half
//   the warps per panel won: at M <= 4, 16 warps on 256 panels (4096 columns: 7.8 us at M=1),
//   8 on 384 and 1792 (6144x4096: 9.5 against 11.2 us at M=1, 9.9 against 11.7 at M=4;
//   28672x4096: 27.5 against 30.9 at M=1); at M = 5..8, 8 warps on 256 panels (4096x14336:
//   15.6 us, the best) and 4 on more (28672x4096: 28.2 against 31.0 us with 8 warps; 6144x4096:
//   9.5 against 9.7).
// - 1 KB chunks (block_k twice the format's) at M = 5..8 (4096x14336: 15.6 against 18.1 us at
//   M=8); not at M <= 4 (4096x14336 at M=1: 15.6 against 16.4 us, M=4: 15.2 against 15.4), nor
//   above 8 rows, where x's rows double a stage's share of x and 1 KB chunks took a block of 8
//   warps to 98 KB, two blocks an SM (M=16: 11.4 against 14.5 us on 6144x4096, 8.9 against 9.6
//   on 4096x4096, 20.5 against 20.8 on 4096x14336, all with 8 warps; 4 warps lost there too).
// Split-K never won (its second launch alone costs about 2.5 us at these sizes).
// - From 4 rows on many panels (at least heuristic_many_panels), 4 warps each covering 4
//   panels (block_n 64): a warp's copy of x then serves 4 panels, and x's traffic from L2, M / 4
//   times the weights' bytes with one panel a warp, falls by 4 (docs/benchmarks.md, "several
//   panels per warp", rotate run mean on 28672x4096: M=16 30.1 against 38.5 us, M=8 27.6
//   against 28.4, M=4 28.4 against 29.8). On fewer panels the sets of 4 leave too few blocks
//   for the SMs (6144x4096, 96 sets: P=1 stayed best at every M), and at M <= 8 on 256 panels
//   x's share is small enough that one panel a warp won.
// - Above 8 rows on few panels, 16 warps of 2 panels (block_n 32) where the arch's shared memory
//   holds their ring (114 KB at M=16 and 4 bits: sm_90's 227 KiB, not sm_8x's 99 KiB; else 8
//   warps of one panel): x's share of a warp's bytes is largest there, and 256 panels leave too
//   few blocks for sets of 4 (4096x14336 at M=16: 17.2 against 20.3 us by the rotate run mean,
//   18.3 against 21.2 per call; 4096x4096: 8.0 against 8.4).
// - Wide chunks (block_k twice the format's, as at 5..8 rows) at 3 bits at every row count, and at
//   8 bits above 8 rows, where a warp takes one panel (with_wide_chunks; session 13,
//   bench/shapes/wide_chunks_rows.txt, median of 20, old choice against new in one process): at 3
//   bits 2-8 % faster on every row timed (M = 1: 12.1 -> 11.4 us on 6144x4096, 39.6 -> 36.9 on
//   28672x4096, 21.7 -> 19.9 on 4096x14336; M = 4 and 16 likewise; fp16 too); at 8 bits 11 % at
//   M = 16 on 6144x4096 (16.9 -> 15.0 us; fp16 16.7 -> 14.1), but mixed at M <= 4 (-2 % to +4 %:
//   25.6 -> 26.2 us at M = 1 on 4096x14336, 14.4 -> 15.0 at M = 4 on 6144x4096), so not there.
// - From 4 rows on many panels at 3 bits, 4 warps of 2 panels (block_n 32) instead of 4: on
//   28672x4096 38.8 against 42.5 us at M = 4, 38.1 against 41.2 at M = 8, 43.6 against 47.1 at
//   M = 16 (session 13, bench/shapes/width_rules_rows.txt, median of 20, one process a row).
// - At 1..3 rows on many panels (few_rows_on_many_panels, session 25, calls 1 and 7: 28672x4096,
//   median of 15, the former choice timed in the same call):
//   - 2 and 4 bits: warps of 2 panels (block_n 32), the set sharing its B loads, ones-mma and
//     loop (fewer instructions a weight), 4 warps at 1..2 rows, 8 at 3: 4 bits 27.3 against
//     27.8 us at M = 1, 27.3 against 28.1 at M = 2, 28.3 against 28.5 at M = 3 (4 warps of 2
//     there: 34.1); 2 bits 22.4 against 24.4 at M = 1, 22.5 against 26.3 at M = 3; fp16 alike.
//   - 3 bits: 8 warps of 2 panels with wide chunks (w8u2_n32_k128): 33.9 against 36.8 us at
//     M = 1, 35.0 against 37.4 at M = 2, 36.1 against 38.9 at M = 3, fp16 34.0 against 36.5.
//   - 8 bits: 16 warps of one panel, 4 stages of wide chunks (w16u4_k64): 45.7 against 46.6 us at
//     M = 1, 46.1 against 49.2 at M = 2, 46.7 against 48.4 at M = 3, fp16 44.5 against 46.2.
// - At M = 1 and 8 bits on more than few_panels panels (up to many: there, 16 warps, above),
//   4 stages (w8u4): 13.6 against 14.3 us on 6144x4096, 47.5 against 48.5 on 28672x4096 (same
//   call, before the 16 warps were timed); on 256 panels and at M = 4 the
//   extra stages gained nothing or lost (10.7 against 10.8, 25.5 against 25.6; 14.8 against 14.4).
// - Above 8 rows below 1024 panels at 2 bits, 8 warps of 2 panels (block_n 32) where the rule
//   above does not take 16 (more than 256 panels, or not sm_90): 12.1 against 14.6 us at M = 16 on
//   6144x4096 (same call; on 4096x4096, 256 panels, release call 7 had it fastest too: 8.6 us
//   against 9.2 for sm_90's 16 warps of 2 panels).
// - Above 8 rows on many panels at 2 and 8 bits in bf16, 8 warps of 2 panels (block_n 32; 64-k
//   chunks at 8 bits) where the arch takes them (session 13, bench/shapes/sixteen_rows_wide_n.txt,
//   28672x4096, median of 20): at M = 16 32.0 against 32.6 us (4 panels a warp) at 2 bits, 50.1
//   against 63.5 at 8; at M = 12 30.5 against 32.7, 50.2 against 65.0. (In fp16 the registry
//   takes wgmma's 16-row tile there, WgmmaGenerator::preferred.)
CudaVariant GemvGenerator::heuristic(const OpDesc& desc, int arch_major) const {
  if (desc.act == DType::fp32) return CudaVariant{CudaFamily::gemv, desc.m <= 2 ? 8 : 4, desc.m <= 2 ? 4 : 2};
  const int64_t panels = native_geometry(desc).panels;
  const bool few_panels = panels <= heuristic_few_panels;
  const bool many_panels = panels >= heuristic_many_panels;
  auto fits = [&](const CudaVariant& variant) { return fits_arch(desc, variant, arch_major); };
  // 17..32 rows: warps of 2 panels, 4 a block on many panels, else 8. The registry's no-tune
  // choice at 17..24 rows on few panels with a short K (short_rows_on_few_panels); elsewhere in
  // these rows the sentinel a tuning measures beside wgmma's candidates.
  // On the H100 at M = 24, 4 bits bf16 (docs/benchmarks.md, session 23, call 5): 35.8 us on
  // 28672x4096 (the best gemv_mma; wgmma's no-tune 37.0), 14.1 on 6144x4096 (best 13.7; 15.2),
  // 10.0 on 4096x4096 (9.9; 12.8), 21.5 on 4096x14336 (20.0; 24.8). At M = 32 wgmma stays ahead
  // on three of the four shapes.
  if (desc.m > 16) {
    CudaVariant pairs{CudaFamily::gemv_mma, many_panels ? 4 : 8, 2};
    pairs.block_n = 32;
    return pairs;
  }
  if (desc.m > 8 && many_panels && desc.act == DType::bf16 && (desc.bits == 2 || desc.bits == 8)) {
    CudaVariant pairs{CudaFamily::gemv_mma, 8, 2};
    pairs.block_n = 32;
    if (desc.bits == 8) pairs.block_k = 64;
    if (fits(pairs)) return pairs;
  }
  if (desc.m >= 4 && many_panels) {
    CudaVariant variant{CudaFamily::gemv_mma, 4, 2};
    variant.block_n = desc.bits == 3 ? 32 : 64;
    return variant;
  }
  if (desc.m > 8) {
    CudaVariant pairs{CudaFamily::gemv_mma, 16, 2};
    pairs.block_n = 32;
    if (few_panels && arch_major >= 9 && is_valid(desc, pairs, arch_major)) return pairs;
    if (desc.bits == 2) {
      CudaVariant two_panels{CudaFamily::gemv_mma, 8, 2};
      two_panels.block_n = 32;
      if (fits(two_panels)) return two_panels;
    }
    return with_wide_chunks(desc, CudaVariant{CudaFamily::gemv_mma, 8, 2}, arch_major);
  }
  if (desc.m > 4) {
    CudaVariant variant{CudaFamily::gemv_mma, few_panels ? 8 : 4, 2};
    variant.block_k = mma_wide_chunk_k(desc.bits);
    return variant;
  }
  if (desc.m <= 3 && many_panels) {
    const CudaVariant chosen = few_rows_on_many_panels(desc);
    if (fits(chosen)) return chosen;
  }
  if (desc.bits == 8 && desc.m == 1 && !few_panels) {
    const CudaVariant deeper{CudaFamily::gemv_mma, 8, 4};
    if (fits(deeper)) return deeper;
  }
  return with_wide_chunks(desc, CudaVariant{CudaFamily::gemv_mma, few_panels ? 16 : 8, 2}, arch_major);
}

CudaVariant GemvGenerator::few_rows_on_many_panels(const OpDesc& desc) {
  if (desc.bits == 8) {
    CudaVariant deep{CudaFamily::gemv_mma, 16, 4};
    deep.block_k = mma_wide_chunk_k(desc.bits);
    return deep;
  }
  CudaVariant pairs{CudaFamily::gemv_mma, desc.bits == 3 || desc.m == 3 ? 8 : 4, 2};
  pairs.block_n = 32;
  if (desc.bits == 3) pairs.block_k = mma_wide_chunk_k(desc.bits);
  return pairs;
}

CudaVariant GemvGenerator::with_wide_chunks(const OpDesc& desc, CudaVariant variant, int arch_major) const {
  if (desc.bits != 3 && !(desc.bits == 8 && desc.m > 8)) return variant;
  CudaVariant wide = variant;
  wide.block_k = mma_wide_chunk_k(desc.bits);
  return fits_arch(desc, wide, arch_major) ? wide : variant;
}

bool GemvGenerator::fits_arch(const OpDesc& desc, const CudaVariant& variant, int arch_major) const {
  return bool(is_valid(desc, variant, arch_major == 0 ? 8 : arch_major));
}

std::string GemvGenerator::emit(const OpDesc& desc, const CudaVariant& variant) const {
  // The mma family reuses the FMA family's conversion helpers, so both files are emitted.
  std::string body = embedded_templates().at("gemv.cuh");
  if (variant.family == CudaFamily::gemv_mma) body += embedded_templates().at("gemv_mma.cuh");
  const char* function = variant.family == CudaFamily::gemv_mma ? "gemv_mma" : "gemv";
  const char* weight_type = variant.family == CudaFamily::gemv_mma ? "unsigned int" : "uint4";
  const int zero = template_zero(desc.zero);
  // A split's second kernel (templates/gemv_mma.cuh, gemv_split_sum).
  const std::string split_sum =
      variant.split_k == 1
          ? std::string()
          : fmt::format("extern \"C\" __global__ void __launch_bounds__({threads}) {entry}(const float* partials,\n"
                        "    const void* bias, void* y) {{\n"
                        "  lowbit_gemv::gemv_split_sum<LowbitConfig>(partials, bias, y);\n"
                        "}}\n",
                        fmt::arg("threads", split_sum_geometry(desc).threads), fmt::arg("entry", split_sum_entry_point));
  return fmt::format(
      "{body}\n"
      "// Instantiation for {descriptor}\n"
      "struct LowbitConfig {{\n"
      "  static constexpr int ROWS = {rows};\n"
      "  static constexpr long long N = {n};\n"
      "  static constexpr long long K = {k};\n"
      "  static constexpr int BITS = {bits};\n"
      "  static constexpr int GROUP = {group};\n"
      "  static constexpr int ZERO = {zero};\n"
      "  static constexpr int ACT = {act};\n"
      "  static constexpr int OUT = {out};\n"
      "  static constexpr bool HAS_BIAS = {bias};\n"
      "  static constexpr bool EQSCALE = {eqscale};\n"
      "  static constexpr int WARPS = {warps};\n"
      "  static constexpr int UNROLL = {unroll};\n"
      "  static constexpr int CHUNK_TILES = {chunk_tiles};\n"
      "  static constexpr int SPLIT_K = {split};\n"
      "  static constexpr bool BULK_COPY = {bulk};\n"
      "  static constexpr int PANELS_PER_BLOCK = {panels};\n"
      "  static constexpr bool X_RESIDENT = {resident};\n"
      "  static constexpr bool PREFETCH = {prefetch};\n"
      "  static constexpr int WARP_PANELS = {warp_panels};\n"
      "}};\n"
      "{shared_check}"
      "extern \"C\" __global__ void __launch_bounds__({threads}) {entry}(const void* x, const void* qweight,\n"
      "    const unsigned short* scales, const unsigned short* zeros, const void* bias, const float* eq_scale,\n"
      "    void* y, int overlapping) {{\n"
      "  lowbit_gemv::{function}<LowbitConfig>(x, static_cast<const {weight_type}*>(qweight), scales, zeros, bias,\n"
      "                                         eq_scale, y{overlapping});\n"
      "}}\n"
      "{split_sum}",
      fmt::arg("body", body), fmt::arg("descriptor", to_string(desc)), fmt::arg("rows", desc.m),
      fmt::arg("n", desc.n), fmt::arg("k", desc.k), fmt::arg("bits", desc.bits), fmt::arg("group", desc.group_size()), fmt::arg("zero", zero),
      fmt::arg("act", template_dtype(desc.act)), fmt::arg("out", template_dtype(desc.out)),
      fmt::arg("bias", desc.bias ? "true" : "false"), fmt::arg("eqscale", desc.eqscale ? "true" : "false"), fmt::arg("warps", variant.warps),
      fmt::arg("unroll", variant.unroll), fmt::arg("chunk_tiles", chunk_tiles(desc, variant)),
      fmt::arg("split", variant.split_k), fmt::arg("bulk", variant.bulk_copy == 1 ? "true" : "false"),
      fmt::arg("panels", variant.panels), fmt::arg("resident", x_resident(desc, variant) ? "true" : "false"),
      fmt::arg("prefetch", variant.prefetch == 1 ? "true" : "false"), fmt::arg("warp_panels", mma_warp_panels(variant)),
      fmt::arg("split_sum", split_sum), fmt::arg("threads", variant.warps * 32), fmt::arg("entry", entry_point),
      fmt::arg("function", function), fmt::arg("weight_type", weight_type),
      // gemv_mma's lead into L2 before it waits for the previous grid, only when launched to
      // overlap it (CudaKernel::run); the CUDA-core gemv neither waits nor leads.
      fmt::arg("overlapping", variant.family == CudaFamily::gemv_mma ? ", overlapping != 0" : ""),
      fmt::arg("shared_check", variant.family == CudaFamily::gemv_mma
                                   ? fmt::format("static_assert(lowbit_gemv::GemvMmaShared<LowbitConfig>::SHARED_BYTES == "
                                                 "{}, \"generator and template agree\");\n",
                                                 shared_bytes(desc, variant))
                                   : std::string()));
}

}  // namespace lowbit::cuda
