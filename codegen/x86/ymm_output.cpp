#include "codegen/x86/ymm_output.h"

#include <algorithm>
#include <cstddef>

#include "codegen/x86/block_program.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Reg64;
using Xbyak::Xmm;
using Xbyak::Ymm;
using Xbyak::util::ptr;
using Xbyak::util::qword;
using Xbyak::util::rip;

constexpr int half_width = native_panel_width / 2;  // columns per ymm of fp32

}  // namespace

void YmmOutput::emit_constants() {
  auto splat = [&](Xbyak::Label& label, uint32_t value) {
    code_.align(32);
    code_.L(label);
    for (int lane = 0; lane < 8; ++lane) code_.dd(value);
  };
  splat(rounding_one_, 1);
  splat(rounding_bias_, 0x7fff);
  code_.align(32);
  code_.L(tail_masks_);
  for (int lane = 0; lane < 16; ++lane) code_.dd(lane < 8 ? 0xffffffffu : 0);
}

void YmmOutput::emit_output(const YmmOutputRegisters& reg, const Reg64& args, const Reg64& bias, const Reg64& y) const {
  Xbyak::CodeGenerator& c = code_;
  const int tail_columns = static_cast<int>(desc_.n % native_panel_width);
  if (tail_columns == 0) {
    emit_stores(reg, bias, y, native_panel_width);
    return;
  }
  // Only the block that holds the matrix's last panel takes the tail path.
  Xbyak::Label tail, done;
  c.cmp(qword[args + offsetof(BlockArgs, last_panel_mask)], 0xffff);
  c.jne(tail, Xbyak::CodeGenerator::T_NEAR);
  emit_stores(reg, bias, y, native_panel_width);
  c.jmp(done, Xbyak::CodeGenerator::T_NEAR);
  c.L(tail);
  emit_stores(reg, bias, y, tail_columns);
  c.L(done);
}

void YmmOutput::emit_stores(const YmmOutputRegisters& reg, const Reg64& bias, const Reg64& y, int tail_columns) const {
  Xbyak::CodeGenerator& c = code_;
  const int act_bytes = dtype_bytes(desc_.act);
  const int out_bytes = dtype_bytes(desc_.out);
  auto columns_of = [&](int panel, int half) {
    const int columns = panel == reg.panels - 1 ? tail_columns : native_panel_width;
    return std::clamp(columns - half * half_width, 0, half_width);
  };
  auto load_lane_mask = [&](int columns) {
    c.vmovups(reg.mask, ptr[rip + tail_masks_ + (half_width - columns) * 4]);
  };
  // The 16-byte half of `value` that holds a half-panel of bf16/fp16.
  const Xmm narrow = Xmm(reg.value.getIdx());
  if (desc_.bias) {
    for (int panel = 0; panel < reg.panels; ++panel)
      for (int half = 0; half < 2; ++half) {
        const int columns = columns_of(panel, half);
        if (columns == 0) continue;
        const auto address = bias + (panel * native_panel_width + half * half_width) * act_bytes;
        if (desc_.act == DType::fp32) {
          if (columns == half_width) {
            c.vmovups(reg.value, ptr[address]);
          } else {
            load_lane_mask(columns);
            c.vmaskmovps(reg.value, reg.mask, ptr[address]);
          }
        } else {
          if (columns == half_width) {
            c.vmovdqu(narrow, ptr[address]);
          } else {
            c.vpxor(narrow, narrow, narrow);
            for (int column = 0; column < columns; ++column)
              c.vpinsrw(narrow, narrow, ptr[address + column * 2], column);
          }
          if (desc_.act == DType::fp16) {
            c.vcvtph2ps(reg.value, narrow);
          } else {
            c.vpmovzxwd(reg.value, narrow);
            c.vpslld(reg.value, reg.value, 16);
          }
        }
        for (int row = 0; row < reg.rows; ++row) c.vaddps(reg.sum(row, panel, half), reg.sum(row, panel, half), reg.value);
      }
  }
  const int64_t y_row_bytes = desc_.n * out_bytes;
  for (int row = 0; row < reg.rows; ++row)
    for (int panel = 0; panel < reg.panels; ++panel)
      for (int half = 0; half < 2; ++half) {
        const int columns = columns_of(panel, half);
        if (columns == 0) continue;
        const auto address = y + row * y_row_bytes + (panel * native_panel_width + half * half_width) * out_bytes;
        const Ymm sum = reg.sum(row, panel, half);
        if (desc_.out == DType::fp32) {
          if (columns == half_width) {
            c.vmovups(ptr[address], sum);
          } else {
            load_lane_mask(columns);
            c.vmaskmovps(ptr[address], reg.mask, sum);
          }
          continue;
        }
        if (desc_.out == DType::fp16) {
          c.vcvtps2ph(narrow, sum, 0);  // imm 0: round to nearest even
        } else {
          // bits + 0x7fff + ((bits >> 16) & 1), then the high half: round to nearest even.
          const Ymm& rounded = reg.rounded;
          c.vpsrld(rounded, sum, 16);
          c.vpand(rounded, rounded, ptr[rip + rounding_one_]);
          c.vpaddd(rounded, rounded, ptr[rip + rounding_bias_]);
          c.vpaddd(rounded, rounded, sum);
          c.vpsrld(rounded, rounded, 16);
          c.vextracti128(narrow, rounded, 1);
          c.vpackusdw(narrow, Xmm(rounded.getIdx()), narrow);  // every dword is <= 0xffff: no saturation
        }
        if (columns == half_width) {
          c.vmovdqu(ptr[address], narrow);
        } else {
          for (int column = 0; column < columns; ++column) c.vpextrw(ptr[address + column * 2], narrow, column);
        }
      }
}

void YmmOutput::emit_partial_output(const YmmOutputRegisters& reg, const Reg64& y, int64_t partial_row_floats) const {
  const int64_t row_bytes = partial_row_floats * 4;
  for (int row = 0; row < reg.rows; ++row)
    for (int panel = 0; panel < reg.panels; ++panel)
      for (int half = 0; half < 2; ++half)
        code_.vmovups(ptr[y + row * row_bytes + (panel * native_panel_width + half * half_width) * 4],
                      reg.sum(row, panel, half));
}

}  // namespace lowbit::x86
