// The CUDA backend's generators, and the map for adding one.
//
// Adding a kernel family (e.g. an mma.sync medium-M family, a cuBLASLt fallback):
//   1. Write codegen/cuda/<family>_generator.{h,cpp}: a class with `family`, `version`,
//      candidates(desc), is_valid(desc, variant, arch_major), emit(desc, variant) and
//      heuristic(desc), as GemvGenerator; its kernel body lives in templates/.
//   2. Name its CudaFamily values in cuda_variant.h and register the generator in registry.cpp
//      (one line in `generators()`, in order of preference, with the families it owns).
//   3. Bump a generator's version whenever its code or candidate set changes: the version is
//      part of every decision's key, so shapes tuned without the change are tuned again (the
//      digest of this folder's sources in generator_version() makes a missed bump a miss all the
//      same; the version says in the cache which change it was).
//   4. Tests: tests/cuda/ runs every candidate against the reference on a GPU and compiles
//      every template under NVRTC without one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "codegen/cuda/compile_queue.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/gemv_generator.h"
#include "lowbit/kernel.h"

namespace lowbit::cuda {

// Identifies the code every registered generator emits and launches: each family's version
// (bumped when its emitted code changes) joined by '+', then the first 16 hex digits of the
// embedded templates' digest (any template edit) and of the host code's (any edit of
// codegen/cuda or of the m=0 row buckets: code_digest.h), e.g.
// "cuda_gemv@4+cuda_mma@3+...;templates=3f2a9c0d1e4b5a67;code=9b1e0c77a2d45f10".
// Part of every CUDA decision's and row plan's key: a decision names the cubin it timed, and the
// launch code of today must not run a cubin of another day's, so new code must miss.
std::string generator_version();

// Every registered generator's candidates that are valid for desc on a device of compute
// capability arch_major and sm_count SMs (0: unknown, e.g. `lowbit compile` without a GPU; the
// generators that count waves then take the H100's), in registration order.
std::vector<CudaVariant> candidates(const OpDesc& desc, int arch_major, int sm_count = 0);

// What a tune times (tuner/cuda_tuner.cpp). Exhaustive: every candidate. Otherwise the
// generator of desc's heuristic variant (the family measured fastest for these rows) contributes
// every candidate, and each other generator only its own heuristic variant where valid: one
// measured sentinel a family, so a descriptor on which the preferred family is slow still finds
// the other's kernel. Across issue 4's 32 rows on the H100 (4 shapes x 8 M, int4) no other family
// came within 1.13x of the winner, and their candidates were 40 % of the compiles
// (docs/benchmarks.md, "cold start"). A generator may leave some of its own candidates out of
// the default search (its in_default_search: wgmma's from 128 rows, the grids that never came
// near a winner; some by the device's SMs).
std::vector<CudaVariant> tuning_candidates(const OpDesc& desc, int arch_major, int sm_count, bool exhaustive);

// The heuristic variant of the first generator (in order of preference) whose heuristic serves
// desc on arch_major. Throws Unsupported, with every generator's reason, when none does.
CudaVariant heuristic(const OpDesc& desc, int arch_major, int sm_count = 0);

// The candidate (or the heuristic's variant, which may lie outside the candidates) of desc on
// `arch` (e.g. "sm_90a", of compute capability arch_major) whose full name (variant_name) is
// `name`: the `--variant NAME` of `lowbit compile` and the benches. Throws InvalidArgument
// naming --variant, how many candidates there are and a few of them when none is.
CudaVariant candidate_named(const OpDesc& desc, const std::string& name, const std::string& arch, int arch_major,
                            int sm_count = 0);

// Whether some generator serves desc on arch_major (its heuristic variant is valid); the
// reasons of all of them when not.
Validity supports(const OpDesc& desc, int arch_major, int sm_count = 0);

// Asks the generator that owns variant.family.
Validity is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major);

// The complete CUDA source of (desc, variant) for NVRTC, from the owning generator.
std::string emit(const OpDesc& desc, const CudaVariant& variant);

// Compiles (NVRTC, for the device's exact arch) and loads (desc, variant) on desc's device.
// Throws Unsupported without a usable device or when the variant is not valid there.
std::shared_ptr<const Kernel> build(const OpDesc& desc, const CudaVariant& variant);
std::shared_ptr<const Kernel> build(const OpDesc& desc, const nlohmann::json& variant);

// Loads a cubin of emit(desc, variant) compiled earlier (the cache's, the tuner's) into the
// owning family's kernel, without NVRTC. The caller has checked the variant's validity.
std::shared_ptr<const ProgramKernel> load(const OpDesc& desc, const CudaVariant& variant, std::vector<char> cubin);

// Compiles every variant of desc for arch with NVRTC, a thread per core (NVRTC takes a good part
// of a second per template-heavy program; loading and timing take milliseconds, so compiling the
// candidates at once is what keeps a benchmark short), and returns them in the variants' order.
// Never throws for one candidate's failure: its error is kept. (compile_queue.h hands each back
// as it finishes.)
std::vector<CompiledCandidate> compile_candidates(const OpDesc& desc, const std::vector<CudaVariant>& variants,
                                                  const std::string& arch);

// The bound a kernel of this variant is verified against: the reference's tolerance
// (lowbit/tolerance.h), widened where the family rounds the weights (dequant_gemm).
double verification_tolerance(const OpDesc& desc, const CudaVariant& variant);

}  // namespace lowbit::cuda
