// The CUDA kernel templates of templates/, embedded into the library at build time.
#pragma once

#include <map>
#include <string>

namespace lowbit::cuda {

// File name (e.g. "gemv.cuh") -> source text.
const std::map<std::string, std::string>& embedded_templates();

// SHA-256 (64 hex digits) of every template's name and text, computed at build time: a template
// edit changes it.
const char* embedded_templates_digest();

}  // namespace lowbit::cuda
