// On a GPU: every CUDA variant and format against the reference, on random inputs at odd
// shapes (N not a multiple of 16, K tails, partial groups), outputs poisoned and guarded.
// Skips with the reason where no CUDA device is usable (CI).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/gemv_generator.h"
#include "codegen/cuda/registry.h"
#include "tests/cuda/compile_cases.h"
#include "tests/cuda/device_check.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"

namespace lowbit::cuda {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!driver().available) GTEST_SKIP() << "no usable CUDA device: " << driver().reason

// Runs the kernel once on a random problem, compares with the reference (device_check.h).
std::string check_on_device(const Kernel& kernel) { return testing::check_on_device(kernel, tolerance(kernel.desc())); }

using testing::Case;

// The kernel of cases[i], loaded from the cubin CompiledCases made for it (waiting for it when
// its compile is still under way); refused with the reason when it did not compile.
CudaKernel load_case(const std::vector<Case>& cases, testing::CompiledCases& compiled, std::size_t i) {
  CompiledCandidate candidate = compiled.get(i);
  if (!candidate.error.empty())
    throw Error(variant_name(cases[i].desc, cases[i].variant, device_info(0).arch()) + ": " + candidate.error);
  return CudaKernel(cases[i].desc, cases[i].variant, std::move(candidate.cubin));
}

// Runs the kernel twice on one random problem, the workspace poisoned differently each time
// (0xff, then 0x00); empty when both runs wrote the same bytes (a split sums its parts in a
// fixed order, so no run-to-run drift), else the case and the first differing byte.
std::string check_run_twice_identical(const Kernel& kernel) {
  const OpDesc& desc = kernel.desc();
  const std::string case_name = to_string(desc) + " " + kernel.name();
  const Problem problem = make_random_problem(desc, desc.m, seed_for(case_name));
  DeviceBuffer x = testing::upload(problem.x.data(), problem.x.size());
  DeviceBuffer weights = testing::upload(problem.packed.storage.data(), problem.packed.storage.size());
  DeviceBuffer bias = testing::upload(problem.bias.data(), problem.bias.size());
  DeviceBuffer eq_scale = testing::upload(problem.eq_scale.data(), problem.eq_scale.size() * sizeof(float));
  const std::size_t out_bytes = static_cast<std::size_t>(desc.m * desc.n * dtype_bytes(desc.out));
  DeviceBuffer y(out_bytes);
  DeviceBuffer workspace(std::max<std::size_t>(kernel.workspace_bytes(desc.m), 256));
  RunArgs args;
  args.x = x.data();
  args.weights = testing::device_weights(weights, problem);
  args.bias = desc.bias ? bias.data() : nullptr;
  args.eq_scale = desc.eqscale ? static_cast<const float*>(eq_scale.data()) : nullptr;
  args.y = y.data();
  args.m = desc.m;
  args.workspace = workspace.data();
  args.workspace_size = workspace.size();
  std::vector<uint8_t> runs[2];
  for (int run = 0; run < 2; ++run) {
    workspace.fill(run == 0 ? 0xff : 0x00);
    y.fill(testing::poison);
    kernel.run(args);
    check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
    runs[run] = y.download();
  }
  for (std::size_t i = 0; i < out_bytes; ++i)
    if (runs[0][i] != runs[1][i]) return fmt::format("case: {}: byte {} differs between two runs", case_name, i);
  return {};
}

// Checks every case in order, each loaded as its compile lands (CompiledCases compiles them in
// the background), and with split_runs_identical a split case (split_k > 1) also run twice over
// differently poisoned workspaces: the first failure's reproducer, or empty; `checked` counts the
// cases that passed.
std::string check_every_case(const std::vector<Case>& cases, int& checked, bool split_runs_identical = false) {
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const CudaKernel kernel = load_case(cases, compiled, i);
    std::string failure = check_on_device(kernel);
    if (failure.empty() && split_runs_identical && cases[i].variant.split_k > 1) failure = check_run_twice_identical(kernel);
    if (!failure.empty()) return failure;
    ++checked;
  }
  return {};
}

// One ctest test per weight width, so the device script runs them in parallel.
class CudaKernelsBits : public ::testing::TestWithParam<int> {};

