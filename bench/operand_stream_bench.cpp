// lowbit_operand_stream_bench: is the wgmma family's main loop bound by the bytes it streams from
// L2? (templates/wgmma_gemm.cuh: every block copies, each k64 stage, its x tile, BLOCK_M rows x
// 128 bytes, and its weights, 128 columns x 32 bytes; x is the same for every block of a row
// tile, so it comes from L2.) This tool streams the same bytes with no arithmetic at all, one
// block an SM, every SM at once, a ring of 4 to 6 stages (bulk copies of 4 or 16 KiB), RUN stages
// a block, five ways (the mbarrier waits by try_wait or test_wait):
//   cp.async           128 threads issue 16-byte cp.async copies (the copy warpgroup's way): x
//                      read row by row from an x of RUN x 64 k per row, weights the block's own;
//   cp.async ring      the same copies through the copy warpgroup's mbarrier ring (full and
//                      empty barriers, 128 more threads waiting as the consumers would);
//   cp.async half x    the same with half the x rows: what a stage would cost if half its x
//                      arrived some other way (the ceiling of sharing x between two blocks);
//   bulk               one thread, which does nothing else, issues cp.async.bulk copies (the
//                      TMA engine, 1-D) of x, laid out stage by stage so a stage is one copy or
//                      a few, and of the weights, completing on the slot's mbarrier; 96 other
//                      threads wait on it and release the slot;
//   bulk multicast     clusters of 2: each block copies half of the stage's x with
//                      .multicast::cluster into both blocks' shared memory, and its own weights;
//                      a slot is refilled when both blocks have released it (an empty mbarrier
//                      of 2 arrivals, one local and one from the peer).
//   tensor             the bulk case with x by the TMA engine's 2-D tiled copies instead: one
//                      copy a stage of a box of 64 k x BLOCK_M rows through a tensor map
//                      (cuTensorMapEncodeTiled) of the row-major x, landing 128-byte swizzled
//                      as the wgmma ring lays x out;
//   tensor multicast   clusters of 2: each block copies a box of half the rows with
//                      .multicast::cluster into both blocks (the form CUTLASS's Hopper GEMMs
//                      share an operand in), the ring as in bulk multicast; also with boxes
//                      of 32 rows (box32), the plain tensor case launched in clusters of 2
//                      (in pairs: what the clusters' placement costs), and so with each slot
//                      refilled only once both blocks released it (coupled: what the pairs'
//                      shared empty barriers cost, without multicast); "rel.cluster": tensor and
//                      tensor multicast with the releases arriving as .release.cluster (the form
//                      every mbarrier case had before session 26; it set their pace).
// --x-sets N: the cp.async and tensor cases read N distinct 256-row tiles of x, blocks 2i and 2i + 1
// tile i % N (the bulk cases keep one): with 1, every SM asks L2 for the same lines at once.
// Prints, per case, the launch's median time over --repeats (CUDA events), the blocks' median
// time a stage (from their own start), and the bytes the SMs received and L2 served per second.
// The tensor cases need a driver with cuTensorMapEncodeTiled (CUDA 12 on); without one they are
// skipped with a printed reason.
// Usage: lowbit_operand_stream_bench [--repeats N] [--x-sets N] [--compile-only]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/compile_only.h"
#include "bench/cuda_module.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/device_buffer.h"

namespace {

using lowbit::bench::Events;
using lowbit::bench::launch;
using lowbit::bench::launch_clusters;
using lowbit::bench::median;
using lowbit::bench::Module;
using lowbit::cuda::DeviceBuffer;

constexpr int block_threads = 128;  // the copy warpgroup (the ring case adds 128 waiting threads)
constexpr int run_stages = 64;      // K = 4096 in k64 stages
constexpr int weight_bytes = 4096;  // 128 columns x 64 k at 4 bits

// Compiled once per x tile (X_BYTES a stage: BLOCK_M x 128), with W_BYTES and RUN in front.
constexpr const char* kernel_source = R"(
typedef unsigned int u32;
typedef unsigned long long u64;
#define SLOT_BYTES (X_BYTES + W_BYTES)

__device__ __forceinline__ u64 now() {
  u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t)::"memory");
  return t;
}
__device__ __forceinline__ u32 shared_address(const void* pointer) {
  return static_cast<u32>(__cvta_generic_to_shared(pointer));
}
__device__ __forceinline__ void record(u64* stamps, u64 start) {
  if (threadIdx.x == 0) {
    stamps[2 * blockIdx.x] = start;
    stamps[2 * blockIdx.x + 1] = now();
  }
}

