// m=0's row plan as JSON (runtime/row_plan.h): what get_kernel stores is what it reads back, and a
// malformed plan (another lowbit's, or damaged) is refused with a message naming the member, which
// get_kernel turns into a warning and the long way.
#include <gtest/gtest.h>

#include <string>

#include "lowbit/errors.h"
#include "runtime/row_buckets.h"
#include "runtime/row_plan.h"

namespace lowbit::runtime {
namespace {

std::string key_of(char digit) { return std::string(64, digit); }

RowPlanParts sample_parts() {
  RowPlanParts parts;
  parts.any_rows = PlannedPart{0, {{"family", "mma"}, {"block_n", 64}}, key_of('a')};
  parts.exact = {{1, {{"family", "gemv_mma"}, {"warps", 8}}, key_of('1')},
                 {2, {{"family", "gemv_mma"}, {"warps", 16}}, key_of('2')},
                 {16, {{"family", "wgmma"}, {"block_m", 16}}, key_of('f')}};
  parts.unserved = {3, 9};
  parts.ranges = {{17, {{"family", "wgmma"}, {"block_m", 32}}, key_of('b')},
                  {129, {{"family", "wgmma"}, {"block_m", 256}}, key_of('c')}};
  parts.range_starts.assign(std::begin(any_rows_range_starts), std::end(any_rows_range_starts));
  return parts;
}

// The plan text with `edit` applied to its JSON, read back: the message of its refusal, or
// "(accepted)".
template <class Edit>
std::string refusal(Edit edit) {
  nlohmann::json plan = to_json(sample_parts());
  edit(plan);
  try {
    row_plan_from_json(plan);
  } catch (const Error& error) {
    return error.what();
  }
  return "(accepted)";
}

TEST(RowPlan, RoundTripsThroughItsText) {
  const RowPlanParts parts = sample_parts();
  const RowPlanParts read = row_plan_from_json(nlohmann::json::parse(to_json(parts).dump()));
  EXPECT_EQ(read, parts);
  ASSERT_NE(read.exact_part(16), nullptr);
  EXPECT_EQ(read.exact_part(16)->artifact_key, key_of('f'));
  EXPECT_EQ(read.exact_part(3), nullptr);
  EXPECT_TRUE(read.is_unserved(9));
  EXPECT_FALSE(read.is_unserved(1));
}

TEST(RowPlan, AnEmptyPlanWithoutAnAnyRowsPartRoundTrips) {
  RowPlanParts parts;  // every row count decided, no range built, the any-M kernel decided
  const nlohmann::json text = to_json(parts);
  EXPECT_TRUE(text["any_rows"].is_null());
  EXPECT_EQ(row_plan_from_json(text), parts);
}

TEST(RowPlan, MalformedPlansAreRefusedNamingWhatIsWrong) {
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan = nlohmann::json::array(); }).find("not a JSON object"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan.erase("any_rows"); }).find("\"any_rows\""), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan.erase("ranges"); }).find("\"ranges\" is not an array"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["exact_rows"][0]["artifact_key"] = "ABC"; })
                .find("exact_rows[0]'s \"artifact_key\""),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["exact_rows"][1].erase("variant"); }).find("exact_rows[1] has no \"variant\""),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["exact_rows"][1]["m"] = "two"; }).find("no integer \"m\""),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["exact_rows"][2]["m"] = exact_bucket_rows + 1; }).find("serve 1..16"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["exact_rows"][1]["m"] = 1; }).find("ascending"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["unserved_rows"].push_back(2); }).find("2 rows are listed twice"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["unserved_rows"].push_back(0); }).find("names 0 rows"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["ranges"][0]["first_rows"] = 16; }).find("not above 16"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["ranges"][1]["first_rows"] = 17; }).find("not above 17"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["any_rows"] = 5; }).find("any_rows is not an object"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["range_starts"] = 17; }).find("\"range_starts\" is not an array"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["range_starts"][1] = "33"; })
                .find("range_starts[1] is not a row count"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["range_starts"][0] = 16; })
                .find("range_starts[0] is not a row count above 16"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& plan) { plan["range_starts"][2] = 33; }).find("range_starts[2]"),
            std::string::npos);
  EXPECT_EQ(refusal([](nlohmann::json&) {}), "(accepted)");
}

// A plan is used only when it was made for today's ranges: one from before the ranges were
// recorded (no "range_starts"), or made for others, is outdated (get_kernel then records anew).
TEST(RowPlan, OnlyAPlanMadeForTodaysRangesIsCurrent) {
  EXPECT_TRUE(row_plan_from_json(to_json(sample_parts())).made_for_current_ranges());
  nlohmann::json unsaid = to_json(sample_parts());
  unsaid.erase("range_starts");
  const RowPlanParts older = row_plan_from_json(unsaid);
  EXPECT_TRUE(older.range_starts.empty());
  EXPECT_FALSE(older.made_for_current_ranges());
  RowPlanParts four_ranges = sample_parts();
  four_ranges.range_starts = {17, 33, 65, 129};  // session 29's
  EXPECT_FALSE(row_plan_from_json(to_json(four_ranges)).made_for_current_ranges());
  RowPlanParts more = sample_parts();
  more.range_starts.push_back(more.range_starts.back() * 2 - 1);
  EXPECT_FALSE(more.made_for_current_ranges());
}

}  // namespace
}  // namespace lowbit::runtime
