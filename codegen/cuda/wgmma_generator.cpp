#include "codegen/cuda/wgmma_generator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "codegen/cuda/embedded_templates.h"
#include "codegen/cuda/stream_k_plan.h"
#include "codegen/cuda/template_constants.h"
#include "lowbit/errors.h"
#include "lowbit/native_layout.h"

namespace lowbit::cuda {
namespace {

// The opt-in dynamic shared memory of a block on sm_90 (cudaDevAttrMaxSharedMemoryPerBlockOptin).
constexpr int hopper_shared_limit = 232448;
// Split-K pruning (one block of this family per SM: its ring takes most of the shared memory): a
// split is searched only while the grid before it is under two waves of the device's SMs, and
// only if each split keeps at least min_split_stages stages to pipeline.
constexpr int min_split_stages = 4;
constexpr int searched_splits[] = {1, 2, 4, 8};
// The partial sums' alignment in RunArgs.workspace (float4 reads in the second pass; 256 as
// the workspace contract promises).
constexpr std::size_t partials_alignment = 256;

int round_up(int64_t value, int multiple) { return static_cast<int>((value + multiple - 1) / multiple * multiple); }

// The template's WgmmaTile::K_STAGES and SPLIT_STAGES: stages over K, and the even run of them
// each split takes.
int k_stages(const OpDesc& desc, const CudaVariant& variant) {
  return static_cast<int>((desc.k + variant.block_k - 1) / variant.block_k);
}
int split_stages(const OpDesc& desc, const CudaVariant& variant) {
  return ((k_stages(desc, variant) + variant.split_k - 1) / variant.split_k + 1) / 2 * 2;
}
// The descriptor a stream-K schedule is laid out for: desc, or for an any-M (m=0) kernel desc at
// its schedule_rows (the kernel masks a call's fewer rows at run time).
OpDesc scheduled(const OpDesc& desc, const CudaVariant& variant) {
  OpDesc sized = desc;
  if (desc.m == 0 && variant.schedule_rows > 0) sized.m = variant.schedule_rows;
  return sized;
}
// Whether a stream-K kernel lays its schedule out for each call's rows (the template's
// StreamKSchedule::RUN_TIME): an any-M one without schedule_rows.
bool lays_out_at_run_time(const OpDesc& desc, const CudaVariant& variant) {
  return desc.m == 0 && variant.stream_k != 0 && variant.schedule_rows == 0;
}

int64_t tiles(const OpDesc& desc, const CudaVariant& variant) {
  return (desc.m + variant.block_m - 1) / variant.block_m * ((desc.n + variant.block_n - 1) / variant.block_n);
}
// The template's StreamKSchedule::ITERATIONS: every tile's stage pairs, shared by the stream-K blocks.
int64_t stream_k_iterations(const OpDesc& desc, const CudaVariant& variant) {
  return tiles(desc, variant) * ((k_stages(desc, variant) + 1) / 2);
}
// variant split in two along K; a split summed in its cluster's shared memory.
CudaVariant split_in_two(CudaVariant variant) {
  variant.split_k = 2;
  return variant;
}
CudaVariant clustered(CudaVariant variant) {
  variant.cluster_split = 1;
  return variant;
}
// variant with its group sums scaled into fp32 totals instead of its weights scaled.
CudaVariant with_group_sums(CudaVariant variant) {
  variant.group_sums = 1;
  return variant;
}
// variant's stream-K runs planned against the fix-up's cost.
CudaVariant planned(CudaVariant variant) {
  variant.stream_k_plan = 1;
  return variant;
}
// variant as stream-K: one persistent block per SM, or per iteration where there are fewer.
CudaVariant streamed_over_sms(const OpDesc& desc, CudaVariant variant, int sm_count) {
  variant.stream_k = static_cast<int>(std::min<int64_t>(sm_count, stream_k_iterations(desc, variant)));
  return variant;
}
// Stream-K pruning: searched from stream_k_min_rows, for the all-thread ring's tall tiles, where the
// tiled grid leaves part of its last wave idle and is under stream_k_max_waves waves (beyond, the
// idle share of the last wave is small against the partial tiles' fix-up).
constexpr int64_t stream_k_min_rows = 256;
constexpr int stream_k_min_block_m = 128;
constexpr int stream_k_max_waves = 4;
// The warp-specialized ring's stream-K (producer = 1): its 128-row tiles from 128 rows (at M = 128
// on 4096 or 6144 columns the 32 or 48 tiles fill a quarter to a third of the SMs, and split-K
// was the only way to fill the rest), and grids up to 8 waves, where the hybrid schedule's whole
// waves carry most tiles and only the last partial wave's are shared.
constexpr int64_t producer_stream_k_min_rows = 128;
constexpr int producer_stream_k_max_waves = 8;
// The hybrid schedule (remainder_split = r): the tiles of the full waves of stream_k blocks run
// whole, the remaining ones are shared by min(stream_k, r x remaining) blocks. Searched: r = 2,
// each remaining tile cut once, in halves, where there are blocks enough (fewest partial tiles;
// r = 3, every block sharing, was slower on the H100: 86.5 against 85.2 us at M = 1024 on
// 6144x4096, docs/benchmarks.md).
constexpr int searched_remainder_split = 2;
int64_t remaining_tiles(const OpDesc& desc, const CudaVariant& variant) { return tiles(desc, variant) % variant.stream_k; }
int64_t sharing_blocks(const OpDesc& desc, const CudaVariant& variant) {
  return std::min<int64_t>(variant.stream_k, variant.remainder_split * remaining_tiles(desc, variant));
}
// The shared part of a stream-K grid, as the template's StreamKSchedule counts it: every tile on
// stream_k blocks, or the hybrid's remaining tiles on its sharing blocks.
StreamKShape shared_part(const OpDesc& desc, const CudaVariant& variant) {
  const bool hybrid = variant.remainder_split > 0;
  return StreamKShape{hybrid ? remaining_tiles(desc, variant) : tiles(desc, variant), (k_stages(desc, variant) + 1) / 2,
                      static_cast<int>(hybrid ? sharing_blocks(desc, variant) : variant.stream_k)};
}
// The planned runs' beginnings (stream_k_plan = 1), as the emitted source's table: shared
// iterations from the first shared one, the sharing blocks' and the end.
std::string planned_runs_source(const OpDesc& desc, const CudaVariant& variant) {
  const RunBegins begins =
      planned_runs(shared_part(desc, variant), h100_fix_up_costs(variant.block_n, variant.block_m, variant.block_k));
  return fmt::format("// Planned stream-K runs (codegen/cuda/stream_k_plan.h): block b's shared iterations begin at\n"
                     "// [b] and end at [b + 1].\n"
                     "__constant__ long long lowbit_stream_k_runs[{}] = {{{}}};\n",
                     begins.size(), fmt::join(begins, ", "));
}
// Whole tiles a persistent block (a stream-K grid whose shares are whole tiles, with the copy
// warpgroup): where the tiled grid runs more than min_whole_tile_waves waves and its tiles split
// evenly over the blocks of those waves, `tiles / waves` persistent blocks (at most one an SM) each
// run `waves` consecutive whole tiles in turn (the stream-K shares fall on tile boundaries), so no
// tile is cut and no fix-up runs: the tiled grid's makespan, but the copy warpgroup loads a tile's
// first stages while its consumers still finish the previous tile, where each tiled block starts
// on an empty ring, and a block's consecutive tiles (M fastest) share their weight panel. (The
// H100's profile of the tiled n128m256k64_s4_ws at M = 4096 on 4096x4096, docs/benchmarks.md: a
// consumer spent 7 % of its time in the code run once a tile and 3 % more waiting for a tile's
// first stage. Measured there: 176.8 against 183.9 us tiled; the same whole tiles taken in the
// tiled grid's order, tiles b, b + 132, ... on 132 blocks, 182.4: the order is most of the gain.)
// 0: none (the tiled grid fills fewer waves, or they do not split evenly).
// (The template's StreamKSchedule::run_time_layout takes this rule, with whole_tiles_per_block's
// and the stream-K grids' wave fill, and hybrid_pays's, at run time for an any-M stream-K kernel
// without schedule_rows; CudaWgmmaCompile.RunTimeStreamKLayoutChoosesAsTheHeuristic checks them.)
constexpr int64_t min_whole_tile_waves = 2;
int whole_tile_blocks(const OpDesc& desc, const CudaVariant& tiled, int sm_count) {
  const int64_t grid = tiles(desc, tiled);
  const int64_t waves = (grid + sm_count - 1) / sm_count;
  if (waves <= min_whole_tile_waves || grid % waves != 0) return 0;
  return static_cast<int>(grid / waves);
}

// The workspace of a stream-K launch: a flag per block (u64), padded to 256 bytes, then a partial
// tile per block (the template's StreamKSchedule::FLAG_BYTES and partial slots).
std::size_t stream_k_flag_bytes(int blocks) { return (static_cast<std::size_t>(blocks) * 8 + 255) / 256 * 256; }

// The tile shapes searched (weight columns x rows of x x k per stage, stages). Tall tiles
// (BLOCK_M 128, 256) re-read the weights least and feed the tensor cores longest per dequantized
// fragment, for large M; short ones keep enough blocks and waste no rows at M = 16 .. 64.
// (256 rows x 128 k, three stages of 73 KiB, was measured and dropped: 7 % slower than 256 x 64
// at M = 256 and 1024, docs/benchmarks.md.)
struct Shape {
  int block_n, block_m, block_k, stages;
};
constexpr Shape searched_shapes[] = {
    {64, 16, 128, 6},  {128, 16, 128, 5}, {64, 32, 128, 5},  {128, 32, 128, 4}, {64, 64, 128, 4},
    {128, 64, 64, 6},  {64, 128, 64, 6},  {128, 128, 64, 5}, {128, 128, 128, 4}, {64, 256, 64, 5},
    {128, 256, 64, 4},
};

// The warp-specialized tiles (producer = 1) searched: the tall ones, for large M, where the
// copies of x (16 .. 64 KiB a stage) cost every thread of the cp.async ring issue slots and a
// block barrier per stage. The mbarrier ring keeps every slot loading, so some take one more
// stage than their all-thread counterparts. Two consumer warpgroups get 216 registers a thread
// (the template's setmaxnreg): 128 or 256 rows x 64 k fit without spills, 256 x 128 (64 A
// registers) does not, so it is not searched.
constexpr Shape producer_shapes[] = {
    {128, 128, 64, 6}, {128, 128, 128, 4}, {64, 256, 64, 5}, {128, 256, 64, 4}, {128, 256, 64, 5},
};

CudaVariant variant_of(const Shape& shape, int producer = 0) {
  CudaVariant variant;
  variant.family = CudaFamily::wgmma;
  variant.warps = shape.block_n / 16;
  variant.block_n = shape.block_n;
  variant.block_m = shape.block_m;
  variant.block_k = shape.block_k;
  variant.stages = shape.stages;
  variant.producer = producer;
  return variant;
}

}  // namespace

int WgmmaGenerator::ring_bytes(const OpDesc& desc, const CudaVariant& variant) {
  const bool whole_k = desc.group == whole_k_group;
  const int group = static_cast<int>(desc.group_size());
  const int stage_groups = whole_k || group >= variant.block_k ? 1 : variant.block_k / group;
  const int panels = variant.block_n / 16;
  // x (2 bytes a k and row), the weights (16 columns x bits a k and panel), the scale and zero tables.
  const int stage_bytes = round_up(variant.block_m * variant.block_k * 2 + panels * variant.block_k * 2 * desc.bits +
                                       2 * panels * stage_groups * 32,
                                   1024);
  return variant.stages * stage_bytes;
}

int WgmmaGenerator::shared_bytes(const OpDesc& desc, const CudaVariant& variant) {
  // The ring + its alignment to 1024 bytes, + the full and empty mbarriers of a producer's ring.
  return ring_bytes(desc, variant) + 1024 + (variant.producer == 1 ? 2 * variant.stages * 8 : 0);
}

Validity WgmmaGenerator::is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (variant.family != CudaFamily::wgmma) return refuse("the wgmma generator builds family=wgmma variants only");
  if (desc.device.kind != DeviceKind::cuda) return refuse("the CUDA generators serve device=cuda:N only");
  if (arch_major != 9)
    return refuse(fmt::format("the wgmma family runs on compute capability 9.0 (sm_90a) only, not {}.x "
                              "(wgmma.mma_async is an sm_90a feature)",
                              arch_major));
  if (desc.bits != 2 && desc.bits != 3 && desc.bits != 4 && desc.bits != 8)
    return refuse(fmt::format("bits={}: the wgmma family serves bits 2, 3, 4 and 8", desc.bits));
  if (desc.compute != Compute::floating) return refuse("compute=int8 is not generated on CUDA");
  if (desc.eqscale)
    return refuse("eqscale=1 is not generated by the wgmma family (the per-k scale would have to be applied to x "
                  "before its tile is multiplied); gemv and dequant_gemm serve it");
  if (desc.layout != Layout::native) return refuse("only layout=native is read by CUDA kernels");
  if (desc.act == DType::fp32) return refuse("the wgmma family needs act=bf16 or fp16 (tensor-core operands)");
  if (desc.m < 0 || desc.m > max_rows)
    return refuse(fmt::format("m={}: the wgmma family serves an exact m=1..{} or m=0 (any M: the tiled grid, a split, "
                              "a cluster split, or stream-K laid out for schedule_rows)",
                              desc.m, max_rows));
  if (variant.schedule_rows != 0) {
    // An any-M stream-K kernel: valid where the exact kernel at its schedule's rows is (the
    // schedule is that kernel's; a call's rows are masked at run time).
    if (desc.m != 0 || variant.stream_k == 0 || variant.schedule_rows < 1 || variant.schedule_rows > max_rows)
      return refuse(fmt::format("schedule_rows={}: only an m=0 stream-K kernel (m=0, stream_k > 0) lays its schedule "
                                "out for a row count, 1..{}; here m={}, stream_k={}",
                                variant.schedule_rows, max_rows, desc.m, variant.stream_k));
    CudaVariant exact = variant;
    exact.schedule_rows = 0;
    return is_valid(scheduled(desc, variant), exact, arch_major);
  }
  // An any-M stream-K kernel without schedule_rows lays its schedule out for each call's rows at run
  // time; a planned table is computed for one layout, so it needs schedule_rows.
  const bool run_time_schedule = lays_out_at_run_time(desc, variant);
  if (run_time_schedule && variant.stream_k_plan != 0)
    return refuse(fmt::format("m=0 (any M) with stream_k={} and stream_k_plan=1: planned runs are laid out for one "
                              "row count, so give schedule_rows (the range's top) or take even runs (stream_k_plan=0), "
                              "which the kernel lays out for each call's rows",
                              variant.stream_k));
  if (desc.k % 8 != 0)
    return refuse(fmt::format("k={}: the wgmma family copies x rows 16 bytes at a time, so k must be a multiple of 8 "
                              "(only group=-1 allows other k; the mma family serves them)",
                              desc.k));
  if (desc.k >= (int64_t{1} << 27))
    return refuse(fmt::format("k={}: the wgmma family keeps k offsets in 32 bits (k < 2^27)", desc.k));
  if (round_up(desc.n, 16) / 16 > (int64_t{1} << 26)) return refuse(fmt::format("n={}: too many panels for the grid", desc.n));
  if (variant.block_n != 64 && variant.block_n != 128)
    return refuse(fmt::format("block_n={}: must be 64 or 128 (one or two warpgroups of 64 weight columns)",
                              variant.block_n));
  if (variant.block_m != 16 && variant.block_m != 32 && variant.block_m != 64 && variant.block_m != 128 &&
      variant.block_m != 256)
    return refuse(fmt::format("block_m={}: must be 16, 32, 64, 128 or 256 (the wgmma's N)", variant.block_m));
  if (variant.block_k != 64 && variant.block_k != 128)
    return refuse(fmt::format("block_k={}: must be 64 or 128 (whole 128-byte swizzle atoms)", variant.block_k));
  if (variant.stages < 3 || variant.stages > 8) return refuse(fmt::format("stages={}: must be 3..8", variant.stages));
  if (variant.split_k != 1 && variant.split_k != 2 && variant.split_k != 4 && variant.split_k != 8)
    return refuse(fmt::format("split_k={}: must be 1, 2, 4 or 8 (blocks along K)", variant.split_k));
  if ((variant.split_k - 1) * split_stages(desc, variant) >= k_stages(desc, variant))
    return refuse(fmt::format("split_k={}: k={} has {} stages of {} k, too few for {} splits of whole stage pairs "
                              "(the last split would hold none)",
                              variant.split_k, desc.k, k_stages(desc, variant), variant.block_k, variant.split_k));
  if (variant.warps != variant.block_n / 16)
    return refuse(fmt::format("warps={} must be block_n / 16 = {} (a consumer warp per 16-column panel; "
                              "producer=1 adds its copy warpgroup itself)",
                              variant.warps, variant.block_n / 16));
  if (variant.producer != 0 && variant.producer != 1)
    return refuse(fmt::format("producer={}: must be 0 (every thread copies) or 1 (a warp-specialized copy warpgroup)",
                              variant.producer));
  if (variant.stream_k != 0) {
    if (variant.split_k != 1)
      return refuse(fmt::format("stream_k={} with split_k={}: the stream-K schedule shares K among its blocks itself, "
                                "so it runs without a split (split_k=1)",
                                variant.stream_k, variant.split_k));
    // Every block must be resident at once (an owner waits for later blocks' partials): at most
    // one block per SM of this device.
    if (variant.stream_k < 1 || variant.stream_k > sm_count_)
      return refuse(fmt::format("stream_k={}: must be 0 (off) or 1..{} persistent blocks (at most one per SM of the "
                                "device, so that all are resident while owners wait for partials)",
                                variant.stream_k, sm_count_));
    if (!run_time_schedule && variant.stream_k > stream_k_iterations(desc, variant))
      return refuse(fmt::format("stream_k={}: more blocks than the {} iterations (tiles x stage pairs) to share",
                                variant.stream_k, stream_k_iterations(desc, variant)));
  }
  if (variant.cluster_split != 0) {
    if (variant.cluster_split != 1)
      return refuse(fmt::format("cluster_split={}: must be 0 (a split summed by a second kernel) or 1 (a tile's "
                                "splits as one thread-block cluster, summed in its distributed shared memory)",
                                variant.cluster_split));
    if (variant.split_k < 2 || variant.split_k > max_cluster_blocks)
      return refuse(fmt::format("cluster_split=1 with split_k={}: the cluster is the tile's splits, so split_k must "
                                "be 2..{} (a portable cluster size; stream-K, which runs unsplit, sums through its "
                                "workspace instead)",
                                variant.split_k, max_cluster_blocks));
    if (accumulator_bytes(variant) > ring_bytes(desc, variant))
      return refuse(fmt::format("cluster_split=1: the {}-byte fp32 accumulator of a {}x{} tile does not fit the {} "
                                "bytes of the {}-stage ring it is summed in",
                                accumulator_bytes(variant), variant.block_n, variant.block_m,
                                ring_bytes(desc, variant), variant.stages));
  }
  if (variant.group_sums != 0) {
    if (variant.group_sums != 1)
      return refuse(fmt::format("group_sums={}: must be 0 (each weight scaled before the wgmmas) or 1 (unscaled "
                                "weights, each group's sums scaled into fp32 totals)",
                                variant.group_sums));
    if (std::string refusal = group_sums_refusal(desc, variant); !refusal.empty()) return refuse(std::move(refusal));
  }
  if (variant.remainder_split != 0) {
    if (variant.stream_k == 0)
      return refuse(fmt::format("remainder_split={} needs stream_k > 0 (it shapes the stream-K schedule)",
                                variant.remainder_split));
    if (variant.remainder_split < 1 || variant.remainder_split > 8)
      return refuse(fmt::format("remainder_split={}: must be 0 (every tile shared) or 1..8 (blocks per remaining tile)",
                                variant.remainder_split));
    // (A run-time schedule takes whatever the call's tiles are: with no full wave all are shared,
    // with no remainder none is, and never more sharing blocks than iterations.)
    if (!run_time_schedule) {
      if (tiles(desc, variant) <= variant.stream_k || remaining_tiles(desc, variant) == 0)
        return refuse(fmt::format("remainder_split={}: the grid's {} tiles on stream_k={} blocks leave no full wave "
                                  "and a remainder (it needs more tiles than blocks, not a multiple of them)",
                                  variant.remainder_split, tiles(desc, variant), variant.stream_k));
      const int64_t shared_iterations = remaining_tiles(desc, variant) * ((k_stages(desc, variant) + 1) / 2);
      if (sharing_blocks(desc, variant) > shared_iterations)
        return refuse(fmt::format("remainder_split={}: {} sharing blocks for {} shared iterations (each needs one)",
                                  variant.remainder_split, sharing_blocks(desc, variant), shared_iterations));
    }
  }
  if (variant.stream_k_plan != 0) {
    if (variant.stream_k_plan != 1)
      return refuse(fmt::format("stream_k_plan={}: must be 0 (even runs) or 1 (runs planned against the fix-up's cost)",
                                variant.stream_k_plan));
    if (variant.stream_k == 0)
      return refuse("stream_k_plan=1 needs stream_k > 0 (it plans the stream-K blocks' runs)");
    if (cuts_no_tile(desc, variant))
      return refuse(fmt::format("stream_k_plan=1: the grid's {} tiles on stream_k={} blocks (remainder_split={}) are "
                                "whole tiles a block, so no fix-up to plan around",
                                tiles(desc, variant), variant.stream_k, variant.remainder_split));
  }
  const CudaVariant defaults;
  if (variant.unroll != defaults.unroll || variant.warps_n != 0 || variant.warps_m != 0 || variant.warps_k != 0)
    return refuse(fmt::format("the wgmma family does not read unroll, warps_n, warps_m or warps_k; leave them at {}, "
                              "0, 0, 0",
                              defaults.unroll));
  const int shared = shared_bytes(desc, variant);
  if (shared > hopper_shared_limit)
    return refuse(fmt::format("{} bytes of shared memory exceed the {} a block may use on compute capability 9.0",
                              shared, hopper_shared_limit));
  return {};
}

