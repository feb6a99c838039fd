// The CUDA kernel templates of templates/, embedded into the library at build time.
#pragma once

#include <map>
#include <string>

namespace lowbit::cuda {

// File name (e.g. "gemv.cuh") -> source text.
const std::map<std::string, std::string>& embedded_templates();

}  // namespace lowbit::cuda
