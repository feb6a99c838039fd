#include "codegen/x86/avx512_vnni_int8_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <limits>

#include <xbyak/xbyak_util.h>

#include "codegen/x86/activation_quantizer.h"
#include "codegen/x86/int8_code_decoder.h"
#include "codegen/x86/int8_variant_checks.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"
#include "lowbit/reference.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Opmask;
using Xbyak::Reg64;
using Xbyak::Ymm;
using Xbyak::Zmm;

// Zmm numbering of one block: fp32 running sums, then int32 block accumulators, both
// [row][panel]; masks and temporaries at the top of the register file.
struct Registers {
  int panels;
  int rows;
  Zmm sum(int row, int panel) const { return Zmm(row * panels + panel); }
  Zmm accumulator(int row, int panel) const { return Zmm(rows * panels + row * panels + panel); }
  static Zmm code_mask() { return Zmm(31); }       // the low-bit field of every byte
  static Zmm high_bit_mask() { return Zmm(30); }   // 3-bit: bit 2 of every byte
  static Zmm temp(int index) { return Zmm(29 - index); }  // temp(0..4)
  static Int8DecoderRegisters decoder() {
    return {code_mask(), high_bit_mask(), {temp(0), temp(1), temp(2), temp(3), temp(4)}};
  }
};
static_assert(2 * int8_max_block_cells <= 24, "sums and accumulators must stay below the temporaries");

// The running sums, the temporaries the output emitter may clobber, and the column masks
// (k1: all 16 columns, k2: the columns of the block's last panel inside N).
ZmmOutputRegisters output_registers(const Registers& reg) {
  return {reg.panels, reg.rows, [reg](int row, int panel) { return reg.sum(row, panel); },
          Registers::temp(0), Registers::temp(1), Xbyak::util::k1, Xbyak::util::k2};
}

}  // namespace

struct Avx512VnniInt8Program::Block {
  int panels;
  int rows;
  Registers reg;
  Reg64 x;  // first row, first k of the current step (s8, row_bytes apart)
  Reg64 w;  // first panel, current step
  int64_t panel_bytes;
  int64_t x_row_bytes;
  Reg64 scales;   // fp16 scales of the first panel at the current group
  Reg64 zeros;    // fp16 zero points likewise (zero=int/float)
  Reg64 factors;  // Int8BlockFactors of the first row at the current activation block
  Reg64 step_counter;
};

Avx512VnniInt8Program::Avx512VnniInt8Program(const OpDesc& desc, const X86Variant& variant)
    : BlockProgram(desc, variant), output_(*this, desc_, /*native_bf16=*/false) {
  emit_block_functions([&](int panels, int rows, const KRange& range) { emit_block_function(panels, rows, range); });
  emit_constants();
  finalize();
}

void Avx512VnniInt8Program::emit_constants() {
  align(64);
  L(constants_);
  // [0] zero' of zero=none: the implicit zero point 2^(bits-1).
  dd(std::bit_cast<uint32_t>(static_cast<float>(1 << (desc_.bits - 1))));
  // [1], [2]: round-to-nearest-even of fp32 -> bf16 by integer arithmetic (VNNI CPUs need not
  // have AVX512_BF16).
  dd(1);
  dd(0x7fff);
}

