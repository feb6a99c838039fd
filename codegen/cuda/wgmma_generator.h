// CUDA Hopper GEMM generator (medium and large M, sm_90a only): 2-, 4- or 8-bit weights in the
// native layout, wgmma.mma_async m64nNk16 with the dequantized weights as the A operand from registers
// and x as B from 128-byte-swizzled shared memory, a cp.async ring of BLOCK_K-k stages
// (templates/wgmma_gemm.cuh). Block tiles of BLOCK_N weight columns (64 per consumer
// warpgroup) x BLOCK_M rows of x (the wgmma's N), optionally split along K across blocks
// (split_k: fp32 partials in the caller's workspace, summed by a second kernel of the same
// program; or with cluster_split, the splits of a tile as one thread-block cluster, summed in its
// distributed shared memory), or shared by stream_k persistent blocks (equal shares of every tile's stage pairs,
// cut tiles fixed up through the workspace), optionally with a warp-specialized copy warpgroup handing the ring over through
// mbarriers (producer = 1). candidates / is_valid / emit as every generator, plus the launch
// geometry, the second kernel's and the workspace size the kernel class uses.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/gemv_generator.h"
#include "lowbit/descriptor.h"

namespace lowbit::cuda {

class WgmmaGenerator {
 public:
  static constexpr std::string_view family = "cuda_wgmma";
  // 2: split_k; 3: producer (warp-specialized copy warpgroup); 4: per-thread copy plans (same
  // variants, faster kernels: decisions tuned before are re-tuned); 5: stream_k candidates; 6:
  // remainder_split candidates (the hybrid stream-K schedule), the heuristic's where few tiles remain;
  // 7: bits 2 and 8 (decisions of those widths tuned before had no wgmma candidate: re-tuned); 8:
  // the main loop unrolled over turns of compile-time slots, copies without the checks a whole
  // shape cannot fail (same variants, fewer instructions a stage: re-tuned); 9: codes masked a word
  // at a time and set under the exponent byte by one PRMT a register (same results, fewer
  // instructions); 10: stream-K (and the hybrid) with the copy warpgroup (producer = 1 with
  // stream_k > 0), searched from 128 rows; 11: cluster_split (a split summed in a thread-block
  // cluster's distributed shared memory, no second kernel); 12: the main loop's full parities once
  // a turn and the group starts known by position (same results, fewer instructions a stage), and
  // whole tiles a persistent block (stream-K grids whose shares are whole tiles) as candidates; 13:
  // stream_k_plan (the blocks' runs planned against the fix-up's cost) as candidates with the copy
  // warpgroup; 14: bits 3 (decisions of that width tuned before had no wgmma candidate: re-tuned);
  // 15: group_sums (unscaled weights, each group's sums scaled into fp32 totals) as candidates for
  // tiles of up to group_sums_max_rows rows; 16: splits at m=0 (an any-M kernel's partials and
  // second kernel over the call's rows: any_rows_tile's ranges split as the heuristic does), and
  // stream-K at m=0 laid out for a bounded range's top rows (schedule_rows)
  static constexpr int version = 16;
  // The tallest tile with group sums: its fold costs BLOCK_M / 2 FMAs a lane and group and as many
  // registers for the totals, against 1 (fp16) or 2 (bf16) instructions saved per A register (4
  // K_TILES a stage).
  static constexpr int group_sums_max_rows = 64;
  static constexpr int64_t max_rows = int64_t{1} << 24;
  static constexpr const char* entry_point = "lowbit_kernel";
  // With split_k > 1: (partials, bias, y), launched after entry_point on the same stream.
  static constexpr const char* reduce_entry_point = "lowbit_split_reduce";

  // sm_count: the device's SMs, which the split pruning and the heuristic's wave rules count
  // blocks against (one block of this family per SM); without a device (`lowbit compile`) the
  // H100's, on which those rules were measured.
  static constexpr int h100_sms = 132;
  explicit WgmmaGenerator(int sm_count = h100_sms) : sm_count_(sm_count > 0 ? sm_count : h100_sms) {}

