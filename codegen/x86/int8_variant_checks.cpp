#include "codegen/x86/int8_variant_checks.h"

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <string>

#include "codegen/x86/activation_quantizer.h"
#include "codegen/x86/block_program.h"
#include "lowbit/native_layout.h"
#include "lowbit/reference.h"

namespace lowbit::x86 {
namespace {

Validity refuse(std::string reason) { return Validity{false, std::move(reason)}; }

}  // namespace

Validity check_int8_descriptor(const OpDesc& desc, std::string_view family, std::string_view float_families) {
  if (desc.device.kind != DeviceKind::cpu) return refuse("the x86 generator serves device=cpu only");
  // The tuner never crosses compute modes: compute=float is served by the float generators.
  if (desc.compute != Compute::int8)
    return refuse(fmt::format("the {} family computes compute=int8 only (compute=float: the {} family)", family,
                              float_families));
  if (desc.layout != Layout::native) return refuse("only layout=native is read by x86 kernels");
  return {};
}

Validity check_int8_displacements(const OpDesc& desc, const X86Variant& variant, std::string_view block) {
  auto fits_displacement = [](int64_t bytes) { return bytes < std::numeric_limits<int32_t>::max() / 2; };
  const NativeGeometry geometry = native_geometry(desc);
  const int64_t x_rows = variant.m_rows * int8_activation_layout(desc).row_bytes;
  const int64_t factor_rows = variant.m_rows * int8_block_count(desc) * int64_t{sizeof(Int8BlockFactors)};
  const int64_t y_rows = static_cast<int64_t>(variant.m_rows) * desc.n * 4;
  if (!fits_displacement(geometry.panel_bytes * variant.n_panels) || !fits_displacement(x_rows) ||
      !fits_displacement(factor_rows) || !fits_displacement(y_rows) ||
      !fits_displacement(geometry.groups * native_panel_width * 2 * variant.n_panels))
    return refuse(fmt::format("n or k is too large for 32-bit displacements in this {}", block));
  return {};
}

Validity check_int8_register_block(const OpDesc& desc, const X86Variant& variant, int max_cells,
                                   std::string_view register_file) {
  if (variant.n_panels < 1 || variant.m_rows < 1 || variant.n_panels * variant.m_rows > max_cells)
    return refuse(fmt::format("register block {}x{} panels does not fit {} (n_panels*m_rows must be 1..{})",
                              variant.m_rows, variant.n_panels, register_file, max_cells));
  if (variant.k_unroll < 1 || variant.k_unroll > 16) return refuse("k_unroll must be 1..16");
  if (variant.threads < 1) return refuse("threads must be >= 1");
  if (Validity split = check_split(desc, variant); !split) return split;
  if (Validity prefetch = check_prefetch(variant); !prefetch) return prefetch;
  return check_int8_displacements(desc, variant, "register block");
}

}  // namespace lowbit::x86
