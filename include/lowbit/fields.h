// Declare a struct's fields once; derive equality-independent things from that list:
// text form, JSON, hashing, SQLite columns. Each reflected struct provides
//   static constexpr auto fields() { return std::tuple{lowbit::field("name", &S::member), ...}; }
#pragma once

#include <cstddef>
#include <string_view>
#include <tuple>

namespace lowbit {

template <class Owner, class Value>
struct Field {
  std::string_view name;
  Value Owner::*member;
};

template <class Owner, class Value>
constexpr Field<Owner, Value> field(std::string_view name, Value Owner::*member) {
  return {name, member};
}

// Calls visit(name, value) for every declared field of object, in declaration order.
template <class Struct, class Visitor>
constexpr void for_each_field(Struct& object, Visitor&& visit) {
  std::apply([&](const auto&... fields) { (visit(fields.name, object.*(fields.member)), ...); },
             std::remove_const_t<Struct>::fields());
}

template <class Struct>
constexpr std::size_t field_count() {
  return std::tuple_size_v<decltype(Struct::fields())>;
}

}  // namespace lowbit
