#include "codegen/x86/avx2_float_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstddef>

#include <xbyak/xbyak_util.h>

#include "codegen/x86/code_conversion.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Reg64;
using Xbyak::Xmm;
using Xbyak::Ymm;

constexpr int half_width = native_panel_width / 2;  // columns per ymm of fp32
constexpr int half_bytes = native_block_bytes / 2;  // bytes of a block per half

// Ymm numbering of one block: per (row, panel, half) the running sum, then group
// accumulators A and B; temporaries count down from ymm15.
struct Registers {
  int panels;
  int rows;
  int cell(int row, int panel, int half) const { return (row * panels + panel) * 2 + half; }
  int cells() const { return rows * panels * 2; }
  Ymm sum(int row, int panel, int half) const { return Ymm(cell(row, panel, half)); }
  Ymm group_a(int row, int panel, int half) const { return Ymm(cells() + cell(row, panel, half)); }
  Ymm group_b(int row, int panel, int half) const { return Ymm(2 * cells() + cell(row, panel, half)); }
  static Ymm temp(int index) { return Ymm(15 - index); }  // temp(0..3); 3-bit: temp(0..4)
};

// The running sums and the temporaries the output emitter may clobber.
YmmOutputRegisters output_registers(const Registers& reg) {
  return {reg.panels, reg.rows, [reg](int row, int panel, int half) { return reg.sum(row, panel, half); },
          Registers::temp(0), Registers::temp(1), Registers::temp(2)};
}

}  // namespace

struct Avx2FloatProgram::Block {
  int panels;
  int rows;
  Registers reg;
  Reg64 x;  // first row, first k of the current group's current step (fp32)
  Reg64 w;  // first panel, current step
  int64_t panel_bytes;
  int64_t step_bytes;
  int64_t x_row_bytes;
  int k_per_step;
};

Avx2FloatProgram::Avx2FloatProgram(const OpDesc& desc, const X86Variant& variant)
    : BlockProgram(desc, variant), output_(*this, desc_) {
  emit_block_functions([&](int panels, int rows, const KRange& range) { emit_block_function(panels, rows, range); });
  emit_constants();
  finalize();
}

void Avx2FloatProgram::emit_constants() {
  auto splat = [&](Xbyak::Label& label, uint32_t value) {
    align(32);
    L(label);
    for (int lane = 0; lane < 8; ++lane) dd(value);
  };
  const int bits = desc_.bits;
  splat(code_offset_, std::bit_cast<uint32_t>(code_offset(bits)));
  splat(none_zero_, std::bit_cast<uint32_t>(code_offset(bits) + static_cast<float>(1 << (bits - 1))));
  splat(field_mask_, bits == 8 ? 0 : both_words(field_mask(bits, bits == 3 ? 2 : bits, 0)));
  splat(high_bit_mask_, bits == 3 ? both_words(field_mask(3, 1, 2)) : 0);
  splat(exponent_, bits == 8 ? 0 : both_words(magic_bf16(bits)));
  splat(high_words_, 0xffff0000u);
  splat(low_words_, 0x0000ffffu);
  output_.emit_constants();
}

