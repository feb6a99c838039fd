#include "codegen/x86/avx512_float_generator.h"

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

using Xbyak::Opmask;
using Xbyak::Reg64;
using Xbyak::Ymm;
using Xbyak::Zmm;

constexpr uint8_t and_or = 0xEA;  // vpternlogd truth table: (a & b) | c

// Bytes of one x element as the kernel reads it: bf16 pairs, or fp32 after conversion.
int kernel_x_bytes(X86Isa isa) { return isa == X86Isa::avx512_bf16 ? 2 : 4; }

// Zmm numbering of one block: final sums, then the group accumulators of each chain (A, B,
// and for small bf16 blocks C, D), all [row][panel]; constants and temporaries at the top of
// the register file.
struct Registers {
  int panels;
  int rows;
  int chains;  // group accumulators per cell (chains_for)
  Zmm sum(int row, int panel) const { return Zmm(row * panels + panel); }
  Zmm group(int chain, int row, int panel) const { return Zmm((1 + chain) * rows * panels + row * panels + panel); }
  Zmm group_a(int row, int panel) const { return group(0, row, panel); }
  Zmm group_b(int row, int panel) const { return group(1, row, panel); }
  static Zmm field_mask() { return Zmm(31); }  // the decoded field's bits, in both words
  static Zmm exponent() { return Zmm(30); }    // bf16 bits of the magic base, in both words
  static Zmm temp(int index) { return Zmm(29 - index); }  // temp(0..2); 3-bit: temp(0..4)
  static Zmm high_bit_mask() { return Zmm(24); }           // 3-bit: the high plane's bit
};

// Independent accumulator chains per cell. The bf16 flavour adds one vdpbf16ps per pair into
// a chain, so a block of few cells waits on the instruction's latency: at n1m1 (two chains)
// it ran at half the rate of n4m1 on weights in cache (docs/benchmarks.md). Four chains where
// the cells leave the registers (sum + 4 chains per cell below the constants: <= 4 cells).
// The fma flavour keeps A (even k) and B (odd k).
int chains_for(X86Isa isa, int cells) { return isa == X86Isa::avx512_bf16 && cells <= 4 ? 4 : 2; }
static_assert((1 + 4) * 4 <= 24, "four chains of four cells and their sums must stay below zmm24");

// The running sums, the temporaries the output emitter may clobber, and the column masks
// (k1: all 16 columns, k2: the columns of the block's last panel inside N).
ZmmOutputRegisters output_registers(const Registers& reg) {
  return {reg.panels, reg.rows, [reg](int row, int panel) { return reg.sum(row, panel); },
          Registers::temp(0), Registers::temp(1), Xbyak::util::k1, Xbyak::util::k2};
}

}  // namespace

struct Avx512FloatProgram::Block {
  int panels;
  int rows;
  Registers reg;
  Reg64 x;  // first row, first k of the current group's current step
  Reg64 w;  // first panel, current step
  int64_t panel_bytes;
  int64_t x_row_bytes;
  int k_per_step;  // native k_per_block
};

Avx512FloatProgram::Avx512FloatProgram(const OpDesc& desc, const X86Variant& variant)
    : BlockProgram(desc, variant), output_(*this, desc_, /*native_bf16=*/variant.isa == X86Isa::avx512_bf16) {
  if (variant.k_block > 0) {
    blocked_entries_.assign(static_cast<std::size_t>(variant.n_panels * variant.m_rows), 0);
    for (int panels = 1; panels <= variant.n_panels; ++panels)
      for (int rows = 1; rows <= variant.m_rows; ++rows) {
        blocked_entries_[static_cast<std::size_t>((panels - 1) * variant.m_rows + rows - 1)] = entry_offset();
        emit_blocked_function(panels, rows);
      }
  } else {
    emit_block_functions([&](int panels, int rows, const KRange& range) { emit_block_function(panels, rows, range); });
  }
  emit_constants();
  finalize();
}

