// The daemon's checkpoint payload (adapters/serve_checkpoint.h): a round trip keeps every field;
// another version is named; a payload of the right version whose parts have the wrong shape (a
// checkpoint from a broken build: the file's checksum is intact) is an error, never a crash; the
// payload written as pieces (PayloadPieces) is the packed one.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>
#include <msgpack.hpp>

#include "adapters/serve_checkpoint.h"

namespace vigil {
namespace {

CheckpointPayload Example() {
  CheckpointPayload p;
  p.epoch = 7;
  p.shards = 2;
  p.streams.push_back({"events", 0, 0, 12345, 1709251260000, 1709251199999});
  p.streams.push_back({"events", 1, int64_t{1} << 36, 7, kNoWatermark, kNoWatermark});
  p.watermark = 1709251200000;
  p.input_done = false;
  p.sources.push_back({"events", {{"events", 0, 120}, {"events", 1, 98}}, ""});
  p.sources.push_back({"queue", {{"", 3, 55}}, std::string("id-1\nid-2\n")});
  p.blobs = {std::string("\0snap\xff", 6), "second"};
  return p;
}

TEST_CASE("serve checkpoint: the payload round trip keeps every field") {
  const CheckpointPayload p = Example();
  CheckpointPayload q;
  std::string error;
  REQUIRE(UnpackPayload(PackPayload(p), &q, &error));
  CHECK(q.epoch == 7);
  CHECK(q.shards == 2);
  REQUIRE(q.streams.size() == 2);
  CHECK(q.streams[0].source == "events");
  CHECK(q.streams[0].next == 12345);
  CHECK(q.streams[0].max_seen == 1709251260000);
  CHECK(q.streams[0].own == 1709251199999);
  CHECK(q.streams[1].id == 1);
  CHECK(q.streams[1].base == int64_t{1} << 36);
  CHECK(q.streams[1].own == kNoWatermark);
  CHECK(q.legacy_next_seq == 0);
  CHECK(q.watermark == 1709251200000);
  CHECK_FALSE(q.input_done);
  REQUIRE(q.sources.size() == 2);
  CHECK(q.sources[0].name == "events");
  CHECK(q.sources[0].positions == p.sources[0].positions);
  CHECK(q.sources[1].state == "id-1\nid-2\n");
  CHECK(q.blobs == p.blobs);
}

// The daemon writes the payload as pieces (the blobs where they are, not copied): the file holds
// the bytes PackPayload gives, and reads back to the same payload.
TEST_CASE("serve checkpoint: a payload written as pieces reads back as the packed one") {
  CheckpointPayload p = Example();
  p.blobs.push_back(std::string(70000, 'x'));   // a bin 32 header
  p.blobs.push_back("");
  std::string frames;
  const std::vector<std::string_view> pieces = PayloadPieces(p, &frames);
  CHECK(pieces.size() == 1 + 2 * p.blobs.size());
  std::string joined;
  for (std::string_view piece : pieces) joined += piece;
  CHECK(joined == PackPayload(p));
  const std::string dir = std::filesystem::temp_directory_path() / fmt::format("vigil-pieces-{}", ::getpid());
  std::filesystem::remove_all(dir);
  CheckpointStore store(dir, 2);
  std::string error;
  REQUIRE(store.Open(&error));
  REQUIRE_MESSAGE(store.Write(7, pieces, nullptr, &error), error);
  std::string bytes;
  REQUIRE_MESSAGE(store.Read(7, &bytes, &error), error);
  CHECK(bytes == joined);
  CheckpointPayload q;
  REQUIRE(UnpackPayload(bytes, &q, &error));
  CHECK(q.blobs == p.blobs);
  CHECK(q.sources[1].state == p.sources[1].state);
  std::filesystem::remove_all(dir);
}

TEST_CASE("serve checkpoint: another version or a damaged payload is an error, not a crash") {
  std::string error;
  CheckpointPayload q;
  auto packed = [](auto&& write) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    write(pk);
    return std::string(buffer.data(), buffer.size());
  };
  CHECK_FALSE(UnpackPayload(packed([](auto& pk) { pk.pack_array(8); pk.pack(99); for (int i = 0; i < 7; ++i) pk.pack(0); }),
                            &q, &error));
  CHECK(error.find("payload version 99, this build reads") == 0);
  // The right version, then each part of the wrong kind or size.
  const std::vector<std::string> damaged = {
      packed([](auto& pk) { pk.pack_array(3); pk.pack(4); pk.pack(1); pk.pack(2); }),
      packed([](auto& pk) { pk.pack_array(8); pk.pack(4); pk.pack(1); pk.pack(2); pk.pack_array(1); pk.pack_array(5);
                            pk.pack("s"); pk.pack(0); pk.pack(0); pk.pack(0); pk.pack(0); pk.pack(0); pk.pack(false);
                            pk.pack_array(0); pk.pack_array(0); }),               // a partition of 5 fields
      packed([](auto& pk) { pk.pack_array(8); pk.pack(4); pk.pack(1); pk.pack(2); pk.pack(17); pk.pack(0);
                            pk.pack(false); pk.pack_array(0); pk.pack_array(0); }),   // partitions: a number
      packed([](auto& pk) { pk.pack_array(8); pk.pack(4); pk.pack(1); pk.pack(2); pk.pack_array(0); pk.pack(0); pk.pack(false);
                            pk.pack(42); pk.pack_array(0); }),                      // sources: not an array
      packed([](auto& pk) { pk.pack_array(8); pk.pack(4); pk.pack(1); pk.pack(2); pk.pack_array(0); pk.pack(0); pk.pack(false);
                            pk.pack_array(1); pk.pack_array(3); pk.pack("s"); pk.pack_array(1); pk.pack(7);
                            pk.pack_bin(0); pk.pack_array(0); }),                  // a position: not an array
      packed([](auto& pk) { pk.pack_array(8); pk.pack(4); pk.pack(1); pk.pack(2); pk.pack_array(0); pk.pack(0); pk.pack(false);
                            pk.pack_array(0); pk.pack_array(1); pk.pack("not bin"); }),   // a blob: a string
      packed([](auto& pk) { pk.pack(4); }),
      std::string("\xc1", 1),
  };
  for (const std::string& bytes : damaged) {
    error.clear();
    CheckpointPayload r;
    CHECK_FALSE(UnpackPayload(bytes, &r, &error));
    CHECK(error.find("damaged payload") == 0);
  }
  // Version 3 (one next seq for all input) is still read.
  CheckpointPayload legacy;
  REQUIRE(UnpackPayload(packed([](auto& pk) { pk.pack_array(8); pk.pack(3); pk.pack(5); pk.pack(1); pk.pack(9876);
                                              pk.pack(100); pk.pack(false); pk.pack_array(0); pk.pack_array(0); }),
                        &legacy, &error));
  CHECK(legacy.legacy_next_seq == 9876);
  CHECK(legacy.streams.empty());
  CHECK(legacy.watermark == 100);
  const std::string whole = PackPayload(Example());
  for (size_t n = 0; n < whole.size(); n += 3) {   // every cut
    CheckpointPayload r;
    CHECK_FALSE(UnpackPayload(whole.substr(0, n), &r, &error));
  }
}

}  // namespace
}  // namespace vigil
