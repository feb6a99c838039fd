#include "tests/cuda/compile_cases.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <map>
#include <string_view>
#include <utility>

#include "codegen/cuda/cuda_api.h"
#include "lowbit/errors.h"
#include "tests/cuda/compile_slots.h"

namespace lowbit::cuda::testing {

unsigned compile_threads() {
  const char* text = std::getenv("LOWBIT_TEST_COMPILE_THREADS");
  if (text == nullptr || *text == '\0') return std::max(1u, std::thread::hardware_concurrency());
  char* end = nullptr;
  errno = 0;
  const long count = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || count < 1 || count > 4096)
    throw InvalidArgument("LOWBIT_TEST_COMPILE_THREADS",
                          fmt::format("LOWBIT_TEST_COMPILE_THREADS={} is not allowed: it is how many threads one CUDA "
                                      "test compiles on, an integer from 1 to 4096",
                                      text));
  return static_cast<unsigned>(count);
}

BackgroundCompiles::BackgroundCompiles(const std::vector<Program>& programs) : distinct_of_(programs.size()) {
  // The distinct (arch, source) pairs in order of first appearance, so that the compiles run in
  // the order a test checks its cases.
  std::map<std::pair<std::string_view, std::string_view>, std::size_t> known;
  for (std::size_t i = 0; i < programs.size(); ++i) {
    const auto [place, inserted] = known.try_emplace({programs[i].arch, programs[i].source}, distinct_.size());
    if (inserted) distinct_.push_back(programs[i]);
    distinct_of_[i] = place->second;
  }
  results_.resize(distinct_.size());
  done_.assign(distinct_.size(), 0);
  const std::size_t width = std::min<std::size_t>(distinct_.size(), compile_threads());
  for (std::size_t worker = 0; worker < width; ++worker) workers_.emplace_back([this] { compile_next_ones(); });
}

BackgroundCompiles::~BackgroundCompiles() { stopping_ = true; }  // then workers_ join, first of the members

void BackgroundCompiles::compile_next_ones() {
  for (std::size_t index = next_++; index < distinct_.size() && !stopping_; index = next_++) {
    const Program& program = distinct_[index];
    CompiledCandidate result;
    try {
      result.cubin = compile_in_slot(program.source, program.name, program.arch);
    } catch (const std::exception& error) {
      result.error = error.what();
    }
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      results_[index] = std::move(result);
      done_[index] = 1;
    }
    compiled_.notify_all();
  }
}

const CompiledCandidate& BackgroundCompiles::wait(std::size_t i) {
  const std::size_t index = distinct_of_.at(i);
  std::unique_lock<std::mutex> lock(mutex_);
  compiled_.wait(lock, [&] { return done_[index] != 0; });
  return results_[index];  // written once, before done_ was set; never again
}

std::vector<CompiledCandidate> compile_programs(const std::vector<Program>& programs) {
  BackgroundCompiles compiles(programs);
  std::vector<CompiledCandidate> compiled;
  compiled.reserve(programs.size());
  for (std::size_t i = 0; i < programs.size(); ++i) compiled.push_back(compiles.wait(i));
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

CompiledCases::CompiledCases(const std::vector<Case>& cases) : refusals_(cases.size()), program_of_(cases.size(), 0) {
  const DeviceInfo& device = device_info(0);
  const std::string arch = device.arch();
  std::vector<Program> programs;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string name = variant_name(cases[i].desc, cases[i].variant, arch);
    if (const Validity validity = is_valid(cases[i].desc, cases[i].variant, device.major); !validity) {
      refusals_[i] = fmt::format("cannot build {}: {}", name, validity.reason);
      continue;
    }
    program_of_[i] = programs.size();
    programs.push_back({emit(cases[i].desc, cases[i].variant), name, arch});
  }
  compiles_ = std::make_unique<BackgroundCompiles>(programs);
}

CompiledCandidate CompiledCases::get(std::size_t i) {
  if (!refusals_.at(i).empty()) {
    CompiledCandidate refused;
    refused.error = refusals_[i];
    return refused;
  }
  return compiles_->wait(program_of_[i]);  // a copy: cases that share a source share its cubin
}

}  // namespace lowbit::cuda::testing
