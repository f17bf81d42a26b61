// The daemon's checkpoint payload and the restart choice: see serve_checkpoint.h.
#include "adapters/serve_checkpoint.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <msgpack.hpp>
#include <spdlog/spdlog.h>

namespace vigil {
namespace {

// 4: seqs per input partition (a list of partitions where version 3 had one next seq).
constexpr uint32_t kPayloadVersion = 4;

const SourcePosition* Find(const std::vector<SourcePosition>& list, const SourcePosition& partition) {
  for (const SourcePosition& p : list) {
    if (p.partition == partition.partition && p.topic == partition.topic) return &p;
  }
  return nullptr;
}

// Every position of the candidate is a committed offset, and every committed offset is one of
// the candidate's positions.
bool Matches(const RestoreCandidate& candidate, const CommittedOffsets& committed) {
  static const std::vector<SourcePosition> kNone;
  for (const auto& [source, mine] : candidate.kafka) {
    const auto it = committed.find(source);
    const std::vector<SourcePosition>& offsets = it != committed.end() ? it->second : kNone;
    for (const SourcePosition& p : mine) {
      const SourcePosition* c = Find(offsets, p);
      if (c == nullptr || c->offset != p.offset) return false;
    }
  }
  for (const auto& [source, offsets] : committed) {
    const auto it = candidate.kafka.find(source);
    const std::vector<SourcePosition>& mine = it != candidate.kafka.end() ? it->second : kNone;
    for (const SourcePosition& c : offsets) {
      if (c.offset >= 0 && Find(mine, c) == nullptr) return false;
    }
  }
  return true;
}

}  // namespace

std::vector<std::string_view> PayloadPieces(const CheckpointPayload& p, std::string* frames) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(8);
  pk.pack(kPayloadVersion);
  pk.pack(p.epoch);
  pk.pack(p.shards);
  pk.pack_array(static_cast<uint32_t>(p.streams.size()));
  for (const CheckpointPayload::Stream& stream : p.streams) {
    pk.pack_array(6);
    pk.pack(stream.source);
    pk.pack(stream.id);
    pk.pack(stream.base);
    pk.pack(stream.next);
    pk.pack(stream.max_seen);
    pk.pack(stream.own);
  }
  pk.pack(p.watermark);
  pk.pack(p.input_done);
  pk.pack_array(static_cast<uint32_t>(p.sources.size()));
  for (const CheckpointPayload::Source& source : p.sources) {
    pk.pack_array(3);
    pk.pack(source.name);
    pk.pack_array(static_cast<uint32_t>(source.positions.size()));
    for (const SourcePosition& pos : source.positions) {
      pk.pack_array(3);
      pk.pack(pos.topic);
      pk.pack(pos.partition);
      pk.pack(pos.offset);
    }
    pk.pack_bin(static_cast<uint32_t>(source.state.size()));
    pk.pack_bin_body(source.state.data(), static_cast<uint32_t>(source.state.size()));
  }
  pk.pack_array(static_cast<uint32_t>(p.blobs.size()));
  // Then per blob its bin header (in `frames` too) and the blob itself, where it is.
  std::vector<size_t> ends = {buffer.size()};
  for (const std::string& blob : p.blobs) {
    pk.pack_bin(static_cast<uint32_t>(blob.size()));
    ends.push_back(buffer.size());
  }
  frames->assign(buffer.data(), buffer.size());
  std::vector<std::string_view> pieces = {std::string_view(*frames).substr(0, ends[0])};
  for (size_t i = 0; i < p.blobs.size(); ++i) {
    pieces.push_back(std::string_view(*frames).substr(ends[i], ends[i + 1] - ends[i]));
    pieces.push_back(p.blobs[i]);
  }
  return pieces;
}

std::string PackPayload(const CheckpointPayload& p) {
  std::string frames, out;
  for (std::string_view piece : PayloadPieces(p, &frames)) out += piece;
  return out;
}

// The array `o` with `size` elements (any size when `size` is 0), or a type_error.
static const msgpack::object* ArrayOf(const msgpack::object& o, uint32_t size = 0) {
  if (o.type != msgpack::type::ARRAY || (size != 0 && o.via.array.size != size)) throw msgpack::type_error();
  return o.via.array.ptr;
}

static std::string_view BinOf(const msgpack::object& o) {
  if (o.type != msgpack::type::BIN) throw msgpack::type_error();
  return {o.via.bin.ptr, o.via.bin.size};
}

