// What every x86 program shares: the arguments of a generated block function, the table of
// block functions (one per register-block shape, so that N and M tails run the same code
// family, and per part of K when the variant splits K) and the loop over K that each float
// block function runs (groups, unrolled steps, the partial step of a K tail).
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
// A part of K (split_k > 1) is offset to its first k in x, qweight, scales/zeros and
// group_sums, and y then points into the fp32 partial sums (KSplit).
struct BlockArgs {
  const void* x;              // activations of the first row: bf16 (bf16 flavour) or fp32
  const float* group_sums;    // [rows][KSplit::sum_chunks]: sum of x over each group (group=-1
                              // and split: over each part), as the kernel sees x
                              // (compute=int8: Int8BlockFactors [rows][blocks], activation_quantizer.h)
  const uint8_t* qweight;     // first panel of the block (native layout)
  const uint16_t* scales;     // fp16 [panel][group][16]
  const uint16_t* zeros;      // fp16 [panel][group][16]; unused for zero=none
  const void* bias;           // bias of the block's first column (act dtype), or null; unused by parts
  void* y;                    // output of the first row, first column of the block (parts: fp32
                              // partial sums, KSplit::partial_row_floats apart)
  uint64_t last_panel_mask;   // bit j: column j of the block's last panel is inside N
};
using BlockFunction = void (*)(const BlockArgs*);

struct Validity {
  bool ok = true;
  std::string reason;  // why not, when !ok
  explicit operator bool() const { return ok; }
};

// How a variant cuts K (variant.split_k > 1): into `parts` consecutive ranges of part_k k
// (the last one takes the rest, K tail included), each a whole number of split units: the
// weight group (group > 0), the 128-k activation block (compute=int8, group=-1), or k_unroll
// native steps (compute=float, group=-1). Each part of a register block is computed by its own
// block function into fp32 partial sums [part][row][partial_row_floats] in the launcher's
// scratch; the launcher then adds the parts in part order (the result does not depend on which
// thread ran which part), adds the bias and converts to the output dtype. The parts follow from
// (desc, variant) alone, so every thread count gives the same bits.
struct KSplit {
  int parts = 1;               // 1: no split (the block functions write y themselves)
  int64_t part_k = 0;          // k of every part but the last
  int64_t sum_k = 0;           // compute=float: k per entry of BlockArgs.group_sums (the group,
                               // or part_k for group=-1 with parts > 1)
  int64_t sum_chunks = 0;      // compute=float: group_sums entries per row
  int64_t partial_row_floats = 0;  // stride of a row of partial sums: N padded to whole panels
  int64_t last_part_k(int64_t k) const { return k - (parts - 1) * part_k; }
};
// The split unit of (desc, variant) in k, and the cut; split_k must be valid (check_split).
int64_t split_unit_k(const OpDesc& desc, const X86Variant& variant);
KSplit k_split(const OpDesc& desc, const X86Variant& variant);
// split_k must be 1..units of K and cut K into exactly split_k parts (units per part
// = ceil(units / split_k)); the reason names the allowed values when not.
Validity check_split(const OpDesc& desc, const X86Variant& variant);

// Software prefetch (variant.prefetch > 0): at M=1 each thread streams its panels once, and the
// loads of a latency-bound inner loop stay too few and too close to cover memory's latency by
// themselves; so the weight stream of each panel is also touched `prefetch` bytes ahead (one
// prefetcht0 per 64 bytes), and each panel's scale and zero rows a few groups ahead.
// prefetch must be 0 (none) or a multiple of 64 in 64..max_prefetch_bytes, and only the flavours
// of emits_prefetch (x86_variant.h) emit it; the reason names the allowed values when not.
constexpr int max_prefetch_bytes = 8192;
Validity check_prefetch(const X86Variant& variant);
// The distances are chosen per thread, not per stream: on the developer VM the best distance
// kept about 8 KB of weights ahead of a thread over all its panels' streams (n1: 8192 bytes,
// n2: 4096, n4: 2048; twice or half that lost up to 20 %). prefetch_for_lookahead gives the
// per-stream distance of a lookahead (a multiple of 64, at least 64).
int prefetch_for_lookahead(int64_t lookahead_bytes, int n_panels);
// The distances the M=1 candidates time for a register block of n_panels panels: 0, and the
// lookaheads of 4 and 8 KB; the no-tune one: 8 KB. Other M: 0 only.
std::vector<int> candidate_prefetches(const OpDesc& desc, X86Isa isa, int n_panels);
int heuristic_prefetch(const OpDesc& desc, X86Isa isa, int n_panels);

