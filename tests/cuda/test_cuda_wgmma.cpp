// The wgmma family (codegen/cuda/wgmma_generator.*, templates/wgmma_gemm.cuh). Without a GPU:
// every candidate and every format compiles through NVRTC for sm_90a, names and JSON round-trip,
// refusals carry reasons (other arches included). On an sm_90 GPU: every candidate at M around
// its tiles and every format against the reference, on random inputs at odd shapes, outputs
// poisoned and guarded, at the bound of kernels that round each dequantized weight
// (dequantized_weights_tolerance: the family folds the scales into its A operand). Split-K
// variants (split_k > 1: fp32 partials in the workspace, a second kernel sums them) are among
// the candidates checked; they also must give bit-identical outputs run to run and refuse a
// missing or small workspace; cluster splits (cluster_split = 1: summed in the cluster's shared
// memory) likewise, without a workspace. Warp-specialized variants (producer = 1: a copy warpgroup and
// mbarriers per ring slot) are among the candidates at M >= 128 and checked at odd shapes with
// splits and every zero-point kind. Stream-K variants (stream_k persistent blocks sharing the
// tiles' k iterations, cut tiles fixed up through the workspace) are among the candidates at
// M >= 256 (with the copy warpgroup, producer = 1, from M >= 128), checked at odd shapes from M = 1
// (against the reference, also with few blocks, so that a block runs through several tiles and its
// ring through several segments), and must give bit-identical outputs run to run over any
// workspace contents, the flags the previous run left included.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/registry.h"
#include "codegen/cuda/wgmma_generator.h"
#include "lowbit/errors.h"
#include "lowbit/tolerance.h"
#include "tests/cuda/compile_cases.h"
#include "tests/cuda/device_check.h"

namespace lowbit::cuda {
namespace {

#define SKIP_WITHOUT_NVRTC() \
  if (!nvrtc().available) GTEST_SKIP() << "NVRTC is not installed: " << nvrtc().reason
#define SKIP_WITHOUT_HOPPER()                                                                                \
  if (!driver().available) GTEST_SKIP() << "no usable CUDA device: " << driver().reason;                    \
  if (device_info(0).major != 9)                                                                             \
  GTEST_SKIP() << "the wgmma family needs an sm_90 GPU; this one is " << device_info(0).arch()

bool looks_like_cubin(const std::vector<char>& cubin) {
  return cubin.size() > 64 && cubin[0] == 0x7f && cubin[1] == 'E' && cubin[2] == 'L' && cubin[3] == 'F';
}

OpDesc descriptor(const std::string& text) { return parse_descriptor(text + ",device=cuda:0"); }

// The generator refuses `variant` on `desc` for sm_90, its reason holding `words`.
void expect_refused(const WgmmaGenerator& generator, const OpDesc& desc, const CudaVariant& variant, const char* words) {
  const Validity validity = generator.is_valid(desc, variant, 9);
  EXPECT_FALSE(validity) << words;
  EXPECT_NE(validity.reason.find(words), std::string::npos) << validity.reason;
}

// The variant's JSON reads back as the variant, and JSON stored before `field` existed (the
// variant's without it) reads `member` as `absent`.
void expect_json_round_trip(const CudaVariant& variant, const char* field, int CudaVariant::*member, int absent) {
  EXPECT_EQ(variant_from_json(to_json(variant)), variant);
  nlohmann::json older = to_json(variant);
  older.erase(field);
  EXPECT_EQ(variant_from_json(older).*member, absent) << field;
}

// Every candidate compiling for sm_90a: tests/cuda/test_cuda_compile.cpp (CudaCompile, CI's NVRTC check).

TEST(CudaWgmmaCompile, EveryFormatCompilesForHopper) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  for (const char* format : {"act=bf16,out=bf16,zero=int,group=128,k=4096", "act=fp16,out=fp16,zero=none,group=32,k=4096",
                             "act=bf16,out=fp32,zero=float,group=64,k=4096", "act=fp16,out=bf16,zero=int,group=256,k=4096",
                             "act=bf16,out=fp16,zero=float,group=-1,k=4104", "act=fp16,out=fp32,zero=int,group=-1,k=4104"})
    for (const char* rows : {"40", "700"}) {
      OpDesc desc = descriptor(std::string("n=1000,bits=4,bias=1,m=") + rows + "," + format);
      CudaVariant variant = generator.heuristic(desc);
      ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << format;
      EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(desc, variant), "format", "sm_90a"))) << format;
    }
}

