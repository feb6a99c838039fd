// Turning tuning results into cache rows, shared by get_kernel() and the CLI's tune command.
#pragma once

#include <string>

#include "cache/decision_cache.h"
#include "lowbit/kernel.h"
#include "tuner/tuner.h"

namespace lowbit::runtime {

// Throws Unsupported, with the reason, when no backend on this machine serves desc (with the
// x86 ISA family `isa` when not empty: GetOptions.isa); InvalidArgument for an unknown isa.
void require_served(const OpDesc& desc, const std::string& isa = {});

// options.cache_path, else $LOWBIT_CACHE, else the user cache directory.
std::string cache_path(const GetOptions& options);
// options.shipped_caches, else $LOWBIT_SHIPPED_CACHE split at ':' (empty parts skipped).
std::vector<std::string> shipped_cache_paths(const GetOptions& options);

// Worker threads a kernel may use under options: the cap, at most the usable cores.
int thread_budget(const GetOptions& options);

// The fingerprint desc's decisions are keyed by. x86: this CPU's, plus the thread cap when it
// is below the core count, since a variant tuned on fewer threads is another measurement.
// CUDA: the device's (runtime/cuda_backend.h, cuda_fingerprint).
std::string decision_fingerprint(const OpDesc& desc, const GetOptions& options);

// The generator version desc's decisions are keyed by: the allowed x86 generators', or the
// CUDA generators' with the NVRTC version.
std::string decision_generator_version(const OpDesc& desc, const GetOptions& options);

// Stores the winner of result for desc on this machine (fingerprint, generator version,
// protocol and the top candidates as provenance); for a CUDA winner its cubin too, so the
// next process loads it without compiling. Returns false when the cache refused the decision.
bool store_decision(cache::DecisionCache& decisions, const OpDesc& desc, const GetOptions& options,
                    const tuner::TuneResult& result);

}  // namespace lowbit::runtime