std::vector<CudaVariant> WgmmaGenerator::candidates(const OpDesc& desc) const {
  // m=0 kernels are built as the row ranges of an m=0 descriptor (any_rows_tile), not tuned.
  if (desc.m == 0) return {};
  // Blocks much taller than M only multiply zeros: keep block_m within M rounded up to 16.
  const int rows = std::max(16, round_up(std::clamp<int64_t>(desc.m, 1, 256), 16));
  std::vector<CudaVariant> variants;
  auto add = [&](const Shape& shape, int producer) {
    for (int split : searched_splits) {
      CudaVariant variant = variant_of(shape, producer);
      variant.split_k = split;
      const bool split_useful = split == 1 || (tiles(desc, variant) * (split / 2) < 2 * sm_count_ &&
                                               k_stages(desc, variant) / split >= min_split_stages);
      if (variant.block_m > rows || !split_useful) continue;
      // Each with its group sums too, where valid (short tiles; whole-stage groups).
      auto add_both_sums = [&](const CudaVariant& scaled) {
        if (!is_valid(desc, scaled, 9)) return;
        variants.push_back(scaled);
        if (is_valid(desc, with_group_sums(scaled), 9)) variants.push_back(with_group_sums(scaled));
      };
      add_both_sums(variant);
      // The same split summed in its cluster's shared memory (where the accumulator fits the ring).
      if (split > 1) add_both_sums(clustered(variant));
    }
  };
  for (const Shape& shape : searched_shapes) add(shape, 0);
  for (const Shape& shape : producer_shapes) add(shape, 1);
  // Stream-K: the tall tiles whose grid leaves SMs idle in its last wave, with one persistent
  // block per SM (or per iteration, where fewer); the all-thread ring's from stream_k_min_rows,
  // the copy warpgroup's from producer_stream_k_min_rows.
  auto add_stream_k = [&](const Shape& shape, int producer, int max_waves) {
    const CudaVariant tiled = variant_of(shape, producer);
    const int64_t grid = tiles(desc, tiled);
    if (tiled.block_m < stream_k_min_block_m || tiled.block_m > rows || grid % sm_count_ == 0 ||
        grid >= int64_t{max_waves} * sm_count_)
      return;
    const CudaVariant variant = streamed_over_sms(desc, tiled, sm_count_);
    if (!is_valid(desc, variant, 9)) return;
    // With the copy warpgroup, each also with planned runs.
    auto add_with_plan = [&](const CudaVariant& even) {
      variants.push_back(even);
      if (even.producer == 1 && is_valid(desc, planned(even), 9)) variants.push_back(planned(even));
    };
    add_with_plan(variant);
    // Over a full wave: the hybrid schedule too.
    CudaVariant hybrid = variant;
    hybrid.remainder_split = searched_remainder_split;
    if (grid > hybrid.stream_k && is_valid(desc, hybrid, 9)) add_with_plan(hybrid);
  };
  if (desc.m >= stream_k_min_rows)
    for (const Shape& shape : searched_shapes) add_stream_k(shape, 0, stream_k_max_waves);
  if (desc.m >= producer_stream_k_min_rows)
    for (const Shape& shape : producer_shapes) add_stream_k(shape, 1, producer_stream_k_max_waves);
  // Whole tiles a persistent block (above whole_tile_blocks), the copy warpgroup's tall tiles only
  // (the all-thread ring's blocks pass a block barrier between tiles, so they could not overlap them).
  for (const Shape& shape : producer_shapes) {
    CudaVariant whole = variant_of(shape, 1);
    whole.stream_k = whole_tile_blocks(desc, whole, sm_count_);
    if (whole.block_m < stream_k_min_block_m || whole.block_m > rows || whole.stream_k == 0) continue;
    if (std::find(variants.begin(), variants.end(), whole) == variants.end() && is_valid(desc, whole, 9))
      variants.push_back(whole);
  }
  return variants;
}

