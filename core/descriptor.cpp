#include "lowbit/descriptor.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <limits>
#include <set>
#include <type_traits>
#include <vector>

#include "lowbit/errors.h"

namespace lowbit {
namespace {

// Largest N*K (and M*K, M*N) we accept: 2^40 elements. Keeps every byte offset in int64
// with room for packing overheads, and rejects typos like k=40960000000.
constexpr int64_t max_elements = int64_t{1} << 40;

template <class Enum>
std::string allowed_names() {
  std::string list;
  for (auto name : EnumNames<Enum>::names) {
    if (!list.empty()) list += ", ";
    list += name;
  }
  return list;
}

std::string field_names() {
  std::string list;
  OpDesc probe;
  for_each_field(probe, [&](std::string_view name, const auto&) {
    if (!list.empty()) list += ", ";
    list += name;
  });
  return list;
}

[[noreturn]] void refuse(std::string_view field, std::string_view value, std::string_view allowed) {
  throw InvalidArgument(std::string(field),
                        fmt::format("invalid descriptor field '{}': '{}' is not allowed; {}", field,
                                    value, allowed));
}

void parse_value(std::string_view field, std::string_view text, int64_t& out) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty())
    refuse(field, text, "expected an integer in int64 range");
  out = value;
}

void parse_value(std::string_view field, std::string_view text, int& out) {
  int64_t wide = 0;
  parse_value(field, text, wide);
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max())
    refuse(field, text, "expected a small integer");
  out = static_cast<int>(wide);
}

void parse_value(std::string_view field, std::string_view text, bool& out) {
  if (text == "1" || text == "yes" || text == "true") {
    out = true;
  } else if (text == "0" || text == "no" || text == "false") {
    out = false;
  } else {
    refuse(field, text, "allowed: 0 or 1 (also no/yes, false/true)");
  }
}

template <class Enum>
  requires std::is_enum_v<Enum>
void parse_value(std::string_view field, std::string_view text, Enum& out) {
  const auto& names = EnumNames<Enum>::names;
  auto found = std::find(names.begin(), names.end(), text);
  if (found == names.end()) refuse(field, text, "allowed: " + allowed_names<Enum>());
  out = static_cast<Enum>(found - names.begin());
}

void parse_value(std::string_view field, std::string_view text, Device& out) {
  if (text == "cpu") {
    out = Device{DeviceKind::cpu, 0};
    return;
  }
  constexpr std::string_view cuda_prefix = "cuda:";
  if (text == "cuda") {
    out = Device{DeviceKind::cuda, 0};
    return;
  }
  if (text.substr(0, cuda_prefix.size()) == cuda_prefix) {
    int64_t index = -1;
    parse_value(field, text.substr(cuda_prefix.size()), index);
    if (index < 0 || index > 1023) refuse(field, text, "allowed: cpu, cuda, cuda:N with 0 <= N <= 1023");
    out = Device{DeviceKind::cuda, static_cast<int>(index)};
    return;
  }
  refuse(field, text, "allowed: cpu, cuda, cuda:N");
}

std::string format_value(int64_t value) { return std::to_string(value); }
std::string format_value(int value) { return std::to_string(value); }
std::string format_value(bool value) { return value ? "1" : "0"; }
template <class Enum>
  requires std::is_enum_v<Enum>
std::string format_value(Enum value) {
  return std::string(to_string(value));
}
std::string format_value(Device value) { return to_string(value); }

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

std::string to_string(Device device) {
  return device.kind == DeviceKind::cpu ? std::string("cpu") : fmt::format("cuda:{}", device.index);
}

