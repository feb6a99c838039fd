#include "codegen/x86/amx_bf16_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstddef>

#include <xbyak/xbyak_util.h>

#include "codegen/x86/code_conversion.h"
#include "core/amx_permission.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Reg64;
using Xbyak::Tmm;
using Xbyak::Ymm;
using Xbyak::Zmm;

constexpr uint8_t and_or = 0xEA;  // vpternlogd truth table: (a & b) | c
constexpr int tile_scratch_bytes = amx_tile_rows * amx_tile_bytes;  // one whole tile in memory

// Zmm use: temp(0..5) for decoding and the epilogues (4, 5: the scaled decode's fp32 halves);
// per panel p, its group's scale and (offset + zero) * scale (then its bias) in 16 + 2p, 17 + 2p;
// decoding constants at the top. Opmask k4: the odd words (scaled decode).
struct Registers {
  static Zmm temp(int index) { return Zmm(index); }
  static Zmm pair_interleave() { return Zmm(28); }  // scaled decode: vpermw index, words j, 16 + j -> 2j, 2j + 1
  static Zmm scale(int panel) { return Zmm(16 + 2 * panel); }
  static Zmm offset_zero(int panel) { return Zmm(17 + 2 * panel); }
  static Zmm bias(int panel) { return Zmm(16 + panel); }
  static Zmm high_bit_mask() { return Zmm(29); }  // 3-bit: the high plane's bit
  static Zmm exponent() { return Zmm(30); }       // bf16 bits of the magic base, in both words
  static Zmm field_mask() { return Zmm(31); }     // the decoded field's bits, in both words
};


// The tiles and scratch of a block of `rows` rows of x (a_tiles A tiles) times `panels`
// 16-column panels.
//
// Tiles: C(a, p) = tmm(a * panels + p), then A(a), then B(p). Scratch (stack, 64-byte
// aligned): B(p) as decoded pairs [16 k pairs][16 columns][2 bf16] (1 KB each), one C tile
// stored for the epilogue (1 KB), x's K tail staged zero-padded [rows][32 bf16], and the fp32
// accumulators [rows][panels][16].
struct TileShape {
  int panels;
  int rows;
  int a_tiles;

  TileShape(int panels, int rows)
      : panels(panels), rows(rows), a_tiles((rows + amx_tile_rows - 1) / amx_tile_rows) {}
  int tile_rows(int a) const { return std::min(amx_tile_rows, rows - amx_tile_rows * a); }
  Tmm c_tile(int a, int panel) const { return Tmm(a * panels + panel); }
  Tmm a_tile(int a) const { return Tmm(a_tiles * panels + a); }
  Tmm b_tile(int panel) const { return Tmm(a_tiles * panels + a_tiles + panel); }
  int b_offset(int panel) const { return panel * tile_scratch_bytes; }
  int c_offset() const { return panels * tile_scratch_bytes; }
  int x_tail_offset() const { return c_offset() + tile_scratch_bytes; }
  int accumulator_offset() const { return x_tail_offset() + a_tiles * tile_scratch_bytes; }
  int scratch_bytes() const { return accumulator_offset() + rows * panels * amx_tile_bytes; }
};

}  // namespace

// The shape, pointer registers and geometry of the block function being emitted.
struct AmxBf16Program::Block : TileShape {
  Reg64 args;         // BlockArgs*, kept for the output pointers
  Reg64 x;            // first row, first k of the current chunk
  Reg64 w;            // first panel, first step of the current chunk
  Reg64 scales;       // fp16 [panel][group][16] at the current group
  Reg64 zeros;        // same shape
  Reg64 sums;         // group sums of x, [rows][groups] at the current group
  Reg64 base;         // scratch, 64-byte aligned
  Reg64 x_stride;     // bytes between rows of x: the A tiles' stride
  Reg64 tile_stride;  // 64: the stride of every tile kept in scratch
  int64_t panel_bytes;
  int64_t x_row_bytes;
  int64_t groups;
  int k_per_step;
  int64_t step_bytes;
  Reg64 accumulators;    // fp32 [rows][panels][16]: scratch (base) or the caller's (cache-blocked)
  int accumulator_base;  // offset of row 0, panel 0 from `accumulators`
  int64_t x_tile_bytes;  // packed x (cache-blocked): bytes between row tiles; 0: x read as given
  bool scaled_pairs = false;  // decoding stores s * (q - zero) (scale(p), offset_zero(p)) as bf16

  // The fp32 accumulator of (row, panel), relative to `accumulators`.
  int accumulator_at(int row, int panel) const { return accumulator_base + (row * panels + panel) * amx_tile_bytes; }
};

// The block functions keep the block's registers in StackFrame's t[0..7] (x, w, scales, zeros,
// sums, base, x_stride, tile_stride) and BlockArgs (or AmxBlockedArgs) in p[0]; they differ in
// where the fp32 accumulators live and whether x is packed in tiles.
AmxBf16Program::Block AmxBf16Program::frame_block(int panels, int rows, const Xbyak::util::StackFrame& frame,
                                                  const Reg64& accumulators, int accumulator_base,
                                                  int64_t x_tile_bytes) const {
  const NativeGeometry geometry = native_geometry(desc_);
  return Block{TileShape(panels, rows),
               frame.p[0],
               frame.t[0],
               frame.t[1],
               frame.t[2],
               frame.t[3],
               frame.t[4],
               frame.t[5],
               frame.t[6],
               frame.t[7],
               geometry.panel_bytes,
               desc_.k * 2,
               geometry.groups,
               static_cast<int>(geometry.k_per_block),
               geometry.step_bytes,
               accumulators,
               accumulator_base,
               x_tile_bytes};
}

int64_t amx_decoded_chunks(const OpDesc& desc) {
  const int64_t chunks = desc.group == whole_k_group ? desc.k / amx_chunk_k
                                                     : native_geometry(desc).groups * (desc.group_size() / amx_chunk_k);
  const bool tail = desc.group == whole_k_group && desc.k % amx_chunk_k != 0;
  return chunks + (tail ? 1 : 0);
}

