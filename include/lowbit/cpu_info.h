// Facts about this CPU, read once: cpuid (through Xbyak) for vendor, model and ISA, sysfs for
// cores and cache sizes (Xbyak 6.68 reports neither on AMD).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace lowbit {

struct CpuInfo {
  std::string vendor;   // "GenuineIntel", "AuthenticAMD", ...
  std::string brand;    // marketing name (soft: never part of the fingerprint)
  int family = 0;
  int model = 0;
  int stepping = 0;
  std::vector<std::string> isa;  // supported ISA extensions, e.g. "avx512f", "amx_tile"
  int physical_cores = 0;        // usable by this process (affinity mask), one per core
  int logical_cpus = 0;          // usable hardware threads
  int64_t l1d_bytes = 0;         // per core
  int64_t l2_bytes = 0;          // per core
  int64_t l3_bytes = 0;          // per instance shared by this process's cores

  bool has(std::string_view feature) const;
  // Hard fields only (vendor, family, model, ISA set, cores): a cached decision never crosses
  // machines whose fingerprints differ.
  std::string fingerprint() const;
  nlohmann::json to_json() const;
};

const CpuInfo& cpu_info();

// Every ISA name `isa` may contain, in a fixed order.
const std::vector<std::string_view>& known_isa_names();

}  // namespace lowbit
