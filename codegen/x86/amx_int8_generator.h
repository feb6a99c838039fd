// AMX-INT8 generator (compute=int8): 2-, 3-, 4- and 8-bit weights, any group size, zero
// none/int/float, fp32/bf16/fp16 activations and output, optional bias and equalization scale;
// for larger M. The activations come quantized from the same per-call pass as the AVX512-VNNI
// family (activation_quantizer.h: s8 rows, zero-padded past K, and per-block factors), so the
// math, and the twin reference_int8, are that family's:
//
// Per chunk of up to 64 k (one activation block holds 1..4 chunks) and 16-column panel, the
// packed steps are decoded by Int8CodeDecoder (int8_code_decoder.h) into one dword of four
// codes per column per quad of k, each stored as one 64-byte row of a B tile in scratch: the
// order tdpbsud wants (row r = k 4r..4r+3 of 16 columns). tdpbsud multiplies *signed* bytes of
// its first source (A: up to 16 rows of xq, read straight from the quantized rows) by
// *unsigned* bytes of its second (B: the codes 0..2^bits-1) into int32 C tiles (Intel SDM,
// TDPBSSD/TDPBSUD/TDPBUSD/TDPBUUD); tdpbusd has the signedness the other way round.
//
// Per activation block (the weight group, or 128 k for group=-1), exactly in int32:
//   C[row, n] = sum_k q[n,k] * xq[row,k]
// then, in fp32, into per-(row, column) accumulators in scratch:
//   acc[row, n] += scale[n,g] * (C[row, n] * sx - zero'[n,g] * sx * sum_k xq)
// zero' = the zero point (zero=none: 2^(bits-1)); |C| < 2^24, so its conversion is exact.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/block_program.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"

namespace lowbit::x86 {

constexpr int amx_int8_chunk_k = 64;  // k per tdpbsud: 64 bytes of s8 x per A row

class AmxInt8Program : public BlockProgram {
 public:
  AmxInt8Program(const OpDesc& desc, const X86Variant& variant);

 private:
  struct Block;  // the shape, registers and scratch offsets of the block function being emitted

  void emit_block_function(int panels, int rows);
  // One activation block of `steps` native steps: C tiles zeroed, its chunks, its epilogue.
  void emit_activation_block(const Block& block, int64_t steps);
  // One chunk of `steps` steps (at most a chunk's): decoded into B, multiplied; x and w advance.
  void emit_chunk(const Block& block, int steps);
  void emit_decode(const Block& block, int panel, int steps);
  void emit_tile_products(const Block& block);
  void emit_block_epilogue(const Block& block);
  void emit_output(const Block& block);
  void emit_tile_config(int panels, int rows, Xbyak::Label& config);
  void emit_constants();

  Xbyak::Label constants_;
};

class AmxInt8Generator {
 public:
  static constexpr std::string_view family = "x86_amx_int8";
  static constexpr int version = 1;  // bump when emitted code changes: old cache entries miss

  // Worth timing from one whole tile of rows on (and for m=0): below, a 16-row A tile is
  // mostly empty and the VNNI kernels, which decode each step once for up to 12 rows in
  // registers, are not beaten.
  static constexpr int64_t min_rows = amx_tile_rows;

  std::vector<X86Variant> candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
  // Needs AMX-TILE, AMX-INT8, AVX-512 F/BW/VL (decoding, quantizing x, output), and the
  // process's permission to use tile state (core/amx_permission.h).
  Validity is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const;
  std::unique_ptr<AmxInt8Program> emit(const OpDesc& desc, const X86Variant& variant) const;
  X86Variant heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
};

}  // namespace lowbit::x86