TEST(CudaWgmmaCompile, NamesJsonGeometryAndDeterminism) {
  WgmmaGenerator generator;
  OpDesc desc = descriptor("m=1024,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  CudaVariant variant = generator.heuristic(desc);
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws");
  variant.producer = 0;  // the all-thread ring (the copy warpgroup's: WarpSpecializedNamesJsonAndGeometry)
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4");
  EXPECT_EQ(generator.emit(desc, variant), generator.emit(desc, variant));
  CudaVariant other = variant;
  other.stages = 5;
  EXPECT_NE(generator.emit(desc, variant), generator.emit(desc, other));
  EXPECT_NE(generator.emit(desc, variant).find(to_string(desc)), std::string::npos);
  EXPECT_EQ(variant_from_json(to_json(variant)), variant);
  const LaunchGeometry geometry = generator.launch_geometry(desc, variant);
  EXPECT_EQ(geometry.grid_x, 4u);   // 1024 rows / 256
  EXPECT_EQ(geometry.grid_y, 32u);  // 4096 columns / 128
  EXPECT_EQ(geometry.threads, 256u);
  // 4 stages of 256 x 64 bf16 x (32 KiB) + 8 panels x 64 k int4 (4 KiB) + scales and zeros
  // (2 x 256 bytes), each rounded up to 1 KiB, plus 1 KiB to align the ring.
  EXPECT_EQ(geometry.shared_bytes, 4u * 37888u + 1024u);
  EXPECT_EQ(geometry.shared_bytes, static_cast<unsigned>(WgmmaGenerator::shared_bytes(desc, variant)));
  // The registry routes the family to this generator, at the rounded-weights bound.
  EXPECT_TRUE(is_valid(desc, variant, 9));
  EXPECT_EQ(verification_tolerance(desc, variant), dequantized_weights_tolerance(desc));
}

TEST(CudaWgmmaCompile, SplitKNamesJsonGeometryAndWorkspace) {
  WgmmaGenerator generator;
  // M=64 on 4096x14336: 64 column tiles of 64 for 132 SMs, 112 stages of 128 k.
  OpDesc desc = descriptor("m=64,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16,bias=1");
  // 64 tiles x 4 within three waves (27.4 us on the H100). (With K = 4096 the heuristic sums the
  // tiles in cluster pairs instead, generator version 11: 13.4 against 14.4 us on 4096x4096.)
  CudaVariant variant = generator.heuristic(desc);
  EXPECT_EQ(variant.split_k, 4);
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m64_n64m64k128_s4_split4_gs");
  const OpDesc short_k = descriptor("m=64,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  EXPECT_EQ(variant_name(short_k, generator.heuristic(short_k), "sm_90a"), "cuda_sm90a_wgmma_w4g128_m64_n64m64k128_s4_cs2_gs");
  // 96 tiles on 6144 columns: 192 pair blocks, two an SM by their 80 KB rings, one wave (17.1
  // against the split4's 19.5 us, session 10's release sweep); a longer K keeps the split.
  const OpDesc wider = descriptor("m=64,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16");
  EXPECT_EQ(variant_name(wider, generator.heuristic(wider), "sm_90a"), "cuda_sm90a_wgmma_w4g128_m64_n64m64k128_s4_cs2_gs");
  EXPECT_EQ(generator.heuristic(descriptor("m=64,n=6144,k=8192,bits=4,group=128,zero=int,act=bf16")).cluster_split, 0);
  expect_json_round_trip(variant, "split_k", &CudaVariant::split_k, 1);
  const LaunchGeometry geometry = generator.launch_geometry(desc, variant);
  EXPECT_EQ(geometry.grid_x, 1u);
  EXPECT_EQ(geometry.grid_y, 64u);
  EXPECT_EQ(geometry.grid_z, 4u);
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, variant), std::size_t{4} * 64 * 4096 * 4);
  // M = 17..64 take one warpgroup's 64 columns (session 9's release sweep): at M = 32 on 6144x4096
  // 96 tiles split 4 (15.8 against the 128-column split8's 19.6 us), unsplit on 28672 columns.
  EXPECT_EQ(variant_name(descriptor("m=32,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16"),
                         generator.heuristic(descriptor("m=32,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16")),
                         "sm_90a"),
            "cuda_sm90a_wgmma_w4g128_m32_n64m32k128_s5_split4_gs");
  EXPECT_EQ(generator.heuristic(descriptor("m=64,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16")).split_k, 1);
  // ... but where that grid stays unsplit at M = 17..32 (448 tiles on 28672 columns), the
  // two-warpgroup 128-column tile (36.8 against 40.3 us in fp16 on the H100).
  EXPECT_EQ(variant_name(descriptor("m=32,n=28672,k=4096,bits=4,group=128,zero=int,act=fp16"),
                         generator.heuristic(descriptor("m=32,n=28672,k=4096,bits=4,group=128,zero=int,act=fp16")),
                         "sm_90a"),
            "cuda_sm90a_wgmma_w4g128_m32_n128m32k128_s4_gs");
  // Short tiles split to three waves: 64 tiles of 64 x 64 x 4 at M=64 on 4096 columns with a long
  // K (at M = 128..256 a long K's split tile is streamed instead, long_k_splits_streamed, below).
  EXPECT_EQ(generator.heuristic(descriptor("m=64,n=4096,k=14336,bits=4,group=128,act=bf16")).split_k, 4);
  // Wave quantization of the 256-row tiles: from 256 rows, where their grid leaves a tenth of its
  // last wave idle, stream-K over a block per SM; below 256 rows, where it leaves a fifth idle,
  // the 128-row warp-specialized tile (as measured on the H100, benchmarks.md).
  auto chosen = [&](const char* text) {
    const OpDesc desc = descriptor(std::string("bits=4,group=128,zero=int,act=bf16,") + text);
    return variant_name(desc, generator.heuristic(desc), "sm_90a");
  };
  // 192 tiles: 132 whole, 60 halved over 120 blocks (the hybrid, where at most half a wave remains)
  EXPECT_EQ(chosen("m=1024,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws_sk132r2p");
  // M = 128..256 with a quarter to a whole wave of 128-row tiles and K up to 32 stages of 128:
  // those shared by a block per SM.
  EXPECT_EQ(chosen("m=256,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m256_n128m128k128_s4_ws_sk132p");  // 96 tiles
  EXPECT_EQ(chosen("m=255,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m255_n128m128k128_s4_ws_sk132p");  // 96 tiles
  EXPECT_EQ(chosen("m=128,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m128_n128m128k128_s4_ws_sk132p");  // 48 tiles
  // M = 65..128 where the 64 x 64 tiles' cluster pairs fill a wave, two an SM (128 x 2 blocks).
  EXPECT_EQ(chosen("m=128,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m128_n64m64k128_s4_cs2_gs");
  EXPECT_EQ(chosen("m=65,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m65_n64m64k128_s4_cs2_gs");
  // A long K (over 32 stages of 128) at M = 128..256: the split's tile as planned stream-K.
  EXPECT_EQ(chosen("m=128,n=4096,k=8192"), "cuda_sm90a_wgmma_w4g128_m128_n128m128k128_s4_ws_sk132p");
  EXPECT_EQ(chosen("m=128,n=4096,k=14336"), "cuda_sm90a_wgmma_w4g128_m128_n128m128k128_s4_ws_sk132p");
  // M = 128 over one wave of 128-row tiles and under 0.9 of two: stream-K (224 tiles).
  EXPECT_EQ(chosen("m=128,n=28672,k=4096"), "cuda_sm90a_wgmma_w4g128_m128_n128m128k128_s4_ws_sk132p");
  EXPECT_EQ(chosen("m=127,n=28672,k=4096"), "cuda_sm90a_wgmma_w4g128_m127_n128m128k128_s4_ws");  // below 128 rows
  // M = 129..256 where the 128-row tiles in cluster pairs fill 0.9 .. 1 wave (64 x 2 = 128 blocks).
  EXPECT_EQ(chosen("m=256,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m256_n128m128k128_s4_cs2_ws");
  EXPECT_EQ(chosen("m=200,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m200_n128m128k128_s4_cs2_ws");
  EXPECT_EQ(chosen("m=127,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m127_n128m128k128_s4_cs2_ws");  // a pair
  EXPECT_EQ(chosen("m=256,n=28672,k=4096"), "cuda_sm90a_wgmma_w4g128_m256_n128m256k64_s4_ws_sk132r2p");  // 224: 92 remain
  EXPECT_EQ(chosen("m=1024,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws");     // 128 tiles
  EXPECT_EQ(chosen("m=1024,n=28672,k=4096"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws");    // 896 tiles
  // Whole tiles a persistent block where a block's run stays within the grid's row tiles: 4 or 6
  // of 16 at M = 4096 (512 or 768 tiles on 128 blocks); not 28 of 16 (28672 columns).
  EXPECT_EQ(chosen("m=4096,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m4096_n128m256k64_s4_ws_sk128");
  EXPECT_EQ(chosen("m=4096,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m4096_n128m256k64_s4_ws_sk128");
  EXPECT_EQ(chosen("m=4096,n=4096,k=14336"), "cuda_sm90a_wgmma_w4g128_m4096_n128m256k64_s4_ws_sk128");
  EXPECT_EQ(chosen("m=4096,n=28672,k=4096"), "cuda_sm90a_wgmma_w4g128_m4096_n128m256k64_s4_ws");
  EXPECT_EQ(chosen("m=1024,n=4096,k=14336"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws");    // 128 tiles
  EXPECT_EQ(chosen("m=256,n=4096,k=14336"), "cuda_sm90a_wgmma_w4g128_m256_n128m256k64_s4_ws_sk132p");  // 16 tiles, long K
  // 257 rows: the 256-row grid would pad 255 of its 512 rows, the 128-row one 127 of 384 (not
  // measured at this K; HeuristicShorterTileAndHybridRules): its 96 tiles shared by 132 blocks.
  EXPECT_EQ(chosen("m=257,n=4096,k=14336"), "cuda_sm90a_wgmma_w4g128_m257_n128m128k128_s4_ws_sk132p");
  EXPECT_EQ(chosen("m=129,n=1001,k=2048"), "cuda_sm90a_wgmma_w4g128_m129_n128m256k64_s4_split8_ws");  // 64: under half a wave
  EXPECT_DOUBLE_EQ(WgmmaGenerator().wave_fill(descriptor("m=1024,n=6144,k=4096,bits=4,act=bf16"),
                                             generator.heuristic(descriptor("m=1024,n=28672,k=4096,bits=4,act=bf16"))),
                   192.0 / 264.0);
  // The wave rules count the device's SMs (the registry passes DeviceInfo::sm_count; 0 or none:
  // the H100's 132). On 96 SMs the 192 tiles of the 256-row grid at M=1024 on 6144 columns fill
  // two whole waves, so that grid stays; on 132 they fill 1.45 and stream-K is taken.
  const OpDesc ragged = descriptor("m=1024,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16");
  EXPECT_EQ(WgmmaGenerator(132).heuristic(ragged), generator.heuristic(ragged));
  EXPECT_EQ(WgmmaGenerator(0).heuristic(ragged), generator.heuristic(ragged));
  EXPECT_EQ(heuristic(ragged, 9, 132), heuristic(ragged, 9));
  EXPECT_EQ(WgmmaGenerator(96).heuristic(ragged).block_m, 256);
  EXPECT_EQ(WgmmaGenerator(96).heuristic(ragged).stream_k, 0);
  EXPECT_EQ(generator.heuristic(ragged).stream_k, 132);
  EXPECT_EQ(generator.heuristic(ragged).remainder_split, 2);
  EXPECT_EQ(heuristic(ragged, 9, 96), WgmmaGenerator(96).heuristic(ragged));
  EXPECT_DOUBLE_EQ(WgmmaGenerator(96).wave_fill(ragged, WgmmaGenerator(96).heuristic(ragged)), 1.0);
  EXPECT_EQ(candidates(ragged, 9, 132), candidates(ragged, 9));
  // The warp-specialized ring is the no-tune choice from M = 65 where the grid is tiled (measured,
  // benchmarks.md; from generator version 10 its stream-K grids too).
  // (K = 8192 at M = 65..128: with 4096 the 64 x 64 cluster pairs are taken, on the all-thread ring.)
  for (int m : {64, 65, 128, 129, 1024})  // 4096 columns: the 256-row grids fill their waves
    EXPECT_EQ(generator.heuristic(descriptor("n=4096,bits=4,group=128,act=bf16,m=" + std::to_string(m) +
                                             (m > 64 && m <= 128 ? ",k=8192" : ",k=4096")))
                  .producer,
              m > 64 ? 1 : 0)
        << m;
  // Every split the heuristic picks is valid, also where rounding to stage pairs leaves too
  // few stages for the next split (k=2056: 17 stages of 128).
  for (const char* text : {"m=129,n=1001,k=2056,group=-1", "m=17,n=4095,k=4104,group=-1", "m=300,n=64,k=520,group=-1"}) {
    const OpDesc odd = descriptor(std::string("bits=4,act=bf16,") + text);
    EXPECT_TRUE(generator.is_valid(odd, generator.heuristic(odd), 9)) << text;
  }
  EXPECT_EQ(WgmmaGenerator::reduce_geometry(desc).grid_x, 64u * 4096 / 4 / 256);
  EXPECT_EQ(WgmmaGenerator::reduce_geometry(parse_descriptor("m=3,n=37,k=128,device=cuda:0")).grid_x, 1u);
  CudaVariant unsplit = variant;
  unsplit.split_k = 1;
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, unsplit), 0u);
  // The program holds the second pass only when split; both are deterministic.
  const std::string source = generator.emit(desc, variant);
  const std::string reduce_entry = std::string(WgmmaGenerator::reduce_entry_point) + "(";
  EXPECT_NE(source.find(reduce_entry), std::string::npos);
  EXPECT_EQ(generator.emit(desc, unsplit).find(reduce_entry), std::string::npos);
  EXPECT_EQ(source, generator.emit(desc, variant));
  // Splits are searched only for grids under two waves, each split keeping >= 4 stages.
  int splits = 0;
  for (const CudaVariant& listed : generator.candidates(desc)) {
    splits += listed.split_k > 1;
    EXPECT_GE((14336 + listed.block_k - 1) / listed.block_k / listed.split_k, 4) << variant_name(desc, listed, "sm_90a");
  }
  EXPECT_GT(splits, 0);
  for (const CudaVariant& listed :
       generator.candidates(descriptor("m=4096,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16")))
    EXPECT_EQ(listed.split_k, 1);  // thousands of tiles already
  // At large M the heuristic does not split.
  EXPECT_EQ(generator.heuristic(descriptor("m=1024,n=28672,k=4096,bits=4,group=128,act=bf16")).split_k, 1);
}

// A stream-K variant of a tile shape (n x m x k, stages) with `blocks` persistent blocks, on the
// all-thread ring (producer = 0) or with the copy warpgroup (1).
CudaVariant stream_k_variant(int block_n, int block_m, int block_k, int stages, int blocks, int producer = 0) {
  CudaVariant variant;
  variant.producer = producer;
  variant.family = CudaFamily::wgmma;
  variant.warps = block_n / 16;
  variant.block_n = block_n;
  variant.block_m = block_m;
  variant.block_k = block_k;
  variant.stages = stages;
  variant.stream_k = blocks;
  return variant;
}
// The hybrid schedule of that: the full waves' tiles whole, the rest shared by min(blocks,
// split x remaining tiles) blocks.
CudaVariant hybrid_variant(int block_n, int block_m, int block_k, int stages, int blocks, int split, int producer = 0) {
  CudaVariant variant = stream_k_variant(block_n, block_m, block_k, stages, blocks, producer);
  variant.remainder_split = split;
  return variant;
}

// variant with its stream-K runs planned (stream_k_plan = 1).
CudaVariant planned(CudaVariant variant) {
  variant.stream_k_plan = 1;
  return variant;
}

// stream_k: "_sk<blocks>" in the name, JSON stored before the field reads 0, a grid of stream_k
// blocks, the workspace of their flags and partial tiles, refusals with reasons, and the pruning
// of the candidates (from M=256, tall all-thread tiles, grids that leave SMs idle under 4 waves).
TEST(CudaWgmmaCompile, StreamKNamesJsonGeometryWorkspaceAndPruning) {
  WgmmaGenerator generator;
  const OpDesc desc = descriptor("m=1024,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16");  // 192 tiles of 256 x 128
  const CudaVariant variant = stream_k_variant(128, 256, 64, 4, 132);
  ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << generator.is_valid(desc, variant, 9).reason;
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_sk132");
  expect_json_round_trip(variant, "stream_k", &CudaVariant::stream_k, 0);
  const LaunchGeometry geometry = generator.launch_geometry(desc, variant);
  EXPECT_EQ(geometry.grid_x, 132u);
  EXPECT_EQ(geometry.grid_y, 1u);
  EXPECT_EQ(geometry.grid_z, 1u);
  EXPECT_EQ(geometry.threads, 256u);
  // 132 flags of 8 bytes padded to 1280, then a 256 x 128 fp32 tile per block.
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, variant), std::size_t{1280} + std::size_t{132} * 256 * 128 * 4);
  const std::vector<CudaVariant> listed = generator.candidates(desc);
  EXPECT_NE(std::find(listed.begin(), listed.end(), variant), listed.end());
  // The source: the schedule's block count and entry only in a stream-K program.
  CudaVariant tiled = variant;
  tiled.stream_k = 0;
  EXPECT_NE(generator.emit(desc, variant).find("static constexpr int STREAM_K = 132;"), std::string::npos);
  EXPECT_NE(generator.emit(desc, variant).find("wgmma_stream_k<LowbitConfig>"), std::string::npos);
  EXPECT_EQ(generator.emit(desc, tiled).find("static constexpr int STREAM_K"), std::string::npos);
  EXPECT_EQ(generator.emit(desc, tiled).find("wgmma_stream_k<LowbitConfig>"), std::string::npos);
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, tiled), 0u);

  auto reason = [&](const WgmmaGenerator& by, const OpDesc& on, const CudaVariant& tried) {
    const Validity validity = by.is_valid(on, tried, 9);
    EXPECT_FALSE(validity) << variant_name(on, tried, "sm_90a");
    return validity.reason;
  };
  CudaVariant split = variant;
  split.split_k = 2;
  EXPECT_NE(reason(generator, desc, split).find("without a split"), std::string::npos);
  // With the copy warpgroup: "_ws" before "_sk", 128 more threads, the same workspace (the
  // partial slots are the consumer threads' accumulators), its mbarriers in the shared memory.
  const CudaVariant specialized = stream_k_variant(128, 256, 64, 4, 132, 1);
  ASSERT_TRUE(generator.is_valid(desc, specialized, 9)) << generator.is_valid(desc, specialized, 9).reason;
  EXPECT_EQ(variant_name(desc, specialized, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws_sk132");
  EXPECT_EQ(variant_name(desc, hybrid_variant(128, 256, 64, 4, 132, 2, 1), "sm_90a"),
            "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws_sk132r2");
  EXPECT_EQ(variant_from_json(to_json(specialized)), specialized);
  EXPECT_EQ(generator.launch_geometry(desc, specialized).grid_x, 132u);
  EXPECT_EQ(generator.launch_geometry(desc, specialized).threads, 384u);
  EXPECT_EQ(generator.launch_geometry(desc, specialized).shared_bytes,
            generator.launch_geometry(desc, variant).shared_bytes + 4u * 2u * 8u);
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, specialized), WgmmaGenerator::workspace_bytes(desc, variant));
  EXPECT_NE(generator.emit(desc, specialized).find("__launch_bounds__(384, 1)"), std::string::npos);
  EXPECT_NE(generator.emit(desc, specialized).find("static constexpr int PRODUCER = 1;"), std::string::npos);
  EXPECT_NE(generator.emit(desc, specialized).find("wgmma_stream_k<LowbitConfig>"), std::string::npos);
  CudaVariant split_specialized = specialized;
  split_specialized.split_k = 2;
  EXPECT_NE(reason(generator, desc, split_specialized).find("without a split"), std::string::npos);
  EXPECT_NE(reason(generator, desc, stream_k_variant(128, 256, 64, 4, 133)).find("1..132"), std::string::npos);
  EXPECT_NE(reason(WgmmaGenerator(96), desc, variant).find("1..96"), std::string::npos);
  EXPECT_NE(reason(generator, desc, stream_k_variant(128, 256, 64, 4, -1)).find("stream_k=-1"), std::string::npos);
  // One tile of one stage pair: a second block would have nothing to do.
  const OpDesc tiny = descriptor("m=1,n=16,k=64,bits=4,group=64,act=bf16");
  EXPECT_TRUE(generator.is_valid(tiny, stream_k_variant(128, 256, 64, 4, 1), 9));
  EXPECT_NE(reason(generator, tiny, stream_k_variant(128, 256, 64, 4, 2)).find("1 iterations"), std::string::npos);
  CudaVariant gemv;
  gemv.stream_k = 4;
  EXPECT_NE(family_field_misuse(gemv).find("stream_k=4"), std::string::npos);
  gemv.stream_k = 0;
  gemv.remainder_split = 2;
  EXPECT_NE(family_field_misuse(gemv).find("remainder_split=2"), std::string::npos);

  // remainder_split: "r<split>" after the blocks, JSON stored before the field reads 0, the same
  // grid and workspace as plain stream-K, the constant only where it is set, and refusals.
  const CudaVariant hybrid = hybrid_variant(128, 256, 64, 4, 132, 2);
  ASSERT_TRUE(generator.is_valid(desc, hybrid, 9)) << generator.is_valid(desc, hybrid, 9).reason;
  EXPECT_EQ(variant_name(desc, hybrid, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_sk132r2");
  expect_json_round_trip(hybrid, "remainder_split", &CudaVariant::remainder_split, 0);
  EXPECT_EQ(generator.launch_geometry(desc, hybrid).grid_x, 132u);
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, hybrid), WgmmaGenerator::workspace_bytes(desc, variant));
  EXPECT_NE(generator.emit(desc, hybrid).find("static constexpr int REMAINDER_SPLIT = 2;"), std::string::npos);
  EXPECT_NE(generator.emit(desc, variant).find("static constexpr int REMAINDER_SPLIT = 0;"), std::string::npos);
  EXPECT_NE(std::find(listed.begin(), listed.end(), hybrid), listed.end());
  EXPECT_EQ(std::find(listed.begin(), listed.end(), hybrid_variant(128, 256, 64, 4, 132, 3)), listed.end());
  // A grid that cuts no tile needs no workspace (its blocks never deposit or read a partial):
  // 192 tiles on 96 blocks (two whole tiles each), or a hybrid whose 60 remaining tiles go one to
  // a block; 192 on 132 (plain) or remaining tiles halved (r = 2) cut tiles and keep the layout.
  EXPECT_TRUE(WgmmaGenerator::cuts_no_tile(desc, stream_k_variant(128, 256, 64, 4, 96, 1)));
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, stream_k_variant(128, 256, 64, 4, 96, 1)), 0u);
  EXPECT_TRUE(WgmmaGenerator::cuts_no_tile(desc, hybrid_variant(128, 256, 64, 4, 132, 1, 1)));
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, hybrid_variant(128, 256, 64, 4, 132, 1, 1)), 0u);
  EXPECT_FALSE(WgmmaGenerator::cuts_no_tile(desc, variant));
  EXPECT_FALSE(WgmmaGenerator::cuts_no_tile(desc, hybrid));
  EXPECT_FALSE(WgmmaGenerator::cuts_no_tile(desc, tiled));
  EXPECT_EQ(WgmmaGenerator::stream_k_layout_bytes(variant), WgmmaGenerator::workspace_bytes(desc, variant));
  EXPECT_EQ(WgmmaGenerator::stream_k_layout_bytes(stream_k_variant(128, 256, 64, 4, 96, 1)),
            std::size_t{768} + std::size_t{96} * 256 * 128 * 4);
  CudaVariant unstreamed = hybrid;
  unstreamed.stream_k = 0;
  EXPECT_NE(reason(generator, desc, unstreamed).find("needs stream_k"), std::string::npos);
  EXPECT_NE(reason(generator, desc, hybrid_variant(128, 256, 64, 4, 132, 9)).find("1..8"), std::string::npos);
  // 128 tiles on 4096 columns: no full wave of 132; 264 tiles on 8448: two whole waves, no remainder.
  EXPECT_NE(reason(generator, descriptor("m=1024,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16"), hybrid)
                .find("no full wave"),
            std::string::npos);
  EXPECT_NE(reason(generator, descriptor("m=1024,n=8448,k=4096,bits=4,group=128,zero=int,act=bf16"), hybrid)
                .find("no full wave"),
            std::string::npos);
  // 8 tiles on 7 blocks, one stage pair each: the remaining tile has 1 iteration for 2 blocks.
  EXPECT_NE(reason(generator, descriptor("m=1,n=1024,k=64,bits=4,group=64,act=bf16"),
                   hybrid_variant(128, 256, 64, 4, 7, 2))
                .find("each needs one"),
            std::string::npos);

  // The stream-K candidates of one ring (producer 0 or 1), even runs (their planned twins:
  // PlannedStreamKNamesJsonSourceAndRefusals).
  auto stream_k_candidates = [&](const char* text, int producer) {
    const OpDesc on = descriptor(std::string("bits=4,group=128,zero=int,act=bf16,") + text);
    int count = 0;
    for (const CudaVariant& candidate : generator.candidates(on)) {
      if (candidate.stream_k == 0 || candidate.producer != producer || candidate.stream_k_plan == 1) continue;
      ++count;
      EXPECT_GE(candidate.block_m, 128);
      EXPECT_EQ(candidate.split_k, 1);
    }
    return count;
  };
  // 64 x 128 tiles: 768, over 4 waves; the other four over a wave, each with its hybrid (r = 2).
  EXPECT_EQ(stream_k_candidates("m=1024,n=6144,k=4096", 0), 4 + 4);
  // Every copy-warpgroup shape (384 or 192 tiles: under 8 waves), each with its hybrid; and the
  // 384-tile grids' 3 whole tiles on each of 128 blocks (192 tiles: 2 waves, too few).
  EXPECT_EQ(stream_k_candidates("m=1024,n=6144,k=4096", 1), 5 + 5 + 3);
  EXPECT_EQ(stream_k_candidates("m=255,n=6144,k=4096", 0), 0);  // below 256 rows
  // 96 or 48 tiles, under a wave: no hybrid.
  EXPECT_EQ(stream_k_candidates("m=255,n=6144,k=4096", 1), 5);
  EXPECT_EQ(stream_k_candidates("m=128,n=6144,k=4096", 1), 2);  // the 128-row tiles (48)
  EXPECT_EQ(stream_k_candidates("m=127,n=6144,k=4096", 1), 0);  // below 128 rows
  for (int producer : {0, 1}) {
    // 33 x 128 columns: 132, 264 or 528 tiles, whole waves (at most 2: no whole-tile grid)
    EXPECT_EQ(stream_k_candidates("m=1024,n=4224,k=4096", producer), 0);
  }
  // Thousands of tiles: only the copy warpgroup's whole tiles a block, where they split evenly
  // (3584 tiles of 256 x 128 in 28 waves of 128 blocks; 7168 of 128 x 128 in 55 do not).
  EXPECT_EQ(stream_k_candidates("m=4096,n=28672,k=4096", 0), 0);
  EXPECT_EQ(stream_k_candidates("m=4096,n=28672,k=4096", 1), 2);
  // 768 tiles of 256 x 128 at M = 4096 on 6144 columns (5.8 waves): the copy warpgroup's only,
  // and every copy-warpgroup shape's whole tiles on 128 blocks (6 or 12 a block).
  EXPECT_EQ(stream_k_candidates("m=4096,n=6144,k=4096", 0), 0);
  EXPECT_EQ(stream_k_candidates("m=4096,n=6144,k=4096", 1), 2 + 2 + 5);
  // 512 tiles at M = 4096 on 4096 columns: 4 whole tiles on each of 128 blocks.
  const std::vector<CudaVariant> large = generator.candidates(descriptor("m=4096,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16"));
  EXPECT_NE(std::find(large.begin(), large.end(), stream_k_variant(128, 256, 64, 4, 128, 1)), large.end());
}

// The heuristic's tile and schedule past 256 rows (WgmmaGenerator::heuristic, session 9's
// measurements on the H100): the 128-row warp-specialized tile where the 256-row one pads a
// quarter of its rows more or needs a split the 128-row grid does not; the hybrid stream-K only
// where its last phase is short against the even share.
// stream_k_plan: "p" after the schedule in the name, JSON stored before the field reads 0, the
// planned runs' table in the source (the sharing blocks' beginnings and the end), planned twins
// of the copy warpgroup's stream-K candidates, refusals with reasons.
TEST(CudaWgmmaCompile, PlannedStreamKNamesJsonSourceAndRefusals) {
  WgmmaGenerator generator;
  const OpDesc desc = descriptor("m=1024,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16");  // 192 tiles of 256 x 128
  const CudaVariant hybrid = planned(hybrid_variant(128, 256, 64, 4, 132, 2, 1));
  ASSERT_TRUE(generator.is_valid(desc, hybrid, 9)) << generator.is_valid(desc, hybrid, 9).reason;
  EXPECT_EQ(variant_name(desc, hybrid, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws_sk132r2p");
  expect_json_round_trip(hybrid, "stream_k_plan", &CudaVariant::stream_k_plan, 0);
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, hybrid), WgmmaGenerator::stream_k_layout_bytes(hybrid));
  // 60 remaining tiles halved over 120 blocks: 121 beginnings, the owners' pieces the longer.
  const std::string source = generator.emit(desc, hybrid);
  EXPECT_NE(source.find("__constant__ long long lowbit_stream_k_runs[121] = {0, 17, 32, 49, 64,"), std::string::npos);
  EXPECT_NE(source.find("static constexpr int STREAM_K_PLAN = 1;"), std::string::npos);
  CudaVariant even = hybrid;
  even.stream_k_plan = 0;
  EXPECT_NE(generator.emit(desc, even).find("static constexpr int STREAM_K_PLAN = 0;"), std::string::npos);
  EXPECT_EQ(generator.emit(desc, even).find("lowbit_stream_k_runs"), std::string::npos);
  const std::vector<CudaVariant> listed = generator.candidates(desc);
  EXPECT_NE(std::find(listed.begin(), listed.end(), hybrid), listed.end());
  for (const CudaVariant& variant : listed)
    if (variant.stream_k_plan == 1) {
      EXPECT_EQ(variant.producer, 1) << variant_name(desc, variant, "sm_90a");
      CudaVariant twin = variant;
      twin.stream_k_plan = 0;
      EXPECT_NE(std::find(listed.begin(), listed.end(), twin), listed.end()) << variant_name(desc, variant, "sm_90a");
    }

  auto reason = [&](const OpDesc& on, const CudaVariant& tried) {
    const Validity validity = generator.is_valid(on, tried, 9);
    EXPECT_FALSE(validity) << variant_name(on, tried, "sm_90a");
    return validity.reason;
  };
  CudaVariant tiled = hybrid;
  tiled.stream_k = 0, tiled.remainder_split = 0;
  EXPECT_NE(reason(desc, tiled).find("needs stream_k > 0"), std::string::npos);
  CudaVariant two = hybrid;
  two.stream_k_plan = 2;
  EXPECT_NE(reason(desc, two).find("must be 0 (even runs) or 1"), std::string::npos);
  CudaVariant whole = hybrid;  // 192 tiles on 96 blocks: two whole tiles a block
  whole.stream_k = 96, whole.remainder_split = 0;
  EXPECT_NE(reason(desc, whole).find("no fix-up to plan around"), std::string::npos);
  CudaVariant gemv;
  gemv.stream_k_plan = 1;
  EXPECT_NE(family_field_misuse(gemv).find("stream_k_plan=1"), std::string::npos);
}

TEST(CudaWgmmaCompile, HeuristicShorterTileAndHybridRules) {
  WgmmaGenerator generator;
  auto chosen = [&](const char* text) {
    const OpDesc desc = descriptor(std::string("bits=4,group=128,zero=int,act=bf16,") + text);
    return variant_name(desc, generator.heuristic(desc), "sm_90a");
  };
  // (Each stream-K grid with its runs planned: with_planned_runs.)
  // A tiled grid of the copy warpgroup's 256-row (n128m256k64) or 128-row (n128m128k128) tile.
  auto variant_of_rows = [](int rows) { return stream_k_variant(128, rows, rows == 256 ? 64 : 128, 4, 0, 1); };
  // The 128-row tile where the 256-row one pads a quarter of its rows more (M = 257..384), or
  // fills the SMs only split where the 128-row grid fills them unsplit for the same work a block.
  EXPECT_EQ(chosen("m=384,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m384_n128m128k128_s4_ws_sk132p");  // 96 tiles
  EXPECT_EQ(chosen("m=384,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m384_n128m128k128_s4_ws_sk132p");  // 144 tiles
  EXPECT_EQ(chosen("m=512,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m512_n128m128k128_s4_ws");  // 128 unsplit
  EXPECT_EQ(chosen("m=385,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m385_n128m128k128_s4_ws");  // 128 unsplit
  EXPECT_EQ(chosen("m=640,n=4096,k=4096"), "cuda_sm90a_wgmma_w4g128_m640_n128m256k64_s4_ws_sk132p");  // a sixth padded
  EXPECT_EQ(chosen("m=512,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m512_n128m256k64_s4_ws_sk132p");  // unsplit: stays
  // But the 256-row tile stays, padded, where its grid runs three waves or more (448 tiles on
  // 28672 columns, the hybrid, against 672 of 128 rows tiled): as at 385..512 rows.
  for (const char* rows : {"257", "300", "384", "385"})
    EXPECT_EQ(chosen((std::string("n=28672,k=4096,m=") + rows).c_str()),
              std::string("cuda_sm90a_wgmma_w4g128_m") + rows + "_n128m256k64_s4_ws_sk132r2p");
  EXPECT_EQ(chosen("m=257,n=25216,k=4096"), "cuda_sm90a_wgmma_w4g128_m257_n128m128k128_s4_ws");  // 394 tiles
  // The hybrid only where its last phase is short: 144 tiles on 132 blocks leave 12 (1.5 tiles a
  // block against stream-K's 1.09), 192 leave 60 (1.5 against 1.45), 224 leave 92 (1.70 each).
  EXPECT_EQ(chosen("m=768,n=6144,k=4096"), "cuda_sm90a_wgmma_w4g128_m768_n128m256k64_s4_ws_sk132p");
  const OpDesc llama = descriptor("m=768,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16");
  EXPECT_FALSE(WgmmaGenerator::hybrid_pays(llama, hybrid_variant(128, 256, 64, 4, 132, 2, 1)));
  EXPECT_TRUE(WgmmaGenerator::hybrid_pays(descriptor("m=1024,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16"),
                                          hybrid_variant(128, 256, 64, 4, 132, 2, 1)));
  EXPECT_FALSE(WgmmaGenerator::pads_a_quarter_more(llama, variant_of_rows(256), variant_of_rows(128)));
  EXPECT_TRUE(WgmmaGenerator::pads_a_quarter_more(descriptor("m=257,n=64,k=128,bits=4,act=bf16"), variant_of_rows(256),
                                                  variant_of_rows(128)));
  EXPECT_EQ(generator.block_work(llama, variant_of_rows(256)), 2 * 256 * 4096);  // 144 tiles: two waves
}

// Every stream-K shape of the candidates, hybrids included, compiles at a K tail with whole-K
// groups, fp16, and a block count below the SMs' (a block runs through several tiles).
TEST(CudaWgmmaCompile, StreamKVariantsCompileForHopper) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  const OpDesc desc = descriptor("m=513,n=4095,k=4104,bits=4,group=-1,zero=float,act=fp16,out=fp16,bias=1");
  std::vector<CudaVariant> variants;
  for (const CudaVariant& candidate : generator.candidates(desc))
    if (candidate.stream_k != 0) variants.push_back(candidate);
  // All-thread: 5 shapes; the 160 tiles of the two 128 x 128 shapes, 320 of 64 x 128 and 192 of
  // 64 x 256 leave 28, 56 and 60 over whole waves: a hybrid (r = 2) each. Copy warpgroup: 5
  // shapes, a hybrid for the 160 tiles of each 128 x 128 and the 192 of 64 x 256 (not the 96 of
  // 128 x 256); each of the copy warpgroup's 8 also with planned runs.
  ASSERT_EQ(variants.size(), 5u + 4u + 5u + 3u + 8u);
  variants.push_back(hybrid_variant(128, 128, 64, 5, 132, 3));
  variants.push_back(stream_k_variant(128, 128, 64, 5, 7));
  variants.push_back(hybrid_variant(128, 256, 64, 4, 7, 1));
  variants.push_back(stream_k_variant(128, 128, 64, 6, 7, 1));
  variants.push_back(hybrid_variant(128, 256, 64, 5, 7, 3, 1));
  std::vector<testing::Program> programs;  // compiled several at once (compile_failures)
  for (const CudaVariant& variant : variants) {
    ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << variant_name(desc, variant, "sm_90a");
    programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, "sm_90a"), "sm_90a"});
  }
  EXPECT_EQ(testing::compile_failures(programs), "");
}

// producer = 1: a copy warpgroup after the consumers (threads + 128), two mbarriers per slot in
// shared memory, "_ws" in the name; JSON stored before the field reads 0.
TEST(CudaWgmmaCompile, WarpSpecializedNamesJsonAndGeometry) {
  WgmmaGenerator generator;
  OpDesc desc = descriptor("m=1024,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  CudaVariant variant = generator.heuristic(desc);
  ASSERT_EQ(variant.producer, 1);  // the heuristic's from 65 rows where the tiled grid is kept
  ASSERT_TRUE(generator.is_valid(desc, variant, 9));
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4_ws");
  expect_json_round_trip(variant, "producer", &CudaVariant::producer, 0);
  const LaunchGeometry geometry = generator.launch_geometry(desc, variant);
  EXPECT_EQ(geometry.threads, 384u);                       // 2 consumer warpgroups + the producer
  EXPECT_EQ(geometry.shared_bytes, 4u * 37888u + 1024u + 64u);  // + 8 mbarriers of 8 bytes
  CudaVariant plain = variant;
  plain.producer = 0;
  EXPECT_NE(generator.emit(desc, variant), generator.emit(desc, plain));
  // Searched for tall tiles only: none below 128 rows.
  int specialized = 0;
  for (const CudaVariant& listed : generator.candidates(descriptor("m=64,n=4096,k=4096,bits=4,group=128,act=bf16")))
    specialized += listed.producer;
  EXPECT_EQ(specialized, 0);
  for (const CudaVariant& listed : generator.candidates(desc))
    specialized += listed.producer && listed.split_k == 1 && listed.stream_k == 0;
  EXPECT_EQ(specialized, 5);  // every warp-specialized shape, unsplit (128-row tiles split too: 4 x 32 tiles)
}

TEST(CudaWgmmaCompile, SplitVariantsCompileForHopper) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  int compiled = 0;
  for (const char* text : {"m=64,n=4096,k=14336,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=33,n=1001,k=4104,group=-1,zero=float,act=fp16,out=fp32,bias=0"}) {
    OpDesc desc = descriptor(std::string("bits=4,") + text);
    for (int split : {2, 4, 8}) {
      // The heuristic's tile, split across blocks (where it takes stream-K, as at m=255 here,
      // its tiled grid: a split excludes stream-K).
      CudaVariant variant = generator.heuristic(desc);
      variant.stream_k = 0;
      variant.remainder_split = 0;
      variant.split_k = split;
      variant.cluster_split = 0;  // the second kernel's sum (cluster splits: ClusterSplit* tests)
      if (!generator.is_valid(desc, variant, 9)) continue;  // k=4104: 33 stages of 128, too few for 8
      EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(desc, variant), "split", "sm_90a"))) << text;
      ++compiled;
    }
  }
  EXPECT_EQ(compiled, 5);
}

// A cluster split (cluster_split = 1): "_cs<split>" in the name, JSON stored before the field
// reads 0, the split's grid in clusters of (1, 1, split), no workspace and no second kernel, and
// refusals naming the reason: no split, a split over the portable cluster size, stream-K, an
// accumulator larger than the ring, a value other than 0 or 1, another family.
TEST(CudaWgmmaCompile, ClusterSplitNamesJsonGeometryAndRefusals) {
  WgmmaGenerator generator;
  OpDesc desc = descriptor("m=256,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,bias=1");
  CudaVariant variant;
  variant.family = CudaFamily::wgmma;
  variant.warps = 8, variant.block_n = 128, variant.block_m = 256, variant.block_k = 64, variant.stages = 4;
  variant.split_k = 4, variant.producer = 1, variant.cluster_split = 1;
  ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << generator.is_valid(desc, variant, 9).reason;
  EXPECT_FALSE(generator.is_valid(desc, variant, 8));
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m256_n128m256k64_s4_cs4_ws");
  expect_json_round_trip(variant, "cluster_split", &CudaVariant::cluster_split, 0);
  const LaunchGeometry geometry = generator.launch_geometry(desc, variant);
  EXPECT_EQ(geometry.grid_x, 1u);
  EXPECT_EQ(geometry.grid_y, 32u);
  EXPECT_EQ(geometry.grid_z, 4u);
  EXPECT_EQ(geometry.cluster_z, 4u);
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(desc, variant), 0u);
  const std::string source = generator.emit(desc, variant);
  EXPECT_NE(source.find("CLUSTER_SPLIT = 1"), std::string::npos);
  EXPECT_EQ(source.find(std::string(WgmmaGenerator::reduce_entry_point) + "("), std::string::npos);  // no second kernel
  CudaVariant plain = variant;
  plain.cluster_split = 0;
  EXPECT_EQ(generator.launch_geometry(desc, plain).cluster_z, 1u);
  EXPECT_GT(WgmmaGenerator::workspace_bytes(desc, plain), 0u);
  auto refused = [&](const CudaVariant& bad, const char* words) { expect_refused(generator, desc, bad, words); };
  CudaVariant unsplit = variant;
  unsplit.split_k = 1;
  refused(unsplit, "split_k must be 2..8");
  CudaVariant other_value = variant;
  other_value.cluster_split = 2;
  refused(other_value, "must be 0");
  CudaVariant streamed = variant;
  streamed.split_k = 1;
  streamed.stream_k = 132;
  refused(streamed, "split_k must be 2..8");  // (with a split, stream-K's own check refuses it)
  streamed.split_k = 2;
  refused(streamed, "runs without a split");
  CudaVariant shallow = variant;  // 3 stages of 37 KiB hold less than the 128 KiB accumulator
  shallow.stages = 3;
  refused(shallow, "does not fit");
  CudaVariant mma = variant;
  mma.family = CudaFamily::mma;
  mma.split_k = 1, mma.producer = 0;
  EXPECT_NE(family_field_misuse(mma).find("cluster_split"), std::string::npos) << family_field_misuse(mma);
}

// Cluster splits through NVRTC: a 16-row tile (2 fragments a thread, fewer than 4 and 8 splits:
// the interleaved owners), the 256-row copy-warpgroup tile, the all-thread 128-row tile, each
// format kind once.
TEST(CudaWgmmaCompile, ClusterSplitVariantsCompileForHopper) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  int compiled = 0;
  for (const char* text : {"m=16,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=256,n=1001,k=4104,bits=8,group=-1,zero=float,act=fp16,out=fp32,bias=0",
                           "m=129,n=4096,k=4096,bits=2,group=64,zero=none,act=bf16,out=fp16,bias=1"}) {
    const OpDesc desc = descriptor(text);
    for (const CudaVariant& variant : generator.candidates(desc)) {
      if (variant.cluster_split == 0 || (variant.block_m != 16 && variant.block_m != 256 && variant.block_m != 128))
        continue;
      if (variant.block_m == 128 && variant.producer == 1) continue;
      EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(desc, variant), "cluster", "sm_90a")))
          << variant_name(desc, variant, "sm_90a");
      ++compiled;
    }
  }
  EXPECT_GE(compiled, 6);
}