// MmaFormat's CHUNK_TILES * 16: the k of one gemv_mma ring chunk at this width.
int gemv_mma_chunk_k(int bits) { return (bits == 2 ? 8 : bits == 8 ? 2 : 4) * 16; }

// The format sweep of the gemv_mma variant tests below: each shape at each row count (M = 1, 9
// and 16 unless given), with bias; the zero point, the activation and the output dtype turn from
// one descriptor to the next, so the sweep meets each of them.
std::vector<OpDesc> gemv_mma_format_sweep(int bits, std::initializer_list<const char*> shapes,
                                          std::initializer_list<const char*> row_counts = {"1", "9", "16"}) {
  const char* acts[] = {"bf16", "fp16"};
  const char* outs[] = {"fp32", "bf16", "fp16"};
  const char* zeros[] = {"none", "int", "float"};
  std::vector<OpDesc> descs;
  int index = 0;
  for (const char* shape : shapes)
    for (const char* rows : row_counts) {
      descs.push_back(parse_descriptor(fmt::format("bits={},bias=1,device=cuda:0,{},zero={},act={},out={},m={}", bits,
                                                   shape, zeros[index % 3], acts[index % 2], outs[(index / 2) % 3],
                                                   rows)));
      ++index;
    }
  return descs;
}

TEST_P(CudaKernelsBits, EveryGemvCandidateAtOddShapes) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  std::vector<Case> cases;
  // 9 and 16: the tensor-core family's second n8 B operand (the CUDA-core family stops at 8).
  for (const char* rows : {"1", "2", "7", "8", "9", "16"}) {
    // N=1000: 62 panels and an 8-column tail; K=8256: 129 groups of 64, not a multiple of 64 steps.
    OpDesc desc = parse_descriptor(fmt::format(
        "n=1000,k=8256,bits={},group=64,zero=int,act=bf16,bias=1,device=cuda:0,m={}", GetParam(), rows));
    for (const CudaVariant& variant : generator.candidates(desc)) cases.push_back({desc, variant});
  }
  // Compiled ahead of the checks, several at once, as the tuner does.
  int checked = 0;
  const std::string failure = check_every_case(cases, checked);
  ASSERT_TRUE(failure.empty()) << failure;
}

// Every zero point x group shape (K tails with group=-1) x M in {1, 3} x family, each with
// one (act, out) pair: the nine pairs rotate through the cases, so every pair meets several
// shapes and zero points without the 9x product (NVRTC compiles one kernel per case).
TEST_P(CudaKernelsBits, EveryFormatAndKTail) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const char* acts[] = {"bf16", "fp16", "fp32"};
  const char* outs[] = {"fp32", "bf16", "fp16"};
  std::vector<Case> cases;
  int index = 0;
  for (const char* zero : {"none", "int", "float"})
    for (const char* shape : {"group=32,k=96", "group=128,k=384", "group=256,k=512", "group=-1,k=131",
                              "group=-1,k=130", "group=-1,k=4097"})
      for (const char* rows : {"1", "3"}) {
        const char* act = acts[index % 3];
        const char* out = outs[(index / 3) % 3];
        ++index;
        OpDesc desc = parse_descriptor(fmt::format("n=37,bits={},bias=1,device=cuda:0,{},zero={},act={},out={},m={}",
                                                   GetParam(), shape, zero, act, out, rows));
        for (CudaFamily family : {CudaFamily::gemv, CudaFamily::gemv_mma}) {
          CudaVariant variant = generator.heuristic(desc);
          variant.family = family;
          if (family == CudaFamily::gemv) variant = CudaVariant{family, std::min(variant.warps, 8), variant.unroll};  // its most warps, no gemv_mma fields
          if (!generator.is_valid(desc, variant, 9)) continue;  // mma needs 16-bit activations
          cases.push_back({desc, variant});
        }
      }
  int checked = 0;
  const std::string failure = check_every_case(cases, checked);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, 36 + 24);  // a third of the cases have fp32 activations: gemv only
}

