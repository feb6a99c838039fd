// lowbit_deposit_bench: how fast can a stream-K block hand its fp32 partial tile to another SM?
// (templates/wgmma_gemm.cuh, StreamKWork::fix_up: a contributor stores its accumulator into its
// workspace slot and publishes a flag; the tile's owner reads the slot back.) The H100's stream-K
// timelines put a 128 KiB deposit at 3.4 us and a read at 1.1 (docs/benchmarks.md); this tool
// times the same traffic alone, two ways each, on one block per SM (256 threads, the two
// consumer warpgroups), every block at once or in staggered groups:
//   deposit registers  float4 __stcg stores from registers in the slot's order, a block barrier,
//                      thread 0's __threadfence and release flag (the template's way);
//   deposit bulk       float4 stores into shared memory in the same order, a proxy fence and a
//                      barrier, then thread 0 issues cp.async.bulk global <- shared copies of
//                      CHUNK bytes, waits for them, fences and publishes the flag;
//   read registers     float4 __ldcg loads of another block's slot, summed (the template's way);
//   read bulk          thread 0 has cp.async.bulk bring the slot into shared memory (mbarrier
//                      with the byte count), then every thread sums its float4s from there.
//   push cluster       thread-block clusters of 2 or 4: each block stores its float4s straight into
//                      the next block's (rank + 1) shared memory (st.shared::cluster through mapa),
//                      a cluster barrier (release / acquire), then sums the partial it received
//                      from its own shared memory: a hand-over inside a cluster, no L2 round trip;
//   pull cluster       the same clusters: each block lays its partial out in its own shared memory,
//                      a cluster barrier, then sums the next block's over DSMEM (ld.shared::cluster)
//                      and a last cluster barrier keeps that memory alive until it is read.
// Each block stamps %globaltimer at its start, when its part is issued (stores or bulk copies
// issued; for bulk deposits also when the shared-memory image is complete) and at its end (flag
// published / sum done). Prints one line per case: the launch's median time over --repeats (CUDA
// events), and the blocks' median and slowest issued and end times, in us from their own start.
// Usage: lowbit_deposit_bench [--repeats N] [--compile-only]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/compile_only.h"
#include "bench/cuda_module.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/device_buffer.h"
#include "lowbit/errors.h"

namespace {

using lowbit::bench::Events;
using lowbit::bench::median;
using lowbit::bench::launch;
using lowbit::bench::launch_clusters;
using lowbit::bench::Module;
using lowbit::cuda::check;
using lowbit::cuda::DeviceBuffer;
using lowbit::cuda::driver;

constexpr int block_threads = 256;  // two consumer warpgroups
constexpr int stamps_per_block = 4;  // start, staged (bulk deposits), issued, end

// Compiled once per partial size, FRAGMENTS (float4 a thread) and CHUNK_BYTES in front.
constexpr const char* kernel_source = R"(
typedef unsigned int u32;
typedef unsigned long long u64;
#define THREADS 256
#define PARTIAL_BYTES (FRAGMENTS * THREADS * 16)

__device__ __forceinline__ u64 now() {
  u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t)::"memory");
  return t;
}
// Block b starts its part (b % groups) x delay_ns after it begins: groups of blocks in turn.
__device__ __forceinline__ u64 staggered_start(int groups, long long delay_ns) {
  if (threadIdx.x == 0) {
    const u64 until = now() + (blockIdx.x % groups) * delay_ns;
    while (now() < until) {
    }
  }
  __syncthreads();
  return now();
}
__device__ __forceinline__ float4 fragment(int i) {
  const float base = static_cast<float>(threadIdx.x * 64 + i * 4) + blockIdx.x * 0.5f;
  return make_float4(base, base + 1.0f, base + 2.0f, base + 3.0f);
}
__device__ __forceinline__ void publish(u64* flag, u64 token) {
  __threadfence();
  asm volatile("st.release.gpu.global.u64 [%0], %1;\n" ::"l"(flag), "l"(token) : "memory");
}
__device__ __forceinline__ void record(u64* stamps, u64 start, u64 staged, u64 issued, u64 end) {
  u64* mine = stamps + blockIdx.x * 4;
  mine[0] = start, mine[1] = staged, mine[2] = issued, mine[3] = end;
}
__device__ __forceinline__ u32 shared_address(const void* pointer) {
  return static_cast<u32>(__cvta_generic_to_shared(pointer));
}

