#include "runtime/row_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "lowbit/errors.h"
#include "runtime/row_buckets.h"

namespace lowbit::runtime {
namespace {

nlohmann::json part_json(const PlannedPart& part) {
  return {{"variant", part.variant}, {"artifact_key", part.artifact_key}};
}

bool is_hex_key(const std::string& key) {
  return key.size() == 64 && key.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The part at `json` (where: its place in the plan, for the message); rows_field names the member
// that holds its rows, or is empty (the any-M part, rows 0).
PlannedPart read_part(const nlohmann::json& json, const std::string& where, const char* rows_field) {
  if (!json.is_object()) throw Error(fmt::format("row plan: {} is not an object", where));
  PlannedPart part;
  if (rows_field != nullptr) {
    const auto rows = json.find(rows_field);
    if (rows == json.end() || !rows->is_number_integer())
      throw Error(fmt::format("row plan: {} has no integer \"{}\"", where, rows_field));
    part.rows = rows->get<int64_t>();
  }
  const auto variant = json.find("variant");
  if (variant == json.end() || !variant->is_object())
    throw Error(fmt::format("row plan: {} has no \"variant\" object", where));
  part.variant = *variant;
  const auto key = json.find("artifact_key");
  if (key == json.end() || !key->is_string() || !is_hex_key(key->get<std::string>()))
    throw Error(fmt::format("row plan: {}'s \"artifact_key\" is not 64 lowercase hex digits", where));
  part.artifact_key = key->get<std::string>();
  return part;
}

const nlohmann::json& array_member(const nlohmann::json& plan, const char* name) {
  const auto found = plan.find(name);
  if (found == plan.end() || !found->is_array()) throw Error(fmt::format("row plan: \"{}\" is not an array", name));
  return *found;
}

void require_exact_rows(int64_t rows, const std::string& where) {
  if (rows < 1 || rows > exact_bucket_rows)
    throw Error(fmt::format("row plan: {} names {} rows; exact parts serve 1..{}", where, rows, exact_bucket_rows));
}

}  // namespace

const PlannedPart* RowPlanParts::exact_part(int64_t rows) const {
  for (const PlannedPart& part : exact)
    if (part.rows == rows) return &part;
  return nullptr;
}

bool RowPlanParts::is_unserved(int64_t rows) const {
  return std::find(unserved.begin(), unserved.end(), rows) != unserved.end();
}

bool RowPlanParts::made_for_current_ranges() const {
  return std::equal(range_starts.begin(), range_starts.end(), std::begin(any_rows_range_starts),
                    std::end(any_rows_range_starts));
}

nlohmann::json to_json(const RowPlanParts& parts) {
  nlohmann::json exact = nlohmann::json::array();
  for (const PlannedPart& part : parts.exact) {
    nlohmann::json entry = part_json(part);
    entry["m"] = part.rows;
    exact.push_back(std::move(entry));
  }
  nlohmann::json ranges = nlohmann::json::array();
  for (const PlannedPart& part : parts.ranges) {
    nlohmann::json entry = part_json(part);
    entry["first_rows"] = part.rows;
    ranges.push_back(std::move(entry));
  }
  return {{"any_rows", parts.any_rows ? part_json(*parts.any_rows) : nlohmann::json(nullptr)},
          {"exact_rows", exact},
          {"unserved_rows", parts.unserved},
          {"ranges", ranges},
          {"range_starts", parts.range_starts}};
}

RowPlanParts row_plan_from_json(const nlohmann::json& plan) {
  if (!plan.is_object()) throw Error("row plan: not a JSON object");
  RowPlanParts parts;
  const auto any_rows = plan.find("any_rows");
  if (any_rows == plan.end()) throw Error("row plan: no \"any_rows\" member");
  if (!any_rows->is_null()) parts.any_rows = read_part(*any_rows, "any_rows", nullptr);
  int64_t previous = 0;
  for (const nlohmann::json& entry : array_member(plan, "exact_rows")) {
    PlannedPart part = read_part(entry, fmt::format("exact_rows[{}]", parts.exact.size()), "m");
    require_exact_rows(part.rows, fmt::format("exact_rows[{}]", parts.exact.size()));
    if (part.rows <= previous) throw Error("row plan: exact_rows are not in ascending order");
    previous = part.rows;
    parts.exact.push_back(std::move(part));
  }
  for (const nlohmann::json& entry : array_member(plan, "unserved_rows")) {
    const std::string where = fmt::format("unserved_rows[{}]", parts.unserved.size());
    if (!entry.is_number_integer()) throw Error(fmt::format("row plan: {} is not an integer", where));
    const int64_t rows = entry.get<int64_t>();
    require_exact_rows(rows, where);
    if (parts.exact_part(rows) != nullptr || parts.is_unserved(rows))
      throw Error(fmt::format("row plan: {} rows are listed twice", rows));
    parts.unserved.push_back(rows);
  }
  std::sort(parts.unserved.begin(), parts.unserved.end());
  previous = exact_bucket_rows;
  for (const nlohmann::json& entry : array_member(plan, "ranges")) {
    PlannedPart part = read_part(entry, fmt::format("ranges[{}]", parts.ranges.size()), "first_rows");
    if (part.rows <= previous)
      throw Error(fmt::format("row plan: ranges[{}] starts at {} rows, not above {}", parts.ranges.size(), part.rows,
                              previous));
    previous = part.rows;
    parts.ranges.push_back(std::move(part));
  }
  // (Plans recorded before session 30 have no starts: read as made for none, so outdated.)
  const auto starts = plan.find("range_starts");
  if (starts != plan.end()) {
    if (!starts->is_array()) throw Error("row plan: \"range_starts\" is not an array");
    for (const nlohmann::json& entry : *starts) {
      if (!entry.is_number_integer() || entry.get<int64_t>() <= exact_bucket_rows ||
          (!parts.range_starts.empty() && entry.get<int64_t>() <= parts.range_starts.back()))
        throw Error(fmt::format("row plan: range_starts[{}] is not a row count above {} and the one before it",
                                parts.range_starts.size(), exact_bucket_rows));
      parts.range_starts.push_back(entry.get<int64_t>());
    }
  }
  return parts;
}

}  // namespace lowbit::runtime
