// lowbit_read_pattern_bench: is gemv_mma's time the bytes it reads, or the kernel? For one
// descriptor (a gemv_mma shape), times on this GPU with CUDA events:
//   empty      a kernel that does nothing: one block, and gemv_mma's grid and block;
//   stream     a contiguous read of the weight buffer (qweight, scales, zeros), 16 bytes a lane
//              and 4 loads in flight, a few blocks per SM;
//   pattern    for each of a few gemv_mma variants, the SAME bytes in the SAME order, grid and
//              block shape as its loads (a block per 16-column panel, warps splitting the
//              panel's fold runs, a cp.async ring of the variant's stages and chunk bytes, the
//              run's scale and zero words at each run start), but no decode and no math: each
//              lane XOR-sums its shared words into a register, and one word per block is written;
//   interleaved the same bytes, ring and block shape, but each panel's chunks dealt to its
//              warps in turn (warp w reads chunks w, w + warps, ...): one stream a panel;
//   direct     the same warp spans read with plain 16-byte global loads (no shared memory),
//              stages x chunk bytes in flight per warp;
//   gemv_mma   the variant itself (compiled from the registry, checked against the reference).
// Each in three timings: "flushed" (a 512 MiB memset before each launch, as lowbit_cuda_bench
// and triton's do_bench do: L2 is left full of dirty lines), "rotated" (no flush; each launch
// reads the next of R copies of the weights, R copies at least 4x L2, so the bytes are cold and
// L2 holds only clean lines) and "back_to_back" (R x 4 launches over the copies between two
// events, the mean: launch gaps overlap). Prints one JSON line per kernel and timing.
// Usage: lowbit_read_pattern_bench DESCRIPTOR [--repeats N] [--compile-only]
// --compile-only compiles the read kernels for sm_90a with NVRTC and stops (no GPU needed).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/compile_only.h"
#include "bench/cuda_module.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/gemv_generator.h"
#include "codegen/cuda/registry.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"

namespace {

using lowbit::cuda::check;
using lowbit::cuda::driver;
using lowbit::cuda::DeviceBuffer;
using lowbit::bench::Events;
using lowbit::bench::median;
using lowbit::bench::launch;
using lowbit::bench::Module;

constexpr std::size_t flush_bytes = std::size_t{512} << 20;

// The read kernels. Compiled once per pattern with the pattern's constants in front.
// Register contract of pattern_read: the same warp split, chunk walk and cp.async groups as
// templates/gemv_mma.cuh's single-panel path (no walk, no split-K, no bulk copies), so that the
// DRAM sees the same requests in the same order; only the consumer differs.
constexpr const char* kernel_source = R"(
typedef unsigned int u32;
typedef unsigned long long u64;

extern "C" __global__ void empty_kernel() {}

// One value per block: the warps' XOR-sums, combined with an atomic on one word.
__device__ __forceinline__ void write_block_value(u32 value, u32* out) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value ^= __shfl_xor_sync(0xffffffffu, value, offset);
  if ((threadIdx.x & 31) == 0) atomicXor(out + blockIdx.x, value);
}

// Contiguous read: block b reads bytes [b * span, (b + 1) * span), 16 bytes a lane, 4 loads in flight.
extern "C" __global__ void stream_read(const uint4* data, long long words, u32* out) {
  const long long span = (words + gridDim.x - 1) / gridDim.x;
  const long long begin = blockIdx.x * span;
  const long long end = begin + span < words ? begin + span : words;
  u32 sum = 0;
  for (long long i = begin + threadIdx.x; i < end; i += 4LL * blockDim.x) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long long at = i + u * (long long)blockDim.x;
      v[u] = at < end ? __ldg(data + at) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) sum ^= v[u].x + v[u].y + v[u].z + v[u].w;
  }
  write_block_value(sum, out);
}

// This warp's byte span of its panel: the fold runs of gemv_mma's warp split.
__device__ __forceinline__ void warp_span(int warp, int& begin, int& end) {
  const int first_run = RUNS * warp / WARPS;
  const int end_run = RUNS * (warp + 1) / WARPS;
  begin = first_run * RUN_BYTES;
  end = end_run * RUN_BYTES < PANEL_BYTES ? end_run * RUN_BYTES : PANEL_BYTES;
}