int64_t amx_decoded_bytes(const OpDesc& desc, int panels) {
  return amx_decoded_chunks(desc) * panels * tile_scratch_bytes;
}

AmxBf16Program::AmxBf16Program(const OpDesc& desc, const X86Variant& variant) : BlockProgram(desc, variant) {
  // is_valid refuses split_k > 1, so the one range is the whole of K.
  emit_block_functions([&](int panels, int rows, const KRange&) { emit_block_function(panels, rows, false); });
  decoded_entries_.assign(static_cast<std::size_t>(variant.n_panels * variant.m_rows), 0);
  decode_entries_.assign(static_cast<std::size_t>(variant.n_panels), 0);
  for (int panels = 1; panels <= variant.n_panels; ++panels) {
    decode_entries_[static_cast<std::size_t>(panels - 1)] = entry_offset();
    emit_decode_function(panels, false);
    for (int rows = 1; rows <= variant.m_rows; ++rows) {
      decoded_entries_[static_cast<std::size_t>((panels - 1) * variant.m_rows + rows - 1)] = entry_offset();
      emit_block_function(panels, rows, true);
    }
  }
  if (variant.k_block > 0) {
    blocked_entries_.assign(static_cast<std::size_t>(variant.n_panels * variant.m_rows), 0);
    decode_range_entries_.assign(static_cast<std::size_t>(variant.n_panels), 0);
    for (int panels = 1; panels <= variant.n_panels; ++panels) {
      decode_range_entries_[static_cast<std::size_t>(panels - 1)] = entry_offset();
      emit_decode_function(panels, true);
      for (int rows = 1; rows <= variant.m_rows; ++rows) {
        blocked_entries_[static_cast<std::size_t>((panels - 1) * variant.m_rows + rows - 1)] = entry_offset();
        emit_blocked_function(panels, rows);
      }
    }
  }
  emit_constants();
  finalize();
}

AmxBf16Program::AmxBf16Program(const OpDesc& desc, const X86Variant& variant, DecodeOnly)
    : BlockProgram(desc, variant, "__decode") {
  if (variant.k_block == 0) throw Unsupported("a decode-only AMX-BF16 program needs k_block > 0");
  decode_range_entries_.assign(static_cast<std::size_t>(variant.n_panels), 0);
  for (int panels = 1; panels <= variant.n_panels; ++panels) {
    decode_range_entries_[static_cast<std::size_t>(panels - 1)] = entry_offset();
    emit_decode_function(panels, true);
  }
  emit_constants();
  finalize();
}

AmxBlockedFunction AmxBf16Program::decode_range(int panels) const {
  if (variant_.k_block == 0) throw Unsupported("decode_range: the variant does not block K (k_block=0)");
  return function_at<AmxBlockedFunction>(decode_range_entries_[static_cast<std::size_t>(panels - 1)]);
}

AmxBlockedFunction AmxBf16Program::blocked(int panels, int rows) const {
  if (variant_.k_block == 0) throw Unsupported("blocked: the variant does not block K (k_block=0)");
  if (blocked_entries_.empty()) throw Unsupported("blocked: a decode-only program holds decode_range alone");
  return function_at<AmxBlockedFunction>(
      blocked_entries_[static_cast<std::size_t>((panels - 1) * variant_.m_rows + rows - 1)]);
}

int64_t amx_packed_x_tile_bytes(const OpDesc& desc) {
  return (desc.k + amx_chunk_k - 1) / amx_chunk_k * tile_scratch_bytes;
}

int64_t amx_packed_x_bytes(const OpDesc& desc, int64_t m) {
  return (m + amx_tile_rows - 1) / amx_tile_rows * amx_packed_x_tile_bytes(desc);
}

int64_t amx_block_decoded_bytes(const X86Variant& variant) {
  return variant.k_block / amx_chunk_k * variant.n_panels * tile_scratch_bytes;
}

void amx_pack_x_rows(const OpDesc& desc, const uint16_t* x, int64_t m, int64_t row_begin, int64_t row_end,
                     uint16_t* packed) {
  const int64_t chunks = (desc.k + amx_chunk_k - 1) / amx_chunk_k;
  const int64_t tile_elements = amx_tile_rows * amx_chunk_k;
  for (int64_t row = row_begin; row < row_end; ++row) {
    uint16_t* destination = packed + row / amx_tile_rows * chunks * tile_elements + row % amx_tile_rows * amx_chunk_k;
    for (int64_t chunk = 0; chunk < chunks; ++chunk, destination += tile_elements) {
      const int64_t k_begin = chunk * amx_chunk_k;
      const int64_t valid = row < m ? std::min<int64_t>(amx_chunk_k, desc.k - k_begin) : 0;
      if (valid > 0) std::copy_n(x + row * desc.k + k_begin, valid, destination);
      std::fill(destination + valid, destination + amx_chunk_k, uint16_t{0});
    }
  }
}

BlockFunction AmxBf16Program::decode(int panels) const {
  return function_at<BlockFunction>(decode_entries_[static_cast<std::size_t>(panels - 1)]);
}

BlockFunction AmxBf16Program::decoded_block(int panels, int rows) const {
  return function_at<BlockFunction>(
      decoded_entries_[static_cast<std::size_t>((panels - 1) * variant_.m_rows + rows - 1)]);
}

void AmxBf16Program::emit_constants() {
  align(64);
  L(constants_);
  // [0] the code offset (code_conversion.h), added to int/float zero points.
  dd(std::bit_cast<uint32_t>(code_offset(desc_.bits)));
  // [1] offset + 2^(bits-1): (offset + zero) for the implicit zero point of zero=none.
  dd(std::bit_cast<uint32_t>(code_offset(desc_.bits) + static_cast<float>(1 << (desc_.bits - 1))));
  // [64] the scaled decode's vpermw index: word 2j <- word j (even k of column j), word 2j + 1
  // <- word 16 + j (its odd k), undoing vcvtne2ps2bf16's halves into tdpbf16ps' pair order.
  align(64);
  for (int column = 0; column < native_panel_width; ++column) {
    dw(static_cast<uint16_t>(column));
    dw(static_cast<uint16_t>(native_panel_width + column));
  }
}