// The first x row of this block's set: blocks 2i and 2i + 1 (a cluster's pair) read set i % X_SETS,
// each set 256 rows of x (X_SETS distinct row tiles, as the grid's blocks of X_SETS row tiles would).
__device__ __forceinline__ int x_set_row() { return static_cast<int>(blockIdx.x / 2 % X_SETS) * 256; }

// x: [rows][RUN * 128 bytes] (a row's 64 k of stage s at byte 128 s); weights: [blocks][RUN][W_BYTES].
// `rows`: the x rows a stage copies (X_BYTES / 128, or half of them).
__device__ __forceinline__ void issue_cp_async(unsigned char* slot, const uint4* x, const uint4* w, int stage, int rows,
                                               int copier, int copiers) {
  for (int piece = copier; piece < rows * 8; piece += copiers) {
    const uint4* source = x + static_cast<long long>(x_set_row() + piece / 8) * (RUN * 8) + stage * 8 + piece % 8;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(slot + piece * 16)), "l"(source));
  }
  const uint4* weights = w + (static_cast<long long>(blockIdx.x) * RUN + stage) * (W_BYTES / 16);
  for (int piece = copier; piece < W_BYTES / 16; piece += copiers)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(slot + X_BYTES + piece * 16)),
                 "l"(weights + piece));
  asm volatile("cp.async.commit_group;\n" ::);
}

__device__ __forceinline__ void stream_cp_async(const uint4* x, const uint4* w, u64* stamps, int rows) {
  extern __shared__ __align__(128) unsigned char ring[];
  __syncthreads();
  const u64 start = now();
  for (int stage = 0; stage < SLOTS - 1; ++stage) issue_cp_async(ring + stage * SLOT_BYTES, x, w, stage, rows, threadIdx.x, blockDim.x);
  for (int stage = 0; stage < RUN; ++stage) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(SLOTS - 2));  // this stage's copies have landed
    __syncthreads();  // every thread's, and every thread is past the previous stage
    const int next = stage + SLOTS - 1;
    if (next < RUN)
      issue_cp_async(ring + next % SLOTS * SLOT_BYTES, x, w, next, rows, threadIdx.x, blockDim.x);
    else
      asm volatile("cp.async.commit_group;\n" ::);
  }
  record(stamps, start);
}

extern "C" __global__ void cp_async_full(const uint4* x, const uint4* w, const uint4*, u64* stamps) {
  stream_cp_async(x, w, stamps, X_BYTES / 128);
}
extern "C" __global__ void cp_async_half(const uint4* x, const uint4* w, const uint4*, u64* stamps) {
  stream_cp_async(x, w, stamps, X_BYTES / 256);
}

__device__ __forceinline__ void barrier_init(u32 barrier, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(barrier), "r"(count) : "memory");
}
__device__ __forceinline__ void expect_bytes(u32 barrier, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(barrier), "r"(bytes) : "memory");
}
__device__ __forceinline__ void wait_parity(u32 barrier, u32 parity) {
  u32 done = 0;
  while (!done)
    asm volatile(
        "{\n .reg .pred p;\n mbarrier." WAIT ".parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(barrier), "r"(parity)
        : "memory");
}
__device__ __forceinline__ void bulk_copy(u32 target, const void* source, u32 bytes, u32 barrier) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(target),
               "l"(source), "r"(bytes), "r"(barrier)
               : "memory");
}
// The same offsets in every block of the cluster that `mask` names.
__device__ __forceinline__ void bulk_copy_multicast(u32 target, const void* source, u32 bytes, u32 barrier, unsigned short mask) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], %2, [%3], %4;\n" ::"r"(
          target),
      "l"(source), "r"(bytes), "r"(barrier), "h"(mask)
      : "memory");
}
__device__ __forceinline__ u32 cluster_rank() {
  u32 rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
  return rank;
}
__device__ __forceinline__ void cluster_barrier() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}

