// Device memory owned by one object (tests and benchmarks; kernels never allocate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codegen/cuda/cuda_api.h"

namespace lowbit::cuda {

class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    check(driver().cuMemAlloc(&pointer_, bytes == 0 ? 1 : bytes), "cuMemAlloc");
  }
  ~DeviceBuffer() {
    if (pointer_ != 0) driver().cuMemFree(pointer_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept : pointer_(other.pointer_), bytes_(other.bytes_) { other.pointer_ = 0; }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return reinterpret_cast<void*>(pointer_); }
  std::size_t size() const { return bytes_; }
  void upload(const void* source, std::size_t bytes, std::size_t offset = 0) {
    check(driver().cuMemcpyHtoD(pointer_ + offset, source, bytes), "cuMemcpyHtoD");
  }
  std::vector<uint8_t> download() const {
    std::vector<uint8_t> bytes(bytes_);
    check(driver().cuMemcpyDtoH(bytes.data(), pointer_, bytes_), "cuMemcpyDtoH");
    return bytes;
  }
  void fill(uint8_t value) { check(driver().cuMemsetD8(pointer_, value, bytes_), "cuMemsetD8"); }

 private:
  CUdeviceptr pointer_ = 0;
  std::size_t bytes_ = 0;
};

// A buffer holding a copy of `bytes` host bytes at source (none for 0: a 1-byte allocation).
inline DeviceBuffer copy_to_device(const void* source, std::size_t bytes) {
  DeviceBuffer buffer(bytes);
  if (bytes > 0) buffer.upload(source, bytes);
  return buffer;
}

}  // namespace lowbit::cuda
