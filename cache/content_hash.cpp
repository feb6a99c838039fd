#include "cache/content_hash.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <array>
#include <cstdint>

#include "lowbit/errors.h"

namespace lowbit::cache {

struct ContentHash::State {
  EVP_MD_CTX* context = nullptr;
  ~State() { EVP_MD_CTX_free(context); }
};

namespace {

void require(int result, const char* what) {
  // OpenSSL fails here only when out of memory or misconfigured (e.g. a FIPS provider that
  // lacks SHA-256); nothing the caller could correct.
  if (result != 1) throw Error(fmt::format("OpenSSL {} failed while hashing a compiled artifact's key", what));
}

std::string to_hex(const unsigned char* digest, unsigned int size) {
  std::string text;
  text.reserve(size * 2);
  for (unsigned int index = 0; index < size; ++index) text += fmt::format("{:02x}", digest[index]);
  return text;
}

}  // namespace

ContentHash::ContentHash() : state_(std::make_unique<State>()) {
  state_->context = EVP_MD_CTX_new();
  if (state_->context == nullptr) throw Error("OpenSSL EVP_MD_CTX_new failed (out of memory)");
  require(EVP_DigestInit_ex(state_->context, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

ContentHash::~ContentHash() = default;

ContentHash& ContentHash::add(std::string_view part) {
  // Length as 8 little-endian bytes, independent of the host's byte order.
  std::array<unsigned char, 8> length{};
  const std::uint64_t size = part.size();
  for (std::size_t index = 0; index < length.size(); ++index)
    length[index] = static_cast<unsigned char>(size >> (8 * index));
  require(EVP_DigestUpdate(state_->context, length.data(), length.size()), "EVP_DigestUpdate");
  require(EVP_DigestUpdate(state_->context, part.data(), part.size()), "EVP_DigestUpdate");
  return *this;
}

std::string ContentHash::hex() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  require(EVP_DigestFinal_ex(state_->context, digest.data(), &size), "EVP_DigestFinal_ex");
  return to_hex(digest.data(), size);
}

std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  require(EVP_Digest(bytes.data(), bytes.size(), digest.data(), &size, EVP_sha256(), nullptr), "EVP_Digest");
  return to_hex(digest.data(), size);
}

}  // namespace lowbit::cache