// Register contract (per function): reads BlockArgs through the first argument; tmm0..7 as
// Block says (configured here, released at the end); zmm as Registers says; k1 (all 16
// columns), k2 (the last panel's columns), k3 (the K tail's k); general registers through
// StackFrame (callee-saved ones are saved). predecoded: BlockArgs.qweight is the decode
// function's output, and w walks it chunk by chunk instead of the packed weights.
void AmxBf16Program::emit_block_function(int panels, int rows, bool predecoded) {
  const NativeGeometry geometry = native_geometry(desc_);
  const int steps_per_chunk = amx_chunk_k / static_cast<int>(geometry.k_per_block);
  const int64_t chunks_per_group = desc_.group_size() / amx_chunk_k;
  const int tail_k = static_cast<int>(desc_.group_size() % amx_chunk_k);  // only for group=-1
  Xbyak::Label config;
  {
    const TileShape shape(panels, rows);
    Xbyak::util::StackFrame frame(this, 1, 11, shape.scratch_bytes() + 64);
    const Reg64& group_counter = frame.t[8];
    const Reg64& chunk_counter = frame.t[9];
    const Reg64& scratch = frame.t[10];
    const Block block = frame_block(panels, rows, frame, frame.t[5], shape.accumulator_offset(), 0);
    const Reg64& args = block.args;
    const int a_tiles = block.a_tiles;

    // Whole 64-byte rows on 64-byte lines: tile loads and stores never split a line.
    lea(block.base, ptr[rsp + 63]);
    and_(block.base, -64);
    ldtilecfg(ptr[rip + config]);
    mov(block.x, ptr[args + offsetof(BlockArgs, x)]);
    mov(block.sums, ptr[args + offsetof(BlockArgs, group_sums)]);
    mov(block.w, ptr[args + offsetof(BlockArgs, qweight)]);
    mov(block.scales, ptr[args + offsetof(BlockArgs, scales)]);
    mov(block.zeros, ptr[args + offsetof(BlockArgs, zeros)]);
    mov(block.x_stride, block.x_row_bytes);
    mov(block.tile_stride, amx_tile_bytes);
    mov(scratch.cvt32(), 0xffff);
    kmovw(k1, scratch.cvt32());
    kmovw(k2, ptr[args + offsetof(BlockArgs, last_panel_mask)]);
    if (!predecoded) emit_decode_constants(scratch);

    const Zmm zero = Registers::temp(0);
    vpxord(zero, zero, zero);
    for (int row = 0; row < rows; ++row)
      for (int panel = 0; panel < panels; ++panel) vmovaps(ptr[block.accumulators + block.accumulator_at(row, panel)], zero);
    if (tail_k > 0) {
      mov(scratch.cvt32(), (1u << tail_k) - 1);
      kmovd(k3, scratch.cvt32());
    }
    if (tail_k > 0 && !predecoded) {
      // The K tail decodes fewer than 16 pair rows of B; the rest meet zero-padded x but
      // must not hold NaN bit patterns, which stack garbage could (NaN * 0 = NaN).
      for (int panel = 0; panel < panels; ++panel)
        for (int row = 0; row < amx_tile_rows; ++row)
          vmovaps(ptr[block.base + block.b_offset(panel) + row * amx_tile_bytes], zero);
    }

    Xbyak::Label group_loop;
    mov(group_counter, block.groups);
    L(group_loop);
    for (int a = 0; a < a_tiles; ++a)
      for (int panel = 0; panel < panels; ++panel) tilezero(block.c_tile(a, panel));
    if (chunks_per_group > 0) {
      Xbyak::Label chunk_loop;
      mov(chunk_counter, chunks_per_group);
      L(chunk_loop);
      if (!predecoded)
        for (int panel = 0; panel < panels; ++panel)
          for (int step = 0; step < steps_per_chunk; ++step) emit_decode_step(block, panel, step);
      emit_tile_products(block, false, predecoded);
      add(block.x, amx_chunk_k * 2);
      add(block.w, predecoded ? panels * tile_scratch_bytes
                              : static_cast<uint32_t>(steps_per_chunk * geometry.step_bytes));
      dec(chunk_counter);
      jnz(chunk_loop, T_NEAR);
    }
    if (tail_k > 0) {
      // Whole native steps: codes past K are padding (code 0, decoded to the finite offset),
      // and they meet the zero padding of the staged x.
      const int tail_steps = (tail_k + block.k_per_step - 1) / block.k_per_step;
      if (!predecoded)
        for (int panel = 0; panel < panels; ++panel)
          for (int step = 0; step < tail_steps; ++step) emit_decode_step(block, panel, step);
      emit_stage_x_tail(block, tail_k);
      emit_tile_products(block, true, predecoded);
    }
    emit_group_epilogue(block);
    dec(group_counter);
    jnz(group_loop, T_NEAR);

    emit_output(block, offsetof(BlockArgs, bias), offsetof(BlockArgs, y));
    tilerelease();
    vzeroupper();
  }
  emit_tile_config(panels, rows, config);
}

