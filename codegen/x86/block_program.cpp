#include "codegen/x86/block_program.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "lowbit/native_layout.h"

namespace lowbit::x86 {

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

BlockProgram::BlockProgram(const OpDesc& desc, const X86Variant& variant)
    : JitGenerator(variant_name(desc, variant)), desc_(desc), variant_(variant) {}

BlockFunction BlockProgram::block(int panels, int rows) const {
  return function_at<BlockFunction>(entries_[(panels - 1) * variant_.m_rows + rows - 1]);
}

void BlockProgram::emit_block_functions(const std::function<void(int, int)>& emit_block) {
  entries_.resize(static_cast<std::size_t>(variant_.n_panels * variant_.m_rows));
  for (int panels = 1; panels <= variant_.n_panels; ++panels)
    for (int rows = 1; rows <= variant_.m_rows; ++rows) {
      entries_[(panels - 1) * variant_.m_rows + rows - 1] = entry_offset();
      emit_block(panels, rows);
    }
}

void BlockProgram::emit_k_loop(const KLoopRegisters& registers, int x_element_bytes,
                               const std::function<void()>& begin_group,
                               const std::function<void(int, int)>& emit_step,
                               const std::function<void()>& end_group) {
  const NativeGeometry geometry = native_geometry(desc_);
  const int k_per_step = static_cast<int>(geometry.k_per_block);
  const int64_t x_step_bytes = k_per_step * x_element_bytes;
  const int64_t steps_per_group = desc_.group_size() / k_per_step;
  const int k_tail = static_cast<int>(desc_.group_size() % k_per_step);  // only for group=-1
  const int64_t unroll = std::min<int64_t>(variant_.k_unroll, std::max<int64_t>(steps_per_group, 1));
  const int64_t full_iterations = steps_per_group / unroll;
  const int64_t leftover_steps = steps_per_group % unroll;
  auto advance = [&](int64_t steps) {
    add(registers.x, static_cast<uint32_t>(steps * x_step_bytes));
    add(registers.w, static_cast<uint32_t>(steps * geometry.step_bytes));
  };

  Xbyak::Label group_loop;
  mov(registers.group_counter, geometry.groups);
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

}  // namespace lowbit::x86