// Thread 0 alone copies (it never waits on a full barrier, so it runs SLOTS - 1 stages ahead
// whatever the consumers do): a stage's x by copy_x(target, stage, rank, barrier), then its
// weights by one bulk copy, all completing on full[slot]; warps 1-3 stand for the consumers:
// they wait on full[slot], meet at a named barrier, and one of them releases the slot on
// empty[slot]. MULTICAST: clusters of 2, each block copies half of a stage's x into both blocks,
// so a slot is refilled only when both blocks' consumers have released it (empty[slot] counts 2
// arrivals, its own consumers' and the peer's).
// PAIRED (implied by MULTICAST): clusters of 2 whose slots are refilled only once both blocks
// released them (without MULTICAST each block still copies all its own bytes: what the coupling
// alone costs).
// The releases arrive with mbarrier.arrive's default semantics (release at CTA scope, as the
// wgmma template's ring and CUTLASS's ClusterBarrier::arrive on a peer's barrier do);
// CLUSTER_RELEASE: with .release.cluster instead, as every mbarrier case here did before
// session 26 (it held each of them at 0.6-1.0 us a stage: docs/benchmarks.md, session 26).
template <bool MULTICAST, class CopyX, bool PAIRED = MULTICAST, bool CLUSTER_RELEASE = false>
__device__ __forceinline__ void stream_by_one_thread(unsigned char* ring, const uint4* w, u64* stamps, CopyX copy_x) {
  __shared__ __align__(8) u64 full[SLOTS];
  __shared__ __align__(8) u64 empty[SLOTS];
  const u32 rank = PAIRED ? cluster_rank() : 0;
  if (threadIdx.x == 0) {
    for (int slot = 0; slot < SLOTS; ++slot) {
      barrier_init(shared_address(&full[slot]), 1);
      barrier_init(shared_address(&empty[slot]), PAIRED ? 2 : 1);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  if (PAIRED)
    cluster_barrier();  // both blocks' barriers exist before any copy or arrival reaches them
  else
    __syncthreads();
  const u64 start = now();
  if (threadIdx.x == 0) {
    const unsigned char* weights =
        reinterpret_cast<const unsigned char*>(w) + static_cast<long long>(blockIdx.x) * RUN * W_BYTES;
    for (int stage = 0; stage < RUN; ++stage) {
      const int slot = stage % SLOTS;
      const u32 target = shared_address(ring + slot * SLOT_BYTES);
      const u32 barrier = shared_address(&full[slot]);
      if (stage >= SLOTS) wait_parity(shared_address(&empty[slot]), (stage / SLOTS - 1) & 1);  // released by all
      expect_bytes(barrier, SLOT_BYTES);
      copy_x(target, stage, rank, barrier);
      bulk_copy(target + X_BYTES, weights + static_cast<long long>(stage) * W_BYTES, W_BYTES, barrier);
    }
  } else if (threadIdx.x >= 32) {
    for (int stage = 0; stage < RUN; ++stage) {
      const int slot = stage % SLOTS;
      wait_parity(shared_address(&full[slot]), (stage / SLOTS) & 1);
      asm volatile("bar.sync 1, 96;\n" ::: "memory");  // every consumer is done with the stage
      if (threadIdx.x == 32) {
        const u32 released = shared_address(&empty[slot]);
        if (CLUSTER_RELEASE)
          asm volatile("mbarrier.arrive.release.cluster.shared::cta.b64 _, [%0];\n" ::"r"(released) : "memory");
        else
          asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(released) : "memory");
        if (PAIRED) {
          u32 peer;
          asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(peer) : "r"(released), "r"(rank ^ 1u));
          if (CLUSTER_RELEASE)
            asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" ::"r"(peer) : "memory");
          else
            asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(peer) : "memory");
        }
      }
    }
    if (threadIdx.x == 32) {
      stamps[2 * blockIdx.x] = start;
      stamps[2 * blockIdx.x + 1] = now();
    }
  }
  __syncthreads();
  if (PAIRED) cluster_barrier();  // no block leaves while its peer may still copy into it or arrive on it
}