// The cache-blocked block function: one block of K (AmxBlockedArgs.groups whole groups) of
// `rows` rows x `panels` panels, A tiles from packed x (amx_pack_x_rows: each tile's 16 rows x
// 32 k are 1 KB in a row, so a tile load streams whole lines instead of 16 rows a whole row of
// x apart), B tiles from decode_range's output, the fp32 accumulators the caller's (kept across
// the blocks of K): zeroed first when .first, converted into y after the block when .last.
//
// Register contract: reads AmxBlockedArgs through the first argument; tmm0..7 as Block says
// (configured here, released at the end); zmm as Registers says; k1 (all 16 columns), k2 (the
// last panel's columns); general registers through StackFrame (callee-saved ones are saved).
void AmxBf16Program::emit_blocked_function(int panels, int rows) {
  const int64_t chunks_per_group = desc_.group_size() / amx_chunk_k;
  Xbyak::Label config;
  {
    const TileShape shape(panels, rows);
    // Scratch as TileShape lays it out; only the stored C tile is used (B tiles, x and the
    // accumulators live in the caller's buffers).
    Xbyak::util::StackFrame frame(this, 1, 12, shape.scratch_bytes() + 64);
    const Reg64& group_counter = frame.t[8];
    const Reg64& chunk_counter = frame.t[9];
    const Reg64& scratch = frame.t[10];
    const Block block = frame_block(panels, rows, frame, frame.t[11], 0, amx_packed_x_tile_bytes(desc_));
    const Reg64& args = block.args;

    lea(block.base, ptr[rsp + 63]);
    and_(block.base, -64);
    ldtilecfg(ptr[rip + config]);
    mov(block.x, ptr[args + offsetof(AmxBlockedArgs, x)]);
    mov(block.sums, ptr[args + offsetof(AmxBlockedArgs, group_sums)]);
    mov(block.w, ptr[args + offsetof(AmxBlockedArgs, decoded)]);
    mov(block.scales, ptr[args + offsetof(AmxBlockedArgs, scales)]);
    mov(block.zeros, ptr[args + offsetof(AmxBlockedArgs, zeros)]);
    mov(block.accumulators, ptr[args + offsetof(AmxBlockedArgs, accumulators)]);
    mov(block.tile_stride, amx_tile_bytes);
    mov(scratch.cvt32(), 0xffff);
    kmovw(k1, scratch.cvt32());
    kmovw(k2, ptr[args + offsetof(AmxBlockedArgs, last_panel_mask)]);

    Xbyak::Label accumulating;
    cmp(qword[args + offsetof(AmxBlockedArgs, first)], 0);
    je(accumulating, T_NEAR);
    const Zmm zero = Registers::temp(0);
    vpxord(zero, zero, zero);
    for (int row = 0; row < rows; ++row)
      for (int panel = 0; panel < panels; ++panel) vmovaps(ptr[block.accumulators + block.accumulator_at(row, panel)], zero);
    L(accumulating);

    // The chunk loop of `count` chunks: C += A . B.
    auto chunk_loop = [&](const Xbyak::Operand& count) {
      Xbyak::Label loop;
      mov(chunk_counter, count);
      L(loop);
      emit_tile_products(block, false, true);
      add(block.x, tile_scratch_bytes);
      add(block.w, panels * tile_scratch_bytes);
      dec(chunk_counter);
      jnz(loop, T_NEAR);
    };
    if (variant_.scaled_decode) {
      // The scales are in B: the C tiles sum the whole block of K, stored once.
      for (int a = 0; a < block.a_tiles; ++a)
        for (int panel = 0; panel < panels; ++panel) tilezero(block.c_tile(a, panel));
      chunk_loop(qword[args + offsetof(AmxBlockedArgs, chunks)]);  // >= 1, the launcher's rule
      emit_block_sum(block);
    } else {
      Xbyak::Label group_loop;
      mov(group_counter, ptr[args + offsetof(AmxBlockedArgs, groups)]);  // >= 1, the launcher's rule
      L(group_loop);
      for (int a = 0; a < block.a_tiles; ++a)
        for (int panel = 0; panel < panels; ++panel) tilezero(block.c_tile(a, panel));
      mov(scratch, chunks_per_group);
      chunk_loop(scratch);
      emit_group_epilogue(block);
      dec(group_counter);
      jnz(group_loop, T_NEAR);
    }

    Xbyak::Label done;
    cmp(qword[args + offsetof(AmxBlockedArgs, last)], 0);
    je(done, T_NEAR);
    emit_output(block, offsetof(AmxBlockedArgs, bias), offsetof(AmxBlockedArgs, y));
    L(done);
    tilerelease();
    vzeroupper();
  }
  emit_tile_config(panels, rows, config);
}

// Register contract: writes field_mask, exponent (bits 2, 3, 4) and high_bit_mask (bits 3);
// clobbers `scratch`.
void AmxBf16Program::emit_decode_constants(const Reg64& scratch) {
  if (desc_.bits != 8) {
    mov(scratch.cvt32(), both_words(field_mask(desc_.bits, desc_.bits == 3 ? 2 : desc_.bits, 0)));
    vpbroadcastd(Registers::field_mask(), scratch.cvt32());
    mov(scratch.cvt32(), both_words(magic_bf16(desc_.bits)));
    vpbroadcastd(Registers::exponent(), scratch.cvt32());
  }
  if (desc_.bits == 3) {
    mov(scratch.cvt32(), both_words(field_mask(3, 1, 2)));
    vpbroadcastd(Registers::high_bit_mask(), scratch.cvt32());
  }
}