AmxBlockedFunction Avx512FloatProgram::blocked(int panels, int rows) const {
  if (variant_.k_block == 0) throw Unsupported("blocked: the variant does not block K (k_block=0)");
  return function_at<AmxBlockedFunction>(
      blocked_entries_[static_cast<std::size_t>((panels - 1) * variant_.m_rows + rows - 1)]);
}

void Avx512FloatProgram::emit_constants() {
  align(64);
  L(constants_);
  // [0] the code offset (code_conversion.h), added to int/float zero points.
  dd(std::bit_cast<uint32_t>(code_offset(desc_.bits)));
  // [1] offset + 2^(bits-1): (offset + zero) for the implicit zero point of zero=none.
  dd(std::bit_cast<uint32_t>(code_offset(desc_.bits) + static_cast<float>(1 << (desc_.bits - 1))));
  // [2], [3]: round-to-nearest-even of fp32 -> bf16 by integer arithmetic (no AVX512_BF16).
  dd(1);
  dd(0x7fff);
}

// One block function: rows x panels outputs over the k of `range` (all of K, or a part of it
// written as fp32 partial sums).
//
// Register contract (per function): reads BlockArgs through the first argument; uses
// zmm0..zmm((1+chains)*rows*panels-1) for sums and group accumulators, zmm24..31 as temporaries and
// constants (Registers), k1 (all 16 columns), k2 (the last panel's columns), k3 (even
// words), k4 (odd words); general registers through StackFrame (callee-saved ones are saved).
void Avx512FloatProgram::emit_block_function(int panels, int rows, const KRange& range) {
  const NativeGeometry geometry = native_geometry(desc_);
  const int64_t groups = geometry.groups;  // of the scale table
  const int64_t sum_chunks = split_.sum_chunks;  // of a row of group_sums

  Xbyak::util::StackFrame frame(this, 1, 8);
  const Reg64& args = frame.p[0];
  const Reg64& scales = frame.t[2];
  const Reg64& zeros = frame.t[3];
  const Reg64& sums = frame.t[4];
  const Reg64& group_counter = frame.t[5];
  const Reg64& step_counter = frame.t[6];
  const Reg64& scratch = frame.t[7];
  const Block block{panels, rows, Registers{panels, rows, chains_for(variant_.isa, panels * rows)}, frame.t[0], frame.t[1], geometry.panel_bytes,
                    desc_.k * kernel_x_bytes(variant_.isa), static_cast<int>(geometry.k_per_block)};
  const Registers& reg = block.reg;

  mov(block.x, ptr[args + offsetof(BlockArgs, x)]);
  mov(sums, ptr[args + offsetof(BlockArgs, group_sums)]);
  mov(block.w, ptr[args + offsetof(BlockArgs, qweight)]);
  mov(scales, ptr[args + offsetof(BlockArgs, scales)]);
  mov(zeros, ptr[args + offsetof(BlockArgs, zeros)]);
  mov(scratch.cvt32(), 0xffff);
  kmovw(k1, scratch.cvt32());
  kmovw(k2, ptr[args + offsetof(BlockArgs, last_panel_mask)]);
  mov(scratch.cvt32(), 0x55555555);
  kmovd(k3, scratch.cvt32());
  mov(scratch.cvt32(), 0xaaaaaaaa);
  kmovd(k4, scratch.cvt32());
  if (desc_.bits != 8) {
    // The low plane's mask (2/4-bit: the only plane) and the magic exponent; 3-bit adds its
    // high plane's bit.
    mov(scratch.cvt32(), both_words(field_mask(desc_.bits, desc_.bits == 3 ? 2 : desc_.bits, 0)));
    vpbroadcastd(Registers::field_mask(), scratch.cvt32());
    mov(scratch.cvt32(), both_words(magic_bf16(desc_.bits)));
    vpbroadcastd(Registers::exponent(), scratch.cvt32());
  }
  if (desc_.bits == 3) {
    mov(scratch.cvt32(), both_words(field_mask(3, 1, 2)));
    vpbroadcastd(Registers::high_bit_mask(), scratch.cvt32());
  }

  for (int row = 0; row < rows; ++row)
    for (int panel = 0; panel < panels; ++panel) vpxord(reg.sum(row, panel), reg.sum(row, panel), reg.sum(row, panel));

  auto zero_accumulators = [&]() {
    for (int row = 0; row < rows; ++row)
      for (int panel = 0; panel < panels; ++panel) {
        for (int chain = 0; chain < reg.chains; ++chain)
          vpxord(reg.group(chain, row, panel), reg.group(chain, row, panel), reg.group(chain, row, panel));
      }
  };
  // Register contract: reads scales/zeros/sums at the current group, the group accumulators;
  // updates the running sums; clobbers temp(0), temp(1); advances scales/zeros/sums a group.
  auto group_epilogue = [&]() {
    for (int panel = 0; panel < panels; ++panel) {
      const int64_t table_panel_bytes = groups * native_panel_width * 2;  // scales/zeros per panel
      const Zmm scale = Registers::temp(0);
      const Zmm offset_zero = Registers::temp(1);  // (offset + zero) * scale
      vcvtph2ps(scale, ptr[scales + panel * table_panel_bytes]);
      if (desc_.zero == ZeroPoint::none) {
        vbroadcastss(offset_zero, ptr[rip + constants_ + 4]);
      } else {
        vcvtph2ps(offset_zero, ptr[zeros + panel * table_panel_bytes]);
        if (code_offset(desc_.bits) != 0) vaddps(offset_zero, offset_zero, ptr_b[rip + constants_]);
      }
      vmulps(offset_zero, offset_zero, scale);
      for (int row = 0; row < rows; ++row) {
        if (reg.chains == 4) {
          vaddps(reg.group(2, row, panel), reg.group(2, row, panel), reg.group(3, row, panel));
          vaddps(reg.group_b(row, panel), reg.group_b(row, panel), reg.group(2, row, panel));
        }
        vaddps(reg.group_a(row, panel), reg.group_a(row, panel), reg.group_b(row, panel));
        vfmadd231ps(reg.sum(row, panel), reg.group_a(row, panel), scale);
        vfnmadd231ps(reg.sum(row, panel), offset_zero, ptr_b[sums + row * sum_chunks * 4]);
      }
    }
    emit_table_prefetch(scales, desc_.zero == ZeroPoint::none ? nullptr : &zeros, panels);
    add(scales, native_panel_width * 2);
    add(zeros, native_panel_width * 2);
    add(sums, 4);
  };
  emit_k_loop({block.x, block.w, group_counter, step_counter}, kernel_x_bytes(variant_.isa), range,
              zero_accumulators, [&](int step, int valid_k) { emit_step(block, step, valid_k); }, group_epilogue);

  mov(scratch, ptr[args + offsetof(BlockArgs, bias)]);
  mov(sums, ptr[args + offsetof(BlockArgs, y)]);  // sums is no longer needed
  const ZmmOutputRegisters output = output_registers(reg);
  if (range.partial)
    output_.emit_partial_output(output, sums, split_.partial_row_floats);
  else
    output_.emit_output(output, scratch, sums, {ptr_b[rip + constants_ + 8], ptr_b[rip + constants_ + 12]});
  vzeroupper();
}