// The run's scale and zero words of this lane (gemv_mma's load_group_tables).
__device__ __forceinline__ u32 group_words(const unsigned short* scales, const unsigned short* zeros, long long panel,
                                           int run, int g) {
  const int group = GROUPS == 1 ? 0 : run * RUN_K / GROUP;
  const long long at = panel * (GROUPS * 16) + group * 16 + 2 * g;
  u32 words = *reinterpret_cast<const u32*>(scales + at);
  if (HAS_ZEROS) words ^= *reinterpret_cast<const u32*>(zeros + at);
  return words;
}

// A warp's %globaltimer reading, for the warp timeline (stamps: [blocks * WARPS][2] start, end).
__device__ __forceinline__ u64 global_time() {
  u64 time;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(time));
  return time;
}

extern "C" __global__ void pattern_read(const unsigned char* qweight, const unsigned short* scales,
                                        const unsigned short* zeros, u32* out, u64* stamps) {
  const u64 start = stamps != nullptr ? global_time() : 0;
  extern __shared__ __align__(16) u32 ring_words[];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const long long panel = blockIdx.x;
  const unsigned char* panel_bytes = qweight + panel * PANEL_BYTES;
  int begin, end;
  warp_span(warp, begin, end);
  const int chunks = (end - begin + CHUNK_BYTES - 1) / CHUNK_BYTES;
  u32* ring = ring_words + warp * STAGES * (CHUNK_BYTES / 4);
  int issued = 0;
  auto issue = [&]() {
    if (issued < chunks) {
      u32* stage = ring + (issued % STAGES) * (CHUNK_BYTES / 4);
#pragma unroll
      for (int piece = lane; piece < CHUNK_BYTES / 16; piece += 32) {
        const int byte = begin + issued * CHUNK_BYTES + piece * 16;
        const int valid = byte + 16 <= PANEL_BYTES ? 16 : 0;
        const u32 target = static_cast<u32>(__cvta_generic_to_shared(stage + piece * 4));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(target),
                     "l"(panel_bytes + (valid ? byte : 0)), "r"(valid));
      }
    }
    ++issued;
    asm volatile("cp.async.commit_group;\n" ::);
  };
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) issue();
  u32 sum = 0;
  for (int chunk = 0; chunk < chunks; ++chunk) {
    const int byte0 = begin + chunk * CHUNK_BYTES;
    if (byte0 % RUN_BYTES == 0) sum ^= group_words(scales, zeros, panel, byte0 / RUN_BYTES, lane >> 2);
    issue();
    asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 1));
    __syncwarp();
    const u32* stage = ring + (chunk % STAGES) * (CHUNK_BYTES / 4);
#pragma unroll
    for (int word = lane; word < CHUNK_BYTES / 4; word += 32) sum += stage[word];
    __syncwarp();
  }
  asm volatile("cp.async.wait_group 0;\n" ::);
  if (stamps != nullptr && lane == 0) {
    u64* stamp = stamps + 2 * (static_cast<long long>(blockIdx.x) * WARPS + warp);
    stamp[0] = start;
    stamp[1] = global_time();
  }
  write_block_value(sum, out);
}

