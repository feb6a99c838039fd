#include "codegen/x86/amx_int8_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <limits>

#include <xbyak/xbyak_util.h>

#include "codegen/x86/activation_quantizer.h"
#include "codegen/x86/int8_code_decoder.h"
#include "codegen/x86/int8_variant_checks.h"
#include "core/amx_permission.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"
#include "lowbit/reference.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Opmask;
using Xbyak::Reg64;
using Xbyak::Tmm;
using Xbyak::Ymm;
using Xbyak::Zmm;

constexpr int tile_scratch_bytes = amx_tile_rows * amx_tile_bytes;  // one whole tile in memory

// Zmm use: per panel p (at most 3), its group's scale and zero' * scale in 2p, 2p + 1, then its
// bias in 8 + p; temporaries of the epilogues in 6, 7 and 11; the decoder's masks and
// temporaries at the top (25..31).
struct Registers {
  static Zmm scale(int panel) { return Zmm(2 * panel); }
  static Zmm zero_scale(int panel) { return Zmm(2 * panel + 1); }
  static Zmm bias(int panel) { return Zmm(8 + panel); }
  static Zmm temp(int index) { return Zmm(index == 2 ? 11 : 6 + index); }  // temp(0..2)
  static Int8DecoderRegisters decoder() { return {Zmm(31), Zmm(30), {Zmm(29), Zmm(28), Zmm(27), Zmm(26), Zmm(25)}}; }
};

// The tiles and scratch of a block of `rows` rows of xq (a_tiles A tiles) times `panels`
// 16-column panels.
//
// Tiles: C(a, p) = tmm(a * panels + p), then A(a), then B(p). Scratch (stack, 64-byte
// aligned): B(p) as [16 quads of k][16 columns][4 codes] (1 KB each), one C tile stored for the
// epilogue (1 KB), and the fp32 accumulators [rows][panels][16].
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
  int accumulator_offset(int row, int panel) const {
    return c_offset() + tile_scratch_bytes + (row * panels + panel) * amx_tile_bytes;
  }
  int scratch_bytes() const { return accumulator_offset(rows, 0); }
};

// k per tile product: a whole chunk where the activation block holds one (every block of 64 k
// or more: 64 divides 64, 128, 256), else the block (group=32).
int chunk_k(const OpDesc& desc) {
  return static_cast<int>(std::min<int64_t>(amx_int8_chunk_k, int8_block_size(desc)));
}

}  // namespace

// The shape, pointer registers and geometry of the block function being emitted.
struct AmxInt8Program::Block : TileShape {
  Reg64 args;         // BlockArgs*, kept for the output pointers
  Reg64 x;            // xq of the first row at the current chunk
  Reg64 w;            // first panel, first step of the current chunk
  Reg64 scales;       // fp16 [panel][group][16] at the current group
  Reg64 zeros;        // same shape
  Reg64 factors;      // Int8BlockFactors of the first row at the current activation block
  Reg64 base;         // scratch, 64-byte aligned
  Reg64 x_stride;     // bytes between rows of xq: the A tiles' stride
  Reg64 tile_stride;  // 64: the stride of every tile kept in scratch
  Reg64 chunk_counter;
  NativeGeometry geometry;
  int64_t x_row_bytes;
  int steps_per_chunk;
};

AmxInt8Program::AmxInt8Program(const OpDesc& desc, const X86Variant& variant) : BlockProgram(desc, variant) {
  // is_valid refuses split_k > 1, so the one range is the whole of K.
  emit_block_functions([&](int panels, int rows, const KRange&) { emit_block_function(panels, rows); });
  emit_constants();
  finalize();
}

void AmxInt8Program::emit_constants() {
  align(64);
  L(constants_);
  // [0] zero' of zero=none: the implicit zero point 2^(bits-1).
  dd(std::bit_cast<uint32_t>(static_cast<float>(1 << (desc_.bits - 1))));
  // [1], [2]: round-to-nearest-even of fp32 -> bf16 by integer arithmetic, as the VNNI family
  // (AMX-INT8 CPUs need not be asked for AVX512_BF16).
  dd(1);
  dd(0x7fff);
}