// The cache-blocked function of the scaled decode: one block of K (AmxBlockedArgs.chunks chunks
// of 32 k) of `rows` rows x `panels` panels. Per k pair, each panel's decoded row (16 columns x
// the pair, bf16 s*(q - zero)) is loaded once and meets every row's x pair, broadcast from x as
// given, once per row into a register (zmm30/31, alternating) that all the row's panels use:
// with a broadcast memory operand on every vdpbf16ps instead, this path was no faster than
// the unblocked kernels on the developer VM, with the register 1.1-1.5x faster (docs/benchmarks.md). rows x panels vdpbf16ps go into as many independent
// accumulators, enough to cover the instruction's latency (the candidates hold 16 or more). The accumulators
// start at zero (.first) or from the caller's fp32 scratch, and end in the scratch or, after
// the last block of K (.last), in y through ZmmOutput (bias, output dtype, masked stores).
//
// Register contract: reads AmxBlockedArgs through the first argument; zmm0..rows*panels-1 the
// accumulators [row][panel], the next `panels` zmm the decoded rows, zmm30 and zmm31 the x
// pairs, then the output emitter's; k1 (all 16 columns), k2 (the last panel's columns); general registers through
// StackFrame (callee-saved ones are saved).
void Avx512FloatProgram::emit_blocked_function(int panels, int rows) {
  constexpr int pair_row_bytes = 64;                       // one decoded pair row: 16 columns x 2 bf16
  constexpr int chunk_pairs = amx_chunk_k / 2;             // pair rows per panel per chunk
  constexpr int panel_chunk_bytes = chunk_pairs * pair_row_bytes;
  Xbyak::util::StackFrame frame(this, 1, 6);
  const Reg64& args = frame.p[0];
  const Reg64& x = frame.t[0];
  const Reg64& decoded = frame.t[1];
  const Reg64& accumulators = frame.t[2];
  const Reg64& chunk_counter = frame.t[3];
  const Reg64& bias = frame.t[4];
  const Reg64& y = frame.t[5];
  const Registers reg{panels, rows, 0};  // sum(row, panel): the accumulators
  auto decoded_row = [&](int panel) { return Zmm(rows * panels + panel); };
  const int64_t x_row_bytes = desc_.k * 2;
  auto accumulator_address = [&](int row, int panel) { return ptr[accumulators + (row * panels + panel) * 64]; };

  mov(x, ptr[args + offsetof(AmxBlockedArgs, x)]);
  mov(decoded, ptr[args + offsetof(AmxBlockedArgs, decoded)]);
  mov(accumulators, ptr[args + offsetof(AmxBlockedArgs, accumulators)]);
  mov(chunk_counter.cvt32(), 0xffff);
  kmovw(k1, chunk_counter.cvt32());
  kmovw(k2, ptr[args + offsetof(AmxBlockedArgs, last_panel_mask)]);

  Xbyak::Label resume;
  Xbyak::Label loop_start;
  cmp(qword[args + offsetof(AmxBlockedArgs, first)], 0);
  je(resume, T_NEAR);
  for (int row = 0; row < rows; ++row)
    for (int panel = 0; panel < panels; ++panel) vpxord(reg.sum(row, panel), reg.sum(row, panel), reg.sum(row, panel));
  jmp(loop_start, T_NEAR);
  L(resume);
  for (int row = 0; row < rows; ++row)
    for (int panel = 0; panel < panels; ++panel) vmovaps(reg.sum(row, panel), accumulator_address(row, panel));
  L(loop_start);

  Xbyak::Label chunk_loop;
  mov(chunk_counter, ptr[args + offsetof(AmxBlockedArgs, chunks)]);  // >= 1, the launcher's rule
  L(chunk_loop);
  for (int pair = 0; pair < chunk_pairs; ++pair) {
    for (int panel = 0; panel < panels; ++panel)
      vmovaps(decoded_row(panel), ptr[decoded + panel * panel_chunk_bytes + pair * pair_row_bytes]);
    for (int row = 0; row < rows; ++row) {
      const Zmm x_pair = row % 2 == 0 ? Zmm(30) : Zmm(31);
      vpbroadcastd(x_pair, ptr[x + row * x_row_bytes + pair * 4]);
      for (int panel = 0; panel < panels; ++panel) vdpbf16ps(reg.sum(row, panel), decoded_row(panel), x_pair);
    }
  }
  add(x, amx_chunk_k * 2);
  add(decoded, panels * panel_chunk_bytes);
  dec(chunk_counter);
  jnz(chunk_loop, T_NEAR);

  Xbyak::Label keep;
  Xbyak::Label done;
  cmp(qword[args + offsetof(AmxBlockedArgs, last)], 0);
  je(keep, T_NEAR);
  mov(bias, ptr[args + offsetof(AmxBlockedArgs, bias)]);
  mov(y, ptr[args + offsetof(AmxBlockedArgs, y)]);
  output_.emit_output({panels, rows, [reg](int row, int panel) { return reg.sum(row, panel); }, Zmm(30), Zmm(31),
                       k1, k2},
                      bias, y, {ptr_b[rip + constants_ + 8], ptr_b[rip + constants_ + 12]});
  jmp(done, T_NEAR);
  L(keep);
  for (int row = 0; row < rows; ++row)
    for (int panel = 0; panel < panels; ++panel) vmovaps(accumulator_address(row, panel), reg.sum(row, panel));
  L(done);
  vzeroupper();
}