// x_tiled: [RUN][X_BYTES] (stage by stage), copied by 1-D bulk copies of at most CHUNK_BYTES.
template <bool MULTICAST>
__device__ __forceinline__ void stream_bulk(const uint4* x_tiled, const uint4* w, u64* stamps) {
  extern __shared__ __align__(128) unsigned char ring[];
  stream_by_one_thread<MULTICAST>(ring, w, stamps, [&](u32 target, int stage, u32 rank, u32 barrier) {
    const unsigned char* x_stage = reinterpret_cast<const unsigned char*>(x_tiled) + static_cast<long long>(stage) * X_BYTES;
    if (MULTICAST) {
      for (int offset = 0; offset < X_BYTES / 2; offset += CHUNK_BYTES)
        bulk_copy_multicast(target + rank * (X_BYTES / 2) + offset, x_stage + rank * (X_BYTES / 2) + offset,
                            X_BYTES / 2 - offset < CHUNK_BYTES ? X_BYTES / 2 - offset : CHUNK_BYTES, barrier, 0x3);
    } else {
      for (int offset = 0; offset < X_BYTES; offset += CHUNK_BYTES)
        bulk_copy(target + offset, x_stage + offset, X_BYTES - offset < CHUNK_BYTES ? X_BYTES - offset : CHUNK_BYTES,
                  barrier);
    }
  });
}

// A CUtensorMap (128 opaque bytes, 64-byte aligned), passed by value as a __grid_constant__
// parameter so its address is a parameter-space address the TMA engine may read.
struct __align__(64) TensorMap {
  unsigned long long words[16];
};
// The box of the map at (k, row) into `target` (1024-byte aligned for the 128-byte swizzle),
// completing on `barrier`; MULTICAST: into the same offset of every block of the cluster `mask`
// names, completing on each one's barrier at the same offset.
template <bool MULTICAST>
__device__ __forceinline__ void tensor_copy(u32 target, const TensorMap& map, int k, int row, u32 barrier,
                                            unsigned short mask) {
  const unsigned long long map_address = reinterpret_cast<unsigned long long>(&map);
  if (MULTICAST)
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
        " [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(target),
        "l"(map_address), "r"(k), "r"(row), "r"(barrier), "h"(mask)
        : "memory");
  else
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
            target),
        "l"(map_address), "r"(k), "r"(row), "r"(barrier)
        : "memory");
}

// x by tensor copies: `map` covers x ([rows][RUN * 64] 16-bit values, row-major) with a box of
// 64 k x X_BYTES / 128 rows (MULTICAST: half as many, block `rank` copying the rank-th half into
// both blocks). The ring starts at the next 1024-byte boundary of the dynamic window (the launch
// asks for 1 KiB more).
// BOX_ROWS: the map's box rows; a block's part of a stage (MULTICAST: half the rows) is copied as
// that part's rows / BOX_ROWS boxes, each 128 x BOX_ROWS bytes further into the slot (whole
// 8-row swizzle atoms). (A slot refilled once only its own block had released it deadlocked: the
// peer's copies then land on a full barrier's earlier phase and upset its byte count.)
template <bool MULTICAST, int BOX_ROWS, bool PAIRED = MULTICAST, bool CLUSTER_RELEASE = false>
__device__ __forceinline__ void stream_tensor(const uint4* w, u64* stamps, const TensorMap& map) {
  extern __shared__ __align__(128) unsigned char window[];
  unsigned char* ring = window + ((1024u - (shared_address(window) & 1023u)) & 1023u);
  auto copy_x = [&](u32 target, int stage, u32 rank, u32 barrier) {
    constexpr int PART_ROWS = MULTICAST ? X_BYTES / 256 : X_BYTES / 128;
    for (int box = 0; box < PART_ROWS / BOX_ROWS; ++box) {
      const int row = (MULTICAST ? static_cast<int>(rank) * PART_ROWS : 0) + box * BOX_ROWS;  // a paired block copies all of its own
      tensor_copy<MULTICAST>(target + row * 128, map, stage * 64, x_set_row() + row, barrier, MULTICAST ? 0x3 : 0);
    }
  };
  stream_by_one_thread<MULTICAST, decltype(copy_x), PAIRED, CLUSTER_RELEASE>(ring, w, stamps, copy_x);
}

