// JSON for structs reflected with fields() (include/lowbit/fields.h) whose fields are integers,
// booleans or enums with EnumNames (include/lowbit/descriptor.h): variants are stored in the
// cache this way. One definition, so every variant reads and writes JSON alike.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>

#include "lowbit/descriptor.h"
#include "lowbit/errors.h"
#include "lowbit/fields.h"

namespace lowbit {

template <class Struct>
nlohmann::json fields_to_json(const Struct& object) {
  nlohmann::json json = nlohmann::json::object();
  for_each_field(object, [&](std::string_view name, const auto& value) {
    using Value = std::decay_t<decltype(value)>;
    if constexpr (std::is_enum_v<Value>) {
      json[std::string(name)] = std::string(EnumNames<Value>::names[static_cast<std::size_t>(value)]);
    } else {
      json[std::string(name)] = value;
    }
  });
  return json;
}

// Throws InvalidArgument naming the field when a field is missing or of the wrong kind;
// `what` names the struct in messages (e.g. "x86 variant").
template <class Struct>
Struct fields_from_json(const nlohmann::json& json, std::string_view what) {
  if (!json.is_object()) throw InvalidArgument("variant", fmt::format("an {} must be a JSON object", what));
  Struct object{};
  for_each_field(object, [&](std::string_view name, auto& value) {
    using Value = std::decay_t<decltype(value)>;
    auto found = json.find(std::string(name));
    if (found == json.end()) throw InvalidArgument(std::string(name), fmt::format("{} JSON lacks field '{}'", what, name));
    if constexpr (std::is_enum_v<Value>) {
      const auto& names = EnumNames<Value>::names;
      const std::string text = found->is_string() ? found->template get<std::string>() : std::string();
      auto match = std::find(names.begin(), names.end(), text);
      if (match == names.end())
        throw InvalidArgument(std::string(name), fmt::format("{} field '{}': '{}' is not allowed (allowed: {})", what,
                                                             name, text, fmt::join(names, ", ")));
      value = static_cast<Value>(match - names.begin());
    } else if constexpr (std::is_same_v<Value, bool>) {
      if (!found->is_boolean())
        throw InvalidArgument(std::string(name), fmt::format("{} field '{}' must be true or false", what, name));
      value = found->template get<bool>();
    } else {
      if (!found->is_number_integer())
        throw InvalidArgument(std::string(name), fmt::format("{} field '{}' must be an integer", what, name));
      value = found->template get<Value>();
    }
  });
  return object;
}

}  // namespace lowbit
