// lowbit_cpu_problem_dump: writes one random problem of a descriptor (the same generator the
// tests and the tuner use) and lowbit's reference output for it, so that a baseline outside
// lowbit (torch's int4 CPU kernel, bench/cpu_torch_baselines.py --check) can be run on the
// very same quantized weights and checked against the reference: the benchmark then compares
// equal work. Raw little-endian files in DIR:
//   x.bin       [m][k] activations in desc.act
//   q.bin       [n][k] uint8 codes, one per byte (unpacked)
//   scales.bin  [n][groups] fp16 bits
//   zeros.bin   [n][groups] fp16 bits (absent for zero=none)
//   y_ref.bin   [m][n] float64, the reference before rounding to desc.out
//   problem.json  the descriptor, m, seed and the shapes above
// Usage: lowbit_cpu_problem_dump DESCRIPTOR M DIR
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/descriptor.h"
#include "lowbit/errors.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"

namespace {

template <typename T>
void write_raw(const std::filesystem::path& path, const std::vector<T>& values) {
  std::ofstream file(path, std::ios::binary);
  file.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(T)));
  if (!file) throw std::runtime_error(fmt::format("cannot write {}", path.string()));
}

void dump(const lowbit::OpDesc& desc, int64_t m, const std::filesystem::path& dir) {
  // A plain product is what torch's int4 kernel computes: descriptors with a bias or an
  // equalization scale are refused rather than half compared.
  if (desc.bias || desc.eqscale) throw lowbit::InvalidArgument("bias/eqscale", "the dump serves bias=0 and eqscale=0 only");
  const std::string text = lowbit::to_string(desc);
  const uint64_t seed = lowbit::seed_for("cpu_problem_dump " + text);
  const lowbit::Problem problem = lowbit::make_random_problem(desc, m, seed);
  const std::vector<double> reference =
      lowbit::reference_matmul(desc, m, problem.x.data(), problem.weights, nullptr, nullptr);

  std::filesystem::create_directories(dir);
  write_raw(dir / "x.bin", problem.x);
  write_raw(dir / "q.bin", problem.weights.q);
  write_raw(dir / "scales.bin", problem.weights.scales);
  if (!problem.weights.zeros.empty()) write_raw(dir / "zeros.bin", problem.weights.zeros);
  write_raw(dir / "y_ref.bin", reference);
  const nlohmann::json meta{{"descriptor", text},
                            {"m", m},
                            {"n", desc.n},
                            {"k", desc.k},
                            {"bits", desc.bits},
                            {"group", problem.weights.group_size()},
                            {"groups", problem.weights.group_count()},
                            {"act", std::string(lowbit::to_string(desc.act))},
                            {"has_zeros", !problem.weights.zeros.empty()},
                            {"seed", seed}};
  std::ofstream(dir / "problem.json") << meta.dump(2) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DESCRIPTOR M DIR\n", argv[0]);
    return 2;
  }
  try {
    const int64_t m = std::stoll(argv[2]);
    if (m < 1) throw lowbit::InvalidArgument("M", fmt::format("M must be at least 1, got {}", m));
    dump(lowbit::parse_descriptor(argv[1]), m, argv[3]);
  } catch (const lowbit::InvalidArgument& error) {
    std::fprintf(stderr, "lowbit_cpu_problem_dump: error: %s\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_cpu_problem_dump: failed: %s\n", error.what());
    return 1;
  }
  return 0;
}
