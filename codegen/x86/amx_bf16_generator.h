// AMX-BF16 generator (compute=float, act=bf16): 2-, 3-, 4- and 8-bit weights, any group size,
// zero none/int/float, fp32/bf16/fp16 output, optional bias; for larger M.
//
// Per 32 k ("chunk") and 16-column panel, the packed bytes are decoded exactly as the
// avx512_bf16 flavour does (code_conversion.h: each field becomes the bf16 pair
// (offset+q[k], offset+q[k+1]) of each column) and stored as one 64-byte row per k pair into a
// per-call scratch on the stack: that is the B tile in the pair ("VNNI") order tdpbf16ps wants
// (row r = the pairs (2r, 2r+1) of 16 columns). The A tile is read straight from x (up to 16
// rows x 32 bf16, row stride k). The native layout needs no repacking for this: one native
// block already is 16 columns x whole pairs, so a B row is one decoded zmm (docs/layout.md).
//
// Scales: the products of a group accumulate exactly in C tiles (bf16 x bf16 products are exact
// in fp32); at the group's end the C tiles are stored and
//   acc[row, n] += s[n,g] * C[row, n] - (offset + zero[n,g]) * s[n,g] * sum_x[row, g]
// into fp32 accumulators in scratch. The alternative, folding s * (q - zero) into the decoded
// bf16 weights, would spare the per-group epilogue but round every weight to bf16 (2^-9
// relative, about 1e-3 on outputs: ten times the fp32 tolerance) and cost a conversion per
// weight per row block; this keeps the avx512_bf16 flavour's accuracy and tolerance.
//
// Decode once for many row blocks: besides the fused block functions above (decode a chunk,
// multiply it, for one row block), the program holds a decode function per panel count, which
// writes the B tiles of every chunk of K for a block of panels into a caller's buffer
// ([chunk][panel][16 pair rows][64 bytes], the K tail's chunk zero-padded), and "decoded"
// block functions that read their B tiles from that buffer instead of decoding. Where M has
// more than one row block, the launcher decodes a block of panels once and runs every row
// block against it (x86_kernel.cpp); at M=256 with 32-row blocks that spares 7 of 8 decodes.
//
// Cache blocking (variant.k_block > 0, group > 0): the launcher packs x once per call into
// tiles (amx_pack_x_rows: [row tile][chunk][16 rows][32 bf16], rows past M zero), and each
// thread walks K in blocks of k_block: per block of K, for each of its blocks of panels, the
// panels' chunks of that block of K are decoded once (decode_range, k_block/32 x panels KB,
// near L1) and every row block multiplies them (blocked), its A tiles read from the packed
// rows of that block of K (M x k_block bf16, shared by all the thread's panels, so kept in L2
// instead of re-read from L3 once per block of panels); fp32 accumulators per (row block,
// block of panels) live in the thread's scratch across the blocks of K. Group scales are
// applied per group as above, so numerics and tolerance are those of the other functions.
//
// Scaled decode (variant.scaled_decode = 1, needs k_block > 0): decode_range writes each weight
// as bf16(s * (q - zero)) (emit_scale_pairs: one fp32 FMA per weight from the decoded
// offset + q, rounded once to bf16), so the blocked functions sum a whole block of K in the C
// tiles, store them once per block of K into the accumulators, and need neither the per-group
// epilogue nor the sums of x. That is "dequantize to bf16, then a bf16 GEMM" (torch's bf16
// baseline, the CUDA wgmma and dequant_gemm families): one more rounding per weight, verified
// at dequantized_weights_tolerance (lowbit/tolerance.h; registry.h verification_tolerance), the
// cost the comment on scales above weighs. zero=float: see emit_scale_pairs; eqscale=1 is
// refused by the whole generator.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <xbyak/xbyak_util.h>

#include "codegen/x86/block_program.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"