// Register contract: reads one step of every panel of the block ([w], [x]) and prefetches
// ahead of it (variant.prefetch); adds into the group accumulators; clobbers the temporaries. valid_k < k_per_block only for the last,
// partial step of K (group=-1): k beyond it are neither decoded nor read from x.
void Avx512FloatProgram::emit_step(const Block& block, int step, int valid_k) {
  emit_weight_prefetch(block.w, block.panels, step);
  for (int panel = 0; panel < block.panels; ++panel) {
    switch (desc_.bits) {
      case 3: decode_3bit(block, panel, step, valid_k); break;
      case 8: decode_8bit(block, panel, step, valid_k); break;
      default: decode_fields(block, panel, step, valid_k); break;
    }
  }
}

// 2- and 4-bit: one 32-byte block per step, field f of each word is the pair (k0+2f, k0+2f+1).
//
// Register contract: reads 32 bytes at the step; temp(0) holds the widened words, temp(1)
// the shifted field; consume_pair may clobber temp(2). The field that needs no shift (4-bit:
// 0, 2-bit: 2) is decoded last, in place in temp(0).
void Avx512FloatProgram::decode_fields(const Block& block, int panel, int step, int valid_k) {
  const int bits = desc_.bits;
  const int fields = 8 / bits;
  const Zmm words = Registers::temp(0);
  vpmovzxbw(words, ptr[block.w + panel * block.panel_bytes + step * native_block_bytes]);
  int in_place = -1;
  for (int field = 0; field < fields; ++field) {
    if (2 * field >= valid_k) continue;
    const int shift = field_shift(bits, bits, field, 0);
    if (shift == 0) {
      in_place = field;
      continue;
    }
    const Zmm pairs = Registers::temp(1);
    if (shift > 0) vpsllw(pairs, words, shift);
    if (shift < 0) vpsrlw(pairs, words, -shift);
    vpternlogd(pairs, Registers::field_mask(), Registers::exponent(), and_or);
    consume_pair(block, panel, step, field, pairs, Registers::temp(2), valid_k);
  }
  if (in_place >= 0) {
    vpternlogd(words, Registers::field_mask(), Registers::exponent(), and_or);
    consume_pair(block, panel, step, in_place, words, Registers::temp(2), valid_k);
  }
}

