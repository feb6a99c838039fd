// The one base of every x86 generator: an Xbyak::CodeGenerator that knows its kernel's name,
// is writable while emitting and read+execute afterwards (W^X), and can dump its bytes for
// disassembly (LOWBIT_DUMP_X86=dir writes dir/<dump name>.bin; see docs/architecture.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include <xbyak/xbyak.h>

namespace lowbit::x86 {

class JitGenerator : public Xbyak::CodeGenerator {
 public:
  // dump_name: the file name of LOWBIT_DUMP_X86's dump (empty: `name`); it must tell apart every
  // program a process may emit under the same name (a variant name does not carry N or K).
  explicit JitGenerator(std::string name, std::size_t max_code_bytes = std::size_t{1} << 20,
                        std::string dump_name = {});
  JitGenerator(const JitGenerator&) = delete;
  JitGenerator& operator=(const JitGenerator&) = delete;

  const std::string& name() const { return name_; }

  // Ends emission: makes the code read+execute and dumps it when LOWBIT_DUMP_X86 is set.
  void finalize();

  // Address of an entry point recorded with entry_offset() during emission.
  template <class Function>
  Function function_at(std::size_t offset) const {
    return reinterpret_cast<Function>(const_cast<uint8_t*>(getCode()) + offset);
  }

 protected:
  // Offset of the next instruction, to be used as an entry point. Entries start 64-byte aligned.
  std::size_t entry_offset();

  // Emits `steps` (>= 1) copies of step(i), i the copy's place in its iteration: min(unroll,
  // steps) per iteration of a loop counted down in `counter` (straight code for one
  // iteration), then the leftover copies; advance(count) after each iteration and after the
  // leftovers, with the number of steps they covered. Register contract: clobbers counter and
  // what step and advance clobber.
  void emit_unrolled_steps(const Xbyak::Reg64& counter, int64_t steps, int64_t unroll,
                           const std::function<void(int)>& step, const std::function<void(int64_t)>& advance);

 private:
  std::string name_;
  std::string dump_name_;
};

}  // namespace lowbit::x86
