#include "codegen/x86/block_program.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "lowbit/native_layout.h"
#include "lowbit/reference.h"

namespace lowbit::x86 {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Split units of K and the units of every part but the last, for split_k parts.
struct SplitUnits {
  int64_t unit_k;
  int64_t units;
  int64_t units_per_part;
  int64_t parts;
};
SplitUnits split_units(const OpDesc& desc, const X86Variant& variant) {
  SplitUnits cut{};
  cut.unit_k = split_unit_k(desc, variant);
  cut.units = ceil_div(desc.k, cut.unit_k);
  cut.units_per_part = ceil_div(cut.units, std::max(variant.split_k, 1));
  cut.parts = ceil_div(cut.units, cut.units_per_part);
  return cut;
}

}  // namespace

int64_t split_unit_k(const OpDesc& desc, const X86Variant& variant) {
  if (computes_int8(variant.isa)) return int8_block_size(desc);
  if (desc.group != whole_k_group) return desc.group_size();
  // One group: cut between unrolled iterations, so that no part but the last has leftover steps.
  return native_geometry(desc).k_per_block * std::max(variant.k_unroll, 1);
}

KSplit k_split(const OpDesc& desc, const X86Variant& variant) {
  KSplit split;
  split.parts = variant.split_k;
  split.part_k =
      variant.split_k == 1 ? desc.k : split_units(desc, variant).units_per_part * split_unit_k(desc, variant);
  split.sum_k = desc.group == whole_k_group ? split.part_k : desc.group_size();
  split.sum_chunks = ceil_div(desc.k, split.sum_k);
  split.partial_row_floats = native_geometry(desc).panels * native_panel_width;
  return split;
}

Validity check_split(const OpDesc& desc, const X86Variant& variant) {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (variant.split_k < 1) return refuse("split_k must be >= 1 (1: no split)");
  if (variant.split_k == 1) return {};
  const SplitUnits cut = split_units(desc, variant);
  const std::string units = fmt::format("K={} is {} split unit(s) of {} k", desc.k, cut.units, cut.unit_k);
  if (variant.split_k > cut.units)
    return refuse(fmt::format("split_k={} is more parts than K has split units ({}); allowed: 1..{}",
                              variant.split_k, units, cut.units));
  if (cut.parts != variant.split_k)
    return refuse(fmt::format("split_k={} cuts K into {} parts, not {} ({}, {} per part); choose a split_k for "
                              "which ceil(units / split_k) units per part make exactly split_k parts",
                              variant.split_k, cut.parts, variant.split_k, units, cut.units_per_part));
  return {};
}

Validity check_prefetch(const X86Variant& variant) {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (variant.prefetch == 0) return {};
  if (variant.prefetch < 0 || variant.prefetch % 64 != 0 || variant.prefetch > max_prefetch_bytes)
    return refuse(fmt::format("prefetch={} is not allowed: 0 (none) or a multiple of 64 bytes in 64..{}",
                              variant.prefetch, max_prefetch_bytes));
  if (!emits_prefetch(variant.isa))
    return refuse(fmt::format("isa={} emits no software prefetch: prefetch must be 0 (only the avx512 flavours "
                              "prefetch)",
                              to_string(variant.isa)));
  return {};
}

int prefetch_for_lookahead(int64_t lookahead_bytes, int n_panels) {
  return static_cast<int>(std::max<int64_t>(64, lookahead_bytes / std::max(n_panels, 1) / 64 * 64));
}

std::vector<int> candidate_prefetches(const OpDesc& desc, X86Isa isa, int n_panels) {
  // Prefetch pays where a thread streams panels from memory with few loads in flight: M=1.
  // 0 stays for CPUs whose hardware prefetchers need no help.
  if (desc.m != 1 || !emits_prefetch(isa)) return {0};
  return {0, prefetch_for_lookahead(4096, n_panels), prefetch_for_lookahead(8192, n_panels)};
}

int heuristic_prefetch(const OpDesc& desc, X86Isa isa, int n_panels) {
  return desc.m == 1 && emits_prefetch(isa) ? prefetch_for_lookahead(8192, n_panels) : 0;
}

Validity check_float_variant(const OpDesc& desc, const X86Variant& variant, int max_cells,
                             std::string_view register_file) {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (desc.device.kind != DeviceKind::cpu) return refuse("the x86 generator serves device=cpu only");
  if (desc.compute != Compute::floating)
    return refuse("the float generators compute compute=float only (compute=int8: the avx512_vnni family)");
  if (desc.layout != Layout::native) return refuse("only layout=native is read by x86 kernels");
  if (variant.n_panels < 1 || variant.m_rows < 1 || variant.n_panels * variant.m_rows > max_cells)
    return refuse(fmt::format("register block {}x{} panels does not fit {} (n_panels*m_rows must be 1..{} "
                              "for bits={})",
                              variant.m_rows, variant.n_panels, register_file, max_cells, desc.bits));
  if (variant.k_unroll < 1 || variant.k_unroll > 16) return refuse("k_unroll must be 1..16");
  if (variant.threads < 1) return refuse("threads must be >= 1");
  if (variant.k_block != 0 && variant.isa != X86Isa::amx_bf16 && variant.isa != X86Isa::avx512_bf16)
    return refuse("only amx_bf16 and avx512_bf16 block K for the caches: k_block must be 0");
  if (Validity split = check_split(desc, variant); !split) return split;
  if (Validity prefetch = check_prefetch(variant); !prefetch) return prefetch;
  auto fits_displacement = [](int64_t bytes) { return bytes < std::numeric_limits<int32_t>::max() / 2; };
  const NativeGeometry geometry = native_geometry(desc);
  const int64_t x_rows = static_cast<int64_t>(variant.m_rows) * desc.k * 4;
  const int64_t y_rows = static_cast<int64_t>(variant.m_rows) * desc.n * 4;
  if (!fits_displacement(geometry.panel_bytes * variant.n_panels) || !fits_displacement(x_rows) ||
      !fits_displacement(y_rows))
    return refuse("n or k is too large for 32-bit displacements in this register block");
  return {};
}