// 3-bit: per 16 k, two 2-bit blocks of the low bits (pairs 0-3, then 4-7) and one 1-bit block
// of the high bits (bit p of each word: pair p). Pair p is
//   ((low_words >> ...) & low mask) | ((high_words << ...) & high bit) | exponent.
//
// Register contract: reads 96 bytes at the step; temp(0) high-plane words, temp(1) low-plane
// words, temp(2) shifted high bit, temp(3) the pair; consume_pair may clobber temp(4);
// reads high_bit_mask, field_mask, exponent.
void Avx512FloatProgram::decode_3bit(const Block& block, int panel, int step, int valid_k) {
  const Zmm high_words = Registers::temp(0);
  const Zmm low_words = Registers::temp(1);
  const Zmm high_bit = Registers::temp(2);
  const Zmm pairs = Registers::temp(3);
  auto shifted = [&](const Zmm& dst, const Zmm& src, int shift) {
    if (shift > 0) vpsllw(dst, src, shift);
    if (shift < 0) vpsrlw(dst, src, -shift);
    if (shift == 0) vmovdqa64(dst, src);
  };
  const auto step_address = block.w + panel * block.panel_bytes + step * 3 * native_block_bytes;
  vpmovzxbw(high_words, ptr[step_address + 2 * native_block_bytes]);
  for (int pair = 0; pair < 8 && 2 * pair < valid_k; ++pair) {
    if (pair % 4 == 0) vpmovzxbw(low_words, ptr[step_address + pair / 4 * native_block_bytes]);
    shifted(high_bit, high_words, field_shift(3, 1, pair, 2));
    vpternlogd(high_bit, Registers::high_bit_mask(), Registers::exponent(), and_or);
    shifted(pairs, low_words, field_shift(3, 2, pair % 4, 0));
    vpternlogd(pairs, Registers::field_mask(), high_bit, and_or);
    consume_pair(block, panel, step, pair, pairs, Registers::temp(4), valid_k);
  }
}