// One block function: rows x panels outputs, the whole of K.
//
// Register contract (per function): reads BlockArgs through the first argument (x: the
// quantized rows; group_sums: the Int8BlockFactors of the first row); tmm0..7 as TileShape
// says (configured here, released at the end); zmm as Registers says; k1 (all 16 columns), k2
// (the last panel's columns); general registers through StackFrame (callee-saved ones are
// saved).
void AmxInt8Program::emit_block_function(int panels, int rows) {
  const NativeGeometry geometry = native_geometry(desc_);
  const Int8ActivationLayout layout = int8_activation_layout(desc_);
  const int64_t block_k = int8_block_size(desc_);
  const int64_t steps_per_block = block_k / geometry.k_per_block;  // every k_per_block divides 32
  const int64_t full_blocks = desc_.k / block_k;
  const int64_t tail_steps = geometry.steps - full_blocks * steps_per_block;  // group=-1 only
  Xbyak::Label config;
  {
    const TileShape shape(panels, rows);
    Xbyak::util::StackFrame frame(this, 1, 11, shape.scratch_bytes() + 64);
    const Reg64& block_counter = frame.t[9];
    const Reg64& scratch = frame.t[10];
    const Block block{shape,      frame.p[0], frame.t[0], frame.t[1], frame.t[2],
                      frame.t[3], frame.t[4], frame.t[5], frame.t[6], frame.t[7],
                      frame.t[8], geometry,   layout.row_bytes,
                      static_cast<int>(chunk_k(desc_) / geometry.k_per_block)};
    const Reg64& args = block.args;

    // Whole 64-byte rows on 64-byte lines: tile loads and stores never split a line.
    lea(block.base, ptr[rsp + 63]);
    and_(block.base, -64);
    ldtilecfg(ptr[rip + config]);
    mov(block.x, ptr[args + offsetof(BlockArgs, x)]);
    mov(block.factors, ptr[args + offsetof(BlockArgs, group_sums)]);
    mov(block.w, ptr[args + offsetof(BlockArgs, qweight)]);
    mov(block.scales, ptr[args + offsetof(BlockArgs, scales)]);
    mov(block.zeros, ptr[args + offsetof(BlockArgs, zeros)]);
    mov(block.x_stride, block.x_row_bytes);
    mov(block.tile_stride, amx_tile_bytes);
    mov(scratch.cvt32(), 0xffff);
    kmovw(k1, scratch.cvt32());
    kmovw(k2, ptr[args + offsetof(BlockArgs, last_panel_mask)]);
    Int8CodeDecoder(*this, desc_.bits, Registers::decoder()).emit_masks(scratch.cvt32());

    const Zmm zero = Registers::temp(0);
    vpxord(zero, zero, zero);
    for (int row = 0; row < rows; ++row)
      for (int panel = 0; panel < panels; ++panel) vmovaps(ptr[block.base + block.accumulator_offset(row, panel)], zero);

    if (full_blocks > 0) {
      Xbyak::Label block_loop;
      mov(block_counter, full_blocks);
      L(block_loop);
      emit_activation_block(block, steps_per_block);
      dec(block_counter);
      jnz(block_loop, T_NEAR);
    }
    if (tail_steps > 0) emit_activation_block(block, tail_steps);

    emit_output(block);
    tilerelease();
    vzeroupper();
  }
  emit_tile_config(panels, rows, config);
}

// Register contract: zeroes and fills the C tiles; what emit_chunk and emit_block_epilogue
// read, write and clobber; clobbers chunk_counter.
void AmxInt8Program::emit_activation_block(const Block& block, int64_t steps) {
  for (int a = 0; a < block.a_tiles; ++a)
    for (int panel = 0; panel < block.panels; ++panel) tilezero(block.c_tile(a, panel));
  const int64_t chunks = steps / block.steps_per_chunk;
  const int leftover = static_cast<int>(steps % block.steps_per_chunk);  // the K tail of group=-1
  if (chunks > 1) {
    Xbyak::Label chunk_loop;
    mov(block.chunk_counter, chunks);
    L(chunk_loop);
    emit_chunk(block, block.steps_per_chunk);
    dec(block.chunk_counter);
    jnz(chunk_loop, T_NEAR);
  } else if (chunks == 1) {
    emit_chunk(block, block.steps_per_chunk);
  }
  // The K tail: fewer steps decoded, but the A tiles still read a whole chunk of xq per row.
  // That stays inside the row (the chunk starts at a multiple of 64 below K, and rows are
  // padded to a multiple of 64 at or past K: activation_quantizer.h), and the padding is 0, so
  // the B rows left from the previous chunk (or never written) meet zeros: their integer
  // products add nothing.
  if (leftover > 0) emit_chunk(block, leftover);
  emit_block_epilogue(block);
}

