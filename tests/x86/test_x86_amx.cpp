// The AMX-BF16 kernels against the reference (on a CPU with AMX; skipped with the reason
// elsewhere), and what runs anywhere: is_valid's reasons, no candidates without AMX, a forced
// LOWBIT_ISA=amx refused with the missing feature named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/code_conversion.h"
#include "codegen/x86/registry.h"
#include "codegen/x86/x86_kernel.h"
#include "core/amx_permission.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tests/support/test_support.h"

namespace lowbit::x86 {
namespace {

bool cpu_has_amx_bf16() {
  for (const char* feature : {"amx_tile", "amx_bf16", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"})
    if (!cpu_info().has(feature)) return false;
  return true;
}

#define LOWBIT_SKIP_WITHOUT_AMX()                                                                             \
  if (!cpu_has_amx_bf16()) GTEST_SKIP() << "this CPU lacks AMX-BF16 (or AVX512-BF16): AMX kernels cannot run here"; \
  if (!request_amx_permission().granted) GTEST_SKIP() << request_amx_permission().reason

// A CPU that has every feature the AMX generator asks for, for the reasons checked before the
// permission (which is asked of the real kernel).
CpuInfo amx_cpu() {
  CpuInfo cpu = cpu_info();
  cpu.isa = {"avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"};
  return cpu;
}

// Every tile block the generator accepts: one 16-row tile by 1..3 panels, two by 1..2.
std::vector<X86Variant> every_block() {
  std::vector<X86Variant> variants;
  for (int rows : {amx_tile_rows, amx_max_rows})
    for (int panels = 1; amx_block_fits(rows / amx_tile_rows, panels); ++panels)
      variants.push_back(X86Variant{X86Isa::amx_bf16, panels, rows, 1, 2});
  return variants;
}

// Builds an m=0 kernel (one kernel serves every m of a sweep) and checks it at m rows.
std::string check_against_reference(const OpDesc& desc, const X86Variant& variant, const X86Kernel& kernel,
                                     int64_t m) {
  return testing::check_against_reference(
      kernel, m, to_string(desc) + " " + variant_name(desc, variant) + " m=" + std::to_string(m));
}

// Every block x bits x group (K tails of group=-1: 131 = 4*32+3, 143 = 4*32+15, 33, 3, and a
// whole 64) x zero point x output dtype, N=37 (two panels and a 5-column tail), M around the
// tile heights: up to one row block the fused block functions, above it (17 and 33 on 16-row
// blocks, 33 and 100 on 32-row ones) each block of panels decoded once for every row block.
TEST(X86Amx, EveryBlockFormatAndDtypeAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AMX();
  int checked = 0;
  for (int bits : {2, 3, 4, 8})
    for (const char* shape : {"group=32,k=96", "group=64,k=192", "group=128,k=256", "group=256,k=512",
                              "group=-1,k=131", "group=-1,k=143", "group=-1,k=33", "group=-1,k=3", "group=-1,k=64"})
      for (const char* zero : {"none", "int", "float"})
        for (const char* out : {"fp32", "bf16", "fp16"}) {
          const std::string bias = std::string(zero) == "int" ? "1" : "0";
          const OpDesc desc = parse_descriptor("m=0,n=37,act=bf16,bits=" + std::to_string(bits) + "," + shape +
                                               ",zero=" + zero + ",out=" + out + ",bias=" + bias);
          for (const X86Variant& variant : every_block()) {
            ASSERT_TRUE(is_valid(desc, variant)) << is_valid(desc, variant).reason;
            const X86Kernel kernel(desc, variant);
            ASSERT_TRUE(kernel.decodes_panels_once()) << variant_name(desc, variant);
            for (int64_t m : {1, 4, 15, 16, 17, 33, 100}) {
              const std::string failure = check_against_reference(desc, variant, kernel, m);
              ASSERT_TRUE(failure.empty()) << failure;
              ++checked;
            }
          }
        }
  EXPECT_EQ(checked, 4 * 9 * 3 * 3 * 5 * 7);
}

// A K whose decoded panels outgrow the decode budget (half of L2) on wide blocks: those run the
// fused block functions at every M, the narrow ones decode once; both against the reference.
TEST(X86Amx, LongKDecodedOnceOrFusedByBudget) {
  LOWBIT_SKIP_WITHOUT_AMX();
  const OpDesc desc = parse_descriptor("m=0,n=40,k=14336,bits=4,group=128,zero=int,act=bf16,out=bf16");
  int fused = 0;
  int decoded_once = 0;
  for (const X86Variant& variant : every_block()) {
    const X86Kernel kernel(desc, variant);
    (kernel.decodes_panels_once() ? decoded_once : fused) += 1;
    for (int64_t m : {17, 33}) {
      const std::string failure = check_against_reference(desc, variant, kernel, m);
      ASSERT_TRUE(failure.empty()) << failure;
    }
  }
  // 448 chunks: 448 KB of decoded tiles per panel, within half of any L2 of 1 MB and more.
  EXPECT_GT(decoded_once, 0);
  std::printf("K=14336: %d blocks decode once, %d fused (L2 %lld bytes)\n", decoded_once, fused,
              static_cast<long long>(cpu_info().l2_bytes));
}

// The decode function against the codes themselves; it uses no tiles, so it runs on any CPU
// with AVX512-BF16. B row r of chunk c holds the pairs (k, k+1) = (32c + 2r, 32c + 2r + 1) of
// the panel's 16 columns as bf16 (offset + code); past K (the tail chunk of group=-1) a value
// is 0 or the padding code's finite offset; the bytes after the output stay untouched.
TEST(X86Amx, DecodeFunctionWritesEveryChunkAnywhere) {
  for (const char* feature : {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"})
    if (!cpu_info().has(feature)) GTEST_SKIP() << "this CPU lacks " << feature << ": the decode function cannot run here";
  constexpr uint8_t poison = 0xff;  // a NaN bf16 pattern in every word
  constexpr int64_t guard_bytes = 64;
  for (int bits : {2, 3, 4, 8})
    for (const char* shape : {"group=32,k=96", "group=128,k=256", "group=-1,k=131", "group=-1,k=3", "group=-1,k=64"}) {
      const OpDesc desc =
          parse_descriptor("m=0,n=37,act=bf16,zero=int,bits=" + std::to_string(bits) + "," + shape);
      const std::string name = "decode " + to_string(desc);
      const Problem problem = make_random_problem(desc, 1, seed_for(name));
      const float offset = code_offset(bits);
      for (const X86Variant& variant : every_block()) {
        const AmxBf16Program program(desc, variant);
        for (int panels = 1; panels <= variant.n_panels; ++panels) {
          const int64_t bytes = amx_decoded_bytes(desc, panels);
          ASSERT_EQ(bytes, amx_decoded_chunks(desc) * panels * 1024);
          AlignedBuffer output(static_cast<std::size_t>(bytes + guard_bytes));
          std::fill(output.data(), output.data() + bytes + guard_bytes, poison);
          BlockArgs args{};
          args.qweight = problem.packed.qweight();
          args.y = output.data();
          program.decode(panels)(&args);
          const auto* words = reinterpret_cast<const uint16_t*>(output.data());
          for (int64_t chunk = 0; chunk < amx_decoded_chunks(desc); ++chunk)
            for (int panel = 0; panel < panels; ++panel)
              for (int row = 0; row < 16; ++row)
                for (int column = 0; column < 16; ++column)
                  for (int half = 0; half < 2; ++half) {
                    const int64_t k = chunk * 32 + 2 * row + half;
                    const int64_t n = panel * 16 + column;
                    const float value =
                        bf16_to_float(words[((chunk * panels + panel) * 16 + row) * 32 + column * 2 + half]);
                    const std::string where = fmt::format("{} {} panels={} k={} n={}", name,
                                                          variant_name(desc, variant), panels, k, n);
                    if (k >= desc.k) {
                      ASSERT_TRUE(value == 0.0f || value == offset) << where << " " << value;
                    } else if (n < desc.n) {
                      ASSERT_EQ(value, offset + problem.weights.q[static_cast<std::size_t>(n * desc.k + k)]) << where;
                    }
                  }
          for (int64_t index = bytes; index < bytes + guard_bytes; ++index)
            ASSERT_EQ(output.data()[index], poison) << name << " guard byte " << index - bytes;
        }
      }
    }
}

// The cache-blocked functions (k_block > 0): every block x bits x group x zero point x output
// dtype, K of several blocks whose last one is shorter (e.g. group=32, K=160, k_block=64: blocks
// of 64, 64 and 32 k), N=37 (a 5-column tail), M from 1 to past three 32-row blocks.
TEST(X86Amx, BlockedKEveryBlockFormatAndDtypeAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AMX();
  int checked = 0;
  struct Shape {
    const char* text;
    int k_block;
  };
  for (int bits : {2, 3, 4, 8})
    for (const Shape& shape : {Shape{"group=32,k=160", 64}, Shape{"group=64,k=320", 128}, Shape{"group=128,k=384", 256},
                               Shape{"group=256,k=768", 512}, Shape{"group=128,k=256", 256}})
      for (const char* zero : {"none", "int", "float"})
        for (const char* out : {"fp32", "bf16", "fp16"}) {
          const std::string bias = std::string(zero) == "int" ? "1" : "0";
          const OpDesc desc = parse_descriptor("m=0,n=37,act=bf16,bits=" + std::to_string(bits) + "," + shape.text +
                                               ",zero=" + zero + ",out=" + out + ",bias=" + bias);
          for (X86Variant variant : every_block()) {
            variant.k_block = shape.k_block;
            ASSERT_TRUE(is_valid(desc, variant)) << is_valid(desc, variant).reason;
            const X86Kernel kernel(desc, variant);
            ASSERT_TRUE(kernel.blocks_k()) << variant_name(desc, variant);
            for (int64_t m : {1, 4, 16, 17, 33, 100}) {
              const std::string failure = check_against_reference(desc, variant, kernel, m);
              ASSERT_TRUE(failure.empty()) << failure;
              ++checked;
            }
          }
        }
  EXPECT_EQ(checked, 4 * 5 * 3 * 3 * 5 * 6);
}

// The cache-blocked path at the thread counts the launcher splits N over: the same bits at 1, 3
// and 16 threads (each register block's sums do not depend on which thread runs it), and
// against the reference, on N=1000 (62.5 panels), K=4096 in 4 blocks, M=70.
TEST(X86Amx, BlockedKSameBitsAtEveryThreadCount) {
  LOWBIT_SKIP_WITHOUT_AMX();
  const OpDesc desc = parse_descriptor("m=0,n=1000,k=4096,bits=4,group=128,zero=int,act=bf16,out=fp32,bias=1");
  const int64_t m = 70;
  std::vector<uint8_t> first;  // the whole guarded buffer of the first thread count
  for (int threads : {1, 3, 16}) {
    const X86Variant variant{X86Isa::amx_bf16, 2, 32, 1, threads, 1, 1024};
    const X86Kernel kernel(desc, variant);
    const std::string failure = check_against_reference(desc, variant, kernel, m);
    ASSERT_TRUE(failure.empty()) << failure;
    // One case name for every thread count: the same problem each time.
    const testing::GuardedRun run = testing::run_guarded(kernel, m, "blocked thread counts");
    ASSERT_TRUE(run.guards_intact) << run.where;
    if (first.empty())
      first = run.buffer;
    else
      ASSERT_EQ(run.buffer, first) << run.where << " threads=" << threads;
  }
}

// As check_against_reference, at the variant's own bound (verification_tolerance: the scaled
// decode rounds each weight to bf16); also returns the error for the caller to report.
std::string check_at_variant_tolerance(const OpDesc& desc, const X86Variant& variant, const X86Kernel& kernel,
                                       int64_t m, double* error_out = nullptr) {
  const testing::GuardedRun run =
      testing::run_guarded(kernel, m, to_string(desc) + " " + variant_name(desc, variant) + " m=" + std::to_string(m));
  if (!run.guards_intact) return run.where + ": guard bytes overwritten";
  const std::vector<double> reference =
      reference_matmul(desc, m, run.problem.x.data(), run.problem.weights, run.bias(), nullptr);
  const double error = relative_error(run.output(), desc.out, reference);
  if (error_out) *error_out = std::max(*error_out, error);
  const double bound = verification_tolerance(desc, variant);
  if (!(error <= bound)) return fmt::format("{}: relative error {} > tolerance {}", run.where, error, bound);
  return {};
}

// Larger shapes through several threads: K=8256 (not a multiple of 128), N=1000 (an 8-column
// tail), at the tuner's candidates and the heuristic, M from 8 to 70.
TEST(X86Amx, LargerShapesEveryCandidate) {
  LOWBIT_SKIP_WITHOUT_AMX();
  // (8256 = 129 * 64: groups of 32 and 64 divide it, 128 and 256 do not.)
  for (const char* format : {"bits=4,group=64,zero=int", "bits=4,group=-1,zero=none", "bits=3,group=64,zero=float",
                             "bits=8,group=32,zero=int", "bits=2,group=64,zero=int"}) {
    const OpDesc desc = parse_descriptor(std::string("m=0,n=1000,k=8256,act=bf16,out=bf16,bias=1,") + format);
    for (int64_t m : {4, 8, 31, 70}) {
      OpDesc shaped = desc;
      shaped.m = m;
      std::vector<X86Variant> variants;
      for (const X86Variant& variant : candidates(shaped, 4))
        if (variant.isa == X86Isa::amx_bf16) variants.push_back(variant);
      ASSERT_FALSE(variants.empty()) << to_string(shaped);
      EXPECT_EQ(heuristic(shaped, 4).isa, X86Isa::amx_bf16) << to_string(shaped);  // from 4 rows on
      for (const X86Variant& variant : variants) {  // scaled_decode ones among them from 16 rows on
        const X86Kernel kernel(desc, variant);
        const std::string failure = check_at_variant_tolerance(desc, variant, kernel, m);
        ASSERT_TRUE(failure.empty()) << failure;
      }
    }
  }
}

// On an AMX machine the family is timed beside AVX-512 from min_rows on, and named in the key.
TEST(X86Amx, RegistryOffersAmxBesideAvx512) {
  LOWBIT_SKIP_WITHOUT_AMX();
  testing::ScopedEnvironment environment("LOWBIT_ISA", std::nullopt);
  EXPECT_EQ(generator_version(),
            "x86_amx_bf16@4+x86_avx512_float@4+x86_amx_int8@1+x86_avx512_vnni_int8@2+x86_avx2_float@1+"
            "x86_avx2_int8@1");
  const OpDesc large = parse_descriptor("m=64,n=4096,k=4096,group=128,act=bf16");
  int amx = 0;
  int avx512 = 0;
  for (const X86Variant& variant : candidates(large, 4)) {
    EXPECT_TRUE(is_valid(large, variant)) << variant_name(large, variant);
    amx += variant.isa == X86Isa::amx_bf16;
    avx512 += is_avx512(variant.isa);
  }
  EXPECT_EQ(amx, 5 * 5);  // 5 blocks x (k_block 0, 1024, 2048 + scaled_decode at 1024, 2048)
  EXPECT_GT(avx512, 0);
  EXPECT_EQ(heuristic(large, 4).isa, X86Isa::amx_bf16);
  // From heuristic_from_rows on AMX is the no-tune choice; below min_rows it is not offered.
  EXPECT_EQ(heuristic(parse_descriptor("m=4,n=4096,k=4096,group=128,act=bf16"), 4).isa, X86Isa::amx_bf16);
  for (const X86Variant& variant : candidates(parse_descriptor("m=3,n=4096,k=4096,group=128,act=bf16"), 4))
    EXPECT_NE(variant.isa, X86Isa::amx_bf16);
  const OpDesc single = parse_descriptor("m=1,n=4096,k=4096,group=128,act=bf16");
  for (const X86Variant& variant : candidates(single, 4)) EXPECT_NE(variant.isa, X86Isa::amx_bf16);
  EXPECT_TRUE(is_avx512(heuristic(single, 4).isa));
  // Forced, AMX answers at any M; fp16 activations are served by nothing it emits.
  EXPECT_EQ(heuristic(single, 4, "amx").isa, X86Isa::amx_bf16);
  EXPECT_EQ(generator_version("amx"), "x86_amx_bf16@4+x86_amx_int8@1");
  EXPECT_FALSE(supports(parse_descriptor("m=64,n=64,k=128,act=fp16"), "amx").ok);
}

// Emission needs no AMX (only running does): every block of every width, with and without a K
// tail, assembles (Xbyak throws on an operand it cannot encode) and fits the code buffer.
TEST(X86Amx, EmitsEveryBlockAndWidthAnywhere) {
  for (int bits : {2, 3, 4, 8})
    for (const char* shape : {"group=128,k=256,zero=int,out=bf16,bias=1", "group=-1,k=131,zero=none,out=fp16"}) {
      const OpDesc desc = parse_descriptor("m=0,n=37,act=bf16,bits=" + std::to_string(bits) + "," + shape);
      for (const X86Variant& variant : every_block()) {
        const AmxBf16Program program(desc, variant);
        for (int panels = 1; panels <= variant.n_panels; ++panels)
          for (int rows = 1; rows <= variant.m_rows; ++rows) {
            EXPECT_NE(reinterpret_cast<const void*>(program.block(panels, rows)), nullptr);
            EXPECT_NE(reinterpret_cast<const void*>(program.decoded_block(panels, rows)), nullptr);
          }
        for (int panels = 1; panels <= variant.n_panels; ++panels)
          EXPECT_NE(reinterpret_cast<const void*>(program.decode(panels)), nullptr);
        EXPECT_LT(program.getSize(), std::size_t{1} << 20) << variant_name(desc, variant);
        EXPECT_THROW(program.blocked(1, 1), Unsupported);  // k_block=0 emits no blocked functions
        if (desc.group == whole_k_group) continue;
        X86Variant blocked = variant;
        blocked.k_block = 128;
        const AmxBf16Program blocked_program(desc, blocked);
        for (int panels = 1; panels <= variant.n_panels; ++panels) {
          EXPECT_NE(reinterpret_cast<const void*>(blocked_program.decode_range(panels)), nullptr);
          for (int rows = 1; rows <= variant.m_rows; ++rows)
            EXPECT_NE(reinterpret_cast<const void*>(blocked_program.blocked(panels, rows)), nullptr);
        }
        EXPECT_LT(blocked_program.getSize(), std::size_t{1} << 20) << variant_name(desc, blocked);
      }
    }
}

// The packed x of the cache-blocked functions, anywhere: tile t, chunk c, row r, k j holds
// x[16t + r][32c + j], and zeros past M (up to whole tiles) and past K (up to whole chunks).
TEST(X86Amx, PackedXLayoutAnywhere) {
  const OpDesc desc = parse_descriptor("m=0,n=16,k=70,act=bf16,group=-1");
  const int64_t m = 19;
  const int64_t chunks = 3;  // 70 k: two whole chunks and 6 k
  ASSERT_EQ(amx_packed_x_tile_bytes(desc), chunks * 1024);
  ASSERT_EQ(amx_packed_x_bytes(desc, m), 2 * chunks * 1024);
  std::vector<uint16_t> x(static_cast<std::size_t>(m * desc.k));
  for (std::size_t index = 0; index < x.size(); ++index) x[index] = static_cast<uint16_t>(index + 1);
  std::vector<uint16_t> packed(static_cast<std::size_t>(amx_packed_x_bytes(desc, m) / 2) + 8, 0xffff);
  // Two ranges, as two threads would pack them; the last one pads the rows to whole tiles.
  amx_pack_x_rows(desc, x.data(), m, 0, 7, packed.data());
  amx_pack_x_rows(desc, x.data(), m, 7, 32, packed.data());
  for (int64_t row = 0; row < 32; ++row)
    for (int64_t k = 0; k < chunks * 32; ++k) {
      const uint16_t value = packed[static_cast<std::size_t>(((row / 16 * chunks + k / 32) * 16 + row % 16) * 32 + k % 32)];
      const uint16_t expected = row < m && k < desc.k ? x[static_cast<std::size_t>(row * desc.k + k)] : 0;
      ASSERT_EQ(value, expected) << "row " << row << " k " << k;
    }
  for (std::size_t index = packed.size() - 8; index < packed.size(); ++index) ASSERT_EQ(packed[index], 0xffff);
}

// decode_range, anywhere with AVX512-BF16: a block of K's chunks as decode() writes them for all
// of K, starting at the block's first step, and nothing past its output.
TEST(X86Amx, DecodeRangeMatchesDecodeAnywhere) {
  for (const char* feature : {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"})
    if (!cpu_info().has(feature)) GTEST_SKIP() << "this CPU lacks " << feature << ": the decode functions cannot run here";
  constexpr uint8_t poison = 0xff;
  constexpr int64_t guard_bytes = 64;
  for (int bits : {2, 3, 4, 8}) {
    const OpDesc desc = parse_descriptor("m=0,n=40,k=320,act=bf16,zero=int,group=64,bits=" + std::to_string(bits));
    const Problem problem = make_random_problem(desc, 1, seed_for("decode range " + to_string(desc)));
    const NativeGeometry geometry = native_geometry(desc);
    for (int panels = 1; panels <= 3; ++panels) {
      const X86Variant variant{X86Isa::amx_bf16, panels, 16, 1, 1, 1, 128};
      const AmxBf16Program program(desc, variant);
      AlignedBuffer whole(static_cast<std::size_t>(amx_decoded_bytes(desc, panels)));
      BlockArgs whole_args{};
      whole_args.qweight = problem.packed.qweight();
      whole_args.y = whole.data();
      program.decode(panels)(&whole_args);
      for (int64_t k_begin : {0, 128, 256}) {  // blocks of 128, 128 and 64 k
        const int64_t chunks = std::min<int64_t>(128, desc.k - k_begin) / 32;
        const int64_t bytes = chunks * panels * 1024;
        AlignedBuffer output(static_cast<std::size_t>(bytes + guard_bytes));
        std::fill(output.data(), output.data() + bytes + guard_bytes, poison);
        AmxBlockedArgs args{};
        args.qweight = problem.packed.qweight() + k_begin / geometry.k_per_block * geometry.step_bytes;
        args.decoded = output.data();
        args.chunks = chunks;
        program.decode_range(panels)(&args);
        const uint8_t* expected = whole.data() + k_begin / 32 * panels * 1024;
        for (int64_t index = 0; index < bytes; ++index)
          ASSERT_EQ(output.data()[index], expected[index]) << to_string(desc) << " panels=" << panels
                                                           << " k_begin=" << k_begin << " byte " << index;
        for (int64_t index = bytes; index < bytes + guard_bytes; ++index)
          ASSERT_EQ(output.data()[index], poison) << "guard byte " << index - bytes;
      }
    }
  }
}

// k_block: named in the variant, read back from JSON (absent: 0), candidates and the no-tune
// choice by the rule of AmxBf16Generator::candidate_k_blocks / heuristic_k_block.
TEST(X86Amx, KBlockNamedCandidatesAndHeuristicAnywhere) {
  const OpDesc desc = parse_descriptor("m=256,n=4096,k=4096,group=128,act=bf16");
  const X86Variant blocked{X86Isa::amx_bf16, 2, 32, 1, 16, 1, 1024};
  EXPECT_EQ(variant_name(desc, blocked), "x86_amxbf16_w4g128_n2m32k1_t16_kb1024");
  EXPECT_EQ(variant_from_json(to_json(blocked)), blocked);
  const X86Variant old = variant_from_json(
      nlohmann::json::parse(R"({"isa":"amx_bf16","n_panels":2,"m_rows":32,"k_unroll":1,"threads":16,"split_k":1})"));
  EXPECT_EQ(old.k_block, 0);
  EXPECT_EQ(AmxBf16Generator::candidate_k_blocks(desc), (std::vector<int>{0, 1024, 2048}));
  EXPECT_EQ(AmxBf16Generator::candidate_k_blocks(parse_descriptor("m=256,n=64,k=1536,group=256,act=bf16")),
            (std::vector<int>{0, 1024}));
  EXPECT_EQ(AmxBf16Generator::candidate_k_blocks(parse_descriptor("m=256,n=64,k=4096,group=-1,act=bf16")),
            (std::vector<int>{0}));
  const CpuInfo cpu = amx_cpu();
  EXPECT_EQ(AmxBf16Generator().heuristic(desc, cpu, 16).k_block, AmxBf16Generator::heuristic_k_block_size);
  EXPECT_EQ(AmxBf16Generator().heuristic(parse_descriptor("m=16,n=4096,k=4096,group=128,act=bf16"), cpu, 16).k_block,
            0);
  EXPECT_EQ(AmxBf16Generator().heuristic(parse_descriptor("m=64,n=64,k=4096,group=-1,act=bf16"), cpu, 16).k_block, 0);
  // Other flavours refuse it, through the registry and through their own checks; avx512_bf16
  // blocks K only with the scaled decode (test_x86_avx512_scaled.cpp).
  EXPECT_NE(is_valid(desc, X86Variant{X86Isa::avx512_fma, 2, 4, 1, 1, 1, 512}).reason.find("k_block must be 0"),
            std::string::npos);
  EXPECT_NE(is_valid(desc, X86Variant{X86Isa::avx512_bf16, 2, 4, 1, 1, 1, 512}).reason.find("needs scaled_decode=1"),
            std::string::npos);
}

TEST(X86Amx, IsValidNamesWhatIsWrong) {
  const AmxBf16Generator generator;
  const CpuInfo cpu = amx_cpu();
  const OpDesc desc = parse_descriptor("m=64,n=64,k=128,group=64,act=bf16");
  const X86Variant good{X86Isa::amx_bf16, 2, 16, 1, 1};
  auto reason = [&](const OpDesc& tested, const X86Variant& variant, const CpuInfo& with = amx_cpu()) {
    const Validity validity = generator.is_valid(tested, variant, with);
    EXPECT_FALSE(validity.ok) << to_string(tested) << " " << variant_name(tested, variant);
    return validity.reason;
  };
  EXPECT_NE(reason(parse_descriptor("m=64,n=64,k=128,act=fp16"), good).find("act=bf16"), std::string::npos);
  EXPECT_NE(reason(parse_descriptor("m=64,n=64,k=128,act=bf16,eqscale=1"), good).find("eqscale=1"), std::string::npos);
  EXPECT_NE(reason(parse_descriptor("m=64,n=64,k=128,act=bf16,compute=int8"), good).find("compute=int8"),
            std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_bf16, 1, 8, 1, 1}).find("m_rows must be 16 or 32"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_bf16, 3, 32, 1, 1}).find("8 tile registers"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_bf16, 4, 16, 1, 1}).find("8 tile registers"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_bf16, 1, 16, 2, 1}).find("k_unroll must be 1"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_bf16, 1, 16, 1, 1, 1, 96}).find("k_block=96 must be a multiple of the group (64)"),
            std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_bf16, 1, 16, 1, 1, 1, -64}).find("k_block must be >= 0"),
            std::string::npos);
  EXPECT_NE(reason(parse_descriptor("m=64,n=64,k=128,group=-1,act=bf16"), X86Variant{X86Isa::amx_bf16, 1, 16, 1, 1, 1, 64})
                .find("k_block > 0 needs group > 0"),
            std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::avx512_bf16, 1, 16, 1, 1}).find("amx_bf16 flavour only"),
            std::string::npos);
  CpuInfo no_tiles = cpu;
  no_tiles.isa = {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"};
  EXPECT_NE(reason(desc, good, no_tiles).find("lacks amx_tile"), std::string::npos);
  CpuInfo no_bf16_tiles = cpu;
  no_bf16_tiles.isa = {"avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile", "amx_int8"};
  EXPECT_NE(reason(desc, good, no_bf16_tiles).find("lacks amx_bf16"), std::string::npos);
  // Everything else right: valid where the kernel grants tile state, else the kernel's answer.
  const Validity validity = generator.is_valid(desc, good, cpu);
  if (request_amx_permission().granted) {
    EXPECT_TRUE(validity.ok) << validity.reason;
  } else {
    EXPECT_FALSE(validity.ok);
    EXPECT_NE(validity.reason.find("may not use AMX tiles: arch_prctl"), std::string::npos) << validity.reason;
  }
}

