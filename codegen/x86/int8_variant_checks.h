// What the compute=int8 generators (AVX2 int8 / AVX-VNNI, AVX512-VNNI, AMX-INT8) check alike in
// is_valid; each generator checks its CPU features, its flavour and its own block rules first.
#pragma once

#include <string_view>

#include "codegen/x86/block_program.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/descriptor.h"

namespace lowbit::x86 {

// device=cpu, compute=int8 and layout=native. `family` names the generator in the reason
// ("avx512_vnni"), `float_families` those that serve compute=float instead ("avx512 or avx2").
Validity check_int8_descriptor(const OpDesc& desc, std::string_view family, std::string_view float_families);

// Every offset a block of variant.m_rows rows x variant.n_panels panels addresses by a 32-bit
// displacement fits one: the panels' weights, the quantized rows of x, their per-block factors,
// the fp32 output rows and the panels' scale rows. `block` names the block in the reason
// ("register block", "tile block").
Validity check_int8_displacements(const OpDesc& desc, const X86Variant& variant, std::string_view block);

// The register-blocked (VNNI) generators' rules after check_int8_descriptor: the block within
// max_cells (n_panels * m_rows) of `register_file`, k_unroll 1..16, threads >= 1, a valid
// split_k (check_split) and prefetch (check_prefetch), and the displacements.
Validity check_int8_register_block(const OpDesc& desc, const X86Variant& variant, int max_cells,
                                   std::string_view register_file);

}  // namespace lowbit::x86