namespace lowbit::x86 {

constexpr int amx_tile_rows = 16;   // rows of a tile (palette 1)
constexpr int amx_tile_bytes = 64;  // bytes of a tile row
constexpr int amx_chunk_k = 32;     // k per tdpbf16ps: 64 bytes of bf16 x per row
constexpr int amx_max_rows = 32;    // two A tiles: C tiles + A tiles + B tiles <= 8

// Tiles of a block of a_tiles x panels: C (a_tiles*panels) + A (a_tiles) + B (panels) <= 8.
constexpr bool amx_block_fits(int a_tiles, int panels) { return a_tiles * panels + a_tiles + panels <= 8; }

// The decoded B tiles of a block of `panels` panels over all of K (the decode function's output).
int64_t amx_decoded_chunks(const OpDesc& desc);
int64_t amx_decoded_bytes(const OpDesc& desc, int panels);

// Packed x of the cache-blocked functions: [row tile][chunk][16 rows][32 bf16], K padded to whole
// chunks and rows to whole tiles with zeros. Bytes between row tiles, and in all for m rows.
int64_t amx_packed_x_tile_bytes(const OpDesc& desc);
int64_t amx_packed_x_bytes(const OpDesc& desc, int64_t m);
// Packs rows [row_begin, row_end) of x (m rows of K bf16) into `packed`; rows from m on (up to
// whole tiles) are written as zeros.
void amx_pack_x_rows(const OpDesc& desc, const uint16_t* x, int64_t m, int64_t row_begin, int64_t row_end,
                     uint16_t* packed);
// decode_range's output for one block of K of a variant's widest block of panels.
int64_t amx_block_decoded_bytes(const X86Variant& variant);

// What a cache-blocked function reads (decode_range: qweight, decoded, chunks; blocked: the
// rest): one block of K of one register block. Pointers are offset to the block's first row,
// first panel and first k (first group).
struct AmxBlockedArgs {
  const uint16_t* x;        // packed x at the block's first row tile and the block of K's first chunk
                            // (avx512_bf16: x as given, at the block's first row and first k)
  const float* group_sums;  // [rows][groups of K] at the first row and the block of K's first group
  const uint8_t* qweight;   // decode_range: native weights of the first panel at the block of K's first step
  uint8_t* decoded;         // decode_range's output, blocked's B tiles: [chunk][panel][16][64 B], 64-byte aligned
  const uint16_t* scales;   // fp16 [panel][group][16] at the first panel and group
  const uint16_t* zeros;    // same shape; unused for zero=none
  const void* bias;         // bias of the first column (bf16), or null
  void* y;                  // output of the first row and column
  float* accumulators;      // fp32 [rows][panels][16] of this register block, 64-byte aligned
  int64_t groups;           // groups in the block of K (>= 1)
  int64_t chunks;           // 32-k chunks in the block of K (>= 1)
  uint64_t last_panel_mask; // bit j: column j of the last panel is inside N
  uint64_t first;           // nonzero: the first block of K (zero the accumulators)
  uint64_t last;            // nonzero: the last block of K (bias, output dtype, into y)
};
using AmxBlockedFunction = void (*)(const AmxBlockedArgs*);

class AmxBf16Program : public BlockProgram {
 public:
  AmxBf16Program(const OpDesc& desc, const X86Variant& variant);
  // The decode_range functions (panels 1..variant.n_panels) and their constants alone, as
  // AMX's emits them (no tiles: AVX-512 BW and BF16 only), for the avx512_bf16 flavour's
  // cache-blocked path (variant.k_block > 0, scaled_decode = 1), whose vdpbf16ps reads the same
  // pair order. Only decode_range may be called on it.
  struct DecodeOnly {};
  AmxBf16Program(const OpDesc& desc, const X86Variant& variant, DecodeOnly);

  // Decodes panels [qweight, + panels) into y: amx_decoded_bytes(desc, panels) bytes, 64-byte
  // aligned. Reads only BlockArgs.qweight and .y.
  BlockFunction decode(int panels) const;
  // As block(panels, rows), but BlockArgs.qweight points at decode(panels)'s output.
  BlockFunction decoded_block(int panels, int rows) const;
  // Cache-blocked functions (variant.k_block > 0; Unsupported otherwise): decode_range decodes
  // AmxBlockedArgs.chunks chunks of panels into .decoded; blocked runs one block of K.
  AmxBlockedFunction decode_range(int panels) const;
  AmxBlockedFunction blocked(int panels, int rows) const;