// 8-bit: one 32-byte block of 2 k per step; byte 2j+h is q[j, k0+h]. Codes are converted as
// integers (code_conversion.h says why).
//
// Register contract: reads 32 bytes at the step; bf16 flavour: temp(0), temp(1) the codes as
// fp32 (bytes 0-15, 16-31), then temp(0) the bf16 pairs, temp(2) spare; fma flavour: temp(0)
// the widened words then the odd k, temp(1) the even k.
void Avx512FloatProgram::decode_8bit(const Block& block, int panel, int step, int valid_k) {
  const auto address = block.w + panel * block.panel_bytes + step * native_block_bytes;
  if (variant_.isa == X86Isa::avx512_bf16) {
    const Zmm low = Registers::temp(0);
    const Zmm high = Registers::temp(1);
    vpmovzxbd(low, ptr[address]);
    vpmovzxbd(high, ptr[address + 16]);
    vcvtdq2ps(low, low);
    vcvtdq2ps(high, high);
    vcvtne2ps2bf16(low, high, low);  // words 0-15 from the last operand: word i = byte i
    consume_pair(block, panel, step, 0, low, Registers::temp(2), valid_k);
    return;
  }
  const Zmm words = Registers::temp(0);
  const Zmm even = Registers::temp(1);
  vpmovzxbw(words, ptr[address]);  // dword j = q[j,k0] | q[j,k0+1] << 16
  vmovdqu16(even | k3 | T_z, words);
  vcvtdq2ps(even, even);
  consume_single(block, panel, step * 2, false, even);
  if (valid_k < 2) return;
  vpsrld(words, words, 16);
  vcvtdq2ps(words, words);
  consume_single(block, panel, step * 2 + 1, true, words);
}

// Multiplies the decoded pair `pair` of one panel with x and adds it into the group
// accumulators of every row: bf16 flavour, one vdpbf16ps per row (the chain by the pair's
// index within the unrolled body, modulo the chains); fma flavour, the low halves (even k) into A and the
// high halves (odd k) into B.
//
// Register contract: reads `pairs` (destroyed in the fma flavour) and x; may clobber `spare`.
void Avx512FloatProgram::consume_pair(const Block& block, int panel, int step, int pair, const Zmm& pairs,
                                      const Zmm& spare, int valid_k) {
  const int k_offset = step * block.k_per_step + 2 * pair;
  const bool partial = valid_k - 2 * pair == 1;  // only k_offset is inside K
  if (variant_.isa == X86Isa::avx512_bf16) {
    const int chain = (step * block.k_per_step / 2 + pair) % block.reg.chains;
    for (int row = 0; row < block.rows; ++row) {
      const Zmm accumulator = block.reg.group(chain, row, panel);
      const auto x_pair = block.x + row * block.x_row_bytes + k_offset * 2;
      if (partial) {
        vpbroadcastw(spare | k3 | T_z, ptr[x_pair]);  // (x[k], 0): the padded partner meets 0
        vdpbf16ps(accumulator, pairs, spare);
      } else {
        vdpbf16ps(accumulator, pairs, ptr_b[x_pair]);
      }
    }
    return;
  }
  vpslld(spare, pairs, 16);
  consume_single(block, panel, k_offset, false, spare);
  if (partial) return;
  vmovdqu16(pairs | k4 | T_z, pairs);
  consume_single(block, panel, k_offset + 1, true, pairs);
}

