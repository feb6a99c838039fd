#include "codegen/x86/avx512_float_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <limits>

#include <xbyak/xbyak_util.h>

#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Opmask;
using Xbyak::Reg64;
using Xbyak::Ymm;
using Xbyak::Zmm;

constexpr int k_per_step = 4;            // int4: one 32-byte block = 16 columns x 4 k
constexpr int step_bytes = 32;
constexpr uint8_t and_or = 0xEA;         // vpternlogd truth table: (a & b) | c
constexpr float magic_offset = 128.0f;   // 0x4300|q as bf16 and 0x43000000|q<<16 as fp32 are 128+q

// Bytes of one x element as the kernel reads it: bf16 pairs, or fp32 after conversion.
int kernel_x_bytes(X86Isa isa) { return isa == X86Isa::avx512_bf16 ? 2 : 4; }

bool fits_displacement(int64_t bytes) { return bytes < std::numeric_limits<int32_t>::max() / 2; }

// Zmm numbering of one block: final sums, then group accumulators A and B, all
// [row][panel]; temporaries and constants at the top of the register file.
struct Registers {
  int panels;
  int rows;
  Zmm sum(int row, int panel) const { return Zmm(row * panels + panel); }
  Zmm group_a(int row, int panel) const { return Zmm(rows * panels + row * panels + panel); }
  Zmm group_b(int row, int panel) const { return Zmm(2 * rows * panels + row * panels + panel); }
  static Zmm temp0() { return Zmm(29); }
  static Zmm temp1() { return Zmm(28); }
  static Zmm temp2() { return Zmm(27); }
  static Zmm low_mask() { return Zmm(31); }
  static Zmm exponent() { return Zmm(30); }
};

}  // namespace

Avx512FloatProgram::Avx512FloatProgram(const OpDesc& desc, const X86Variant& variant)
    : JitGenerator(variant_name(desc, variant)), desc_(desc), variant_(variant) {
  entries_.resize(static_cast<std::size_t>(variant.n_panels * variant.m_rows));
  for (int panels = 1; panels <= variant.n_panels; ++panels)
    for (int rows = 1; rows <= variant.m_rows; ++rows) {
      entries_[(panels - 1) * variant.m_rows + rows - 1] = entry_offset();
      emit_block_function(panels, rows);
    }
  emit_constants();
  finalize();
}

BlockFunction Avx512FloatProgram::block(int panels, int rows) const {
  return function_at<BlockFunction>(entries_[(panels - 1) * variant_.m_rows + rows - 1]);
}

void Avx512FloatProgram::emit_constants() {
  align(64);
  L(constants_);
  // [0] 128.0f: the magic offset added to every code.
  dd(std::bit_cast<uint32_t>(magic_offset));
  // [1] 128 + 2^(bits-1): (128 + zero) for the implicit zero point of zero=none.
  dd(std::bit_cast<uint32_t>(magic_offset + static_cast<float>(1 << (desc_.bits - 1))));
  // [2], [3]: round-to-nearest-even of fp32 -> bf16 by integer arithmetic (no AVX512_BF16).
  dd(1);
  dd(0x7fff);
}