// The same panel's chunks dealt to the warps in turn (warp w reads chunks w, w + WARPS, ...), the
// same ring: at any moment a block's warps read WARPS adjacent chunks, one stream a panel instead of
// WARPS (does DRAM serve fewer, wider streams faster?).
extern "C" __global__ void interleaved_read(const unsigned char* qweight, const unsigned short* scales,
                                            const unsigned short* zeros, u32* out) {
  extern __shared__ __align__(16) u32 ring_words[];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const long long panel = blockIdx.x;
  const unsigned char* panel_bytes = qweight + panel * PANEL_BYTES;
  constexpr int PANEL_CHUNKS = (PANEL_BYTES + CHUNK_BYTES - 1) / CHUNK_BYTES;
  const int chunks = (PANEL_CHUNKS - warp + WARPS - 1) / WARPS;
  u32* ring = ring_words + warp * STAGES * (CHUNK_BYTES / 4);
  int issued = 0;
  auto issue = [&]() {
    if (issued < chunks) {
      u32* stage = ring + (issued % STAGES) * (CHUNK_BYTES / 4);
#pragma unroll
      for (int piece = lane; piece < CHUNK_BYTES / 16; piece += 32) {
        const int byte = (warp + issued * WARPS) * CHUNK_BYTES + piece * 16;
        const int valid = byte + 16 <= PANEL_BYTES ? 16 : 0;
        const u32 target = static_cast<u32>(__cvta_generic_to_shared(stage + piece * 4));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(target),
                     "l"(panel_bytes + (valid ? byte : 0)), "r"(valid));
      }
    }
    ++issued;
    asm volatile("cp.async.commit_group;\n" ::);
  };
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) issue();
  u32 sum = 0;
  for (int chunk = 0; chunk < chunks; ++chunk) {
    const int byte0 = (warp + chunk * WARPS) * CHUNK_BYTES;
    if (byte0 % RUN_BYTES == 0) sum ^= group_words(scales, zeros, panel, byte0 / RUN_BYTES, lane >> 2);
    issue();
    asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 1));
    __syncwarp();
    const u32* stage = ring + (chunk % STAGES) * (CHUNK_BYTES / 4);
#pragma unroll
    for (int word = lane; word < CHUNK_BYTES / 4; word += 32) sum += stage[word];
    __syncwarp();
  }
  asm volatile("cp.async.wait_group 0;\n" ::);
  write_block_value(sum, out);
}

// The same warp spans, plain 16-byte loads into registers: STAGES chunks in flight a warp.
extern "C" __global__ void direct_read(const unsigned char* qweight, const unsigned short* scales,
                                       const unsigned short* zeros, u32* out) {
  constexpr int PIECES = (CHUNK_BYTES / 16 + 31) / 32;  // 16-byte loads a lane per chunk
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const long long panel = blockIdx.x;
  const unsigned char* panel_bytes = qweight + panel * PANEL_BYTES;
  int begin, end;
  warp_span(warp, begin, end);
  const int chunks = (end - begin + CHUNK_BYTES - 1) / CHUNK_BYTES;
  u32 sum = 0;
  for (int base = 0; base < chunks; base += STAGES) {
    uint4 v[STAGES][PIECES];
#pragma unroll
    for (int s = 0; s < STAGES; ++s)
#pragma unroll
      for (int p = 0; p < PIECES; ++p) {
        const int piece = p * 32 + lane;
        const int byte = begin + (base + s) * CHUNK_BYTES + piece * 16;
        const bool live = base + s < chunks && piece < CHUNK_BYTES / 16 && byte + 16 <= PANEL_BYTES;
        v[s][p] = live ? __ldg(reinterpret_cast<const uint4*>(panel_bytes + byte)) : make_uint4(0, 0, 0, 0);
      }
    for (int s = 0; s < STAGES && base + s < chunks; ++s) {
      const int byte0 = begin + (base + s) * CHUNK_BYTES;
      if (byte0 % RUN_BYTES == 0) sum ^= group_words(scales, zeros, panel, byte0 / RUN_BYTES, lane >> 2);
    }
#pragma unroll
    for (int s = 0; s < STAGES; ++s)
#pragma unroll
      for (int p = 0; p < PIECES; ++p) sum ^= v[s][p].x + v[s][p].y + v[s][p].z + v[s][p].w;
  }
  write_block_value(sum, out);
}
)";

// The constants pattern_read and direct_read take from one gemv_mma variant (the warp split
// and ring of templates/gemv_mma.cuh for this descriptor).
struct Pattern {
  std::string name;
  lowbit::cuda::CudaVariant variant;
  int chunk_bytes = 0;
  int ring_bytes = 0;  // dynamic shared memory of pattern_read
};

