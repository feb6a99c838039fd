#include "runtime/row_buckets.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "lowbit/errors.h"

namespace lowbit::runtime {

RowBucketKernel::RowBucketKernel(const OpDesc& desc, std::vector<std::shared_ptr<const Kernel>> exact,
                                 std::vector<RowRange> ranges, std::shared_ptr<const Kernel> any_rows)
    : desc_(desc), exact_(std::move(exact)), ranges_(std::move(ranges)), any_rows_(std::move(any_rows)) {
  auto any_m = [&](const Kernel* kernel) {
    if (kernel == nullptr) throw Error("RowBucketKernel: the any-M kernels are required");
    if (kernel->desc().m != 0) throw Error(fmt::format("RowBucketKernel: {} is not an any-M (m=0) kernel", kernel->name()));
  };
  if (desc_.m != 0) throw Error("RowBucketKernel: the descriptor must have m=0");
  any_m(any_rows_.get());
  for (std::size_t i = 0; i < exact_.size(); ++i)
    if (exact_[i] != nullptr && exact_[i]->desc().m != static_cast<int64_t>(i) + 1)
      throw Error(fmt::format("RowBucketKernel: {} serves m={}, not m={}", exact_[i]->name(), exact_[i]->desc().m, i + 1));
  int64_t previous = static_cast<int64_t>(exact_.size());
  for (const RowRange& range : ranges_) {
    any_m(range.kernel.get());
    if (range.first_rows <= previous)
      throw Error(fmt::format("RowBucketKernel: a range starting at {} rows after {}", range.first_rows, previous));
    previous = range.first_rows;
  }
  name_ = any_rows_->name();
  if (!exact_.empty()) name_ += fmt::format("+exact_m1-{}", exact_.size());
  if (!ranges_.empty()) name_ += fmt::format("+{}_ranges", ranges_.size());
}

nlohmann::json RowBucketKernel::variant_json() const {
  nlohmann::json exact = nlohmann::json::array();
  for (std::size_t i = 0; i < exact_.size(); ++i)
    exact.push_back({{"m", i + 1}, {"variant", kernel_for_rows(static_cast<int64_t>(i) + 1).name()}});
  nlohmann::json ranges = nlohmann::json::array();
  for (const RowRange& range : ranges_) ranges.push_back({{"first_rows", range.first_rows}, {"variant", range.kernel->name()}});
  return {{"any_rows", any_rows_->variant_json()}, {"exact_rows", exact}, {"row_ranges", ranges}};
}

const Kernel& RowBucketKernel::kernel_for_rows(int64_t m) const {
  if (m < 1) throw InvalidArgument("m", fmt::format("RunArgs.m is {}; it must be >= 1", m));
  if (m <= static_cast<int64_t>(exact_.size())) return exact_[m - 1] != nullptr ? *exact_[m - 1] : *any_rows_;
  const Kernel* chosen = any_rows_.get();
  for (const RowRange& range : ranges_)
    if (m >= range.first_rows) chosen = range.kernel.get();
  return *chosen;
}

void RowBucketKernel::run(const RunArgs& args) const { kernel_for_rows(args.m).run(args); }

// (No call runs with m < 1; the any-M kernel's figure stands for it rather than an exception.)
std::size_t RowBucketKernel::workspace_bytes(int64_t m) const {
  return m < 1 ? any_rows_->workspace_bytes(m) : kernel_for_rows(m).workspace_bytes(m);
}

}  // namespace lowbit::runtime