TEST(X86Amx, NoCandidatesWithoutAmx) {
  const AmxBf16Generator generator;
  CpuInfo no_amx = cpu_info();
  no_amx.isa = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"};
  for (const char* m : {"0", "16", "64"}) {
    const OpDesc desc = parse_descriptor(std::string("m=") + m + ",n=4096,k=4096,group=128,act=bf16");
    EXPECT_TRUE(generator.candidates(desc, no_amx, 4).empty()) << m;
  }
  // Below min_rows nothing is offered even with AMX (the features are checked first, so this
  // holds on any machine).
  EXPECT_TRUE(generator.candidates(parse_descriptor("m=3,n=64,k=128,act=bf16"), amx_cpu(), 4).empty());
  if (!cpu_has_amx_bf16()) {
    for (const X86Variant& variant : candidates(parse_descriptor("m=64,n=4096,k=4096,act=bf16"), 2))
      EXPECT_NE(variant.isa, X86Isa::amx_bf16);
  }
}

// LOWBIT_ISA=amx (or isa=amx) on a CPU without AMX: refused, naming the missing feature; the
// family is listed among the allowed values of an unknown one.
TEST(X86Amx, ForcedAmxWithoutItIsRefused) {
  const OpDesc desc = parse_descriptor("m=64,n=64,k=128,group=64,act=bf16");
  CpuInfo no_amx = cpu_info();
  no_amx.isa = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"};
  const Validity forced = supports(desc, "amx", no_amx);
  EXPECT_FALSE(forced.ok);
  EXPECT_NE(forced.reason.find("amx kernels were asked for (isa=amx), but this CPU lacks amx_tile"), std::string::npos)
      << forced.reason;
  if (!cpu_has_amx_bf16()) {
    testing::ScopedEnvironment environment("LOWBIT_ISA", "amx");
    EXPECT_EQ(generator_version(), "x86_amx_bf16@4+x86_amx_int8@1");
    const Validity refused = supports(desc);
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.reason.find("isa=$LOWBIT_ISA"), std::string::npos) << refused.reason;
    EXPECT_NE(refused.reason.find("lacks amx"), std::string::npos) << refused.reason;
    EXPECT_TRUE(candidates(desc, 2).empty());
    EXPECT_THROW(heuristic(desc, 2), Unsupported);
    EXPECT_THROW(X86Kernel(desc, X86Variant{X86Isa::amx_bf16, 1, 16, 1, 1}), Unsupported);
  }
  try {
    supports(desc, "sme");
    FAIL() << "isa=sme was accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("allowed: avx2, avx512, avx512_vnni, amx"), std::string::npos) << error.what();
  }
}

