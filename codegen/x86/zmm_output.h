// The output end of an AVX-512 block function, shared by the AVX-512 float and VNNI int8
// generators: bias, conversion to the output dtype and opmask stores of fp32 running sums
// held one 16-column panel per zmm, or (a part of a split K) the running sums as they are.
#pragma once

#include <cstdint>
#include <functional>

#include <xbyak/xbyak.h>

#include "lowbit/descriptor.h"

namespace lowbit::x86 {

// What the emitter needs of a register block: its shape, where each fp32 running sum lives,
// two zmm it may clobber (neither a running sum) and the opmasks of the columns inside N.
struct ZmmOutputRegisters {
  int panels;
  int rows;
  std::function<Xbyak::Zmm(int row, int panel)> sum;
  Xbyak::Zmm value;         // the bias as fp32; its ymm: the narrowed output
  Xbyak::Zmm rounded;       // fp32 -> bf16 rounding without avx512_bf16
  Xbyak::Opmask full_mask;  // every panel but the last: all 16 columns
  Xbyak::Opmask last_mask;  // the block's last panel: its columns inside N
};

// Where the rounding of fp32 -> bf16 without avx512_bf16 finds its dword constants
// (broadcast, in the caller's constant table).
struct Bf16RoundingConstants {
  Xbyak::Address one;   // dword 1
  Xbyak::Address bias;  // dword 0x7fff
};

class ZmmOutput {
 public:
  // native_bf16: convert fp32 -> bf16 with vcvtneps2bf16 (avx512_bf16), else by integer
  // rounding through Bf16RoundingConstants; both round to nearest even.
  ZmmOutput(Xbyak::CodeGenerator& code, const OpDesc& desc, bool native_bf16)
      : code_(code), desc_(desc), native_bf16_(native_bf16) {}

  // Bias, conversion to desc.out, stores of rows x panels outputs, desc.n outputs apart;
  // columns outside the masks are neither read from bias nor written to y.
  // Register contract: reads the running sums, the masks and [bias], writes [y]; clobbers
  // value and rounded; bias and y are not changed.
  void emit_output(const ZmmOutputRegisters& reg, const Xbyak::Reg64& bias, const Xbyak::Reg64& y,
                   const Bf16RoundingConstants& rounding) const;
  // A part of a split K: the running sums as they are, all 16 columns of every panel (the
  // partial rows are padded to whole panels, partial_row_floats apart), no bias; the launcher
  // reduces the parts.
  // Register contract: reads the running sums, writes [y]; clobbers nothing.
  void emit_partial_output(const ZmmOutputRegisters& reg, const Xbyak::Reg64& y, int64_t partial_row_floats) const;

 private:
  Xbyak::CodeGenerator& code_;
  OpDesc desc_;
  bool native_bf16_;
};

}  // namespace lowbit::x86
