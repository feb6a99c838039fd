// A complete random instance of a descriptor: activations, quantized and packed weights,
// bias and equalization scale. Tests and the tuner's verification both draw from it, with
// seeds derived from a case name so that a failure is reproducible from one line.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "lowbit/descriptor.h"
#include "lowbit/native_layout.h"
#include "lowbit/quantize.h"

namespace lowbit {

struct Problem {
  OpDesc desc;
  int64_t m = 0;
  uint64_t seed = 0;
  std::vector<uint8_t> x;         // [m][k] in desc.act, uniform in [-1, 1), never all zero
  QuantizedWeights weights;       // uniform random codes, scales and zero points
  NativeWeights packed;           // weights in the native layout
  std::vector<uint8_t> bias;      // [n] in desc.act when desc.bias
  std::vector<float> eq_scale;    // [k] when desc.eqscale, in [0.5, 2)
};

// Random codes (not a quantized float matrix): every code value, every scale and zero
// point occurs, which exercises kernels harder than smooth weights and costs no quantizer.
Problem make_random_problem(const OpDesc& desc, int64_t m, uint64_t seed);

// A stable 64-bit seed from a case name (FNV-1a), so tests print "case + seed" to reproduce.
uint64_t seed_for(std::string_view case_name);

}  // namespace lowbit
