// The output end of an AVX2 block function, shared by the AVX2 float and int8 generators:
// bias, conversion to the output dtype and stores of fp32 running sums held as two 8-column
// ymm halves per 16-column panel, or (a part of a split K) the running sums as they are.
// AVX2 has no opmasks: the N tail of the block's last panel is stored with vmaskmovps (fp32)
// or word by word (vpextrw, bf16/fp16), and its bias loaded with vmaskmovps or vpinsrw.
#pragma once

#include <cstdint>
#include <functional>

#include <xbyak/xbyak.h>

#include "lowbit/descriptor.h"

namespace lowbit::x86 {

// What the emitter needs of a register block: its shape, where each fp32 running sum lives,
// and three ymm it may clobber (none of them a running sum).
struct YmmOutputRegisters {
  int panels;
  int rows;
  std::function<Xbyak::Ymm(int row, int panel, int half)> sum;
  Xbyak::Ymm value;    // the bias as fp32; its xmm: the narrowed output
  Xbyak::Ymm rounded;  // fp32 -> bf16 rounding
  Xbyak::Ymm mask;     // vmaskmovps lane mask of a tail half
};

class YmmOutput {
 public:
  YmmOutput(Xbyak::CodeGenerator& code, const OpDesc& desc) : code_(code), desc_(desc) {}

  // Bias, conversion to desc.out, stores of rows x panels outputs, desc.n outputs apart. When N
  // ends inside a panel, the stores of the block's last panel are emitted twice: whole, and a
  // tail path (taken at run time when BlockArgs.last_panel_mask is not full) on which the
  // columns outside N have neither their bias read nor their output written.
  // Register contract: reads the running sums, [args] (BlockArgs) and [bias], writes [y];
  // clobbers value, rounded and mask; args, bias and y are not changed.
  void emit_output(const YmmOutputRegisters& reg, const Xbyak::Reg64& args, const Xbyak::Reg64& bias,
                   const Xbyak::Reg64& y) const;
  // A part of a split K: the running sums as they are, all 16 columns of every panel (the
  // partial rows are padded to whole panels, partial_row_floats apart), no bias; the launcher
  // reduces the parts.
  // Register contract: reads the running sums, writes [y]; clobbers nothing.
  void emit_partial_output(const YmmOutputRegisters& reg, const Xbyak::Reg64& y, int64_t partial_row_floats) const;
  // The 32-byte constants emit_output reads rip-relative; emitted once, after the code.
  void emit_constants();

 private:
  // emit_output's stores; tail_columns: columns of the block's last panel inside N (16: all).
  // Register contract: as emit_output, without reading [args].
  void emit_stores(const YmmOutputRegisters& reg, const Xbyak::Reg64& bias, const Xbyak::Reg64& y,
                   int tail_columns) const;

  Xbyak::CodeGenerator& code_;
  OpDesc desc_;
  Xbyak::Label rounding_one_;   // dwords 1, and
  Xbyak::Label rounding_bias_;  // dwords 0x7fff: fp32 -> bf16 round to nearest even
  Xbyak::Label tail_masks_;     // 8 dwords -1 then 8 dwords 0: mask of the first c lanes at -4c
};

}  // namespace lowbit::x86