// One block function: rows x panels outputs (each panel two 8-column halves) over the k of
// `range` (all of K, or a part of it written as fp32 partial sums).
//
// Register contract (per function): reads BlockArgs through the first argument; uses
// ymm0..ymm(6*rows*panels-1) for sums and group accumulators, ymm11..15 as temporaries;
// constants are memory operands; general registers through StackFrame.
void Avx2FloatProgram::emit_block_function(int panels, int rows, const KRange& range) {
  const NativeGeometry geometry = native_geometry(desc_);
  Xbyak::util::StackFrame frame(this, 1, 8);
  const Reg64& args = frame.p[0];
  const Reg64& scales = frame.t[2];
  const Reg64& zeros = frame.t[3];
  const Reg64& sums = frame.t[4];
  const Reg64& group_counter = frame.t[5];
  const Reg64& step_counter = frame.t[6];
  const Reg64& scratch = frame.t[7];
  const Block block{panels, rows, Registers{panels, rows}, frame.t[0], frame.t[1], geometry.panel_bytes,
                    geometry.step_bytes, desc_.k * 4, static_cast<int>(geometry.k_per_block)};
  const Registers& reg = block.reg;

  mov(block.x, ptr[args + offsetof(BlockArgs, x)]);
  mov(sums, ptr[args + offsetof(BlockArgs, group_sums)]);
  mov(block.w, ptr[args + offsetof(BlockArgs, qweight)]);
  mov(scales, ptr[args + offsetof(BlockArgs, scales)]);
  mov(zeros, ptr[args + offsetof(BlockArgs, zeros)]);
  for (int cell = 0; cell < reg.cells(); ++cell) vxorps(Ymm(cell), Ymm(cell), Ymm(cell));

  auto zero_accumulators = [&]() {
    for (int cell = reg.cells(); cell < 3 * reg.cells(); ++cell) vxorps(Ymm(cell), Ymm(cell), Ymm(cell));
  };
  auto emit_step = [&](int step, int valid_k) {
    for (int panel = 0; panel < panels; ++panel)
      for (int half = 0; half < 2; ++half) {
        switch (desc_.bits) {
          case 3: decode_3bit(block, panel, half, step, valid_k); break;
          case 8: decode_8bit(block, panel, half, step, valid_k); break;
          default: decode_fields(block, panel, half, step, valid_k); break;
        }
      }
  };
  emit_k_loop({block.x, block.w, group_counter, step_counter}, 4, range, zero_accumulators, emit_step,
              [&]() { emit_group_epilogue(block, scales, zeros, sums); });

  mov(scratch, ptr[args + offsetof(BlockArgs, bias)]);
  mov(sums, ptr[args + offsetof(BlockArgs, y)]);  // sums is no longer needed
  const YmmOutputRegisters output = output_registers(reg);
  if (range.partial)
    output_.emit_partial_output(output, sums, split_.partial_row_floats);
  else
    output_.emit_output(output, args, scratch, sums);
  vzeroupper();
}

// 2- and 4-bit: field f of each word of a half is the pair (k0+2f, k0+2f+1) of its 8 columns.
//
// Register contract: reads 16 bytes of the step; temp(0) the widened words, temp(1) the
// shifted field, consume_pair clobbers temp(2), temp(3). The field that needs no shift is
// decoded last, in place in temp(0).
void Avx2FloatProgram::decode_fields(const Block& block, int panel, int half, int step, int valid_k) {
  const int bits = desc_.bits;
  const Ymm words = Registers::temp(0);
  vpmovzxbw(words, ptr[block.w + panel * block.panel_bytes + step * block.step_bytes + half * half_bytes]);
  int in_place = -1;
  for (int field = 0; field < 8 / bits; ++field) {
    if (2 * field >= valid_k) continue;
    const int shift = field_shift(bits, bits, field, 0);
    if (shift == 0) {
      in_place = field;
      continue;
    }
    const Ymm pairs = Registers::temp(1);
    if (shift > 0) vpsllw(pairs, words, shift);
    if (shift < 0) vpsrlw(pairs, words, -shift);
    vpand(pairs, pairs, ptr[rip + field_mask_]);
    vpor(pairs, pairs, ptr[rip + exponent_]);
    consume_pair(block, panel, half, step, field, pairs, Registers::temp(2), Registers::temp(3), valid_k);
  }
  if (in_place >= 0) {
    vpand(words, words, ptr[rip + field_mask_]);
    vpor(words, words, ptr[rip + exponent_]);
    consume_pair(block, panel, half, step, in_place, words, Registers::temp(2), Registers::temp(3), valid_k);
  }
}

