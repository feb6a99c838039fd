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
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

class AmxBf16Program : public BlockProgram {
 public:
  AmxBf16Program(const OpDesc& desc, const X86Variant& variant);

  // Decodes panels [qweight, + panels) into y: amx_decoded_bytes(desc, panels) bytes, 64-byte
  // aligned. Reads only BlockArgs.qweight and .y.
  BlockFunction decode(int panels) const;
  // As block(panels, rows), but BlockArgs.qweight points at decode(panels)'s output.
  BlockFunction decoded_block(int panels, int rows) const;

 private:
  struct Block;  // the shape, registers and scratch offsets of the block function being emitted

  void emit_block_function(int panels, int rows, bool predecoded);
  void emit_decode_function(int panels);
  void emit_decode_constants(const Xbyak::Reg64& scratch);
  void emit_decode_step(const Block& block, int panel, int step);
  void emit_stage_x_tail(const Block& block, int tail_k);
  void emit_tile_products(const Block& block, bool x_from_scratch, bool b_decoded);
  void emit_group_epilogue(const Block& block);
  void emit_output(const Block& block);
  void emit_tile_config(int panels, int rows, Xbyak::Label& config);
  void emit_constants();

  Xbyak::Label constants_;
  std::vector<std::size_t> decode_entries_;   // [panels - 1]
  std::vector<std::size_t> decoded_entries_;  // [(panels - 1) * m_rows + rows - 1]
};

class AmxBf16Generator {
 public:
  static constexpr std::string_view family = "x86_amx_bf16";
  static constexpr int version = 2;  // bump when emitted code changes: old cache entries miss (2: decode once)

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
};

}  // namespace lowbit::x86
