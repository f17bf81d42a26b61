// The daemon's checkpoint payload and the restart choice: see serve_checkpoint.h.
#include "adapters/serve_checkpoint.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <msgpack.hpp>
#include <spdlog/spdlog.h>

namespace vigil {
namespace {

constexpr uint32_t kPayloadVersion = 2;

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

std::string PackPayload(const CheckpointPayload& p) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(9);
  pk.pack(kPayloadVersion);
  pk.pack(p.epoch);
  pk.pack(p.shards);
  pk.pack(p.fingerprint);
  pk.pack(p.next_seq);
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
  for (const std::string& blob : p.blobs) {
    pk.pack_bin(static_cast<uint32_t>(blob.size()));
    pk.pack_bin_body(blob.data(), static_cast<uint32_t>(blob.size()));
  }
  return std::string(buffer.data(), buffer.size());
}

bool UnpackPayload(std::string_view bytes, CheckpointPayload* p, std::string* error) {
  try {
    msgpack::object_handle handle = msgpack::unpack(bytes.data(), bytes.size());
    const msgpack::object& root = handle.get();
    if (root.type != msgpack::type::ARRAY || root.via.array.size != 9) throw msgpack::type_error();
    const msgpack::object* f = root.via.array.ptr;
    if (f[0].as<uint32_t>() != kPayloadVersion) {
      *error = fmt::format("payload version {}, this build reads {}", f[0].as<uint32_t>(), kPayloadVersion);
      return false;
    }
    p->epoch = f[1].as<uint64_t>();
    p->shards = f[2].as<int>();
    p->fingerprint = f[3].as<uint64_t>();
    p->next_seq = f[4].as<int64_t>();
    p->watermark = f[5].as<int64_t>();
    p->input_done = f[6].as<bool>();
    for (uint32_t i = 0; i < f[7].via.array.size; ++i) {
      const msgpack::object& s = f[7].via.array.ptr[i];
      if (s.type != msgpack::type::ARRAY || s.via.array.size != 3) throw msgpack::type_error();
      CheckpointPayload::Source& source = p->sources.emplace_back();
      source.name = s.via.array.ptr[0].as<std::string>();
      const msgpack::object& list = s.via.array.ptr[1];
      for (uint32_t j = 0; j < list.via.array.size; ++j) {
        const msgpack::object* pos = list.via.array.ptr[j].via.array.ptr;
        source.positions.push_back({pos[0].as<std::string>(), pos[1].as<int32_t>(), pos[2].as<int64_t>()});
      }
      const msgpack::object& state = s.via.array.ptr[2];
      if (state.type != msgpack::type::BIN) throw msgpack::type_error();
      source.state.assign(state.via.bin.ptr, state.via.bin.size);
    }
    for (uint32_t i = 0; i < f[8].via.array.size; ++i) {
      const msgpack::object& b = f[8].via.array.ptr[i];
      if (b.type != msgpack::type::BIN) throw msgpack::type_error();
      p->blobs.emplace_back(b.via.bin.ptr, b.via.bin.size);
    }
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
  RestoreChoice choice;
  if (failed.empty()) choice = ChooseRestoreCheckpoint(candidates, committed);
  const RestoreCandidate& chosen = candidates[choice.index];
  if (!choice.matched) {
    spdlog::warn("no checkpoint's Kafka positions are the consumer group's committed offsets ({}): "
                 "restoring the newest valid checkpoint, {}. Delivery to read_committed readers is "
                 "then at least once, not exactly once (docs/operations.md \"Checkpoints\")",
                 failed.empty() ? "the transaction that committed them is not among the checkpoints, "
                                  "or the offsets were lost or moved"
                                : failed,
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