Pattern pattern_of(const lowbit::OpDesc& desc, const lowbit::cuda::CudaVariant& variant) {
  const int tile_bytes = desc.bits == 2 ? 64 : desc.bits == 3 ? 96 : desc.bits == 8 ? 256 : 128;
  Pattern pattern{lowbit::cuda::variant_name(desc, variant, "sm_90a"), variant, 0, 0};
  pattern.chunk_bytes = lowbit::cuda::GemvGenerator::chunk_tiles(desc, variant) * tile_bytes;
  pattern.ring_bytes = variant.warps * variant.unroll * pattern.chunk_bytes;
  return pattern;
}

std::string pattern_constants(const lowbit::OpDesc& desc, const Pattern& pattern) {
  const lowbit::NativeGeometry geometry = lowbit::native_geometry(desc);
  const int64_t group = desc.group_size();
  const int64_t groups = desc.k / group;
  const int64_t tiles = (desc.k + 15) / 16;
  const int64_t run_tiles = groups == 1 ? 16 : std::min<int64_t>(group, 256) / 16;
  const int tile_bytes = desc.bits == 2 ? 64 : desc.bits == 3 ? 96 : desc.bits == 8 ? 256 : 128;
  return fmt::format(
      "#define PANEL_BYTES {}\n#define RUNS {}\n#define RUN_BYTES {}\n#define RUN_K {}\n#define GROUP {}\n"
      "#define GROUPS {}\n#define HAS_ZEROS {}\n#define WARPS {}\n#define STAGES {}\n#define CHUNK_BYTES {}\n",
      geometry.panel_bytes, (tiles + run_tiles - 1) / run_tiles, run_tiles * tile_bytes, run_tiles * 16, group,
      groups, desc.zero == lowbit::ZeroPoint::none ? 0 : 1, pattern.variant.warps, pattern.variant.unroll,
      pattern.chunk_bytes);
}

// The three timings of run(copy) (copy: which of the rotated weight copies it reads).
struct Timings {
  double flushed = 0;
  double rotated = 0;
  double back_to_back = 0;
};

Timings time_three_ways(const std::function<void(int)>& run, int copies, DeviceBuffer& flush, int repeats) {
  Events events;
  for (int i = 0; i < copies; ++i) run(i);  // warm-up (module load, first-launch costs)
  check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
  Timings timings;
  std::vector<double> flushed;
  std::vector<double> rotated;
  for (int i = 0; i < repeats; ++i) {
    flush.fill(static_cast<uint8_t>(i));
    flushed.push_back(events.time([&] { run(0); }));
  }
  for (int i = 0; i < repeats * copies; ++i) rotated.push_back(events.time([&] { run(i % copies); }));
  timings.flushed = median(flushed);
  timings.rotated = median(rotated);
  const int launches = 4 * copies;
  timings.back_to_back = events.time([&] {
                           for (int i = 0; i < launches; ++i) run(i % copies);
                         }) /
                         launches;
  return timings;
}

void print(const std::string& kernel, const std::string& what, double bytes, const Timings& timings) {
  nlohmann::json row = {{"kernel", kernel},
                        {"what", what},
                        {"bytes", bytes},
                        {"flushed_us", timings.flushed},
                        {"rotated_us", timings.rotated},
                        {"back_to_back_us", timings.back_to_back},
                        {"flushed_gbps", bytes / timings.flushed / 1e3},
                        {"rotated_gbps", bytes / timings.rotated / 1e3},
                        {"back_to_back_gbps", bytes / timings.back_to_back / 1e3}};
  std::printf("%s\n", row.dump().c_str());
  std::fflush(stdout);
}

