// AVX2 integer generator (compute=int8) for CPUs without AVX-512: the math, the quantized
// activations (avx2_activation_quantizer.h, the same bits as the AVX-512 quantizer) and the
// per-block epilogue of the AVX512-VNNI generator (avx512_vnni_int8_generator.h), on the 16 ymm
// registers: each 16-column panel is two 8-column halves (the low and high 16 bytes of a native
// 32-byte block, as in avx2_float_generator.h). Every width, group, zero point, act/out dtype,
// bias, eqscale and split_k.
//
// Two flavours of the integer dot product, one per X86Isa:
//   avx2_vnni (AVX-VNNI, `{vex} vpdpbusd`): as the zmm version, one instruction per quad of
//     codes and row; 8-bit: one pair of k per dword, the upper two bytes 0.
//   avx2_int8 (any AVX2 CPU): 2-, 3-, 4-bit: vpmaddubsw (u8 codes x s8 xq, adjacent pairs summed
//     to int16), vpmaddwd with ones (to int32), vpaddd. vpmaddubsw saturates at 32767; a pair is
//     at most 2 * 15 * 127 = 3810, so it never does. 8-bit codes would (2 * 255 * 127): they are
//     zero-extended to words (vpmovzxbw: dword j = q[j,k0], q[j,k0+1]) and vpmaddwd meets them
//     with xq[k0], xq[k0+1] sign-extended to words, exact in int32.
// Both accumulate exactly the int32 sums of the VNNI generator, so every flavour gives the same
// result up to the fp32 epilogue.
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

class Avx2Int8Program : public BlockProgram {
 public:
  Avx2Int8Program(const OpDesc& desc, const X86Variant& variant);

 private:
  struct Block;  // the shape and pointer registers of the block function being emitted

  void emit_block_function(int panels, int rows, const KRange& range);
  // Emits `steps` steps of every panel (k_unroll at a time in a loop), advancing x and w.
  void emit_steps(const Block& block, int64_t steps);
  void emit_step(const Block& block, int step);
  // Per-width decoders of one half-panel of one step; each hands its dwords of codes (four
  // codes of consecutive k per column; 8-bit: two) to consume.
  void decode_fields(const Block& block, int panel, int half, int step);  // 2- and 4-bit
  void decode_3bit(const Block& block, int panel, int half, int step);
  void decode_8bit(const Block& block, int panel, int half, int step);
  void consume(const Block& block, int panel, int half, int k_offset, const Xbyak::Ymm& codes);
  void emit_block_epilogue(const Block& block);
  void emit_constants();

  bool vnni_;  // the avx2_vnni flavour

  // 32-byte splats after the code.
  Xbyak::Label none_zero_;       // float: 2^(bits-1), the zero point of zero=none
  Xbyak::Label code_mask_;       // bytes: the low-bit field (2-, 4-bit; 3-bit: the low plane's 2 bits)
  Xbyak::Label high_bit_mask_;   // bytes: bit 2 (3-bit high plane)
  Xbyak::Label word_ones_;       // words 1: vpmaddwd's pair sum of the avx2_int8 flavour

  YmmOutput output_;  // bias, conversion and stores; its constants follow ours
};

class Avx2Int8Generator {
 public:
  static constexpr std::string_view family = "x86_avx2_int8";
  static constexpr int version = 1;  // bump when emitted code changes: old cache entries miss

  // The avx2_vnni flavour where the CPU has AVX-VNNI, else avx2_int8 (never both: the VNNI one
  // does the same work in fewer instructions).
  std::vector<X86Variant> candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
  Validity is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const;
  std::unique_ptr<Avx2Int8Program> emit(const OpDesc& desc, const X86Variant& variant) const;
  X86Variant heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
};

// Register budget: a (row, panel) cell is two halves of an fp32 running sum and an int32
// accumulator, 4 of the 16 ymm; the decoders and the dot products need up to 7 temporaries
// (3-bit), which leaves room for 2 cells.
constexpr int avx2_int8_max_block_cells = 2;

}  // namespace lowbit::x86