// Sums this thread's float4s of the partial laid out in shared memory, stamps the block's end and
// stores the sum (so the reads are not dropped).
__device__ __forceinline__ void sum_staged(const float4* staging, u64* stamps, float* sums, u64 start, u64 issued) {
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < FRAGMENTS; ++i) {
    const float4 value = staging[i * THREADS + threadIdx.x];
    sum += value.x + value.y + value.z + value.w;
  }
  __syncthreads();
  if (threadIdx.x == 0) record(stamps, start, issued, issued, now());
  sums[blockIdx.x * THREADS + threadIdx.x] = sum;
}

extern "C" __global__ void deposit_registers(float4* slots, u64* flags, u64* stamps, int groups, long long delay_ns) {
  const u64 start = staggered_start(groups, delay_ns);
  float4* mine = slots + static_cast<long long>(blockIdx.x) * FRAGMENTS * THREADS + threadIdx.x;
#pragma unroll
  for (int i = 0; i < FRAGMENTS; ++i) __stcg(mine + i * THREADS, fragment(i));
  const u64 issued = now();
  __syncthreads();
  if (threadIdx.x == 0) {
    publish(flags + blockIdx.x, 1);
    record(stamps, start, issued, issued, now());
  }
}

extern "C" __global__ void deposit_bulk(float4* slots, u64* flags, u64* stamps, int groups, long long delay_ns) {
  extern __shared__ __align__(128) float4 staging[];
  const u64 start = staggered_start(groups, delay_ns);
#pragma unroll
  for (int i = 0; i < FRAGMENTS; ++i) staging[i * THREADS + threadIdx.x] = fragment(i);
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // the image, for the async proxy
  __syncthreads();
  if (threadIdx.x != 0) return;
  const u64 staged = now();
  unsigned char* slot = reinterpret_cast<unsigned char*>(slots + static_cast<long long>(blockIdx.x) * FRAGMENTS * THREADS);
  const u32 source = shared_address(staging);
  for (int offset = 0; offset < PARTIAL_BYTES; offset += CHUNK_BYTES)
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(slot + offset),
                 "r"(source + offset), "n"(CHUNK_BYTES)
                 : "memory");
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
  const u64 issued = now();
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");  // written (visible to the generic proxy)
  publish(flags + blockIdx.x, 1);
  record(stamps, start, staged, issued, now());
}

// Block b reads the slot of block b + 1 (mod the grid), as an owner reads its contributor's.
extern "C" __global__ void read_registers(const float4* slots, u64* stamps, float* sums, int groups, long long delay_ns) {
  const u64 start = staggered_start(groups, delay_ns);
  const float4* theirs = slots + static_cast<long long>((blockIdx.x + 1) % gridDim.x) * FRAGMENTS * THREADS + threadIdx.x;
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < FRAGMENTS; ++i) {
    const float4 value = __ldcg(theirs + i * THREADS);
    sum += value.x + value.y + value.z + value.w;
  }
  const u64 issued = now();
  __syncthreads();
  if (threadIdx.x == 0) record(stamps, start, issued, issued, now());
  sums[blockIdx.x * THREADS + threadIdx.x] = sum;
}

extern "C" __global__ void read_bulk(const float4* slots, u64* stamps, float* sums, int groups, long long delay_ns) {
  extern __shared__ __align__(128) float4 staging[];
  __shared__ __align__(8) u64 landed;
  const u32 barrier = shared_address(&landed);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(barrier) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  const u64 start = staggered_start(groups, delay_ns);
  u64 issued = start;
  if (threadIdx.x == 0) {
    const unsigned char* theirs =
        reinterpret_cast<const unsigned char*>(slots + static_cast<long long>((blockIdx.x + 1) % gridDim.x) * FRAGMENTS * THREADS);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(barrier), "n"(PARTIAL_BYTES) : "memory");
    const u32 destination = shared_address(staging);
    for (int offset = 0; offset < PARTIAL_BYTES; offset += CHUNK_BYTES)
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                       destination + offset),
                   "l"(theirs + offset), "n"(CHUNK_BYTES), "r"(barrier)
                   : "memory");
    issued = now();
  }
  u32 done = 0;
  while (!done)
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(barrier)
        : "memory");
  sum_staged(staging, stamps, sums, start, issued);
}

// Clusters: every block of the cluster has started before the clock starts (the stamps then time
// the hand-over, not the cluster's co-scheduling).
__device__ __forceinline__ u32 cluster_rank() {
  u32 rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
  return rank;
}
__device__ __forceinline__ u32 cluster_blocks() {
  u32 count;
  asm volatile("mov.u32 %0, %%cluster_nctarank;\n" : "=r"(count));
  return count;
}
__device__ __forceinline__ u32 cluster_address(u32 local, u32 rank) {
  u32 remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(rank));
  return remote;
}
__device__ __forceinline__ void cluster_barrier() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}