// m=0 (any M): the tiled grid, a split (its partials and second kernel sized by the call's rows)
// or a cluster split, and stream-K only laid out for a range's top rows; never a candidate; the
// entry points then take the rows.
TEST(CudaWgmmaCompile, AnyMIsTheTiledGridASplitOrARunTimeStreamK) {
  WgmmaGenerator generator;
  int splits = 0;
  int run_time = 0;
  for (const char* text : {"m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16",
                           "m=0,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16"}) {
    const OpDesc any = descriptor(text);
    EXPECT_TRUE(generator.candidates(any).empty());
    for (int64_t rows : {32, 64, 128, 256, 1024}) {
      const CudaVariant tile = generator.any_rows_tile(any, rows);
      EXPECT_EQ(tile.schedule_rows, 0) << text << " " << rows;  // an open range: no top to lay out for
      EXPECT_TRUE(generator.is_valid(any, tile, 9)) << rows << ": " << generator.is_valid(any, tile, 9).reason;
      // The exact heuristic's tile at that M: tiled where it is, its split where it splits K, its
      // stream-K grid with even runs (laid out at run time) where it streams K.
      OpDesc sized = any;
      sized.m = rows;
      const CudaVariant exact = generator.heuristic(sized);
      EXPECT_EQ(tile.block_m, exact.block_m) << text << " " << rows;
      EXPECT_EQ(tile.split_k, exact.split_k) << text << " " << rows;
      EXPECT_EQ(tile.cluster_split, exact.cluster_split) << text << " " << rows;
      EXPECT_EQ(tile.stream_k, exact.stream_k) << text << " " << rows;
      EXPECT_EQ(tile.remainder_split, exact.remainder_split) << text << " " << rows;
      EXPECT_EQ(tile.stream_k_plan, 0) << text << " " << rows;
      splits += tile.split_k > 1 && tile.cluster_split == 0;
      run_time += tile.stream_k != 0;
    }
  }
  EXPECT_GE(splits, 2);    // 4096x14336 splits K at 32 and 64 rows
  EXPECT_GE(run_time, 4);  // both shapes stream K from 128 rows
  // A split's partials are sized by the call's rows, and its second kernel takes them.
  const OpDesc long_k = descriptor("m=0,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16");
  const CudaVariant deep = generator.any_rows_tile(long_k, 64);
  ASSERT_EQ(deep.split_k, 4);
  EXPECT_EQ(deep.cluster_split, 0);
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(long_k, deep), 0u);
  OpDesc at_rows = long_k;
  at_rows.m = 200;
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(at_rows, deep), std::size_t{4} * 200 * 4096 * 4);
  const std::string deep_source = generator.emit(long_k, deep);
  EXPECT_NE(deep_source.find("lowbit_split_reduce(const float* partials, const void* bias, void* y, int rows)"),
            std::string::npos);
  EXPECT_NE(deep_source.find("wgmma_split_reduce<LowbitConfig>(partials, bias, y, rows)"), std::string::npos);
  // A run-time stream-K grid: the call's rows as the entry's tenth parameter, no SCHEDULE_ROWS, no
  // planned table; its workspace the flags and a partial tile a block whatever the rows (a tile
  // is cut at some row count), even where the hybrid's remaining tiles run one a block
  // (remainder_split=1): at row counts where the hybrid does not pay, every tile is shared.
  const OpDesc any = descriptor("m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16");
  const CudaVariant tile = generator.any_rows_tile(any, 1024);
  ASSERT_EQ(tile.stream_k, 132);
  ASSERT_EQ(tile.remainder_split, 2);
  EXPECT_EQ(variant_name(any, tile, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m0_n128m256k64_s4_ws_sk132r2");
  const std::string source = generator.emit(any, tile);
  EXPECT_NE(source.find("unsigned long long token, int rows)"), std::string::npos);
  EXPECT_EQ(source.find("static constexpr int SCHEDULE_ROWS"), std::string::npos);
  EXPECT_EQ(source.find("lowbit_stream_k_runs"), std::string::npos);
  OpDesc exact = any;
  exact.m = 1024;
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(any, tile),
            WgmmaGenerator::workspace_bytes(exact, generator.heuristic(exact)));
  EXPECT_GT(WgmmaGenerator::workspace_bytes(any, tile), 0u);
  CudaVariant one_each = tile;
  one_each.remainder_split = 1;
  EXPECT_EQ(WgmmaGenerator::workspace_bytes(any, one_each), WgmmaGenerator::workspace_bytes(any, tile));
  auto refusal = [&](auto change) {
    CudaVariant changed = tile;
    change(changed);
    return generator.is_valid(any, changed, 9).reason;
  };
  // Any blocks and remainder split are laid out at run time; a planned table is refused.
  EXPECT_EQ(refusal([](CudaVariant& v) { v.stream_k = 7, v.remainder_split = 8; }), "");
  EXPECT_EQ(refusal([](CudaVariant& v) { v.stream_k = 1, v.remainder_split = 0; }), "");
  const std::string planned = refusal([](CudaVariant& v) { v.stream_k_plan = 1; });
  EXPECT_NE(planned.find("m=0 (any M) with stream_k=132 and stream_k_plan=1"), std::string::npos) << planned;
  EXPECT_NE(refusal([](CudaVariant& v) { v.stream_k = 133; }).find("stream_k=133: must be 0 (off) or 1..132"),
            std::string::npos);
  OpDesc negative = any;
  negative.m = -1;
  EXPECT_FALSE(generator.is_valid(negative, tile, 9).ok);
}

