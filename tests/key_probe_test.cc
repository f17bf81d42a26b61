// The matcher's key map is probed with a StringKeyProbe (runtime/matcher_impl.h: a spec id and a
// string, not encoded) where the key is one string. The probe must hash and compare exactly as
// the encoded bytes it stands for (the 4-byte spec id, the 4-byte length, the string), or a key
// would be missed and a second key state created for it: checked for every string length up to
// 70 (all the hash's cases: header only, straddling words, the 16-byte loop) and random bytes.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include <doctest/doctest.h>

#include "runtime/matcher_impl.h"

namespace vigil {
namespace {

std::string Encode(uint32_t spec, const std::string& s) {
  std::string bytes(8 + s.size(), '\0');
  const uint32_t n = static_cast<uint32_t>(s.size());
  std::memcpy(bytes.data(), &spec, 4);
  std::memcpy(bytes.data() + 4, &n, 4);
  std::memcpy(bytes.data() + 8, s.data(), s.size());
  return bytes;
}

StringKeyProbe Probe(uint32_t spec, const std::string& s) {
  return StringKeyProbe{spec | (static_cast<uint64_t>(s.size()) << 32), s};
}

TEST_CASE("key probe: hashes and compares as the encoded key") {
  std::mt19937_64 rng(7);
  const KeyBytesHash hash;
  const KeyBytesEq eq;
  for (size_t n = 0; n <= 70; ++n) {
    for (int round = 0; round < 20; ++round) {
      std::string s(n, '\0');
      for (char& c : s) c = static_cast<char>(rng());
      const uint32_t spec = static_cast<uint32_t>(rng() % 4);
      const std::string bytes = Encode(spec, s);
      CAPTURE(n);
      CHECK(hash(Probe(spec, s)) == hash(std::string_view(bytes)));
      CHECK(eq(std::string_view(bytes), Probe(spec, s)));
      CHECK(eq(Probe(spec, s), std::string_view(bytes)));
      CHECK_FALSE(eq(std::string_view(bytes), Probe(spec + 1, s)));   // another spec
      if (n > 0) {
        std::string other = s;
        other[rng() % n] ^= 1;   // one bit anywhere
        CHECK_FALSE(eq(std::string_view(bytes), Probe(spec, other)));
        CHECK_FALSE(eq(std::string_view(bytes), Probe(spec, s.substr(0, n - 1))));   // shorter
      }
    }
  }
}

TEST_CASE("key probe: finds the encoded keys in the key map") {
  absl::flat_hash_map<std::string, uint32_t, KeyBytesHash, KeyBytesEq> map;
  for (uint32_t i = 0; i < 2000; ++i) map.emplace(Encode(i % 3, "key-" + std::to_string(i)), i);
  for (uint32_t i = 0; i < 2000; ++i) {
    const auto it = map.find(Probe(i % 3, "key-" + std::to_string(i)));
    REQUIRE(it != map.end());
    CHECK(it->second == i);
    CHECK(map.find(Probe((i + 1) % 3, "key-" + std::to_string(i))) == map.end());
  }
}

}  // namespace
}  // namespace vigil
