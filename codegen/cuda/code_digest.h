// The digest of the CUDA backend's host code, computed at build time
// (codegen/cuda/digest_sources.cmake says which files and why).
#pragma once

namespace lowbit::cuda {

// SHA-256 (64 hex digits) of codegen/cuda's sources and runtime/row_buckets: an edit of any
// changes it, and with it generator_version().
const char* cuda_code_digest();

}  // namespace lowbit::cuda
