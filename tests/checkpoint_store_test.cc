// Checkpoint files (runtime/checkpoint_store.h): CRC-32C against its published check value and a
// bitwise implementation; write/read round trips; only the newest `keep` stay; a truncated file, a
// flipped bit, a foreign file and a renamed file are each reported by name and the next older
// checkpoint is used; a stray temporary file of an interrupted write is removed by Open.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "runtime/checkpoint_store.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Bit by bit, straight from the definition (reflected polynomial 0x82F63B78).
uint32_t Crc32cBitwise(std::string_view bytes) {
  uint32_t crc = ~0u;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/vigil-ckpt-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string Payload(uint64_t epoch, size_t size) {
  std::mt19937_64 rng(epoch);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_CASE("checkpoint store: CRC-32C check value and bitwise equality at every length") {
  CHECK(Crc32c("123456789") == 0xE3069283u);   // the CRC catalogue's check value
  CHECK(Crc32c("") == 0u);
  const std::string data = Payload(7, 300);
  for (size_t n = 0; n <= data.size(); ++n) {
    const std::string_view s(data.data(), n);
    REQUIRE(Crc32c(s) == Crc32cBitwise(s));
    // Continuing from a prefix's CRC gives the CRC of the whole.
    const size_t half = n / 2;
    CHECK(Crc32c(s.substr(half), Crc32c(s.substr(0, half))) == Crc32c(s));
  }
}

TEST_CASE("checkpoint store: round trip, newest first, only the newest keep stay") {
  TempDir dir;
  CheckpointStore store(dir.path + "/sub/ckpt", 3);
  std::string error;
  REQUIRE(store.Open(&error));
  CHECK(store.ReadNewestValid().found == false);
  for (uint64_t epoch = 1; epoch <= 5; ++epoch) {
    CheckpointWriteStats stats;
    REQUIRE_MESSAGE(store.Write(epoch, Payload(epoch, 1000 * epoch), &stats, &error), error);
    CHECK(stats.bytes == 1000 * epoch + 32);
    CHECK(stats.removed == (epoch > 3 ? 1 : 0));
  }
  CHECK(store.List() == std::vector<uint64_t>{5, 4, 3});
  for (uint64_t epoch : {3, 4, 5}) {
    std::string payload;
    REQUIRE(store.Read(epoch, &payload, &error));
    CHECK(payload == Payload(epoch, 1000 * epoch));
  }
  const CheckpointRead newest = store.ReadNewestValid();
  CHECK(newest.found);
  CHECK(newest.epoch == 5);
  CHECK(newest.payload == Payload(5, 5000));
  CHECK(newest.skipped.empty());
  // An empty payload is a checkpoint too.
  REQUIRE(store.Write(6, "", nullptr, &error));
  CHECK(store.ReadNewestValid().epoch == 6);
  CHECK(store.ReadNewestValid().payload.empty());
}

TEST_CASE("checkpoint store: damaged checkpoints are reported and the one before is used") {
  TempDir dir;
  CheckpointStore store(dir.path, 10);
  std::string error;
  REQUIRE(store.Open(&error));
  for (uint64_t epoch = 1; epoch <= 5; ++epoch) REQUIRE(store.Write(epoch, Payload(epoch, 4096), nullptr, &error));
  const std::string whole5 = ReadFile(store.PathOf(5));

  SUBCASE("truncated") {
    for (size_t keep : {whole5.size() - 1, size_t{4000}, size_t{31}, size_t{10}, size_t{0}}) {
      WriteFile(store.PathOf(5), whole5.substr(0, keep));
      const CheckpointRead r = store.ReadNewestValid();
      REQUIRE(r.found);
      CHECK(r.epoch == 4);
      CHECK(r.payload == Payload(4, 4096));
      REQUIRE(r.skipped.size() == 1);
      CHECK(r.skipped[0].epoch == 5);
      CHECK(r.skipped[0].why.find("checkpoint-00000000000000000005.vck: truncated") == 0);
    }
  }
  SUBCASE("a flipped bit anywhere") {
    std::mt19937 rng(1);
    for (int trial = 0; trial < 50; ++trial) {
      std::string bad = whole5;
      const size_t at = rng() % bad.size();
      bad[at] = static_cast<char>(bad[at] ^ (1 << (rng() % 8)));
      WriteFile(store.PathOf(5), bad);
      const CheckpointRead r = store.ReadNewestValid();
      REQUIRE(r.found);
      CHECK(r.epoch == 4);
      REQUIRE(r.skipped.size() == 1);
      CHECK(r.skipped[0].why.find("checkpoint-00000000000000000005.vck: ") == 0);
    }
  }
  SUBCASE("two damaged, newest first") {
    WriteFile(store.PathOf(5), "not a checkpoint at all, just some text here");
    WriteFile(store.PathOf(4), ReadFile(store.PathOf(3)));   // intact, but epoch 3's
    const CheckpointRead r = store.ReadNewestValid();
    REQUIRE(r.found);
    CHECK(r.epoch == 3);
    REQUIRE(r.skipped.size() == 2);
    CHECK(r.skipped[0].why == "checkpoint-00000000000000000005.vck: not a Vigil checkpoint (bad magic)");
    CHECK(r.skipped[1].why == "checkpoint-00000000000000000004.vck: holds epoch 3");
  }
  SUBCASE("all damaged") {
    for (uint64_t epoch = 1; epoch <= 5; ++epoch) WriteFile(store.PathOf(epoch), "");
    const CheckpointRead r = store.ReadNewestValid();
    CHECK_FALSE(r.found);
    CHECK(r.skipped.size() == 5);
  }
}

TEST_CASE("checkpoint store: a stray temporary file is removed and never read") {
  TempDir dir;
  CheckpointStore store(dir.path, 2);
  std::string error;
  REQUIRE(store.Open(&error));
  REQUIRE(store.Write(1, "one", nullptr, &error));
  WriteFile(dir.path + "/.tmp-checkpoint-2", "half of a checkp");
  WriteFile(dir.path + "/notes.txt", "not ours");
  CHECK(store.List() == std::vector<uint64_t>{1});
  CheckpointStore reopened(dir.path, 2);
  REQUIRE(reopened.Open(&error));
  CHECK_FALSE(fs::exists(dir.path + "/.tmp-checkpoint-2"));
  CHECK(fs::exists(dir.path + "/notes.txt"));
  CHECK(reopened.ReadNewestValid().payload == "one");
}

TEST_CASE("checkpoint store: an unwritable directory is an error, not a crash") {
  CheckpointStore store("/proc/vigil-cannot-exist/ckpt", 2);
  std::string error;
  CHECK_FALSE(store.Open(&error));
  CHECK(error.find("cannot create checkpoint directory /proc/vigil-cannot-exist/ckpt") == 0);
}

}  // namespace
}  // namespace vigil