// The decode function of `panels` panels: every chunk of K, in the order the decoded block
// functions read them, [chunk][panel][16 pair rows][64 bytes]. The K tail's chunk (group=-1)
// is zeroed first: its rows past the tail meet zero-padded x and must not be NaN. ranged: the
// AmxBlockedArgs.chunks chunks of one block of K instead (the cache-blocked launcher's).
//
// Register contract: reads BlockArgs.qweight (packed panels) and .y (the 64-byte aligned
// output), or when ranged AmxBlockedArgs.qweight, .decoded and .chunks; zmm as Registers says
// (decoding); general registers through StackFrame. No tiles.
void AmxBf16Program::emit_decode_function(int panels, bool ranged) {
  const NativeGeometry geometry = native_geometry(desc_);
  const int steps_per_chunk = amx_chunk_k / static_cast<int>(geometry.k_per_block);
  // A block of K is whole groups (is_valid: k_block > 0 needs group > 0): no tail.
  const int tail_k = desc_.group == whole_k_group && !ranged ? static_cast<int>(desc_.k % amx_chunk_k) : 0;
  const int64_t whole_chunks = amx_decoded_chunks(desc_) - (tail_k > 0 ? 1 : 0);
  Xbyak::util::StackFrame frame(this, 1, 7, 0);
  const Reg64& w = frame.t[0];
  const Reg64& out = frame.t[1];
  const Reg64& chunk_counter = frame.t[2];
  const Reg64& scratch = frame.t[3];
  const Reg64& scales = frame.t[4];
  const Reg64& zeros = frame.t[5];
  const Reg64& group_counter = frame.t[6];
  // emit_decode_step reads w, base and the geometry; the scaled decode's group scales read
  // scales, zeros and groups; the other registers are unused.
  const bool scaled = ranged && variant_.scaled_decode;
  Block block{TileShape(panels, 1), frame.p[0], scratch, w, scales, zeros, scratch, out, scratch, scratch,
              geometry.panel_bytes, desc_.k * 2, geometry.groups, static_cast<int>(geometry.k_per_block),
              geometry.step_bytes, scratch, 0, 0};
  block.scaled_pairs = scaled;
  if (ranged) {
    mov(w, ptr[frame.p[0] + offsetof(AmxBlockedArgs, qweight)]);
    mov(out, ptr[frame.p[0] + offsetof(AmxBlockedArgs, decoded)]);
  } else {
    mov(w, ptr[frame.p[0] + offsetof(BlockArgs, qweight)]);
    mov(out, ptr[frame.p[0] + offsetof(BlockArgs, y)]);
  }
  emit_decode_constants(scratch);
  if (scaled) {
    // Per group of the block of K: its scales into registers, then its chunks decoded scaled.
    emit_scaled_decode_constants(scratch);
    mov(scales, ptr[frame.p[0] + offsetof(AmxBlockedArgs, scales)]);
    mov(zeros, ptr[frame.p[0] + offsetof(AmxBlockedArgs, zeros)]);
    mov(group_counter, ptr[frame.p[0] + offsetof(AmxBlockedArgs, groups)]);  // >= 1, the launcher's rule
    Xbyak::Label group_loop;
    Xbyak::Label chunk_loop;
    L(group_loop);
    emit_group_scales(block);
    mov(chunk_counter, desc_.group_size() / amx_chunk_k);
    L(chunk_loop);
    for (int panel = 0; panel < panels; ++panel)
      for (int step = 0; step < steps_per_chunk; ++step) emit_decode_step(block, panel, step);
    add(w, static_cast<uint32_t>(steps_per_chunk * geometry.step_bytes));
    add(out, panels * tile_scratch_bytes);
    dec(chunk_counter);
    jnz(chunk_loop, T_NEAR);
    add(scales, native_panel_width * 2);
    add(zeros, native_panel_width * 2);
    dec(group_counter);
    jnz(group_loop, T_NEAR);
  } else if (ranged || whole_chunks > 0) {
    Xbyak::Label chunk_loop;
    if (ranged)
      mov(chunk_counter, ptr[frame.p[0] + offsetof(AmxBlockedArgs, chunks)]);  // >= 1, the launcher's rule
    else
      mov(chunk_counter, whole_chunks);
    L(chunk_loop);
    for (int panel = 0; panel < panels; ++panel)
      for (int step = 0; step < steps_per_chunk; ++step) emit_decode_step(block, panel, step);
    add(w, static_cast<uint32_t>(steps_per_chunk * geometry.step_bytes));
    add(out, panels * tile_scratch_bytes);
    dec(chunk_counter);
    jnz(chunk_loop, T_NEAR);
  }
  if (tail_k > 0) {
    const Zmm zero = Registers::temp(0);
    vpxord(zero, zero, zero);
    for (int row = 0; row < panels * amx_tile_rows; ++row) vmovaps(ptr[out + row * amx_tile_bytes], zero);
    const int tail_steps = (tail_k + static_cast<int>(geometry.k_per_block) - 1) / static_cast<int>(geometry.k_per_block);
    for (int panel = 0; panel < panels; ++panel)
      for (int step = 0; step < tail_steps; ++step) emit_decode_step(block, panel, step);
  }
  vzeroupper();
}

// The 64-byte palette-1 configuration of one block function (Intel SDM, LDTILECFG): byte 0
// palette 1, byte 1 start_row 0, bytes 16 + 2i the bytes per row of tile i, byte 48 + i its
// rows; unused tiles stay 0.
void AmxBf16Program::emit_tile_config(int panels, int rows, Xbyak::Label& config) {
  const TileShape shape(panels, rows);
  uint8_t bytes[64] = {};
  bytes[0] = 1;
  auto set = [&](const Tmm& tile, int tile_rows) {
    bytes[16 + 2 * tile.getIdx()] = amx_tile_bytes;
    bytes[48 + tile.getIdx()] = static_cast<uint8_t>(tile_rows);
  };
  for (int a = 0; a < shape.a_tiles; ++a) {
    for (int panel = 0; panel < panels; ++panel) set(shape.c_tile(a, panel), shape.tile_rows(a));
    set(shape.a_tile(a), shape.tile_rows(a));
  }
  for (int panel = 0; panel < panels; ++panel) set(shape.b_tile(panel), amx_tile_rows);
  align(64);
  L(config);
  for (uint8_t byte : bytes) db(byte);
}

