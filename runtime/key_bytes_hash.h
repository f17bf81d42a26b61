// HashKeyBytes: the hash of an encoded key (a few words: a 4-byte spec id, then 8-byte numbers
// or a length and a string), read 8 bytes at a time and mixed by 64x64->128-bit multiplication
// (as wyhash), inline. The matcher's key map (KeyBytesHash, matcher_impl.h) and the window
// state's (window_state.h) use it. Not stable across versions: never persisted.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace vigil {

namespace key_hash {
inline uint64_t Mix(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
inline uint64_t Load8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t Load4(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
}  // namespace key_hash

inline uint64_t HashKeyBytes(std::string_view bytes) {
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
  const char* p = bytes.data();
  const size_t size = bytes.size();
  uint64_t h = k0 ^ size;
  uint64_t a = 0, b = 0;
  if (size > 16) {
    const char* const end = p + size;
    for (size_t n = size; n > 16; n -= 16, p += 16) h = key_hash::Mix(key_hash::Load8(p) ^ k1, key_hash::Load8(p + 8) ^ h);
    a = key_hash::Load8(end - 16);   // the last 16 bytes (overlapping what the loop read)
    b = key_hash::Load8(end - 8);
  } else if (size >= 8) {
    a = key_hash::Load8(p);
    b = key_hash::Load8(p + size - 8);
  } else if (size >= 4) {
    a = key_hash::Load4(p);
    b = key_hash::Load4(p + size - 4);
  } else if (size > 0) {
    a = (static_cast<uint64_t>(static_cast<unsigned char>(p[0])) << 16) |
        (static_cast<uint64_t>(static_cast<unsigned char>(p[size >> 1])) << 8) |
        static_cast<unsigned char>(p[size - 1]);
  }
  return key_hash::Mix(a ^ k1, b ^ h ^ k2);
}

}  // namespace vigil
