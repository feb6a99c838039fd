#include "lowbit/cpu_info.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <xbyak/xbyak_util.h>

namespace lowbit {
namespace {

using XbyakCpu = Xbyak::util::Cpu;

const std::vector<std::pair<std::string_view, XbyakCpu::Type>>& isa_table() {
  static const std::vector<std::pair<std::string_view, XbyakCpu::Type>> table = {
      {"avx2", XbyakCpu::tAVX2},
      {"fma", XbyakCpu::tFMA},
      {"f16c", XbyakCpu::tF16C},
      {"avx512f", XbyakCpu::tAVX512F},
      {"avx512bw", XbyakCpu::tAVX512BW},
      {"avx512vl", XbyakCpu::tAVX512VL},
      {"avx512dq", XbyakCpu::tAVX512DQ},
      {"avx512_vnni", XbyakCpu::tAVX512_VNNI},
      {"avx_vnni", XbyakCpu::tAVX_VNNI},
      {"avx512_bf16", XbyakCpu::tAVX512_BF16},
      {"avx512_fp16", XbyakCpu::tAVX512_FP16},
      {"amx_tile", XbyakCpu::tAMX_TILE},
      {"amx_int8", XbyakCpu::tAMX_INT8},
      {"amx_bf16", XbyakCpu::tAMX_BF16},
  };
  return table;
}

std::string read_line(const std::string& path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

// sysfs sizes look like "32K", "1024K", "32768K" (or "16M").
int64_t parse_size(const std::string& text) {
  if (text.empty()) return 0;
  int64_t value = 0;
  try {
    value = std::stoll(text);
  } catch (const std::exception&) {
    return 0;
  }
  char unit = text.back();
  if (unit == 'K') value *= 1024;
  if (unit == 'M') value *= 1024 * 1024;
  return value;
}

std::vector<int> usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

void read_topology(CpuInfo& info) {
  std::vector<int> cpus = usable_cpus();
  std::set<std::pair<std::string, std::string>> cores;
  for (int cpu : cpus) {
    std::string base = fmt::format("/sys/devices/system/cpu/cpu{}/topology/", cpu);
    cores.emplace(read_line(base + "physical_package_id"), read_line(base + "core_id"));
  }
  info.logical_cpus = static_cast<int>(cpus.size());
  info.physical_cores = static_cast<int>(cores.size());
  if (info.logical_cpus == 0) info.logical_cpus = 1;
  if (info.physical_cores == 0) info.physical_cores = info.logical_cpus;

  int first = cpus.empty() ? 0 : cpus.front();
  for (int index = 0; index < 8; ++index) {
    std::string base = fmt::format("/sys/devices/system/cpu/cpu{}/cache/index{}/", first, index);
    std::string level = read_line(base + "level");
    if (level.empty()) break;
    std::string type = read_line(base + "type");
    int64_t size = parse_size(read_line(base + "size"));
    if (level == "1" && type == "Data") info.l1d_bytes = size;
    if (level == "2") info.l2_bytes = size;
    if (level == "3") info.l3_bytes = size;
  }
}

CpuInfo detect() {
  CpuInfo info;
  XbyakCpu cpu;
  uint32_t registers[4] = {};
  XbyakCpu::getCpuid(0, registers);
  char vendor[13] = {};
  std::memcpy(vendor + 0, &registers[1], 4);
  std::memcpy(vendor + 4, &registers[3], 4);
  std::memcpy(vendor + 8, &registers[2], 4);
  info.vendor = vendor;
  info.family = cpu.displayFamily;
  info.model = cpu.displayModel;
  info.stepping = cpu.stepping;
  char brand[49] = {};
  for (uint32_t leaf = 0; leaf < 3; ++leaf) {
    XbyakCpu::getCpuid(0x80000002u + leaf, registers);
    std::memcpy(brand + 16 * leaf, registers, 16);
  }
  info.brand = brand;
  while (!info.brand.empty() && info.brand.back() == ' ') info.brand.pop_back();
  for (const auto& [name, type] : isa_table())
    if (cpu.has(type)) info.isa.emplace_back(name);
  read_topology(info);
  return info;
}

}  // namespace

bool CpuInfo::has(std::string_view feature) const {
  return std::find(isa.begin(), isa.end(), feature) != isa.end();
}

std::string CpuInfo::fingerprint() const {
  return fmt::format("cpu;{};family={};model={};cores={};isa={}", vendor, family, model, physical_cores,
                     fmt::join(isa, "+"));
}

nlohmann::json CpuInfo::to_json() const {
  return {{"vendor", vendor},
          {"brand", brand},
          {"family", family},
          {"model", model},
          {"stepping", stepping},
          {"isa", isa},
          {"physical_cores", physical_cores},
          {"logical_cpus", logical_cpus},
          {"l1d_bytes", l1d_bytes},
          {"l2_bytes", l2_bytes},
          {"l3_bytes", l3_bytes},
          {"fingerprint", fingerprint()}};
}

const CpuInfo& cpu_info() {
  static const CpuInfo info = detect();
  return info;
}

const std::vector<std::string_view>& known_isa_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> list;
    for (const auto& entry : isa_table()) list.push_back(entry.first);
    return list;
  }();
  return names;
}

}  // namespace lowbit