// The variants whose load pattern is replayed: the heuristic's and the best of the fourth
// small-M round on the two floor shapes (docs/benchmarks.md), where valid for desc.
std::vector<lowbit::cuda::CudaVariant> replayed_variants(const lowbit::OpDesc& desc, int arch_major, int sm_count) {
  std::vector<lowbit::cuda::CudaVariant> variants{lowbit::cuda::heuristic(desc, arch_major, sm_count)};
  const int wide = 2 * (desc.bits == 2 ? 8 : desc.bits == 8 ? 2 : 4) * 16;
  struct Shape {
    int warps, unroll, block_k;
  };
  for (const Shape shape : {Shape{8, 2, 0}, Shape{16, 2, 0}, Shape{16, 4, wide}, Shape{16, 2, wide}, Shape{8, 8, 0}}) {
    lowbit::cuda::CudaVariant variant{lowbit::cuda::CudaFamily::gemv_mma, shape.warps, shape.unroll};
    variant.block_k = shape.block_k;
    if (std::find(variants.begin(), variants.end(), variant) == variants.end() &&
        lowbit::cuda::is_valid(desc, variant, arch_major))
      variants.push_back(variant);
  }
  std::erase_if(variants, [](const lowbit::cuda::CudaVariant& variant) {
    return variant.family != lowbit::cuda::CudaFamily::gemv_mma || variant.split_k != 1 || variant.panels != 1 ||
           variant.bulk_copy != 0;
  });
  return variants;
}

