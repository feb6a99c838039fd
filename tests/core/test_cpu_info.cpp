#include <gtest/gtest.h>

#include <fstream>
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

namespace lowbit {
namespace {

std::string sysfs_line(const std::string& path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

// cpu_info() reads caches and SMT width from cpuid (microseconds) and falls back to sysfs;
// where sysfs exists, the two must agree.
TEST(CpuInfo, CpuidFactsAgreeWithSysfs) {
  const std::string base = "/sys/devices/system/cpu/cpu0/";
  if (sysfs_line(base + "cache/index0/level").empty()) GTEST_SKIP() << "no sysfs cache information on this machine";
  const CpuInfo& info = cpu_info();
  for (int index = 0; index < 8; ++index) {
    const std::string cache = base + "cache/index" + std::to_string(index) + "/";
    const std::string level = sysfs_line(cache + "level");
    if (level.empty()) break;
    const std::string size_text = sysfs_line(cache + "size");  // e.g. "1024K"
    int64_t size = std::stoll(size_text) * (size_text.back() == 'M' ? 1024 * 1024 : 1024);
    const int64_t expected = level == "2" ? info.l2_bytes : level == "3" ? info.l3_bytes : info.l1d_bytes;
    if (level != "1" || sysfs_line(cache + "type") == "Data") {
      EXPECT_EQ(expected, size) << cache;
    }
  }
  const std::string siblings = sysfs_line(base + "topology/thread_siblings_list");
  if (!siblings.empty() && siblings.find_first_of(",-") == std::string::npos) {
    EXPECT_EQ(info.physical_cores, info.logical_cpus) << "cpu0 has no SMT sibling in sysfs";
  }
}

}  // namespace
}  // namespace lowbit