// One native step of one panel into the pair rows of B(panel) it covers: pair p of the step
// is B row step * k_per_step / 2 + p.
//
// Register contract: reads the step's bytes at [w]; writes scratch B rows; clobbers temp(0..3);
// reads field_mask, exponent, high_bit_mask.
void AmxBf16Program::emit_decode_step(const Block& block, int panel, int step) {
  const auto step_address = block.w + panel * block.panel_bytes + step * block.step_bytes;
  auto store_pair = [&](int pair, const Zmm& pairs) {
    const int row = step * block.k_per_step / 2 + pair;
    if (block.scaled_pairs) emit_scale_pairs(pairs, panel);
    vmovaps(ptr[block.base + block.b_offset(panel) + row * amx_tile_bytes], pairs);
  };
  auto shifted = [&](const Zmm& dst, const Zmm& src, int shift) {
    if (shift > 0) vpsllw(dst, src, shift);
    if (shift < 0) vpsrlw(dst, src, -shift);
    if (shift == 0) vmovdqa64(dst, src);
  };
  const int bits = desc_.bits;
  if (bits == 8) {
    // As the avx512_bf16 flavour: integer conversion, exact for 0..255 (code_conversion.h).
    const Zmm low = Registers::temp(0);
    const Zmm high = Registers::temp(1);
    vpmovzxbd(low, ptr[step_address]);
    vpmovzxbd(high, ptr[step_address + 16]);
    vcvtdq2ps(low, low);
    vcvtdq2ps(high, high);
    vcvtne2ps2bf16(low, high, low);  // words 0-15 from the last operand: word i = byte i
    store_pair(0, low);
    return;
  }
  if (bits == 3) {
    // Pair p = ((low plane >> ...) & low mask) | ((high plane << ...) & high bit) | exponent.
    const Zmm high_words = Registers::temp(0);
    const Zmm low_words = Registers::temp(1);
    const Zmm high_bit = Registers::temp(2);
    const Zmm pairs = Registers::temp(3);
    vpmovzxbw(high_words, ptr[step_address + 2 * native_block_bytes]);
    for (int pair = 0; pair < 8; ++pair) {
      if (pair % 4 == 0) vpmovzxbw(low_words, ptr[step_address + pair / 4 * native_block_bytes]);
      shifted(high_bit, high_words, field_shift(3, 1, pair, 2));
      vpternlogd(high_bit, Registers::high_bit_mask(), Registers::exponent(), and_or);
      shifted(pairs, low_words, field_shift(3, 2, pair % 4, 0));
      vpternlogd(pairs, Registers::field_mask(), high_bit, and_or);
      store_pair(pair, pairs);
    }
    return;
  }
  // 2- and 4-bit: field f of each word is pair f; the field already in place (4-bit: 0, 2-bit:
  // 2) is decoded last, in the widened words themselves.
  const Zmm words = Registers::temp(0);
  const Zmm pairs = Registers::temp(1);
  vpmovzxbw(words, ptr[step_address]);
  int in_place = -1;
  for (int field = 0; field < 8 / bits; ++field) {
    const int shift = field_shift(bits, bits, field, 0);
    if (shift == 0) {
      in_place = field;
      continue;
    }
    shifted(pairs, words, shift);
    vpternlogd(pairs, Registers::field_mask(), Registers::exponent(), and_or);
    store_pair(field, pairs);
  }
  vpternlogd(words, Registers::field_mask(), Registers::exponent(), and_or);
  store_pair(in_place, words);
}

// The K tail of group=-1: x's last tail_k columns of every row, zero-padded to 32, into
// scratch, so that the A tiles neither read past x nor multiply garbage.
//
// Register contract: reads [x] (rows x tail_k bf16), k3 (tail_k low bits); clobbers temp(0).
void AmxBf16Program::emit_stage_x_tail(const Block& block, int tail_k) {
  static_cast<void>(tail_k);  // k3 holds it
  const Zmm staged = Registers::temp(0);
  for (int row = 0; row < block.rows; ++row) {
    vmovdqu16(staged | k3 | T_z, ptr[block.x + row * block.x_row_bytes]);
    vmovaps(ptr[block.base + block.x_tail_offset() + row * amx_tile_bytes], staged);
  }
}

// One chunk's products: C(a, p) += A(a) . B(p), A from x (or from the staged K tail, or from
// packed x when block.x_tile_bytes > 0), B from scratch (or from the decoded chunk at [w]).
// Register contract: reads [x] or the staged tail, scratch B or [w]; updates the C tiles; loads
// A, B.
void AmxBf16Program::emit_tile_products(const Block& block, bool x_from_scratch, bool b_decoded) {
  for (int a = 0; a < block.a_tiles; ++a) {
    if (x_from_scratch)
      tileloadd(block.a_tile(a), ptr[block.base + block.tile_stride + block.x_tail_offset() + a * tile_scratch_bytes]);
    else if (block.x_tile_bytes > 0)  // packed: a tile's 16 rows are 1 KB in a row
      tileloadd(block.a_tile(a), ptr[block.x + block.tile_stride + a * block.x_tile_bytes]);
    else
      tileloadd(block.a_tile(a), ptr[block.x + block.x_stride + a * amx_tile_rows * block.x_row_bytes]);
  }
  for (int panel = 0; panel < block.panels; ++panel)
    tileloadd(block.b_tile(panel), ptr[(b_decoded ? block.w : block.base) + block.tile_stride + block.b_offset(panel)]);
  for (int a = 0; a < block.a_tiles; ++a)
    for (int panel = 0; panel < block.panels; ++panel)
      tdpbf16ps(block.c_tile(a, panel), block.a_tile(a), block.b_tile(panel));
}

// The current group's scale and (offset + zero) * scale of every panel, as fp32.
// Register contract: reads [scales], [zeros] at the current group (block.groups groups per
// panel); writes scale(p), offset_zero(p).
void AmxBf16Program::emit_group_scales(const Block& block) {
  const int64_t table_panel_bytes = block.groups * native_panel_width * 2;  // scales/zeros per panel
  for (int panel = 0; panel < block.panels; ++panel) {
    const Zmm scale = Registers::scale(panel);
    const Zmm offset_zero = Registers::offset_zero(panel);
    vcvtph2ps(scale, ptr[block.scales + panel * table_panel_bytes]);
    if (desc_.zero == ZeroPoint::none) {
      vbroadcastss(offset_zero, ptr[rip + constants_ + 4]);
    } else {
      vcvtph2ps(offset_zero, ptr[block.zeros + panel * table_panel_bytes]);
      if (code_offset(desc_.bits) != 0) vaddps(offset_zero, offset_zero, ptr_b[rip + constants_]);
    }
    vmulps(offset_zero, offset_zero, scale);
  }
}

