#include "tests/cuda/compile_cases.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "codegen/cuda/cuda_api.h"

namespace lowbit::cuda::testing {

unsigned compile_threads() {
  if (const char* text = std::getenv("LOWBIT_TEST_COMPILE_THREADS"); text != nullptr) {
    char* end = nullptr;
    const long count = std::strtol(text, &end, 10);
    if (end != text && *end == '\0' && count > 0) return static_cast<unsigned>(count);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::vector<CompiledCandidate> compile_programs(const std::vector<Program>& programs) {
  // The distinct (arch, source) pairs, each named by the first program that has it.
  std::map<std::pair<std::string_view, std::string_view>, std::size_t> known;
  std::vector<std::size_t> first_program;
  std::vector<std::size_t> distinct_of(programs.size());
  for (std::size_t i = 0; i < programs.size(); ++i) {
    const auto [place, inserted] = known.try_emplace({programs[i].arch, programs[i].source}, first_program.size());
    if (inserted) first_program.push_back(i);
    distinct_of[i] = place->second;
  }
  std::vector<CompiledCandidate> distinct(first_program.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t index = next++; index < distinct.size(); index = next++) {
      const Program& program = programs[first_program[index]];
      try {
        distinct[index].cubin = compile_to_cubin(program.source, program.name, program.arch);
      } catch (const std::exception& error) {
        distinct[index].error = error.what();
      }
    }
  };
  {
    const std::size_t width = std::min<std::size_t>(distinct.size(), compile_threads());
    std::vector<std::jthread> workers;
    for (std::size_t worker = 0; worker < width; ++worker) workers.emplace_back(work);
  }  // joins
  std::vector<CompiledCandidate> compiled(programs.size());
  for (std::size_t i = 0; i < programs.size(); ++i) compiled[i] = distinct[distinct_of[i]];
  return compiled;
}

std::string compile_failures(const std::vector<Program>& programs) {
  const std::vector<CompiledCandidate> compiled = compile_programs(programs);
  std::string failures;
  for (std::size_t i = 0; i < programs.size(); ++i) {
    const std::vector<char>& cubin = compiled[i].cubin;
    const bool elf = cubin.size() > 64 && cubin[0] == 0x7f && cubin[1] == 'E' && cubin[2] == 'L' && cubin[3] == 'F';
    if (!elf)
      failures += fmt::format("{} for {}: {}\n", programs[i].name, programs[i].arch,
                              compiled[i].error.empty() ? "not a cubin" : compiled[i].error);
  }
  return failures;
}

std::vector<CompiledCandidate> compile_cases(const std::vector<Case>& cases) {
  const DeviceInfo& device = device_info(0);
  const std::string arch = device.arch();
  std::vector<CompiledCandidate> compiled(cases.size());
  std::vector<Program> programs;
  std::vector<std::size_t> program_of(cases.size(), 0);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string name = variant_name(cases[i].desc, cases[i].variant, arch);
    if (const Validity validity = is_valid(cases[i].desc, cases[i].variant, device.major); !validity) {
      compiled[i].error = fmt::format("cannot build {}: {}", name, validity.reason);
      continue;
    }
    program_of[i] = programs.size();
    programs.push_back({emit(cases[i].desc, cases[i].variant), name, arch});
  }
  std::vector<CompiledCandidate> cubins = compile_programs(programs);
  for (std::size_t i = 0; i < cases.size(); ++i)
    if (compiled[i].error.empty()) compiled[i] = std::move(cubins[program_of[i]]);
  return compiled;
}

}  // namespace lowbit::cuda::testing
