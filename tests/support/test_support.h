// What several test suites share: the AVX-512 skip rule, file bytes, warning counts, and the
// one check every kernel goes through (random inputs, poisoned outputs with guard bytes, the
// reference, the tolerance of lowbit/tolerance.h).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "lowbit/cpu_info.h"
#include "lowbit/half.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"

namespace lowbit::testing {

inline bool cpu_serves_avx512() {
  return cpu_info().has("avx512f") && cpu_info().has("avx512bw") && cpu_info().has("avx512vl");
}

// Skips the current test, printing why, on a CPU that cannot run the x86 kernels.
#define LOWBIT_SKIP_WITHOUT_AVX512()                   \
  if (!::lowbit::testing::cpu_serves_avx512())         \
  GTEST_SKIP() << "this CPU lacks AVX-512 F/BW/VL: x86 kernels cannot run here"

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline int count_warnings(const std::string& text) {
  int count = 0;
  for (std::size_t at = text.find("lowbit: warning:"); at != std::string::npos; at = text.find("lowbit: warning:", at + 1))
    ++count;
  return count;
}

// Sets (or unsets, for nullopt) an environment variable for one scope.
class ScopedEnvironment {
 public:
  ScopedEnvironment(std::string name, const std::optional<std::string>& value)
      : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    apply(value);
  }
  ~ScopedEnvironment() { apply(old_); }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

 private:
  void apply(const std::optional<std::string>& value) {
    if (value)
      setenv(name_.c_str(), value->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }
  std::string name_;
  std::optional<std::string> old_;
};

// A fresh directory under the test temp dir (mkdtemp), removed with everything in it.
class TempDirectory {
 public:
  explicit TempDirectory(const std::string& prefix) {
    std::string pattern = (std::filesystem::path(::testing::TempDir()) / (prefix + "_XXXXXX")).string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

constexpr std::size_t guard_bytes = 256;
constexpr uint8_t poison = 0xff;  // NaN in fp32, bf16 and fp16: an unwritten output cannot pass

// One run of a kernel on a fresh random problem of m rows (seed from case_name) with a poisoned
// output between guard bytes: what every kernel test checks, whatever reference it compares with.
struct GuardedRun {
  Problem problem;
  std::string where;  // "case: <case_name> seed=<seed>": the one-line reproducer
  std::vector<uint8_t> buffer;  // [guard][m * n outputs][guard]
  std::size_t out_bytes = 0;
  bool guards_intact = false;
  const uint8_t* output() const { return buffer.data() + guard_bytes; }
  const void* bias() const { return problem.desc.bias ? problem.bias.data() : nullptr; }
  const float* eq_scale() const { return problem.desc.eqscale ? problem.eq_scale.data() : nullptr; }
};

inline GuardedRun run_guarded(const Kernel& kernel, int64_t m, const std::string& case_name) {
  const OpDesc& desc = kernel.desc();
  const uint64_t seed = seed_for(case_name);
  GuardedRun run{make_random_problem(desc, m, seed), "case: " + case_name + " seed=" + std::to_string(seed), {}, 0,
                 false};
  run.out_bytes = static_cast<std::size_t>(m * desc.n * dtype_bytes(desc.out));
  run.buffer.assign(run.out_bytes + 2 * guard_bytes, poison);
  RunArgs args;
  args.x = run.problem.x.data();
  args.weights = view(run.problem.packed);
  args.bias = run.bias();
  args.eq_scale = run.eq_scale();
  args.y = run.buffer.data() + guard_bytes;
  args.m = m;
  kernel.run(args);
  run.guards_intact = true;
  for (std::size_t i = 0; i < guard_bytes; ++i)
    if (run.buffer[i] != poison || run.buffer[guard_bytes + run.out_bytes + i] != poison) run.guards_intact = false;
  return run;
}

// Runs kernel on a fresh random problem of m rows (seed from case_name) with poisoned, guarded
// outputs and compares with the reference. Returns "" on success, else a message that starts
// with the one-line reproducer (case name and seed).
inline std::string check_against_reference(const Kernel& kernel, int64_t m, const std::string& case_name) {
  const OpDesc& desc = kernel.desc();
  const GuardedRun run = run_guarded(kernel, m, case_name);
  if (!run.guards_intact) return run.where + ": guard bytes overwritten";
  std::vector<double> reference =
      reference_matmul(desc, m, run.problem.x.data(), run.problem.weights, run.bias(), run.eq_scale());
  const double error = relative_error(run.output(), desc.out, reference);
  if (!(error <= tolerance(desc)))
    return run.where + ": relative error " + std::to_string(error) + " > tolerance " + std::to_string(tolerance(desc));
  return {};
}

}  // namespace lowbit::testing