// The scaled decode of one B row in place: each bf16 (offset + q) of `pairs` becomes
// bf16(s * (q - zero)), computed as one fp32 FMA, (offset + q) * s - (offset + zero) * s, and
// rounded once to bf16 (round to nearest even). (offset + zero) * s is itself an fp32 product:
// its rounding, 2^-24 of (offset + zero) * s, is below 2^-17 of a typical s * |q - z| (offset
// 8..136 over |q - z| ~ 2^(bits-2)), far under bf16's 2^-9, so the weight is in effect rounded
// once. zero=float: (offset + zero) is an fp32 sum of an fp16 zero and a power of two, exact
// for zeros down to 2^-16 of the offset; zero=none: the implicit 2^(bits-1).
//
// Register contract: reads scale(panel), offset_zero(panel), pair_interleave, k4 (odd words);
// updates `pairs`; clobbers temp(4), temp(5).
void AmxBf16Program::emit_scale_pairs(const Zmm& pairs, int panel) {
  const Zmm even = Registers::temp(4);
  const Zmm odd = Registers::temp(5);
  vpslld(even, pairs, 16);            // the low word of each dword (k even) as fp32
  vmovdqu16(odd | k4 | T_z, pairs);   // the high word (k odd) as fp32: low word cleared
  vfmsub213ps(even, Registers::scale(panel), Registers::offset_zero(panel));
  vfmsub213ps(odd, Registers::scale(panel), Registers::offset_zero(panel));
  vcvtne2ps2bf16(pairs, odd, even);   // words 0-15: even k of columns 0-15, words 16-31: odd k
  vpermw(pairs, Registers::pair_interleave(), pairs);
}

// Register contract: writes pair_interleave and k4; clobbers `scratch`.
void AmxBf16Program::emit_scaled_decode_constants(const Reg64& scratch) {
  vmovdqa64(Registers::pair_interleave(), ptr[rip + constants_ + 64]);
  mov(scratch.cvt32(), 0xAAAAAAAAu);
  kmovd(k4, scratch.cvt32());
}

// The C tiles of a whole block of K (scaled decode: the scales are in B) into the accumulators:
// acc += C, per row and column.
// Register contract: reads the C tiles; updates the accumulators; clobbers temp(0), temp(1).
void AmxBf16Program::emit_block_sum(const Block& block) {
  const Zmm products = Registers::temp(0);
  const Zmm accumulator = Registers::temp(1);
  for (int a = 0; a < block.a_tiles; ++a)
    for (int panel = 0; panel < block.panels; ++panel) {
      tilestored(ptr[block.base + block.tile_stride + block.c_offset()], block.c_tile(a, panel));
      for (int tile_row = 0; tile_row < block.tile_rows(a); ++tile_row) {
        const auto accumulator_address = ptr[block.accumulators + block.accumulator_at(a * amx_tile_rows + tile_row, panel)];
        vmovaps(products, ptr[block.base + block.c_offset() + tile_row * amx_tile_bytes]);
        vaddps(accumulator, products, accumulator_address);
        vmovaps(accumulator_address, accumulator);
      }
    }
}

// End of a group: acc += scale * C - (offset + zero) * scale * sum_x, per row and column.
// Register contract: reads scales/zeros/sums at the current group and the C tiles; updates the
// scratch accumulators; clobbers temp(0), temp(1), scale(p), offset_zero(p); advances scales,
// zeros and sums by one group.
void AmxBf16Program::emit_group_epilogue(const Block& block) {
  emit_group_scales(block);
  const Zmm products = Registers::temp(0);
  const Zmm accumulator = Registers::temp(1);
  for (int a = 0; a < block.a_tiles; ++a)
    for (int panel = 0; panel < block.panels; ++panel) {
      tilestored(ptr[block.base + block.tile_stride + block.c_offset()], block.c_tile(a, panel));
      for (int tile_row = 0; tile_row < block.tile_rows(a); ++tile_row) {
        const int row = a * amx_tile_rows + tile_row;
        const auto accumulator_address = ptr[block.accumulators + block.accumulator_at(row, panel)];
        vmovaps(products, ptr[block.base + block.c_offset() + tile_row * amx_tile_bytes]);
        vmovaps(accumulator, accumulator_address);
        vfmadd231ps(accumulator, products, Registers::scale(panel));
        vfnmadd231ps(accumulator, Registers::offset_zero(panel), ptr_b[block.sums + row * block.groups * 4]);
        vmovaps(accumulator_address, accumulator);
      }
    }
  add(block.scales, native_panel_width * 2);
  add(block.zeros, native_panel_width * 2);
  add(block.sums, 4);
}

// Bias, conversion to the output dtype, masked stores (k2 on the last panel).
// Register contract: reads the accumulators and the arguments' bias and y at bias_offset and
// y_offset (into w and x, no longer needed); writes [y]; clobbers temp(0), bias(p).
void AmxBf16Program::emit_output(const Block& block, std::size_t bias_offset, std::size_t y_offset) {
  const Reg64& bias = block.w;
  const Reg64& y = block.x;
  mov(bias, ptr[block.args + bias_offset]);
  mov(y, ptr[block.args + y_offset]);
  auto mask_of = [&](int panel) -> const Xbyak::Opmask& { return panel == block.panels - 1 ? k2 : k1; };
  if (desc_.bias) {  // bf16, as act
    for (int panel = 0; panel < block.panels; ++panel) {
      vpmovzxwd(Registers::bias(panel) | mask_of(panel) | T_z, ptr[bias + panel * native_panel_width * 2]);
      vpslld(Registers::bias(panel), Registers::bias(panel), 16);
    }
  }
  const int64_t y_row_bytes = desc_.n * dtype_bytes(desc_.out);
  const int64_t y_panel_bytes = native_panel_width * dtype_bytes(desc_.out);
  const Zmm value = Registers::temp(0);
  const Ymm narrow = Ymm(Registers::temp(1).getIdx());
  for (int row = 0; row < block.rows; ++row)
    for (int panel = 0; panel < block.panels; ++panel) {
      vmovaps(value, ptr[block.accumulators + block.accumulator_at(row, panel)]);
      if (desc_.bias) vaddps(value, value, Registers::bias(panel));
      auto address = ptr[y + row * y_row_bytes + panel * y_panel_bytes];
      switch (desc_.out) {
        case DType::fp32: vmovups(address | mask_of(panel), value); break;
        case DType::fp16:
          vcvtps2ph(narrow, value, 0);  // imm 0: round to nearest even
          vmovdqu16(address | mask_of(panel), narrow);
          break;
        case DType::bf16:
          vcvtneps2bf16(narrow, value);
          vmovdqu16(address | mask_of(panel), narrow);
          break;
      }
    }
}