CudaVariant WgmmaGenerator::heuristic(const OpDesc& desc) const {
  return with_group_sums_where_they_pay(desc, scaled_heuristic(desc));
}

CudaVariant WgmmaGenerator::with_group_sums_where_they_pay(const OpDesc& desc, const CudaVariant& variant) const {
  // Group sums (generator version 15; the H100, docs/benchmarks.md, session 24, read flush, int4
  // g128 zero=int on issue 4's four shapes at M = 16, 32 and 64): in bf16 every tile of 128-k
  // stages the heuristic takes there was as fast or faster with them, e.g. 42.4 -> 31.0 us at
  // M = 32 on 28672x4096 (n128m32k128_s4; Marlin 39.3 in that call), 24.9 -> 22.0
  // (n64m32k128_s5_split4) on 4096x14336, 45.0 -> 41.5 at M = 64 on 28672x4096 (n64m64k128_s4),
  // 16.8 -> 16.5 (its cs2) on 6144x4096; in fp16 they were -5 % to +1 %. Of the 222 tile and split
  // pairs timed in bf16, 192 were faster with them; the 64-k stages (two a group) were most of the
  // ones that lost (n128m64k64_s6: +6 % at M = 64 on 28672x4096, its cluster splits +20-43 %).
  if (variant.block_k != 128 || variant.group_sums != 0) return variant;
  const CudaVariant summed = with_group_sums(variant);
  return is_valid(desc, summed, 9) ? summed : variant;
}

