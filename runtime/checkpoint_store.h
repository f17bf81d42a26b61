// Checkpoint files: a directory of numbered checkpoints, each written atomically and checked on
// read. Entry points: CheckpointStore::Write and CheckpointStore::ReadNewestValid.
//
// The daemon (`vigil serve`, docs/operations.md "Checkpoints") puts everything it needs to restart
// into one payload — the shards' matcher snapshots, the source positions, the router's sequence
// number and watermarks — and hands it here as opaque bytes. This file only makes sure a payload
// on disk is either complete and intact or recognised as not:
//
//   * Write: the bytes go to a temporary file in the same directory, which is fsync'ed, renamed
//     to its final name (rename is atomic within a file system) and the directory fsync'ed, so a
//     crash at any moment leaves the previous checkpoints and at most a stray temporary file
//     (removed by the next Open). Then checkpoints beyond the newest `keep` are deleted.
//   * Format (little-endian):
//       "VIGILCKP" | u32 format version (1) | u64 epoch | u64 payload length | payload |
//       u32 CRC-32C of everything before it
//     A truncated file fails the length check, a flipped bit the checksum; both are reported with
//     the file's name and the next older checkpoint is tried (ReadNewestValid).
//   * Names: checkpoint-<epoch, 20 digits>.vck, so the lexical and numeric orders agree.
//
// Threading: one writer at a time per directory (the daemon's sink thread); reads happen at start.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vigil {

// CRC-32C (Castagnoli) of `bytes`, continuing from `crc` (0 to start): SSE4.2's crc32
// instruction where the CPU has it, a table otherwise (same result).
uint32_t Crc32c(std::string_view bytes, uint32_t crc = 0);

// Writes all of `bytes` to file descriptor `fd` (write(2) may write less than asked; EINTR is
// retried). False with errno set on a failure. Also used by the daemon's file sink.
bool WriteAllToFd(int fd, std::string_view bytes);

struct CheckpointWriteStats {
  uint64_t bytes = 0;          // the file's size
  int64_t write_ns = 0;        // write + fsync + rename + directory fsync
  int removed = 0;             // older checkpoints deleted (beyond `keep`)
};

// A checkpoint that could not be used, and why ("checkpoint-…7.vck: truncated (…)").
struct CheckpointProblem {
  uint64_t epoch = 0;
  std::string path;
  std::string why;
};

struct CheckpointRead {
  bool found = false;                      // a valid checkpoint was read
  uint64_t epoch = 0;
  std::string path;
  std::string payload;
  std::vector<CheckpointProblem> skipped;  // newer checkpoints that were damaged, newest first
};

class CheckpointStore {
 public:
  // `keep` >= 1: how many checkpoints stay on disk after a write.
  CheckpointStore(std::string directory, int keep);

  // Creates the directory (and its parents) if missing and removes stray temporary files of
  // interrupted writes. False with `error` when the directory cannot be made or read.
  bool Open(std::string* error);

  // Writes `payload` as checkpoint `epoch` (greater than every epoch written before), atomically
  // and durably, then deletes the oldest beyond `keep`. False with `error` (the previous
  // checkpoints are untouched; a partial temporary file is removed).
  bool Write(uint64_t epoch, std::string_view payload, CheckpointWriteStats* stats, std::string* error);
  // The same with the payload given as pieces written one after the other (no copy into one
  // buffer: a daemon's payload holds every shard's snapshot).
  bool Write(uint64_t epoch, std::span<const std::string_view> pieces, CheckpointWriteStats* stats,
             std::string* error);

  // Epochs of the checkpoint files present (by name; not validated), newest first.
  std::vector<uint64_t> List() const;

  // Reads and validates checkpoint `epoch`. False with `error` naming the file and the damage.
  bool Read(uint64_t epoch, std::string* payload, std::string* error) const;

  // The newest checkpoint that validates; damaged newer ones are listed in `skipped`.
  CheckpointRead ReadNewestValid() const;

  // The file name of checkpoint `epoch` in this store's directory.
  std::string PathOf(uint64_t epoch) const;

  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  int keep_;
};

}  // namespace vigil
