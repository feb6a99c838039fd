#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lowbit/half.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"

namespace lowbit {
namespace {

TEST(Reference, MatchesHandComputedCase) {
  // One row, two outputs, group of 32 over k=32: w = (q - z) * s.
  OpDesc desc = parse_descriptor("m=1,n=2,k=32,group=32,zero=int,act=fp32,bias=1,eqscale=1");
  QuantizedWeights weights;
  weights.n = 2;
  weights.k = 32;
  weights.bits = 4;
  weights.group = 32;
  weights.zero = ZeroPoint::integer;
  weights.q.resize(64);
  for (int i = 0; i < 64; ++i) weights.q[i] = static_cast<uint8_t>(i % 16);
  weights.scales = {float_to_fp16(0.5f), float_to_fp16(0.25f)};
  weights.zeros = {float_to_fp16(8.0f), float_to_fp16(3.0f)};
  std::vector<float> x(32), eq(32);
  float bias[2] = {1.0f, -2.0f};
  double expected[2] = {bias[0], bias[1]};
  for (int k = 0; k < 32; ++k) {
    x[k] = 0.1f * static_cast<float>(k + 1);
    eq[k] = k % 2 ? 2.0f : 0.5f;
    expected[0] += static_cast<double>(x[k]) * eq[k] * ((k % 16) - 8.0) * 0.5;
    expected[1] += static_cast<double>(x[k]) * eq[k] * (((32 + k) % 16) - 3.0) * 0.25;
  }
  std::vector<double> y = reference_matmul(desc, 1, x.data(), weights, bias, eq.data());
  EXPECT_DOUBLE_EQ(y[0], expected[0]);
  EXPECT_DOUBLE_EQ(y[1], expected[1]);
}

// The reference sums four rows at a time (independent chains for speed): every output must be the
// same bits as that row's sum on its own, in k order, whichever block of four or remainder holds it.
TEST(Reference, RowsSummedTogetherMatchEachRowAlone) {
  const OpDesc desc = parse_descriptor("m=7,n=37,k=192,bits=4,group=64,zero=float,act=fp16,bias=1,eqscale=1");
  const Problem problem = make_random_problem(desc, 7, 11);
  const std::vector<double> together = reference_matmul(desc, 7, problem.x.data(), problem.weights,
                                                        problem.bias.data(), problem.eq_scale.data());
  const std::size_t row_bytes = problem.x.size() / 7;
  for (int64_t row = 0; row < 7; ++row) {
    const std::vector<double> alone = reference_matmul(desc, 1, problem.x.data() + row * row_bytes, problem.weights,
                                                       problem.bias.data(), problem.eq_scale.data());
    for (int64_t n = 0; n < desc.n; ++n) {
      EXPECT_EQ(together[row * desc.n + n], alone[n]) << "row " << row << ", column " << n;
      // And the definition itself: the serial sum in k order, then the bias.
      double sum = 0.0;
      for (int64_t k = 0; k < desc.k; ++k) {
        const int64_t group = k / 64;
        const double weight = (static_cast<double>(problem.weights.q[n * desc.k + k]) -
                               problem.weights.zero_point(n, group)) *
                              problem.weights.scale(n, group);
        const double activation = static_cast<double>(load_as_float(problem.x.data(), desc.act, row * desc.k + k)) *
                                  problem.eq_scale[k];
        sum += activation * weight;
      }
      EXPECT_EQ(alone[n], sum + load_as_float(problem.bias.data(), desc.act, n)) << "row " << row << ", column " << n;
    }
  }
}

TEST(Reference, RelativeErrorFlagsNonFiniteAndMeasuresNorm) {
  std::vector<double> ref{3.0, 4.0};
  float out[2] = {3.0f, 4.5f};
  EXPECT_NEAR(relative_error(out, DType::fp32, ref), 0.1, 1e-12);
  out[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isinf(relative_error(out, DType::fp32, ref)));
}

TEST(Problem, RandomInputsAreDeterministicAndNotZero) {
  OpDesc desc = parse_descriptor("m=3,n=20,k=64,group=32,bias=1,eqscale=1");
  Problem first = make_random_problem(desc, 3, 42);
  Problem second = make_random_problem(desc, 3, 42);
  EXPECT_EQ(first.x, second.x);
  EXPECT_EQ(first.weights.q, second.weights.q);
  int nonzero = 0;
  for (int64_t i = 0; i < 3 * 64; ++i) nonzero += load_as_float(first.x.data(), desc.act, i) != 0.0f;
  EXPECT_GT(nonzero, 3 * 64 - 3);
  EXPECT_NE(make_random_problem(desc, 3, 43).x, first.x);
}

}  // namespace
}  // namespace lowbit
