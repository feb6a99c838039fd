// m=0 (any M) on CUDA as the engine sees it: one Kernel that runs each call on the kernel for its
// row count. The fast CUDA families compile for an exact M (gemv_mma and the FMA GEMV at decode,
// wgmma's stream-K and split grids), so up to exact_bucket_rows every row count has its own
// exact-M kernel. Above it any-M kernels serve, one a range of row counts (any_rows_range_starts),
// each with the tile for its range's top: wgmma's tiled grid, split, cluster split or stream-K
// (in the ranges with a top laid out for the top's rows, in the open range for each call's) on
// sm_90a (M taken at run time), else the mma family's. desc's own m=0 kernel (its decision) takes the row counts
// nothing else serves.
// get_kernel (runtime/get_kernel.cpp) resolves the parts; this class only dispatches, so it holds
// no CUDA code and is tested without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/kernel.h"

namespace lowbit::runtime {

// The row counts an m=0 CUDA kernel serves with exact-M kernels: 1 .. exact_bucket_rows (the
// decode range, where the exact-M kernels were 1.4-2.6x the single any-M kernel: docs/benchmarks.md).
inline constexpr int64_t exact_bucket_rows = 16;

// The first row counts of the any-M ranges past the exact rows; a range's kernel takes the tile for
// its top (any_rows_range_top: 32, 64, 128, 256, 384, 512, 768 and, for the open last range,
// any_rows_open_range_rows: wgmma on sm_90a, else the mma family's). The ranges from 129 have tops
// so that stream-K serves them laid out for the top (docs/benchmarks.md, session 30); 257..512 and
// 513..1024 were split at 384 and 768 so that each part takes the tile of its own rows (the exact
// kernels there run 128-row tiles at 257..384 and 256-row ones at 385..512 on 6144x4096, streamed
// and tiled grids at 257..384 and 385..512, and at 513..768 and 769..1024, on 4096x14336: session
// 31). A row plan records these starts: one made for others is not used (runtime/row_plan.h).
inline constexpr int64_t any_rows_range_starts[] = {17, 33, 65, 129, 257, 385, 513, 769};
inline constexpr std::size_t any_rows_range_count = std::size(any_rows_range_starts);
// The rows the open last range's tile is chosen for: the large-M tile of 1024 rows (the open range
// started at 513 with it in session 30; from 769 rows it keeps it).
inline constexpr int64_t any_rows_open_range_rows = 1024;

// The rows range `range` (an index into any_rows_range_starts) takes its tile for: the row count
// before the next range's first, or for the open last range any_rows_open_range_rows.
constexpr int64_t any_rows_range_top(std::size_t range) {
  return range + 1 < any_rows_range_count ? any_rows_range_starts[range + 1] - 1 : any_rows_open_range_rows;
}
// Whether range `range` is the open one (no top: it serves every row count from its first on).
constexpr bool any_rows_range_is_open(std::size_t range) { return range + 1 == any_rows_range_count; }

// An any-M kernel and the first row count it serves (up to the next range's first).
struct RowRange {
  int64_t first_rows = 0;
  std::shared_ptr<const Kernel> kernel;
};

class RowBucketKernel final : public Kernel {
 public:
  // exact[i] serves M = i + 1 (desc with m = i + 1); a null entry leaves that row count to
  // any_rows. Past exact.size() rows, the last of `ranges` (any-M kernels, ascending first_rows,
  // each above exact.size()) whose first_rows the count reaches, else any_rows, desc's own (m=0)
  // kernel.
  RowBucketKernel(const OpDesc& desc, std::vector<std::shared_ptr<const Kernel>> exact, std::vector<RowRange> ranges,
                  std::shared_ptr<const Kernel> any_rows);

  const OpDesc& desc() const override { return desc_; }
  // The any-M kernel's name, the exact rows and the ranges' count, e.g.
  // "cuda_sm90a_mma_w4g128_m0_n64m16k256_s3_w2x1x4+exact_m1-16+4_ranges" (6144x4096).
  const std::string& name() const override { return name_; }
  // {"any_rows": the any-M kernel's variant, "exact_rows": [{"m": 1, "variant": name}, ...],
  //  "row_ranges": [{"first_rows": 33, "variant": name}, ...]}.
  nlohmann::json variant_json() const override;
  // The call on kernel_for_rows(args.m), which checks the arguments as it always does.
  void run(const RunArgs& args) const override;
  // kernel_for_rows(m)'s workspace at m rows.
  std::size_t workspace_bytes(int64_t m) const override;

  // The kernel a call of m rows runs on. Throws InvalidArgument for m < 1.
  const Kernel& kernel_for_rows(int64_t m) const override;
  // The any-M kernel (desc's own m=0 kernel), which serves the row counts nothing else serves.
  const Kernel& any_rows() const { return *any_rows_; }

 private:
  OpDesc desc_;
  std::vector<std::shared_ptr<const Kernel>> exact_;
  std::vector<RowRange> ranges_;
  std::shared_ptr<const Kernel> any_rows_;
  std::string name_;
};

}  // namespace lowbit::runtime
