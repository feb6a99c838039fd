// Split-K on x86 (variant.split_k > 1, block_program.h KSplit): every generator against the
// reference at odd shapes with poisoned, guarded outputs; the reduction's determinism (twice
// the same bits, and the same bits at every thread count); the refusals; where the candidates
// and the heuristic split.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/amx_int8_generator.h"
#include "codegen/x86/avx2_float_generator.h"
#include "codegen/x86/avx512_float_generator.h"
#include "codegen/x86/avx512_vnni_int8_generator.h"
#include "codegen/x86/registry.h"
#include "codegen/x86/x86_kernel.h"
#include "lowbit/cpu_info.h"
#include "lowbit/half.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tests/support/test_support.h"

namespace lowbit::x86 {
namespace {

constexpr int every_bits[] = {2, 3, 4, 8};

// A flavour with what it needs from the CPU and the descriptor.
struct Flavour {
  X86Isa isa;
  const char* compute;  // descriptor field
  int cells;            // the register block tested: 2 rows x (cells / 2) panels where it fits
};

bool cpu_runs(X86Isa isa) {
  const CpuInfo& cpu = cpu_info();
  const bool avx512 = testing::cpu_serves_avx512();
  switch (isa) {
    case X86Isa::avx512_fma: return avx512;
    case X86Isa::avx512_bf16: return avx512 && cpu.has("avx512_bf16");
    case X86Isa::avx2_fma: return cpu.has("avx2") && cpu.has("fma") && cpu.has("f16c");
    case X86Isa::avx512_vnni: return avx512 && cpu.has("avx512_vnni");
    case X86Isa::avx2_vnni: return cpu.has("avx2") && cpu.has("fma") && cpu.has("f16c") && cpu.has("avx_vnni");
    case X86Isa::avx2_int8: return cpu.has("avx2") && cpu.has("fma") && cpu.has("f16c");
    case X86Isa::amx_bf16:
    case X86Isa::amx_int8: return false;  // do not split K (refused: AmxRefusesSplitK)
  }
  return false;
}

// Every flavour this CPU runs; the skip reason names those it does not.
std::vector<X86Isa> runnable_flavours(std::string& missing) {
  std::vector<X86Isa> runnable;
  for (X86Isa isa : {X86Isa::avx512_fma, X86Isa::avx512_bf16, X86Isa::avx2_fma, X86Isa::avx512_vnni,
                     X86Isa::avx2_vnni, X86Isa::avx2_int8}) {
    if (cpu_runs(isa))
      runnable.push_back(isa);
    else
      missing += std::string(missing.empty() ? "" : ", ") + std::string(to_string(isa));
  }
  return runnable;
}

// The descriptor text a flavour needs on top of a shape: its compute mode (the bf16 flavour's
// bf16 activations are in the callers' formats).
std::string flavour_fields(X86Isa isa) { return computes_int8(isa) ? ",compute=int8" : ""; }

// The largest block of at most 2 rows a flavour's registers hold for `bits`.
X86Variant block_variant(X86Isa isa, int bits, int split_k, int threads) {
  int panels = 2, rows = 2;
  if (isa == X86Isa::avx2_fma) {
    panels = 1;
    rows = bits == 3 ? 1 : 2;
  }
  if (is_avx2_int8(isa)) panels = 1;  // two cells (avx2_int8_generator.h)
  return X86Variant{isa, panels, rows, 2, threads, split_k};
}

struct Output {
  std::string failure;        // "" when the checks pass
  std::vector<uint8_t> bytes; // y as the kernel wrote it
};

// Runs an m=0 kernel of (desc, variant) at m rows on a random problem (seed from the case name:
// the descriptor, the variant without its threads, and m) with poisoned, guarded outputs;
// checks the float reference at tolerance(desc) and, for compute=int8, the exact twin
// reference_int8 at int8_kernel_tolerance(desc).
Output run_checked(const OpDesc& desc, const X86Variant& variant, int64_t m, int max_threads = 0) {
  OpDesc run_desc = desc;
  run_desc.m = 0;
  X86Kernel kernel(run_desc, variant, max_threads);
  X86Variant one_thread = variant;
  one_thread.threads = 1;  // the same problem at every thread count
  const testing::GuardedRun run = testing::run_guarded(
      kernel, m, to_string(desc) + " " + variant_name(desc, one_thread) + " m=" + std::to_string(m));
  Output output;
  output.bytes.assign(run.output(), run.output() + run.out_bytes);
  const std::string& where = run.where;
  if (!run.guards_intact) {
    output.failure = where + ": guard bytes overwritten";
    return output;
  }
  const Problem& problem = run.problem;
  const void* bias = run.bias();
  const float* eq_scale = run.eq_scale();
  const void* y = run.output();
  const double error =
      relative_error(y, desc.out, reference_matmul(desc, m, problem.x.data(), problem.weights, bias, eq_scale));
  if (!(error <= tolerance(desc))) {
    output.failure = where + ": error against the reference " + std::to_string(error) + " > " +
                     std::to_string(tolerance(desc));
    return output;
  }
  if (desc.compute == Compute::int8) {
    const double twin =
        relative_error(y, desc.out, reference_int8(desc, m, problem.x.data(), problem.weights, bias, eq_scale));
    if (!(twin <= int8_kernel_tolerance(desc)))
      output.failure = where + ": error against reference_int8 " + std::to_string(twin) + " > " +
                       std::to_string(int8_kernel_tolerance(desc));
  }
  return output;
}

// Every generator, width and split_k in {2, 3, 4} at odd shapes: K not a multiple of 128 with
// groups (13 groups of 32: parts of 7/5/4 groups, the last shorter; and 7 groups of 128), group=-1 with a K tail
// (K=1001: the last part ends in a partial step and, for int8, a partial activation block), N
// below one panel and N=37 (a 5-column tail), M around the block height. Formats cycle through
// dtypes, zero points and bias so every combination of flavour and split meets several.
TEST(X86SplitK, EveryGeneratorAgainstTheReferenceAtOddShapes) {
  std::string missing;
  const std::vector<X86Isa> flavours = runnable_flavours(missing);
  if (flavours.empty()) GTEST_SKIP() << "this CPU runs no x86 flavour (lacks " << missing << ")";
  if (!missing.empty()) std::printf("skipping flavours this CPU lacks: %s\n", missing.c_str());
  const char* formats[] = {"act=fp32,out=fp32,zero=int,bias=1", "act=bf16,out=bf16,zero=none,bias=0",
                           "act=fp16,out=fp16,zero=float,bias=1", "act=bf16,out=fp32,zero=int,bias=1,eqscale=1"};
  int checked = 0;
  int format_index = 0;
  for (X86Isa isa : flavours)
    for (int bits : every_bits)
      for (const char* shape : {"group=32,k=416", "group=-1,k=1001", "group=128,k=896"})
        for (const char* n : {"n=7", "n=37"})
          for (int split_k : {2, 3, 4}) {
            std::string format = formats[format_index++ % 4];
            // The bf16 flavour reads bf16 activations and refuses eqscale=1 (avx512_float_generator.cpp).
            if (isa == X86Isa::avx512_bf16) format = "act=bf16,out=fp16,zero=int,bias=1";
            const OpDesc desc = parse_descriptor(std::string(n) + ",bits=" + std::to_string(bits) + "," + shape + "," +
                                                 format + flavour_fields(isa));
            const X86Variant variant = block_variant(isa, bits, split_k, 2);
            const Validity validity = is_valid(desc, variant);
            ASSERT_TRUE(validity) << to_string(desc) << " " << variant_name(desc, variant) << ": " << validity.reason;
            for (int64_t m : {int64_t{1}, int64_t{variant.m_rows}, int64_t{variant.m_rows + 1}, int64_t{5}}) {
              const Output output = run_checked(desc, variant, m);
              ASSERT_TRUE(output.failure.empty()) << output.failure;
              ++checked;
            }
          }
  EXPECT_EQ(checked, static_cast<int>(flavours.size()) * 4 * 3 * 2 * 3 * 4);
}

// The parts are reduced in part order whatever thread ran them: the same kernel twice, and the
// same variant at 1, 2 and 3 threads (capped by the caller's option and the cores), give the
// same bits.
TEST(X86SplitK, ReductionIsDeterministic) {
  std::string missing;
  const std::vector<X86Isa> flavours = runnable_flavours(missing);
  if (flavours.empty()) GTEST_SKIP() << "this CPU runs no x86 flavour (lacks " << missing << ")";
  for (X86Isa isa : flavours)
    for (const char* shape : {"n=40,k=2048,group=64,bits=4,zero=int,bias=1", "n=100,k=3000,group=-1,bits=3,zero=none"})
      for (int split_k : {2, 3, 4}) {
        const OpDesc desc = parse_descriptor(std::string(shape) + ",act=bf16,out=fp32" + flavour_fields(isa));
        ASSERT_TRUE(is_valid(desc, block_variant(isa, desc.bits, split_k, 1)));
        const int64_t m = 3;
        const Output first = run_checked(desc, block_variant(isa, desc.bits, split_k, 1), m, 1);
        ASSERT_TRUE(first.failure.empty()) << first.failure;
        for (int threads : {1, 2, 3}) {
          const X86Variant variant = block_variant(isa, desc.bits, split_k, threads);
          for (int repeat = 0; repeat < 2; ++repeat) {
            const Output again = run_checked(desc, variant, m, threads);
            ASSERT_TRUE(again.failure.empty()) << again.failure;
            EXPECT_EQ(std::memcmp(first.bytes.data(), again.bytes.data(), first.bytes.size()), 0)
                << variant_name(desc, variant) << " threads=" << threads << " repeat " << repeat
                << ": not the bits of the 1-thread run";
          }
        }
      }
}

TEST(X86SplitK, RefusesSplitsThatDoNotCutKIntoSplitKParts) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("n=64,k=160,group=32,bits=4");  // 5 groups
  auto reason = [&](int split_k) { return is_valid(desc, X86Variant{X86Isa::avx512_fma, 1, 1, 1, 1, split_k}); };
  EXPECT_TRUE(reason(1));
  EXPECT_TRUE(reason(2));  // 3 + 2 groups
  EXPECT_TRUE(reason(3));  // 2 + 2 + 1
  EXPECT_TRUE(reason(5));
  const Validity zero = reason(0);
  EXPECT_FALSE(zero);
  EXPECT_NE(zero.reason.find("split_k must be >= 1"), std::string::npos) << zero.reason;
  const Validity four = reason(4);  // 2 groups per part: 3 parts
  EXPECT_FALSE(four);
  EXPECT_NE(four.reason.find("cuts K into 3 parts, not 4"), std::string::npos) << four.reason;
  const Validity six = reason(6);
  EXPECT_FALSE(six);
  EXPECT_NE(six.reason.find("allowed: 1..5"), std::string::npos) << six.reason;
  // group=-1, compute=int8: the unit is the 128-k activation block (K=300: 3 blocks).
  const OpDesc int8 = parse_descriptor("n=64,k=300,group=-1,bits=4,compute=int8");
  EXPECT_TRUE(check_split(int8, X86Variant{X86Isa::avx512_vnni, 1, 1, 1, 1, 3}));
  EXPECT_FALSE(check_split(int8, X86Variant{X86Isa::avx512_vnni, 1, 1, 1, 1, 4}));
}

// Splits are candidates only where N's register blocks leave threads idle, with parts of at
// least min_part_k k, and the heuristic takes one there.
TEST(X86SplitK, CandidatesAndHeuristicSplitOnlyWhereThreadsWouldIdle) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const int threads = 16;
  auto splits_of = [](const std::vector<X86Variant>& variants) {
    int most = 1;
    for (const X86Variant& variant : variants) most = std::max(most, variant.split_k);
    return most;
  };
  for (const char* compute : {"float", "int8"}) {
    if (std::string(compute) == "int8" && !cpu_runs(X86Isa::avx512_vnni)) continue;
    const auto generate = [&](const OpDesc& desc) {
      return std::string(compute) == "int8" ? Avx512VnniInt8Generator().candidates(desc, cpu_info(), threads)
                                            : Avx512FloatGenerator().candidates(desc, cpu_info(), threads);
    };
    const auto pick = [&](const OpDesc& desc) {
      return std::string(compute) == "int8" ? Avx512VnniInt8Generator().heuristic(desc, cpu_info(), threads)
                                            : Avx512FloatGenerator().heuristic(desc, cpu_info(), threads);
    };
    const std::string fields = std::string(",bits=4,group=128,zero=int,act=bf16,compute=") + compute;
    const OpDesc small_n = parse_descriptor("m=1,n=256,k=4096" + fields);
    const X86Variant chosen = pick(small_n);
    EXPECT_EQ(chosen.split_k, 4) << variant_name(small_n, chosen);  // 4 blocks of 4 panels x 4 parts
    EXPECT_EQ(chosen.threads, threads);
    EXPECT_GT(splits_of(generate(small_n)), 1);
    for (const X86Variant& variant : generate(small_n))
      EXPECT_GE(k_split(small_n, variant).part_k, min_part_k) << variant_name(small_n, variant);

    const OpDesc large_n = parse_descriptor("m=1,n=4096,k=4096" + fields);
    EXPECT_EQ(pick(large_n).split_k, 1);
    EXPECT_EQ(splits_of(generate(large_n)), 1);
    // Too little K for parts of min_part_k: no split even at small N.
    const OpDesc short_k = parse_descriptor("m=1,n=64,k=512" + fields);
    EXPECT_EQ(pick(short_k).split_k, 1);
    EXPECT_EQ(splits_of(generate(short_k)), 1);
  }
  if (cpu_runs(X86Isa::avx2_fma)) {
    const OpDesc small_n = parse_descriptor("m=1,n=64,k=4096,bits=4,group=128");
    EXPECT_GT(Avx2FloatGenerator().heuristic(small_n, cpu_info(), threads).split_k, 1);
  }
}

