// The daemon's checkpoint payload (what `vigil serve` writes into each checkpoint file of
// runtime/checkpoint_store.h) and which checkpoint a restart restores. Entry points:
// PackPayload, UnpackPayload, ReadCommittedCheckpoint (ChooseRestoreCheckpoint decides).
//
// Which checkpoint. Without a transactional Kafka sink, the newest valid one (damaged newer ones
// are skipped): every checkpoint on disk covers only delivered output. With one, the sink thread
// writes the checkpoint file BEFORE it commits the transaction holding that checkpoint's outputs
// and Kafka offsets (serve_daemon.h), so a crash in between leaves a newer checkpoint whose
// transaction was aborted — its alerts never reach read_committed readers, and restoring it would
// lose them. The checkpoint to restore is then the newest one whose Kafka positions ARE the
// group's committed offsets (the transaction that committed last); the newer ones are dropped and
// their epochs replayed. Example, checkpoints 7 {events/0: 120} and 8 {events/0: 180} on disk:
//   group committed events/0 at 120  -> 7 (8's transaction did not commit)
//   group committed events/0 at 180  -> 8
//   no committed offset              -> 8, unmatched: a warning (8's alerts may be lost, or
//                                       delivered again if its transaction did commit)
// "Equal" is taken over every partition any checkpoint of the source holds: a partition the
// checkpoint has not read yet must have no committed offset.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/serve_sources.h"
#include "runtime/checkpoint_store.h"
#include "runtime/matcher.h"

namespace vigil {

// What a checkpoint holds besides the shards' snapshots.
struct CheckpointPayload {
  uint64_t epoch = 0;
  int shards = 0;
  // Per input partition: where its seqs go on and its watermark (serve_daemon.cc Stream,
  // runtime/partition_watermarks.h), so a restart numbers and judges its events as before.
  struct Stream {
    std::string source;   // the source's name
    uint32_t id = 0;      // ServeSource::StreamOf
    int64_t base = 0;     // its seqs' high bits
    int64_t next = 0;     // events decoded from it so far
    int64_t max_seen = kNoWatermark;
    int64_t own = kNoWatermark;
  };
  std::vector<Stream> streams;
  // Read from a version-3 payload (one arrival seq for all input), else 0.
  int64_t legacy_next_seq = 0;
  int64_t watermark = kNoWatermark;
  bool input_done = false;
  struct Source {
    std::string name;
    std::vector<SourcePosition> positions;
    std::string state;   // ServeSource::SaveState
  };
  std::vector<Source> sources;
  std::vector<std::string> blobs;
};

// The payload's bytes (msgpack, with a format version).
std::string PackPayload(const CheckpointPayload& p);
// The same bytes as pieces to write one after the other, without copying the blobs: views of
// `frames` (the msgpack before the blobs and each blob's bin header, filled here) and of p.blobs.
// Valid while both live.
std::vector<std::string_view> PayloadPieces(const CheckpointPayload& p, std::string* frames);
// Reads what PackPayload wrote. False with `error` (another version, damaged bytes).
bool UnpackPayload(std::string_view bytes, CheckpointPayload* p, std::string* error);

// A checkpoint a restart may restore: its epoch and, per Kafka source (by name), its positions.
struct RestoreCandidate {
  uint64_t epoch = 0;
  std::map<std::string, std::vector<SourcePosition>> kafka;
};

// Per Kafka source (by name): the group's committed offsets for every partition the candidates
// hold (offset < 0: none committed).
using CommittedOffsets = std::map<std::string, std::vector<SourcePosition>>;

struct RestoreChoice {
  size_t index = 0;       // into the candidates
  bool matched = false;   // its positions are the committed offsets; false: the newest, unmatched
};

// `candidates` newest first, not empty. The newest whose positions equal `committed` (above);
// none: the newest (index 0), matched false.
RestoreChoice ChooseRestoreCheckpoint(std::span<const RestoreCandidate> candidates,
                                      const CommittedOffsets& committed);

// With a transactional Kafka sink: reads every checkpoint in `store`, asks the `kafka` sources
// for their groups' committed offsets and restores the choice's checkpoint into `read` (found
// false: there is none). Newer checkpoints than a matched one are removed (their epochs are
// written anew); no match is logged as a warning (the newest is restored: if its transaction
// aborted, that epoch's alerts are lost to read_committed readers, else delivery is at least
// once). False with `error` for a checkpoint that validates but cannot be read (another payload
// version), and when the committed offsets cannot be read (brokers away: the caller retries
// rather than guess).
bool ReadCommittedCheckpoint(const CheckpointStore& store, std::span<ServeSource* const> kafka,
                             CheckpointRead* read, std::string* error);

}  // namespace vigil