int variant_threads(const OpDesc& desc, int max_threads) {
  return std::max(1, std::min<int>(max_threads, static_cast<int>(native_geometry(desc).panels)));
}

std::vector<int> candidate_unrolls(const OpDesc& desc) {
  const int64_t steps_per_group = std::max<int64_t>(desc.group_size() / native_geometry(desc).k_per_block, 1);
  std::vector<int> unrolls;
  for (int unroll : {1, 2, 4})
    if (unroll <= steps_per_group) unrolls.push_back(unroll);
  return unrolls;
}

int heuristic_unroll(const OpDesc& desc) {
  return desc.group_size() >= 2 * native_geometry(desc).k_per_block ? 2 : 1;
}

X86Variant heuristic_variant(const OpDesc& desc, X86Isa isa, int n_panels, int m_rows, int max_threads) {
  X86Variant variant;
  variant.isa = isa;
  variant.n_panels = n_panels;
  variant.m_rows = m_rows;
  variant.k_unroll = heuristic_unroll(desc);
  variant.prefetch = heuristic_prefetch(desc, isa, n_panels);
  variant.split_k = heuristic_split(desc, variant, max_threads);
  variant.threads = split_threads(desc, variant, max_threads);
  return variant;
}

X86Variant heuristic_avx512_variant(const OpDesc& desc, X86Isa isa, int tallest, int max_threads) {
  if (desc.m == 1) return heuristic_variant(desc, isa, max_threads <= few_threads ? 1 : 4, 1, max_threads);
  if (desc.m >= 2 && desc.m <= 4 && max_threads <= few_threads && !computes_int8(isa))
    return heuristic_variant(desc, isa, 4, 2, max_threads);
  const int64_t m = desc.m == 0 ? any_m_rows : desc.m;
  return heuristic_variant(desc, isa, 2, static_cast<int>(std::min<int64_t>(m, tallest)), max_threads);
}

std::vector<int> candidate_splits(const OpDesc& desc, const X86Variant& variant, int max_threads) {
  std::vector<int> splits{1};
  const int64_t blocks = ceil_div(native_geometry(desc).panels, std::max(variant.n_panels, 1));
  if (blocks >= max_threads) return splits;
  for (int split_k : {2, 3, 4, 6, 8}) {
    X86Variant split = variant;
    split.split_k = split_k;
    if (!check_split(desc, split) || k_split(desc, split).part_k < min_part_k) continue;
    splits.push_back(split_k);
    if (blocks * split_k >= max_threads) break;
  }
  return splits;
}

int heuristic_split(const OpDesc& desc, const X86Variant& variant, int max_threads) {
  // candidate_splits stops at the first split that gives every thread a work item.
  return candidate_splits(desc, variant, max_threads).back();
}

int split_threads(const OpDesc& desc, const X86Variant& variant, int max_threads) {
  const int64_t items = native_geometry(desc).panels * std::max(variant.split_k, 1);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_threads, items)));
}

std::vector<X86Variant> with_splits(const OpDesc& desc, const X86Variant& variant, int max_threads) {
  std::vector<X86Variant> variants;
  for (int split_k : candidate_splits(desc, variant, max_threads)) {
    X86Variant split = variant;
    split.split_k = split_k;
    split.threads = split_threads(desc, split, max_threads);
    variants.push_back(split);
  }
  return variants;
}

namespace {

// The dump file of a program: its variant name, then the descriptor's canonical text made a
// file name ("m=1,n=4096,..." -> "m-1_n-4096_..."), since one variant serves many shapes.
std::string dump_file_name(const OpDesc& desc, const X86Variant& variant) {
  std::string descriptor = to_string(desc);
  std::replace(descriptor.begin(), descriptor.end(), ',', '_');
  std::replace(descriptor.begin(), descriptor.end(), '=', '-');
  std::replace(descriptor.begin(), descriptor.end(), ':', '-');
  return variant_name(desc, variant) + "__" + descriptor;
}

}  // namespace

BlockProgram::BlockProgram(const OpDesc& desc, const X86Variant& variant, const std::string& dump_suffix)
    : JitGenerator(variant_name(desc, variant), std::size_t{1} << 20, dump_file_name(desc, variant) + dump_suffix),
      desc_(desc),
      variant_(variant),
      split_(k_split(desc, variant)) {}

