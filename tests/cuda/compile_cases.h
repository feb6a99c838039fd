// Every kernel a CUDA test checks, compiled before the first one runs: NVRTC takes from a
// fraction of a second (gemv) to several seconds (wgmma) a program, loading and checking a
// kernel milliseconds to a second, so compiling a test's kernels one at a time between its
// checks left all cores but one idle for most of the device suite. A test builds its list of
// cases, calls compile_cases once, then loads and checks each case in order as before; only
// when a cubin is compiled changes, never what is checked.
#pragma once

#include <string>
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

// How many NVRTC compiles one test runs at once: LOWBIT_TEST_COMPILE_THREADS when set to a
// positive count, else a thread per core. A thread per core in every test of a parallel ctest
// oversubscribes the cores while several tests compile at once; the scheduler then shares the
// cores among them, and the test still compiling when the others have moved on to their checks
// gets them all back. The variable bounds it where memory is short (NVRTC holds a few hundred MB
// per wgmma program).
unsigned compile_threads();

// One NVRTC program: its source, the name NVRTC gives its file, the arch it is compiled for.
struct Program {
  std::string source;
  std::string name;
  std::string arch;
};

// Each program's cubin (or why it did not compile, as compile_to_cubin says it): each distinct
// (source, arch) compiled once, over compile_threads() threads. What a compile-only test uses.
std::vector<CompiledCandidate> compile_programs(const std::vector<Program>& programs);

// Compile-only tests: every program compiled (compile_programs); empty when each gave a cubin
// (an ELF image), else one line per program that did not: its name, arch and NVRTC's error.
std::string compile_failures(const std::vector<Program>& programs);

// Each case's cubin for device 0 (or why not): a case that is not valid there is refused with
// the generator's reason, as building it would (CudaKernel, DequantGemmKernel); otherwise its
// emitted source goes through compile_programs, so a case repeated with only run-time arguments
// changed shares its cubin. What a GPU test loads.
std::vector<CompiledCandidate> compile_cases(const std::vector<Case>& cases);

}  // namespace lowbit::cuda::testing
