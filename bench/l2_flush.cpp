#include "bench/l2_flush.h"

#include <array>
#include <vector>

namespace lowbit::bench {
namespace {

constexpr std::size_t flush_bytes = std::size_t{512} << 20;  // >= 10x the H100's 50 MiB L2
constexpr unsigned read_threads = 256;
constexpr unsigned blocks_per_sm = 8;

// Every 16-byte word of the buffer is loaded with the default cache policy (grid-stride, 4 loads
// in flight a lane); the sink is written only when a thread's XOR equals `key`, which the host
// never makes true (the buffer holds one repeated byte, so every 16-byte word XORs to 0, and the
// key is never 0): nothing is stored, and the loads cannot be dropped.
constexpr const char* read_kernel_source = R"(
extern "C" __global__ void l2_flush_read(const uint4* data, long long words, unsigned key, unsigned* sink) {
  unsigned value = 0;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < words; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long long at = i + u * stride;
      v[u] = at < words ? __ldg(data + at) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) value ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (value == key) atomicXor(sink, value);
}
)";

}  // namespace

const char* flush_mode_name(FlushMode mode) { return mode == FlushMode::read ? "read" : "write"; }

L2Flush::L2Flush(FlushMode mode) : mode_(mode), buffer_(flush_bytes), sink_(sizeof(unsigned)) {
  buffer_.fill(0x5a);
  sink_.fill(0);
  if (mode_ != FlushMode::read) return;
  const cuda::DeviceInfo& device = cuda::device_info(0);
  const std::vector<char> cubin = cuda::compile_to_cubin(read_kernel_source, "l2_flush_read", device.arch());
  cuda::check(cuda::driver().cuModuleLoadData(&module_, cubin.data()), "cuModuleLoadData (L2 flush)");
  cuda::check(cuda::driver().cuModuleGetFunction(&read_kernel_, module_, "l2_flush_read"), "l2_flush_read");
  blocks_ = device.sm_count * static_cast<int>(blocks_per_sm);
}

L2Flush::~L2Flush() {
  if (module_ != nullptr) cuda::driver().cuModuleUnload(module_);
}

void L2Flush::run(int round) {
  if (mode_ == FlushMode::write) {
    buffer_.fill(static_cast<uint8_t>(round));
    return;
  }
  const void* data = buffer_.data();
  long long words = static_cast<long long>(flush_bytes / 16);
  unsigned key = 0x01000000u | static_cast<unsigned>(round & 0xffff);  // never 0
  void* sink = sink_.data();
  std::array<void*, 4> args = {&data, &words, &key, &sink};
  cuda::check(cuda::driver().cuLaunchKernel(read_kernel_, static_cast<unsigned>(blocks_), 1, 1, read_threads, 1, 1, 0,
                                            nullptr, args.data(), nullptr),
              "cuLaunchKernel (L2 flush)");
}

}  // namespace lowbit::bench
