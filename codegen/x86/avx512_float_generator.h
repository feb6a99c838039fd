// AVX-512 float-compute generator (compute=float): 2-, 3-, 4- and 8-bit weights, any group
// size, zero none/int/float, fp32/bf16/fp16 activations, fp32/bf16/fp16 output, optional bias
// and equalization scale (eqscale=1: the fma flavour, the scale folded into x's fp32 pass).
// Two instruction flavours:
//
//   avx512_bf16: per step, the packed bytes of a 16-column panel are zero-extended to words
//     and each bit field becomes a bf16 pair (offset+q, offset+q') by a shift and an OR of
//     exponent bits (8-bit codes: an integer conversion); vdpbf16ps multiplies the pairs with
//     broadcast bf16 pairs of x: products are exact, sums fp32.
//   avx512_fma: the same pairs split into two fp32 vectors, and vfmadd231ps multiplies them
//     with broadcast fp32 x (bf16/fp16 x converted once per call).
//
// The offset and the zero point are removed once per group, with the group's sum of x:
//   y += scale * (sum_k x*(offset+q) - (offset+zero) * sum_k x)
// so the inner loop does no per-element dequantization arithmetic beyond bit operations.
// code_conversion.h gives the offsets per width; docs/architecture.md derives the math and
// docs/layout.md gives the byte layout it reads.
//
// Cache-blocked scaled decode (avx512_bf16, variant.k_block > 0, scaled_decode = 1; for larger
// M): the launcher walks K in blocks of k_block (whole groups); per block of K and block of
// panels, AMX-BF16's decode_range (AmxBf16Program, DecodeOnly) writes each weight once as
// bf16 s*(q - zero) in pair order ([chunk of 32 k][panel][16 k pairs][16 columns][2 bf16]),
// which is what vdpbf16ps consumes: one decoded row is one zmm of 16 columns x one k pair.
// Every row block then runs a blocked function against it: per k pair, the panels' decoded
// rows are loaded once and each row's x pair is broadcast into rows x panels zmm accumulators;
// no per-group epilogue and no sums of x (the scales and zero points are in the weights). The
// accumulators are kept in fp32 in the caller's scratch across the blocks of K. One more
// rounding per weight (to bf16): verified at dequantized_weights_tolerance, as AMX's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/block_program.h"
#include "codegen/x86/x86_variant.h"
#include "codegen/x86/zmm_output.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"

namespace lowbit::x86 {

// The emitted code of one (descriptor, variant).
class Avx512FloatProgram : public BlockProgram {
 public:
  Avx512FloatProgram(const OpDesc& desc, const X86Variant& variant);

  // Cache-blocked functions (variant.k_block > 0; Unsupported otherwise; the program then holds
  // no other block functions): one block of K of `rows` rows x `panels` panels, B from
  // decode_range's output (AmxBlockedArgs.decoded), x as given (AmxBlockedArgs.x).
  AmxBlockedFunction blocked(int panels, int rows) const;

 private:
  struct Block;  // the shape and pointer registers of the block function being emitted

  void emit_block_function(int panels, int rows, const KRange& range);
  void emit_step(const Block& block, int step, int valid_k);
  // Per-width decoders: each turns one step of one panel into pairs (or, 8-bit fma, single
  // k vectors) and hands every one to consume_pair / consume_single.
  void decode_fields(const Block& block, int panel, int step, int valid_k);  // 2- and 4-bit
  void decode_3bit(const Block& block, int panel, int step, int valid_k);
  void decode_8bit(const Block& block, int panel, int step, int valid_k);
  void consume_pair(const Block& block, int panel, int step, int pair, const Xbyak::Zmm& pairs,
                    const Xbyak::Zmm& spare, int valid_k);
  void consume_single(const Block& block, int panel, int k_offset, bool chain_b, const Xbyak::Zmm& values);
  void emit_group_epilogue(const Block& block);
  void emit_blocked_function(int panels, int rows);
  void emit_constants();

  Xbyak::Label constants_;
  std::vector<std::size_t> blocked_entries_;  // [(panels - 1) * m_rows + rows - 1], k_block > 0 only
  ZmmOutput output_;  // bias, conversion and stores
};

class Avx512FloatGenerator {
 public:
  static constexpr std::string_view family = "x86_avx512_float";
  // Bump when emitted code changes: old cache entries miss (3: prefetch; 4: k_block with
  // scaled_decode).
  static constexpr int version = 4;

  // Variants worth timing for desc on this CPU, pruned by the rules of is_valid and by
  // shape (no register block taller than M, threads that have work).
  std::vector<X86Variant> candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
  Validity is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const;
  std::unique_ptr<Avx512FloatProgram> emit(const OpDesc& desc, const X86Variant& variant) const;
  // The no-tune choice: what the tuner picks most often on the benchmark shapes. From
  // scaled_min_rows rows on with the bf16 flavour and group > 0: the scaled decode, n4m6 with
  // k_block = heuristic_scaled_k_block where it is a candidate (else the longest candidate):
  // the fastest on 7 of the 8 Llama rows at M=64 and 256 on the developer VM (n3m8 on the
  // eighth, within a few %), 1.0-1.6x ahead of the best unblocked variant (docs/benchmarks.md,
  // 2026-11-22 AVX512-BF16 scaled decode).
  X86Variant heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
  static constexpr int heuristic_scaled_k_block = 2048;

  // The scaled-decode blocks (n_panels, m_rows) worth timing, from scaled_min_rows rows on: each
  // decoded block of K serves M / m_rows row blocks, so it pays only where M has several.
  static constexpr int64_t scaled_min_rows = 32;
  static std::vector<std::pair<int, int>> scaled_blocks();

 private:
  static Validity check_scaled_variant(const OpDesc& desc, const X86Variant& variant);
};

// The scaled-decode blocked functions hold rows x panels accumulators and one decoded row per
// panel, and leave two zmm to the broadcast x pairs (then the output emitter's value and rounded).
constexpr bool scaled_block_fits(int panels, int rows) { return panels * rows + panels <= 30; }

// Register budget: group accumulators A and B plus the running sum, per (row, panel), must
// leave the temporaries and constants of the width's decoder: 5 of the 32 zmm registers
// (3-bit: 8, for its second plane and mask), so 9 cells (3-bit: 8). Blocks of at most 4 cells
// of the bf16 flavour keep four chains (A..D) instead: 5 registers per cell, 20 at most.
constexpr int max_block_cells(int bits) { return bits == 3 ? 8 : 9; }

}  // namespace lowbit::x86