 private:
  struct Block;  // the shape, registers and scratch offsets of the block function being emitted
  // The Block of a block function of panels x rows whose StackFrame holds its registers.
  Block frame_block(int panels, int rows, const Xbyak::util::StackFrame& frame, const Xbyak::Reg64& accumulators,
                    int accumulator_base, int64_t x_tile_bytes) const;

  void emit_block_function(int panels, int rows, bool predecoded);
  void emit_decode_function(int panels, bool ranged);
  void emit_blocked_function(int panels, int rows);
  void emit_decode_constants(const Xbyak::Reg64& scratch);
  void emit_decode_step(const Block& block, int panel, int step);
  void emit_stage_x_tail(const Block& block, int tail_k);
  void emit_tile_products(const Block& block, bool x_from_scratch, bool b_decoded);
  void emit_group_scales(const Block& block);
  void emit_group_epilogue(const Block& block);
  void emit_scale_pairs(const Xbyak::Zmm& pairs, int panel);
  void emit_scaled_decode_constants(const Xbyak::Reg64& scratch);
  void emit_block_sum(const Block& block);
  void emit_output(const Block& block, std::size_t bias_offset, std::size_t y_offset);
  void emit_tile_config(int panels, int rows, Xbyak::Label& config);
  void emit_constants();

  Xbyak::Label constants_;
  std::vector<std::size_t> decode_entries_;   // [panels - 1]
  std::vector<std::size_t> decoded_entries_;  // [(panels - 1) * m_rows + rows - 1]
  std::vector<std::size_t> decode_range_entries_;  // [panels - 1], k_block > 0 only
  std::vector<std::size_t> blocked_entries_;       // as decoded_entries_, k_block > 0 only
};

class AmxBf16Generator {
 public:
  static constexpr std::string_view family = "x86_amx_bf16";
  // Bump when emitted code changes: old cache entries miss (2: decode once; 3: k_block;
  // 4: scaled_decode).
  static constexpr int version = 4;

  // Worth timing from this many rows on (and for m=0): a tile of 4..15 rows costs a tdpbf16ps
  // as much as 16, but AMX's peak is several times vdpbf16ps', which bounds the AVX-512 kernels
  // from M=4 on; below 4 rows the AVX-512 kernels are bound by memory, not by products.
  static constexpr int64_t min_rows = 4;
  // The no-tune choice from this many rows on (registry.cpp): on the 16-core Xeon the fastest
  // AMX block beat the fastest AVX-512 one 2.4-2.8x at M=4 and 3.4-4.5x at M=8 (4096x4096 and
  // 28672x4096, docs/benchmarks.md), so from min_rows on.
  static constexpr int64_t heuristic_from_rows = min_rows;

  std::vector<X86Variant> candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
  // Needs AMX-TILE, AMX-BF16, AVX512-BF16 (decoding, output), and the process's permission to
  // use tile state (asked for here, once per process; core/amx_permission.h).
  Validity is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const;
  std::unique_ptr<AmxBf16Program> emit(const OpDesc& desc, const X86Variant& variant) const;
  X86Variant heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;

  // Whether the candidates hold scaled_decode=1 variants (beside each k_block > 0 one): above one
  // tile of rows, where several row blocks share each decoded block of K. At M=16 (and m=0,
  // tuned at 16 rows) the unblocked n2m16 beat every blocked variant, scaled or not, on the
  // Xeon (docs/benchmarks.md, 2026-11-22 scaled decode): pruned there.
  static bool offers_scaled_decode(const OpDesc& desc);

  // k_block values worth timing: 0 (not blocked), and with group > 0 the blocks of K in
  // {1024, 2048} that are whole groups and not longer than K.
  static std::vector<int> candidate_k_blocks(const OpDesc& desc);
  // The no-tune k_block: heuristic_k_block_size (else the longest candidate) above one tile of
  // rows with group > 0, else 0. On the Xeon (docs/benchmarks.md, 2026-11-22 cache blocking)
  // 1024 and 2048 were within the run-to-run noise of each other with n2m32, and ahead of
  // k_block=0 on 28672x4096 and K=14336 at M=256; 1024 keeps the packed rows of a block of K
  // (M x 2 KB) in L2 up to M=512.
  static constexpr int heuristic_k_block_size = 1024;
  static int heuristic_k_block(const OpDesc& desc);
};

}  // namespace lowbit::x86