extern "C" __global__ void tensor(const uint4*, const uint4* w, const uint4*, u64* stamps, const __grid_constant__ TensorMap map) {
  stream_tensor<false, X_BYTES / 128>(w, stamps, map);
}
extern "C" __global__ void tensor_multicast(const uint4*, const uint4* w, const uint4*, u64* stamps,
                                            const __grid_constant__ TensorMap map) {
  stream_tensor<true, X_BYTES / 256>(w, stamps, map);
}
extern "C" __global__ void tensor_coupled(const uint4*, const uint4* w, const uint4*, u64* stamps,
                                          const __grid_constant__ TensorMap map) {
  stream_tensor<false, X_BYTES / 128, true>(w, stamps, map);
}
extern "C" __global__ void tensor_cluster_release(const uint4*, const uint4* w, const uint4*, u64* stamps,
                                                  const __grid_constant__ TensorMap map) {
  stream_tensor<false, X_BYTES / 128, false, true>(w, stamps, map);
}
extern "C" __global__ void tensor_multicast_cluster_release(const uint4*, const uint4* w, const uint4*, u64* stamps,
                                                            const __grid_constant__ TensorMap map) {
  stream_tensor<true, X_BYTES / 256, true, true>(w, stamps, map);
}
extern "C" __global__ void tensor_multicast_box32(const uint4*, const uint4* w, const uint4*, u64* stamps,
                                                  const __grid_constant__ TensorMap map) {
  stream_tensor<true, 32>(w, stamps, map);
}

// The copy warpgroup's ring (templates/wgmma_gemm.cuh, PRODUCER = 1): threads 0-127 copy with
// cp.async and arrive on full[slot] when their copies land (.noinc, 128 arrivals); threads
// 128-255 stand for the consumers: they wait on full[slot] and release the slot on empty[slot]
// (128 arrivals), which the copiers wait on before refilling it.
extern "C" __global__ void cp_async_ring(const uint4* x, const uint4* w, const uint4*, u64* stamps) {
  extern __shared__ __align__(128) unsigned char ring[];
  __shared__ __align__(8) u64 full[SLOTS];
  __shared__ __align__(8) u64 empty[SLOTS];
  if (threadIdx.x == 0)
    for (int slot = 0; slot < SLOTS; ++slot) {
      barrier_init(shared_address(&full[slot]), 128);
      barrier_init(shared_address(&empty[slot]), 128);
    }
  __syncthreads();
  const u64 start = now();
  if (threadIdx.x < 128) {
    for (int stage = 0; stage < RUN; ++stage) {
      const int slot = stage % SLOTS;
      if (stage >= SLOTS) wait_parity(shared_address(&empty[slot]), (stage / SLOTS - 1) & 1);
      issue_cp_async(ring + slot * SLOT_BYTES, x, w, stage, X_BYTES / 128, threadIdx.x, 128);
      asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(shared_address(&full[slot])) : "memory");
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
  } else {
    for (int stage = 0; stage < RUN; ++stage) {
      const int slot = stage % SLOTS;
      wait_parity(shared_address(&full[slot]), (stage / SLOTS) & 1);
      asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(&empty[slot])) : "memory");
    }
    if (threadIdx.x == 128) {
      stamps[2 * blockIdx.x] = start;
      stamps[2 * blockIdx.x + 1] = now();
    }
  }
}

extern "C" __global__ void bulk(const uint4*, const uint4* w, const uint4* x_tiled, u64* stamps) {
  stream_bulk<false>(x_tiled, w, stamps);
}
extern "C" __global__ void bulk_multicast(const uint4*, const uint4* w, const uint4* x_tiled, u64* stamps) {
  stream_bulk<true>(x_tiled, w, stamps);
}
)";

// x_bytes a stage (BLOCK_M x 128), a ring of `slots` stages, bulk copies of at most chunk_bytes;
// the mbarrier waits poll with `wait` ("try_wait", which may suspend the thread for a while, or
// "test_wait", which returns at once).
std::string program_source(int x_bytes, int slots, int chunk_bytes, const char* wait, int x_sets) {
  return fmt::format(
             "#define X_BYTES {}\n#define W_BYTES {}\n#define RUN {}\n#define SLOTS {}\n#define CHUNK_BYTES {}\n"
             "#define WAIT \"{}\"\n#define X_SETS {}\n",
             x_bytes, weight_bytes, run_stages, slots, chunk_bytes, wait, x_sets) +
         kernel_source;
}

