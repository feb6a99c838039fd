// Typed errors of the public API, and the one place warnings are printed.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace lowbit {

// Base of every error lowbit throws; what() is a complete sentence for a user.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The caller's input is wrong: a descriptor field, a CLI argument, a buffer size.
// field() names what is wrong (e.g. "group"), so tools can point at it.
class InvalidArgument : public Error {
 public:
  InvalidArgument(std::string field, const std::string& message)
      : Error(message), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// A valid request that no backend on this machine can serve (yet): e.g. a weight format
// a generator does not cover, or a device that is absent.
class Unsupported : public Error {
 public:
  using Error::Error;
};

// Prints "lowbit: warning: <message>" to stderr. Warnings never stop work (a corrupt cache
// file is a warning and a miss). LOWBIT_QUIET=1 silences them.
void warn(std::string_view message);

}  // namespace lowbit
