#include "codegen/x86/avx2_int8_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <limits>

#include <xbyak/xbyak_util.h>

#include "codegen/x86/activation_quantizer.h"
#include "codegen/x86/int8_variant_checks.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"
#include "lowbit/reference.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Reg64;
using Xbyak::Xmm;
using Xbyak::Ymm;

constexpr int half_width = native_panel_width / 2;  // columns per ymm of dwords
constexpr int half_bytes = native_block_bytes / 2;  // bytes of a block per half

// Ymm numbering of one block: per (row, panel, half) the fp32 running sum, then the int32
// accumulator of the current activation block; temporaries count down from ymm15.
struct Registers {
  int panels;
  int rows;
  int cell(int row, int panel, int half) const { return (row * panels + panel) * 2 + half; }
  int cells() const { return rows * panels * 2; }
  Ymm sum(int row, int panel, int half) const { return Ymm(cell(row, panel, half)); }
  Ymm accumulator(int row, int panel, int half) const { return Ymm(cells() + cell(row, panel, half)); }
  static Ymm temp(int index) { return Ymm(15 - index); }  // temp(0..6)
  // The decoders use temp(0..4); consume the last two.
  static Ymm x_value() { return temp(5); }
  static Ymm product() { return temp(6); }
};
static_assert(4 * avx2_int8_max_block_cells + 7 <= 16, "sums, accumulators and temporaries must fit 16 ymm");

// The running sums and the temporaries the output emitter may clobber.
YmmOutputRegisters output_registers(const Registers& reg) {
  return {reg.panels, reg.rows, [reg](int row, int panel, int half) { return reg.sum(row, panel, half); },
          Registers::temp(0), Registers::temp(1), Registers::temp(2)};
}

}  // namespace

struct Avx2Int8Program::Block {
  int panels;
  int rows;
  Registers reg;
  Reg64 x;  // first row, first k of the current step (s8, x_row_bytes apart)
  Reg64 w;  // first panel, current step
  int64_t panel_bytes;
  int64_t x_row_bytes;
  Reg64 scales;   // fp16 scales of the first panel at the current group
  Reg64 zeros;    // fp16 zero points likewise (zero=int/float)
  Reg64 factors;  // Int8BlockFactors of the first row at the current activation block
  Reg64 step_counter;
};

Avx2Int8Program::Avx2Int8Program(const OpDesc& desc, const X86Variant& variant)
    : BlockProgram(desc, variant), vnni_(variant.isa == X86Isa::avx2_vnni), output_(*this, desc_) {
  emit_block_functions([&](int panels, int rows, const KRange& range) { emit_block_function(panels, rows, range); });
  emit_constants();
  finalize();
}

void Avx2Int8Program::emit_constants() {
  auto splat = [&](Xbyak::Label& label, uint32_t value) {
    align(32);
    L(label);
    for (int lane = 0; lane < 8; ++lane) dd(value);
  };
  const int bits = desc_.bits;
  splat(none_zero_, std::bit_cast<uint32_t>(static_cast<float>(1 << (bits - 1))));
  splat(code_mask_, bits == 4 ? 0x0f0f0f0fu : bits == 8 ? 0u : 0x03030303u);
  splat(high_bit_mask_, 0x04040404u);
  splat(word_ones_, 0x00010001u);
  output_.emit_constants();
}