CudaVariant WgmmaGenerator::scaled_heuristic(const OpDesc& desc) const {
  // The tile and split by M (base_tile), then, in this order, the rules that replace them where
  // they were measured to win (each with its evidence): cluster pairs of 64 x 64 tiles at
  // M = 65..128, of 128-row tiles at M = 129..256; the 128-row tiles as stream-K at M = 128..256;
  // the tall tiles as stream-K (or its hybrid) from 256 rows; a long K's split tiles as planned
  // stream-K at M = 128..256; the 128-row tile where the tall grid leaves a fifth of its last wave
  // idle; whole tiles a persistent block.
  if (auto pair = narrow_cluster_pairs(desc)) return *pair;
  const CudaVariant chosen = base_tile(desc);
  if (auto pair = tall_cluster_pairs(desc)) return *pair;
  if (auto streamed = shared_tiles_streamed(desc)) return *streamed;
  if (auto streamed = tall_tiles_streamed(desc, chosen)) return *streamed;
  if (auto streamed = long_k_splits_streamed(desc, chosen)) return *streamed;
  if (auto shorter = shorter_tiles_for_waves(desc, chosen)) return *shorter;
  if (auto whole = whole_tiles_per_block(desc, chosen)) return *whole;
  if (is_valid(desc, chosen, 9)) return summed_in_pairs(desc, chosen);
  const std::vector<CudaVariant> variants = candidates(desc);
  return variants.empty() ? chosen : variants.front();  // is_valid names the reason when none serves
}

CudaVariant WgmmaGenerator::any_rows_tile(const OpDesc& desc, int64_t rows, bool at_most_rows) const {
  OpDesc sized = desc;
  sized.m = rows;
  const CudaVariant chosen = heuristic(sized);
  // A range with a top, where the heuristic shares K by stream-K: that very grid, its schedule laid
  // out for the top's rows, a call's fewer rows masked (docs/benchmarks.md, session 29).
  if (chosen.stream_k != 0 && at_most_rows) {
    CudaVariant streamed = chosen;
    streamed.schedule_rows = static_cast<int>(rows);
    if (is_valid(desc, streamed, 9)) return streamed;
  }
  CudaVariant tile = chosen;
  tile.split_k = 1;
  tile.cluster_split = 0;
  tile.stream_k = 0;
  tile.remainder_split = 0;
  tile.stream_k_plan = 0;
  // Where the heuristic splits K, the same split: its partials and second kernel take the call's
  // rows (a cluster split stays one). Where it shares K by stream-K in the open range (its calls
  // have no top): that grid with even runs, laid out for each call's rows at run time. (Measured,
  // docs/benchmarks.md, session 30: the tiled grid there ran at up to 1.52x the exact stream-K
  // kernel on 6144x4096, a partial last wave at 513 rows. Before, splits of the tiled grid where
  // it filled half a wave or less: session 29, on 4096x14336 at 65-256 rows four plain splits ran
  // at 0.99-1.07x the exact kernel's time, four in clusters at 1.79-1.89x.)
  if (chosen.split_k == 1 && chosen.stream_k == 0) return tile;
  if (chosen.split_k > 1) {
    CudaVariant split = tile;
    split.split_k = chosen.split_k;
    split.cluster_split = chosen.cluster_split;
    return is_valid(sized, split, 9) ? split : tile;
  }
  CudaVariant streamed = chosen;
  streamed.stream_k_plan = 0;
  return is_valid(desc, streamed, 9) ? streamed : tile;
}

CudaVariant WgmmaGenerator::base_tile(const OpDesc& desc) const {
  // What won on the H100 (docs/benchmarks.md, the four Llama-3-8B shapes at M = 16..1024): the
  // tallest tile M fills, two warpgroups (128 columns) but at M = 17..64 (below); K split until the grid reaches about
  // three waves of short blocks (M <= 64) or one wave of tall ones (M > 64, each block longer).
  // At M = 65..128 the warp-specialized ring (producer = 1) was 6-11 % faster than the
  // all-thread one. From 256 rows both were within 1 % until the main loop's compile-time turns
  // (generator version 8) cut a consumer's instructions a stage (194 all-thread, 154 with the copy
  // warpgroup): the warp-specialized 256-row tile was then 4-6 % faster at M = 1024 on 4096x4096,
  // 28672x4096 and 4096x14336 (48.5 against 50.6, 318.4 against 333.8, 154.8 against 164.0 us)
  // and 2-3 % split at M = 256 on 4096x4096 and 4096x14336 (26.9 against 27.7, 53.8 against 54.8).
  Shape shape = Shape{128, 16, 128, 5};
  int waves = 3;
  int producer = 0;
  if (desc.m > 128)
    shape = Shape{128, 256, 64, 4}, waves = 1, producer = 1;
  else if (desc.m > 64)
    shape = Shape{128, 128, 128, 4}, waves = 1, producer = 1;
  // M = 17..64: one warpgroup (64 columns), twice the tiles, so half the split for the same three
  // waves. Session 9's release sweep (the H100, read flush, docs/benchmarks.md) on 6144x4096,
  // 4096x4096, 4096x14336 and 28672x4096: at M = 32 n64m32k128_s5 split as below took 15.8, 13.4,
  // 25.7 and 43.8 us where the two-warpgroup n128m32k128_s4 (split8, split8, split8, unsplit) took
  // 19.6, 15.1, 27.0 and 42.6; at M = 64 n64m64k128_s4 (split4, split4, split4, unsplit) 19.6,
  // 14.5, 27.4 and 47.2 where n128m64k64_s6 took 21.7, 16.7, 29.1 and 46.7. (On 6144x4096 at M = 64
  // the unsplit 64-column grid was faster still, 18.1: under a wave, not what this rule picks.)
  else if (desc.m > 32)
    shape = Shape{64, 64, 128, 4};
  else if (desc.m > 16)
    shape = Shape{64, 32, 128, 5};
  CudaVariant chosen = split_to_waves(desc, variant_of(shape, producer), waves);
  // M = 17..32 where the 64-column grid is left unsplit (three waves of tiles or more): the
  // two-warpgroup 128-column tile, unsplit too. At M = 32 on 28672x4096 it took 36.8 against 40.3
  // us in fp16 (2026-11-23's formats call); in bf16 the two are within 3 % either way (43.4
  // against 43.7 in session 10's release sweep, 42.6 against 43.8 in session 9's, 42.8 against
  // 41.7 in 2026-11-23's). Where the 64-column grid splits, it stays (6144x4096: 14.8 against
  // 16.2 for the 128-column pair).
  if (desc.m > 16 && desc.m <= 32 && chosen.split_k == 1) {
    const CudaVariant wider = variant_of(Shape{128, 32, 128, 4}, 0);
    if (is_valid(desc, wider, 9)) chosen = wider;
  }
  // M = 33..64: the split's 4 blocks a tile as 2 summed in their cluster where the pairs fit one
  // wave (two 64-column blocks an SM) and give every SM one, and K is at most 32 stages of 128
  // (generator version 11; the H100, docs/benchmarks.md, dsmem's call): 13.4 against 14.4 us
  // (split4) at M = 64 on 4096x4096 (64 tiles, 128 blocks); session 10's release sweep: 17.1
  // against 19.5 (bf16; fp16 17.6 against 19.3, unsplit 18.0) on 6144x4096 (96 tiles, 192 blocks
  // two an SM). Elsewhere not measured (a longer K: 4096x14336 kept split4, 28.0 us); at
  // M = 17..32 the two were equal (13.4 and 13.4), so the split stays there.
  if (desc.m > 32 && desc.m <= 64 && chosen.split_k == 4 && pairs_fill_a_wave(desc, chosen)) {
    const CudaVariant pair = clustered(split_in_two(chosen));
    if (is_valid(desc, pair, 9)) chosen = pair;
  }
  // The 128-row warp-specialized tile instead of the 256-row one (the H100, session 9's
  // heuristic call, docs/benchmarks.md) where the taller tile wastes what the shorter one saves:
  // - it pads at least a quarter of its rows more (M = 257..384: a second row of 256-row tiles
  //   half empty): at M = 384 the 128-row tile's stream-K took 29.6 against 34.5 us (the 256-row
  //   split2_ws) on 4096x4096 and 37.8 against 44.0 (the 256-row stream-K) on 6144x4096. A
  //   smaller padded share is not worth it: at M = 1024, with no padding, the 128-row tile was
  //   13-20 % slower (56.7 against 47.0 us on 4096x4096, 85.3 against 75.2 on 6144x4096).
  //   Not where the 256-row grid runs three waves or more (28672 columns: 448 tiles at
  //   M = 257..384, the hybrid stream-K below, against 672 128-row tiles over 5.1 waves): there
  //   the 256-row hybrid took 159.3 / 160.5 / 164.6 us at M = 257 / 300 / 384 against the 128-row
  //   grid's 169.6 / 170.7 / 165.6 (docs/benchmarks.md, session 31: the any-M range's kernel laid
  //   out for 512 rows, the same two row tiles, beside the exact kernel in one run; session 30
  //   read 159.7 against 168.2 at 257 and 166.9 against 167.2 at 384).
  // - it fills the SMs unsplit with no more work a block than the split 256-row grid (the same
  //   rows x k a block, no partial sums to write and add): 30.3 against 36.3 us (split2_ws) at
  //   M = 512 on 4096x4096. Where it needs a split too, the 256-row tile's wider split stayed
  //   faster (51.5 against 56.1 us at M = 256 on 4096x14336, split4_ws against split2_ws).
  if (desc.m > 128) {
    const Shape shorter_shape{128, 128, 128, 4};
    const CudaVariant shorter = variant_of(shorter_shape, 1);
    const bool tall_grid_fills_waves = tiles(desc, chosen) * chosen.split_k >= 3 * int64_t{sm_count_};
    if ((pads_a_quarter_more(desc, chosen, shorter) && !tall_grid_fills_waves) ||
        (chosen.split_k > 1 && block_work(desc, shorter) <= block_work(desc, chosen)))
      chosen = split_to_waves(desc, shorter, 1);
  }
  return chosen;
}