// The scaled decode (scaled_decode=1): every block x bits x group x zero point x output dtype,
// K of several blocks with a shorter last one, N=37 (a 5-column tail), M from 1 to past three
// 32-row blocks, at dequantized_weights_tolerance; poisoned outputs, guard bytes checked.
TEST(X86Amx, ScaledDecodeEveryBlockFormatAndDtypeAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AMX();
  int checked = 0;
  double worst = 0;
  struct Shape {
    const char* text;
    int k_block;
  };
  for (int bits : {2, 3, 4, 8})
    for (const Shape& shape : {Shape{"group=32,k=160", 64}, Shape{"group=64,k=320", 128}, Shape{"group=128,k=384", 256},
                               Shape{"group=256,k=768", 512}, Shape{"group=128,k=256", 256}})
      for (const char* zero : {"none", "int", "float"})
        for (const char* out : {"fp32", "bf16", "fp16"}) {
          const std::string bias = std::string(zero) == "int" ? "1" : "0";
          const OpDesc desc = parse_descriptor("m=0,n=37,act=bf16,bits=" + std::to_string(bits) + "," + shape.text +
                                               ",zero=" + zero + ",out=" + out + ",bias=" + bias);
          for (X86Variant variant : every_block()) {
            variant.k_block = shape.k_block;
            variant.scaled_decode = 1;
            ASSERT_TRUE(is_valid(desc, variant)) << is_valid(desc, variant).reason;
            const X86Kernel kernel(desc, variant);
            ASSERT_TRUE(kernel.blocks_k()) << variant_name(desc, variant);
            for (int64_t m : {1, 4, 15, 16, 17, 31, 32, 33, 100}) {
              const std::string failure = check_at_variant_tolerance(desc, variant, kernel, m, &worst);
              ASSERT_TRUE(failure.empty()) << failure;
              ++checked;
            }
          }
        }
  EXPECT_EQ(checked, 4 * 5 * 3 * 3 * 5 * 9);
  std::printf("scaled decode: worst normalised error %.3g over %d checks\n", worst, checked);
}