extern "C" __global__ void push_cluster(u64* stamps, float* sums) {
  extern __shared__ __align__(128) float4 staging[];
  cluster_barrier();
  const u64 start = now();
  const u32 next = (cluster_rank() + 1) % cluster_blocks();
  const u32 target = cluster_address(shared_address(staging + threadIdx.x), next);
#pragma unroll
  for (int i = 0; i < FRAGMENTS; ++i) {
    const float4 value = fragment(i);
    asm volatile("st.shared::cluster.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"r"(target + i * THREADS * 16), "f"(value.x),
                 "f"(value.y), "f"(value.z), "f"(value.w)
                 : "memory");
  }
  const u64 issued = now();
  cluster_barrier();  // every push has landed
  sum_staged(staging, stamps, sums, start, issued);
}

extern "C" __global__ void pull_cluster(u64* stamps, float* sums) {
  extern __shared__ __align__(128) float4 staging[];
  cluster_barrier();
  const u64 start = now();
#pragma unroll
  for (int i = 0; i < FRAGMENTS; ++i) staging[i * THREADS + threadIdx.x] = fragment(i);
  const u64 staged = now();
  cluster_barrier();  // every partial is laid out
  const u32 next = (cluster_rank() + 1) % cluster_blocks();
  const u32 source = cluster_address(shared_address(staging + threadIdx.x), next);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < FRAGMENTS; ++i) {
    float4 value;
    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
                 : "=f"(value.x), "=f"(value.y), "=f"(value.z), "=f"(value.w)
                 : "r"(source + i * THREADS * 16)
                 : "memory");
    sum += value.x + value.y + value.z + value.w;
  }
  const u64 issued = now();
  cluster_barrier();  // the next block's memory stays until every read of it is done
  if (threadIdx.x == 0) record(stamps, start, staged, issued, now());
  sums[blockIdx.x * THREADS + threadIdx.x] = sum;
}
)";

// The program for a partial of partial_kib KiB per block, copied in chunks of chunk_kib KiB.
std::string program_source(int partial_kib, int chunk_kib) {
  return fmt::format("#define FRAGMENTS {}\n#define CHUNK_BYTES {}\n", partial_kib * 1024 / (block_threads * 16),
                     chunk_kib * 1024) +
         kernel_source;
}

// The blocks' median and slowest time from their start to stamp `which`, in us.
struct Spread {
  double median = 0;
  double slowest = 0;
};
Spread spread(const std::vector<uint64_t>& stamps, int blocks, int which) {
  std::vector<double> times;
  for (int b = 0; b < blocks; ++b)
    times.push_back(static_cast<double>(stamps[b * stamps_per_block + which] - stamps[b * stamps_per_block]) * 1e-3);
  return Spread{median(times), *std::max_element(times.begin(), times.end())};
}

