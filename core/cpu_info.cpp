#include "lowbit/cpu_info.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
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

// First line of a small sysfs file. Plain read(2): an ifstream costs ~20 us per file, and
// get_kernel's cold path reads a dozen of these.
std::string read_line(const std::string& path) {
  int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) return {};
  char buffer[256];
  ssize_t length = ::read(descriptor, buffer, sizeof(buffer));
  ::close(descriptor);
  if (length <= 0) return {};
  std::string line(buffer, static_cast<std::size_t>(length));
  return line.substr(0, line.find('\n'));
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

// Hardware threads per core from cpuid leaf 0xB (x2APIC topology; Intel, and AMD since Zen):
// subleaf 0 is the SMT level and EBX[15:0] counts its logical processors. One cpuid costs
// microseconds where a sysfs file costs tens of them, and get_kernel's cold path pays this.
int threads_per_core_from_cpuid() {
  uint32_t registers[4] = {};
  Xbyak::util::Cpu::getCpuid(0, registers);
  if (registers[0] < 0xB) return 0;
  Xbyak::util::Cpu::getCpuidEx(0xB, 0, registers);
  const uint32_t level_type = (registers[2] >> 8) & 0xff;  // 1 = SMT
  const uint32_t logical = registers[1] & 0xffff;
  return level_type == 1 && logical >= 1 && logical <= 8 ? static_cast<int>(logical) : 0;
}

// The same from the first usable CPU's sibling list in sysfs ("0-1", "0,64", "3").
int threads_per_core_from_sysfs(int cpu) {
  std::string siblings = read_line(fmt::format("/sys/devices/system/cpu/cpu{}/topology/thread_siblings_list", cpu));
  if (siblings.empty()) return 1;
  int count = 0;
  std::size_t start = 0;
  while (start < siblings.size()) {
    std::size_t end = siblings.find(',', start);
    std::string range = siblings.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::size_t dash = range.find('-');
    try {
      count += dash == std::string::npos ? 1 : std::stoi(range.substr(dash + 1)) - std::stoi(range.substr(0, dash)) + 1;
    } catch (const std::exception&) {
      return 1;
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return std::max(1, count);
}

std::vector<int> read_topology(CpuInfo& info) {
  std::vector<int> cpus = usable_cpus();
  info.logical_cpus = std::max(1, static_cast<int>(cpus.size()));
  int smt = threads_per_core_from_cpuid();
  if (smt == 0) smt = threads_per_core_from_sysfs(cpus.empty() ? 0 : cpus.front());
  info.physical_cores = std::max(1, info.logical_cpus / smt);
  return cpus;
}

// Cache sizes from cpuid's deterministic cache parameters: leaf 4 on Intel, 0x8000001D on
// AMD (same register layout). Returns false when the leaf is missing, so sysfs is read instead.
bool read_caches_from_cpuid(CpuInfo& info) {
  uint32_t registers[4] = {};
  uint32_t leaf = 0;
  if (info.vendor == "GenuineIntel") {
    Xbyak::util::Cpu::getCpuid(0, registers);
    if (registers[0] >= 4) leaf = 4;
  } else if (info.vendor == "AuthenticAMD" || info.vendor == "HygonGenuine") {
    Xbyak::util::Cpu::getCpuid(0x80000000u, registers);
    if (registers[0] >= 0x8000001Du) leaf = 0x8000001Du;
  }
  if (leaf == 0) return false;
  for (uint32_t index = 0; index < 8; ++index) {
    Xbyak::util::Cpu::getCpuidEx(leaf, index, registers);
    const uint32_t type = registers[0] & 0x1f;  // 0: no more caches, 1: data, 2: instruction, 3: unified
    if (type == 0) break;
    const uint32_t level = (registers[0] >> 5) & 0x7;
    const int64_t ways = ((registers[1] >> 22) & 0x3ff) + 1;
    const int64_t partitions = ((registers[1] >> 12) & 0x3ff) + 1;
    const int64_t line = (registers[1] & 0xfff) + 1;
    const int64_t sets = static_cast<int64_t>(registers[2]) + 1;
    const int64_t size = ways * partitions * line * sets;
    if (level == 1 && type == 1) info.l1d_bytes = size;
    if (level == 2) info.l2_bytes = size;
    if (level == 3) info.l3_bytes = size;
  }
  return info.l2_bytes > 0;
}

void read_caches_from_sysfs(CpuInfo& info, int cpu) {
  for (int index = 0; index < 8; ++index) {
    std::string base = fmt::format("/sys/devices/system/cpu/cpu{}/cache/index{}/", cpu, index);
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
  std::vector<int> cpus = read_topology(info);
  if (!read_caches_from_cpuid(info)) read_caches_from_sysfs(info, cpus.empty() ? 0 : cpus.front());
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