// AMX serves M >= 16, where row and panel blocks feed the threads: split_k > 1 is refused
// (checked before the CPU's AMX permission, so a CPU given the features answers here).
TEST(X86SplitK, AmxRefusesSplitK) {
  CpuInfo cpu = cpu_info();
  for (const char* feature : {"amx_tile", "amx_bf16", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"})
    cpu.isa.emplace_back(feature);
  const OpDesc desc = parse_descriptor("m=16,n=64,k=4096,bits=4,group=128,act=bf16");
  const Validity validity = AmxBf16Generator().is_valid(desc, X86Variant{X86Isa::amx_bf16, 1, 16, 1, 2, 2}, cpu);
  EXPECT_FALSE(validity);
  EXPECT_EQ(validity.reason, "amx_bf16 does not split K: split_k must be 1");
  cpu.isa.emplace_back("amx_int8");
  const OpDesc int8 = parse_descriptor("m=16,n=64,k=4096,bits=4,group=128,act=bf16,compute=int8");
  const Validity int8_validity =
      AmxInt8Generator().is_valid(int8, X86Variant{X86Isa::amx_int8, 1, 16, 1, 2, 2}, cpu);
  EXPECT_FALSE(int8_validity);
  EXPECT_EQ(int8_validity.reason, "amx_int8 does not split K: split_k must be 1");
}

TEST(X86SplitK, NameAndJson) {
  const OpDesc desc = parse_descriptor("m=1,n=256,k=4096,bits=4,group=128");
  const X86Variant split{X86Isa::avx512_fma, 4, 1, 2, 16, 4};
  EXPECT_EQ(variant_name(desc, split), "x86_avx512fma_w4g128_n4m1k2_t16_s4");
  EXPECT_EQ(variant_name(desc, X86Variant{X86Isa::avx512_fma, 4, 1, 2, 16}), "x86_avx512fma_w4g128_n4m1k2_t16");
  EXPECT_EQ(variant_from_json(to_json(split)), split);
  // Variants stored before split_k existed read as split_k=1.
  const X86Variant old = variant_from_json(
      nlohmann::json::parse(R"({"isa":"avx512_fma","n_panels":4,"m_rows":1,"k_unroll":2,"threads":16})"));
  EXPECT_EQ(old.split_k, 1);
}

}  // namespace
}  // namespace lowbit::x86