// One block function: rows x panels outputs over the k of `range` (all of K, or a part of it
// written as fp32 partial sums; a part starts on an activation block).
//
// Register contract (per function): reads BlockArgs through the first argument (x: the
// quantized rows; group_sums: the Int8BlockFactors of the first row); uses
// zmm0..zmm(2*rows*panels-1) for sums and accumulators, zmm25..31 as masks and temporaries
// (Registers), k1 (all 16 columns), k2 (the last panel's columns); general registers through
// StackFrame (callee-saved ones are saved).
void Avx512VnniInt8Program::emit_block_function(int panels, int rows, const KRange& range) {
  const NativeGeometry geometry = native_geometry(desc_);
  const Int8ActivationLayout layout = int8_activation_layout(desc_);

  Xbyak::util::StackFrame frame(this, 1, 8);
  const Reg64& args = frame.p[0];
  const Reg64& scales = frame.t[2];
  const Reg64& zeros = frame.t[3];
  const Reg64& factors = frame.t[4];
  const Reg64& block_counter = frame.t[5];
  const Reg64& step_counter = frame.t[6];
  const Reg64& scratch = frame.t[7];
  const Block block{panels,   rows,   Registers{panels, rows}, frame.t[0], frame.t[1], geometry.panel_bytes,
                    layout.row_bytes, scales, zeros, factors, step_counter};
  const Registers& reg = block.reg;

  mov(block.x, ptr[args + offsetof(BlockArgs, x)]);
  mov(factors, ptr[args + offsetof(BlockArgs, group_sums)]);
  mov(block.w, ptr[args + offsetof(BlockArgs, qweight)]);
  mov(scales, ptr[args + offsetof(BlockArgs, scales)]);
  mov(zeros, ptr[args + offsetof(BlockArgs, zeros)]);
  mov(scratch.cvt32(), 0xffff);
  kmovw(k1, scratch.cvt32());
  kmovw(k2, ptr[args + offsetof(BlockArgs, last_panel_mask)]);
  Int8CodeDecoder(*this, desc_.bits, Registers::decoder()).emit_masks(scratch.cvt32());
  for (int row = 0; row < rows; ++row)
    for (int panel = 0; panel < panels; ++panel) vpxord(reg.sum(row, panel), reg.sum(row, panel), reg.sum(row, panel));

  const int64_t block_k = int8_block_size(desc_);
  const int64_t steps_per_block = block_k / geometry.k_per_block;  // every k_per_block divides 32 and 128
  const int64_t full_blocks = range.k / block_k;
  const int64_t range_steps = (range.k + geometry.k_per_block - 1) / geometry.k_per_block;
  const int64_t tail_steps = range_steps - full_blocks * steps_per_block;  // group=-1, last part only
  auto emit_activation_block = [&](int64_t steps) {
    for (int row = 0; row < rows; ++row)
      for (int panel = 0; panel < panels; ++panel)
        vpxord(reg.accumulator(row, panel), reg.accumulator(row, panel), reg.accumulator(row, panel));
    emit_steps(block, steps);
    emit_block_epilogue(block);
  };
  if (full_blocks > 0) {
    Xbyak::Label block_loop;
    mov(block_counter, full_blocks);
    L(block_loop);
    emit_activation_block(steps_per_block);
    dec(block_counter);
    jnz(block_loop, T_NEAR);
  }
  if (tail_steps > 0) emit_activation_block(tail_steps);

  mov(scratch, ptr[args + offsetof(BlockArgs, bias)]);
  mov(factors, ptr[args + offsetof(BlockArgs, y)]);  // factors are no longer needed
  const ZmmOutputRegisters output = output_registers(reg);
  if (range.partial)
    output_.emit_partial_output(output, factors, split_.partial_row_floats);
  else
    output_.emit_output(output, scratch, factors, {ptr_b[rip + constants_ + 4], ptr_b[rip + constants_ + 8]});
  vzeroupper();
}

// Emits `steps` steps, k_unroll of them per loop iteration, then the leftover ones.
// Register contract: reads and advances block.x (k bytes per step) and block.w (one step);
// clobbers block.step_counter and what emit_step clobbers.
void Avx512VnniInt8Program::emit_steps(const Block& block, int64_t steps) {
  const NativeGeometry geometry = native_geometry(desc_);
  emit_unrolled_steps(
      block.step_counter, steps, variant_.k_unroll, [&](int step) { emit_step(block, step); },
      [&](int64_t count) {
        add(block.x, static_cast<uint32_t>(count * geometry.k_per_block));
        add(block.w, static_cast<uint32_t>(count * geometry.step_bytes));
      });
}

// Register contract: reads one step of every panel ([w]), prefetching ahead of it
// (variant.prefetch), and the rows' xq at the step ([x]); adds into the accumulators; clobbers the temporaries. Codes past K are 0 (the packer's
// padding) and so is xq past K (the launcher's), so the last, partial step needs no mask.
// 8-bit: a step is 2 k, so each dword meets xq[k0..k0+3] with two codes and two zeros (xq is
// padded for the read past K).
void Avx512VnniInt8Program::emit_step(const Block& block, int step) {
  const NativeGeometry geometry = native_geometry(desc_);
  const Int8CodeDecoder decoder(*this, desc_.bits, Registers::decoder());
  emit_weight_prefetch(block.w, block.panels, step);
  for (int panel = 0; panel < block.panels; ++panel) {
    const int step_k = step * static_cast<int>(geometry.k_per_block);
    const Xbyak::RegExp step_address = block.w + panel * block.panel_bytes + step * geometry.step_bytes;
    auto consume_codes = [&](int k_offset, const Zmm& codes) { consume(block, panel, step_k + k_offset, codes); };
    if (desc_.bits == 8)
      decoder.decode_8bit_pair(step_address, consume_codes);
    else
      decoder.decode_step(step_address, consume_codes);
  }
}

// Adds codes . xq[k_offset .. k_offset+3] (u8 x s8, four products per lane) into the
// accumulator of every row. Register contract: reads `codes` and x; writes the accumulators.
void Avx512VnniInt8Program::consume(const Block& block, int panel, int k_offset, const Zmm& codes) {
  for (int row = 0; row < block.rows; ++row)
    vpdpbusd(block.reg.accumulator(row, panel), codes, ptr_b[block.x + row * block.x_row_bytes + k_offset],
             Xbyak::EvexEncoding);
}

