// The *how* of a CUDA kernel. Searched by the tuner, stored in the cache as JSON.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "lowbit/descriptor.h"
#include "lowbit/fields.h"

namespace lowbit::cuda {

// gemv: CUDA-core FMAs (templates/gemv.cuh); gemv_mma: tensor-core mma.sync with the
// weights as the A operand (templates/gemv_mma.cuh). Both serve M = 1..8. dequant_gemm:
// dequantize to bf16/fp16 then a cuBLASLt GEMM, for large M (codegen/cuda/dequant_gemm_kernel.h).
// mma: tiled tensor-core GEMM with a cp.async pipeline for medium M (templates/mma_gemm.cuh).
// wgmma: Hopper (sm_90a) warpgroup GEMM for medium and large M (templates/wgmma_gemm.cuh).
enum class CudaFamily { gemv, gemv_mma, dequant_gemm, mma, wgmma };
std::string_view to_string(CudaFamily family);

}  // namespace lowbit::cuda

template <>
struct lowbit::EnumNames<lowbit::cuda::CudaFamily> {
  static constexpr std::array<std::string_view, 5> names{"gemv", "gemv_mma", "dequant_gemm", "mma", "wgmma"};
};

namespace lowbit::cuda {

// The gemv families read family, warps and unroll; the mma family reads family and the tile
// fields (warps must then be warps_n * warps_m * warps_k, unroll stays at its default); the
// wgmma family reads block_n, block_m, block_k and stages (warps = block_n / 16, the warp
// layout fields stay 0), split_k (blocks along K, each a run of whole stages, summed by a
// second kernel) and producer (0: every thread copies; 1: one more warpgroup alone copies,
// through mbarriers) and stream_k (that many persistent blocks share the tiles' k iterations
// equally, partial tiles fixed up in a workspace; 0: off) and, with stream_k, remainder_split (0:
// every tile shared; r > 0: the tiles of the grid's full waves run whole, one per block in turn,
// and only the remaining tiles' k iterations are shared, by min(stream_k, r x those tiles)
// blocks) and stream_k_plan (0: even runs; 1: runs planned against the fix-up's cost,
// codegen/cuda/stream_k_plan.h) and, with split_k > 1, cluster_split (1: a tile's split_k blocks form one thread-block
// cluster and sum their accumulators in its distributed shared memory, no second kernel) and
// group_sums (1: the weights enter the wgmmas as q - z, unscaled, and each group's fp32 sums are
// scaled into the totals at its end; tiles of up to 64 rows) and, with stream_k at m=0 (an any-M
// kernel), schedule_rows (the rows its stream-K schedule is laid out for, a row range's top;
// a call of fewer rows masks the rest, one of more is refused; 0: laid out for each call's rows
// at run time, with even runs).
// gemv_mma also reads block_k (k a
// warp copies per stage of its ring; 0 = its format's 512-byte default), split_k (blocks per panel along K, a range of whole
// groups each, summed by a second kernel) and bulk_copy (sm_90: the ring filled by bulk
// copies) and panels (16-column panels per block, walked in turn with the ring kept running)
// and prefetch (1: each warp prefetches its weight span into L2 when it starts) and block_n (the
// columns each warp, and so its block, covers: 2 or 4 adjacent 16-column panels over the warp's
// k range, one copy of x serving them; 0: one panel).
// Every other family needs split_k=1, producer=0, bulk_copy=0, panels=1, prefetch=0,
// stream_k=0, remainder_split=0, stream_k_plan=0, cluster_split=0, group_sums=0, schedule_rows=0. The tile fields, split_k,
// producer, bulk_copy, panels, prefetch, stream_k, remainder_split, cluster_split, stream_k_plan, group_sums and schedule_rows came
// later: JSON without them (older caches) reads as these defaults.
struct CudaVariant {
  CudaFamily family = CudaFamily::gemv;
  int warps = 4;   // warps per block; they split one panel's K (gemv), or the warp layout's product (mma)
  int unroll = 2;  // gemv: 16-byte loads a lane keeps in flight (whole chunks); gemv_mma: cp.async stages
  int block_n = 0;  // mma: output columns per block (whole 16-column panels); gemv_mma: per warp (0: 16)
  int block_m = 0;  // mma: rows of x per block
  int block_k = 0;  // mma: k per pipeline stage; gemv_mma: k per warp and stage (0: the format's default)
  int stages = 0;   // mma: cp.async pipeline depth; dequant_gemm: tiles in flight per block (cp.async)
  int warps_n = 0;  // mma: warp layout, warps along N ...
  int warps_m = 0;  // ... along M ...
  int warps_k = 0;  // ... and splitting each stage's k-tiles (summed in shared memory)
  int split_k = 1;   // wgmma, gemv_mma: blocks along K, fp32 partials summed by a second kernel
  int producer = 0;  // wgmma: 1 = a warp-specialized copy warpgroup and full/empty mbarriers per slot
  int bulk_copy = 0; // gemv_mma, sm_90: 1 = stages filled by bulk copies (TMA engine), 0 = per-lane cp.async
  int panels = 1;    // gemv_mma: 16-column panels one block walks with one ring (1, 2, 4 or 8)
  int prefetch = 0;  // gemv_mma: 1 = each warp asks L2 for its whole weight span when it starts
  int stream_k = 0;  // wgmma: persistent blocks of a stream-K schedule (0: one block per tile)
  int remainder_split = 0;  // wgmma with stream_k: whole tiles for the full waves, the rest shared (0: all shared)
  int cluster_split = 0;    // wgmma with split_k > 1: 1 = a tile's splits are one cluster, summed in its shared memory
  int stream_k_plan = 0;    // wgmma with stream_k: 1 = the blocks' runs planned against the fix-up's cost (0: even)
  int group_sums = 0;       // wgmma: 1 = unscaled weights, each group's sums scaled into fp32 totals (0: scaled weights)
  int schedule_rows = 0;    // wgmma stream-K at m=0: the rows its schedule covers (0: an exact M's own;
                            // at m=0 each call's, laid out at run time)