// A range with a top (at_most_rows): where the heuristic streams K, the any-M kernel is that very
// stream-K grid, its schedule laid out for the top's rows (schedule_rows), its source taking the
// call's rows; an open range takes the grid with even runs, laid out at run time. schedule_rows
// only at m=0 with stream-K.
TEST(CudaWgmmaCompile, AnyMRangeWithATopStreamsKLaidOutForItsRows) {
  WgmmaGenerator generator;
  int streamed = 0;
  for (const char* text : {"m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16",
                           "m=0,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16",
                           "m=0,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16"}) {
    const OpDesc any = descriptor(text);
    for (int64_t rows : {32, 64, 128, 256, 384, 512, 768}) {
      OpDesc sized = any;
      sized.m = rows;
      const CudaVariant exact = generator.heuristic(sized);
      const CudaVariant tile = generator.any_rows_tile(any, rows, true);
      ASSERT_TRUE(generator.is_valid(any, tile, 9)) << text << " " << rows << ": " << generator.is_valid(any, tile, 9).reason;
      if (exact.stream_k == 0) {
        EXPECT_EQ(tile, generator.any_rows_tile(any, rows)) << text << " " << rows;
        continue;
      }
      CudaVariant expected = exact;
      expected.schedule_rows = static_cast<int>(rows);
      EXPECT_EQ(tile, expected) << text << " " << rows;
      // An open range: the same grid with even runs, laid out at run time.
      const CudaVariant open = generator.any_rows_tile(any, rows);
      EXPECT_EQ(open.stream_k, exact.stream_k) << text << " " << rows;
      EXPECT_EQ(open.schedule_rows, 0) << text << " " << rows;
      EXPECT_EQ(open.stream_k_plan, 0) << text << " " << rows;
      // Its workspace is the exact kernel's (flags and partial tiles, or none for whole tiles).
      EXPECT_EQ(WgmmaGenerator::workspace_bytes(any, tile), WgmmaGenerator::workspace_bytes(sized, exact)) << text;
      ++streamed;
    }
  }
  EXPECT_GE(streamed, 8);  // 6144x4096 from 128 rows, 28672x4096 but at 384, 4096x14336 at 128..384
  // 257..384, 385..512 and 513..768 (runtime/row_buckets.h): each range's kernel is the exact
  // kernel of every row count in it, its schedule laid out for the top (the same tile rows: 3,
  // then 4 of 128 or 2 of 256, then 3 of 256), on 6144x4096 (128-row tiles, then 256-row ones)
  // and 4096x14336.
  for (const char* text : {"m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16",
                           "m=0,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16"})
    for (const auto& [first, top] : {std::pair<int64_t, int64_t>{257, 384}, {385, 512}, {513, 768}}) {
      const OpDesc any = descriptor(text);
      CudaVariant range = generator.any_rows_tile(any, top, true);
      range.schedule_rows = 0;
      for (int64_t rows : {first, (first + top) / 2, top}) {
        OpDesc sized = any;
        sized.m = rows;
        EXPECT_EQ(range, generator.heuristic(sized)) << text << " " << rows;
      }
    }
  const OpDesc any = descriptor("m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16");
  const CudaVariant tile = generator.any_rows_tile(any, 256, true);
  ASSERT_NE(tile.stream_k, 0);
  EXPECT_EQ(variant_name(any, tile, "sm_90a").substr(variant_name(any, tile, "sm_90a").size() - 6), "_to256");
  expect_json_round_trip(tile, "schedule_rows", &CudaVariant::schedule_rows, 0);
  const std::string source = generator.emit(any, tile);
  EXPECT_NE(source.find("static constexpr int SCHEDULE_ROWS = 256;"), std::string::npos);
  EXPECT_NE(source.find("unsigned long long token, int rows)"), std::string::npos);
  EXPECT_NE(source.find("workspace, token, shared, rows)"), std::string::npos);
  OpDesc exact = any;
  exact.m = 256;
  CudaVariant unscheduled = tile;
  unscheduled.schedule_rows = 0;
  EXPECT_EQ(generator.emit(exact, unscheduled).find("static constexpr int SCHEDULE_ROWS"), std::string::npos);
  // Refused: schedule_rows at an exact M, without stream-K, below 1; planned runs at m=0 without it.
  for (const std::string& reason :
       {generator.is_valid(exact, tile, 9).reason,
        generator.is_valid(any, [&] { CudaVariant v = tile; v.stream_k = 0, v.remainder_split = 0, v.stream_k_plan = 0; return v; }(), 9).reason,
        generator.is_valid(any, [&] { CudaVariant v = tile; v.schedule_rows = -1; return v; }(), 9).reason})
    EXPECT_NE(reason.find("schedule_rows="), std::string::npos) << reason;
  EXPECT_NE(generator.is_valid(any, unscheduled, 9).reason.find("planned runs are laid out for one row count"),
            std::string::npos);
}

// A static_assert, appended to an emitted any-M stream-K program, that the template's run-time
// layout for m_tiles tile rows has these whole tiles and sharing blocks (message: what it checks).
std::string run_time_layout_assert(int64_t m_tiles, int64_t whole_tiles, int64_t sharing_blocks,
                                   const std::string& message) {
  return fmt::format(
      "static_assert(lowbit_gemv::StreamKSchedule<LowbitConfig>::run_time_layout({0}).whole_tiles == {1} && "
      "lowbit_gemv::StreamKSchedule<LowbitConfig>::run_time_layout({0}).sharing_blocks == {2}, \"{3}\");\n",
      m_tiles, whole_tiles, sharing_blocks, message);
}

// The open range's stream-K grid lays its schedule out for each call's rows
// (StreamKSchedule::run_time_layout) as the heuristic lays out an exact M's: at every row count
// where the exact heuristic streams K on the same tile, the same whole tiles (the hybrid's full
// waves) and sharing blocks (its remainder's; or whole tiles a block on fewer blocks; or all).
// Checked by NVRTC evaluating the template's layout in static_asserts: no GPU needed.
TEST(CudaWgmmaCompile, RunTimeStreamKLayoutChoosesAsTheHeuristic) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  int compared = 0;
  int tiled_compared = 0;
  // (4096x14336's open-range grid of 128 rows: stream-K on 96 tiles at 257..384 rows, and at
  // 385..512 one wave of 128 tiles, which the heuristic tiles.)
  for (const auto& [text, top] : {std::pair{"m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16", 1024},
                                 std::pair{"m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16", 512},
                                 std::pair{"m=0,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16", 1500},
                                 std::pair{"m=0,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16", 128}}) {
    const OpDesc any = descriptor(text);
    const CudaVariant tile = generator.any_rows_tile(any, top);
    ASSERT_NE(tile.stream_k, 0) << text << " " << top;
    ASSERT_EQ(tile.schedule_rows, 0);
    std::string checks;
    for (int64_t rows : {129, 256, 257, 300, 384, 385, 450, 512, 513, 700, 768, 900, 1024, 1300, 1500, 2048, 3000,
                         4096}) {
      OpDesc sized = any;
      sized.m = rows;
      const CudaVariant exact = generator.heuristic(sized);
      const bool same_tile =
          exact.block_m == tile.block_m && exact.block_n == tile.block_n && exact.block_k == tile.block_k;
      const int64_t tiles = (rows + tile.block_m - 1) / tile.block_m * ((any.n + tile.block_n - 1) / tile.block_n);
      const int64_t pairs = ((any.k + tile.block_k - 1) / tile.block_k + 1) / 2;
      // The tiled grid where the heuristic keeps it for filling its one or two waves to 0.9 or
      // more (more than 256 rows): the same tiles whole, one wave of them a block each.
      const int64_t waves = (tiles + tile.stream_k - 1) / tile.stream_k;
      const bool tiled_for_its_fill = exact.stream_k == 0 && exact.split_k == 1 && exact.cluster_split == 0 &&
                                      rows > 256 && waves <= 2 && 10 * tiles >= 9 * waves * tile.stream_k;
      if (!same_tile || (exact.stream_k == 0 && !tiled_for_its_fill) || exact.remainder_split > tile.remainder_split)
        continue;
      int64_t whole = 0;
      int64_t sharing = std::min<int64_t>(tile.stream_k, tiles * pairs);
      if (tiled_for_its_fill) {
        ++tiled_compared;
        ASSERT_EQ(tiles % waves, 0) << rows;  // a tiled wave splits evenly over its blocks
        sharing = tiles / waves;
      } else if (exact.remainder_split > 0) {
        whole = tiles / exact.stream_k * exact.stream_k;
        sharing = std::min<int64_t>(exact.stream_k, exact.remainder_split * (tiles - whole));
      } else if (exact.stream_k < tile.stream_k) {
        sharing = exact.stream_k;  // whole tiles a persistent block
      }
      checks += run_time_layout_assert((rows + tile.block_m - 1) / tile.block_m, whole, sharing,
                                       fmt::format("{} rows: {}", rows, variant_name(sized, exact, "sm_90a")));
      ++compared;
    }
    std::string error;
    try {
      compile_to_cubin(generator.emit(any, tile) + checks, "run_time_layout", "sm_90a");
    } catch (const Error& failure) {
      error = failure.what();
    }
    EXPECT_TRUE(error.empty()) << variant_name(any, tile, "sm_90a") << ":\n" << checks << error;
  }
  EXPECT_GE(compared, 12);
  EXPECT_GE(tiled_compared, 2);  // 4096x14336 at 385..512 rows
}

TEST(CudaWgmmaCompile, AnyMTilesCompileForHopper) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  for (const char* text : {"m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=0,n=28672,k=4104,bits=3,group=-1,zero=float,act=fp16,out=fp32",
                           "m=0,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16,out=bf16"}) {
    const OpDesc any = descriptor(text);
    for (int64_t rows : {32, 64, 256, 1024})
      for (bool at_most_rows : {false, true}) {
        const CudaVariant tile = generator.any_rows_tile(any, rows, at_most_rows);
        if (at_most_rows && tile.schedule_rows == 0) continue;  // the same tile as the open range's
        EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(any, tile), "any_rows", "sm_90a")))
            << variant_name(any, tile, "sm_90a");
      }
  }
}