// One block function: rows x panels outputs, the whole of K.
//
// Register contract (per function): reads BlockArgs through the first argument; uses
// zmm0..zmm(3*rows*panels-1) for sums and group accumulators, zmm27..31 as temporaries
// and constants, k1 (all 16 columns), k2 (the last panel's columns), k3 (even words);
// general registers through StackFrame (callee-saved ones are saved).
void Avx512FloatProgram::emit_block_function(int panels, int rows) {
  const bool bf16_flavour = variant_.isa == X86Isa::avx512_bf16;
  const NativeGeometry geometry = native_geometry(desc_);
  const int64_t groups = geometry.groups;
  const int64_t panel_bytes = geometry.panel_bytes;
  const int64_t x_row_bytes = desc_.k * kernel_x_bytes(variant_.isa);
  const int64_t x_step_bytes = k_per_step * kernel_x_bytes(variant_.isa);
  const int64_t y_row_bytes = desc_.n * dtype_bytes(desc_.out);
  const int64_t table_panel_bytes = groups * native_panel_width * 2;  // scales/zeros per panel
  const int64_t sums_row_bytes = groups * 4;
  const int64_t steps_per_group = desc_.group_size() / k_per_step;
  const int k_tail = static_cast<int>(desc_.group_size() % k_per_step);  // only for group=-1
  const Registers reg{panels, rows};

  Xbyak::util::StackFrame frame(this, 1, 8);
  const Reg64& args = frame.p[0];
  const Reg64& x = frame.t[0];
  const Reg64& w = frame.t[1];
  const Reg64& scales = frame.t[2];
  const Reg64& zeros = frame.t[3];
  const Reg64& sums = frame.t[4];
  const Reg64& group_counter = frame.t[5];
  const Reg64& step_counter = frame.t[6];
  const Reg64& scratch = frame.t[7];

  mov(x, ptr[args + offsetof(BlockArgs, x)]);
  mov(sums, ptr[args + offsetof(BlockArgs, group_sums)]);
  mov(w, ptr[args + offsetof(BlockArgs, qweight)]);
  mov(scales, ptr[args + offsetof(BlockArgs, scales)]);
  mov(zeros, ptr[args + offsetof(BlockArgs, zeros)]);
  mov(scratch.cvt32(), 0xffff);
  kmovw(k1, scratch.cvt32());
  kmovw(k2, ptr[args + offsetof(BlockArgs, last_panel_mask)]);
  mov(scratch.cvt32(), 0x55555555);
  kmovd(k3, scratch.cvt32());
  mov(scratch.cvt32(), bf16_flavour ? 0x000f000f : 0x000f0000);
  vpbroadcastd(Registers::low_mask(), scratch.cvt32());
  mov(scratch.cvt32(), bf16_flavour ? 0x43004300 : 0x43000000);
  vpbroadcastd(Registers::exponent(), scratch.cvt32());

  for (int row = 0; row < rows; ++row)
    for (int panel = 0; panel < panels; ++panel) vpxord(reg.sum(row, panel), reg.sum(row, panel), reg.sum(row, panel));

  auto x_address = [&](int row, int64_t element) { return x + row * x_row_bytes + element * kernel_x_bytes(variant_.isa); };
  auto weight_address = [&](int panel, int step) { return w + panel * panel_bytes + step * step_bytes; };

  // Register contract: reads [w] step `step` of every panel and x; writes temp0..temp2 and the
  // group accumulators. valid_k < 4 only for the last, partial step of K (group=-1).
  auto emit_step = [&](int step, int valid_k) {
    for (int panel = 0; panel < panels; ++panel) {
      if (bf16_flavour) {
        const Zmm pairs_low = Registers::temp0();   // (k0, k0+1) as bf16 128+q
        const Zmm pairs_high = Registers::temp1();  // (k0+2, k0+3)
        vpmovzxbw(pairs_low, ptr[weight_address(panel, step)]);
        vpsrlw(pairs_high, pairs_low, 4);
        vpternlogd(pairs_low, Registers::low_mask(), Registers::exponent(), and_or);
        vpord(pairs_high, pairs_high, Registers::exponent());
        for (int row = 0; row < rows; ++row) {
          const int64_t k0 = step * k_per_step;
          if (valid_k >= 2) {
            vdpbf16ps(reg.group_a(row, panel), pairs_low, ptr_b[x_address(row, k0)]);
          } else {
            vpbroadcastw(Registers::temp2() | k3 | T_z, ptr[x_address(row, k0)]);
            vdpbf16ps(reg.group_a(row, panel), pairs_low, Registers::temp2());
          }
          if (valid_k == 4) {
            vdpbf16ps(reg.group_b(row, panel), pairs_high, ptr_b[x_address(row, k0 + 2)]);
          } else if (valid_k == 3) {
            vpbroadcastw(Registers::temp2() | k3 | T_z, ptr[x_address(row, k0 + 2)]);
            vdpbf16ps(reg.group_b(row, panel), pairs_high, Registers::temp2());
          }
        }
      } else {
        // Dword j of the zero-extended bytes holds q(k0) in bits 0-3, q(k0+2) in 4-7,
        // q(k0+1) in 16-19 and q(k0+3) in 20-23: shift each into bits 16-19, then OR the
        // exponent of 128.0f to get the fp32 number 128+q.
        const Zmm raw = Registers::temp2();
        vpmovzxbw(raw, ptr[weight_address(panel, step)]);
        struct Lane {
          int k_offset;
          int shift;  // >0: left, <0: right
          bool into_a;
        };
        const Lane lanes[4] = {{0, 16, true}, {2, 12, false}, {3, -4, true}, {1, 0, false}};
        for (const Lane& lane : lanes) {
          if (lane.k_offset >= valid_k) continue;
          Zmm value = lane.shift == 0 ? raw : (lane.k_offset % 2 == 0 ? Registers::temp0() : Registers::temp1());
          if (lane.shift > 0) vpslld(value, raw, lane.shift);
          if (lane.shift < 0) vpsrld(value, raw, -lane.shift);
          vpternlogd(value, Registers::low_mask(), Registers::exponent(), and_or);
          for (int row = 0; row < rows; ++row) {
            const Zmm accumulator = lane.into_a ? reg.group_a(row, panel) : reg.group_b(row, panel);
            vfmadd231ps(accumulator, value, ptr_b[x_address(row, step * k_per_step + lane.k_offset)]);
          }
        }
      }
    }
  };

  // Register contract: reads scales/zeros/sums at the current group, the group accumulators;
  // updates the running sums; clobbers temp0..temp2.
  auto emit_group_epilogue = [&]() {
    for (int panel = 0; panel < panels; ++panel) {
      const Zmm scale = Registers::temp0();
      const Zmm offset_zero = Registers::temp1();  // (128 + zero) * scale
      vcvtph2ps(scale, ptr[scales + panel * table_panel_bytes]);
      if (desc_.zero == ZeroPoint::none) {
        vbroadcastss(offset_zero, ptr[rip + constants_ + 4]);
      } else {
        vcvtph2ps(offset_zero, ptr[zeros + panel * table_panel_bytes]);
        vaddps(offset_zero, offset_zero, ptr_b[rip + constants_]);
      }
      vmulps(offset_zero, offset_zero, scale);
      for (int row = 0; row < rows; ++row) {
        vaddps(reg.group_a(row, panel), reg.group_a(row, panel), reg.group_b(row, panel));
        vfmadd231ps(reg.sum(row, panel), reg.group_a(row, panel), scale);
        vfnmadd231ps(reg.sum(row, panel), offset_zero, ptr_b[sums + row * sums_row_bytes]);
      }
    }
  };

  Xbyak::Label group_loop;
  mov(group_counter, groups);
  L(group_loop);
  for (int row = 0; row < rows; ++row)
    for (int panel = 0; panel < panels; ++panel) {
      vpxord(reg.group_a(row, panel), reg.group_a(row, panel), reg.group_a(row, panel));
      vpxord(reg.group_b(row, panel), reg.group_b(row, panel), reg.group_b(row, panel));
    }
  const int64_t unroll = std::min<int64_t>(variant_.k_unroll, std::max<int64_t>(steps_per_group, 1));
  const int64_t full_iterations = steps_per_group / unroll;
  const int64_t leftover_steps = steps_per_group % unroll;
  if (full_iterations > 0) {
    Xbyak::Label step_loop;
    mov(step_counter, full_iterations);
    L(step_loop);
    for (int step = 0; step < unroll; ++step) emit_step(step, k_per_step);
    add(x, static_cast<uint32_t>(unroll * x_step_bytes));
    add(w, static_cast<uint32_t>(unroll * step_bytes));
    dec(step_counter);
    jnz(step_loop, T_NEAR);
  }
  for (int step = 0; step < leftover_steps; ++step) emit_step(step, k_per_step);
  if (leftover_steps > 0) {
    add(x, static_cast<uint32_t>(leftover_steps * x_step_bytes));
    add(w, static_cast<uint32_t>(leftover_steps * step_bytes));
  }
  if (k_tail > 0) emit_step(0, k_tail);
  emit_group_epilogue();
  add(scales, native_panel_width * 2);
  add(zeros, native_panel_width * 2);
  add(sums, 4);
  dec(group_counter);
  jnz(group_loop, T_NEAR);

  // Epilogue: bias, conversion to the output dtype, masked stores (k2 on the last panel).
  const Reg64& bias = scratch;
  const Reg64& y = sums;  // sums is no longer needed
  mov(bias, ptr[args + offsetof(BlockArgs, bias)]);
  mov(y, ptr[args + offsetof(BlockArgs, y)]);
  auto mask_of = [&](int panel) -> const Opmask& { return panel == panels - 1 ? k2 : k1; };
  if (desc_.bias) {
    const int64_t bias_panel_bytes = native_panel_width * dtype_bytes(desc_.act);
    for (int panel = 0; panel < panels; ++panel) {
      const Zmm value = Registers::temp0();
      auto address = ptr[bias + panel * bias_panel_bytes];
      switch (desc_.act) {
        case DType::fp32: vmovups(value | mask_of(panel) | T_z, address); break;
        case DType::bf16:
          vpmovzxwd(value | mask_of(panel) | T_z, address);
          vpslld(value, value, 16);
          break;
        case DType::fp16: vcvtph2ps(value | mask_of(panel) | T_z, address); break;
      }
      for (int row = 0; row < rows; ++row) vaddps(reg.sum(row, panel), reg.sum(row, panel), value);
    }
  }
  const int64_t y_panel_bytes = native_panel_width * dtype_bytes(desc_.out);
  for (int row = 0; row < rows; ++row) {
    for (int panel = 0; panel < panels; ++panel) {
      auto address = ptr[y + row * y_row_bytes + panel * y_panel_bytes];
      const Zmm value = reg.sum(row, panel);
      const Ymm narrow = Ymm(Registers::temp0().getIdx());
      switch (desc_.out) {
        case DType::fp32: vmovups(address | mask_of(panel), value); break;
        case DType::fp16:
          vcvtps2ph(narrow, value, 0);  // imm 0: round to nearest even
          vmovdqu16(address | mask_of(panel), narrow);
          break;
        case DType::bf16:
          if (bf16_flavour) {
            vcvtneps2bf16(narrow, value);
            vmovdqu16(address | mask_of(panel), narrow);
          } else {
            // bits + 0x7fff + ((bits >> 16) & 1), then the high half: round to nearest even.
            const Zmm rounded = Registers::temp1();
            vpsrld(rounded, value, 16);
            vpandd(rounded, rounded, ptr_b[rip + constants_ + 8]);
            vpaddd(rounded, rounded, ptr_b[rip + constants_ + 12]);
            vpaddd(rounded, rounded, value);
            vpsrld(rounded, rounded, 16);
            vpmovdw(address | mask_of(panel), rounded);
          }
          break;
      }
    }
  }
  vzeroupper();
}

