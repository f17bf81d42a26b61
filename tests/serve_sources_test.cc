// The daemon's file source (adapters/serve_sources.h): lines handed out in batches with their
// byte offsets, blank lines skipped, an overlong line cut at the limit + 1 (a dead letter for the
// decoder) and the rest of it skipped, positions after what was handed out, and a second source
// rewound to a position reading exactly the rest.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "adapters/msgpack_decoder.h"
#include "adapters/serve_sources.h"

namespace vigil {
namespace {

struct Read {
  std::vector<std::string> lines;
  std::vector<int64_t> offsets;
};

Read ReadAll(ServeSource& source, size_t max) {
  Read out;
  SourceBatch batch;
  std::string error;
  for (int i = 0; i < 100000 && !source.exhausted(); ++i) {
    REQUIRE(source.Poll(0, max, &batch, &error));
    for (const SourceMessage& m : batch.messages) {
      out.lines.emplace_back(m.bytes);
      out.offsets.push_back(m.offset);
    }
  }
  return out;
}

TEST_CASE("serve sources: a file source hands out lines, offsets and positions") {
  char tmpl[] = "/tmp/vigil-src-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/in.jsonl";
  std::string text;
  std::vector<std::string> want;
  std::vector<int64_t> want_offsets;
  for (int i = 0; i < 3000; ++i) {
    if (i % 7 == 3) text += (i % 2 ? "\n" : "  \r\n");              // blank lines
    std::string line = "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(i % 500, 'x') + "\"}";
    if (i == 1500) line = std::string(5000, 'y');                    // overlong (limit 4096)
    want_offsets.push_back(static_cast<int64_t>(text.size()));
    want.push_back(i == 1500 ? std::string(4097, 'y') : line);
    text += line + "\n";
  }
  text += "{\"last\":true}";                                         // no final newline
  want_offsets.push_back(static_cast<int64_t>(text.size()) - 13);
  want.push_back("{\"last\":true}");
  std::ofstream(path) << text;

  SourceConfig config;
  config.name = "f";
  config.kind = SourceConfig::Kind::kFile;
  config.path = path;
  std::string error;
  for (size_t max : {size_t{1}, size_t{7}, size_t{1024}}) {
    std::unique_ptr<ServeSource> source = MakeServeSource(config, 4096, &error);
    REQUIRE(source != nullptr);
    const Read got = ReadAll(*source, max);
    CHECK(got.lines == want);
    CHECK(got.offsets == want_offsets);
    REQUIRE(source->Positions().size() == 1);
    CHECK(source->Positions()[0].offset == static_cast<int64_t>(text.size()));
  }
  // Stop after some batches; a new source rewound to the position reads exactly the rest.
  std::unique_ptr<ServeSource> first = MakeServeSource(config, 4096, &error);
  SourceBatch batch;
  size_t taken = 0;
  for (int i = 0; i < 40; ++i) {
    REQUIRE(first->Poll(0, 50, &batch, &error));
    taken += batch.messages.size();
  }
  const std::vector<SourcePosition> at = first->Positions();
  std::unique_ptr<ServeSource> second = MakeServeSource(config, 4096, &error);
  REQUIRE(second->Rewind(at, &error));
  const Read rest = ReadAll(*second, 64);
  CHECK(rest.lines == std::vector<std::string>(want.begin() + static_cast<long>(taken), want.end()));
  std::filesystem::remove_all(dir);
}

// One msgpack map {"n": i, "pad": "x" * pad}.
std::string PackedEvent(int i, size_t pad) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(2);
  pk.pack(std::string("n"));
  pk.pack(i);
  pk.pack(std::string("pad"));
  pk.pack(std::string(pad, 'x'));
  return std::string(buffer.data(), buffer.size());
}

TEST_CASE("serve sources: a msgpack stream is framed value by value") {
  char tmpl[] = "/tmp/vigil-src-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  std::string stream;
  std::vector<std::string> want;
  std::vector<int64_t> offsets;
  for (int i = 0; i < 3000; ++i) {
    std::string value = PackedEvent(i, static_cast<size_t>(i % 300));
    if (i == 1500) value = PackedEvent(i, 5000);   // over the 4096-byte limit
    offsets.push_back(static_cast<int64_t>(stream.size()));
    want.push_back(i == 1500 ? value.substr(0, 4097) : value);
    stream += value;
  }
  // FrameMsgpack alone: every prefix of a value is truncated, the value itself ok, 0xc1 malformed.
  const std::string one = PackedEvent(7, 40);
  for (size_t n = 0; n < one.size(); ++n) CHECK(FrameMsgpack(one.substr(0, n)).status == MsgpackFrame::kTruncated);
  CHECK(FrameMsgpack(one + "tail").length == one.size());
  CHECK(FrameMsgpack("\xc1").status == MsgpackFrame::kMalformed);
  CHECK(FrameMsgpack(std::string(100, '\x91') + "\x01").status == MsgpackFrame::kMalformed);   // too deep

  SUBCASE("whole values, the overlong one cut, then a truncated end handed out as it is") {
    const std::string cut = PackedEvent(9, 100).substr(0, 50);
    offsets.push_back(static_cast<int64_t>(stream.size()));
    want.push_back(cut);
    std::ofstream(dir + "/in.msgpack", std::ios::binary) << stream << cut;
    SourceConfig config;
    config.name = "m";
    config.kind = SourceConfig::Kind::kFile;
    config.format = EventFormat::kMsgpack;
    config.path = dir + "/in.msgpack";
    std::string error;
    for (size_t max : {size_t{1}, size_t{64}, size_t{5000}}) {
      std::unique_ptr<ServeSource> source = MakeServeSource(config, 4096, &error);
      REQUIRE(source != nullptr);
      const Read got = ReadAll(*source, max);
      CHECK(got.lines == want);
      CHECK(got.offsets == offsets);
    }
    // Rewound to a position, a second source reads exactly the rest.
    std::unique_ptr<ServeSource> first = MakeServeSource(config, 4096, &error);
    SourceBatch batch;
    size_t taken = 0;
    for (int i = 0; i < 20; ++i) {
      REQUIRE(first->Poll(0, 37, &batch, &error));
      taken += batch.messages.size();
    }
    std::unique_ptr<ServeSource> second = MakeServeSource(config, 4096, &error);
    REQUIRE(second->Rewind(first->Positions(), &error));
    CHECK(ReadAll(*second, 100).lines == std::vector<std::string>(want.begin() + static_cast<long>(taken), want.end()));
  }
  SUBCASE("a malformed value: handed out with the rest of its chunk, nothing after it is read") {
    std::ofstream(dir + "/in.msgpack", std::ios::binary) << stream.substr(0, static_cast<size_t>(offsets[10]))
                                                         << "\xc1" << stream.substr(static_cast<size_t>(offsets[10]));
    SourceConfig config;
    config.name = "m";
    config.kind = SourceConfig::Kind::kFile;
    config.format = EventFormat::kMsgpack;
    config.path = dir + "/in.msgpack";
    std::string error;
    std::unique_ptr<ServeSource> source = MakeServeSource(config, 4096, &error);
    const Read got = ReadAll(*source, 100);
    REQUIRE(got.lines.size() == 11);
    CHECK(std::vector<std::string>(got.lines.begin(), got.lines.begin() + 10) ==
          std::vector<std::string>(want.begin(), want.begin() + 10));
    CHECK(got.lines[10][0] == '\xc1');
    CHECK(got.lines[10].size() == 4097);
    CHECK(source->exhausted());
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("serve sources: a missing file is an error naming it") {
  SourceConfig config;
  config.name = "f";
  config.kind = SourceConfig::Kind::kFile;
  config.path = "/nonexistent/vigil/in.jsonl";
  std::string error;
  CHECK(MakeServeSource(config, 4096, &error) == nullptr);
  CHECK(error == "source 'f': cannot open /nonexistent/vigil/in.jsonl: No such file or directory");
}

}  // namespace
}  // namespace vigil
