// A machine-wide cap on the CUDA tests' NVRTC compiles. ctest runs several test processes at
// once and each compiles its kernels on several threads (compile_cases.h); without a shared cap
// 8 tests x 16 threads ran 128 compiles on 16 cores beside the tests' reference sums, and the
// reference-bound tests ran 2-3x longer (2026-11-23, docs/benchmarks.md). A slot is one file in a
// directory shared by every test process; a compile holds an exclusive flock(2) on one file, so
// at most as many compiles run at once as there are slot files, whichever process runs them, and
// a process that dies gives its slot back with its descriptors.
#pragma once

#include <string>
#include <vector>

namespace lowbit::cuda::testing {

// How many compiles may run at once on this machine: LOWBIT_TEST_COMPILE_SLOTS (an integer from
// 1 to 4096), else the hardware threads. Another value is an InvalidArgument naming the variable.
unsigned compile_slot_count();

// The directory of the slot files: LOWBIT_TEST_COMPILE_SLOT_DIR (bench/device/run.sh sets one in
// its build directory), else /tmp/lowbit-compile-slots-<uid>; created when missing.
std::string compile_slot_directory();

// Holds one slot from construction to destruction: the first free slot file, or, when every slot
// is taken, one of them once its holder lets it go (compile_slots.cpp says which and why). Not
// copyable or movable.
class CompileSlot {
 public:
  CompileSlot();
  ~CompileSlot();
  CompileSlot(const CompileSlot&) = delete;
  CompileSlot& operator=(const CompileSlot&) = delete;

 private:
  int file_ = -1;  // the slot file's descriptor, its lock held until closed
};

// compile_to_cubin (codegen/cuda/cuda_api.h) while holding a slot: the same cubin, or the same
// error, only possibly later.
std::vector<char> compile_in_slot(const std::string& source, const std::string& name, const std::string& arch);

}  // namespace lowbit::cuda::testing