Validity Avx512FloatGenerator::is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (desc.device.kind != DeviceKind::cpu) return refuse("the x86 generator serves device=cpu only");
  if (desc.bits != 4) return refuse(fmt::format("bits={} is not generated yet (x86 covers bits=4)", desc.bits));
  if (desc.compute != Compute::floating)
    return refuse("compute=int8 is not generated yet on x86 (compute=float is)");
  if (desc.eqscale) return refuse("eqscale=1 is not generated yet on x86");
  if (desc.layout != Layout::native) return refuse("only layout=native is read by x86 kernels");
  for (const char* feature : {"avx512f", "avx512bw", "avx512vl"})
    if (!cpu.has(feature)) return refuse(fmt::format("this CPU lacks {}", feature));
  if (variant.isa == X86Isa::avx512_bf16) {
    if (!cpu.has("avx512_bf16")) return refuse("this CPU lacks avx512_bf16");
    if (desc.act != DType::bf16) return refuse("the avx512_bf16 flavour needs act=bf16");
  }
  if (variant.n_panels < 1 || variant.m_rows < 1 || variant.n_panels * variant.m_rows > max_block_cells)
    return refuse(fmt::format("register block {}x{} panels does not fit 32 zmm registers "
                              "(n_panels*m_rows must be 1..{})",
                              variant.m_rows, variant.n_panels, max_block_cells));
  if (variant.k_unroll < 1 || variant.k_unroll > 16) return refuse("k_unroll must be 1..16");
  if (variant.threads < 1) return refuse("threads must be >= 1");
  const NativeGeometry geometry = native_geometry(desc);
  const int64_t x_rows = static_cast<int64_t>(variant.m_rows) * desc.k * 4;
  const int64_t y_rows = static_cast<int64_t>(variant.m_rows) * desc.n * 4;
  if (!fits_displacement(geometry.panel_bytes * variant.n_panels) || !fits_displacement(x_rows) ||
      !fits_displacement(y_rows))
    return refuse("n or k is too large for 32-bit displacements in this register block");
  return {};
}