// fma flavour: adds values * x[k_offset] into accumulator A (or B) of every row.
// Register contract: reads `values` and x; writes the accumulators only.
void Avx512FloatProgram::consume_single(const Block& block, int panel, int k_offset, bool chain_b,
                                        const Zmm& values) {
  for (int row = 0; row < block.rows; ++row) {
    const Zmm accumulator = chain_b ? block.reg.group_b(row, panel) : block.reg.group_a(row, panel);
    vfmadd231ps(accumulator, values, ptr_b[block.x + row * block.x_row_bytes + k_offset * 4]);
  }
}

Validity Avx512FloatGenerator::is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  for (const char* feature : {"avx512f", "avx512bw", "avx512vl"})
    if (!cpu.has(feature)) return refuse(fmt::format("this CPU lacks {}", feature));
  if (!is_avx512(variant.isa) || computes_int8(variant.isa)) return refuse("the AVX-512 generator emits avx512_fma and avx512_bf16 only");
  if (variant.isa == X86Isa::avx512_bf16) {
    if (!cpu.has("avx512_bf16")) return refuse("this CPU lacks avx512_bf16");
    if (desc.act != DType::bf16) return refuse("the avx512_bf16 flavour needs act=bf16");
    // x * eq_scale would have to be rounded back to bf16 for vdpbf16ps: 2^-9 relative per
    // element, about 1e-3 on outputs, ten times the fp32 tolerance. The fma flavour folds the
    // scale into its fp32 conversion pass instead, exactly (one fp32 rounding).
    if (desc.eqscale) return refuse("eqscale=1 is computed by the avx512_fma flavour (exact fp32 scaling)");
  }
  if (variant.k_block != 0 || variant.scaled_decode != 0) return check_scaled_variant(desc, variant);
  return check_float_variant(desc, variant, max_block_cells(desc.bits), "32 zmm registers");
}

// The cache-blocked scaled decode's rules (the flavour, CPU and act are checked by is_valid).
Validity Avx512FloatGenerator::check_scaled_variant(const OpDesc& desc, const X86Variant& variant) {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (variant.isa != X86Isa::avx512_bf16)
    return refuse("only the avx512_bf16 flavour blocks K with scaled decode: avx512_fma needs k_block=0 and "
                  "scaled_decode=0");
  if (variant.k_block <= 0 || variant.scaled_decode != 1)
    return refuse(fmt::format("avx512_bf16 blocks K only with the scales folded into the decoded weights: k_block > 0 "
                              "needs scaled_decode=1 and scaled_decode=1 needs k_block > 0 (got k_block={}, "
                              "scaled_decode={})",
                              variant.k_block, variant.scaled_decode));
  if (desc.group == whole_k_group)
    return refuse("k_block > 0 needs group > 0 (a block of K is whole groups); group=-1 runs with k_block=0");
  if (desc.group % amx_chunk_k != 0)
    return refuse(fmt::format("k_block > 0 decodes 32 k at a time: the group ({}) must be a multiple of 32", desc.group));
  if (variant.k_block % desc.group != 0)
    return refuse(fmt::format("k_block={} must be a multiple of the group ({})", variant.k_block, desc.group));
  if (variant.k_unroll != 1) return refuse("the scaled decode's blocked functions step 32 k at a time: k_unroll must be 1");
  if (variant.split_k != 1) return refuse("the scaled decode does not split K: split_k must be 1");
  if (variant.prefetch != 0) return refuse("the scaled decode reads decoded weights from cache: prefetch must be 0");
  if (variant.n_panels < 1 || variant.m_rows < 1 || !scaled_block_fits(variant.n_panels, variant.m_rows))
    return refuse(fmt::format("register block {}x{} panels does not fit 32 zmm registers with scaled decode "
                              "(n_panels * m_rows + n_panels must be at most 30)",
                              variant.m_rows, variant.n_panels));
  return check_float_variant(desc, variant, 30, "32 zmm registers");
}