// After each activation block: sum += scale * (acc * sx - zero' * sx * sum xq).
// Register contract: reads scales/zeros at the block's group, factors at the block, the
// accumulators; updates the running sums; clobbers temp(0..2); advances factors one block
// and, when the next block is the next group (group > 0), scales and zeros one group.
void Avx512VnniInt8Program::emit_block_epilogue(const Block& block) {
  const NativeGeometry geometry = native_geometry(desc_);
  const int64_t table_panel_bytes = geometry.groups * native_panel_width * 2;  // scales/zeros per panel
  const int64_t factor_row_bytes = int8_activation_layout(desc_).blocks * sizeof(Int8BlockFactors);
  for (int panel = 0; panel < block.panels; ++panel) {
    const Zmm scale = Registers::temp(0);
    const Zmm zero_scale = Registers::temp(1);  // zero' * scale
    const Zmm products = Registers::temp(2);
    vcvtph2ps(scale, ptr[block.scales + panel * table_panel_bytes]);
    if (desc_.zero == ZeroPoint::none)
      vbroadcastss(zero_scale, ptr[rip + constants_]);
    else
      vcvtph2ps(zero_scale, ptr[block.zeros + panel * table_panel_bytes]);
    vmulps(zero_scale, zero_scale, scale);
    for (int row = 0; row < block.rows; ++row) {
      const auto row_factors = block.factors + row * factor_row_bytes;
      vcvtdq2ps(products, block.reg.accumulator(row, panel));
      vmulps(products, products, scale);
      vfmadd231ps(block.reg.sum(row, panel), products, ptr_b[row_factors + offsetof(Int8BlockFactors, scale)]);
      vfnmadd231ps(block.reg.sum(row, panel), zero_scale,
                   ptr_b[row_factors + offsetof(Int8BlockFactors, scaled_sum)]);
    }
  }
  emit_table_prefetch(block.scales, desc_.zero == ZeroPoint::none ? nullptr : &block.zeros, block.panels);
  add(block.factors, static_cast<uint32_t>(sizeof(Int8BlockFactors)));
  if (desc_.group != whole_k_group) {
    add(block.scales, native_panel_width * 2);
    add(block.zeros, native_panel_width * 2);
  }
}

Validity Avx512VnniInt8Generator::is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  for (const char* feature : {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"})
    if (!cpu.has(feature)) return refuse(fmt::format("this CPU lacks {}", feature));
  if (variant.isa != X86Isa::avx512_vnni) return refuse("the AVX512-VNNI generator emits isa=avx512_vnni only");
  if (Validity common = check_int8_descriptor(desc, "avx512_vnni", "avx512 or avx2"); !common) return common;
  return check_int8_register_block(desc, variant, int8_max_block_cells, "32 zmm registers");
}

std::vector<X86Variant> Avx512VnniInt8Generator::candidates(const OpDesc& desc, const CpuInfo& cpu,
                                                            int max_threads) const {
  // Register blocks: for each width, the tallest block that fits the registers and M (taller
  // blocks reuse each decoded step across more rows).
  std::vector<std::pair<int, int>> blocks;  // (n_panels, m_rows)
  const int64_t m = desc.m == 0 ? any_m_rows : desc.m;
  for (int panels = 1; panels <= 4; ++panels) {
    int tallest = 1;
    for (int rows : {1, 2, 3, 4, 6, 8, 12})
      if (panels * rows <= int8_max_block_cells && rows <= m) tallest = rows;
    blocks.emplace_back(panels, tallest);
  }
  std::vector<X86Variant> variants;
  for (auto [panels, rows] : blocks)
    for (int unroll : candidate_unrolls(desc))
      for (int prefetch : candidate_prefetches(desc, X86Isa::avx512_vnni, panels)) {
        X86Variant variant{X86Isa::avx512_vnni, panels, rows, unroll, variant_threads(desc, max_threads)};
        variant.prefetch = prefetch;
        for (const X86Variant& split : with_splits(desc, variant, max_threads))
          if (is_valid(desc, split, cpu)) variants.push_back(split);
      }
  return variants;
}

X86Variant Avx512VnniInt8Generator::heuristic(const OpDesc& desc, const CpuInfo&, int max_threads) const {
  return heuristic_avx512_variant(desc, X86Isa::avx512_vnni, 6, max_threads);
}

std::unique_ptr<Avx512VnniInt8Program> Avx512VnniInt8Generator::emit(const OpDesc& desc,
                                                                     const X86Variant& variant) const {
  return emit_valid<Avx512VnniInt8Program>(*this, desc, variant);
}

}  // namespace lowbit::x86