std::optional<CudaVariant> WgmmaGenerator::narrow_cluster_pairs(const OpDesc& desc) const {
  // M = 65..128: one warpgroup's 64 x 64 tiles split in two and summed in cluster pairs where those
  // pairs fill a wave (two blocks an SM by their 80 KB rings) with K at most 32 stages of 128: at
  // M = 128 on 4096x4096 (128 tiles, 256 blocks) 17.4 against 18.0 us for the 128-row split4_ws
  // (session 10's release sweep at 3785b20, cuBLAS 18.0; dsmem's call: n64m128k64_s6_cs2 17.4
  // against 17.8). Measured at M = 128 only; below it the grid is the same (two row tiles).
  if (desc.m <= 64 || desc.m > 128) return std::nullopt;
  const CudaVariant narrow = variant_of(Shape{64, 64, 128, 4}, 0);
  const CudaVariant pair = clustered(split_in_two(narrow));
  if (pairs_fill_a_wave(desc, narrow) && is_valid(desc, pair, 9)) return pair;
  return std::nullopt;
}

std::optional<CudaVariant> WgmmaGenerator::tall_cluster_pairs(const OpDesc& desc) const {
  // Cluster pairs (generator version 11; the H100, dsmem's call, docs/benchmarks.md): at M = 129..256
  // where the 128-row warp-specialized tiles split in two fill 0.9 .. 1 wave, each tile's two
  // blocks summed in their cluster's shared memory beat stream-K: 21.1 against 23.5 us
  // (sk132) at M = 256 on 4096x4096 (64 tiles, 128 blocks), cuBLAS 20.8 in the same call. K up
  // to 32 stages of 128, as stream-K's rule below (a long K kept the 256-row split4_ws there).
  const CudaVariant pairs = clustered(split_in_two(variant_of(Shape{128, 128, 128, 4}, 1)));
  if (desc.m > 128 && desc.m <= 256 && pairs_fill_a_wave(desc, pairs) && is_valid(desc, pairs, 9)) return pairs;
  return std::nullopt;
}

std::optional<CudaVariant> WgmmaGenerator::shared_tiles_streamed(const OpDesc& desc) const {
  // Stream-K with the copy warpgroup (generator version 10; the H100, docs/benchmarks.md): at
  // M = 128..256, where the 128-row tiles' grid is over a quarter of a wave and under a whole one
  // and K is at most 32 stages of 128 k, the 128 x 128 x 128 warp-specialized tile with a block per
  // SM sharing every tile's k iterations beat splitting K: 21.4 against 24.2 us (split2_ws) at
  // M = 128 on 6144x4096 (48 tiles), 29.9 against 30.4 (the tiled grid) and 30.7 (the all-thread
  // 256-row stream-K) at M = 256 on 6144x4096, 23.6 against 25.8 (256 rows, split4_ws) at M = 256
  // on 4096x4096. Not taken, as it lost: 32 tiles (M = 128 on 4096x4096: 18.9 against 18.6 split4_ws)
  // and a long K (M = 256 on 4096x14336: 56.9 against 52.1, the 256-row split4_ws).
  const CudaVariant shared_tiles = variant_of(Shape{128, 128, 128, 4}, 1);
  if (desc.m >= producer_stream_k_min_rows && desc.m <= 256 && tiles(desc, shared_tiles) * 4 > sm_count_ &&
      tiles(desc, shared_tiles) < sm_count_ && k_stages(desc, shared_tiles) <= 32) {
    const CudaVariant streamed = streamed_over_sms(desc, shared_tiles, sm_count_);
    if (is_valid(desc, streamed, 9)) return with_planned_runs(desc, streamed);
  }
  // The same at M = 128 where the 128-row tiles' grid is over one wave and leaves more than a
  // tenth of its second idle: 55.3 against 57.5 us for the tiled grid at M = 128 on 28672x4096
  // (224 tiles, 1.70 waves; session 10's release sweep at 3785b20).
  if (desc.m >= producer_stream_k_min_rows && desc.m <= 128 && tiles(desc, shared_tiles) > sm_count_ &&
      tiles(desc, shared_tiles) < 2 * sm_count_ && wave_fill(desc, shared_tiles) < 0.9 &&
      k_stages(desc, shared_tiles) <= 32) {
    const CudaVariant streamed = streamed_over_sms(desc, shared_tiles, sm_count_);
    if (is_valid(desc, streamed, 9)) return with_planned_runs(desc, streamed);
  }
  return std::nullopt;
}

std::optional<CudaVariant> WgmmaGenerator::tall_tiles_streamed(const OpDesc& desc, const CudaVariant& chosen) const {
  // Stream-K (from 256 rows, docs/benchmarks.md, the H100 at M = 256 and 1024): where that grid
  // leaves more than a tenth of its last wave idle, over half a wave and under stream_k_max_waves,
  // the 256-row tile with a block per SM sharing every tile's k iterations: measured 7 % faster
  // than the 128-row warp-specialized tile at M = 1024 and 5 % at M = 256 on 6144x4096 (1.45 and
  // 0.73 waves), 4 % faster than the 256-row grid at M = 256 on 28672x4096 (1.70 waves). Where the
  // grid fills its wave (0.97: 128 tiles on 4096 columns at M = 1024, or split to 128 blocks at
  // M = 256) the fix-up of every cut tile cost more than the 4 idle SMs (60.0 against 52.6 us on
  // 4096x4096, 197 against 174 on 4096x14336 at M = 1024): the tiled grid stays. With the copy
  // warpgroup (generator version 10) the same grids ran faster again: 75.6 against 80.6 us at
  // M = 1024 on 6144x4096 (the hybrid of each ring).
  if (desc.m >= stream_k_min_rows && wave_fill(desc, chosen) < 0.9 &&
      tiles(desc, chosen) * chosen.split_k >= sm_count_ / 2) {
    // chosen's tile (the 256-row one, or the 128-row one base_tile took instead), unsplit.
    const CudaVariant tile = variant_of(Shape{chosen.block_n, chosen.block_m, chosen.block_k, chosen.stages}, 1);
    const CudaVariant streamed = streamed_over_sms(desc, tile, sm_count_);
    const int64_t grid = tiles(desc, streamed);
    if (grid < int64_t{stream_k_max_waves} * sm_count_ && is_valid(desc, streamed, 9)) {
      // The hybrid over a full wave: on the all-thread ring it won only where its remaining tiles
      // were few enough to be cut once each (85.2 against 87.2 us at M = 1024 on 6144x4096: 192
      // tiles, 132 whole, 60 halved over 120 blocks; 98.3 against 99.4 for the plain schedule at
      // M = 256 on 28672x4096: 224 tiles); with the copy warpgroup it won at both (75.6 against
      // 76.5 and 90.1 against 92.4 us).
      // Where its last phase is long against the even share it lost: 144 tiles on 132 blocks
      // (M = 768 on 6144x4096) leave 12 halved tiles, 1.5 tiles a block against 1.09, and took
      // 72.2 against 57.6 us (hybrid_pays).
      CudaVariant hybrid = streamed;
      hybrid.remainder_split = searched_remainder_split;
      if (hybrid_pays(desc, hybrid) && is_valid(desc, hybrid, 9)) return with_planned_runs(desc, hybrid);
      return with_planned_runs(desc, streamed);
    }
  }
  return std::nullopt;
}