OpDesc parse_descriptor(std::string_view text) {
  OpDesc desc;
  std::set<std::string, std::less<>> seen;
  if (trim(text).empty())
    throw InvalidArgument("descriptor", "empty descriptor; expected key=value pairs such as "
                                        "'m=1,n=4096,k=4096,bits=4,group=128'");
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) continue;
    auto equals = item.find('=');
    if (equals == std::string_view::npos)
      throw InvalidArgument("descriptor", fmt::format("descriptor item '{}' is not key=value", item));
    std::string_view key = trim(item.substr(0, equals));
    std::string_view value = trim(item.substr(equals + 1));
    if (!seen.insert(std::string(key)).second)
      throw InvalidArgument(std::string(key), fmt::format("descriptor field '{}' is given twice", key));
    bool known = false;
    for_each_field(desc, [&](std::string_view name, auto& member) {
      if (name != key) return;
      known = true;
      parse_value(name, value, member);
    });
    if (!known)
      throw InvalidArgument(std::string(key), fmt::format("unknown descriptor field '{}'; known fields: {}",
                                                          key, field_names()));
  }
  for (std::string_view required : {"n", "k"}) {
    if (!seen.count(required))
      throw InvalidArgument(std::string(required),
                            fmt::format("descriptor field '{}' is required", required));
  }
  if (!seen.count("out")) desc.out = desc.act;
  validate(desc);
  return desc;
}

std::string to_string(const OpDesc& desc) {
  std::string text;
  for_each_field(desc, [&](std::string_view name, const auto& value) {
    if (!text.empty()) text += ',';
    text += name;
    text += '=';
    text += format_value(value);
  });
  return text;
}

void validate(const OpDesc& desc) {
  auto refuse_number = [](std::string_view field, int64_t value, std::string_view allowed) {
    refuse(field, std::to_string(value), allowed);
  };
  if (desc.m < 0) refuse_number("m", desc.m, "m must be >= 0 (0 = any M)");
  if (desc.n < 1) refuse_number("n", desc.n, "n must be >= 1");
  if (desc.k < 1) refuse_number("k", desc.k, "k must be >= 1");
  if (desc.n > max_elements / desc.k)
    refuse("n", fmt::format("{} (with k={})", desc.n, desc.k), "n*k must be <= 2^40");
  if (desc.m > 0 && desc.m > max_elements / desc.k)
    refuse("m", fmt::format("{} (with k={})", desc.m, desc.k), "m*k must be <= 2^40");
  if (desc.m > 0 && desc.m > max_elements / desc.n)
    refuse("m", fmt::format("{} (with n={})", desc.m, desc.n), "m*n must be <= 2^40");
  if (desc.bits != 2 && desc.bits != 3 && desc.bits != 4 && desc.bits != 8)
    refuse_number("bits", desc.bits, "allowed: 2, 3, 4, 8");
  if (desc.group != 32 && desc.group != 64 && desc.group != 128 && desc.group != 256 &&
      desc.group != whole_k_group)
    refuse_number("group", desc.group, "allowed: 32, 64, 128, 256, -1 (one group over all of K)");
  if (desc.group != whole_k_group && desc.k % desc.group != 0)
    refuse("group", fmt::format("{} (with k={})", desc.group, desc.k),
           "the group size must divide k (or use group=-1)");
  if (static_cast<std::size_t>(desc.zero) >= EnumNames<ZeroPoint>::names.size())
    refuse_number("zero", static_cast<int>(desc.zero), "allowed: " + allowed_names<ZeroPoint>());
  if (static_cast<std::size_t>(desc.act) >= EnumNames<DType>::names.size())
    refuse_number("act", static_cast<int>(desc.act), "allowed: " + allowed_names<DType>());
  if (static_cast<std::size_t>(desc.out) >= EnumNames<DType>::names.size())
    refuse_number("out", static_cast<int>(desc.out), "allowed: " + allowed_names<DType>());
  if (static_cast<std::size_t>(desc.compute) >= EnumNames<Compute>::names.size())
    refuse_number("compute", static_cast<int>(desc.compute), "allowed: " + allowed_names<Compute>());
  if (static_cast<std::size_t>(desc.layout) >= EnumNames<Layout>::names.size())
    refuse_number("layout", static_cast<int>(desc.layout), "allowed: " + allowed_names<Layout>());
  if (desc.device.index < 0 || (desc.device.kind == DeviceKind::cpu && desc.device.index != 0))
    refuse("device", to_string(desc.device), "allowed: cpu, cuda:N with N >= 0");
}

std::size_t hash_value(const OpDesc& desc) {
  // The canonical text is the identity of a descriptor; hashing it keeps the two in step.
  return std::hash<std::string>{}(to_string(desc));
}

}  // namespace lowbit