// M = 9 .. 16 (the tensor-core family only: rows 8-15 are a second B operand): every zero
// point x group shape (K tails, odd K: x staged without 16-byte copies) with 16-bit activations.
TEST_P(CudaKernelsBits, TensorCoreFamilyUpToSixteenRows) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const char* acts[] = {"bf16", "fp16"};
  const char* outs[] = {"fp32", "bf16", "fp16"};
  std::vector<Case> cases;
  int index = 0;
  for (const char* zero : {"none", "int", "float"})
    for (const char* shape : {"group=32,k=96", "group=128,k=384", "group=256,k=512", "group=-1,k=131",
                              "group=-1,k=130", "group=-1,k=4097"})
      for (const char* rows : {"12", "16"}) {
        OpDesc desc = parse_descriptor(fmt::format("n=37,bits={},bias=1,device=cuda:0,{},zero={},act={},out={},m={}",
                                                   GetParam(), shape, zero, acts[index % 2], outs[index % 3], rows));
        ++index;
        CudaVariant variant = generator.heuristic(desc);
        variant.family = CudaFamily::gemv_mma;
        ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << to_string(desc);
        cases.push_back({desc, variant});
      }
  int checked = 0;
  const std::string failure = check_every_case(cases, checked);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, 36);
}

// M = 17 .. 32 (gemv_mma's third and fourth n8 B operands, 17 and 25 rows leaving one partly
// empty): 2 and 4 panels a warp (block_n 32, 64; the accumulator rule refuses 4 at 8 bits in
// bf16) at 4 warps, plain and split-K in two, and at 8 warps with both chunk widths; every zero
// point, a K tail, N not a whole set of panels, bias, both activations.
TEST_P(CudaKernelsBits, TensorCoreFamilyUpToThirtyTwoRows) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const int format_k = gemv_mma_chunk_k(GetParam());
  std::vector<Case> cases;
  for (const OpDesc& desc :
       gemv_mma_format_sweep(GetParam(), {"n=1000,k=8256,group=64", "n=100,k=4097,group=-1", "n=37,k=384,group=128"},
                             {"17", "25", "32"}))
    for (int warps : {4, 8})
      for (int block_n : {32, 64})
        for (int block_k : {0, 2 * format_k})
          for (int split_k : {1, 2}) {
            CudaVariant variant{CudaFamily::gemv_mma, warps, 2};
            variant.block_n = block_n;
            variant.block_k = block_k;
            variant.split_k = split_k;
            // 4 warps with 1-tile chunks, plain and split; 8 warps with both chunk widths.
            if ((warps == 4 && block_k != 0) || (split_k == 2 && warps != 4)) continue;
            if (generator.is_valid(desc, variant, 9)) cases.push_back({desc, variant});
          }
  // 9 descriptors; block_n 64 is refused at 8 bits in bf16 (SPLIT accumulators), so fewer there.
  ASSERT_GE(cases.size(), 9u * 5u);
  int checked = 0;
  const std::string failure = check_every_case(cases, checked);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, static_cast<int>(cases.size()));
}

// x starting 2 bytes past an aligned address with K % 8 == 0 (a row slice of a larger tensor):
// both GEMV families must take their plain-load path for x, at every row count they serve.
TEST_P(CudaKernelsBits, UnalignedXTakesThePlainLoadPath) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  std::vector<Case> cases;
  for (const char* act : {"bf16", "fp16"})
    for (int rows : {1, 5, 16}) {
      OpDesc desc = parse_descriptor(fmt::format("n=37,k=512,bits={},group=128,zero=int,bias=1,device=cuda:0,act={},m={}",
                                                 GetParam(), act, rows));
      for (CudaFamily family : {CudaFamily::gemv, CudaFamily::gemv_mma}) {
        CudaVariant variant = generator.heuristic(desc);
        variant.family = family;
        if (family == CudaFamily::gemv) variant = CudaVariant{family, std::min(variant.warps, 8), variant.unroll};  // its most warps, no gemv_mma fields
        if (!generator.is_valid(desc, variant, 9)) continue;  // the CUDA-core family serves up to 8 rows
        cases.push_back({desc, variant});
      }
    }
  testing::CompiledCases compiled(cases);
  int checked = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string failure =
        testing::check_on_device(load_case(cases, compiled, i), tolerance(cases[i].desc), /*x_offset_bytes=*/2);
    ASSERT_TRUE(failure.empty()) << failure;
    ++checked;
  }
  EXPECT_EQ(checked, 10);  // per act: gemv at rows 1 and 5, gemv_mma at rows 1, 5 and 16
}