// 3-bit: pair p = low bits from field p mod 4 of low-bit block p / 4, high bit from bit p of
// the high-bit block (docs/layout.md).
//
// Register contract: reads 3 x 16 bytes of the step; temp(0) high-plane words, temp(1)
// low-plane words, temp(2) the high bit (then consume_pair's spare), temp(3) the pair,
// temp(4) x.
void Avx2FloatProgram::decode_3bit(const Block& block, int panel, int half, int step, int valid_k) {
  const Ymm high_words = Registers::temp(0);
  const Ymm low_words = Registers::temp(1);
  const Ymm high_bit = Registers::temp(2);
  const Ymm pairs = Registers::temp(3);
  // dst = (src shifted) & mask; a zero shift masks src directly (vpand does not overwrite it).
  auto shifted_field = [&](const Ymm& dst, const Ymm& src, int shift, const Xbyak::Label& mask) {
    if (shift > 0) vpsllw(dst, src, shift);
    if (shift < 0) vpsrlw(dst, src, -shift);
    vpand(dst, shift == 0 ? src : dst, ptr[rip + mask]);
  };
  const auto step_address = block.w + panel * block.panel_bytes + step * block.step_bytes + half * half_bytes;
  vpmovzxbw(high_words, ptr[step_address + 2 * native_block_bytes]);
  for (int pair = 0; pair < 8 && 2 * pair < valid_k; ++pair) {
    if (pair % 4 == 0) vpmovzxbw(low_words, ptr[step_address + pair / 4 * native_block_bytes]);
    shifted_field(high_bit, high_words, field_shift(3, 1, pair, 2), high_bit_mask_);
    shifted_field(pairs, low_words, field_shift(3, 2, pair % 4, 0), field_mask_);
    vpor(pairs, pairs, high_bit);
    vpor(pairs, pairs, ptr[rip + exponent_]);
    consume_pair(block, panel, half, step, pair, pairs, high_bit, Registers::temp(4), valid_k);
  }
}

// 8-bit: dword j of the widened half is q[j,k0] | q[j,k0+1] << 16, converted as integers.
//
// Register contract: reads 16 bytes of the step; temp(0) the words then the odd k, temp(1)
// the even k, temp(2) x.
void Avx2FloatProgram::decode_8bit(const Block& block, int panel, int half, int step, int valid_k) {
  const Ymm words = Registers::temp(0);
  const Ymm even = Registers::temp(1);
  vpmovzxbw(words, ptr[block.w + panel * block.panel_bytes + step * block.step_bytes + half * half_bytes]);
  vpand(even, words, ptr[rip + low_words_]);
  vcvtdq2ps(even, even);
  consume_single(block, panel, half, step * 2, false, even, Registers::temp(2));
  if (valid_k < 2) return;
  vpsrld(words, words, 16);
  vcvtdq2ps(words, words);
  consume_single(block, panel, half, step * 2 + 1, true, words, Registers::temp(2));
}

// Splits the bf16 pair into fp32 vectors (low half << 16: even k, into A; high half with the
// low one cleared: odd k, into B) and multiplies each with x. Skips the odd k beyond a K tail.
//
// Register contract: reads and destroys `pairs`; clobbers `spare` and `x_value`.
void Avx2FloatProgram::consume_pair(const Block& block, int panel, int half, int step, int pair, const Ymm& pairs,
                                    const Ymm& spare, const Ymm& x_value, int valid_k) {
  const int k_offset = step * block.k_per_step + 2 * pair;
  vpslld(spare, pairs, 16);
  consume_single(block, panel, half, k_offset, false, spare, x_value);
  if (valid_k - 2 * pair < 2) return;
  vpand(pairs, pairs, ptr[rip + high_words_]);
  consume_single(block, panel, half, k_offset + 1, true, pairs, x_value);
}

// Adds values * x[k_offset] into accumulator A (or B) of every row.
// Register contract: reads `values` and x; clobbers `x_value`.
void Avx2FloatProgram::consume_single(const Block& block, int panel, int half, int k_offset, bool chain_b,
                                      const Ymm& values, const Ymm& x_value) {
  for (int row = 0; row < block.rows; ++row) {
    vbroadcastss(x_value, ptr[block.x + row * block.x_row_bytes + k_offset * 4]);
    const Ymm accumulator = chain_b ? block.reg.group_b(row, panel, half) : block.reg.group_a(row, panel, half);
    vfmadd231ps(accumulator, values, x_value);
  }
}