// One line of the table: the launch's median and the blocks' stamps of the last launch.
void print_case(const std::string& name, int partial_kib, int chunk_kib, const std::string& at_once, double launch_us,
                const DeviceBuffer& stamps, int blocks) {
  const std::vector<uint8_t> stamp_bytes = stamps.download();
  std::vector<uint64_t> stamp_values(stamp_bytes.size() / 8);
  std::memcpy(stamp_values.data(), stamp_bytes.data(), stamp_bytes.size());
  const Spread staged = spread(stamp_values, blocks, 1);
  const Spread issued = spread(stamp_values, blocks, 2);
  const Spread end = spread(stamp_values, blocks, 3);
  std::printf("%-18s %5d KiB %3d KiB %-14s %9.2f %7.2f / %6.2f %7.2f / %6.2f %7.2f / %6.2f\n", name.c_str(), partial_kib,
              chunk_kib, at_once.c_str(), launch_us, staged.median, staged.slowest, issued.median, issued.slowest,
              end.median, end.slowest);
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 20;
  bool compile_only = false;
  CLI::App app{"lowbit_deposit_bench: a stream-K partial's deposit and read, from registers or by bulk copies"};
  app.add_option("--repeats", repeats, "launches timed per case (the median is printed)")->check(CLI::Range(1, 1000));
  app.add_flag("--compile-only", compile_only, "compile the kernels for sm_90a with NVRTC and stop (no GPU needed)");
  CLI11_PARSE(app, argc, argv);
  try {
    const int partials_kib[] = {64, 128};  // the 128- and 256-row tiles' partials (128 columns)
    const int chunks_kib[] = {16, 64};
    if (compile_only) {
      if (!lowbit::bench::nvrtc_usable()) return lowbit::bench::kMissingNvrtcExit;
      for (int partial : partials_kib)
        for (int chunk : chunks_kib)
          lowbit::cuda::compile_to_cubin(program_source(partial, chunk), "deposit", "sm_90a");
      std::printf("compiled %zu programs for sm_90a\n", std::size(partials_kib) * std::size(chunks_kib));
      return 0;
    }
    const lowbit::cuda::DeviceInfo& device = lowbit::cuda::device_info(0);
    lowbit::cuda::make_current(0);
    const int blocks = device.sm_count;
    std::printf("device: %s, %d blocks of %d threads (one an SM); times in us, blocks' from their own start\n",
                device.name.c_str(), blocks, block_threads);
    std::printf("%-18s %8s %6s %-10s %9s %16s %16s %16s\n", "case", "partial", "chunk", "blocks at once", "launch",
                "staged med/max", "issued med/max", "end med/max");
    DeviceBuffer slots(static_cast<std::size_t>(blocks) * 128 * 1024);
    DeviceBuffer flags(static_cast<std::size_t>(blocks) * 8);
    DeviceBuffer stamps(static_cast<std::size_t>(blocks) * stamps_per_block * 8);
    DeviceBuffer sums(static_cast<std::size_t>(blocks) * block_threads * 4);
    Events events;
    for (int partial : partials_kib)
      for (int chunk : chunks_kib) {
        const Module module(lowbit::cuda::compile_to_cubin(program_source(partial, chunk), "deposit", device.arch()));
        struct Case {
          const char* name;
          bool bulk;
          bool deposit;
        };
        const Case cases[] = {{"deposit registers", false, true},
                              {"deposit bulk", true, true},
                              {"read registers", false, false},
                              {"read bulk", true, false}};
        // Hand-overs inside thread-block clusters (every block at once; 2 and 4 blocks a cluster).
        if (chunk == chunks_kib[0])
          for (const char* name : {"push_cluster", "pull_cluster"})
            for (unsigned cluster : {2u, 4u}) {
              const CUfunction function = module.function(name);
              const unsigned grid = static_cast<unsigned>(blocks) / cluster * cluster;
              void* stamps_pointer = stamps.data();
              void* sums_pointer = sums.data();
              std::vector<double> times;
              for (int r = 0; r < repeats + 2; ++r) {
                const double us = events.time([&] {
                  launch_clusters(function, grid, cluster, block_threads, static_cast<unsigned>(partial * 1024),
                                  {&stamps_pointer, &sums_pointer});
                });
                if (r >= 2) times.push_back(us);
              }
              print_case(fmt::format("{} x{}", name, cluster), partial, 0, fmt::format("{} of {}", grid, blocks),
                         median(times), stamps, static_cast<int>(grid));
            }
        for (const Case& c : cases) {
          if (!c.bulk && chunk != chunks_kib[0]) continue;  // the register forms have no chunk
          const CUfunction function = module.function(
              c.deposit ? (c.bulk ? "deposit_bulk" : "deposit_registers") : (c.bulk ? "read_bulk" : "read_registers"));
          const unsigned shared = c.bulk ? static_cast<unsigned>(partial * 1024) : 0;
          for (int groups : {1, 4, 8}) {
            const long long delay_ns = groups == 1 ? 0 : 4000;
            void* slots_pointer = slots.data();
            void* flags_pointer = flags.data();
            void* stamps_pointer = stamps.data();
            void* sums_pointer = sums.data();
            std::vector<void*> args = c.deposit ? std::vector<void*>{&slots_pointer, &flags_pointer, &stamps_pointer, &groups,
                                                                     const_cast<long long*>(&delay_ns)}
                                                : std::vector<void*>{&slots_pointer, &stamps_pointer, &sums_pointer, &groups,
                                                                     const_cast<long long*>(&delay_ns)};
            std::vector<double> times;
            for (int r = 0; r < repeats + 2; ++r) {
              const double us = events.time([&] { launch(function, blocks, block_threads, shared, args); });
              if (r >= 2) times.push_back(us);
            }
            print_case(c.name, partial, c.bulk ? chunk : 0,
                       fmt::format("{} of {}", (blocks + groups - 1) / groups, blocks), median(times), stamps, blocks);
          }
        }
      }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_deposit_bench: %s\n", error.what());
    return 1;
  }
}