// eqscale=1: x * eq folded into the load of x, including the group sums of x (zero=int makes
// the sums matter). K=4096 takes the vector loads of x and eq, K=4099 the per-element tails.
TEST_P(CudaKernelsBits, EqualizationScale) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  std::vector<Case> cases;
  for (const char* act : {"bf16", "fp16", "fp32"})
    for (const char* shape : {"group=128,k=4096", "group=-1,k=4099"})
      for (const char* rows : {"1", "8", "16"}) {
        OpDesc desc = parse_descriptor(fmt::format(
            "n=100,bits={},zero=int,eqscale=1,bias=1,out=fp32,device=cuda:0,{},act={},m={}", GetParam(), shape, act, rows));
        for (CudaFamily family : {CudaFamily::gemv, CudaFamily::gemv_mma}) {
          CudaVariant variant = generator.heuristic(desc);
          variant.family = family;
          if (family == CudaFamily::gemv) variant = CudaVariant{family, std::min(variant.warps, 8), variant.unroll};  // its most warps, no gemv_mma fields
          if (!generator.is_valid(desc, variant, 9)) continue;
          cases.push_back({desc, variant});
        }
      }
  int checked = 0;
  const std::string failure = check_every_case(cases, checked);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, 20 + 4);  // m=16: the tensor-core family with bf16 and fp16 only
}

// gemv_mma's wider ring chunks (block_k = twice the format's), split-K across blocks
// (split_k: fp32 parts in the workspace, summed with bias by a second kernel) and bulk
// copies (bulk_copy, sm_90; K % 8 != 0 keeps x on the per-lane path): every zero
// point, both 16-bit activations, every output dtype, eqscale, whole-K groups and K tails, at
// M = 1, 9 (the second B operand) and 16; a split with fewer runs than blocks is refused, not
// run. Each split is also run twice: the outputs must be the same bits.
TEST_P(CudaKernelsBits, WideChunksSplitKAndBulkCopies) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const int format_k = gemv_mma_chunk_k(GetParam());
  std::vector<Case> cases;
  for (const OpDesc& desc :
       gemv_mma_format_sweep(GetParam(), {"n=1000,k=8256,group=64", "n=37,k=4097,group=-1", "n=100,k=384,group=128",
                                          "n=72,k=4096,group=128,eqscale=1"})) {
      // (warps, unroll, block_k, split, bulk): a split alone, split with wide chunks, wide alone,
      // the most parts, bulk copies wide and narrow; all within sm_90's shared memory at M=16
      // with 2-bit weights.
      for (auto [warps, unroll, block_k, split, bulk] :
           {std::tuple{8, 2, 0, 2, 0}, std::tuple{4, 4, 2 * format_k, 4, 0}, std::tuple{4, 2, 2 * format_k, 1, 0},
            std::tuple{8, 2, 2 * format_k, 8, 0}, std::tuple{8, 2, 2 * format_k, 1, 1}, std::tuple{4, 4, 0, 1, 1}}) {
        CudaVariant variant{CudaFamily::gemv_mma, warps, unroll};
        variant.block_k = block_k;
        variant.split_k = split;
        variant.bulk_copy = bulk;
        const Validity validity = generator.is_valid(desc, variant, 9);
        if (!validity) {
          // Only splits into more blocks than fold runs are refused here (k=384: 3 runs).
          ASSERT_NE(validity.reason.find("fold runs"), std::string::npos) << to_string(desc) << ": " << validity.reason;
          continue;
        }
        cases.push_back({desc, variant});
      }
    }
  int checked = 0;
  const std::string failure = check_every_case(cases, checked, /*split_runs_identical=*/true);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, 3 * (6 + 6 + 4 + 6));  // k=384: 3 fold runs, splits 4 and 8 refused
}