// The ring depths and bulk copy sizes tried for a tile of `rows` rows of x (the slots fill at most
// 216 KiB: 5 of the 256-row tile's 36 KiB stages, 6 of the 128-row tile's 20 KiB).
struct Program {
  int rows;
  int slots;
  int chunk_bytes;
  const char* wait;
};
constexpr Program programs[] = {{256, 4, 16384, "try_wait"}, {256, 4, 16384, "test_wait"}, {256, 5, 4096, "try_wait"},
                                {256, 5, 4096, "test_wait"}, {128, 4, 16384, "try_wait"}, {128, 4, 16384, "test_wait"},
                                {128, 6, 4096, "try_wait"},  {128, 6, 4096, "test_wait"}};

// A tensor map of x ([256 rows][run_stages * 64] bf16, row-major) whose box is 64 k x box_rows
// rows, landing 128-byte swizzled (64 k of bf16 are one 128-byte row of the box).
CUtensorMap x_tensor_map(void* x, int box_rows, int x_sets) {
  const cuuint64_t dimensions[2] = {static_cast<cuuint64_t>(run_stages) * 64, static_cast<cuuint64_t>(256) * x_sets};
  const cuuint64_t row_stride[1] = {static_cast<cuuint64_t>(run_stages) * 128};
  const cuuint32_t box[2] = {64, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  CUtensorMap map;
  lowbit::cuda::check(lowbit::cuda::driver().cuTensorMapEncodeTiled(
                          &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, x, dimensions, row_stride, box, element_strides,
                          CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                      "cuTensorMapEncodeTiled");
  return map;
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 20;
  bool compile_only = false;
  CLI::App app{"lowbit_operand_stream_bench: the wgmma main loop's copies alone (cp.async, bulk, tensor, and their multicast)"};
  app.add_option("--repeats", repeats, "launches timed per case (the median is printed)")->check(CLI::Range(1, 1000));
  app.add_flag("--compile-only", compile_only, "compile the kernels for sm_90a with NVRTC and stop (no GPU needed)");
  int x_sets = 1;
  app.add_option("--x-sets", x_sets,
                 "distinct 256-row tiles of x: blocks 2i and 2i + 1 read tile i % N (1: every block the same x)")
      ->check(CLI::Range(1, 66));
  CLI11_PARSE(app, argc, argv);
  try {
    if (compile_only) {
      if (!lowbit::bench::nvrtc_usable()) return lowbit::bench::kMissingNvrtcExit;
      for (const Program& program : programs)
        lowbit::cuda::compile_to_cubin(program_source(program.rows * 128, program.slots, program.chunk_bytes, program.wait, x_sets), "stream",
                                       "sm_90a");
      std::printf("compiled %zu programs for sm_90a\n", std::size(programs));
      return 0;
    }
    const lowbit::cuda::DeviceInfo& device = lowbit::cuda::device_info(0);
    lowbit::cuda::make_current(0);
    const int blocks = device.sm_count / 2 * 2;  // pairs for the multicast case
    std::printf("device: %s, %d blocks of %d threads (one an SM), %d stages a block, weights %d bytes a stage, %d x set(s)\n",
                device.name.c_str(), blocks, block_threads, run_stages, weight_bytes, x_sets);
    std::printf("%-22s %6s %5s %6s %-9s %9s %9s %13s %13s\n", "case", "x rows", "slots", "chunk", "wait", "launch us",
                "us/stage", "SMs in TB/s", "L2 out TB/s");
    DeviceBuffer x(static_cast<std::size_t>(256) * x_sets * run_stages * 128);
    DeviceBuffer x_tiled(static_cast<std::size_t>(256) * run_stages * 128);
    DeviceBuffer weights(static_cast<std::size_t>(blocks) * run_stages * weight_bytes);
    DeviceBuffer stamps(static_cast<std::size_t>(blocks) * 2 * 8);
    Events events;
    for (const Program& program : programs) {
      const int x_bytes = program.rows * 128;
      const Module module(
          lowbit::cuda::compile_to_cubin(program_source(x_bytes, program.slots, program.chunk_bytes, program.wait, x_sets), "stream", device.arch()));
      struct Case {
        const char* name;
        const char* function;
        double x_in;  // x bytes a block receives a stage, in units of x_bytes
        double x_out; // x bytes L2 serves a block a stage
        bool pairs;
        unsigned threads;
        int box_rows;  // tensor cases: the map's box rows (0: no tensor map)
      };
      const Case cases[] = {{"cp.async", "cp_async_full", 1.0, 1.0, false, 128, 0},
                            {"cp.async half x", "cp_async_half", 0.5, 0.5, false, 128, 0},
                            {"cp.async ring", "cp_async_ring", 1.0, 1.0, false, 256, 0},
                            {"bulk", "bulk", 1.0, 1.0, false, 128, 0},
                            {"bulk multicast x2", "bulk_multicast", 1.0, 0.5, true, 128, 0},
                            {"tensor", "tensor", 1.0, 1.0, false, 128, program.rows},
                            {"tensor multicast x2", "tensor_multicast", 1.0, 0.5, true, 128, program.rows / 2},
                            {"tensor mc x2 box32", "tensor_multicast_box32", 1.0, 0.5, true, 128, 32},
                            {"tensor in pairs", "tensor", 1.0, 1.0, true, 128, program.rows},
                            {"tensor coupled", "tensor_coupled", 1.0, 1.0, true, 128, program.rows},
                            {"tensor, rel.cluster", "tensor_cluster_release", 1.0, 1.0, false, 128, program.rows},
                            {"tensor mc x2, rel.cl", "tensor_multicast_cluster_release", 1.0, 0.5, true, 128, program.rows / 2}};
      for (const Case& c : cases) {
        // The mbarrier cases run at every wait kind; plain cp.async has none (and no chunk): once per
        // ring depth.
        const bool uses_barriers =
            std::strcmp(c.function, "cp_async_full") != 0 && std::strcmp(c.function, "cp_async_half") != 0;
        if (!uses_barriers && std::strcmp(program.wait, "try_wait") != 0) continue;
        const bool bulk_case = std::strncmp(c.function, "bulk", 4) == 0;
        if (c.box_rows > 0 && lowbit::cuda::driver().cuTensorMapEncodeTiled == nullptr) {
          std::printf("%-22s skipped: the driver has no cuTensorMapEncodeTiled (CUDA 12 on)\n", c.name);
          continue;
        }
        const CUfunction function = module.function(c.function);
        // Tensor cases: 1 KiB more, to start the ring on a 1024-byte boundary.
        const unsigned shared = static_cast<unsigned>(program.slots * (x_bytes + weight_bytes) + (c.box_rows > 0 ? 1024 : 0));
        void* x_pointer = x.data();
        void* weights_pointer = weights.data();
        void* tiled_pointer = x_tiled.data();
        void* stamps_pointer = stamps.data();
        alignas(64) CUtensorMap map{};
        if (c.box_rows > 0) map = x_tensor_map(x.data(), c.box_rows, x_sets);
        std::vector<void*> args{&x_pointer, &weights_pointer, &tiled_pointer, &stamps_pointer};
        if (c.box_rows > 0) args.push_back(&map);
        std::vector<double> times;
        for (int r = 0; r < repeats + 2; ++r) {
          const double us = events.time([&] {
            if (c.pairs)
              launch_clusters(function, static_cast<unsigned>(blocks), 2, c.threads, shared, args);
            else
              launch(function, static_cast<unsigned>(blocks), c.threads, shared, args);
          });
          if (r >= 2) times.push_back(us);
        }
        const std::vector<uint8_t> stamp_bytes = stamps.download();
        std::vector<uint64_t> stamp_values(stamp_bytes.size() / 8);
        std::memcpy(stamp_values.data(), stamp_bytes.data(), stamp_bytes.size());
        std::vector<double> per_stage;
        for (int b = 0; b < blocks; ++b)
          per_stage.push_back(static_cast<double>(stamp_values[2 * b + 1] - stamp_values[2 * b]) * 1e-3 / run_stages);
        const double launch_us = median(times);
        const double stage_us = median(per_stage);
        // Rates over the blocks' median stage time (the launch adds its ramp and tail).
        const double in_bytes = blocks * (c.x_in * x_bytes + weight_bytes);
        const double out_bytes = blocks * (c.x_out * x_bytes + weight_bytes);
        std::printf("%-22s %6d %5d %6d %-9s %9.2f %9.3f %13.2f %13.2f\n", c.name, program.rows, program.slots,
                    bulk_case ? program.chunk_bytes : 0, uses_barriers ? program.wait : "-", launch_us, stage_us, in_bytes / stage_us * 1e-6,
                    out_bytes / stage_us * 1e-6);
      }
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_operand_stream_bench: %s\n", error.what());
    return 1;
  }
}