  std::vector<CudaVariant> candidates(const OpDesc& desc) const;
  // arch_major: the device's compute capability major; only 9 (sm_90a) has wgmma.
  Validity is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const;
  // The complete CUDA source for NVRTC: the templates and a thin instantiation.
  std::string emit(const OpDesc& desc, const CudaVariant& variant) const;
  // The wgmma_rows specialization a kernel of BLOCK_M = rows uses (templates/wgmma_gemm.cuh
  // declares it): one wgmma.mma_async m64n{rows}k16 whose inline PTX names each accumulator.
  static std::string instruction_source(int rows, bool bf16);
  // The inline-PTX operand lists of `count` fp32 accumulators d[0 .. count - 1], each joined with
  // ", ": the instruction's registers ("%0, %1, ...") and the asm statement's outputs
  // ("\"+f\"(d[0]), ..."). instruction_source's, and the benches' own wgmma forms'.
  struct AccumulatorOperands {
    std::string registers;
    std::string outputs;
  };
  static AccumulatorOperands accumulator_operands(int count);
  CudaVariant heuristic(const OpDesc& desc) const;
  // The tile of an any-M (m=0) kernel for calls of about `rows` rows: heuristic()'s tile at m =
  // rows, as the tiled grid; where the heuristic splits K, with that split (a split's partials
  // and second kernel take the call's rows); where it shares K by stream-K, with at_most_rows (the
  // kernel serves calls of at most `rows` rows) that stream-K grid laid out for `rows`
  // (schedule_rows, its planned runs kept), else that grid with even runs, laid out for each
  // call's rows at run time (schedule_rows 0). For an m=0 descriptor's row ranges
  // (runtime/row_buckets.h); m=0 is otherwise not a candidate.
  CudaVariant any_rows_tile(const OpDesc& desc, int64_t rows, bool at_most_rows = false) const;
  // heuristic()'s measures of a grid (the .cpp says what each was measured against):
  // block_work: the rows x k one SM runs, its blocks' waves times a block's share;
  int64_t block_work(const OpDesc& desc, const CudaVariant& variant) const;
  // pads_a_quarter_more: tall's row tiles pad at least a quarter of their rows more than shorter's;
  static bool pads_a_quarter_more(const OpDesc& desc, const CudaVariant& tall, const CudaVariant& shorter);
  // hybrid_pays: the hybrid schedule's whole waves plus its last phase (the remaining tiles over
  // their sharing blocks), in tiles a block, within hybrid_margin of stream-K's even share: the
  // margin is the fix-up of every cut tile that the hybrid's whole tiles skip (it won by 1-2 %
  // where the two shares were equal: 86.8 against 88.3 us at M = 256 on 28672x4096, and at 1.03
  // times: 75.2 against 76.5 at M = 1024 on 6144x4096).
  // (templates/wgmma_gemm.cuh's StreamKSchedule::run_time_layout applies the same rule, margin
  // included, to each call of an any-M stream-K kernel laid out at run time.)
  static constexpr double hybrid_margin = 1.05;
  static bool hybrid_pays(const OpDesc& desc, const CudaVariant& hybrid);
  // Whether a default (not --exhaustive) tune times `variant` (registry.h, tuning_candidates).
  // From default_search_min_rows rows on, grids that never came within 1.10x of the winner on
  // any of issue 4's 12 rows there (4 shapes x M = 128, 256, 1024, int4, bf16; a cold full tune
  // with every candidate ranked, 2026-11-24, docs/benchmarks.md session 21) are left out:
  // split-K by 2 summed by a second kernel (best 1.10x), by 8 (1.14x) and cluster splits of 4 or 8
  // blocks (1.38x): stream-K and the 2-block cluster split share K better; tiles of fewer than 64
  // rows (1.38x), and of 64 rows from 256 rows on (1.16x). They were 44 % of those rows' programs.
  static constexpr int64_t default_search_min_rows = 128;
  // At short_search_min_rows .. group_sums_max_rows rows (issue 4's 4 shapes x M = 32, 64, int4,
  // bf16 and fp16, every candidate timed, docs/benchmarks.md session 24), the kinds that never
  // came within 1.10x of the row's winner are left out: cluster splits of 8 blocks (best 1.20x),
  // and 16-row tiles with scaled weights where their group-sum twin is valid (1.17x in bf16, 1.09x
  // in fp16, against 1.03x for the twin): a fifth to a third of those rows' wgmma programs.
  static constexpr int64_t short_search_min_rows = 32;
  // And from default_search_min_rows rows on, where the unsplit grid of 128-column tiles of the
  // variant's rows is at least a wave of the device's SMs (`wide_tiles_fill_a_wave`): tiles of 64
  // columns and 128 rows or more, and every split (through a second kernel or a cluster). Across
  // issue 4's rows there (int4 bf16, 4 shapes x M = 128, 256, 1024: the cold tune of session 25)
  // and 6144x4096 at M = 1024 at 2, 3 and 8 bits, fp16 and group 32 with zero=float, and M = 4096
  // at 8 bits in fp16 (docs/benchmarks.md, session 26), none came within 1.12x of the row's
  // winner (closest 1.128x, 3 bits); they were 11-29 % of those rows' programs and among the
  // slowest to compile (the 64-column stream-K hybrids 4-6 s each, against 1-4 s).
  bool in_default_search(const OpDesc& desc, const CudaVariant& variant) const;
  // Whether the unsplit grid of 128-column tiles of variant's rows fills a wave of the SMs.
  bool wide_tiles_fill_a_wave(const OpDesc& desc, const CudaVariant& variant) const;
  // Why group_sums=1 is refused for desc with variant's tile (empty: served).
  static std::string group_sums_refusal(const OpDesc& desc, const CudaVariant& variant);
  // The rows where the registry makes heuristic() the no-tune choice on sm_90 (the H100's
  // timings, docs/benchmarks.md): above gemv_mma's 16 rows, up to the largest M where it was
  // measured to beat dequant_gemm (1.24-1.30x at M = 1024 on 28672x4096 and 4096x4096); for 4
  // bits at every M beyond too (session 8's sweep, same call: the copy warpgroup's
  // n128m256k64_s4_ws at M = 4096 took 278.6 / 187.3 / 1301.9 / 638.5 us against dequant_gemm's
  // no-tune 287.9 / 196.6 / 1336.7 / 645.4 on the four Llama-3-8B shapes, bf16; fp16 likewise).
  // Above 1024 rows at 2 and 8 bits (session 9's heuristic call, 4096x4096 and 4096x14336,
  // bf16; the 256-row n128m256k64_s4_ws this heuristic takes there against dequant_gemm's
  // no-tune w4u4s3): 2 bits at every M, as 4 (90.1 / 181.6 against 108.7 / 191.8 us at M = 2048
  // / 4096 on 4096x4096, 293.6 against 332.5 at M = 2048 on 4096x14336); 8 bits up to 2048
  // rows (105.9 against 112.5 us at M = 2048 on 4096x4096), not at 4096 (210.8 against 196.1):
  // each 256-row tile decodes its weights again, twice the bytes a code at 8 bits, while
  // dequant_gemm decodes them once for every M, so from some M the GEMM on decoded weights wins.
  // 3 bits at every M, as 2 and 4 (session 15, 2026-11-23, bench/shapes/wgmma_three_bits_rows.txt,
  // bf16 g128 zero=int, the four Llama-3-8B shapes): at M = 2048 / 4096 the heuristic's 256-row
  // tiles took 151.5 / 296.9, 102.5 / 195.5, 680.9 / 1391.3 and 336.2 / 669.7 us against
  // dequant_gemm's no-tune w4u4s3 at 185.5 / 309.6, 120.8 / 205.5, 847.4 / 1445.2 and 406.6 /
  // 694.1; from 17 to 1024 rows 1.5-4.2x faster than the mma and dequant_gemm choices before it.
  // At exactly 16 rows on a wide N (28672x4096) its 16-row tile beat gemv_mma at 2 and 8 bits
  // too (measured at 4 bits: 39.2 against 47.5 us bf16, 37.3 against 47.2 fp16, same calls;
  // 2 and 8 bits followed that; on 2026-11-23 gemv_mma's best panel sets beat it there, 32.1
  // against 34.0 us at 2 bits and 50.1 against 57.2 at 8 (bf16), but what the registry would take
  // instead is gemv's heuristic choice, w4u2_n64, timed beside it later that day (session 12,
  // bench/shapes/wide_n_sixteen_rows.txt): 32.5 against 33.8 us at 2 bits bf16, but 63.3 against
  // 57.0 at 8 bits bf16, 32.5 against 29.9 at 2 bits fp16 and 47.7 against 47.2 at 8 bits fp16, so
  // the rule stayed then: it won or tied on three of the four). Session 13 (2026-11-23,
  // bench/shapes/sixteen_rows_wide_n.txt, median of 20, 12 and 16 rows): in bf16, gemv_mma's 2-panel
  // warps beat the 16-row tile at both widths (M = 16: 32.0 against 34.0 us at 2 bits, 50.1 against
  // 57.5 at 8; M = 12: 30.5 against 34.3, 50.2 against 57.5) and GemvGenerator::heuristic now takes
  // them, so the rule keeps fp16 only, and from 9 rows: the 16-row tile took 29.9 / 30.0 us at 2
  // bits (M = 16 / 12) against gemv's 32.1 / 30.3 at best and 32.7 / 32.6 for w4u2_n64 (what gemv's
  // heuristic takes in fp16), 48.1 / 47.1 at 8 bits against 48.3 / 47.4 (the other row counts
  // from 9 were not timed: both kernels read the same bytes at 12 and 16 rows, so M moves them
  // little). Not at 4 bits since
  // gemv_mma's warps cover 4 panels (block_n 64, GemvGenerator::heuristic): 30.1 us (rotate run
  // mean) against wgmma's 33.6 (session 9, `read`); nor at 3 bits (not measured: gemv_mma's
  // 3-bit panel pairs, GemvGenerator::heuristic, stay); on N = 4096 and below 16 rows gemv_mma
  // stays (faster there, or not measured).
  static constexpr int64_t preferred_min_rows = 17;
  static constexpr int64_t preferred_max_rows_8_bits = 2048;
  static constexpr int64_t preferred_wide_n = 16384;
  static constexpr int64_t preferred_wide_n_min_rows = 9;
  // The most rows wgmma is preferred for at `bits` (no bound at 2, 3 and 4 bits).
  static constexpr int64_t preferred_rows_up_to(int bits) {
    return bits == 8 ? preferred_max_rows_8_bits : max_rows;
  }
  // (From 17 rows but the short rows GemvGenerator::short_rows_on_few_panels names, where
  // gemv_mma's heuristic won: the registry then takes it.)
  static bool preferred(const OpDesc& desc) {
    return (desc.m >= preferred_min_rows && desc.m <= preferred_rows_up_to(desc.bits) &&
            !GemvGenerator::short_rows_on_few_panels(desc)) ||
           (desc.m >= preferred_wide_n_min_rows && desc.m < preferred_min_rows && desc.n >= preferred_wide_n &&
            (desc.bits == 2 || desc.bits == 8) && desc.act == DType::fp16);
  }
  // Blocks over (M, N) tiles (stream_k: that many blocks), a warpgroup per 64 weight columns, the
  // ring's shared memory; cluster_split: clusters of (1, 1, split_k).
  LaunchGeometry launch_geometry(const OpDesc& desc, const CudaVariant& variant) const;
  // The second pass of a split: a thread per 4 (N % 4 == 0) or 1 elements of y.
  static LaunchGeometry reduce_geometry(const OpDesc& desc);
  // RunArgs.workspace a call needs: the fp32 partials [split_k][M][N] (0 without a split or with
  // cluster_split); with stream_k, stream_k_layout_bytes, or 0 where the grid cuts no tile
  // (cuts_no_tile: no owner then waits for a partial; never for a layout chosen at run time).
  static std::size_t workspace_bytes(const OpDesc& desc, const CudaVariant& variant);
  // A stream-K grid's layout in its workspace: a flag per block (8 bytes, padded to 256 in all),
  // then a block_m x block_n fp32 partial tile per block (the timeline diagnostic's logs lie past
  // it), whether or not the grid uses them.
  static std::size_t stream_k_layout_bytes(const CudaVariant& variant);
  // Whether a stream-K grid gives every block whole tiles only: its tiles a multiple of its blocks
  // (no hybrid), or a hybrid whose remaining tiles go one to a block (remainder_split = 1).
  static bool cuts_no_tile(const OpDesc& desc, const CudaVariant& variant);
  // Shared memory of one block, in bytes (the template's WgmmaTile::SHARED_BYTES).
  static int shared_bytes(const OpDesc& desc, const CudaVariant& variant);
  // The ring's bytes (STAGES x STAGE_BYTES), where a cluster split lays its accumulator.
  static int ring_bytes(const OpDesc& desc, const CudaVariant& variant);
  // A cluster split's fp32 accumulator of one tile, block_m x block_n x 4 bytes.
  static int accumulator_bytes(const CudaVariant& variant) { return variant.block_m * variant.block_n * 4; }
  // The most blocks of one cluster (the portable cluster size; more needs a non-portable opt-in).
  static constexpr int max_cluster_blocks = 8;
  // The share of the SM slots its grid uses over whole waves (blocks over sm_count per wave,
  // one block an SM): 1 when the last wave is full.
  double wave_fill(const OpDesc& desc, const CudaVariant& variant) const;