bool UnpackPayload(std::string_view bytes, CheckpointPayload* p, std::string* error) {
  try {
    msgpack::object_handle handle = msgpack::unpack(bytes.data(), bytes.size());
    const msgpack::object& root = handle.get();
    if (root.type != msgpack::type::ARRAY || root.via.array.size == 0) throw msgpack::type_error();
    const uint32_t version = root.via.array.ptr[0].as<uint32_t>();
    if (version != kPayloadVersion && version != 3) {
      *error = fmt::format("payload version {}, this build reads {}", version, kPayloadVersion);
      return false;
    }
    const msgpack::object* f = ArrayOf(root, 8);
    p->epoch = f[1].as<uint64_t>();
    p->shards = f[2].as<int>();
    if (version == 3) {
      p->legacy_next_seq = f[3].as<int64_t>();
    } else {
      const msgpack::object* streams = ArrayOf(f[3]);
      for (uint32_t i = 0; i < f[3].via.array.size; ++i) {
        const msgpack::object* s = ArrayOf(streams[i], 6);
        p->streams.push_back({s[0].as<std::string>(), s[1].as<uint32_t>(), s[2].as<int64_t>(),
                              s[3].as<int64_t>(), s[4].as<int64_t>(), s[5].as<int64_t>()});
      }
    }
    p->watermark = f[4].as<int64_t>();
    p->input_done = f[5].as<bool>();
    const msgpack::object* sources = ArrayOf(f[6]);
    for (uint32_t i = 0; i < f[6].via.array.size; ++i) {
      const msgpack::object* s = ArrayOf(sources[i], 3);
      CheckpointPayload::Source& source = p->sources.emplace_back();
      source.name = s[0].as<std::string>();
      const msgpack::object* list = ArrayOf(s[1]);
      for (uint32_t j = 0; j < s[1].via.array.size; ++j) {
        const msgpack::object* pos = ArrayOf(list[j], 3);
        source.positions.push_back({pos[0].as<std::string>(), pos[1].as<int32_t>(), pos[2].as<int64_t>()});
      }
      source.state = BinOf(s[2]);
    }
    const msgpack::object* blobs = ArrayOf(f[7]);
    for (uint32_t i = 0; i < f[7].via.array.size; ++i) p->blobs.emplace_back(BinOf(blobs[i]));
    return true;
  } catch (const std::exception& e) {
    *error = fmt::format("damaged payload ({})", e.what());
    return false;
  }
}

// With a transactional sink: the newest checkpoint whose Kafka positions are the group's
// committed offsets (serve_checkpoint.h); newer ones, whose transactions did not commit, are
// removed so their epochs are written anew. None matches: the newest valid one, with a warning.
bool ReadCommittedCheckpoint(const CheckpointStore& store, std::span<ServeSource* const> kafka,
                             CheckpointRead* read, std::string* error) {
  std::vector<RestoreCandidate> candidates;
  std::vector<std::string> payloads;
  std::string why;
  for (const uint64_t e : store.List()) {
    std::string bytes;
    if (!store.Read(e, &bytes, &why)) {
      read->skipped.push_back({e, store.PathOf(e), why});
      continue;
    }
    CheckpointPayload p;
    if (!UnpackPayload(bytes, &p, &why)) {
      *error = fmt::format("checkpoint {}: {}", store.PathOf(e), why);
      return false;
    }
    RestoreCandidate& c = candidates.emplace_back();
    c.epoch = e;
    for (const ServeSource* source : kafka) {
      std::vector<SourcePosition>& mine = c.kafka[source->name()];
      for (const CheckpointPayload::Source& saved : p.sources) {
        if (saved.name == source->name()) mine = saved.positions;
      }
    }
    payloads.push_back(std::move(bytes));
  }
  if (candidates.empty()) return true;
  // The group's committed offsets for every partition some checkpoint holds.
  CommittedOffsets committed;
  std::string failed;
  for (ServeSource* source : kafka) {
    std::vector<SourcePosition>& asked = committed[source->name()];
    for (const RestoreCandidate& c : candidates) {
      for (const SourcePosition& p : c.kafka.at(source->name())) {
        if (std::find_if(asked.begin(), asked.end(), [&](const SourcePosition& a) {
              return a.partition == p.partition && a.topic == p.topic;
            }) == asked.end()) {
          asked.push_back({p.topic, p.partition, -1});
        }
      }
    }
    if (!asked.empty() && !source->Committed(&asked, &why)) {
      failed = fmt::format("source '{}': cannot read the group's committed offsets: {}", source->name(), why);
      break;
    }
  }
  if (!failed.empty()) {
    // Without the committed offsets the newest checkpoint may be one whose transaction aborted:
    // restoring it would lose that epoch's alerts. Do not guess; the caller retries.
    *error = failed + " (needed to know which checkpoint's transaction committed)";
    return false;
  }
  const RestoreChoice choice = ChooseRestoreCheckpoint(candidates, committed);
  const RestoreCandidate& chosen = candidates[choice.index];
  if (!choice.matched) {
    spdlog::warn("no checkpoint's Kafka positions are the consumer group's committed offsets (the "
                 "transaction that committed them is not among the checkpoints, or the offsets were "
                 "lost or moved): restoring the newest valid checkpoint, {}. If its transaction "
                 "aborted, that epoch's alerts are lost to read_committed readers; otherwise "
                 "delivery is at least once (docs/operations.md \"Checkpoints\")",
                 chosen.epoch);
  } else {
    for (const uint64_t e : store.List()) {
      if (e <= chosen.epoch) continue;
      std::error_code ec;
      std::filesystem::remove(store.PathOf(e), ec);
      spdlog::warn("checkpoint {} is newer than the group's committed offsets (its transaction did "
                   "not commit): {}, its epoch is replayed", store.PathOf(e),
                   ec ? fmt::format("cannot remove it ({})", ec.message()) : std::string("removed"));
    }
    std::erase_if(read->skipped, [&](const CheckpointProblem& p) { return p.epoch > chosen.epoch; });
  }
  read->found = true;
  read->epoch = chosen.epoch;
  read->path = store.PathOf(chosen.epoch);
  read->payload = std::move(payloads[choice.index]);
  return true;
}

RestoreChoice ChooseRestoreCheckpoint(std::span<const RestoreCandidate> candidates,
                                      const CommittedOffsets& committed) {
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (Matches(candidates[i], committed)) return {i, true};
  }
  return {0, false};
}

}  // namespace vigil