// What the float generators check alike: device=cpu, compute=float, layout=native, the block
// within max_cells (n_panels * m_rows) of `register_file`, k_unroll 1..16, threads >= 1, a
// valid split_k (check_split), a valid prefetch (check_prefetch), and offsets that fit 32-bit displacements. The generator checks
// its CPU features and flavour.
Validity check_float_variant(const OpDesc& desc, const X86Variant& variant, int max_cells,
                             std::string_view register_file);

// Shared candidate and heuristic rules: threads that all have panels to work on, and k_unroll
// in {1, 2, 4} not above the steps of one group (heuristic: 2 when a group has 2 steps).
int variant_threads(const OpDesc& desc, int max_threads);
std::vector<int> candidate_unrolls(const OpDesc& desc);
int heuristic_unroll(const OpDesc& desc);
// Split-K is worth timing only where N's register blocks leave threads idle (blocks of
// variant.n_panels panels < max_threads): then split_k in {2, 3, 4, 6, 8} up to enough work
// items for every thread, valid, and with parts of at least min_part_k k (shorter parts
// spend more on partial sums than they save); always split_k=1 first.
std::vector<int> candidate_splits(const OpDesc& desc, const X86Variant& variant, int max_threads);
// The no-tune split: the smallest candidate giving every thread a work item, else the largest.
int heuristic_split(const OpDesc& desc, const X86Variant& variant, int max_threads);
// Threads for a variant with split_k: every (register block, part) is a work item.
int split_threads(const OpDesc& desc, const X86Variant& variant, int max_threads);
// A generator's no-tune variant for its chosen flavour and register block (panels x rows): the
// shared unroll, split and thread rules complete it.
X86Variant heuristic_variant(const OpDesc& desc, X86Isa isa, int n_panels, int m_rows, int max_threads);
// The block the AVX-512 generators take without tuning: at M=1 four panels, each streamed 2 KB
// ahead (prefetch), on more than few_threads threads, and one panel 8 KB ahead on few_threads or
// fewer (the developer VM at 2 threads: the tuned winner on every M=1 row of three runs, and
// faster than the four-panel block in 11 of 12 paired rounds, 1.01-1.40x); else two panels of
// min(M, tallest) rows (m=0 counts as any_m_rows). On the Xeon (docs/benchmarks.md, every M=1
// candidate x seven prefetch distances, interleaved) four panels 2 KB ahead were within 1.08x of
// the best of 84 on every row at 4, 8 and 16 threads, in both compute modes; one panel was up to
// 1.28x slower there with compute=int8 (and within 3 % of four with compute=float). 3 threads: not measured.
// At M=2..4 on few_threads or fewer, compute=float: four panels of two rows (the developer VM at 2
// threads, M=4: the tuned winner's block on 7 of 8 rows of two full runs, and two panels of four
// rows 1.11-1.22x slower than it in the second). compute=int8 keeps two panels of M rows there
// (its tuned winners at M=4 had 3 or 4 rows), and so do more threads (not measured against four
// panels of two rows: the Xeon takes AMX at M=4).
constexpr int few_threads = 2;
X86Variant heuristic_avx512_variant(const OpDesc& desc, X86Isa isa, int tallest, int max_threads);
// `variant` (split_k=1) followed by its split versions from candidate_splits, each with
// split_threads threads.
std::vector<X86Variant> with_splits(const OpDesc& desc, const X86Variant& variant, int max_threads);
constexpr int64_t min_part_k = 512;