 private:
  int sm_count_;
  // The split's second kernel; any_rows: an m=0 program's, which takes the call's rows.
  static std::string reduce_source(bool any_rows);
  // The entry point of a tiled grid (stream_k = 0: unchanged since before stream-K) and of a
  // stream-K one (two more parameters: workspace, launch token).
  static std::string tiled_entry_source(const CudaVariant& variant, bool any_rows);
  // any_rows: an m=0 program's, which takes the call's rows.
  static std::string stream_k_entry_source(const CudaVariant& variant, bool any_rows);
  // variant with split_k doubled while the grid stays within `waves` waves and every split keeps
  // enough stages (and the split is valid).
  CudaVariant split_to_waves(const OpDesc& desc, CudaVariant variant, int waves) const;
  // Whether variant's tiles split in two fit one wave (as many blocks an SM as its shared memory
  // holds) and give at least 0.9 of the SMs one, with K at most 32 stages of 128 k: where cluster
  // pairs were measured to win (the heuristic's M = 33..64 and 129..256 rules).
  bool pairs_fill_a_wave(const OpDesc& desc, const CudaVariant& variant) const;
  // variant, or with split_k = 2 the same split summed in its cluster (cluster_split) where valid.
  CudaVariant summed_in_pairs(const OpDesc& desc, const CudaVariant& variant) const;
  // A copy-warpgroup stream-K grid that cuts a tile with its runs planned (stream_k_plan), else as is.
  CudaVariant with_planned_runs(const OpDesc& desc, const CudaVariant& streamed) const;
  // The heuristic's steps (heuristic() applies them in order; each names its evidence): the tile and
  // split by M, then the rules that replace it where they were measured to win.
  CudaVariant base_tile(const OpDesc& desc) const;
  std::optional<CudaVariant> narrow_cluster_pairs(const OpDesc& desc) const;  // M = 65..128
  std::optional<CudaVariant> tall_cluster_pairs(const OpDesc& desc) const;    // M = 129..256
  std::optional<CudaVariant> shared_tiles_streamed(const OpDesc& desc) const; // M = 128..256
  std::optional<CudaVariant> tall_tiles_streamed(const OpDesc& desc, const CudaVariant& chosen) const;  // M >= 256
  std::optional<CudaVariant> long_k_splits_streamed(const OpDesc& desc, const CudaVariant& chosen) const;  // M = 128..256
  std::optional<CudaVariant> shorter_tiles_for_waves(const OpDesc& desc, const CudaVariant& chosen) const;  // M > 128
  std::optional<CudaVariant> whole_tiles_per_block(const OpDesc& desc, const CudaVariant& chosen) const;
  // The heuristic's tile and schedule before its last step, with_group_sums_where_they_pay.
  CudaVariant scaled_heuristic(const OpDesc& desc) const;
  // variant with group_sums = 1 where that is valid and its tile was measured to gain (128-k
  // stages), else as is.
  CudaVariant with_group_sums_where_they_pay(const OpDesc& desc, const CudaVariant& variant) const;
};

}  // namespace lowbit::cuda