// Register contract: reads the chunk's steps at [w] and xq at [x]; writes scratch B; updates
// the C tiles, loads A and B tiles; clobbers the decoder's registers; advances x and w by
// `steps` steps.
void AmxInt8Program::emit_chunk(const Block& block, int steps) {
  for (int panel = 0; panel < block.panels; ++panel) emit_decode(block, panel, steps);
  emit_tile_products(block);
  add(block.x, static_cast<uint32_t>(steps * block.geometry.k_per_block));
  add(block.w, static_cast<uint32_t>(steps * block.geometry.step_bytes));
}

// `steps` steps of one panel into B(panel): the quad of k 4r..4r+3 (from the chunk's first k)
// is B row r. 8-bit steps hold 2 k, so each row takes two steps (or the tail's last one).
//
// Register contract: reads the steps' bytes; writes scratch B rows; clobbers the decoder's
// temporaries; reads its masks.
void AmxInt8Program::emit_decode(const Block& block, int panel, int steps) {
  const Int8CodeDecoder decoder(*this, desc_.bits, Registers::decoder());
  const NativeGeometry& geometry = block.geometry;
  const Xbyak::RegExp panel_address = block.w + panel * geometry.panel_bytes;
  auto store_row = [&](int k_offset) {
    return [this, &block, panel, k_offset](int quad_offset, const Zmm& codes) {
      const int row = (k_offset + quad_offset) / 4;
      vmovdqa32(ptr[block.base + block.b_offset(panel) + row * amx_tile_bytes], codes);
    };
  };
  if (desc_.bits == 8) {
    for (int step = 0; step < steps; step += 2)
      decoder.decode_8bit_quad(panel_address + step * geometry.step_bytes, step + 1 < steps, store_row(2 * step));
    return;
  }
  for (int step = 0; step < steps; ++step)
    decoder.decode_step(panel_address + step * geometry.step_bytes,
                        store_row(step * static_cast<int>(geometry.k_per_block)));
}

// One chunk's products: C(a, p) += A(a) . B(p) by tdpbsud (A's bytes signed, B's unsigned).
// Register contract: reads [x] (a_tiles tiles of xq rows), scratch B; updates the C tiles.
void AmxInt8Program::emit_tile_products(const Block& block) {
  for (int a = 0; a < block.a_tiles; ++a)
    tileloadd(block.a_tile(a), ptr[block.x + block.x_stride + a * amx_tile_rows * block.x_row_bytes]);
  for (int panel = 0; panel < block.panels; ++panel)
    tileloadd(block.b_tile(panel), ptr[block.base + block.tile_stride + block.b_offset(panel)]);
  for (int a = 0; a < block.a_tiles; ++a)
    for (int panel = 0; panel < block.panels; ++panel)
      tdpbsud(block.c_tile(a, panel), block.a_tile(a), block.b_tile(panel));
}

// After each activation block: acc += scale * (C * sx - zero' * sx * sum xq), per row and
// column (the VNNI family's epilogue, with C from a tile stored in scratch).
// Register contract: reads scales/zeros at the block's group, factors at the block, the C
// tiles; updates the scratch accumulators; clobbers temp(0..1), scale(p), zero_scale(p);
// advances factors one block and, when the next block is the next group (group > 0), scales
// and zeros one group.
void AmxInt8Program::emit_block_epilogue(const Block& block) {
  const int64_t table_panel_bytes = block.geometry.groups * native_panel_width * 2;  // scales/zeros per panel
  const int64_t factor_row_bytes = int8_activation_layout(desc_).blocks * int64_t{sizeof(Int8BlockFactors)};
  for (int panel = 0; panel < block.panels; ++panel) {
    const Zmm scale = Registers::scale(panel);
    const Zmm zero_scale = Registers::zero_scale(panel);
    vcvtph2ps(scale, ptr[block.scales + panel * table_panel_bytes]);
    if (desc_.zero == ZeroPoint::none)
      vbroadcastss(zero_scale, ptr[rip + constants_]);
    else
      vcvtph2ps(zero_scale, ptr[block.zeros + panel * table_panel_bytes]);
    vmulps(zero_scale, zero_scale, scale);
  }
  const Zmm products = Registers::temp(0);
  const Zmm accumulator = Registers::temp(1);
  for (int a = 0; a < block.a_tiles; ++a)
    for (int panel = 0; panel < block.panels; ++panel) {
      tilestored(ptr[block.base + block.tile_stride + block.c_offset()], block.c_tile(a, panel));
      for (int tile_row = 0; tile_row < block.tile_rows(a); ++tile_row) {
        const int row = a * amx_tile_rows + tile_row;
        const auto row_factors = block.factors + row * factor_row_bytes;
        const auto accumulator_address = ptr[block.base + block.accumulator_offset(row, panel)];
        vcvtdq2ps(products, ptr[block.base + block.c_offset() + tile_row * amx_tile_bytes]);
        vmulps(products, products, Registers::scale(panel));
        vmovaps(accumulator, accumulator_address);
        vfmadd231ps(accumulator, products, ptr_b[row_factors + offsetof(Int8BlockFactors, scale)]);
        vfnmadd231ps(accumulator, Registers::zero_scale(panel), ptr_b[row_factors + offsetof(Int8BlockFactors, scaled_sum)]);
        vmovaps(accumulator_address, accumulator);
      }
    }
  add(block.factors, static_cast<uint32_t>(sizeof(Int8BlockFactors)));
  if (desc_.group != whole_k_group) {
    add(block.scales, native_panel_width * 2);
    add(block.zeros, native_panel_width * 2);
  }
}

