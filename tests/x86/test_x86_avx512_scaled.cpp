// The AVX512-BF16 cache-blocked scaled decode (k_block > 0, scaled_decode = 1) against the
// reference at dequantized_weights_tolerance (the weights are rounded to bf16 once), on a CPU
// with AVX512-BF16 (skipped with the reason elsewhere); and what runs anywhere: is_valid's
// reasons, the variant's name, where the candidates hold it.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include "codegen/x86/avx512_float_generator.h"
#include "codegen/x86/registry.h"
#include "codegen/x86/x86_kernel.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"
#include "lowbit/errors.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tests/support/test_support.h"

namespace lowbit::x86 {
namespace {

#define LOWBIT_SKIP_WITHOUT_AVX512_BF16()                                                  \
  if (!::lowbit::testing::cpu_serves_avx512() || !cpu_info().has("avx512_bf16"))         \
  GTEST_SKIP() << "this CPU lacks AVX512-BF16 (or AVX-512 F/BW/VL): the scaled decode cannot run here"

// A CPU with every feature the flavour asks for, for the reasons that do not depend on the host.
CpuInfo bf16_cpu() {
  CpuInfo cpu = cpu_info();
  cpu.isa = {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"};
  return cpu;
}

X86Variant scaled_variant(int panels, int rows, int k_block, int threads = 2) {
  return X86Variant{X86Isa::avx512_bf16, panels, rows, 1, threads, 1, k_block, 1};
}

// Every candidate block, and small ones whose M tails are whole blocks of one row.
std::vector<std::pair<int, int>> tested_blocks() {
  std::vector<std::pair<int, int>> blocks = Avx512FloatGenerator::scaled_blocks();
  blocks.emplace_back(1, 1);
  blocks.emplace_back(3, 2);
  return blocks;
}

// Runs kernel at m rows (random inputs, poisoned output with guard bytes) and compares it with
// the reference at the variant's own bound; returns the failure, empty when none.
std::string check_at_variant_tolerance(const OpDesc& desc, const X86Variant& variant, const X86Kernel& kernel,
                                       int64_t m, double* worst) {
  const testing::GuardedRun run =
      testing::run_guarded(kernel, m, to_string(desc) + " " + variant_name(desc, variant) + " m=" + std::to_string(m));
  if (!run.guards_intact) return run.where + ": guard bytes overwritten";
  const std::vector<double> reference =
      reference_matmul(desc, m, run.problem.x.data(), run.problem.weights, run.bias(), nullptr);
  const double error = relative_error(run.output(), desc.out, reference);
  *worst = std::max(*worst, error);
  const double bound = verification_tolerance(desc, variant);
  if (!(error <= bound)) return fmt::format("{}: relative error {} > tolerance {}", run.where, error, bound);
  return {};
}

// Every width x group x zero point x output dtype x block: N=37 (a 5-column tail), K of 3 to 5
// groups with a shorter last block of K, M = 1 up to past several row blocks.
TEST(X86Avx512Scaled, EveryFormatBlockAndDtypeAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AVX512_BF16();
  struct Shape {
    const char* text;
    int k_block;
  };
  int checked = 0;
  double worst = 0;
  for (int bits : {2, 3, 4, 8})
    for (const Shape& shape : {Shape{"group=32,k=160", 64}, Shape{"group=64,k=320", 128},
                               Shape{"group=128,k=384", 256}, Shape{"group=128,k=640", 256}})
      for (const char* zero : {"none", "int", "float"})
        for (const char* out : {"fp32", "bf16", "fp16"}) {
          const std::string bias = std::string(zero) == "int" ? "1" : "0";
          const OpDesc desc = parse_descriptor("m=0,n=37,act=bf16,bits=" + std::to_string(bits) + "," + shape.text +
                                               ",zero=" + zero + ",out=" + out + ",bias=" + bias);
          for (auto [panels, rows] : tested_blocks()) {
            const X86Variant variant = scaled_variant(panels, rows, shape.k_block);
            ASSERT_TRUE(is_valid(desc, variant)) << variant_name(desc, variant) << ": " << is_valid(desc, variant).reason;
            const X86Kernel kernel(desc, variant);
            ASSERT_TRUE(kernel.blocks_k()) << variant_name(desc, variant);
            for (int64_t m : {1, 15, 16, 17, 33, 100}) {
              const std::string failure = check_at_variant_tolerance(desc, variant, kernel, m, &worst);
              ASSERT_TRUE(failure.empty()) << failure;
              ++checked;
            }
          }
        }
  EXPECT_EQ(checked, 4 * 4 * 3 * 3 * 6 * 6);
  std::printf("avx512 scaled decode: worst normalised error %.3g over %d checks\n", worst, checked);
}

// Llama-sized K (4 and 2 blocks of K), N=1000 (an 8-column tail): the candidates' blocks at
// M = 32, 70, 256, and the same bits at 1 and 2 threads (each thread's panels and K order are
// fixed by the variant, not by the thread count).
TEST(X86Avx512Scaled, LargerShapesAndThreadCountsAgree) {
  LOWBIT_SKIP_WITHOUT_AVX512_BF16();
  double worst = 0;
  for (const char* format : {"bits=4,group=128,zero=int,out=bf16,bias=1", "bits=3,group=64,zero=float,out=fp32",
                             "bits=8,group=128,zero=none,out=fp16", "bits=2,group=128,zero=int,out=fp32"}) {
    const OpDesc desc = parse_descriptor(std::string("m=0,n=1000,k=4096,act=bf16,") + format);
    for (int k_block : {1024, 2048})
      for (auto [panels, rows] : Avx512FloatGenerator::scaled_blocks())
        for (int64_t m : {32, 70, 256}) {
          const X86Variant two = scaled_variant(panels, rows, k_block, 2);
          const X86Kernel kernel(desc, two);
          const std::string failure = check_at_variant_tolerance(desc, two, kernel, m, &worst);
          ASSERT_TRUE(failure.empty()) << failure;
          const X86Kernel single(desc, scaled_variant(panels, rows, k_block, 1));
          const testing::GuardedRun run_two = testing::run_guarded(kernel, m, "scaled thread counts");
          const testing::GuardedRun run_one = testing::run_guarded(single, m, "scaled thread counts");
          ASSERT_TRUE(run_one.guards_intact && run_two.guards_intact) << run_one.where;
          ASSERT_EQ(run_one.buffer, run_two.buffer) << run_one.where << " " << variant_name(desc, two) << " m=" << m;
        }
  }
  std::printf("avx512 scaled decode, K=4096: worst normalised error %.3g\n", worst);
}

// The cache-blocked launcher cuts the blocks of panels into runs that the threads take from a
// shared counter (LOWBIT_X86_RUNS_PER_THREAD, default 4): any cut gives the same bits, the
// reference's accuracy and intact guards, from one run per thread to one run per block (N=1000:
// 16 blocks of 4 panels, the last one 3 panels and an 8-column tail); a value that is not a
// positive integer is refused, naming what is allowed.
TEST(X86Avx512Scaled, RunsPerThreadGiveTheSameBits) {
  LOWBIT_SKIP_WITHOUT_AVX512_BF16();
  struct RestoreRuns {
    ~RestoreRuns() { unsetenv("LOWBIT_X86_RUNS_PER_THREAD"); }
  } restore;
  const OpDesc desc = parse_descriptor("m=0,n=1000,k=1024,act=bf16,bits=4,group=128,zero=int,out=bf16,bias=1");
  const X86Variant variant = scaled_variant(4, 6, 512, 2);
  const X86Kernel kernel(desc, variant);
  double worst = 0;
  std::vector<uint8_t> first;
  for (const char* runs : {"1", "3", "4", "1000"}) {
    setenv("LOWBIT_X86_RUNS_PER_THREAD", runs, 1);
    const std::string failure = check_at_variant_tolerance(desc, variant, kernel, 70, &worst);
    ASSERT_TRUE(failure.empty()) << failure << " runs=" << runs;
    const testing::GuardedRun run = testing::run_guarded(kernel, 70, "runs per thread");
    ASSERT_TRUE(run.guards_intact) << run.where << " runs=" << runs;
    if (first.empty()) first = run.buffer;
    ASSERT_EQ(run.buffer, first) << "runs=" << runs;
  }
  for (const char* bad : {"0", "-2", "four", "4x", ""}) {
    setenv("LOWBIT_X86_RUNS_PER_THREAD", bad, 1);
    try {
      testing::run_guarded(kernel, 70, "bad runs per thread");
      ADD_FAILURE() << "LOWBIT_X86_RUNS_PER_THREAD='" << bad << "' was accepted";
    } catch (const InvalidArgument& error) {
      EXPECT_NE(std::string(error.what()).find("must be an integer from 1 to"), std::string::npos) << error.what();
    }
  }
}

// The reasons, whatever the host: every combination the flavour does not run is refused, naming
// what is allowed.
// LOWBIT_DUMP_X86: the kernel's two programs (the vdpbf16ps blocks and AMX-BF16's decode-only
// program) share a variant name and must still dump to two files.
TEST(X86Avx512Scaled, DumpsItsBlocksAndItsDecodeApart) {
  LOWBIT_SKIP_WITHOUT_AVX512_BF16();
  const std::filesystem::path directory =
      std::filesystem::temp_directory_path() / fmt::format("lowbit_scaled_dump_test_{}", ::getpid());
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  testing::ScopedEnvironment environment("LOWBIT_DUMP_X86", directory.string());
  const X86Kernel kernel(parse_descriptor("m=32,n=64,k=2048,bits=4,group=128,act=bf16"), scaled_variant(2, 8, 1024));
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    files.push_back(entry.path().filename().string());
    EXPECT_GT(std::filesystem::file_size(entry.path()), 64u) << entry.path();
  }
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 2u) << fmt::format("{}", fmt::join(files, ", "));
  EXPECT_NE(files[0], files[1]);
  std::filesystem::remove_all(directory);
}

TEST(X86Avx512Scaled, RefusesWhatItDoesNotRun) {
  const Avx512FloatGenerator generator;
  const CpuInfo cpu = bf16_cpu();
  const OpDesc desc = parse_descriptor("m=64,n=4096,k=4096,act=bf16,bits=4,group=128,zero=int");
  EXPECT_TRUE(generator.is_valid(desc, scaled_variant(2, 12, 1024), cpu).ok)
      << generator.is_valid(desc, scaled_variant(2, 12, 1024), cpu).reason;
  auto reason = [&](const OpDesc& d, X86Variant variant) {
    const Validity validity = generator.is_valid(d, variant, cpu);
    EXPECT_FALSE(validity.ok) << variant_name(d, variant);
    return validity.reason;
  };
  X86Variant unscaled = scaled_variant(2, 8, 1024);
  unscaled.scaled_decode = 0;
  EXPECT_NE(reason(desc, unscaled).find("needs scaled_decode=1"), std::string::npos);
  X86Variant unblocked = scaled_variant(2, 8, 0);
  EXPECT_NE(reason(desc, unblocked).find("needs k_block > 0"), std::string::npos);
  X86Variant fma = scaled_variant(2, 8, 1024);
  fma.isa = X86Isa::avx512_fma;
  EXPECT_NE(reason(desc, fma).find("only the avx512_bf16 flavour"), std::string::npos);
  EXPECT_NE(reason(parse_descriptor("m=64,n=4096,k=4096,act=bf16,bits=4,group=-1,zero=none"), scaled_variant(2, 8, 1024))
                .find("needs group > 0"),
            std::string::npos);
  EXPECT_NE(reason(desc, scaled_variant(2, 8, 1000)).find("multiple of the group"), std::string::npos);
  EXPECT_NE(reason(desc, scaled_variant(2, 15, 1024)).find("at most 30"), std::string::npos);
  X86Variant unrolled = scaled_variant(2, 8, 1024);
  unrolled.k_unroll = 2;
  EXPECT_NE(reason(desc, unrolled).find("k_unroll must be 1"), std::string::npos);
  X86Variant split = scaled_variant(2, 8, 1024);
  split.split_k = 2;
  EXPECT_NE(reason(desc, split).find("split_k must be 1"), std::string::npos);
  X86Variant prefetched = scaled_variant(2, 8, 1024);
  prefetched.prefetch = 2048;
  EXPECT_NE(reason(desc, prefetched).find("prefetch must be 0"), std::string::npos);
  EXPECT_EQ(variant_name(desc, scaled_variant(2, 12, 1024)), "x86_avx512bf16_w4g128_n2m12k1_t2_kb1024_sd");
  EXPECT_EQ(verification_tolerance(desc, scaled_variant(2, 12, 1024)), dequantized_weights_tolerance(desc));
}

// The candidates hold the scaled decode from scaled_min_rows rows on (every block x k_block),
// not below and not at m=0.
TEST(X86Avx512Scaled, CandidatesFromThirtyTwoRows) {
  const Avx512FloatGenerator generator;
  const CpuInfo cpu = bf16_cpu();
  auto scaled_count = [&](const std::string& m) {
    const OpDesc desc = parse_descriptor("m=" + m + ",n=4096,k=4096,act=bf16,bits=4,group=128,zero=int");
    int count = 0;
    for (const X86Variant& variant : generator.candidates(desc, cpu, 2)) {
      EXPECT_TRUE(generator.is_valid(desc, variant, cpu).ok) << variant_name(desc, variant);
      count += variant.scaled_decode;
    }
    return count;
  };
  EXPECT_EQ(scaled_count("16"), 0);
  EXPECT_EQ(scaled_count("0"), 0);
  EXPECT_EQ(scaled_count("31"), 0);
  EXPECT_EQ(scaled_count("32"), static_cast<int>(Avx512FloatGenerator::scaled_blocks().size()) * 2);
  EXPECT_EQ(scaled_count("256"), static_cast<int>(Avx512FloatGenerator::scaled_blocks().size()) * 2);
}

// The no-tune choice: the scaled decode n4m6 from scaled_min_rows rows on with group > 0, at
// k_block 2048, else the longest candidate k_block; the unblocked variants elsewhere.
TEST(X86Avx512Scaled, HeuristicFromThirtyTwoRows) {
  const Avx512FloatGenerator generator;
  const CpuInfo cpu = bf16_cpu();
  auto heuristic = [&](const std::string& text) { return generator.heuristic(parse_descriptor(text), cpu, 2); };
  const X86Variant m64 = heuristic("m=64,n=4096,k=4096,act=bf16,bits=4,group=128,zero=int");
  EXPECT_EQ(m64, scaled_variant(4, 6, 2048));
  EXPECT_EQ(heuristic("m=256,n=4096,k=1536,act=bf16,bits=4,group=128,zero=int").k_block, 1024);
  EXPECT_EQ(heuristic("m=31,n=4096,k=4096,act=bf16,bits=4,group=128,zero=int").scaled_decode, 0);
  EXPECT_EQ(heuristic("m=0,n=4096,k=4096,act=bf16,bits=4,group=128,zero=int").scaled_decode, 0);
  EXPECT_EQ(heuristic("m=64,n=4096,k=768,act=bf16,bits=4,group=128,zero=int").scaled_decode, 0);  // no k_block <= K
  EXPECT_EQ(heuristic("m=64,n=4096,k=4096,act=bf16,bits=4,group=-1,zero=none").scaled_decode, 0);
  EXPECT_EQ(heuristic("m=64,n=4096,k=4096,act=fp16,bits=4,group=128,zero=int").scaled_decode, 0);  // fma flavour
}

}  // namespace
}  // namespace lowbit::x86