TEST(CudaWgmmaCompile, GeneratorRefusesWhatItDoesNotServe) {
  WgmmaGenerator generator;
  OpDesc good = descriptor("m=64,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  const CudaVariant variant = generator.heuristic(good);
  ASSERT_TRUE(generator.is_valid(good, variant, 9));
  for (const char* text : {"m=16,n=64,k=128,eqscale=1", "m=16,n=64,k=128,act=fp32", "m=16,n=64,k=128,compute=int8",
                           "m=16,n=64,k=131,group=-1"}) {
    Validity validity = generator.is_valid(descriptor(text), variant, 9);
    EXPECT_FALSE(validity.ok) << text;
    EXPECT_FALSE(validity.reason.empty()) << text;
  }
  EXPECT_FALSE(generator.is_valid(parse_descriptor("m=16,n=64,k=128,device=cpu"), variant, 9).ok);
  for (int arch_major : {8, 10}) {
    Validity validity = generator.is_valid(good, variant, arch_major);
    EXPECT_FALSE(validity.ok);
    EXPECT_NE(validity.reason.find("sm_90a"), std::string::npos) << validity.reason;
  }
  auto refused = [&](auto change) {
    CudaVariant changed = variant;
    change(changed);
    Validity validity = generator.is_valid(good, changed, 9);
    return !validity.ok && !validity.reason.empty();
  };
  EXPECT_TRUE(refused([](CudaVariant& v) { v.family = CudaFamily::mma; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.block_n = 256; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.block_m = 48; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.block_k = 32; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.stages = 2; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.warps = v.warps * 2; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.unroll = 4; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.warps_k = 2; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.split_k = 3; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.split_k = 16; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.split_k = 0; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.producer = 2; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.producer = -1; }));
  {  // k=256: 2 stages of 128, one pair: a second split would hold nothing
    OpDesc shallow = descriptor("m=64,n=4096,k=256,bits=4,group=128,zero=int,act=bf16");
    CudaVariant split = variant;
    split.block_k = 128;
    split.split_k = 2;
    Validity validity = generator.is_valid(shallow, split, 9);
    EXPECT_FALSE(validity.ok);
    EXPECT_NE(validity.reason.find("split_k=2"), std::string::npos) << validity.reason;
  }
  // Only wgmma (and gemv_mma, which serves no M this large) split: the registry refuses split_k
  // on every other family.
  for (const CudaVariant& listed : candidates(good, 9)) {
    if (listed.family == CudaFamily::wgmma) continue;
    CudaVariant split = listed;
    split.split_k = 2;
    Validity validity = is_valid(good, split, 9);
    EXPECT_FALSE(validity.ok) << variant_name(good, listed, "sm_90a");
    EXPECT_NE(validity.reason.find("needs split_k=1"), std::string::npos) << validity.reason;
    CudaVariant specialized = listed;
    specialized.producer = 1;
    validity = is_valid(good, specialized, 9);
    EXPECT_FALSE(validity.ok) << variant_name(good, listed, "sm_90a");
    EXPECT_NE(validity.reason.find("producer=1"), std::string::npos) << validity.reason;
  }
  EXPECT_TRUE(refused([](CudaVariant& v) {  // everything fits but shared memory: 8 stages of 68 KiB
    v = CudaVariant{CudaFamily::wgmma, 8, 2, 128, 256, 128, 8, 0, 0, 0};
  }));
  EXPECT_THROW(generator.emit(good, CudaVariant{}), Unsupported);
  // Every width the descriptor grammar allows is served (8-bit bf16 with the weights scaled).
  CudaVariant scaled = variant;
  scaled.group_sums = 0;
  for (int bits : {2, 3, 8})
    EXPECT_TRUE(generator.is_valid(descriptor(fmt::format("m=64,n=4096,k=4096,bits={},group=128,act=bf16", bits)),
                                   scaled, 9)
                    .ok)
        << bits;
  // 8 bits double a stage's weights: the shared memory counts them (the tallest producer tile:
  // 5 stages of 32 KiB of x, 8 (8-bit) or 4 (int4) KiB of weights and 1 KiB of tables).
  CudaVariant tall = variant;
  tall.block_n = 128, tall.warps = 8, tall.block_m = 256, tall.block_k = 64, tall.stages = 5, tall.producer = 1;
  tall.split_k = 1;
  EXPECT_EQ(WgmmaGenerator::shared_bytes(descriptor("m=256,n=4096,k=4096,bits=8,group=128,act=bf16"), tall),
            5 * 41 * 1024 + 1024 + 80);
  EXPECT_EQ(WgmmaGenerator::shared_bytes(descriptor("m=256,n=4096,k=4096,bits=4,group=128,act=bf16"), tall),
            5 * 37 * 1024 + 1024 + 80);
  // 3 bits: 6 bytes a k of a panel, 3 KiB of weights a stage (x and tables as above).
  EXPECT_EQ(WgmmaGenerator::shared_bytes(descriptor("m=256,n=4096,k=4096,bits=3,group=128,act=bf16"), tall),
            5 * 36 * 1024 + 1024 + 80);
  // No generator of another family claims these variants, and older arches never list them.
  for (const CudaVariant& listed : candidates(good, 8)) EXPECT_NE(listed.family, CudaFamily::wgmma);
}

// Bits 2, 3 and 8 take wgmma's rows on sm_90 as int4 does (its heuristic; from 17 rows, at 8 bits
// up to 2048, at 3 bits up to WgmmaGenerator::preferred_rows_up_to); above those rows, and on
// other arches, mma up to 128 rows and dequant_gemm beyond.
TEST(CudaWgmmaCompile, RegistryRoutesEveryServedWidthToWgmmaOnHopper) {
  for (int bits : {2, 3, 8})
    for (int64_t m : {16, 25, 64, 128, 129, 256, 1024, 1025, 2048, 2049, 4096}) {  // (17..24: gemv_mma's, below)
      const OpDesc desc =
          descriptor(fmt::format("n=4096,k=4096,bits={},group=128,zero=int,act=bf16,m={}", bits, m));
      const CudaFamily hopper = heuristic(desc, 9).family;
      const CudaFamily ampere = heuristic(desc, 8).family;
      if (m > 16) {
        EXPECT_EQ(ampere, m <= 128 ? CudaFamily::mma : CudaFamily::dequant_gemm) << bits << " " << m;
      }
      if (m >= 17 && m <= WgmmaGenerator::preferred_rows_up_to(bits)) {
        EXPECT_EQ(heuristic(desc, 9), WgmmaGenerator().heuristic(desc)) << bits << " " << m;
      } else if (m > 16) {
        EXPECT_EQ(hopper, ampere) << bits << " " << m;
      } else {
        EXPECT_NE(hopper, CudaFamily::wgmma) << bits << " " << m;  // 16 rows on N = 4096: not wgmma's, as int4
      }
    }
}

// The no-tune choice on sm_90 (registry order and WgmmaGenerator::preferred): gemv_mma up to
// 16 rows, wgmma from 17 rows on (2 and 4 bits; 8 bits up to 2048, above: RegistryRoutes...);
// other arches keep mma up to 512 rows and dequant_gemm beyond.
TEST(CudaWgmmaCompile, RegistryHeuristicPrefersWgmmaOnHopperOnly) {
  for (int64_t m : {1, 16, 25, 64, 256, 512, 513, 1024, 1025, 4096}) {
    OpDesc desc = descriptor("n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,m=" + std::to_string(m));
    const CudaFamily hopper = heuristic(desc, 9).family;
    const CudaFamily ampere = heuristic(desc, 8).family;
    if (m <= 16) {
      EXPECT_EQ(hopper, CudaFamily::gemv_mma) << m;
      EXPECT_EQ(ampere, CudaFamily::gemv_mma) << m;
    } else if (m <= 512) {
      EXPECT_EQ(hopper, CudaFamily::wgmma) << m;
      EXPECT_EQ(ampere, CudaFamily::mma) << m;
    } else if (m <= 1024) {
      EXPECT_EQ(hopper, CudaFamily::wgmma) << m;
      EXPECT_EQ(ampere, CudaFamily::dequant_gemm) << m;
    } else {
      EXPECT_EQ(heuristic(desc, 9), WgmmaGenerator().heuristic(desc)) << m;
      EXPECT_EQ(ampere, CudaFamily::dequant_gemm) << m;
    }
  }
  // At 9..16 rows on a wide N (28672x4096), 2 and 8 bits in fp16: wgmma's 16-row tile (29.9 /
  // 30.0 us at 2 bits, M = 16 / 12, against gemv_mma's 32.7 / 32.6; 48.1 / 47.1 at 8 bits against
  // 48.3 / 47.4, session 13). In bf16, and at 4 bits (gemv_mma's warps of 4 panels: 30.1 against
  // 33.6 us), gemv_mma; in bf16 at 2 and 8 bits its warps of 2 panels (32.0 against 34.0 us, 50.1
  // against 57.5 at M = 16). 8 rows and N = 4096 stay gemv_mma (not measured / gemv_mma faster).
  const OpDesc wide = descriptor("m=16,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16");
  EXPECT_EQ(heuristic(wide, 9).family, CudaFamily::gemv_mma);
  EXPECT_EQ(heuristic(wide, 9).block_n, 64);
  EXPECT_EQ(heuristic(wide, 8).family, CudaFamily::gemv_mma);
  for (const char* rows : {"m=9,", "m=12,", "m=16,"})
    for (int bits : {2, 8}) {
      const OpDesc half = descriptor(std::string(rows) + "n=28672,k=4096,group=128,zero=int,act=fp16,bits=" + std::to_string(bits));
      EXPECT_EQ(heuristic(half, 9), WgmmaGenerator().heuristic(half)) << to_string(half);
      EXPECT_EQ(heuristic(half, 8).family, CudaFamily::gemv_mma) << to_string(half);
      const OpDesc brain = descriptor(std::string(rows) + "n=28672,k=4096,group=128,zero=int,act=bf16,bits=" + std::to_string(bits));
      const CudaVariant pairs = heuristic(brain, 9);
      EXPECT_EQ(pairs.family, CudaFamily::gemv_mma) << to_string(brain);
      EXPECT_EQ(pairs.warps, 8) << to_string(brain);
      EXPECT_EQ(pairs.block_n, 32) << to_string(brain);
      EXPECT_EQ(pairs.block_k, bits == 8 ? 64 : 0) << to_string(brain);
    }
  EXPECT_EQ(heuristic(descriptor("m=8,n=28672,k=4096,bits=2,group=128,zero=int,act=fp16"), 9).family,
            CudaFamily::gemv_mma);
  EXPECT_EQ(heuristic(descriptor("m=15,n=28672,k=4096,bits=4,group=128,zero=int,act=fp16"), 9).family,
            CudaFamily::gemv_mma);
  EXPECT_EQ(heuristic(descriptor("m=16,n=4096,k=4096,bits=2,group=128,zero=int,act=fp16"), 9).family,
            CudaFamily::gemv_mma);
  EXPECT_EQ(heuristic(descriptor("m=16,n=28672,k=4096,bits=3,group=128,zero=int,act=fp16"), 9).family,
            CudaFamily::gemv_mma);  // the wide-N 16-row rule was measured at 2 and 8 bits only
  // What wgmma does not serve (eqscale) gets on sm_90 what it gets elsewhere.
  const OpDesc scaled = descriptor("m=64,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,eqscale=1");
  EXPECT_EQ(heuristic(scaled, 9), heuristic(scaled, 8));
  EXPECT_NE(heuristic(scaled, 9).family, CudaFamily::wgmma);
}

using testing::Case;

// Compiles the cases ahead of the checks (CompiledCases: each distinct source once, several at
// once, in case order), and runs each once on a random problem with poisoned, guarded outputs and
// compares with the reference (device_check.h) at the family's bound. Empty when all pass, else
// the first failure's reproducer.
std::string check_on_device(const std::vector<Case>& cases) {
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CompiledCandidate candidate = compiled.get(i);
    if (!candidate.error.empty()) return candidate.error;
    const CudaKernel kernel(cases[i].desc, cases[i].variant, std::move(candidate.cubin));
    std::string failure = testing::check_on_device(kernel, verification_tolerance(cases[i].desc, cases[i].variant));
    if (!failure.empty()) return failure;
  }
  return {};
}

// Every candidate at each M: N=1000 (a 104-column tail after 7 blocks of 128, an 8-column
// tail in the last panel), K=4160 (65 groups of 64; 32.5 stages of 128, 65 of 64).
void check_every_candidate(std::initializer_list<int> rows) {
  WgmmaGenerator generator;
  std::vector<Case> cases;
  for (int m : rows) {
    OpDesc desc = descriptor("n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,out=bf16,bias=1,m=" + std::to_string(m));
    const std::vector<CudaVariant> variants = generator.candidates(desc);
    ASSERT_FALSE(variants.empty()) << m;
    for (const CudaVariant& variant : variants) cases.push_back({desc, variant});
  }
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaWgmma, EveryCandidateAtSmallM) {
  SKIP_WITHOUT_HOPPER();
  check_every_candidate({1, 15, 16, 17, 33});
}

TEST(CudaWgmma, EveryCandidateAtMediumM) {
  SKIP_WITHOUT_HOPPER();
  check_every_candidate({63, 64, 65, 127, 129});
}

TEST(CudaWgmma, EveryCandidateAtLargeM) {
  SKIP_WITHOUT_HOPPER();
  check_every_candidate({200, 255, 257, 1000});
}

// Every format (zero point x output dtype x group incl. whole-K groups with K tails) for one
// activation dtype, each with a different candidate in turn, at a few M.
void check_every_format(const char* act) {
  WgmmaGenerator generator;
  std::vector<Case> cases;
  int turn = 0;
  for (const char* out : {"fp32", "bf16", "fp16"})
    for (const char* zero : {"none", "int", "float"})
      for (const char* shape : {"group=32,k=96", "group=128,k=384", "group=256,k=512", "group=-1,k=136",
                                "group=-1,k=4104", "group=64,k=4160"}) {
        const char* rows = turn % 3 == 0 ? "1" : turn % 3 == 1 ? "63" : "200";
        OpDesc desc = descriptor(std::string("n=37,bits=4,bias=1,") + shape + ",zero=" + zero + ",act=" + act +
                                 ",out=" + out + ",m=" + rows);
        const std::vector<CudaVariant> variants = generator.candidates(desc);
        cases.push_back({desc, variants[turn % variants.size()]});
        ++turn;
      }
  EXPECT_EQ(cases.size(), 54u);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaWgmma, EveryFormatBf16) {
  SKIP_WITHOUT_HOPPER();
  check_every_format("bf16");
}

TEST(CudaWgmma, EveryFormatFp16) {
  SKIP_WITHOUT_HOPPER();
  check_every_format("fp16");
}

// Bits 2, 3 and 8 (WgmmaFormat; 8-bit bf16 dequantizes in fp32): every zero point x activation
// dtype at odd shapes (N not a multiple of 64 or 16; a stage past K's last group, group=-1 with
// a k tail inside a stage), M across the tiles (1, 17, 63, 64, 65, 300 in turn, each at four
// shapes), each case a different candidate in turn.
void check_width(int bits) {
  WgmmaGenerator generator;
  std::vector<Case> cases;
  int turn = 0;
  constexpr int rows[] = {1, 17, 63, 64, 65, 300};
  for (const char* act : {"bf16", "fp16"})
    for (const char* zero : {"none", "int", "float"})
      for (const char* shape : {"n=1000,k=4160,group=64,bias=1", "n=37,k=136,group=-1,out=fp32",
                                "n=4095,k=384,group=128,out=fp16", "n=200,k=4104,group=-1,bias=1"}) {
        const int m = rows[turn % 6];
        OpDesc desc = descriptor(fmt::format("bits={},act={},zero={},m={},{}", bits, act, zero, m, shape));
        const std::vector<CudaVariant> variants = generator.candidates(desc);
        cases.push_back({desc, variants[turn * 7 % variants.size()]});
        ++turn;
      }
  EXPECT_EQ(cases.size(), 24u);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaWgmma, EveryFormatEightBits) {
  SKIP_WITHOUT_HOPPER();
  check_width(8);
}

