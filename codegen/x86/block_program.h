// What every x86 float program shares: the arguments of a generated block function, the
// table of block functions (one per register-block shape, so that N and M tails run the same
// code family) and the loop over K that each block function runs (groups, unrolled steps,
// the partial step of a K tail).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/x86/jit_generator.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"
#include "lowbit/errors.h"

namespace lowbit::x86 {

// What one generated block function reads: one register block of rows x panels.
// Every pointer is already offset to the block's first row / first panel.
struct BlockArgs {
  const void* x;              // activations of the first row: bf16 (bf16 flavour) or fp32
  const float* group_sums;    // [rows][groups]: sum of x over each group, as the kernel sees x
                              // (compute=int8: Int8BlockFactors [rows][blocks], activation_quantizer.h)
                              // (compute=int8: Int8BlockFactors [rows][blocks], activation_quantizer.h)
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

// What the float generators check alike: device=cpu, compute=float, layout=native, the block
// within max_cells (n_panels * m_rows) of `register_file`, k_unroll 1..16, threads >= 1, and
// offsets that fit 32-bit displacements. The generator checks its CPU features and flavour.
Validity check_float_variant(const OpDesc& desc, const X86Variant& variant, int max_cells,
                             std::string_view register_file);

// Shared candidate and heuristic rules: threads that all have panels to work on, and k_unroll
// in {1, 2, 4} not above the steps of one group (heuristic: 2 when a group has 2 steps).
int variant_threads(const OpDesc& desc, int max_threads);
std::vector<int> candidate_unrolls(const OpDesc& desc);
int heuristic_unroll(const OpDesc& desc);

// A generator's emit(): the program of (desc, variant), or Unsupported with the reason
// generator.is_valid gives on this CPU.
template <class Program, class Generator>
std::unique_ptr<Program> emit_valid(const Generator& generator, const OpDesc& desc, const X86Variant& variant) {
  Validity validity = generator.is_valid(desc, variant, cpu_info());
  if (!validity) throw Unsupported(fmt::format("cannot emit {}: {}", variant_name(desc, variant), validity.reason));
  return std::make_unique<Program>(desc, variant);
}

class BlockProgram : public JitGenerator {
 public:
  BlockFunction block(int panels, int rows) const;  // 1 <= panels <= n_panels, 1 <= rows <= m_rows

 protected:
  BlockProgram(const OpDesc& desc, const X86Variant& variant);

  // Emits emit_block(panels, rows) for every shape up to the variant's, each at its own entry.
  void emit_block_functions(const std::function<void(int panels, int rows)>& emit_block);

  // The general registers the K loop advances and counts with.
  struct KLoopRegisters {
    Xbyak::Reg64 x;  // activations, advanced by one step's k per step
    Xbyak::Reg64 w;  // packed weights, advanced by one step's bytes per step
    Xbyak::Reg64 group_counter;
    Xbyak::Reg64 step_counter;
  };
  // Emits, for every group: begin_group(); the group's steps, k_unroll of them per loop
  // iteration, as emit_step(step within the iteration, valid k), then the partial step of a
  // K tail (group=-1) with valid k < k_per_block; end_group().
  void emit_k_loop(const KLoopRegisters& registers, int x_element_bytes, const std::function<void()>& begin_group,
                   const std::function<void(int step, int valid_k)>& emit_step,
                   const std::function<void()>& end_group);

  OpDesc desc_;
  X86Variant variant_;

 private:
  std::vector<std::size_t> entries_;  // [(panels-1) * m_rows + rows-1]
};

}  // namespace lowbit::x86
