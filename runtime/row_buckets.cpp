#include "runtime/row_buckets.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "lowbit/errors.h"

namespace lowbit::runtime {

RowBucketKernel::RowBucketKernel(const OpDesc& desc, std::vector<std::shared_ptr<const Kernel>> exact,
                                 std::shared_ptr<const Kernel> any_rows)
    : desc_(desc), exact_(std::move(exact)), any_rows_(std::move(any_rows)) {
  if (any_rows_ == nullptr) throw Error("RowBucketKernel: the any-M kernel is required");
  if (desc_.m != 0 || any_rows_->desc().m != 0)
    throw Error(fmt::format("RowBucketKernel: {} is not an any-M (m=0) kernel", any_rows_->name()));
  for (std::size_t i = 0; i < exact_.size(); ++i)
    if (exact_[i] != nullptr && exact_[i]->desc().m != static_cast<int64_t>(i) + 1)
      throw Error(fmt::format("RowBucketKernel: {} serves m={}, not m={}", exact_[i]->name(), exact_[i]->desc().m, i + 1));
  name_ = exact_.empty() ? any_rows_->name() : fmt::format("{}+exact_m1-{}", any_rows_->name(), exact_.size());
}

nlohmann::json RowBucketKernel::variant_json() const {
  nlohmann::json exact = nlohmann::json::array();
  for (std::size_t i = 0; i < exact_.size(); ++i)
    exact.push_back({{"m", i + 1}, {"variant", kernel_for(static_cast<int64_t>(i) + 1).name()}});
  return {{"any_rows", any_rows_->variant_json()}, {"exact_rows", exact}};
}

const Kernel& RowBucketKernel::kernel_for(int64_t m) const {
  if (m < 1) throw InvalidArgument("m", fmt::format("RunArgs.m is {}; it must be >= 1", m));
  if (m <= static_cast<int64_t>(exact_.size()) && exact_[m - 1] != nullptr) return *exact_[m - 1];
  return *any_rows_;
}

void RowBucketKernel::run(const RunArgs& args) const { kernel_for(args.m).run(args); }

// (No call runs with m < 1; the any-M kernel's figure stands for it rather than an exception.)
std::size_t RowBucketKernel::workspace_bytes(int64_t m) const {
  return m < 1 ? any_rows_->workspace_bytes(m) : kernel_for(m).workspace_bytes(m);
}

}  // namespace lowbit::runtime
