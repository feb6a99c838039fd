// The operator description: *what* to compute. The key of everything (CLI, cache, logs).
//
//   y[M,N] = (x[M,K] * eq_scale[K]) . dequant(Wq)^T (+ bias[N])
//   dequant(Wq)[n,k] = (q[n,k] - zero[n,g]) * scale[n,g],  g = k / group
//
// Canonical text form (docs/descriptor.md): every field, in declaration order, e.g.
//   m=1,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,compute=float,
//   bias=0,eqscale=0,layout=native,device=cpu
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "lowbit/fields.h"

namespace lowbit {

enum class ZeroPoint { none, integer, floating };  // text: none | int | float
enum class DType { fp32, bf16, fp16 };
enum class Compute { floating, int8 };             // text: float | int8
enum class Layout { native };
enum class DeviceKind { cpu, cuda };

// Text names of each enum, indexed by the enumerator's value.
template <class Enum> struct EnumNames;
template <> struct EnumNames<ZeroPoint> {
  static constexpr std::array<std::string_view, 3> names{"none", "int", "float"};
};
template <> struct EnumNames<DType> {
  static constexpr std::array<std::string_view, 3> names{"fp32", "bf16", "fp16"};
};
template <> struct EnumNames<Compute> {
  static constexpr std::array<std::string_view, 2> names{"float", "int8"};
};
template <> struct EnumNames<Layout> {
  static constexpr std::array<std::string_view, 1> names{"native"};
};

template <class Enum>
constexpr std::string_view to_string(Enum value) {
  return EnumNames<Enum>::names[static_cast<std::size_t>(value)];
}

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;  // cuda:N; always 0 for cpu
  bool operator==(const Device&) const = default;
};
std::string to_string(Device device);

constexpr int whole_k_group = -1;  // group=-1: one group spanning all of K

// Rows used to size, tune and time kernels of a descriptor with m=0 (any M), until run-time
// dispatch by M bucket exists: the middle of the decode-to-small-batch range.
constexpr int64_t any_m_rows = 16;

struct OpDesc {
  int64_t m = 0;  // rows of x; 0 = any (dispatch by M at run time)
  int64_t n = 0;  // output features (required)
  int64_t k = 0;  // input features (required)
  int bits = 4;
  int group = 128;
  ZeroPoint zero = ZeroPoint::integer;
  DType act = DType::bf16;
  DType out = DType::bf16;  // defaults to act when not given in text
  Compute compute = Compute::floating;
  bool bias = false;     // bias[N], in the activation dtype
  bool eqscale = false;  // per-K equalization scale (AWQ/SmoothQuant), fp32[K]
  Layout layout = Layout::native;
  Device device{};

  bool operator==(const OpDesc&) const = default;

  static constexpr auto fields() {
    return std::tuple{field("m", &OpDesc::m),          field("n", &OpDesc::n),
                      field("k", &OpDesc::k),          field("bits", &OpDesc::bits),
                      field("group", &OpDesc::group),  field("zero", &OpDesc::zero),
                      field("act", &OpDesc::act),      field("out", &OpDesc::out),
                      field("compute", &OpDesc::compute), field("bias", &OpDesc::bias),
                      field("eqscale", &OpDesc::eqscale), field("layout", &OpDesc::layout),
                      field("device", &OpDesc::device)};
  }

  // Number of scale groups along K, and the K extent of one group.
  int64_t group_count() const { return group == whole_k_group ? 1 : k / group; }
  int64_t group_size() const { return group == whole_k_group ? k : group; }
};

// Parses "key=value,key=value,..." in any order; omitted keys take their defaults
// (out defaults to act). Throws InvalidArgument naming the field, the value and what is
// allowed. The result is validated.
OpDesc parse_descriptor(std::string_view text);

// The canonical text: every field in declaration order. parse(to_string(d)) == d.
std::string to_string(const OpDesc& desc);

// Throws InvalidArgument (field-named) when the combination is not a valid operator.
void validate(const OpDesc& desc);

std::size_t hash_value(const OpDesc& desc);

}  // namespace lowbit

template <>
struct std::hash<lowbit::OpDesc> {
  std::size_t operator()(const lowbit::OpDesc& desc) const { return lowbit::hash_value(desc); }
};