// Bias (act dtype), conversion to the output dtype, masked stores (k2 on the last panel).
// Register contract: reads the accumulators and BlockArgs' bias and y (into w and x, no longer
// needed); writes [y]; clobbers temp(0..2), bias(p).
void AmxInt8Program::emit_output(const Block& block) {
  const Reg64& bias = block.w;
  const Reg64& y = block.x;
  mov(bias, ptr[block.args + offsetof(BlockArgs, bias)]);
  mov(y, ptr[block.args + offsetof(BlockArgs, y)]);
  auto mask_of = [&](int panel) -> const Opmask& { return panel == block.panels - 1 ? k2 : k1; };
  if (desc_.bias) {
    const int64_t bias_panel_bytes = native_panel_width * dtype_bytes(desc_.act);
    for (int panel = 0; panel < block.panels; ++panel) {
      const Zmm value = Registers::bias(panel);
      auto address = ptr[bias + panel * bias_panel_bytes];
      switch (desc_.act) {
        case DType::fp32: vmovups(value | mask_of(panel) | T_z, address); break;
        case DType::bf16:
          vpmovzxwd(value | mask_of(panel) | T_z, address);
          vpslld(value, value, 16);
          break;
        case DType::fp16: vcvtph2ps(value | mask_of(panel) | T_z, address); break;
      }
    }
  }
  const int64_t y_row_bytes = desc_.n * dtype_bytes(desc_.out);
  const int64_t y_panel_bytes = native_panel_width * dtype_bytes(desc_.out);
  const Zmm value = Registers::temp(0);
  const Zmm rounded = Registers::temp(1);
  const Ymm narrow = Ymm(Registers::temp(2).getIdx());
  for (int row = 0; row < block.rows; ++row)
    for (int panel = 0; panel < block.panels; ++panel) {
      vmovaps(value, ptr[block.base + block.accumulator_offset(row, panel)]);
      if (desc_.bias) vaddps(value, value, Registers::bias(panel));
      auto address = ptr[y + row * y_row_bytes + panel * y_panel_bytes];
      switch (desc_.out) {
        case DType::fp32: vmovups(address | mask_of(panel), value); break;
        case DType::fp16:
          vcvtps2ph(narrow, value, 0);  // imm 0: round to nearest even
          vmovdqu16(address | mask_of(panel), narrow);
          break;
        case DType::bf16:
          // bits + 0x7fff + ((bits >> 16) & 1), then the high half: round to nearest even.
          vpsrld(rounded, value, 16);
          vpandd(rounded, rounded, ptr_b[rip + constants_ + 4]);
          vpaddd(rounded, rounded, ptr_b[rip + constants_ + 8]);
          vpaddd(rounded, rounded, value);
          vpsrld(rounded, rounded, 16);
          vpmovdw(address | mask_of(panel), rounded);
          break;
      }
    }
}