// One cold launch of pattern_read (the "rotated" way: the copies read in turn, the last one's
// bytes long evicted) with each warp's start and end on the global timer: when the warps start
// and end, from the first warp's start. A long tail after the median end means DRAM served the
// warps unevenly; all ending together, that the bytes' rate set the time.
void print_warp_timeline(CUfunction function, const Pattern& pattern, unsigned blocks, unsigned threads,
                         std::vector<DeviceBuffer>& weights, long long scales_offset, long long zeros_offset,
                         void* out_pointer) {
  const std::size_t warps = static_cast<std::size_t>(blocks) * (threads / 32);
  DeviceBuffer stamps(warps * 2 * sizeof(uint64_t));
  void* stamps_pointer = stamps.data();
  for (DeviceBuffer& copy : weights) {  // each launch overwrites the stamps: the last copy's stay
    auto* base = static_cast<unsigned char*>(copy.data());
    void* qweight = base;
    void* scales = base + scales_offset;
    void* zeros = base + zeros_offset;
    launch(function, blocks, threads, static_cast<unsigned>(pattern.ring_bytes),
           {&qweight, &scales, &zeros, &out_pointer, &stamps_pointer});
    check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
  }
  const std::vector<uint8_t> bytes = stamps.download();
  std::vector<uint64_t> values(warps * 2);
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(uint64_t));
  uint64_t first = values[0];
  for (std::size_t w = 0; w < warps; ++w) first = std::min(first, values[2 * w]);
  std::vector<double> starts, ends;
  for (std::size_t w = 0; w < warps; ++w) {
    starts.push_back(static_cast<double>(values[2 * w] - first) / 1e3);
    ends.push_back(static_cast<double>(values[2 * w + 1] - first) / 1e3);
  }
  // Within a block: the spread of its warps' ends (last - first), and each block's last end.
  const std::size_t block_warps = threads / 32;
  std::vector<double> block_spreads, block_ends;
  for (std::size_t b = 0; b < blocks; ++b) {
    double first_end = ends[b * block_warps], last_end = ends[b * block_warps];
    for (std::size_t w = 1; w < block_warps; ++w) {
      first_end = std::min(first_end, ends[b * block_warps + w]);
      last_end = std::max(last_end, ends[b * block_warps + w]);
    }
    block_spreads.push_back(last_end - first_end);
    block_ends.push_back(last_end);
  }
  std::sort(block_spreads.begin(), block_spreads.end());
  std::sort(block_ends.begin(), block_ends.end());
  std::sort(starts.begin(), starts.end());
  std::sort(ends.begin(), ends.end());
  auto at = [](const std::vector<double>& sorted, double share) {
    return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(share * static_cast<double>(sorted.size())))];
  };
  nlohmann::json row = {{"kernel", "pattern_read timeline"}, {"what", pattern.name},
                        {"warps", warps}, {"start_median_us", at(starts, 0.5)}, {"start_last_us", starts.back()},
                        {"end_first_us", ends.front()}, {"end_p10_us", at(ends, 0.1)},
                        {"end_median_us", at(ends, 0.5)}, {"end_p90_us", at(ends, 0.9)},
                        {"end_last_us", ends.back()}, {"block_spread_median_us", at(block_spreads, 0.5)},
                        {"block_spread_p90_us", at(block_spreads, 0.9)}, {"block_end_p10_us", at(block_ends, 0.1)},
                        {"block_end_median_us", at(block_ends, 0.5)}, {"block_end_last_us", block_ends.back()}};
  std::printf("%s\n", row.dump().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: lowbit_read_pattern_bench DESCRIPTOR [--repeats N] [--compile-only]\n");
    return 2;
  }
  int repeats = 20;
  bool compile_only = false;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--repeats" && i + 1 < argc) repeats = std::stoi(argv[++i]);
    if (std::string(argv[i]) == "--compile-only") compile_only = true;
  }
  try {
    const lowbit::OpDesc desc = lowbit::parse_descriptor(argv[1]);
    if (compile_only) {
      if (!lowbit::bench::nvrtc_usable()) return lowbit::bench::kMissingNvrtcExit;
      for (const auto& variant : replayed_variants(desc, 9, 132)) {
        const Pattern pattern = pattern_of(desc, variant);
        const auto cubin = lowbit::cuda::compile_to_cubin(pattern_constants(desc, pattern) + kernel_source, "read_pattern", "sm_90a");
        std::printf("%s: %zu bytes of cubin\n", pattern.name.c_str(), cubin.size());
      }
      return 0;
    }
    const lowbit::cuda::DeviceInfo& device = lowbit::cuda::device_info(0);
    lowbit::cuda::make_current(0);
    DeviceBuffer flush(flush_bytes);
    const lowbit::Problem problem = lowbit::make_random_problem(desc, desc.m, lowbit::seed_for("read pattern " + std::string(argv[1])));
    const std::size_t weight_bytes = problem.packed.storage.size();
    const int copies = static_cast<int>(std::max<std::size_t>(4, (4 * static_cast<std::size_t>(device.l2_bytes) + weight_bytes - 1) / weight_bytes));
    std::vector<DeviceBuffer> weights;
    for (int i = 0; i < copies; ++i) {
      weights.emplace_back(weight_bytes);
      weights.back().upload(problem.packed.storage.data(), weight_bytes);
    }
    const lowbit::NativeGeometry geometry = lowbit::native_geometry(desc);
    const unsigned panels = static_cast<unsigned>(geometry.panels);
    DeviceBuffer out(std::max<std::size_t>(panels, 132 * 16) * 4);
    auto* out_pointer = out.data();
    std::printf("%s\n", nlohmann::json({{"descriptor", lowbit::to_string(desc)}, {"device", device.name},
                                        {"sm_count", device.sm_count}, {"l2_bytes", device.l2_bytes},
                                        {"weight_bytes", weight_bytes}, {"copies", copies}, {"repeats", repeats}})
                            .dump()
                            .c_str());
    const auto scales_offset = problem.packed.scales_offset;
    const auto zeros_offset = problem.packed.zeros_offset < 0 ? problem.packed.scales_offset : problem.packed.zeros_offset;
    const double read_bytes = static_cast<double>(lowbit::native_weight_bytes(desc));

    // Empty kernel and contiguous stream (need no pattern constants: compiled with dummy ones).
    const std::vector<Pattern> patterns = [&] {
      std::vector<Pattern> list;
      for (const auto& variant : replayed_variants(desc, device.major, device.sm_count)) list.push_back(pattern_of(desc, variant));
      return list;
    }();
    if (patterns.empty()) throw lowbit::Error(lowbit::to_string(desc) + ": no gemv_mma variant to replay (act=bf16 or fp16, m=1..16)");
    {
      const Module module(lowbit::cuda::compile_to_cubin(pattern_constants(desc, patterns.front()) + kernel_source,
                                                         "read_pattern", device.arch()));
      const CUfunction empty = module.function("empty_kernel");
      print("empty", "1 block of 32 threads", 0,
            time_three_ways([&](int) { launch(empty, 1, 32, 0, {}); }, copies, flush, repeats));
      for (const Pattern& pattern : patterns)
        print("empty", fmt::format("{} blocks of {} threads, {} bytes of shared memory ({})", panels,
                                   pattern.variant.warps * 32, pattern.ring_bytes, pattern.name),
              0,
              time_three_ways([&](int) { launch(empty, panels, pattern.variant.warps * 32, pattern.ring_bytes, {}); },
                              copies, flush, repeats));
      const CUfunction stream = module.function("stream_read");
      const long long words = static_cast<long long>(geometry.qweight_bytes() / 16);
      auto print_stream = [&](unsigned grid, const std::string& note) {
        print("stream", fmt::format("qweight contiguous, {} blocks of 256 threads{}", grid, note),
              static_cast<double>(geometry.qweight_bytes()),
              time_three_ways(
                  [&](int copy) {
                    void* data = weights[copy].data();
                    launch(stream, grid, 256, 0, {&data, const_cast<long long*>(&words), &out_pointer});
                  },
                  copies, flush, repeats));
      };
      for (int blocks_per_sm : {2, 4, 8}) print_stream(static_cast<unsigned>(device.sm_count * blocks_per_sm), "");
      print_stream(panels, " (one a panel's bytes)");
    }

    for (const Pattern& pattern : patterns) {
      const Module module(lowbit::cuda::compile_to_cubin(pattern_constants(desc, pattern) + kernel_source, "read_pattern",
                                                         device.arch()));
      const unsigned threads = static_cast<unsigned>(pattern.variant.warps * 32);
      void* no_stamps = nullptr;
      for (const char* name : {"pattern_read", "interleaved_read", "direct_read"}) {
        const CUfunction function = module.function(name);
        const unsigned shared = std::string(name) == "direct_read" ? 0u : static_cast<unsigned>(pattern.ring_bytes);
        print(name, pattern.name, read_bytes,
              time_three_ways(
                  [&](int copy) {
                    auto* base = static_cast<unsigned char*>(weights[copy].data());
                    void* qweight = base;
                    void* scales = base + scales_offset;
                    void* zeros = base + zeros_offset;
                    // pattern_read takes the warp timeline's stamps too (null: none).
                    if (std::string(name) == "pattern_read")
                      launch(function, panels, threads, shared, {&qweight, &scales, &zeros, &out_pointer, &no_stamps});
                    else
                      launch(function, panels, threads, shared, {&qweight, &scales, &zeros, &out_pointer});
                  },
                  copies, flush, repeats));
      }
      print_warp_timeline(module.function("pattern_read"), pattern, panels, threads, weights, scales_offset,
                          zeros_offset, out_pointer);
      // The variant itself, checked against the reference before it is timed.
      const auto kernel = lowbit::cuda::build(desc, pattern.variant);
      DeviceBuffer x(problem.x.size());
      x.upload(problem.x.data(), problem.x.size());
      DeviceBuffer y(static_cast<std::size_t>(desc.m * desc.n * lowbit::dtype_bytes(desc.out)));
      lowbit::RunArgs args;
      args.x = x.data();
      args.y = y.data();
      args.m = desc.m;
      auto weights_of = [&](int copy) { return lowbit::view_at(problem.packed, weights[copy].data()); };
      args.weights = weights_of(copies - 1);
      y.fill(0xff);
      kernel->run(args);
      check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
      const std::vector<double> reference =
          lowbit::reference_matmul(desc, std::min<int64_t>(desc.m, 8), problem.x.data(), problem.weights, nullptr, nullptr);
      const std::vector<uint8_t> result = y.download();
      const double error = lowbit::relative_error(result.data(), desc.out, reference);
      const double bound = lowbit::cuda::verification_tolerance(desc, pattern.variant);
      if (!(error <= bound)) throw lowbit::Error(fmt::format("{}: relative error {:.3g} exceeds {:.3g}", kernel->name(), error, bound));
      print("gemv_mma", kernel->name(), read_bytes + static_cast<double>(problem.x.size()) + static_cast<double>(y.size()),
            time_three_ways(
                [&](int copy) {
                  args.weights = weights_of(copy);
                  kernel->run(args);
                },
                copies, flush, repeats));
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_read_pattern_bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
