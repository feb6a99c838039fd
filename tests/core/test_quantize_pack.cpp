#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "lowbit/errors.h"
#include "lowbit/native_layout.h"
#include "lowbit/problem.h"
#include "lowbit/quantize.h"

namespace lowbit {
namespace {

std::vector<float> random_weights(int64_t count, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> weights(static_cast<std::size_t>(count));
  for (auto& value : weights) value = normal(generator);
  return weights;
}

TEST(Quantize, ErrorWithinHalfAStepForEveryFormat) {
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, 64, 128, 256, -1})
      for (ZeroPoint zero : {ZeroPoint::none, ZeroPoint::integer, ZeroPoint::floating}) {
        OpDesc desc = parse_descriptor("n=5,k=512");
        desc.bits = bits;
        desc.group = group;
        desc.zero = zero;
        std::string name = to_string(desc);
        std::vector<float> weights = random_weights(desc.n * desc.k, seed_for(name));
        QuantizedWeights quantized = quantize_rtn(desc, weights);
        for (int64_t n = 0; n < desc.n; ++n)
          for (int64_t k = 0; k < desc.k; ++k) {
            ASSERT_LT(quantized.q[n * desc.k + k], 1 << bits);
            float step = quantized.scale(n, k / desc.group_size());
            float error = std::fabs(quantized.dequantized(n, k) - weights[n * desc.k + k]);
            // Half a step of rounding, plus fp16 rounding of the scale and zero point
            // (2^-11 relative, times up to 2^bits steps).
            ASSERT_LE(error, step * (0.5f + std::ldexp(1.0f, bits - 10))) << name << " n=" << n << " k=" << k;
          }
      }
}

TEST(Quantize, IntegerZeroPointsAreIntegers) {
  OpDesc desc = parse_descriptor("n=3,k=64,group=32,zero=int");
  QuantizedWeights quantized = quantize_rtn(desc, random_weights(desc.n * desc.k, 7));
  for (int64_t n = 0; n < desc.n; ++n)
    for (int64_t g = 0; g < 2; ++g) EXPECT_EQ(quantized.zero_point(n, g), std::round(quantized.zero_point(n, g)));
}

TEST(Quantize, RefusesWrongSizeAndNonFinite) {
  OpDesc desc = parse_descriptor("n=2,k=32,group=32");
  EXPECT_THROW(quantize_rtn(desc, std::vector<float>(63, 0.1f)), InvalidArgument);
  std::vector<float> weights(64, 0.1f);
  weights[5] = std::nanf("");
  EXPECT_THROW(quantize_rtn(desc, weights), InvalidArgument);
}

TEST(NativeLayout, PackUnpackRoundTripsEveryFormatAtOddShapes) {
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, -1})
      for (ZeroPoint zero : {ZeroPoint::none, ZeroPoint::integer, ZeroPoint::floating})
        for (auto [n, k] : {std::pair<int64_t, int64_t>{17, 96}, {33, 160}, {1, 32}}) {
          OpDesc desc = parse_descriptor("n=1,k=32,group=32");
          desc.n = n;
          desc.k = group == -1 ? k + 3 : k;  // group=-1 also covers K not a multiple of a block
          desc.bits = bits;
          desc.group = group;
          desc.zero = zero;
          std::string name = to_string(desc);
          Problem problem = make_random_problem(desc, 1, seed_for(name));
          QuantizedWeights unpacked = unpack_native(desc, view(problem.packed));
          EXPECT_EQ(unpacked.q, problem.weights.q) << name;
          EXPECT_EQ(unpacked.scales, problem.weights.scales) << name;
          EXPECT_EQ(unpacked.zeros, problem.weights.zeros) << name;
        }
}

TEST(NativeLayout, Int4BlockBitsAreAsDocumented) {
  // docs/layout.md: byte 2j+h of a block holds q[n0+j, k0+2f+h] in bits 4f..4f+3.
  OpDesc desc = parse_descriptor("n=16,k=32,group=32,bits=4");
  Problem problem = make_random_problem(desc, 1, 11);
  const uint8_t* block = problem.packed.qweight() + 32;  // panel 0, second 4-k step (k0 = 4)
  for (int j = 0; j < 16; ++j)
    for (int h = 0; h < 2; ++h)
      for (int f = 0; f < 2; ++f)
        EXPECT_EQ((block[2 * j + h] >> (4 * f)) & 0xf, problem.weights.q[j * 32 + 4 + 2 * f + h]);
}

TEST(NativeLayout, GeometryAndByteCounts) {
  OpDesc desc = parse_descriptor("n=1000,k=8256,group=64,bits=4,zero=int");
  NativeGeometry geometry = native_geometry(desc);
  EXPECT_EQ(geometry.panels, 63);
  EXPECT_EQ(geometry.k_per_block, 4);
  EXPECT_EQ(geometry.panel_bytes, 8256 / 4 * 32);
  EXPECT_EQ(native_weight_bytes(desc), 63 * 8256 / 4 * 32 + 2 * (63 * 129 * 16 * 2));
  desc.bits = 3;
  EXPECT_EQ(native_geometry(desc).step_bytes, 96);
  EXPECT_EQ(native_geometry(desc).k_per_block, 16);
}

TEST(NativeLayout, RefusesMismatchedWeights) {
  OpDesc desc = parse_descriptor("n=16,k=64,group=32");
  Problem problem = make_random_problem(desc, 1, 3);
  OpDesc other = desc;
  other.k = 32;
  EXPECT_THROW(pack_native(other, problem.weights), InvalidArgument);
}

}  // namespace
}  // namespace lowbit
