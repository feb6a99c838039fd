// SHA-256 content addresses for compiled artifacts (Nettle's sha256; never hand-written).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace lowbit::cache {

// Hashes a sequence of parts. Each part is preceded by its length, so ("ab", "c") and
// ("a", "bc") give different digests: a key built from (source, compiler, arch, flags) cannot
// be matched by moving bytes from one part to the next.
class ContentHash {
 public:
  ContentHash();
  ~ContentHash();
  ContentHash(const ContentHash&) = delete;
  ContentHash& operator=(const ContentHash&) = delete;

  ContentHash& add(std::string_view part);
  // 64 lowercase hex digits. The hash cannot be extended afterwards.
  std::string hex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// SHA-256 of bytes as 64 lowercase hex digits (one part, no length prefix).
std::string sha256_hex(std::string_view bytes);

}  // namespace lowbit::cache