std::optional<CudaVariant> WgmmaGenerator::long_k_splits_streamed(const OpDesc& desc, const CudaVariant& chosen) const {
  // Planned stream-K instead of a split, for the copy warpgroup's tiles at M = 128..256 with a K
  // over 32 stages of 128 (where the rules above keep the split; the H100, 2026-11-23's release
  // sweep, docs/benchmarks.md, 4096x14336): the same tile over 132 blocks with planned runs took
  // 32.5 against 34.0 us (split4_ws) at M = 128 and 49.3 against 50.7 (the 256-row split4_ws) at
  // M = 256, where even runs had lost (34.4 and 52.4).
  if (desc.m < producer_stream_k_min_rows || desc.m > 256 || chosen.producer != 1 || chosen.split_k == 1 ||
      chosen.cluster_split != 0 || k_stages(desc, variant_of(Shape{128, 128, 128, 4})) <= 32)
    return std::nullopt;
  const CudaVariant tile = variant_of(Shape{chosen.block_n, chosen.block_m, chosen.block_k, chosen.stages}, 1);
  const CudaVariant streamed = with_planned_runs(desc, streamed_over_sms(desc, tile, sm_count_));
  if (streamed.stream_k_plan == 1 && is_valid(desc, streamed, 9)) return streamed;
  return std::nullopt;
}

std::optional<CudaVariant> WgmmaGenerator::shorter_tiles_for_waves(const OpDesc& desc,
                                                                   const CudaVariant& chosen) const {
  // Wave quantization of the 256-row tiles (M > 128): where their grid, split as above, leaves
  // more than a fifth of its last wave's SMs idle (e.g. 192 tiles at M = 1024 on 6144 columns:
  // 1.45 waves), the 128-row warp-specialized tile's grid (twice the tiles) is taken if it fills
  // its waves at least as well. Measured: 7 % faster at M = 1024 and 13 % at M = 256 on
  // 6144x4096; where the 256-row grid fills its waves (28672 or 4096 columns at M = 1024) it
  // stays, as it was faster there. Grids under half a wave (few columns: splitting is what
  // fills them) are left as they are: not measured.
  if (desc.m > 128 && wave_fill(desc, chosen) < 0.8 && tiles(desc, chosen) * chosen.split_k >= sm_count_ / 2) {
    const CudaVariant shorter = split_to_waves(desc, variant_of(Shape{128, 128, 128, 4}, 1), 1);
    if (is_valid(desc, shorter, 9) && wave_fill(desc, shorter) >= wave_fill(desc, chosen))
      return summed_in_pairs(desc, shorter);
  }
  return std::nullopt;
}

std::optional<CudaVariant> WgmmaGenerator::whole_tiles_per_block(const OpDesc& desc, const CudaVariant& chosen) const {
  // Whole tiles a persistent block (whole_tile_blocks) instead of the tiled grid, where a block's
  // run stays within about one weight panel (its tiles at most the grid's row tiles) (generator
  // version 12; the H100, docs/benchmarks.md, helper mainloop's calls at M = 4096, the 256-row
  // tile): 176.8 / 177.1 against 183.9 / 184.7 us on 4096x4096 (4 tiles a block of 16 row tiles),
  // 590.6 / 592.0 against 613.0 on 4096x14336 (4), 266.4 against 269.6 (stream-K, the best before)
  // on 6144x4096 (6). Not taken where a block's run crosses several panels: 28 tiles a block of 16
  // on 28672x4096 at M = 4096 (1261.9 against 1271.3 tiled: within the calls' spread) and 7 of 4 at
  // M = 1024 (311.8 against 308.7: slower).
  if (chosen.producer == 1 && chosen.split_k == 1 && chosen.stream_k == 0) {
    CudaVariant whole = chosen;
    whole.stream_k = whole_tile_blocks(desc, whole, sm_count_);
    const int64_t row_tiles = (desc.m + whole.block_m - 1) / whole.block_m;
    if (whole.stream_k != 0 && tiles(desc, whole) / whole.stream_k <= row_tiles && is_valid(desc, whole, 9))
      return whole;
  }
  return std::nullopt;
}

CudaVariant WgmmaGenerator::with_planned_runs(const OpDesc& desc, const CudaVariant& streamed) const {
  // Planned runs (generator version 13; the H100, docs/benchmarks.md, 2026-11-23, each pair in one
  // process, read flush): faster than even runs on every copy-warpgroup stream-K grid the heuristic
  // takes that was timed: 21.3 against 23.6 us at M = 256 on 4096x4096 (sk132), 27.8 against 28.6
  // at M = 256 on 6144x4096 (the 128-row sk132), 74.5 against 75.4 at M = 1024 on 6144x4096 (r2),
  // 53.2 / 53.6 against 54.1 at M = 128 on 28672x4096 (r2 / sk132), 86.3 against 87.9 at M = 256
  // on 28672x4096 (r2); equal within 0.3 % at M = 1024 on 28672x4096 (311.1 against 310.3) and
  // M = 128 on 6144x4096 (20.6 against 20.5).
  if (streamed.producer != 1) return streamed;
  const CudaVariant plan = planned(streamed);
  return is_valid(desc, plan, 9) ? plan : streamed;
}

bool WgmmaGenerator::pairs_fill_a_wave(const OpDesc& desc, const CudaVariant& variant) const {
  // A wave: every SM holding as many blocks as its shared memory takes (228 KiB an SM, 1 KiB of
  // it reserved a block): two of the 64-column tiles' 80 KB rings, one 128-row tile's 160 KB.
  constexpr int64_t shared_an_sm = 233472;
  const int64_t resident = std::max<int64_t>(1, shared_an_sm / (shared_bytes(desc, variant) + 1024));
  const int64_t blocks = tiles(desc, variant) * 2;
  return blocks <= int64_t{sm_count_} * resident && blocks * 10 >= int64_t{sm_count_} * 9 &&
         k_stages(desc, variant) * variant.block_k <= 32 * 128;
}

CudaVariant WgmmaGenerator::summed_in_pairs(const OpDesc& desc, const CudaVariant& variant) const {
  // A split of 2 summed in its cluster (generator version 11; the H100, dsmem's call,
  // docs/benchmarks.md): faster than the second kernel's sum in 42 of 44 split-2 candidates at
  // M = 32..512 on 4096x4096, by 0.3 to 6 us (e.g. 20.8 against 22.1 us, the 128-row
  // warp-specialized tile at M = 128). Splits of 4 and 8 are not: slower in all 64 candidates, and
  // at one block an SM by 10 to 33 us, their clusters not all fitting one wave (17.8 split4_ws
  // against 28.2 cs4_ws at M = 128).
  if (variant.split_k != 2) return variant;
  const CudaVariant pair = clustered(variant);
  return is_valid(desc, pair, 9) ? pair : variant;
}

CudaVariant WgmmaGenerator::split_to_waves(const OpDesc& desc, CudaVariant variant, int waves) const {
  while (variant.split_k < 8) {
    CudaVariant doubled = variant;
    doubled.split_k *= 2;
    if (tiles(desc, doubled) * doubled.split_k > int64_t{waves} * sm_count_ ||
        k_stages(desc, doubled) / doubled.split_k < min_split_stages || !is_valid(desc, doubled, 9))
      break;
    variant = doubled;
  }
  return variant;
}