// gemv_mma blocks walking several panels with one ring (panels): the ring crosses each panel
// boundary, partial sums are reused per panel, and the last blocks get one panel fewer (63
// panels in grids of 8, 16 and 32 blocks; 3 panels in one block). Every zero point, both
// 16-bit activations, every output dtype, eqscale, whole-K groups and K tails, at M = 1, 9 and
// 16, with warps that have no run at all (k=384: 3 runs for 4 to 16 warps), one stage (no
// chunk ahead) and wide chunks.
TEST_P(CudaKernelsBits, PanelWalks) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const int format_k = gemv_mma_chunk_k(GetParam());
  std::vector<Case> cases;
  for (const OpDesc& desc :
       gemv_mma_format_sweep(GetParam(), {"n=1000,k=8256,group=64", "n=37,k=4097,group=-1", "n=1000,k=384,group=128",
                                          "n=72,k=4096,group=128,eqscale=1"})) {
      // (warps, unroll, block_k, panels): 1, 2 and 4 stages, 4 to 16 warps, 2 to 8 panels, wide chunks.
      for (auto [warps, unroll, block_k, panels] :
           {std::tuple{8, 1, 2 * format_k, 8}, std::tuple{16, 2, 0, 4}, std::tuple{4, 4, 0, 2}}) {
        CudaVariant variant{CudaFamily::gemv_mma, warps, unroll};
        variant.block_k = block_k;
        variant.panels = panels;
        const Validity validity = generator.is_valid(desc, variant, 9);
        ASSERT_TRUE(validity) << to_string(desc) << ": " << validity.reason;
        cases.push_back({desc, variant});
      }
    }
  int checked = 0;
  const std::string failure = check_every_case(cases, checked);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, 4 * 3 * 3);
}

// gemv_mma warps covering 2 or 4 adjacent panels (block_n 32, 64: one copy of x for all): N
// not a multiple of 16 x panels (the last set's panels past N copy zeros and store nothing: 63,
// 3, 7 and 5 panels; and 64, whole sets), K tails, whole-K groups, eqscale, every zero point, both activations,
// every output dtype, bias, at M = 1, 7, 8, 9, 15 and 16; with wide chunks, one stage, 16
// warps with the L2 prefetch of every panel's span, split-K (run twice: the same bits), a panel
// walk of such sets, and resident x beside ring x (few rows). Every case compiled ahead of the
// checks (CompiledCases).
TEST_P(CudaKernelsBits, SeveralPanelsPerWarp) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const int format_k = gemv_mma_chunk_k(GetParam());
  const char* acts[] = {"bf16", "fp16"};
  const char* outs[] = {"fp32", "bf16", "fp16"};
  const char* zeros[] = {"none", "int", "float"};
  // (warps, unroll, block_k, block_n, split_k, panels, prefetch)
  const std::tuple<int, int, int, int, int, int, int> fields[] = {{8, 2, 0, 32, 1, 1, 0},
                                                                    {4, 2, 2 * format_k, 64, 1, 1, 0},
                                                                    {16, 1, 0, 32, 1, 1, 1},
                                                                    {8, 2, 0, 64, 2, 1, 0},
                                                                    {4, 2, 0, 32, 1, 4, 0}};
  std::vector<Case> cases;
  int index = 0;
  for (const char* shape : {"n=1000,k=8256,group=64", "n=37,k=4097,group=-1", "n=100,k=384,group=128",
                            "n=72,k=4096,group=128,eqscale=1", "n=1024,k=4104,group=-1"})
    for (const char* rows : {"1", "7", "8", "9", "15", "16"}) {
      const OpDesc desc = parse_descriptor(fmt::format("bits={},bias=1,device=cuda:0,{},zero={},act={},out={},m={}",
                                                       GetParam(), shape, zeros[index % 3], acts[index % 2],
                                                       outs[(index / 2) % 3], rows));
      ++index;
      for (auto [warps, unroll, block_k, block_n, split, panels, prefetch] : fields) {
        CudaVariant variant{CudaFamily::gemv_mma, warps, unroll};
        variant.block_k = block_k;
        variant.block_n = block_n;
        variant.split_k = split;
        variant.panels = panels;
        variant.prefetch = prefetch;
        const Validity validity = generator.is_valid(desc, variant, 9);
        ASSERT_TRUE(validity) << to_string(desc) << ": " << validity.reason;
        cases.push_back({desc, variant});
      }
    }
  int checked = 0;
  const std::string failure = check_every_case(cases, checked, /*split_runs_identical=*/true);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, 5 * 6 * 5);
}

