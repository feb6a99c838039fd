#include "cache/content_hash.h"

#include <fmt/format.h>
#include <nettle/sha2.h>

#include <array>
#include <cstdint>

namespace lowbit::cache {

// Nettle's SHA-256 needs no library initialisation: OpenSSL 3's first digest in a process cost
// 0.5-1.7 ms (loading its providers and configuration), more than a whole cache hit may take.
struct ContentHash::State {
  sha256_ctx context{};
};

namespace {

std::string to_hex(const std::array<std::uint8_t, SHA256_DIGEST_SIZE>& digest) {
  std::string text;
  text.reserve(2 * digest.size());
  for (std::uint8_t byte : digest) text += fmt::format("{:02x}", byte);
  return text;
}

void update(sha256_ctx& context, std::string_view bytes) {
  sha256_update(&context, bytes.size(), reinterpret_cast<const std::uint8_t*>(bytes.data()));
}

}  // namespace

ContentHash::ContentHash() : state_(std::make_unique<State>()) { sha256_init(&state_->context); }

ContentHash::~ContentHash() = default;

ContentHash& ContentHash::add(std::string_view part) {
  // Length as 8 little-endian bytes, independent of the host's byte order.
  std::array<char, 8> length{};
  const std::uint64_t size = part.size();
  for (std::size_t index = 0; index < length.size(); ++index) length[index] = static_cast<char>(size >> (8 * index));
  update(state_->context, std::string_view(length.data(), length.size()));
  update(state_->context, part);
  return *this;
}

std::string ContentHash::hex() {
  std::array<std::uint8_t, SHA256_DIGEST_SIZE> digest{};
  sha256_digest(&state_->context, digest.size(), digest.data());
  return to_hex(digest);
}

std::string sha256_hex(std::string_view bytes) {
  sha256_ctx context{};
  sha256_init(&context);
  update(context, bytes);
  std::array<std::uint8_t, SHA256_DIGEST_SIZE> digest{};
  sha256_digest(&context, digest.size(), digest.data());
  return to_hex(digest);
}

}  // namespace lowbit::cache
