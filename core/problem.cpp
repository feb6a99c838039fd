#include "lowbit/problem.h"

#include <cmath>
#include <random>

#include "lowbit/half.h"

namespace lowbit {

uint64_t seed_for(std::string_view case_name) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : case_name) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

Problem make_random_problem(const OpDesc& desc, int64_t m, uint64_t seed) {
  Problem problem;
  problem.desc = desc;
  problem.m = m;
  problem.seed = seed;
  std::mt19937_64 generator(seed);
  std::uniform_real_distribution<float> activation(-1.0f, 1.0f);

  problem.x.resize(static_cast<std::size_t>(m * desc.k * dtype_bytes(desc.act)));
  for (int64_t i = 0; i < m * desc.k; ++i) store_from_float(problem.x.data(), desc.act, i, activation(generator));

  problem.weights = QuantizedWeights::allocate(desc);
  QuantizedWeights& weights = problem.weights;
  const int levels = 1 << desc.bits;
  std::uniform_int_distribution<int> code(0, levels - 1);
  for (auto& value : weights.q) value = static_cast<uint8_t>(code(generator));
  // Scales around 1/sqrt(k) keep outputs O(1) whatever k is.
  const float scale_base = 1.0f / std::sqrt(static_cast<float>(desc.k)) / static_cast<float>(levels);
  std::uniform_real_distribution<float> scale_factor(0.5f, 1.5f);
  for (auto& value : weights.scales) value = float_to_fp16(scale_base * scale_factor(generator));
  if (desc.zero == ZeroPoint::integer) {
    for (auto& value : weights.zeros) value = float_to_fp16(static_cast<float>(code(generator)));
  } else if (desc.zero == ZeroPoint::floating) {
    std::uniform_real_distribution<float> zero(0.0f, static_cast<float>(levels - 1));
    for (auto& value : weights.zeros) value = float_to_fp16(zero(generator));
  }
  problem.packed = pack_native(desc, weights);

  if (desc.bias) {
    problem.bias.resize(static_cast<std::size_t>(desc.n * dtype_bytes(desc.act)));
    for (int64_t i = 0; i < desc.n; ++i) store_from_float(problem.bias.data(), desc.act, i, activation(generator));
  }
  if (desc.eqscale) {
    std::uniform_real_distribution<float> equalization(0.5f, 2.0f);
    problem.eq_scale.resize(static_cast<std::size_t>(desc.k));
    for (auto& value : problem.eq_scale) value = equalization(generator);
  }
  return problem;
}

}  // namespace lowbit