// The no-tune choice at 1..3 rows on many panels (1025: N = 16392 ends inside a panel), warps of 2
// panels (block_n 32) at 2, 3 and 4 bits, 16 warps of 4 wide stages at 8: K tails, every zero
// point, both activations, bias.
TEST_P(CudaKernelsBits, HeuristicAtFewRowsOnManyPanels) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const char* zeros[] = {"none", "int", "float"};
  const char* acts[] = {"bf16", "fp16"};
  const char* outs[] = {"fp32", "bf16", "fp16"};
  std::vector<Case> cases;
  int index = 0;
  for (const char* shape : {"k=4104,group=-1", "k=4160,group=64"})
    for (const char* rows : {"1", "2", "3"}) {
      const OpDesc desc = parse_descriptor(fmt::format("n=16392,bits={},bias=1,device=cuda:0,{},zero={},act={},out={},m={}",
                                                       GetParam(), shape, zeros[index % 3], acts[index % 2],
                                                       outs[(index / 2) % 3], rows));
      ++index;
      const CudaVariant variant = generator.heuristic(desc, 9);
      EXPECT_EQ(variant.block_n, GetParam() == 8 ? 0 : 32) << to_string(desc);
      EXPECT_EQ(variant.warps, GetParam() == 8 ? 16 : GetParam() == 3 || desc.m == 3 ? 8 : 4) << to_string(desc);
      cases.push_back({desc, variant});
    }
  int checked = 0;
  const std::string failure = check_every_case(cases, checked);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, 6);
}

// gemv_mma with the L2 prefetch of each warp's weight span (prefetch=1): the same results as
// without, across odd N, K tails, whole-K groups, eqscale, M = 1, 9 and 16, warps without a run
// (k=384: 3 runs for 8 and 16 warps), one stage, wide chunks, split-K and (sm_90) bulk copies.
TEST_P(CudaKernelsBits, PrefetchMatchesTheReference) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const int format_k = gemv_mma_chunk_k(GetParam());
  const int arch_major = device_info(0).major;
  std::vector<Case> cases;
  for (const OpDesc& desc :
       gemv_mma_format_sweep(GetParam(), {"n=1000,k=8256,group=64", "n=37,k=4097,group=-1", "n=1000,k=384,group=128",
                                          "n=72,k=4096,group=128,eqscale=1"})) {
      // (warps, unroll, block_k, split_k, bulk_copy)
      for (auto [warps, unroll, block_k, split, bulk] :
           {std::tuple{8, 2, 0, 1, 0}, std::tuple{16, 1, 2 * format_k, 1, 0}, std::tuple{4, 2, 0, 2, 0},
            std::tuple{8, 2, 2 * format_k, 1, 1}}) {
        CudaVariant variant{CudaFamily::gemv_mma, warps, unroll};
        variant.block_k = block_k;
        variant.split_k = split;
        variant.bulk_copy = bulk;
        variant.prefetch = 1;
        if (bulk == 1 && arch_major < 9) continue;  // bulk copies need sm_90
        const Validity validity = generator.is_valid(desc, variant, arch_major);
        ASSERT_TRUE(validity) << to_string(desc) << ": " << validity.reason;
        cases.push_back({desc, variant});
      }
    }
  int checked = 0;
  const std::string failure = check_every_case(cases, checked);
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(checked, 4 * 3 * (arch_major >= 9 ? 4 : 3));
}