// One block function: rows x panels outputs (each panel two 8-column halves) over the k of
// `range` (all of K, or a part of it written as fp32 partial sums; a part starts on an
// activation block).
//
// Register contract (per function): reads BlockArgs through the first argument (x: the
// quantized rows; group_sums: the Int8BlockFactors of the first row); uses
// ymm0..ymm(4*rows*panels-1) for sums and accumulators, ymm9..15 as temporaries; constants are
// memory operands; general registers through StackFrame (callee-saved ones are saved).
void Avx2Int8Program::emit_block_function(int panels, int rows, const KRange& range) {
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
  for (int cell = 0; cell < reg.cells(); ++cell) vxorps(Ymm(cell), Ymm(cell), Ymm(cell));

  const int64_t block_k = int8_block_size(desc_);
  const int64_t steps_per_block = block_k / geometry.k_per_block;  // every k_per_block divides 32 and 128
  const int64_t full_blocks = range.k / block_k;
  const int64_t range_steps = (range.k + geometry.k_per_block - 1) / geometry.k_per_block;
  const int64_t tail_steps = range_steps - full_blocks * steps_per_block;  // group=-1, last part only
  auto emit_activation_block = [&](int64_t steps) {
    for (int cell = reg.cells(); cell < 2 * reg.cells(); ++cell) vpxor(Ymm(cell), Ymm(cell), Ymm(cell));
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
  const YmmOutputRegisters output = output_registers(reg);
  if (range.partial)
    output_.emit_partial_output(output, factors, split_.partial_row_floats);
  else
    output_.emit_output(output, args, scratch, factors);
  vzeroupper();
}

// Emits `steps` steps, k_unroll of them per loop iteration, then the leftover ones.
// Register contract: reads and advances block.x (k bytes per step) and block.w (one step);
// clobbers block.step_counter and what emit_step clobbers.
void Avx2Int8Program::emit_steps(const Block& block, int64_t steps) {
  const NativeGeometry geometry = native_geometry(desc_);
  emit_unrolled_steps(
      block.step_counter, steps, variant_.k_unroll, [&](int step) { emit_step(block, step); },
      [&](int64_t count) {
        add(block.x, static_cast<uint32_t>(count * geometry.k_per_block));
        add(block.w, static_cast<uint32_t>(count * geometry.step_bytes));
      });
}

// One step of every half-panel. Codes past K are 0 (the packer's padding) and so is xq past K
// (the launcher's), so the last, partial step needs no mask.
void Avx2Int8Program::emit_step(const Block& block, int step) {
  for (int panel = 0; panel < block.panels; ++panel)
    for (int half = 0; half < 2; ++half) {
      switch (desc_.bits) {
        case 3: decode_3bit(block, panel, half, step); break;
        case 8: decode_8bit(block, panel, half, step); break;
        default: decode_fields(block, panel, half, step); break;
      }
    }
}

// 2- and 4-bit, the zmm decoder's arithmetic (int8_code_decoder.cpp) on a half: dword j of the
// zero-extended words of the half holds bytes 2j (even k) and 2j+1 (odd k) of its column j, and
// quad p of codes is
//   ((dword >> 2*bits*p) | (dword << (16 - bits - 2*bits*p))) & (width mask in every byte).
// Register contract: reads 16 bytes of the step; temp(0) the dwords, temp(1) the codes,
// temp(2) the right-shifted dwords; consume clobbers x_value and product.
void Avx2Int8Program::decode_fields(const Block& block, int panel, int half, int step) {
  const int bits = desc_.bits;
  const NativeGeometry geometry = native_geometry(desc_);
  const Ymm dwords = Registers::temp(0);
  const Ymm codes = Registers::temp(1);
  const Ymm low = Registers::temp(2);
  vpmovzxwd(dwords, ptr[block.w + panel * block.panel_bytes + step * geometry.step_bytes + half * half_bytes]);
  for (int quad = 0; quad < 4 / bits; ++quad) {
    const int right = 2 * bits * quad;
    vpslld(codes, dwords, 16 - bits - right);
    if (right > 0) vpsrld(low, dwords, right);
    vpor(codes, codes, right > 0 ? low : dwords);
    vpand(codes, codes, ptr[rip + code_mask_]);
    consume(block, panel, half, step * static_cast<int>(geometry.k_per_block) + 4 * quad, codes);
  }
}

// 3-bit, as the zmm decoder: per 16 k two 2-bit blocks of the low bits (quads 0-1, then 2-3)
// and a 1-bit block of the high bits, quad p's high bits moved to bit 2 of its four bytes by
//   ((dword << (2 - 2p)) | (dword << (17 - 2p))) & 0x04040404   (a negative shift: right).
// Register contract: reads 3 x 16 bytes of the step; temp(0) high-plane dwords, temp(1)
// low-plane dwords, temp(2) shifted bits, temp(3) high bits, temp(4) the codes; consume
// clobbers x_value and product.
void Avx2Int8Program::decode_3bit(const Block& block, int panel, int half, int step) {
  const NativeGeometry geometry = native_geometry(desc_);
  const Ymm high_dwords = Registers::temp(0);
  const Ymm low_dwords = Registers::temp(1);
  const Ymm shifted = Registers::temp(2);
  const Ymm high_bits = Registers::temp(3);
  const Ymm codes = Registers::temp(4);
  const auto address = block.w + panel * block.panel_bytes + step * geometry.step_bytes + half * half_bytes;
  vpmovzxwd(high_dwords, ptr[address + 2 * native_block_bytes]);
  for (int quad = 0; quad < 4; ++quad) {
    const int low_quad = quad % 2;
    if (low_quad == 0) vpmovzxwd(low_dwords, ptr[address + quad / 2 * native_block_bytes]);
    vpslld(codes, low_dwords, 14 - 4 * low_quad);
    if (low_quad > 0) vpsrld(shifted, low_dwords, 4 * low_quad);
    vpor(codes, codes, low_quad > 0 ? shifted : low_dwords);
    vpand(codes, codes, ptr[rip + code_mask_]);
    const int shift = 2 - 2 * quad;
    if (shift > 0) vpslld(shifted, high_dwords, shift);
    if (shift < 0) vpsrld(shifted, high_dwords, -shift);
    vpslld(high_bits, high_dwords, 17 - 2 * quad);
    vpor(high_bits, high_bits, shift == 0 ? high_dwords : shifted);
    vpand(high_bits, high_bits, ptr[rip + high_bit_mask_]);
    vpor(codes, codes, high_bits);
    consume(block, panel, half, step * static_cast<int>(geometry.k_per_block) + 4 * quad, codes);
  }
}

// 8-bit, one step (2 k) of a half: avx2_vnni zero-extends words to dwords (dword j =
// q[j,k0], q[j,k0+1], 0, 0: the zero bytes meet xq[k0+2], xq[k0+3], which the padded rows
// hold), avx2_int8 bytes to words (dword j = the same two codes as words).
// Register contract: reads 16 bytes of the step; temp(0) the codes; consume clobbers x_value
// and product.
void Avx2Int8Program::decode_8bit(const Block& block, int panel, int half, int step) {
  const NativeGeometry geometry = native_geometry(desc_);
  const Ymm codes = Registers::temp(0);
  const auto address = ptr[block.w + panel * block.panel_bytes + step * geometry.step_bytes + half * half_bytes];
  if (vnni_)
    vpmovzxwd(codes, address);
  else
    vpmovzxbw(codes, address);
  consume(block, panel, half, step * static_cast<int>(geometry.k_per_block), codes);
}

// Adds codes . xq[k_offset ..] into the half's accumulator of every row: four u8 x s8
// products per dword (8-bit avx2_int8: two u16 x s16).
// Register contract: reads `codes` and x; writes the accumulators; clobbers x_value, product.
void Avx2Int8Program::consume(const Block& block, int panel, int half, int k_offset, const Ymm& codes) {
  const Ymm x_value = Registers::x_value();
  const Ymm product = Registers::product();
  for (int row = 0; row < block.rows; ++row) {
    const Ymm accumulator = block.reg.accumulator(row, panel, half);
    const auto x_address = block.x + row * block.x_row_bytes + k_offset;
    if (vnni_) {
      vpbroadcastd(x_value, dword[x_address]);
      vpdpbusd(accumulator, codes, x_value, Xbyak::VexEncoding);
      continue;
    }
    if (desc_.bits == 8) {
      // (xq[k0], xq[k0+1]) in every dword as two sign-extended words.
      vpbroadcastw(Xmm(x_value.getIdx()), word[x_address]);
      vpmovsxbw(x_value, Xmm(x_value.getIdx()));
      vpmaddwd(product, codes, x_value);
    } else {
      vpbroadcastd(x_value, dword[x_address]);
      vpmaddubsw(product, codes, x_value);  // pairs of u8 x s8 to s16: |pair| <= 2 * 15 * 127
      vpmaddwd(product, product, ptr[rip + word_ones_]);
    }
    vpaddd(accumulator, accumulator, product);
  }
}

// After each activation block: sum += scale * (acc * sx - zero' * sx * sum xq), the AVX512-VNNI
// generator's operations per half.
// Register contract: reads scales/zeros at the block's group, factors at the block, the
// accumulators; updates the running sums; clobbers temp(0..3); advances factors one block and,
// when the next block is the next group (group > 0), scales and zeros one group.
void Avx2Int8Program::emit_block_epilogue(const Block& block) {
  const NativeGeometry geometry = native_geometry(desc_);
  const int64_t table_panel_bytes = geometry.groups * native_panel_width * 2;  // scales/zeros per panel
  const int64_t factor_row_bytes = int8_activation_layout(desc_).blocks * sizeof(Int8BlockFactors);
  const Ymm scale = Registers::temp(0);
  const Ymm zero_scale = Registers::temp(1);  // zero' * scale
  const Ymm products = Registers::temp(2);
  const Ymm factor = Registers::temp(3);
  for (int panel = 0; panel < block.panels; ++panel)
    for (int half = 0; half < 2; ++half) {
      const int64_t table_offset = panel * table_panel_bytes + half * half_width * 2;
      vcvtph2ps(scale, ptr[block.scales + table_offset]);
      if (desc_.zero == ZeroPoint::none)
        vmovaps(zero_scale, ptr[rip + none_zero_]);
      else
        vcvtph2ps(zero_scale, ptr[block.zeros + table_offset]);
      vmulps(zero_scale, zero_scale, scale);
      for (int row = 0; row < block.rows; ++row) {
        const auto row_factors = block.factors + row * factor_row_bytes;
        const Ymm sum = block.reg.sum(row, panel, half);
        vcvtdq2ps(products, block.reg.accumulator(row, panel, half));
        vmulps(products, products, scale);
        vbroadcastss(factor, dword[row_factors + offsetof(Int8BlockFactors, scale)]);
        vfmadd231ps(sum, products, factor);
        vbroadcastss(factor, dword[row_factors + offsetof(Int8BlockFactors, scaled_sum)]);
        vfnmadd231ps(sum, zero_scale, factor);
      }
    }
  add(block.factors, static_cast<uint32_t>(sizeof(Int8BlockFactors)));
  if (desc_.group != whole_k_group) {
    add(block.scales, native_panel_width * 2);
    add(block.zeros, native_panel_width * 2);
  }
}

Validity Avx2Int8Generator::is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  for (const char* feature : {"avx2", "fma", "f16c"})
    if (!cpu.has(feature)) return refuse(fmt::format("this CPU lacks {}", feature));
  if (variant.isa != X86Isa::avx2_vnni && variant.isa != X86Isa::avx2_int8)
    return refuse("the AVX2 int8 generator emits isa=avx2_vnni or avx2_int8 only");
  if (variant.isa == X86Isa::avx2_vnni && !cpu.has("avx_vnni"))
    return refuse("this CPU lacks avx_vnni (isa=avx2_vnni); isa=avx2_int8 runs on any AVX2 CPU");
  if (Validity common = check_int8_descriptor(desc, "avx2 int8", "avx2 float"); !common) return common;
  return check_int8_register_block(desc, variant, avx2_int8_max_block_cells, "16 ymm registers");
}