Validity AmxBf16Generator::is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  for (const char* feature : {"amx_tile", "amx_bf16", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"})
    if (!cpu.has(feature)) return refuse(fmt::format("this CPU lacks {}", feature));
  if (variant.isa != X86Isa::amx_bf16) return refuse("the AMX generator emits the amx_bf16 flavour only");
  if (desc.act != DType::bf16) return refuse("amx_bf16 needs act=bf16 (tdpbf16ps multiplies bf16 x as given)");
  // As the avx512_bf16 flavour: x * eq_scale rounded back to bf16 would cost ~1e-3 on outputs.
  if (desc.eqscale) return refuse("eqscale=1 is computed by the avx512_fma flavour (exact fp32 scaling)");
  if (variant.m_rows != amx_tile_rows && variant.m_rows != amx_max_rows)
    return refuse(fmt::format("amx_bf16 blocks are one or two 16-row tiles: m_rows must be 16 or 32, not {}",
                              variant.m_rows));
  if (variant.n_panels < 1 || !amx_block_fits(variant.m_rows / amx_tile_rows, variant.n_panels))
    return refuse(fmt::format("{} panels x {} rows need more than the 8 tile registers (m_rows=16: n_panels 1..3; "
                              "m_rows=32: 1..2)",
                              variant.n_panels, variant.m_rows));
  if (variant.k_unroll != 1) return refuse("amx_bf16 steps 32 k per tile product: k_unroll must be 1");
  // Split-K is for small N at small M; AMX serves M >= 4, where blocks of rows and panels
  // give the threads their work.
  if (variant.split_k != 1) return refuse("amx_bf16 does not split K: split_k must be 1");
  if (variant.k_block < 0) return refuse("k_block must be >= 0 (0: K not blocked)");
  if (variant.k_block > 0 && desc.group == whole_k_group)
    return refuse("k_block > 0 needs group > 0 (a block of K is whole groups); group=-1 runs with k_block=0");
  if (variant.k_block > 0 && variant.k_block % desc.group != 0)
    return refuse(fmt::format("k_block={} must be a multiple of the group ({})", variant.k_block, desc.group));
  if (variant.scaled_decode != 0 && variant.scaled_decode != 1)
    return refuse(fmt::format("scaled_decode must be 0 or 1, not {}", variant.scaled_decode));
  // Only the cache-blocked decode folds the scales in (its blocks of K are whole groups).
  if (variant.scaled_decode == 1 && variant.k_block == 0)
    return refuse("scaled_decode=1 needs k_block > 0 (the cache-blocked functions fold the scales into the decoded "
                  "weights); with k_block=0 the scales apply per group");
  Validity common = check_float_variant(desc, variant, amx_max_rows * 3, "8 tile registers");
  if (!common) return common;
  const AmxPermission& permission = request_amx_permission();
  if (!permission.granted) return refuse("the process may not use AMX tiles: " + permission.reason);
  return {};
}

std::vector<X86Variant> AmxBf16Generator::candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const {
  std::vector<X86Variant> variants;
  if (desc.m != 0 && desc.m < min_rows) return variants;
  // Two A tiles only where there are rows for them (m=0 is timed at any_m_rows = 16 rows).
  std::vector<int> heights{amx_tile_rows};
  if (desc.m > amx_tile_rows) heights.push_back(amx_max_rows);
  for (int rows : heights)
    for (int panels = 1; panels <= 3; ++panels)
      for (int k_block : candidate_k_blocks(desc))
        for (int scaled : {0, 1}) {
          if (scaled == 1 && (k_block == 0 || !offers_scaled_decode(desc))) continue;
          X86Variant variant{X86Isa::amx_bf16, panels, rows, 1, variant_threads(desc, max_threads), 1, k_block, scaled};
          if (is_valid(desc, variant, cpu)) variants.push_back(variant);
        }
  return variants;
}

// n2m16 up to one tile of rows: the fastest AMX block at M = 4, 8 and 16 on the Xeon (4096x4096
// and 28672x4096; at 28672x4096, M=16, 905 us against n3m16's 1474). Above one tile with
// group > 0: n2m16, k_block 1024, scaled_decode (docs/benchmarks.md, 2026-11-22 scaled decode:
// the fastest median of the variants timed on 7 of the 8 rows at M=64 and 256, 9-57 % ahead of
// the unscaled n2m32 kb1024 of before); group=-1: n2m32 unblocked, as before.
X86Variant AmxBf16Generator::heuristic(const OpDesc& desc, const CpuInfo&, int max_threads) const {
  const bool two_tiles = desc.m > amx_tile_rows;
  const int k_block = heuristic_k_block(desc);
  const bool scaled = k_block > 0 && offers_scaled_decode(desc);
  const int rows = two_tiles && !scaled ? amx_max_rows : amx_tile_rows;
  return X86Variant{X86Isa::amx_bf16, 2, rows, 1, variant_threads(desc, max_threads), 1, k_block, scaled ? 1 : 0};
}

bool AmxBf16Generator::offers_scaled_decode(const OpDesc& desc) { return desc.m > amx_tile_rows; }

std::vector<int> AmxBf16Generator::candidate_k_blocks(const OpDesc& desc) {
  std::vector<int> k_blocks{0};
  if (desc.group == whole_k_group) return k_blocks;
  // 512 was timed too (docs/benchmarks.md) and was the fastest on none of the shapes: pruned.
  for (int k_block : {1024, 2048})
    if (k_block % desc.group == 0 && k_block <= desc.k) k_blocks.push_back(k_block);
  return k_blocks;
}

int AmxBf16Generator::heuristic_k_block(const OpDesc& desc) {
  // Blocking pays where several row blocks share each decoded block of K (m=0: tuned at 16 rows).
  if (desc.group == whole_k_group || desc.m <= amx_tile_rows) return 0;
  const std::vector<int> k_blocks = candidate_k_blocks(desc);
  for (int k_block : k_blocks)
    if (k_block == heuristic_k_block_size) return k_block;
  return k_blocks.back();
}

std::unique_ptr<AmxBf16Program> AmxBf16Generator::emit(const OpDesc& desc, const X86Variant& variant) const {
  return emit_valid<AmxBf16Program>(*this, desc, variant);
}

}  // namespace lowbit::x86
