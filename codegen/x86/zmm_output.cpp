#include "codegen/x86/zmm_output.h"

#include "lowbit/half.h"
#include "lowbit/native_layout.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Opmask;
using Xbyak::Reg64;
using Xbyak::Ymm;
using Xbyak::Zmm;
using Xbyak::util::ptr;
using Xbyak::util::T_z;

}  // namespace

void ZmmOutput::emit_output(const ZmmOutputRegisters& reg, const Reg64& bias, const Reg64& y,
                            const Bf16RoundingConstants& rounding) const {
  Xbyak::CodeGenerator& c = code_;
  const int64_t y_row_bytes = desc_.n * dtype_bytes(desc_.out);
  auto mask_of = [&](int panel) -> const Opmask& { return panel == reg.panels - 1 ? reg.last_mask : reg.full_mask; };
  const Zmm& value = reg.value;
  if (desc_.bias) {
    const int64_t bias_panel_bytes = native_panel_width * dtype_bytes(desc_.act);
    for (int panel = 0; panel < reg.panels; ++panel) {
      auto address = ptr[bias + panel * bias_panel_bytes];
      switch (desc_.act) {
        case DType::fp32: c.vmovups(value | mask_of(panel) | T_z, address); break;
        case DType::bf16:
          c.vpmovzxwd(value | mask_of(panel) | T_z, address);
          c.vpslld(value, value, 16);
          break;
        case DType::fp16: c.vcvtph2ps(value | mask_of(panel) | T_z, address); break;
      }
      for (int row = 0; row < reg.rows; ++row) c.vaddps(reg.sum(row, panel), reg.sum(row, panel), value);
    }
  }
  const int64_t y_panel_bytes = native_panel_width * dtype_bytes(desc_.out);
  const Ymm narrow = Ymm(value.getIdx());
  for (int row = 0; row < reg.rows; ++row) {
    for (int panel = 0; panel < reg.panels; ++panel) {
      auto address = ptr[y + row * y_row_bytes + panel * y_panel_bytes];
      const Zmm sum = reg.sum(row, panel);
      switch (desc_.out) {
        case DType::fp32: c.vmovups(address | mask_of(panel), sum); break;
        case DType::fp16:
          c.vcvtps2ph(narrow, sum, 0);  // imm 0: round to nearest even
          c.vmovdqu16(address | mask_of(panel), narrow);
          break;
        case DType::bf16:
          if (native_bf16_) {
            c.vcvtneps2bf16(narrow, sum);
            c.vmovdqu16(address | mask_of(panel), narrow);
          } else {
            // bits + 0x7fff + ((bits >> 16) & 1), then the high half: round to nearest even.
            const Zmm& rounded = reg.rounded;
            c.vpsrld(rounded, sum, 16);
            c.vpandd(rounded, rounded, rounding.one);
            c.vpaddd(rounded, rounded, rounding.bias);
            c.vpaddd(rounded, rounded, sum);
            c.vpsrld(rounded, rounded, 16);
            c.vpmovdw(address | mask_of(panel), rounded);
          }
          break;
      }
    }
  }
}

void ZmmOutput::emit_partial_output(const ZmmOutputRegisters& reg, const Reg64& y, int64_t partial_row_floats) const {
  const int64_t row_bytes = partial_row_floats * 4;
  for (int row = 0; row < reg.rows; ++row)
    for (int panel = 0; panel < reg.panels; ++panel)
      code_.vmovups(ptr[y + row * row_bytes + panel * native_panel_width * 4], reg.sum(row, panel));
}

}  // namespace lowbit::x86