// The scaled decode on a Llama-sized K through several threads, at the candidates' k_blocks:
// K=4096 (4 and 2 blocks), N=1000 (an 8-column tail), M = 16, 70, 256.
TEST(X86Amx, ScaledDecodeLargerShapes) {
  LOWBIT_SKIP_WITHOUT_AMX();
  double worst = 0;
  for (const char* format : {"bits=4,group=128,zero=int,out=bf16,bias=1", "bits=3,group=64,zero=float,out=fp32",
                             "bits=8,group=128,zero=none,out=fp16", "bits=2,group=128,zero=int,out=fp32"}) {
    const OpDesc desc = parse_descriptor(std::string("m=0,n=1000,k=4096,act=bf16,") + format);
    for (int k_block : {1024, 2048})
      for (int rows : {16, 32}) {
        const X86Variant variant{X86Isa::amx_bf16, 2, rows, 1, 16, 1, k_block, 1};
        const X86Kernel kernel(desc, variant);
        for (int64_t m : {16, 70, 256}) {
          const std::string failure = check_at_variant_tolerance(desc, variant, kernel, m, &worst);
          ASSERT_TRUE(failure.empty()) << failure;
        }
      }
  }
  std::printf("scaled decode, K=4096: worst normalised error %.3g\n", worst);
}