BlockFunction BlockProgram::block(int panels, int rows, KPart part) const {
  // Cache-blocked programs (k_block > 0: their own blocked functions) and decode-only ones hold none.
  if (entries_.empty()) throw Unsupported("block: this program holds no block functions (k_block > 0 or decode only)");
  const int cells = variant_.n_panels * variant_.m_rows;
  return function_at<BlockFunction>(
      entries_[static_cast<std::size_t>(part) * cells + (panels - 1) * variant_.m_rows + rows - 1]);
}

void BlockProgram::emit_block_functions(const std::function<void(int, int, const KRange&)>& emit_block) {
  const int cells = variant_.n_panels * variant_.m_rows;
  entries_.assign(static_cast<std::size_t>(3 * cells), 0);
  auto emit_part = [&](KPart part, const KRange& range) {
    for (int panels = 1; panels <= variant_.n_panels; ++panels)
      for (int rows = 1; rows <= variant_.m_rows; ++rows) {
        entries_[static_cast<std::size_t>(part) * cells + (panels - 1) * variant_.m_rows + rows - 1] = entry_offset();
        emit_block(panels, rows, range);
      }
  };
  if (split_.parts == 1) {
    emit_part(KPart::whole, KRange{desc_.k, false});
  } else {
    emit_part(KPart::leading, KRange{split_.part_k, true});
    emit_part(KPart::last, KRange{split_.last_part_k(desc_.k), true});
  }
}

void BlockProgram::emit_k_loop(const KLoopRegisters& registers, int x_element_bytes, const KRange& range,
                               const std::function<void()>& begin_group,
                               const std::function<void(int, int)>& emit_step,
                               const std::function<void()>& end_group) {
  const NativeGeometry geometry = native_geometry(desc_);
  const int k_per_step = static_cast<int>(geometry.k_per_block);
  const int64_t x_step_bytes = k_per_step * x_element_bytes;
  const bool whole_k = desc_.group == whole_k_group;
  const int64_t group_k = whole_k ? range.k : desc_.group_size();
  const int64_t groups = whole_k ? 1 : range.k / group_k;
  const int64_t steps_per_group = group_k / k_per_step;
  const int k_tail = static_cast<int>(group_k % k_per_step);  // only for group=-1, in the last part
  const int64_t unroll = std::min<int64_t>(variant_.k_unroll, std::max<int64_t>(steps_per_group, 1));
  const int64_t full_iterations = steps_per_group / unroll;
  const int64_t leftover_steps = steps_per_group % unroll;
  auto advance = [&](int64_t steps) {
    add(registers.x, static_cast<uint32_t>(steps * x_step_bytes));
    add(registers.w, static_cast<uint32_t>(steps * geometry.step_bytes));
  };

  Xbyak::Label group_loop;
  mov(registers.group_counter, groups);
  L(group_loop);
  begin_group();
  if (full_iterations > 0) {
    Xbyak::Label step_loop;
    mov(registers.step_counter, full_iterations);
    L(step_loop);
    for (int step = 0; step < unroll; ++step) emit_step(step, k_per_step);
    advance(unroll);
    dec(registers.step_counter);
    jnz(step_loop, T_NEAR);
  }
  for (int step = 0; step < leftover_steps; ++step) emit_step(step, k_per_step);
  if (leftover_steps > 0) advance(leftover_steps);
  if (k_tail > 0) emit_step(0, k_tail);
  end_group();
  dec(registers.group_counter);
  jnz(group_loop, T_NEAR);
}

void BlockProgram::emit_weight_prefetch(const Xbyak::Reg64& w, int panels, int step) {
  if (variant_.prefetch == 0) return;
  const int64_t step_bytes = native_geometry(desc_).step_bytes;
  const int64_t panel_bytes = native_geometry(desc_).panel_bytes;
  const int64_t first_line = (step * step_bytes + 63) / 64 * 64;  // first line start at or after the step
  for (int panel = 0; panel < panels; ++panel)
    for (int64_t offset = first_line; offset < (step + 1) * step_bytes; offset += 64)
      prefetcht0(ptr[w + panel * panel_bytes + offset + variant_.prefetch]);
}

void BlockProgram::emit_table_prefetch(const Xbyak::Reg64& scales, const Xbyak::Reg64* zeros, int panels) {
  // A row of a panel's table advances 32 bytes per group: two lines ahead is four groups, long
  // before the group's epilogue reads it and cheap (one prefetch per panel and group).
  constexpr int table_prefetch_bytes = 128;
  if (variant_.prefetch == 0 || desc_.group == whole_k_group) return;
  const int64_t table_panel_bytes = native_geometry(desc_).groups * native_panel_width * 2;
  for (int panel = 0; panel < panels; ++panel) {
    prefetcht0(ptr[scales + panel * table_panel_bytes + table_prefetch_bytes]);
    if (zeros) prefetcht0(ptr[*zeros + panel * table_panel_bytes + table_prefetch_bytes]);
  }
}

}  // namespace lowbit::x86