TEST(CudaWgmma, EveryFormatTwoBits) {
  SKIP_WITHOUT_HOPPER();
  check_width(2);
}

// 3 bits: 96-byte steps, so the copy threads' weight chunks fall at uneven places in the panels
// (CopyPlan's own sources); K = 136 and 4104 end inside a step.
TEST(CudaWgmma, EveryFormatThreeBits) {
  SKIP_WITHOUT_HOPPER();
  check_width(3);
}

// Every 8-bit candidate at one M past a tile edge (bf16: the fp32 dequantization), every 3-bit one
// (each copy plan of the uneven weight chunks), and each new width's heuristic choice at the
// benchmark shapes' M (its splits, producer and stream-K grids).
TEST(CudaWgmma, EveryCandidateAndHeuristicOfNewWidths) {
  SKIP_WITHOUT_HOPPER();
  WgmmaGenerator generator;
  std::vector<Case> cases;
  for (const char* format : {"bits=8,act=bf16,zero=int", "bits=2,act=fp16,zero=float", "bits=3,act=bf16,zero=int"}) {
    OpDesc desc = descriptor(std::string("n=1000,k=4160,group=64,out=bf16,bias=1,m=257,") + format);
    if (std::string(format).find("bits=2") == std::string::npos)
      for (const CudaVariant& variant : generator.candidates(desc)) cases.push_back({desc, variant});
    for (int m : {64, 128, 256, 1024})
      for (const char* size : {"n=4096,k=4096", "n=6144,k=4096"}) {
        OpDesc large = descriptor(fmt::format("{},group=128,m={},{}", size, m, format));
        cases.push_back({large, generator.heuristic(large)});
      }
  }
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaWgmma, NoBiasOddNAndLargeShapes) {
  SKIP_WITHOUT_HOPPER();
  WgmmaGenerator generator;
  std::vector<Case> cases;
  for (const char* text : {"m=17,n=4095,k=256,group=128,zero=none,act=fp16,out=fp16",
                           "m=64,n=129,k=1024,group=64,zero=float,act=bf16,out=bf16,bias=1",
                           "m=1000,n=1000,k=4096,group=128,zero=int,act=bf16,out=bf16",
                           "m=513,n=6144,k=1000,group=-1,zero=float,act=fp16,out=bf16"}) {
    OpDesc desc = descriptor(std::string("bits=4,") + text);
    cases.push_back({desc, generator.heuristic(desc)});
  }
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// Every split of a few shapes the heuristic splits (K tails, odd N, no bias, fp16) against
// the reference.
TEST(CudaWgmma, EverySplitOfSplitShapes) {
  SKIP_WITHOUT_HOPPER();
  WgmmaGenerator generator;
  std::vector<Case> cases;
  for (const char* text : {"m=17,n=4095,k=4104,group=-1,zero=none,act=fp16,out=fp16",
                           "m=64,n=4096,k=14336,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=129,n=1001,k=2056,group=-1,zero=float,act=bf16,out=fp32,bias=1",
                           "m=255,n=4096,k=4096,group=128,zero=int,act=bf16,out=bf16,bias=1"}) {
    OpDesc desc = descriptor(std::string("bits=4,") + text);
    for (int split : {2, 4, 8}) {
      // The heuristic's tile, split across blocks (where it takes stream-K, as at m=255 here,
      // its tiled grid: a split excludes stream-K).
      CudaVariant variant = generator.heuristic(desc);
      variant.stream_k = 0;
      variant.remainder_split = 0;
      variant.split_k = split;
      variant.cluster_split = 0;  // the second kernel's sum (cluster splits: ClusterSplit* tests)
      if (generator.is_valid(desc, variant, 9)) cases.push_back({desc, variant});
    }
  }
  // m=17 (33 stages of 128) and m=129 (33 of 64): split_k 2 and 4, not 8; the others all three.
  EXPECT_EQ(cases.size(), 10u);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// K a multiple of the stage (the copies' whole-stage path: a stage is inside K or wholly past
// it), at M one past and one short of the tall tiles and N tails: every candidate, and every
// split of a K whose last split runs past K (3840 = 60 stages of 64: splits of 8 stages).
TEST(CudaWgmma, WholeStageKAtOddShapesAndSplits) {
  SKIP_WITHOUT_HOPPER();
  WgmmaGenerator generator;
  std::vector<Case> cases;
  for (const char* text : {"m=257,n=1000,k=4096,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=1023,n=4095,k=3840,group=128,zero=float,act=fp16,out=fp16"}) {
    OpDesc desc = descriptor(std::string("bits=4,") + text);
    for (const CudaVariant& variant : generator.candidates(desc)) cases.push_back({desc, variant});
    for (int producer : {0, 1})
      for (int split : {2, 4, 8}) {
        CudaVariant variant = generator.heuristic(desc);
        variant.producer = producer;
        variant.split_k = split;
        variant.cluster_split = 0;
        if (generator.is_valid(desc, variant, 9)) cases.push_back({desc, variant});
      }
  }
  EXPECT_GE(cases.size(), 30u);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// Whole tiles (M, N multiples of every tile: the copies' compile-time row and panel checks) and K
// a multiple of the stage pair (no stage past K: no k checks), with runs of 62 .. 68 stages of 64
// k (31 .. 34 of 128), so that the main loop's unrolled turns (4, 6 or 10 stages: lcm(2, stages))
// leave every remainder of stage pairs to the runtime-slot loop after them. Every unsplit
// candidate (producer and stream-K grids included) at each K, bf16 with an integer zero point and
// fp16 without one at one K; every split too at one K.
TEST(CudaWgmma, WholeTilesAtEveryTurnRemainder) {
  SKIP_WITHOUT_HOPPER();
  WgmmaGenerator generator;
  std::vector<Case> cases;
  auto add_candidates = [&](int k, const char* format, bool splits) {
    OpDesc desc = descriptor(fmt::format("bits=4,group=128,m=256,n=256,k={},{}", k, format));
    for (const CudaVariant& variant : generator.candidates(desc))
      if (splits || variant.split_k == 1) cases.push_back({desc, variant});
  };
  for (int k : {3968, 4096, 4224, 4352}) add_candidates(k, "zero=int,act=bf16,out=bf16,bias=1", k == 4096);
  add_candidates(4352, "zero=none,act=fp16,out=fp16", false);
  EXPECT_GE(cases.size(), 100u);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// Every warp-specialized shape (producer = 1) at odd shapes: M one past and one short of its
// tiles, N tails, K tails with whole-K groups, each zero-point kind, fp16, no bias, splits
// (its stream-K grids are the StreamK tests', below).
TEST(CudaWgmma, WarpSpecializedAtOddShapesAndSplits) {
  SKIP_WITHOUT_HOPPER();
  WgmmaGenerator generator;
  std::vector<Case> cases;
  for (const char* text : {"m=129,n=1001,k=2056,group=-1,zero=float,act=bf16,out=fp32,bias=1",
                           "m=255,n=4095,k=4104,group=-1,zero=none,act=fp16,out=fp16",
                           "m=257,n=200,k=1024,group=32,zero=int,act=bf16,out=bf16,bias=1",
                           "m=513,n=6144,k=1000,group=-1,zero=float,act=fp16,out=bf16"}) {
    OpDesc desc = descriptor(std::string("bits=4,") + text);
    for (const CudaVariant& variant : generator.candidates(desc))
      if (variant.producer == 1 && variant.stream_k == 0) cases.push_back({desc, variant});
  }
  EXPECT_GE(cases.size(), 20u);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// Stream-K at odd shapes: N tails (1000, 1001 columns), K tails (33 groups of 64: an odd count of
// 64-k stages, so a tile's last pair runs past K; whole-K groups with k = 2056, not a multiple of
// 64), M from 1 over the tiles' edges (127/129, 255/257) to several hundred; every tall tile with
// a block per SM, and few blocks (7, 3) on one, so that a block runs through whole tiles between
// its cut ones and a tile is cut among several blocks. 300 x 6144 (144 tiles of 128 x 128) leaves
// a remainder on 132 blocks. The copy warpgroup's (producer = 1) too: its 128 x 128 x 64 six-stage
// tile also with few blocks (so that its ring runs through segments of 2..66 stages, padded to
// whole turns of 6 slots), its 256-row tiles of 4 and 5 stages with a block per SM. Against the
// reference.
TEST(CudaWgmma, StreamKAtOddShapes) {
  SKIP_WITHOUT_HOPPER();
  WgmmaGenerator generator;
  std::vector<Case> cases;
  int plans = 0;
  auto add = [&](const std::string& text) {
    const OpDesc desc = descriptor("bits=4," + text);
    for (const CudaVariant& shape :
         {stream_k_variant(128, 128, 64, 5, 0), stream_k_variant(128, 128, 128, 4, 0), stream_k_variant(64, 128, 64, 6, 0),
          stream_k_variant(128, 256, 64, 4, 0), stream_k_variant(64, 256, 64, 5, 0), stream_k_variant(128, 128, 64, 6, 0, 1),
          stream_k_variant(128, 256, 64, 4, 0, 1), stream_k_variant(128, 256, 64, 5, 0, 1)})
      for (int blocks : {132, 7, 3}) {
        const bool few_blocks_shape = shape.block_n == 128 && shape.block_m == 128 && shape.block_k == 64;
        if (blocks != 132 && !few_blocks_shape) continue;
        CudaVariant variant = shape;
        const int64_t tiles = (desc.m + shape.block_m - 1) / shape.block_m * ((desc.n + shape.block_n - 1) / shape.block_n);
        const int64_t iterations = tiles * (((desc.k + shape.block_k - 1) / shape.block_k + 1) / 2);
        variant.stream_k = static_cast<int>(std::min<int64_t>(blocks, iterations));
        EXPECT_TRUE(generator.is_valid(desc, variant, 9)) << variant_name(desc, variant, "sm_90a");
        cases.push_back({desc, variant});
        // With the copy warpgroup and a block an SM, the planned runs too where the grid cuts a tile.
        CudaVariant planned = variant;
        planned.stream_k_plan = 1;
        if (variant.producer == 1 && blocks == 132 && generator.is_valid(desc, planned, 9))
          cases.push_back({desc, planned}), ++plans;
      }
  };
  for (int m : {1, 127, 129, 255, 257, 400})
    add("n=1000,k=2112,group=64,zero=int,act=bf16,out=bf16,bias=1,m=" + std::to_string(m));
  add("m=513,n=1001,k=2056,group=-1,zero=float,act=fp16,out=fp16");
  add("m=300,n=6144,k=1024,group=128,zero=none,act=bf16,out=fp32,bias=1");
  EXPECT_EQ(cases.size() - plans, 56u + 40u);
  EXPECT_EQ(plans, 24);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// The hybrid schedule (remainder_split): whole tiles for the full waves, then the remainder shared,
// at odd shapes (N tails, a K of 33 groups: an odd stage count, so a padded stage; whole-K
// groups with a K tail), M around the tiles, with 132 blocks where the grid has more tiles than
// that (M = 513 or 1000 on 6144 columns: 144 or 192 tiles of 256 x 128, the latter the M = 1024
// row's grid) and with few blocks (7, 9) so that every block runs several whole tiles; r = 1
// (each remaining tile whole on its own block: no cut), 2 and 3. Each also with the copy
// warpgroup (producer = 1: 128 x 128 x 64 in six stages, 128 x 256 x 64 in four).
TEST(CudaWgmma, HybridStreamKAtOddShapes) {
  SKIP_WITHOUT_HOPPER();
  WgmmaGenerator generator;
  std::vector<Case> cases;
  const std::vector<CudaVariant> every_shape = {
      stream_k_variant(128, 128, 64, 5, 0),    stream_k_variant(64, 128, 64, 6, 0),
      stream_k_variant(128, 256, 64, 4, 0),    stream_k_variant(128, 128, 64, 6, 0, 1),
      stream_k_variant(128, 256, 64, 4, 0, 1)};
  const std::vector<CudaVariant> tallest = {stream_k_variant(128, 256, 64, 4, 0), stream_k_variant(128, 256, 64, 4, 0, 1)};
  int plans = 0;
  auto add = [&](const std::string& text, const std::vector<CudaVariant>& shapes, int blocks) {
    const OpDesc desc = descriptor("bits=4," + text);
    for (const CudaVariant& shape : shapes)
      for (int split : {1, 2, 3}) {
        CudaVariant variant = shape;
        variant.stream_k = blocks;
        variant.remainder_split = split;
        EXPECT_TRUE(generator.is_valid(desc, variant, 9)) << variant_name(desc, variant, "sm_90a");
        cases.push_back({desc, variant});
        // With the copy warpgroup, the searched hybrid (r = 2) with planned runs too.
        CudaVariant planned = variant;
        planned.stream_k_plan = 1;
        if (variant.producer == 1 && split == 2 && generator.is_valid(desc, planned, 9))
          cases.push_back({desc, planned}), ++plans;
      }
  };
  for (int m : {127, 129, 256, 257, 400})
    add("n=1000,k=2112,group=64,zero=int,act=bf16,out=bf16,bias=1,m=" + std::to_string(m), every_shape, 7);
  add("m=513,n=1001,k=2056,group=-1,zero=float,act=fp16,out=fp16", every_shape, 9);
  add("m=513,n=6144,k=1024,group=128,zero=none,act=bf16,out=fp32,bias=1", tallest, 132);
  add("m=1000,n=6144,k=1032,group=-1,zero=int,act=bf16,out=bf16,bias=1", tallest, 132);
  EXPECT_EQ(cases.size() - plans, 60u + 42u);
  EXPECT_EQ(plans, 14);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// Whole tiles a persistent block (candidates' whole_tile_blocks: a stream-K grid of tiles / waves
// blocks, each running its tiles whole, one after another, on one ring): every such candidate of a
// generator counting 8 SMs (so that these grids take several tiles a block) at odd shapes: N and K
// tails, M past the row tiles, every zero-point kind, bf16 and fp16, 2, 3, 4 and 8 bits.
TEST(CudaWgmma, WholeTilesPerPersistentBlockAtOddShapes) {
  const WgmmaGenerator generator(8);
  std::vector<Case> cases;
  for (const char* text : {"m=1000,n=1000,k=2112,bits=4,group=64,zero=int,act=bf16,out=bf16,bias=1",
                           "m=513,n=1001,k=2056,bits=4,group=-1,zero=float,act=fp16,out=fp16",
                           "m=300,n=2048,k=1032,bits=8,group=-1,zero=none,act=bf16,out=fp32,bias=1",
                           "m=257,n=1000,k=1024,bits=2,group=128,zero=int,act=fp16,out=bf16",
                           "m=700,n=1000,k=1048,bits=3,group=-1,zero=int,act=bf16,out=bf16,bias=1"}) {
    const OpDesc desc = descriptor(text);
    int whole = 0;
    for (const CudaVariant& variant : generator.candidates(desc)) {
      const int64_t tiles = (desc.m + variant.block_m - 1) / variant.block_m * ((desc.n + variant.block_n - 1) / variant.block_n);
      if (variant.stream_k == 0 || variant.remainder_split != 0 || tiles % variant.stream_k != 0 || tiles == variant.stream_k)
        continue;
      EXPECT_EQ(variant.producer, 1) << variant_name(desc, variant, "sm_90a");
      cases.push_back({desc, variant});
      ++whole;
    }
    EXPECT_GE(whole, 1) << text;
  }
  SKIP_WITHOUT_HOPPER();  // (the case lists above are checked without a GPU too)
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// Problem buffers on the device for the run-to-run and refusal checks below.
struct DeviceProblem {
  explicit DeviceProblem(const OpDesc& desc)
      : problem(make_random_problem(desc, desc.m, seed_for(to_string(desc)))),
        x(testing::upload(problem.x.data(), problem.x.size())),
        weights(testing::upload(problem.packed.storage.data(), problem.packed.storage.size())),
        bias(testing::upload(problem.bias.data(), problem.bias.size())),
        y(static_cast<std::size_t>(desc.m * desc.n * dtype_bytes(desc.out))) {}
  RunArgs args(const OpDesc& desc) {
    RunArgs result;
    result.x = x.data();
    result.weights = testing::device_weights(weights, problem);
    result.bias = desc.bias ? bias.data() : nullptr;
    result.y = y.data();
    result.m = desc.m;
    return result;
  }
  Problem problem;
  DeviceBuffer x, weights, bias, y;
};

// A split sums its partials in a fixed order: two runs, the second over a workspace of other
// contents, give the same bits.
// Cluster splits (a tile's splits summed in the cluster's shared memory) against the reference:
// every cluster-split candidate at M from 1 over the 16-, 64-, 128- and 256-row tiles' edges
// (tile - 1, tile, tile + 1), N tails (1000, 1001, 4095: a partial last tile and panel), K tails
// (4160 = 65 groups of 64; 4104 and 2056, whole-K groups not a multiple of the stage or the
// split), every zero-point kind, bf16 and fp16, bias or none, bits 2, 3, 4 and 8.
TEST(CudaWgmma, ClusterSplitAtOddShapes) {
  WgmmaGenerator generator;
  std::vector<Case> cases;
  int descs = 0;
  auto add = [&](const std::string& text, std::initializer_list<int> rows) {
    for (int m : rows) {
      const OpDesc desc = descriptor(fmt::format("m={},{}", m, text));
      ++descs;
      for (const CudaVariant& variant : generator.candidates(desc))
        if (variant.cluster_split == 1) cases.push_back({desc, variant});
    }
  };
  add("n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,out=bf16,bias=1", {1, 15, 16, 17, 64, 65});
  add("n=4095,k=4104,bits=4,group=-1,zero=none,act=fp16,out=fp16", {63, 127, 128, 129});
  add("n=1001,k=2056,bits=4,group=-1,zero=float,act=bf16,out=fp32,bias=1", {255, 256, 257});
  add("n=200,k=1024,bits=8,group=32,zero=int,act=fp16,out=fp16,bias=1", {33, 129});
  add("n=1000,k=4160,bits=2,group=64,zero=float,act=bf16,out=bf16", {17, 256});
  add("n=1000,k=4160,bits=8,group=64,zero=none,act=bf16,out=bf16,bias=1", {200});
  add("n=1001,k=4104,bits=3,group=-1,zero=none,act=fp16,out=fp16,bias=1", {17, 129});
  EXPECT_GE(cases.size(), static_cast<std::size_t>(descs) * 2);
  SKIP_WITHOUT_HOPPER();  // (the case list above is checked without a GPU too)
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// An any-M kernel (m=0, the tiled grid, a split, a cluster split, stream-K laid out for a top or
// at run time: runtime/row_buckets.h's ranges) at row counts around its tile's edges, on odd
// shapes: the grid, every row mask, a split's partials and its second kernel, a run-time stream-K
// layout follow the call's M.
TEST(CudaWgmma, AnyMTilesAtEveryRowCount) {
  WgmmaGenerator generator;
  std::vector<Case> cases;
  for (const char* text : {"m=0,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,out=bf16,bias=1",
                           "m=0,n=28680,k=2056,bits=3,group=-1,zero=float,act=fp16,out=fp32",
                           "m=0,n=4095,k=4160,bits=8,group=64,zero=none,act=bf16,out=fp16,bias=1"}) {
    const OpDesc any = descriptor(text);
    for (int64_t rows : {32, 64, 256}) cases.push_back({any, generator.any_rows_tile(any, rows)});
  }
  // A long K on few columns: the heuristic's splits summed by the second kernel over the call's
  // rows, bf16 and fp16 outputs, N a multiple of 4 or not (the second kernel's float4 or single
  // sums); and a cluster split of the 256-row tile.
  for (const char* text : {"m=0,n=4000,k=14336,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=0,n=4001,k=14344,bits=2,group=-1,zero=float,act=fp16,out=fp16"}) {
    const OpDesc long_k = descriptor(text);
    for (int64_t rows : {32, 64}) cases.push_back({long_k, generator.any_rows_tile(long_k, rows)});
  }
  const OpDesc clustered = descriptor("m=0,n=4000,k=14336,bits=4,group=128,zero=int,act=bf16,out=bf16");
  CudaVariant pair = generator.any_rows_tile(clustered, 256);  // (stream-K there: made a split of 4)
  pair.stream_k = 0, pair.remainder_split = 0, pair.split_k = 4, pair.cluster_split = 1;
  ASSERT_TRUE(generator.is_valid(clustered, pair, 9)) << generator.is_valid(clustered, pair, 9).reason;
  cases.push_back({clustered, pair});
  EXPECT_GE(std::count_if(cases.begin(), cases.end(),
                          [](const Case& c) { return c.variant.split_k > 1 && c.variant.cluster_split == 0; }),
            4);
  // Open ranges where the heuristic streams K: the grid with even runs, laid out for each call's
  // rows at run time (every tile shared; the hybrid's whole waves, with a remainder or none; one
  // block a remaining tile, which cuts none; fewer iterations than blocks, so most blocks idle).
  std::size_t first_run_time = cases.size();
  for (const char* text : {"m=0,n=4000,k=14336,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=0,n=4001,k=14344,bits=2,group=-1,zero=float,act=fp16,out=fp16"})
    for (int64_t rows : {128, 256}) cases.push_back({descriptor(text), generator.any_rows_tile(descriptor(text), rows)});
  const OpDesc wide = descriptor("m=0,n=6008,k=2056,bits=3,group=-1,zero=float,act=fp16,out=fp16,bias=1");
  const CudaVariant hybrid = generator.any_rows_tile(wide, 1024);
  cases.push_back({wide, hybrid});
  CudaVariant whole_waves = hybrid;  // 47 tiles a 256-row band: waves of 47 blocks, no remainder
  whole_waves.stream_k = 47, whole_waves.remainder_split = 2;
  cases.push_back({wide, whole_waves});
  CudaVariant one_each = hybrid;
  one_each.stream_k = 40, one_each.remainder_split = 1;
  cases.push_back({wide, one_each});
  const OpDesc small = descriptor("m=0,n=200,k=256,bits=4,group=128,zero=int,act=bf16,out=bf16");
  CudaVariant idle = hybrid;  // 2 tiles of 2 stage pairs a 256-row band, on 132 blocks
  idle.stream_k = 132, idle.remainder_split = 0;
  cases.push_back({small, idle});
  for (std::size_t i = first_run_time; i < cases.size(); ++i) {
    ASSERT_TRUE(generator.is_valid(cases[i].desc, cases[i].variant, 9))
        << variant_name(cases[i].desc, cases[i].variant, "sm_90a") << ": "
        << generator.is_valid(cases[i].desc, cases[i].variant, 9).reason;
    EXPECT_NE(cases[i].variant.stream_k, 0);
    EXPECT_EQ(cases[i].variant.schedule_rows, 0);
  }
  // (At 1..256 rows its 47 tiles are shared by all 40 blocks: the hybrid, 40 whole and 7 on 7
  // blocks, does not pay. So it takes the flags and partial tiles too.)
  EXPECT_GT(WgmmaGenerator::workspace_bytes(wide, one_each), 0u);
  // Ranges with a top where the heuristic streams K: the stream-K grid laid out for the top's
  // rows (whole tiles, the hybrid, planned runs as the heuristic takes them), N and K tails, bf16
  // and fp16, bias, 3 bits; every row count up to the top, and one past it refused.
  int streamed = 0;
  for (const char* text : {"m=0,n=6000,k=4160,bits=4,group=64,zero=int,act=bf16,out=bf16,bias=1",
                           "m=0,n=4000,k=14336,bits=4,group=128,zero=int,act=bf16,out=bf16",
                           "m=0,n=6008,k=2056,bits=3,group=-1,zero=float,act=fp16,out=fp16,bias=1"}) {
    const OpDesc any = descriptor(text);
    for (int64_t rows : {128, 256}) {
      const CudaVariant tile = generator.any_rows_tile(any, rows, true);
      if (tile.schedule_rows == 0) continue;
      cases.push_back({any, tile});
      ++streamed;
    }
  }
  EXPECT_GE(streamed, 3);
  SKIP_WITHOUT_HOPPER();
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CompiledCandidate candidate = compiled.get(i);
    ASSERT_TRUE(candidate.error.empty()) << candidate.error;
    const CudaKernel kernel(cases[i].desc, cases[i].variant, std::move(candidate.cubin));
    const int64_t top = cases[i].variant.schedule_rows;
    std::vector<int64_t> row_counts{1, 15, 17, 31, 32, 33, 64, 65, 100, 127, 128, 129, 255, 256, 257, 700};
    // A run-time stream-K layout also at 384, 385 and 512 rows (3 to 4 bands of 128 rows: on
    // 4000 columns 96 tiles shared, then 128 whole, one a block), and on a short K (the host's
    // random problems stay quick) at 4 to 6 bands of 256 rows: with 47 or 2 tiles a band, every
    // tile shared evenly (1024), the hybrid (1030), whole tiles a block (1536: 282 tiles, 3
    // waves of 94).
    if (top == 0 && cases[i].variant.stream_k != 0) row_counts.insert(row_counts.end(), {384, 385, 512});
    if (top == 0 && cases[i].variant.stream_k != 0 && cases[i].desc.k <= 4160)
      row_counts.insert(row_counts.end(), {1024, 1030, 1536});
    for (int64_t rows : row_counts) {
      if (top != 0 && rows > top) continue;
      const std::string failure =
          testing::check_on_device(kernel, verification_tolerance(cases[i].desc, cases[i].variant), 0, rows);
      ASSERT_TRUE(failure.empty()) << failure;
    }
    if (top == 0) continue;
    // One row past the schedule: refused before anything is read or launched (the pointers are
    // never dereferenced).
    std::vector<unsigned char> fake(256);
    RunArgs past;
    past.x = past.bias = fake.data();
    past.y = fake.data();
    past.weights = {fake.data(), fake.data(), fake.data()};
    past.m = top + 1;
    past.workspace = fake.data();
    past.workspace_size = kernel.workspace_bytes(top + 1);
    std::string refused = "accepted";
    try {
      kernel.run(past);
    } catch (const InvalidArgument& error) {
      refused = error.what();
    }
    EXPECT_NE(refused.find("exceeds the " + std::to_string(top) + " rows"), std::string::npos) << refused;
  }
}

// A cluster split sums in a fixed order (split 0 .. SPLIT_K - 1): the same bits run to run, and
// it runs without a workspace.
TEST(CudaWgmma, ClusterSplitRunsAreBitIdentical) {
  SKIP_WITHOUT_HOPPER();
  for (const char* text : {"m=256,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=64,n=4096,k=14336,bits=4,group=128,zero=int,act=fp16,out=fp16,bias=1"}) {
    const OpDesc desc = descriptor(text);
    CudaVariant variant = WgmmaGenerator().heuristic(desc);
    variant.stream_k = 0, variant.remainder_split = 0;
    if (variant.split_k == 1) variant.split_k = 4;
    variant.cluster_split = 1;
    ASSERT_TRUE(WgmmaGenerator().is_valid(desc, variant, 9)) << WgmmaGenerator().is_valid(desc, variant, 9).reason;
    const CudaKernel kernel(desc, variant);
    ASSERT_EQ(kernel.workspace_bytes(desc.m), 0u);
    DeviceProblem device(desc);
    RunArgs args = device.args(desc);
    std::vector<std::vector<uint8_t>> outputs;
    for (uint8_t fill : {uint8_t{0xff}, uint8_t{0x00}}) {
      device.y.fill(fill);
      kernel.run(args);
      check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
      outputs.push_back(device.y.download());
    }
    EXPECT_TRUE(outputs[0] == outputs[1]) << kernel.name() << ": two runs differ";
  }
}

TEST(CudaWgmma, SplitRunsAreBitIdentical) {
  SKIP_WITHOUT_HOPPER();
  OpDesc desc = descriptor("m=64,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1");
  CudaVariant variant = WgmmaGenerator().heuristic(desc);
  variant.split_k = 4;  // the heuristic's tile, split 4 and summed by the second kernel
  variant.cluster_split = 0;
  const CudaKernel kernel(desc, variant);
  DeviceProblem device(desc);
  DeviceBuffer workspace(kernel.workspace_bytes(desc.m));
  RunArgs args = device.args(desc);
  args.workspace = workspace.data();
  args.workspace_size = workspace.size();
  std::vector<std::vector<uint8_t>> outputs;
  for (uint8_t fill : {uint8_t{0xff}, uint8_t{0x00}}) {
    workspace.fill(fill);
    device.y.fill(0xff);
    kernel.run(args);
    check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
    outputs.push_back(device.y.download());
  }
  EXPECT_TRUE(outputs[0] == outputs[1]) << kernel.name() << ": two runs differ";
}

// Stream-K fixes up a cut tile in block order (also the hybrid's shared remainder): runs give the same bits whatever the workspace
// held (poison, zeros, the flags and partials the previous run left: each launch has its own
// token), also two launches in a row on the stream without a wait between; a missing workspace
// is refused with its size, a misaligned one naming the alignment.
TEST(CudaWgmma, StreamKRunsAreBitIdentical) {
  SKIP_WITHOUT_HOPPER();
  const OpDesc desc = descriptor("m=300,n=6144,k=1024,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1");
  // (The hybrid: 144 tiles of 128 x 128, 132 whole, 12 shared by 24 blocks.) Both rings; the copy
  // warpgroup's also with planned runs.
  for (const CudaVariant& variant :
       {stream_k_variant(128, 128, 64, 5, 132), stream_k_variant(128, 256, 64, 4, 7), hybrid_variant(128, 128, 64, 5, 132, 2),
        stream_k_variant(128, 128, 64, 6, 132, 1), stream_k_variant(128, 256, 64, 4, 7, 1),
        hybrid_variant(128, 128, 64, 6, 132, 2, 1), planned(stream_k_variant(128, 128, 64, 6, 132, 1)),
        planned(hybrid_variant(128, 128, 64, 6, 132, 2, 1))}) {
    const CudaKernel kernel(desc, variant);
    DeviceProblem device(desc);
    DeviceBuffer workspace(kernel.workspace_bytes(desc.m));
    RunArgs args = device.args(desc);
    std::string refused = "accepted";
    try {
      kernel.run(args);
    } catch (const InvalidArgument& error) {
      refused = error.what();
    }
    EXPECT_NE(refused.find(std::to_string(kernel.workspace_bytes(desc.m))), std::string::npos) << refused;
    DeviceBuffer larger(kernel.workspace_bytes(desc.m) + 256);
    args.workspace = static_cast<uint8_t*>(larger.data()) + 16;
    args.workspace_size = kernel.workspace_bytes(desc.m);
    refused = "accepted";
    try {
      kernel.run(args);
    } catch (const InvalidArgument& error) {
      refused = error.what();
    }
    EXPECT_NE(refused.find("256-byte"), std::string::npos) << refused;
    args.workspace = workspace.data();
    args.workspace_size = workspace.size();
    std::vector<std::vector<uint8_t>> outputs;
    for (int run = 0; run < 5; ++run) {
      if (run == 0) workspace.fill(0xff);
      if (run == 2) workspace.fill(0x00);
      device.y.fill(0xff);
      kernel.run(args);
      if (run == 4) kernel.run(args);  // two launches in flight one after the other
      check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
      outputs.push_back(device.y.download());
    }
    for (int run = 1; run < 5; ++run) EXPECT_TRUE(outputs[0] == outputs[run]) << kernel.name() << ": run " << run << " differs";
  }
}

// Stream-K in few, short checks, for compute-sanitizer's sample (bench/device/run.sh's formats
// part: memcheck and racecheck slow a launch many times over, so the odd-shape suites above are
// too long for it): every schedule the fix-up serves, both rings: even runs cutting tiles on few
// blocks, planned runs, the hybrid, and an any-M kernel laid out at run time at row counts that
// take each of its layouts (every tile shared, the hybrid, whole tiles a block, a range's top).
TEST(CudaWgmma, StreamKSampleForTheSanitizers) {
  // An any-M kernel of 3 panels of 128 columns (the last 124) on 10 blocks, 9 stage pairs a tile,
  // and its layouts at the row counts it runs below (StreamKSchedule::run_time_layout), checked
  // where NVRTC is, GPU or not: at 1 and 200 rows 3 and 6 tiles shared by all 10 blocks; at 300,
  // 9 tiles whole, one a block on 9 (a wave filled to 0.9 that the heuristic tiles); at 600, 15 tiles, the
  // hybrid (a wave of 10 whole, 5 shared by 10); at 700, 18 tiles whole, 2 a block on 9; at 900,
  // 24 tiles, the hybrid (20 whole, 4 shared by 8).
  const OpDesc any = descriptor("m=0,n=380,k=1088,bits=4,group=64,zero=int,act=bf16,out=bf16,bias=1");
  const CudaVariant run_time = hybrid_variant(128, 128, 64, 6, 10, 2, 1);
  ASSERT_TRUE(WgmmaGenerator().is_valid(any, run_time, 9)) << WgmmaGenerator().is_valid(any, run_time, 9).reason;
  struct Layout {
    int64_t rows, whole_tiles, sharing_blocks;
  };
  const std::vector<Layout> layouts{{1, 0, 10}, {200, 0, 10}, {300, 0, 9}, {600, 10, 10}, {700, 0, 9}, {900, 20, 8}};
  if (nvrtc().available) {
    std::string checks;
    for (const Layout& layout : layouts)
      checks += run_time_layout_assert((layout.rows + 127) / 128, layout.whole_tiles, layout.sharing_blocks,
                                       fmt::format("{} rows", layout.rows));
    EXPECT_NO_THROW(compile_to_cubin(WgmmaGenerator().emit(any, run_time) + checks, "sample_layouts", "sm_90a"))
        << checks;
  }
  SKIP_WITHOUT_HOPPER();
  const OpDesc desc = descriptor("m=257,n=1000,k=1088,bits=4,group=64,zero=int,act=bf16,out=bf16,bias=1");
  const std::string exact_failure =
      check_on_device({{desc, stream_k_variant(128, 128, 64, 5, 7)},
                       {desc, stream_k_variant(128, 128, 64, 6, 7, 1)},
                       {desc, planned(stream_k_variant(128, 128, 64, 6, 20, 1))},
                       {desc, hybrid_variant(128, 128, 64, 6, 20, 2, 1)}});
  ASSERT_TRUE(exact_failure.empty()) << exact_failure;
  const CudaKernel kernel(any, run_time);
  for (const Layout& layout : layouts) {
    const std::string failure =
        testing::check_on_device(kernel, verification_tolerance(any, run_time), 0, layout.rows);
    ASSERT_TRUE(failure.empty()) << failure;
  }
}

// A split refuses a missing, small or misaligned workspace, naming the sizes.
TEST(CudaWgmma, SplitRefusesMissingOrSmallWorkspace) {
  SKIP_WITHOUT_HOPPER();
  OpDesc desc = descriptor("m=32,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16");
  CudaVariant variant = WgmmaGenerator().heuristic(desc);
  ASSERT_GT(variant.split_k, 1);
  const CudaKernel kernel(desc, variant);
  const std::size_t needed = kernel.workspace_bytes(desc.m);
  ASSERT_EQ(needed, static_cast<std::size_t>(variant.split_k) * 32 * 4096 * 4);
  DeviceProblem device(desc);
  DeviceBuffer workspace(needed + 256);
  RunArgs args = device.args(desc);
  auto message = [&](const RunArgs& tried) {
    try {
      kernel.run(tried);
    } catch (const InvalidArgument& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(args).find(std::to_string(needed)), std::string::npos) << message(args);
  args.workspace = workspace.data();
  args.workspace_size = needed - 1;
  const std::string small = message(args);
  EXPECT_NE(small.find(std::to_string(needed)), std::string::npos) << small;
  EXPECT_NE(small.find(std::to_string(needed - 1)), std::string::npos) << small;
  args.workspace_size = needed;
  args.workspace = static_cast<uint8_t*>(workspace.data()) + 16;
  EXPECT_NE(message(args).find("256-byte"), std::string::npos) << message(args);
  args.workspace = workspace.data();
  EXPECT_EQ(message(args), "accepted");
  check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
  // An unsplit variant needs none.
  variant.split_k = 1;
  EXPECT_EQ(CudaKernel(desc, variant).workspace_bytes(desc.m), 0u);
}

// The heuristic keeps group sums on its tiles of 128-k stages where they are valid (measured at
// M = 16..64 in bf16 and fp16), never on 64-k stages, and scaled weights where they are refused.
TEST(CudaWgmmaCompile, HeuristicKeepsGroupSumsWhereTheyPay) {
  WgmmaGenerator generator;
  for (const char* text : {"m=32,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16",
                           "m=17,n=4096,k=14336,bits=2,group=256,zero=none,act=fp16",
                           "m=64,n=6144,k=4104,bits=3,group=-1,zero=int,act=bf16",
                           "m=48,n=4096,k=4096,bits=8,group=128,zero=int,act=fp16"}) {
    const CudaVariant chosen = generator.heuristic(descriptor(text));
    EXPECT_EQ(chosen.block_k, 128) << text;
    EXPECT_EQ(chosen.group_sums, 1) << text;
  }
  for (const char* text : {"m=32,n=28672,k=4096,bits=4,group=128,zero=float,act=bf16",
                           "m=32,n=28672,k=4096,bits=8,group=128,zero=int,act=bf16",
                           "m=32,n=4096,k=4096,bits=4,group=64,zero=int,act=fp16",
                           "m=256,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16"})
    EXPECT_EQ(generator.heuristic(descriptor(text)).group_sums, 0) << text;
}

// 17..24 rows on few panels with a short K (GemvGenerator::short_rows_on_few_panels): gemv_mma's
// heuristic on sm_90, at every width and in both dtypes; mma on sm_8x as before; wgmma just
// outside those rows, on more panels and on a long K.
TEST(CudaWgmmaCompile, RegistryGivesShortRowsOnFewPanelsToGemvMma) {
  for (const char* format : {"bits=4,act=bf16", "bits=4,act=fp16", "bits=2,act=bf16", "bits=3,act=bf16",
                             "bits=8,act=bf16"})
    for (int64_t m : {17, 20, 24}) {
      const OpDesc desc = descriptor(fmt::format("m={},n=4096,k=4096,group=128,zero=int,{}", m, format));
      const CudaVariant chosen = heuristic(desc, 9);
      EXPECT_EQ(chosen.family, CudaFamily::gemv_mma) << to_string(desc);
      EXPECT_EQ(chosen.warps, 8) << to_string(desc);
      EXPECT_EQ(chosen.block_n, 32) << to_string(desc);
      EXPECT_EQ(heuristic(desc, 8).family, CudaFamily::mma) << to_string(desc);
      EXPECT_FALSE(WgmmaGenerator::preferred(desc)) << to_string(desc);
    }
  for (const char* text : {"m=16,n=4096,k=4096", "m=25,n=4096,k=4096", "m=24,n=4096,k=14336", "m=24,n=6144,k=4096",
                           "m=17,n=4112,k=4096", "m=17,n=4096,k=4104"}) {
    const OpDesc desc = descriptor(std::string(text) + ",bits=4,group=-1,zero=int,act=bf16");
    EXPECT_EQ(heuristic(desc, 9).family, desc.m == 16 ? CudaFamily::gemv_mma : CudaFamily::wgmma) << text;
  }
}

// The registry's no-tune kernel at 17..24 rows on few panels with a short K (gemv_mma's, above)
// against the reference: every width, both activation dtypes, each zero point, odd N, a k tail
// with group=-1, bias and eqscale in turn.
TEST(CudaWgmma, ShortRowsOnFewPanelsRunTheRegistrysGemvMma) {
  std::vector<Case> cases;
  int turn = 0;
  for (int bits : {2, 3, 4, 8})
    for (const char* act : {"bf16", "fp16"})
      for (const char* zero : {"none", "int", "float"}) {
        const int m = 17 + turn % 8;
        const char* shape = turn % 3 == 0   ? "n=4000,k=4096,group=128,bias=1"
                            : turn % 3 == 1 ? "n=37,k=136,group=-1,out=fp32"
                                            : "n=1000,k=2048,group=64,eqscale=1";
        const OpDesc desc = descriptor(fmt::format("m={},bits={},act={},zero={},{}", m, bits, act, zero, shape));
        const CudaVariant chosen = heuristic(desc, 9);
        EXPECT_EQ(chosen.family, CudaFamily::gemv_mma) << to_string(desc);
        cases.push_back({desc, chosen});
        ++turn;
      }
  EXPECT_EQ(cases.size(), 24u);
  SKIP_WITHOUT_HOPPER();  // (the choices above are checked without a GPU too)
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

// group_sums=1 (templates/wgmma_gemm.cuh, "Group sums"): its name, JSON, source, where the
// candidates offer it, and each refusal's reason.
TEST(CudaWgmmaCompile, GroupSumsNamesJsonSourceAndRefusals) {
  WgmmaGenerator generator;
  const OpDesc desc = descriptor("m=32,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16");
  CudaVariant variant;
  variant.family = CudaFamily::wgmma;
  variant.warps = 4, variant.block_n = 64, variant.block_m = 32, variant.block_k = 128, variant.stages = 5;
  variant.group_sums = 1;
  ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << generator.is_valid(desc, variant, 9).reason;
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_wgmma_w4g128_m32_n64m32k128_s5_gs");
  expect_json_round_trip(variant, "group_sums", &CudaVariant::group_sums, 0);
  EXPECT_NE(generator.emit(desc, variant).find("GROUP_SUMS = 1"), std::string::npos);
  CudaVariant scaled = variant;
  scaled.group_sums = 0;
  EXPECT_NE(generator.emit(desc, scaled).find("GROUP_SUMS = 0"), std::string::npos);
  // Offered beside each short tile's scaled form, never for tiles over group_sums_max_rows.
  const std::vector<CudaVariant> candidates = generator.candidates(desc);
  const auto with_sums = std::count_if(candidates.begin(), candidates.end(),
                                       [](const CudaVariant& v) { return v.group_sums == 1; });
  EXPECT_GE(with_sums, 2);
  for (const CudaVariant& candidate : candidates) {
    if (candidate.group_sums == 0) continue;
    EXPECT_LE(candidate.block_m, WgmmaGenerator::group_sums_max_rows);
    CudaVariant twin = candidate;
    twin.group_sums = 0;
    EXPECT_NE(std::find(candidates.begin(), candidates.end(), twin), candidates.end())
        << variant_name(desc, candidate, "sm_90a");
  }
  const OpDesc tall = descriptor("m=256,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  for (const CudaVariant& candidate : generator.candidates(tall))
    EXPECT_TRUE(candidate.group_sums == 0 || candidate.block_m <= 64) << variant_name(tall, candidate, "sm_90a");
  CudaVariant other_value = variant;
  other_value.group_sums = 2;
  expect_refused(generator, desc, other_value, "must be 0");
  CudaVariant taller = variant;
  taller.block_m = 128, taller.block_n = 128, taller.warps = 8, taller.block_k = 64;
  expect_refused(generator, desc, taller, "up to 64 rows");
  expect_refused(generator, descriptor("m=32,n=4096,k=4096,bits=4,group=64,zero=int,act=bf16"), variant, "inside one group");
  expect_refused(generator, descriptor("m=32,n=4096,k=4096,bits=4,group=128,zero=float,act=fp16"), variant, "zero=float");
  expect_refused(generator, descriptor("m=32,n=4096,k=4096,bits=8,group=128,zero=int,act=bf16"), variant, "9 significant bits");
  EXPECT_TRUE(generator.is_valid(descriptor("m=32,n=4096,k=4096,bits=8,group=128,zero=int,act=fp16"), variant, 9));
  EXPECT_TRUE(generator.is_valid(descriptor("m=32,n=4096,k=4104,bits=3,group=-1,zero=none,act=bf16"), variant, 9));
  CudaVariant mma;
  mma.family = CudaFamily::mma;
  mma.group_sums = 1;
  EXPECT_NE(family_field_misuse(mma).find("group_sums"), std::string::npos) << family_field_misuse(mma);
}

// Group-sum candidates through NVRTC at every width, zero point kind and activation type they serve.
TEST(CudaWgmmaCompile, GroupSumsVariantsCompileForHopper) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  std::vector<testing::Program> programs;  // compiled several at once (compile_failures)
  for (const char* text : {"m=32,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=64,n=1001,k=4104,bits=8,group=-1,zero=none,act=fp16,out=fp32",
                           "m=17,n=4096,k=4096,bits=2,group=256,zero=int,act=bf16,out=fp16,bias=1",
                           "m=33,n=4096,k=4096,bits=3,group=128,zero=none,act=fp16,out=bf16",
                           "m=50,n=4096,k=4096,bits=4,group=64,zero=int,act=fp16,out=fp16"}) {
    const OpDesc desc = descriptor(text);
    int of_desc = 0;
    for (const CudaVariant& variant : generator.candidates(desc)) {
      if (variant.group_sums == 0 || variant.split_k > 2) continue;
      programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, "sm_90a"), "sm_90a"});
      ++of_desc;
    }
    EXPECT_GE(of_desc, 1) << text;
  }
  EXPECT_GE(programs.size(), 6u);
  EXPECT_EQ(testing::compile_failures(programs), "");
}

// Every group-sum candidate against the reference at odd shapes: each width, zero=none and int,
// bf16 and fp16, groups of one and of two stages and whole K, K ending inside a stage and inside a
// group, N ending inside a panel, M at and past the tiles' edges; splits (whose runs may start or
// end inside a group) and cluster splits as the candidates offer them, and one stream-K grid of
// 64-row tiles (its segments start and end inside groups), which the candidates do not offer.
TEST(CudaWgmma, GroupSumsAtOddShapes) {
  WgmmaGenerator generator;
  std::vector<Case> cases;
  int descs = 0;
  auto add = [&](const std::string& text, std::initializer_list<int> rows) {
    for (int m : rows) {
      const OpDesc desc = descriptor(fmt::format("m={},{}", m, text));
      ++descs;
      int added = 0;
      for (const CudaVariant& variant : generator.candidates(desc))
        if (variant.group_sums == 1) cases.push_back({desc, variant}), ++added;
      EXPECT_GE(added, 1) << to_string(desc);
    }
  };
  add("n=1000,k=4224,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1", {1, 17, 32, 33, 64});
  add("n=4095,k=4104,bits=4,group=-1,zero=none,act=fp16,out=fp16", {16, 63});
  add("n=1001,k=2304,bits=4,group=256,zero=int,act=fp16,out=fp32,bias=1", {9, 40});
  add("n=200,k=1024,bits=8,group=128,zero=int,act=fp16,out=fp16,bias=1", {33, 64});
  add("n=1000,k=4160,bits=2,group=64,zero=none,act=bf16,out=bf16", {50, 64});
  add("n=37,k=136,bits=2,group=-1,zero=int,act=fp16,out=fp32", {5});
  add("n=1001,k=4104,bits=3,group=-1,zero=none,act=bf16,out=bf16,bias=1", {17, 64});
  add("n=1000,k=1152,bits=3,group=128,zero=int,act=fp16,out=fp16", {31});
  CudaVariant streamed;
  streamed.family = CudaFamily::wgmma;
  streamed.warps = 4, streamed.block_n = 64, streamed.block_m = 64, streamed.block_k = 128, streamed.stages = 4;
  streamed.stream_k = 60, streamed.group_sums = 1;
  const OpDesc stream_desc = descriptor("m=100,n=1000,k=4352,bits=4,group=256,zero=int,act=bf16,out=bf16,bias=1");
  ASSERT_TRUE(generator.is_valid(stream_desc, streamed, 9)) << generator.is_valid(stream_desc, streamed, 9).reason;
  cases.push_back({stream_desc, streamed});
  EXPECT_GE(cases.size(), static_cast<std::size_t>(descs) * 2);
  SKIP_WITHOUT_HOPPER();  // (the case list above is checked without a GPU too)
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

}  // namespace
}  // namespace lowbit::cuda