// The scaled decode_range, anywhere with AVX512-BF16: B row r of chunk c holds, for the 16
// columns of each panel, the pair (k, k+1) = (32c + 2r, +1) as bf16 of the fp32 FMA
// (offset + q) * s - fl((offset + zero) * s), bit for bit, and that is within bf16's rounding
// of s * (q - zero); nothing past the output is written.
TEST(X86Amx, ScaledDecodeRangeWritesScaledWeightsAnywhere) {
  for (const char* feature : {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"})
    if (!cpu_info().has(feature)) GTEST_SKIP() << "this CPU lacks " << feature << ": the decode functions cannot run here";
  constexpr uint8_t poison = 0xff;
  constexpr int64_t guard_bytes = 64;
  for (int bits : {2, 3, 4, 8})
    for (const char* zero : {"none", "int", "float"}) {
      const OpDesc desc = parse_descriptor("m=0,n=40,k=320,act=bf16,group=64,zero=" + std::string(zero) +
                                           ",bits=" + std::to_string(bits));
      const Problem problem = make_random_problem(desc, 1, seed_for("scaled decode range " + to_string(desc)));
      const NativeGeometry geometry = native_geometry(desc);
      const float offset = code_offset(bits);
      for (int panels = 1; panels <= 3; ++panels) {
        const X86Variant variant{X86Isa::amx_bf16, panels, 16, 1, 1, 1, 128, 1};
        const AmxBf16Program program(desc, variant);
        for (int64_t k_begin : {0, 128, 256}) {  // blocks of 128, 128 and 64 k
          const int64_t chunks = std::min<int64_t>(128, desc.k - k_begin) / 32;
          const int64_t bytes = chunks * panels * 1024;
          AlignedBuffer output(static_cast<std::size_t>(bytes + guard_bytes));
          std::fill(output.data(), output.data() + bytes + guard_bytes, poison);
          AmxBlockedArgs args{};
          args.qweight = problem.packed.qweight() + k_begin / geometry.k_per_block * geometry.step_bytes;
          args.scales = problem.packed.scales() + k_begin / desc.group * native_panel_width;
          args.zeros = problem.packed.zeros() ? problem.packed.zeros() + k_begin / desc.group * native_panel_width
                                              : nullptr;
          args.decoded = output.data();
          args.chunks = chunks;
          args.groups = chunks * 32 / desc.group;
          program.decode_range(panels)(&args);
          const auto* words = reinterpret_cast<const uint16_t*>(output.data());
          for (int64_t chunk = 0; chunk < chunks; ++chunk)
            for (int panel = 0; panel < panels; ++panel)
              for (int row = 0; row < 16; ++row)
                for (int column = 0; column < 16; ++column)
                  for (int half = 0; half < 2; ++half) {
                    const int64_t k = k_begin + chunk * 32 + 2 * row + half;
                    const int64_t n = panel * 16 + column;
                    if (n >= desc.n) continue;
                    const float s = problem.weights.scale(n, k / desc.group);
                    const float z = problem.weights.zero_point(n, k / desc.group);
                    const float q = problem.weights.q[static_cast<std::size_t>(n * desc.k + k)];
                    const float offset_zero = (offset + z) * s;
                    const uint16_t expected = float_to_bf16(std::fma(offset + q, s, -offset_zero));
                    const uint16_t value = words[((chunk * panels + panel) * 16 + row) * 32 + column * 2 + half];
                    const std::string where =
                        fmt::format("{} panels={} k={} n={}", to_string(desc), panels, k, n);
                    ASSERT_EQ(value, expected) << where;
                    const double exact = static_cast<double>(s) * (static_cast<double>(q) - z);
                    ASSERT_LE(std::abs(bf16_to_float(value) - exact), std::abs(exact) / 256 + 1e-6 * std::abs(s))
                        << where;
                  }
          for (int64_t index = bytes; index < bytes + guard_bytes; ++index)
            ASSERT_EQ(output.data()[index], poison) << to_string(desc) << " guard byte " << index - bytes;
        }
      }
    }
}

// scaled_decode: named and read back from JSON (absent: 0), refused where it cannot apply,
// offered from one tile of rows on beside each k_block > 0, verified at the looser bound.
TEST(X86Amx, ScaledDecodeNamedValidAndOfferedAnywhere) {
  const OpDesc desc = parse_descriptor("m=256,n=4096,k=4096,group=128,act=bf16");
  const X86Variant scaled{X86Isa::amx_bf16, 2, 32, 1, 16, 1, 1024, 1};
  EXPECT_EQ(variant_name(desc, scaled), "x86_amxbf16_w4g128_n2m32k1_t16_kb1024_sd");
  EXPECT_EQ(variant_from_json(to_json(scaled)), scaled);
  EXPECT_EQ(to_json(scaled).at("scaled_decode"), 1);
  const X86Variant old = variant_from_json(nlohmann::json::parse(
      R"({"isa":"amx_bf16","n_panels":2,"m_rows":32,"k_unroll":1,"threads":16,"split_k":1,"k_block":1024})"));
  EXPECT_EQ(old.scaled_decode, 0);
  EXPECT_EQ(variant_name(desc, old), "x86_amxbf16_w4g128_n2m32k1_t16_kb1024");

  EXPECT_EQ(verification_tolerance(desc, scaled), dequantized_weights_tolerance(desc));
  X86Variant unscaled = scaled;
  unscaled.scaled_decode = 0;
  EXPECT_EQ(verification_tolerance(desc, unscaled), tolerance(desc));
  EXPECT_GT(dequantized_weights_tolerance(desc), tolerance(desc));

  const AmxBf16Generator generator;
  const CpuInfo cpu = amx_cpu();
  auto reason = [&](const OpDesc& tested, const X86Variant& variant) {
    const Validity validity = generator.is_valid(tested, variant, cpu);
    EXPECT_FALSE(validity.ok) << variant_name(tested, variant);
    return validity.reason;
  };
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_bf16, 2, 32, 1, 16, 1, 0, 1}).find("scaled_decode=1 needs k_block > 0"),
            std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_bf16, 2, 32, 1, 16, 1, 1024, 2}).find("scaled_decode must be 0 or 1"),
            std::string::npos);
  EXPECT_NE(is_valid(desc, X86Variant{X86Isa::avx512_fma, 2, 4, 1, 1, 1, 0, 1}).reason.find("scaled_decode must be 0"),
            std::string::npos);
  EXPECT_NE(is_valid(desc, X86Variant{X86Isa::avx512_bf16, 2, 4, 1, 1, 1, 0, 1}).reason.find("needs k_block > 0"),
            std::string::npos);

  auto scaled_candidates = [&](const char* text) {
    int count = 0;
    for (const X86Variant& variant : generator.candidates(parse_descriptor(text), cpu, 16)) {
      if (variant.scaled_decode == 0) continue;
      EXPECT_GT(variant.k_block, 0);
      ++count;
    }
    return count;
  };
  if (request_amx_permission().granted) {  // candidates are those is_valid accepts
    EXPECT_EQ(scaled_candidates("m=256,n=4096,k=4096,group=128,act=bf16"), 5 * 2);
    EXPECT_EQ(scaled_candidates("m=17,n=4096,k=4096,group=128,act=bf16"), 5 * 2);
  }
  // Pruned up to one tile of rows (and m=0, tuned at 16): the unblocked n2m16 won there.
  EXPECT_EQ(scaled_candidates("m=16,n=4096,k=4096,group=128,act=bf16"), 0);
  EXPECT_EQ(scaled_candidates("m=0,n=4096,k=4096,group=128,act=bf16"), 0);
  EXPECT_EQ(scaled_candidates("m=8,n=4096,k=4096,group=128,act=bf16"), 0);
  EXPECT_EQ(scaled_candidates("m=256,n=4096,k=4096,group=-1,act=bf16"), 0);

  // The no-tune choice: n2m16 kb1024 scaled above one tile of rows with group > 0; unchanged
  // elsewhere (n2m16 unblocked up to 16 rows, n2m32 unblocked for group=-1).
  EXPECT_EQ(generator.heuristic(desc, cpu, 16), (X86Variant{X86Isa::amx_bf16, 2, 16, 1, 16, 1, 1024, 1}));
  EXPECT_EQ(generator.heuristic(parse_descriptor("m=17,n=4096,k=4096,group=128,act=bf16"), cpu, 16).scaled_decode, 1);
  EXPECT_EQ(generator.heuristic(parse_descriptor("m=16,n=4096,k=4096,group=128,act=bf16"), cpu, 16),
            (X86Variant{X86Isa::amx_bf16, 2, 16, 1, 16, 1, 0, 0}));
  EXPECT_EQ(generator.heuristic(parse_descriptor("m=64,n=4096,k=4096,group=-1,act=bf16"), cpu, 16),
            (X86Variant{X86Isa::amx_bf16, 2, 32, 1, 16, 1, 0, 0}));
}

// The scaled functions assemble anywhere: every block and width.
TEST(X86Amx, EmitsScaledDecodeAnywhere) {
  for (int bits : {2, 3, 4, 8})
    for (const char* zero : {"none", "float"}) {
      const OpDesc desc = parse_descriptor("m=0,n=37,act=bf16,group=128,k=256,out=bf16,bias=1,zero=" +
                                           std::string(zero) + ",bits=" + std::to_string(bits));
      for (X86Variant variant : every_block()) {
        variant.k_block = 128;
        variant.scaled_decode = 1;
        const AmxBf16Program program(desc, variant);
        for (int panels = 1; panels <= variant.n_panels; ++panels) {
          EXPECT_NE(reinterpret_cast<const void*>(program.decode_range(panels)), nullptr);
          for (int rows = 1; rows <= variant.m_rows; ++rows)
            EXPECT_NE(reinterpret_cast<const void*>(program.blocked(panels, rows)), nullptr);
        }
        EXPECT_LT(program.getSize(), std::size_t{1} << 20) << variant_name(desc, variant);
      }
    }
}

}  // namespace
}  // namespace lowbit::x86
