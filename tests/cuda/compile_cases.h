// Every kernel a CUDA test checks, compiled ahead of its checks: NVRTC takes from a fraction of a
// second (gemv) to several seconds (wgmma) a program, while a check takes milliseconds on the GPU
// and up to seconds in the host's reference sums, so compiling a test's kernels one at a time
// between its checks left the compiles and the checks each waiting on the other. A test lists
// its cases, starts their compiles (CompiledCases: in the background, in case order, on
// compile_threads() threads, each compile holding one of the machine's slots, compile_slots.h),
// then loads and checks each case in order as before, waiting only for a cubin not yet made.
// Only when a cubin is compiled changes, never what is checked.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/registry.h"
#include "lowbit/descriptor.h"

namespace lowbit::cuda::testing {

// One kernel to compile: a descriptor (M, the format) and a variant of any family.
struct Case {
  OpDesc desc;
  CudaVariant variant;
};

// One NVRTC program: its source, the name NVRTC gives its file, the arch it is compiled for.
struct Program {
  std::string source;
  std::string name;
  std::string arch;
};

// How many threads one test compiles on: LOWBIT_TEST_COMPILE_THREADS (an integer from 1 to
// 4096; another value is an InvalidArgument naming it), else a thread per hardware thread. The machine-wide slots (compile_slots.h), not this,
// bound how many compiles run at once: a thread waiting for a slot only sleeps.
unsigned compile_threads();

// Compiles programs in the background from construction, in their order, each distinct
// (arch, source) once, on compile_threads() threads. The destructor starts no further compile
// and waits for those under way (a test that stops at its first failure does not wait for the rest).
class BackgroundCompiles {
 public:
  explicit BackgroundCompiles(const std::vector<Program>& programs);
  ~BackgroundCompiles();
  BackgroundCompiles(const BackgroundCompiles&) = delete;
  BackgroundCompiles& operator=(const BackgroundCompiles&) = delete;

  // Program i's cubin, or why it did not compile (compile_to_cubin's error), once compiled.
  const CompiledCandidate& wait(std::size_t i);

 private:
  void compile_next_ones();

  std::vector<Program> distinct_;          // the programs to compile, each (arch, source) once
  std::vector<std::size_t> distinct_of_;   // program i -> its index in distinct_
  std::vector<CompiledCandidate> results_;  // per distinct program; read once done_ says so
  std::vector<char> done_;                  // per distinct program, under mutex_
  std::mutex mutex_;
  std::condition_variable compiled_;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stopping_{false};
  std::vector<std::jthread> workers_;  // last: started once the rest exists, joined first
};

// Each program's cubin (or why not), every program compiled before it returns. What a
// compile-only test uses.
std::vector<CompiledCandidate> compile_programs(const std::vector<Program>& programs);

// Compile-only tests: every program compiled (compile_programs); empty when each gave a cubin
// (an ELF image), else one line per program that did not: its name, arch and NVRTC's error.
std::string compile_failures(const std::vector<Program>& programs);

// The cases of a GPU test for device 0, compiled in the background from construction. A case that
// is not valid there is refused with the generator's reason, as building it would (CudaKernel,
// DequantGemmKernel); a case repeated with only run-time arguments changed shares its cubin.
class CompiledCases {
 public:
  explicit CompiledCases(const std::vector<Case>& cases);

  // Case i's cubin, or why there is none, once compiled.
  CompiledCandidate get(std::size_t i);

 private:
  std::vector<std::string> refusals_;  // per case: why it is not valid, empty when it is
  std::vector<std::size_t> program_of_;  // per valid case: its program
  std::unique_ptr<BackgroundCompiles> compiles_;
};

}  // namespace lowbit::cuda::testing