std::vector<X86Variant> Avx2Int8Generator::candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const {
  const X86Isa isa = cpu.has("avx_vnni") ? X86Isa::avx2_vnni : X86Isa::avx2_int8;
  const int64_t m = desc.m == 0 ? any_m_rows : desc.m;
  std::vector<X86Variant> variants;
  for (auto [panels, rows] : {std::pair{1, 1}, std::pair{2, 1}, std::pair{1, 2}}) {
    if (rows > m) continue;
    for (int unroll : candidate_unrolls(desc)) {
      const X86Variant variant{isa, panels, rows, unroll, variant_threads(desc, max_threads)};
      for (const X86Variant& split : with_splits(desc, variant, max_threads))
        if (is_valid(desc, split, cpu)) variants.push_back(split);
    }
  }
  return variants;
}

X86Variant Avx2Int8Generator::heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const {
  // Two cells: two panels at M=1 (each weight load serves one row anyway), else two rows.
  return heuristic_variant(desc, cpu.has("avx_vnni") ? X86Isa::avx2_vnni : X86Isa::avx2_int8, desc.m == 1 ? 2 : 1,
                           desc.m == 1 ? 1 : 2, max_threads);
}

std::unique_ptr<Avx2Int8Program> Avx2Int8Generator::emit(const OpDesc& desc, const X86Variant& variant) const {
  return emit_valid<Avx2Int8Program>(*this, desc, variant);
}

}  // namespace lowbit::x86