  bool operator==(const CudaVariant&) const = default;

  static constexpr auto fields() {
    return std::tuple{field("family", &CudaVariant::family),   field("warps", &CudaVariant::warps),
                      field("unroll", &CudaVariant::unroll),   field("block_n", &CudaVariant::block_n),
                      field("block_m", &CudaVariant::block_m), field("block_k", &CudaVariant::block_k),
                      field("stages", &CudaVariant::stages),   field("warps_n", &CudaVariant::warps_n),
                      field("warps_m", &CudaVariant::warps_m), field("warps_k", &CudaVariant::warps_k),
                      field("split_k", &CudaVariant::split_k), field("producer", &CudaVariant::producer),
                      field("bulk_copy", &CudaVariant::bulk_copy), field("panels", &CudaVariant::panels),
                      field("prefetch", &CudaVariant::prefetch), field("stream_k", &CudaVariant::stream_k),
                      field("remainder_split", &CudaVariant::remainder_split),
                      field("cluster_split", &CudaVariant::cluster_split),
                      field("stream_k_plan", &CudaVariant::stream_k_plan),
                      field("group_sums", &CudaVariant::group_sums),
                      field("schedule_rows", &CudaVariant::schedule_rows)};
  }
};

// Grid, block and dynamic shared memory of one launch, computed by the family's generator.
struct LaunchGeometry {
  unsigned grid_x = 1;
  unsigned grid_y = 1;
  unsigned grid_z = 1;
  unsigned threads = 32;
  unsigned shared_bytes = 0;
  unsigned cluster_z = 1;  // blocks of one thread-block cluster along z (1: no cluster launch)
};

// Complete, parseable name, e.g. "cuda_sm90a_gemv_w4g128_m1_w4u2", "cuda_sm90a_gemvmma_w4g128_m1_w4u2",
// "cuda_sm90a_mma_w4g128_m64_n128m64k64_s4_w4x2x1" (tile n x m x k, stages, warps n x m x k),
// "cuda_sm90a_dequantgemm_w4g128_m1024_w8u2s3" (warps, unroll, stages of the dequantization pass),
// "cuda_sm90a_wgmma_w4g128_m1024_n128m256k64_s4" (tile n x m x k, stages; "_split4" appended
// when split_k > 1 ("_cs4" instead with cluster_split), "_ws" when producer = 1, "_sk132" with stream_k = 132 blocks, then "r2" with
// remainder_split = 2, then "p" with stream_k_plan = 1, then "_gs" with group_sums = 1, then "_to256" with
// schedule_rows = 256); gemv_mma appends "_n64" when block_n is set, "_k128" when block_k is set,
// "_split2" when split_k > 1, "_bulk" with bulk_copy and "_p4" when panels > 1.
std::string variant_name(const OpDesc& desc, const CudaVariant& variant, const std::string& arch);
// Why a variant may not carry a field its family does not read (split_k, producer, stream_k,
// remainder_split, bulk_copy, panels, prefetch away from their neutral values), or empty when it may.
std::string family_field_misuse(const CudaVariant& variant);
nlohmann::json to_json(const CudaVariant& variant);
CudaVariant variant_from_json(const nlohmann::json& json);

}  // namespace lowbit::cuda
