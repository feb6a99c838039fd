#include "codegen/x86/jit_generator.h"

#include <cstdlib>
#include <fstream>

#include "lowbit/errors.h"

namespace lowbit::x86 {

JitGenerator::JitGenerator(std::string name, std::size_t max_code_bytes)
    : Xbyak::CodeGenerator(max_code_bytes, Xbyak::DontSetProtectRWE), name_(std::move(name)) {}

std::size_t JitGenerator::entry_offset() {
  align(64);
  return getSize();
}

void JitGenerator::finalize() {
  setProtectModeRE();
  const char* directory = std::getenv("LOWBIT_DUMP_X86");
  if (directory == nullptr || directory[0] == '\0') return;
  std::string path = std::string(directory) + "/" + name_ + ".bin";
  std::ofstream file(path, std::ios::binary);
  file.write(reinterpret_cast<const char*>(getCode()), static_cast<std::streamsize>(getSize()));
  if (!file) warn("LOWBIT_DUMP_X86: could not write " + path);
}

}  // namespace lowbit::x86
