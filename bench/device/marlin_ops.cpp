// The op schemas of vLLM's Marlin kernels, a baseline of the CUDA benchmark. The kernels' own
// sources (vllm 0.20.0's csrc/quantization/marlin, fetched by bench/device/prepare.sh) register
// their CUDA implementations under TORCH_EXTENSION_NAME; vLLM declares the schemas in its
// csrc/torch_bindings.cpp, which this file replaces for the two ops the benchmark calls. Built by
// bench/device/marlin_baseline.py on the device; not part of lowbit.
#include <torch/library.h>

#include <string>

#include "core/registration.h"
#include "core/scalar_type.hpp"

namespace {

// The id marlin_gemm takes for the weight type: "uint4" (codes 0..15 with integer zero points,
// AWQ's format and lowbit's zero=int) or "uint4b8" (codes with a bias of 8 and no zero points,
// GPTQ's format).
int64_t weight_type_id(const std::string& name) {
  if (name == "uint4") return vllm::kU4.id();
  if (name == "uint4b8") return vllm::kU4B8.id();
  TORCH_CHECK(false, "weight_type_id: unknown weight type '", name, "' (allowed: uint4, uint4b8)");
}

}  // namespace

TORCH_LIBRARY_EXPAND(TORCH_EXTENSION_NAME, ops) {
  ops.def(
      "marlin_gemm(Tensor a, Tensor? c_or_none, Tensor b_q_weight, Tensor? b_bias_or_none, Tensor b_scales, "
      "Tensor? a_scales, Tensor? global_scale, Tensor? b_zeros_or_none, Tensor? g_idx_or_none, "
      "Tensor? perm_or_none, Tensor workspace, int b_type_id, SymInt size_m, SymInt size_n, SymInt size_k, "
      "bool is_k_full, bool use_atomic_add, bool use_fp32_reduce, bool is_zp_float) -> Tensor");
  ops.def("awq_marlin_repack(Tensor b_q_weight, SymInt size_k, SymInt size_n, int num_bits, bool is_a_8bit) -> Tensor");
  ops.def("weight_type_id(str name) -> int", &weight_type_id);
}