// The 64-byte palette-1 configuration of one block function (Intel SDM, LDTILECFG): byte 0
// palette 1, bytes 16 + 2i the bytes per row of tile i, byte 48 + i its rows; unused tiles
// stay 0. A: chunk_k bytes of xq per row; B: chunk_k / 4 quads of 16 columns; C: int32 rows.
void AmxInt8Program::emit_tile_config(int panels, int rows, Xbyak::Label& config) {
  const TileShape shape(panels, rows);
  const int chunk = chunk_k(desc_);
  uint8_t bytes[64] = {};
  bytes[0] = 1;
  auto set = [&](const Tmm& tile, int tile_rows, int row_bytes) {
    bytes[16 + 2 * tile.getIdx()] = static_cast<uint8_t>(row_bytes);
    bytes[48 + tile.getIdx()] = static_cast<uint8_t>(tile_rows);
  };
  for (int a = 0; a < shape.a_tiles; ++a) {
    for (int panel = 0; panel < panels; ++panel) set(shape.c_tile(a, panel), shape.tile_rows(a), amx_tile_bytes);
    set(shape.a_tile(a), shape.tile_rows(a), chunk);
  }
  for (int panel = 0; panel < panels; ++panel) set(shape.b_tile(panel), chunk / 4, amx_tile_bytes);
  align(64);
  L(config);
  for (uint8_t byte : bytes) db(byte);
}

Validity AmxInt8Generator::is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  for (const char* feature : {"amx_tile", "amx_int8", "avx512f", "avx512bw", "avx512vl"})
    if (!cpu.has(feature)) return refuse(fmt::format("this CPU lacks {}", feature));
  if (variant.isa != X86Isa::amx_int8) return refuse("the AMX-INT8 generator emits the amx_int8 flavour only");
  if (Validity common = check_int8_descriptor(desc, "amx_int8", "amx_bf16, avx512 or avx2"); !common) return common;
  if (variant.m_rows != amx_tile_rows && variant.m_rows != amx_max_rows)
    return refuse(fmt::format("amx_int8 blocks are one or two 16-row tiles: m_rows must be 16 or 32, not {}",
                              variant.m_rows));
  if (variant.n_panels < 1 || !amx_block_fits(variant.m_rows / amx_tile_rows, variant.n_panels))
    return refuse(fmt::format("{} panels x {} rows need more than the 8 tile registers (m_rows=16: n_panels 1..3; "
                              "m_rows=32: 1..2)",
                              variant.n_panels, variant.m_rows));
  if (variant.k_unroll != 1) return refuse("amx_int8 steps one chunk of k per tile product: k_unroll must be 1");
  // As amx_bf16: AMX serves M >= 16, where blocks of rows and panels give the threads their work.
  if (variant.split_k != 1) return refuse("amx_int8 does not split K: split_k must be 1");
  if (variant.k_block != 0) return refuse("only amx_bf16 blocks K for the caches: k_block must be 0");
  if (Validity prefetch = check_prefetch(variant); !prefetch) return prefetch;
  if (variant.threads < 1) return refuse("threads must be >= 1");
  if (Validity displacements = check_int8_displacements(desc, variant, "tile block"); !displacements)
    return displacements;
  const AmxPermission& permission = request_amx_permission();
  if (!permission.granted) return refuse("the process may not use AMX tiles: " + permission.reason);
  return {};
}

std::vector<X86Variant> AmxInt8Generator::candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const {
  std::vector<X86Variant> variants;
  if (desc.m != 0 && desc.m < min_rows) return variants;
  // Two A tiles only where there are rows for them (m=0 is timed at any_m_rows = 16 rows).
  std::vector<int> heights{amx_tile_rows};
  if (desc.m > amx_tile_rows) heights.push_back(amx_max_rows);
  for (int rows : heights)
    for (int panels = 1; amx_block_fits(rows / amx_tile_rows, panels); ++panels) {
      X86Variant variant{X86Isa::amx_int8, panels, rows, 1, variant_threads(desc, max_threads)};
      if (is_valid(desc, variant, cpu)) variants.push_back(variant);
    }
  return variants;
}

// As the AMX-BF16 family's: the widest block of the tile rows M fills. Not measured against
// the VNNI kernels yet (docs/benchmarks.md); tuning times both.
X86Variant AmxInt8Generator::heuristic(const OpDesc& desc, const CpuInfo&, int max_threads) const {
  const bool two_tiles = desc.m > amx_tile_rows;
  return X86Variant{X86Isa::amx_int8, two_tiles ? 2 : 3, two_tiles ? amx_max_rows : amx_tile_rows, 1,
                    variant_threads(desc, max_threads)};
}

std::unique_ptr<AmxInt8Program> AmxInt8Generator::emit(const OpDesc& desc, const X86Variant& variant) const {
  return emit_valid<AmxInt8Program>(*this, desc, variant);
}

}  // namespace lowbit::x86