// y += scale * (A + B) - scale * (offset + zero) * sum(x), per half, then the next group.
// Register contract: reads scales/zeros/sums at the current group and the accumulators;
// updates the running sums; clobbers temp(0..2); advances scales, zeros and sums.
void Avx2FloatProgram::emit_group_epilogue(const Block& block, const Reg64& scales, const Reg64& zeros,
                                           const Reg64& sums) {
  const int64_t groups = desc_.group_count();
  const int64_t table_panel_bytes = groups * native_panel_width * 2;  // scales/zeros per panel
  const int64_t sum_chunks = split_.sum_chunks;                       // group_sums per row
  const Ymm scale = Registers::temp(0);
  const Ymm offset_zero = Registers::temp(1);  // (offset + zero) * scale
  const Ymm group_sum = Registers::temp(2);
  for (int panel = 0; panel < block.panels; ++panel)
    for (int half = 0; half < 2; ++half) {
      const int64_t table_offset = panel * table_panel_bytes + half * half_width * 2;
      vcvtph2ps(scale, ptr[scales + table_offset]);
      if (desc_.zero == ZeroPoint::none) {
        vmovaps(offset_zero, ptr[rip + none_zero_]);
      } else {
        vcvtph2ps(offset_zero, ptr[zeros + table_offset]);
        if (code_offset(desc_.bits) != 0) vaddps(offset_zero, offset_zero, ptr[rip + code_offset_]);
      }
      vmulps(offset_zero, offset_zero, scale);
      for (int row = 0; row < block.rows; ++row) {
        const Ymm a = block.reg.group_a(row, panel, half);
        vaddps(a, a, block.reg.group_b(row, panel, half));
        vfmadd231ps(block.reg.sum(row, panel, half), a, scale);
        vbroadcastss(group_sum, ptr[sums + row * sum_chunks * 4]);
        vfnmadd231ps(block.reg.sum(row, panel, half), offset_zero, group_sum);
      }
    }
  add(scales, native_panel_width * 2);
  add(zeros, native_panel_width * 2);
  add(sums, 4);
}

Validity Avx2FloatGenerator::is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const {
  for (const char* feature : {"avx2", "fma", "f16c"})
    if (!cpu.has(feature)) return Validity{false, fmt::format("this CPU lacks {}", feature)};
  if (variant.isa != X86Isa::avx2_fma) return Validity{false, "the AVX2 generator emits the avx2_fma flavour only"};
  return check_float_variant(desc, variant, avx2_max_block_cells(desc.bits), "16 ymm registers");
}

std::vector<X86Variant> Avx2FloatGenerator::candidates(const OpDesc& desc, const CpuInfo& cpu,
                                                       int max_threads) const {
  const int64_t m = desc.m == 0 ? any_m_rows : desc.m;
  std::vector<X86Variant> variants;
  for (auto [panels, rows] : {std::pair{1, 1}, std::pair{2, 1}, std::pair{1, 2}}) {
    if (rows > m) continue;
    for (int unroll : candidate_unrolls(desc)) {
      const X86Variant variant{X86Isa::avx2_fma, panels, rows, unroll, variant_threads(desc, max_threads)};
      for (const X86Variant& split : with_splits(desc, variant, max_threads))
        if (is_valid(desc, split, cpu)) variants.push_back(split);
    }
  }
  return variants;
}

X86Variant Avx2FloatGenerator::heuristic(const OpDesc& desc, const CpuInfo&, int max_threads) const {
  // Two cells: two panels at M=1 (each weight load serves one row anyway), else two rows.
  const bool two_cells = avx2_max_block_cells(desc.bits) >= 2;
  return heuristic_variant(desc, X86Isa::avx2_fma, two_cells && desc.m == 1 ? 2 : 1, two_cells && desc.m != 1 ? 2 : 1,
                           max_threads);
}

std::unique_ptr<Avx2FloatProgram> Avx2FloatGenerator::emit(const OpDesc& desc, const X86Variant& variant) const {
  return emit_valid<Avx2FloatProgram>(*this, desc, variant);
}

}  // namespace lowbit::x86
