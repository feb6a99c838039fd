#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lowbit/cpu_info.h"

namespace lowbit {
namespace {

TEST(CpuInfo, ReadsVendorCoresAndCaches) {
  const CpuInfo& info = cpu_info();
  EXPECT_FALSE(info.vendor.empty());
  EXPECT_GE(info.physical_cores, 1);
  EXPECT_GE(info.logical_cpus, info.physical_cores);
  EXPECT_GT(info.l2_bytes, 0) << "sysfs cache sizes were not read";
  EXPECT_GT(info.l3_bytes, 0);
  for (const auto& name : info.isa)
    EXPECT_NE(std::find(known_isa_names().begin(), known_isa_names().end(), name), known_isa_names().end());
}

TEST(CpuInfo, FingerprintHoldsHardFieldsOnly) {
  const CpuInfo& info = cpu_info();
  std::string fingerprint = info.fingerprint();
  EXPECT_NE(fingerprint.find(info.vendor), std::string::npos);
  EXPECT_NE(fingerprint.find("cores=" + std::to_string(info.physical_cores)), std::string::npos);
  if (!info.brand.empty()) {
    EXPECT_EQ(fingerprint.find(info.brand), std::string::npos);
  }
  EXPECT_EQ(info.to_json()["fingerprint"], fingerprint);
}

}  // namespace
}  // namespace lowbit
