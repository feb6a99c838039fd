// AVX-512 float-compute generator (compute=float): int4 weights, any group size, fp32/bf16/
// fp16 activations, fp32/bf16/fp16 output, optional bias. Two instruction flavours:
//
//   avx512_bf16: per 4-k step, 32 packed bytes of a 16-column panel are zero-extended to
//     words, nibbles become bf16 numbers 128+q by OR-ing the exponent bits (0x4300|q), and
//     vdpbf16ps multiplies them with broadcast bf16 pairs of x: products are exact, sums fp32.
//   avx512_fma: the same bytes become fp32 numbers 128+q (0x43000000|q<<16), and
//     vfmadd231ps multiplies them with broadcast fp32 x (bf16/fp16 x converted once per call).
//
// The +128 bias and the zero point are removed once per group, with the group's sum of x:
//   y += scale * (sum_k x*(128+q) - (128+zero) * sum_k x)
// so the inner loop does no per-element dequantization arithmetic beyond two bit operations.
// docs/architecture.md derives this; docs/layout.md gives the byte layout it reads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/x86/jit_generator.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"

namespace lowbit::x86 {

// What one generated block function reads: one register block of rows x panels.
// Every pointer is already offset to the block's first row / first panel.
struct BlockArgs {
  const void* x;              // activations of the first row: bf16 (bf16 flavour) or fp32
  const float* group_sums;    // [rows][groups]: sum of x over each group, as the kernel sees x
  const uint8_t* qweight;     // first panel of the block (native layout)
  const uint16_t* scales;     // fp16 [panel][group][16]
  const uint16_t* zeros;      // fp16 [panel][group][16]; unused for zero=none
  const void* bias;           // bias of the block's first column (act dtype), or null
  void* y;                    // output of the first row, first column of the block
  uint64_t last_panel_mask;   // bit j: column j of the block's last panel is inside N
};
using BlockFunction = void (*)(const BlockArgs*);

struct Validity {
  bool ok = true;
  std::string reason;  // why not, when !ok
  explicit operator bool() const { return ok; }
};

// The emitted code of one (descriptor, variant): a block function for every register
// block shape up to the variant's, so that N and M tails run the same code family.
class Avx512FloatProgram : public JitGenerator {
 public:
  Avx512FloatProgram(const OpDesc& desc, const X86Variant& variant);
  BlockFunction block(int panels, int rows) const;  // 1 <= panels <= n_panels, 1 <= rows <= m_rows

 private:
  void emit_block_function(int panels, int rows);
  void emit_constants();

  OpDesc desc_;
  X86Variant variant_;
  std::vector<std::size_t> entries_;  // [(panels-1) * m_rows + rows-1]
  Xbyak::Label constants_;
};

class Avx512FloatGenerator {
 public:
  static constexpr std::string_view family = "x86_avx512_float";
  static constexpr int version = 1;  // bump when emitted code changes: old cache entries miss

  // Variants worth timing for desc on this CPU, pruned by the rules of is_valid and by
  // shape (no register block taller than M, threads that have work).
  std::vector<X86Variant> candidates(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
  Validity is_valid(const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) const;
  std::unique_ptr<Avx512FloatProgram> emit(const OpDesc& desc, const X86Variant& variant) const;
  // The no-tune choice: what the tuner picks most often on the benchmark shapes.
  X86Variant heuristic(const OpDesc& desc, const CpuInfo& cpu, int max_threads) const;
};

// Register budget: group accumulators A and B plus the running sum, per (row, panel), must
// leave 5 of the 32 zmm registers for temporaries and constants.
constexpr int max_block_cells = 9;

}  // namespace lowbit::x86