double WgmmaGenerator::wave_fill(const OpDesc& desc, const CudaVariant& variant) const {
  const int64_t blocks = tiles(desc, variant) * variant.split_k;
  const int64_t sms = sm_count_;
  return static_cast<double>(blocks) / static_cast<double>((blocks + sms - 1) / sms * sms);
}

int64_t WgmmaGenerator::block_work(const OpDesc& desc, const CudaVariant& variant) const {
  const int64_t blocks = tiles(desc, variant) * variant.split_k;
  const int64_t waves = (blocks + sm_count_ - 1) / sm_count_;
  return waves * variant.block_m * ((desc.k + variant.split_k - 1) / variant.split_k);
}

bool WgmmaGenerator::pads_a_quarter_more(const OpDesc& desc, const CudaVariant& tall, const CudaVariant& shorter) {
  const int64_t tall_rows = (desc.m + tall.block_m - 1) / tall.block_m * tall.block_m;
  const int64_t shorter_rows = (desc.m + shorter.block_m - 1) / shorter.block_m * shorter.block_m;
  return 4 * (tall_rows - shorter_rows) >= tall_rows;
}

bool WgmmaGenerator::in_default_search(const OpDesc& desc, const CudaVariant& variant) const {
  if (variant.family != CudaFamily::wgmma || desc.m < short_search_min_rows) return true;
  if (desc.m <= group_sums_max_rows) {
    const bool cluster_of_eight = variant.cluster_split != 0 && variant.split_k >= 8;
    const bool scaled_short_tile =
        variant.block_m == 16 && variant.group_sums == 0 && group_sums_refusal(desc, variant).empty();
    return !cluster_of_eight && !scaled_short_tile;
  }
  if (desc.m < default_search_min_rows) return true;
  const bool second_kernel_pair = variant.split_k == 2 && variant.cluster_split == 0;
  const bool wide_split = variant.split_k >= 8 || (variant.cluster_split != 0 && variant.split_k >= 4);
  const bool short_tile = variant.block_m < 64 || (variant.block_m == 64 && desc.m >= 256);
  if (second_kernel_pair || wide_split || short_tile) return false;
  if (!wide_tiles_fill_a_wave(desc, variant)) return true;
  const bool narrow_tall_tile = variant.block_n == 64 && variant.block_m >= 128;
  return !narrow_tall_tile && variant.split_k == 1;
}

bool WgmmaGenerator::wide_tiles_fill_a_wave(const OpDesc& desc, const CudaVariant& variant) const {
  CudaVariant wide = variant;
  wide.block_n = 128;
  return tiles(desc, wide) >= sm_count_;
}

std::string WgmmaGenerator::group_sums_refusal(const OpDesc& desc, const CudaVariant& variant) {
  if (variant.block_m > group_sums_max_rows)
    return fmt::format("group_sums=1 with block_m={}: only tiles of up to {} rows keep their group sums (the totals "
                       "take block_m / 2 more registers a thread, the fold as many FMAs a group)",
                       variant.block_m, group_sums_max_rows);
  if (desc.group != whole_k_group && desc.group_size() < variant.block_k)
    return fmt::format("group_sums=1 with group={} and block_k={}: a stage must lie inside one group (group >= "
                       "block_k, or group=-1), so that groups end between stages",
                       desc.group, variant.block_k);
  if (desc.zero == ZeroPoint::floating)
    return "group_sums=1 with zero=float: the weights enter the wgmmas as q - z, exact only for an integer z "
           "(zero=none or int)";
  if (desc.act == DType::bf16 && desc.bits == 8)
    return "group_sums=1 with bits=8 and act=bf16: q - z is formed as (128 + q) - (128 + z) in bf16, and 128 + q "
           "needs 9 significant bits (bf16 has 8); use group_sums=0, or act=fp16";
  return {};
}

bool WgmmaGenerator::hybrid_pays(const OpDesc& desc, const CudaVariant& hybrid) {
  const int64_t grid = tiles(desc, hybrid);
  if (grid <= hybrid.stream_k || remaining_tiles(desc, hybrid) == 0) return false;
  const double even_share = static_cast<double>(grid) / static_cast<double>(hybrid.stream_k);
  const double last_phase =
      static_cast<double>(remaining_tiles(desc, hybrid)) / static_cast<double>(sharing_blocks(desc, hybrid));
  return static_cast<double>(grid / hybrid.stream_k) + last_phase <= hybrid_margin * even_share;
}

LaunchGeometry WgmmaGenerator::launch_geometry(const OpDesc& desc, const CudaVariant& variant) const {
  LaunchGeometry geometry;
  geometry.threads = static_cast<unsigned>(variant.warps * 32 + variant.producer * 128);  // + the copy warpgroup
  geometry.shared_bytes = static_cast<unsigned>(shared_bytes(desc, variant));
  if (variant.stream_k != 0) {  // the persistent blocks
    geometry.grid_x = static_cast<unsigned>(variant.stream_k);
    return geometry;
  }
  // x fastest over M: the blocks that share a weight tile run together and share it in L2.
  geometry.grid_x = static_cast<unsigned>((desc.m + variant.block_m - 1) / variant.block_m);
  geometry.grid_y = static_cast<unsigned>((desc.n + variant.block_n - 1) / variant.block_n);
  geometry.grid_z = static_cast<unsigned>(variant.split_k);
  if (variant.cluster_split == 1) geometry.cluster_z = geometry.grid_z;  // a tile's splits: one cluster
  return geometry;
}

LaunchGeometry WgmmaGenerator::reduce_geometry(const OpDesc& desc) {
  // The template's SplitReduce: 256 threads, each over 4 consecutive elements (N % 4 == 0) or 1.
  const int64_t vector = desc.n % 4 == 0 ? 4 : 1;
  LaunchGeometry geometry;
  geometry.grid_x = static_cast<unsigned>((desc.m * desc.n / vector + 255) / 256);
  geometry.threads = 256;
  return geometry;
}

std::size_t WgmmaGenerator::stream_k_layout_bytes(const CudaVariant& variant) {
  return stream_k_flag_bytes(variant.stream_k) +
         static_cast<std::size_t>(variant.stream_k) * variant.block_m * variant.block_n * sizeof(float);
}

bool WgmmaGenerator::cuts_no_tile(const OpDesc& desc, const CudaVariant& variant) {
  // StreamKSchedule::begin(b) is then a whole number of tiles for every block: the flags and
  // partial slots are never touched (StreamKWork::fix_up neither deposits nor reads).
  if (variant.stream_k == 0) return false;
  if (variant.remainder_split == 0) return tiles(desc, variant) % variant.stream_k == 0;
  return variant.remainder_split == 1;
}

std::size_t WgmmaGenerator::workspace_bytes(const OpDesc& desc, const CudaVariant& variant) {
  if (variant.stream_k != 0) {
    // A schedule laid out at run time (m=0 without schedule_rows) cuts tiles at some row count,
    // whatever its remainder_split: where the hybrid does not pay, StreamKSchedule::run_time_layout
    // shares every tile (a remainder_split=1 grid too, whose hybrid alone would cut none).
    const bool cuts = lays_out_at_run_time(desc, variant) || !cuts_no_tile(scheduled(desc, variant), variant);
    return cuts ? stream_k_layout_bytes(variant) : 0;
  }
  if (variant.split_k == 1 || variant.cluster_split == 1) return 0;  // a cluster split sums in shared memory
  const auto bytes = static_cast<std::size_t>(variant.split_k * desc.m * desc.n) * sizeof(float);
  return (bytes + partials_alignment - 1) / partials_alignment * partials_alignment;
}