// A generator's emit(): the program of (desc, variant), or Unsupported with the reason
// generator.is_valid gives on this CPU.
template <class Program, class Generator>
std::unique_ptr<Program> emit_valid(const Generator& generator, const OpDesc& desc, const X86Variant& variant) {
  Validity validity = generator.is_valid(desc, variant, cpu_info());
  if (!validity) throw Unsupported(fmt::format("cannot emit {}: {}", variant_name(desc, variant), validity.reason));
  return std::make_unique<Program>(desc, variant);
}

// The K a block function runs, from the first k its pointers are offset to.
struct KRange {
  int64_t k;     // k in the range: all of K, a leading part (part_k), or the last part
  bool partial;  // a part of a split K: fp32 partial sums, no bias, all 16 columns, to y
};

// Which block functions a program holds: the whole of K (split_k = 1), or a leading and a
// last part of K (split_k > 1).
enum class KPart { whole, leading, last };

class BlockProgram : public JitGenerator {
 public:
  // 1 <= panels <= n_panels, 1 <= rows <= m_rows; part: whole when split_k = 1, else leading
  // or last.
  BlockFunction block(int panels, int rows, KPart part = KPart::whole) const;
  const KSplit& split() const { return split_; }

 protected:
  // dump_suffix tells apart, in LOWBIT_DUMP_X86's file name, a second program of the same kernel
  // (e.g. "__decode" for AMX-BF16's decode-only program under an AVX-512 kernel).
  BlockProgram(const OpDesc& desc, const X86Variant& variant, const std::string& dump_suffix = {});

  // Emits emit_block(panels, rows, range) for every shape up to the variant's and every part
  // of K the variant has, each at its own entry.
  void emit_block_functions(const std::function<void(int panels, int rows, const KRange& range)>& emit_block);

  // The general registers the K loop advances and counts with.
  struct KLoopRegisters {
    Xbyak::Reg64 x;  // activations, advanced by one step's k per step
    Xbyak::Reg64 w;  // packed weights, advanced by one step's bytes per step
    Xbyak::Reg64 group_counter;
    Xbyak::Reg64 step_counter;
  };
  // Emits, for every group of `range`: begin_group(); the group's steps, k_unroll of them per
  // loop iteration, as emit_step(step within the iteration, valid k), then the partial step of
  // a K tail (group=-1) with valid k < k_per_block; end_group(). With group=-1 the range is one
  // group of range.k.
  void emit_k_loop(const KLoopRegisters& registers, int x_element_bytes, const KRange& range,
                   const std::function<void()>& begin_group,
                   const std::function<void(int step, int valid_k)>& emit_step,
                   const std::function<void()>& end_group);

  // Emits the prefetches of one step (variant.prefetch > 0): for each of `panels` panels,
  // panel_bytes apart from w, one prefetcht0 per 64-byte line that starts inside the step's bytes
  // of the unrolled iteration, `prefetch` bytes ahead. Every line of the stream is covered, also
  // when an iteration is less than a line (its prefetch repeats the line half the time).
  // Register contract: reads w; writes nothing.
  void emit_weight_prefetch(const Xbyak::Reg64& w, int panels, int step);
  // Emits (variant.prefetch > 0, group > 0) a prefetch of each panel's scale row and, when
  // `zeros` is given, zero-point row, 128 bytes (four groups) ahead: for once per group.
  // Register contract: reads scales, zeros; writes nothing.
  void emit_table_prefetch(const Xbyak::Reg64& scales, const Xbyak::Reg64* zeros, int panels);

  OpDesc desc_;
  X86Variant variant_;
  KSplit split_;

 private:
  std::vector<std::size_t> entries_;  // [part kind][(panels-1) * m_rows + rows-1]
};

}  // namespace lowbit::x86
