// m=0's row plan as the cache keeps it (cache::RowPlan::plan_json): what each part of an any-M
// CUDA kernel (runtime/row_buckets.h) is when no decision names it, with the key of its cubin, so
// that a later process loads every part with the driver alone: no heuristic evaluated, no source
// generated, NVRTC not loaded. get_kernel records a plan after it resolved the parts the long way
// and reads it back first (runtime/get_kernel.cpp).
//
// JSON: {"any_rows": part or null, "exact_rows": [part with "m"], "unserved_rows": [m, ...],
//        "ranges": [part with "first_rows"], "range_starts": [rows, ...]},
//       each part {"variant": {...}, "artifact_key": 64 hex}.
//   any_rows:      desc's own any-M kernel when it was its heuristic (no decision for m=0);
//   exact_rows:    the row counts 1..exact_bucket_rows that ran their heuristic (no decision);
//                  a row count with a decision is not listed: its decision names its cubin;
//   unserved_rows: the row counts no exact-M family serves (left to the any-M kernel);
//   ranges:        the any-M ranges past the exact rows that were built, ascending;
//   range_starts:  the ranges' first rows the plan was made for (any_rows_range_starts then); a
//                  plan without it, or made for other ranges (an older lowbit's), is outdated:
//                  get_kernel passes over it and records a new one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit::runtime {

// One part: the variant it builds and the key its cubin is stored under. `rows`: the row count
// of an exact part, the first row count of a range, 0 for the any-M kernel.
struct PlannedPart {
  int64_t rows = 0;
  nlohmann::json variant;
  std::string artifact_key;

  bool operator==(const PlannedPart&) const = default;
};

struct RowPlanParts {
  std::optional<PlannedPart> any_rows;
  std::vector<PlannedPart> exact;  // ascending rows, each in 1..exact_bucket_rows
  std::vector<int64_t> unserved;   // ascending, each in 1..exact_bucket_rows, none in exact
  std::vector<PlannedPart> ranges; // ascending first rows, each above exact_bucket_rows
  std::vector<int64_t> range_starts;  // what the plan was made for; empty when the plan did not say

  bool operator==(const RowPlanParts&) const = default;
  // Whether the plan was made for today's ranges (any_rows_range_starts).
  bool made_for_current_ranges() const;
  // The exact part of `rows`, if the plan lists one.
  const PlannedPart* exact_part(int64_t rows) const;
  bool is_unserved(int64_t rows) const;
};

nlohmann::json to_json(const RowPlanParts& parts);
// Throws lowbit::Error naming what is malformed (a stored plan from another lowbit, or damaged).
RowPlanParts row_plan_from_json(const nlohmann::json& plan);

}  // namespace lowbit::runtime
