// How the CUDA generators spell descriptor enums in a template's Config: the values of the
// templates' own enums (templates/gemv.cuh: `enum DType { fp32 = 0, bf16 = 1, fp16 = 2 }`,
// `enum Zero { zero_none = 0, zero_int = 1, zero_float = 2 }`), which every template shares;
// and the problem's lines of the tiled families' Config (mma, wgmma).
#pragma once

#include <string>

#include <fmt/format.h>

#include "lowbit/descriptor.h"

namespace lowbit::cuda {

inline int template_dtype(DType dtype) {
  switch (dtype) {
    case DType::fp32: return 0;
    case DType::bf16: return 1;
    case DType::fp16: return 2;
  }
  return -1;
}

inline int template_zero(ZeroPoint zero) {
  switch (zero) {
    case ZeroPoint::none: return 0;
    case ZeroPoint::integer: return 1;
    case ZeroPoint::floating: return 2;
  }
  return -1;
}

// The lines of a tiled family's `struct LowbitConfig` that describe the problem (M .. HAS_BIAS,
// two-space indented, each ending in a newline); the family appends its tile's lines.
inline std::string problem_constants(const OpDesc& desc) {
  return fmt::format(
      "  static constexpr int M = {m};\n"
      "  static constexpr long long N = {n};\n"
      "  static constexpr int K = {k};\n"
      "  static constexpr int GROUP = {group};\n"
      "  static constexpr bool WHOLE_K_GROUP = {whole_k};\n"
      "  static constexpr int ZERO = {zero};\n"
      "  static constexpr int ACT = {act};\n"
      "  static constexpr int OUT = {out};\n"
      "  static constexpr bool HAS_BIAS = {bias};\n",
      fmt::arg("m", desc.m), fmt::arg("n", desc.n), fmt::arg("k", desc.k), fmt::arg("group", desc.group_size()),
      fmt::arg("whole_k", desc.group == whole_k_group ? "true" : "false"), fmt::arg("zero", template_zero(desc.zero)),
      fmt::arg("act", template_dtype(desc.act)), fmt::arg("out", template_dtype(desc.out)),
      fmt::arg("bias", desc.bias ? "true" : "false"));
}

}  // namespace lowbit::cuda