std::vector<X86Variant> Avx512FloatGenerator::candidates(const OpDesc& desc, const CpuInfo& cpu,
                                                         int max_threads) const {
  const NativeGeometry geometry = native_geometry(desc);
  const int64_t steps_per_group = std::max<int64_t>(desc.group_size() / k_per_step, 1);
  std::vector<X86Isa> isas{X86Isa::avx512_fma};
  // With bf16 activations the pairwise dot product does half the instructions of the FMA
  // flavour and needs no conversion pass; where it exists it is the only one worth timing.
  if (desc.act == DType::bf16 && cpu.has("avx512_bf16")) isas = {X86Isa::avx512_bf16};
  const int threads = std::max(1, std::min<int>(max_threads, static_cast<int>(geometry.panels)));

  // Register blocks: for each width, the tallest block that fits the registers and M. Taller
  // blocks reuse each weight load across more rows; shorter ones only repeat loads.
  std::vector<std::pair<int, int>> blocks;  // (n_panels, m_rows)
  const int64_t m = desc.m == 0 ? any_m_rows : desc.m;
  for (int panels = 1; panels <= 4; ++panels) {
    int tallest = 1;
    for (int rows : {1, 2, 3, 4, 6, 8})
      if (panels * rows <= max_block_cells && rows <= m) tallest = rows;
    blocks.emplace_back(panels, tallest);
  }
  std::vector<X86Variant> variants;
  for (X86Isa isa : isas)
    for (auto [panels, rows] : blocks)
      for (int unroll : {1, 2, 4}) {
        if (unroll > steps_per_group) continue;
        X86Variant variant{isa, panels, rows, unroll, threads};
        if (is_valid(desc, variant, cpu)) variants.push_back(variant);
      }
  return variants;
}

X86Variant Avx512FloatGenerator::heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const {
  const NativeGeometry geometry = native_geometry(desc);
  X86Variant variant;
  variant.isa = desc.act == DType::bf16 && cpu.has("avx512_bf16") ? X86Isa::avx512_bf16 : X86Isa::avx512_fma;
  if (desc.m == 1) {
    variant.n_panels = 4;
    variant.m_rows = 1;
  } else {
    variant.n_panels = 2;
    const int64_t m = desc.m == 0 ? any_m_rows : desc.m;
    variant.m_rows = static_cast<int>(std::min<int64_t>(m, 4));
  }
  variant.k_unroll = desc.group_size() >= 8 ? 2 : 1;
  variant.threads = std::max(1, std::min<int>(max_threads, static_cast<int>(geometry.panels)));
  return variant;
}

std::unique_ptr<Avx512FloatProgram> Avx512FloatGenerator::emit(const OpDesc& desc, const X86Variant& variant) const {
  Validity validity = is_valid(desc, variant, cpu_info());
  if (!validity) throw Unsupported(fmt::format("cannot emit {}: {}", variant_name(desc, variant), validity.reason));
  return std::make_unique<Avx512FloatProgram>(desc, variant);
}

}  // namespace lowbit::x86
