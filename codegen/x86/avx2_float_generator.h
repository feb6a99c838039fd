// AVX2/FMA fallback generator (compute=float) for CPUs without AVX-512: the native layout,
// the math and the launcher of the AVX-512 fma flavour (avx512_float_generator.h), on the 16
// ymm registers of AVX2. Every width (2, 3, 4, 8 bits), group size, zero point, act and out
// dtype, bias and eqscale=1.
//
// A 16-column panel is two 8-column halves: the low 16 bytes of a 32-byte block hold columns
// 0-7 (byte 2j+h), the high 16 bytes columns 8-15, so `vpmovzxbw ymm, [half]` gives the same
// bf16 pairs per 32-bit lane as the zmm version gives for 16 columns. Differences that follow
// from AVX2: no vpternlogd (mask and exponent are an AND and an OR), no embedded broadcast
// (x goes through vbroadcastss, constants are 32-byte splats in the code's constant table),
// no opmasks: the N tail of the last panel is stored with vmaskmovps (fp32) or word by word
// (vpextrw, bf16/fp16), and its bias loaded with vmaskmovps or vpinsrw, on a separate path
// taken when BlockArgs.last_panel_mask is not full
// (ymm_output.h, shared with the AVX2 int8 generator).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "codegen/x86/block_program.h"
#include "codegen/x86/x86_variant.h"
#include "codegen/x86/ymm_output.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"

namespace lowbit::x86 {

class Avx2FloatProgram : public BlockProgram {
 public:
  Avx2FloatProgram(const OpDesc& desc, const X86Variant& variant);

 private:
  struct Block;  // the shape and pointer registers of the block function being emitted

  void emit_block_function(int panels, int rows, const KRange& range);
  // Per-width decoders of one half-panel of one step; each hands its pairs (or, 8-bit, its
  // single k vectors) to consume_pair / consume_single.
  void decode_fields(const Block& block, int panel, int half, int step, int valid_k);  // 2- and 4-bit
  void decode_3bit(const Block& block, int panel, int half, int step, int valid_k);
  void decode_8bit(const Block& block, int panel, int half, int step, int valid_k);
  void consume_pair(const Block& block, int panel, int half, int step, int pair, const Xbyak::Ymm& pairs,
                    const Xbyak::Ymm& spare, const Xbyak::Ymm& x_value, int valid_k);
  void consume_single(const Block& block, int panel, int half, int k_offset, bool chain_b,
                      const Xbyak::Ymm& values, const Xbyak::Ymm& x_value);
  void emit_group_epilogue(const Block& block, const Xbyak::Reg64& scales, const Xbyak::Reg64& zeros,
                           const Xbyak::Reg64& sums);
  void emit_constants();

  // 32-byte splats after the code.
  Xbyak::Label code_offset_;     // float: the code offset
  Xbyak::Label none_zero_;       // float: offset + 2^(bits-1), zero=none
  Xbyak::Label field_mask_;      // words: the low plane's field, in place
  Xbyak::Label high_bit_mask_;   // words: 3-bit high plane's bit, in place
  Xbyak::Label exponent_;        // words: bf16 bits of the magic base
  Xbyak::Label high_words_;      // dwords 0xffff0000: the high bf16 of a pair as fp32
  Xbyak::Label low_words_;       // dwords 0x0000ffff: the even k of 8-bit codes

  YmmOutput output_;  // bias, conversion and stores; its constants follow ours
};

class Avx2FloatGenerator {
 public:
  static constexpr std::string_view family = "x86_avx2_float";
  static constexpr int version = 1;  // bump when emitted code changes: old cache entries miss

  std::vector<X86Variant> candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
  Validity is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const;
  std::unique_ptr<Avx2FloatProgram> emit(const OpDesc& desc, const X86Variant& variant) const;
  X86Variant heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
};

// Register budget: a (row, panel) cell is two halves of sum, A and B: 6 of the 16 ymm. The
// decoders need 4 temporaries (3-bit: 5), which leaves room for 2 cells (3-bit: 1).
constexpr int avx2_max_block_cells(int bits) { return bits == 3 ? 1 : 2; }

}  // namespace lowbit::x86