std::vector<std::pair<int, int>> Avx512FloatGenerator::scaled_blocks() { return {{2, 8}, {2, 12}, {3, 8}, {4, 6}}; }

std::vector<X86Variant> Avx512FloatGenerator::candidates(const OpDesc& desc, const CpuInfo& cpu,
                                                         int max_threads) const {
  std::vector<X86Isa> isas{X86Isa::avx512_fma};
  // With bf16 activations the pairwise dot product does half the instructions of the FMA
  // flavour and needs no conversion pass; where it exists it is the only one worth timing.
  if (desc.act == DType::bf16 && !desc.eqscale && cpu.has("avx512_bf16")) isas = {X86Isa::avx512_bf16};

  // Register blocks: for each width, the tallest block that fits the registers and M. Taller
  // blocks reuse each weight load across more rows; shorter ones only repeat loads.
  std::vector<std::pair<int, int>> blocks;  // (n_panels, m_rows)
  const int64_t m = desc.m == 0 ? any_m_rows : desc.m;
  for (int panels = 1; panels <= 4; ++panels) {
    int tallest = 1;
    for (int rows : {1, 2, 3, 4, 6, 8})
      if (panels * rows <= max_block_cells(desc.bits) && rows <= m) tallest = rows;
    blocks.emplace_back(panels, tallest);
  }
  std::vector<X86Variant> variants;
  for (X86Isa isa : isas)
    for (auto [panels, rows] : blocks)
      for (int unroll : candidate_unrolls(desc))
        for (int prefetch : candidate_prefetches(desc, isa, panels)) {
          X86Variant variant{isa, panels, rows, unroll, variant_threads(desc, max_threads)};
          variant.prefetch = prefetch;
          for (const X86Variant& split : with_splits(desc, variant, max_threads))
            if (is_valid(desc, split, cpu)) variants.push_back(split);
        }
  // The scaled decode: from scaled_min_rows rows on (not m=0: tuned at any_m_rows, too few rows
  // to share a decoded block of K), at AMX-BF16's k_blocks (whole groups, not longer than K).
  if (desc.m >= scaled_min_rows && isas.front() == X86Isa::avx512_bf16)
    for (auto [panels, rows] : scaled_blocks())
      for (int k_block : AmxBf16Generator::candidate_k_blocks(desc)) {
        if (k_block == 0 || rows > desc.m) continue;
        const X86Variant variant{X86Isa::avx512_bf16, panels, rows, 1, variant_threads(desc, max_threads), 1, k_block, 1};
        if (is_valid(desc, variant, cpu)) variants.push_back(variant);
      }
  return variants;
}

X86Variant Avx512FloatGenerator::heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const {
  const X86Isa isa = desc.act == DType::bf16 && !desc.eqscale && cpu.has("avx512_bf16") ? X86Isa::avx512_bf16
                                                                                       : X86Isa::avx512_fma;
  if (isa == X86Isa::avx512_bf16 && desc.m >= scaled_min_rows) {
    const std::vector<int> k_blocks = AmxBf16Generator::candidate_k_blocks(desc);
    const int k_block = std::find(k_blocks.begin(), k_blocks.end(), heuristic_scaled_k_block) != k_blocks.end()
                            ? heuristic_scaled_k_block
                            : k_blocks.back();
    const X86Variant scaled{isa, 4, 6, 1, variant_threads(desc, max_threads), 1, k_block, 1};
    if (k_block > 0 && is_valid(desc, scaled, cpu)) return scaled;
  }
  return heuristic_avx512_variant(desc, isa, 4, max_threads);
}

std::unique_ptr<Avx512FloatProgram> Avx512FloatGenerator::emit(const OpDesc& desc, const X86Variant& variant) const {
  return emit_valid<Avx512FloatProgram>(*this, desc, variant);
}

}  // namespace lowbit::x86
