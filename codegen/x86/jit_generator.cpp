#include "codegen/x86/jit_generator.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "lowbit/errors.h"

namespace lowbit::x86 {

JitGenerator::JitGenerator(std::string name, std::size_t max_code_bytes, std::string dump_name)
    : Xbyak::CodeGenerator(max_code_bytes, Xbyak::DontSetProtectRWE),
      name_(std::move(name)),
      dump_name_(dump_name.empty() ? name_ : std::move(dump_name)) {}

std::size_t JitGenerator::entry_offset() {
  align(64);
  return getSize();
}

void JitGenerator::finalize() {
  setProtectModeRE();
  const char* directory = std::getenv("LOWBIT_DUMP_X86");
  if (directory == nullptr || directory[0] == '\0') return;
  std::string path = std::string(directory) + "/" + dump_name_ + ".bin";
  std::ofstream file(path, std::ios::binary);
  file.write(reinterpret_cast<const char*>(getCode()), static_cast<std::streamsize>(getSize()));
  if (!file) warn("LOWBIT_DUMP_X86: could not write " + path);
}

void JitGenerator::emit_unrolled_steps(const Xbyak::Reg64& counter, int64_t steps, int64_t unroll,
                                       const std::function<void(int)>& step,
                                       const std::function<void(int64_t)>& advance) {
  unroll = std::min(unroll, steps);
  const int64_t iterations = steps / unroll;
  const int64_t leftover = steps % unroll;
  if (iterations > 1) {
    Xbyak::Label step_loop;
    mov(counter, iterations);
    L(step_loop);
    for (int copy = 0; copy < unroll; ++copy) step(copy);
    advance(unroll);
    dec(counter);
    jnz(step_loop, T_NEAR);
  } else {
    for (int copy = 0; copy < unroll; ++copy) step(copy);
    advance(unroll);
  }
  for (int copy = 0; copy < leftover; ++copy) step(copy);
  if (leftover > 0) advance(leftover);
}

}  // namespace lowbit::x86