std::string WgmmaGenerator::emit(const OpDesc& desc, const CudaVariant& variant) const {
  const Validity validity = is_valid(desc, variant, 9);
  if (!validity) throw Unsupported(fmt::format("cannot emit {}: {}", variant_name(desc, variant, "sm_90a"), validity.reason));
  // The kernel reuses the GEMV template's conversions and the mma template's copy and pair
  // helpers, so all three files are emitted.
  const std::string body = embedded_templates().at("gemv.cuh") + embedded_templates().at("mma_gemm.cuh") +
                           embedded_templates().at("wgmma_gemm.cuh") +
                           instruction_source(variant.block_m, desc.act == DType::bf16);
  return fmt::format(
      "{body}\n"
      "// Instantiation for {descriptor}\n"
      "{planned_runs}"
      "struct LowbitConfig {{\n"
      "{problem}"
      "  static constexpr int BITS = {bits};\n"
      "  static constexpr int BLOCK_N = {block_n};\n"
      "  static constexpr int BLOCK_M = {block_m};\n"
      "  static constexpr int BLOCK_K = {block_k};\n"
      "  static constexpr int STAGES = {stages};\n"
      "  static constexpr int SPLIT_K = {split_k};\n"
      "  static constexpr int PRODUCER = {producer};\n"
      "  static constexpr int CLUSTER_SPLIT = {cluster_split};\n"
      "  static constexpr int GROUP_SUMS = {group_sums};\n"
      "{stream_k}"
      "}};\n"
      "static_assert(lowbit_gemv::WgmmaTile<LowbitConfig>::SHARED_BYTES == {shared}, \"generator and template agree\");\n"
      "{planned_runs_check}"
      "{entry_source}"
      "{reduce_entry}",
      fmt::arg("body", body), fmt::arg("descriptor", to_string(desc)), fmt::arg("problem", problem_constants(desc)),
      fmt::arg("bits", desc.bits), fmt::arg("block_n", variant.block_n),
      fmt::arg("block_m", variant.block_m), fmt::arg("block_k", variant.block_k), fmt::arg("stages", variant.stages),
      fmt::arg("shared", shared_bytes(desc, variant)), fmt::arg("producer", variant.producer),
      fmt::arg("split_k", variant.split_k),
      fmt::arg("cluster_split", variant.cluster_split), fmt::arg("group_sums", variant.group_sums),
      fmt::arg("reduce_entry",
               variant.split_k == 1 || variant.cluster_split == 1 ? std::string() : reduce_source(desc.m == 0)),
      fmt::arg("stream_k", variant.stream_k == 0
                               ? std::string()
                               : fmt::format("  static constexpr int STREAM_K = {};\n"
                                             "  static constexpr int REMAINDER_SPLIT = {};\n"
                                             "  static constexpr int STREAM_K_PLAN = {};\n{}{}",
                                             variant.stream_k, variant.remainder_split, variant.stream_k_plan,
                                             variant.schedule_rows == 0
                                                 ? std::string()
                                                 : fmt::format("  static constexpr int SCHEDULE_ROWS = {};\n",
                                                               variant.schedule_rows),
                                             variant.stream_k_plan == 0
                                                 ? ""
                                                 : "  static __device__ __forceinline__ long long planned_begin(int "
                                                   "block) { return lowbit_stream_k_runs[block]; }\n")),
      fmt::arg("planned_runs",
               variant.stream_k_plan == 0 ? std::string() : planned_runs_source(scheduled(desc, variant), variant)),
      // The table holds a beginning per sharing block and the end, as the template counts them.
      fmt::arg("planned_runs_check",
               variant.stream_k_plan == 0
                   ? std::string()
                   : std::string("static_assert(sizeof(lowbit_stream_k_runs) / sizeof(long long) == "
                                 "lowbit_gemv::StreamKSchedule<LowbitConfig>::layout("
                                 "lowbit_gemv::StreamKSchedule<LowbitConfig>::FIXED_M_TILES).sharing_blocks + 1, "
                                 "\"generator and template agree on the sharing blocks\");\n")),
      fmt::arg("entry_source",
               variant.stream_k == 0 ? tiled_entry_source(variant, desc.m == 0)
                                     : stream_k_entry_source(variant, desc.m == 0)));
}

WgmmaGenerator::AccumulatorOperands WgmmaGenerator::accumulator_operands(int count) {
  std::vector<std::string> registers;
  std::vector<std::string> outputs;
  for (int i = 0; i < count; ++i) {
    registers.push_back(fmt::format("%{}", i));
    outputs.push_back(fmt::format("\"+f\"(d[{}])", i));
  }
  return {fmt::format("{}", fmt::join(registers, ", ")), fmt::format("{}", fmt::join(outputs, ", "))};
}

std::string WgmmaGenerator::instruction_source(int rows, bool bf16) {
  // Operands: the rows / 2 accumulators, A's four registers, B's descriptor, then `accumulate`,
  // which sets the predicate p (scale-d: D is accumulated into where it is set, else overwritten).
  const int accumulators = rows / 2;
  const AccumulatorOperands operands = accumulator_operands(accumulators);
  const char* type = bf16 ? "bf16" : "f16";
  return fmt::format(
      "namespace lowbit_gemv {{\n"
      "template <>\n"
      "__device__ __forceinline__ void wgmma_rows<{rows}, {is_bf16}>(float (&d)[{accumulators}], const u32 (&a)[4], u64 b, "
      "bool accumulate) {{\n"
      "  asm volatile(\n"
      "      \"{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{one}, 0;\\n\"\n"
      "      \"wgmma.mma_async.sync.aligned.m64n{rows}k16.f32.{type}.{type} {{{registers}}}, \"\n"
      "      \"{{%{a0}, %{a1}, %{a2}, %{a3}}}, %{b}, p, 1, 1, 0;\\n}}\\n\"\n"
      "      : {outputs}\n"
      "      : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"l\"(b), \"r\"(accumulate ? 1 : 0));\n"
      "}}\n"
      "}}  // namespace lowbit_gemv\n",
      fmt::arg("rows", rows), fmt::arg("is_bf16", bf16 ? "true" : "false"), fmt::arg("accumulators", accumulators),
      fmt::arg("type", type), fmt::arg("registers", operands.registers), fmt::arg("outputs", operands.outputs),
      fmt::arg("a0", accumulators), fmt::arg("a1", accumulators + 1),
      fmt::arg("a2", accumulators + 2), fmt::arg("a3", accumulators + 3), fmt::arg("b", accumulators + 4),
      fmt::arg("one", accumulators + 5));
}

std::string WgmmaGenerator::tiled_entry_source(const CudaVariant& variant, bool any_rows) {
  return fmt::format(
      "// y: the output, or with SPLIT_K > 1 the caller's workspace (fp32 partials, {reduce} sums them).{rows_note}\n"
      "extern \"C\" __global__ void __launch_bounds__({threads}, 1) {entry}(const void* x, const void* qweight,\n"
      "    const unsigned short* scales, const unsigned short* zeros, const void* bias,\n"
      "    const float* /* eq_scale: every family takes it; this one refuses eqscale=1 */, void* y{rows_parameter}) {{\n"
      "  extern __shared__ __align__(1024) unsigned char shared[];\n"
      "  lowbit_gemv::wgmma_gemm_tiled<LowbitConfig>(x, static_cast<const unsigned char*>(qweight), scales, zeros, bias, "
      "y, shared{rows_argument});\n"
      "}}\n",
      fmt::arg("threads", variant.warps * 32 + variant.producer * 128), fmt::arg("entry", entry_point),
      fmt::arg("reduce", reduce_entry_point),
      fmt::arg("rows_note", any_rows ? "\n// rows: this call's M (an any-M kernel; the grid covers its row tiles)." : ""),
      fmt::arg("rows_parameter", any_rows ? ", int rows" : ""), fmt::arg("rows_argument", any_rows ? ", rows" : ""));
}

std::string WgmmaGenerator::stream_k_entry_source(const CudaVariant& variant, bool any_rows) {
  return fmt::format(
      "// STREAM_K persistent blocks; workspace: their flags and partial tiles (workspace_bytes), token: nonzero,\n"
      "// new every launch (CudaKernel::run).{rows_note}\n"
      "extern \"C\" __global__ void __launch_bounds__({threads}, 1) {entry}(const void* x, const void* qweight,\n"
      "    const unsigned short* scales, const unsigned short* zeros, const void* bias,\n"
      "    const float* /* eq_scale: every family takes it; this one refuses eqscale=1 */, void* y, void* workspace,\n"
      "    unsigned long long token{rows_parameter}) {{\n"
      "  extern __shared__ __align__(1024) unsigned char shared[];\n"
      "  lowbit_gemv::wgmma_stream_k<LowbitConfig>(x, static_cast<const unsigned char*>(qweight), scales, zeros, "
      "bias, y, workspace, token, shared{rows_argument});\n"
      "}}\n",
      fmt::arg("threads", variant.warps * 32 + variant.producer * 128), fmt::arg("entry", entry_point),
      fmt::arg("rows_note", any_rows ? "\n// rows: this call's M, at most SCHEDULE_ROWS (an any-M kernel)." : ""),
      fmt::arg("rows_parameter", any_rows ? ", int rows" : ""), fmt::arg("rows_argument", any_rows ? ", rows" : ""));
}

std::string WgmmaGenerator::reduce_source(bool any_rows) {
  return fmt::format(
      "{rows_note}extern \"C\" __global__ void __launch_bounds__(256) {reduce}(const float* partials, const void* bias, "
      "void* y{rows_parameter}) {{\n"
      "  lowbit_gemv::wgmma_split_reduce<LowbitConfig>(partials, bias, y{rows_argument});\n"
      "}}\n",
      fmt::arg("reduce", reduce_entry_point),
      fmt::arg("rows_note", any_rows ? "// rows: this call's M (an any-M kernel: partials [SPLIT_K][rows][N]).\n" : ""),
      fmt::arg("rows_parameter", any_rows ? ", int rows" : ""), fmt::arg("rows_argument", any_rows ? ", rows" : ""));
}

}  // namespace lowbit::cuda