// gemv_mma's resident x (each warp's slice of x copied once, GemvGenerator::x_resident) and
// x in the ring beside it, on the same problems: 16-byte copies (K % 8 == 0) and the plain
// pair loads (odd K, and x 2 bytes past an aligned address), slices ending past K, warps
// without a run (k=384: 3 runs), split-K (a block's slice starts mid-K), one stage and wide
// chunks. The rule is asserted, so a change to its budget cannot silently skip a path.
TEST_P(CudaKernelsBits, ResidentXAndRingXAgree) {
  SKIP_WITHOUT_GPU();
  GemvGenerator generator;
  const int format_k = gemv_mma_chunk_k(GetParam());
  const char* acts[] = {"bf16", "fp16"};
  const char* zeros[] = {"none", "int", "float"};
  std::vector<Case> cases;
  int index = 0;
  for (const char* shape : {"n=1000,k=8256,group=64", "n=37,k=4097,group=-1", "n=100,k=384,group=128",
                            "n=72,k=4096,group=128,eqscale=1", "n=37,k=14336,group=128"})
    for (const char* rows : {"1", "4", "16"}) {
      OpDesc desc = parse_descriptor(fmt::format("bits={},bias=1,out=fp32,device=cuda:0,{},zero={},act={},m={}",
                                                 GetParam(), shape, zeros[index % 3], acts[index % 2], rows));
      ++index;
      // (warps, unroll, block_k, split_k)
      for (auto [warps, unroll, block_k, split] :
           {std::tuple{8, 2, 0, 1}, std::tuple{16, 1, 2 * format_k, 1}, std::tuple{4, 2, 0, 2}}) {
        CudaVariant variant{CudaFamily::gemv_mma, warps, unroll};
        variant.block_k = block_k;
        variant.split_k = split;
        if (!generator.is_valid(desc, variant, 9)) continue;  // splits beyond the fold runs
        cases.push_back({desc, variant});
      }
    }
  // One kernel a case, run at both offsets of x (only a run-time argument).
  testing::CompiledCases compiled(cases);
  int resident = 0;
  int ring = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const bool x_resident = GemvGenerator::x_resident(cases[i].desc, cases[i].variant);
    (x_resident ? resident : ring) += 1;
    const CudaKernel kernel = load_case(cases, compiled, i);
    for (std::size_t offset : {std::size_t{0}, std::size_t{2}}) {
      const std::string failure = testing::check_on_device(kernel, tolerance(cases[i].desc), offset);
      ASSERT_TRUE(failure.empty()) << (x_resident ? "resident x: " : "ring x: ") << failure;
    }
  }
  EXPECT_GE(resident, 20);
  EXPECT_GE(ring, 4);
}

INSTANTIATE_TEST_SUITE_P(Bits, CudaKernelsBits, ::testing::Values(2, 3, 4, 8),
                         [](const ::testing::TestParamInfo<int>& info) { return fmt::format("w{}", info.param); });

TEST(CudaKernels, GetKernelServesCudaDescriptors) {
  SKIP_WITHOUT_GPU();
  OpDesc desc = parse_descriptor("m=2,n=1000,k=4096,group=128,zero=int,act=bf16,bias=1,device=cuda:0");
  // The heuristic path, without a cache (tuning and the cubin cache: tests/runtime/test_cuda_cache.cpp).
  GetOptions options;
  options.on_miss = OnMiss::heuristic;
  options.use_cache = false;
  ResolvedKernel resolved = get_kernel(desc, options);
  EXPECT_EQ(resolved.source, KernelSource::heuristic);
  std::string failure = check_on_device(*resolved.kernel);
  EXPECT_TRUE(failure.empty()) << failure;
}

TEST(CudaKernels, RunRefusesBadArguments) {
  SKIP_WITHOUT_GPU();
  OpDesc desc = parse_descriptor("m=2,n=64,k=128,group=64,bias=1,device=cuda:0");
  CudaKernel kernel(desc, GemvGenerator().heuristic(desc));
  RunArgs args;
  args.m = 2;
  EXPECT_THROW(kernel.run(args), InvalidArgument);  // null pointers
  // A split needs its workspace: refused when missing or smaller, with both sizes named.
  CudaVariant split{CudaFamily::gemv_mma, 8, 2};
  split.split_k = 2;
  CudaKernel split_kernel(desc, split);
  ASSERT_EQ(split_kernel.workspace_bytes(2), 1024u);  // [2 parts][2 rows][64 columns] fp32
  // Host pointers are enough: run refuses before any launch.
  static const char placeholder[16] = {};
  args.x = placeholder;
  args.y = const_cast<char*>(placeholder);
  args.weights = {placeholder, placeholder, placeholder};
  args.bias = placeholder;
  for (std::size_t size : {std::size_t{0}, std::size_t{1023}}) {
    std::vector<char> scratch(1024);
    args.workspace = size == 0 ? nullptr : scratch.data();
    args.workspace_size = size;
    try {
      split_kernel.run(args);
      FAIL() << "a split ran with a workspace of " << size << " bytes";
    } catch (const InvalidArgument& error) {
      EXPECT_NE(std::string(error.what()).find("1024"), std::string::npos) << error.what();
      if (size != 0) {
        EXPECT_NE(std::string(error.what()).find("1023"), std::string::npos) << error.what();
      }
    }
  }
}

}  // namespace
}  // namespace lowbit::cuda
