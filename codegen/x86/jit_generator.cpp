#include "codegen/x86/jit_generator.h"

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

}  // namespace lowbit::x86
