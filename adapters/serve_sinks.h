// The daemon's sinks (`vigil serve`, docs/operations.md "Sinks"): where alerts, late events and
// dead letters go. Entry point: MakeServeSink.
//
// Every output is a JSON line already formatted on the thread that produced it (a shard formats
// its alerts and late events, the router its dead letters; adapters/alert_writer.h), so a sink
// only moves bytes:
//   * file: appended, whole lines only — a line is written in one write with those before it,
//     and at open a file whose last line is cut (the daemon was killed mid-write) is truncated
//     to its last newline, so readers never see a partial line; Flush fsyncs.
//   * stdout: one line each, flushed at Flush.
//   * kafka: value = the line, key = the rule key's text (alerts), header `vigil-match-id`
//     (alerts); idempotent producer; Flush waits for every delivery.
//   * rabbitmq: persistent messages with publisher confirms, message_id = the match id (alerts),
//     routing key configured or the rule's name; Flush waits for every confirm.
// Flush is the delivery barrier of a checkpoint: a checkpoint is written only after every sink
// flushed what came before it, so what a checkpoint covers has been delivered.
//
// Threading: the daemon's sink thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "adapters/serve_config.h"

namespace vigil {

struct OutputLine {
  enum class Kind : uint8_t { kAlert, kLate, kDeadLetter };
  Kind kind = Kind::kAlert;
  int32_t rule = -1;           // kAlert: the rule's index
  std::string_view rule_name;  // kAlert: the rule's name
  std::string_view line;       // JSON, no newline
  std::string_view key;        // kAlert: the key's text ("" otherwise)
  uint64_t match_id = 0;       // kAlert
};

struct SinkCounters {
  uint64_t written = 0;        // lines accepted
  uint64_t flushes = 0;
  uint64_t failures = 0;       // failed writes and flushes
};

class ServeSink {
 public:
  virtual ~ServeSink() = default;
  // Takes one line. False with `error` when it cannot (the daemon stops: nothing is dropped).
  virtual bool Write(const OutputLine& line, std::string* error) = 0;
  // Nothing more is coming for now: hand buffered lines on (file: written, not fsync'ed; stdout:
  // flushed), so alerts are not held back until the next checkpoint. False with `error`.
  virtual bool Drain(std::string* error) { return true; }
  // Everything written so far is delivered (file: fsync'ed; kafka: acknowledged). False with
  // `error`.
  virtual bool Flush(std::string* error) = 0;

  const std::string& name() const { return name_; }
  const SinkCounters& counters() const { return counters_; }

 protected:
  explicit ServeSink(std::string name) : name_(std::move(name)) {}
  SinkCounters counters_;

 private:
  std::string name_;
};

// A sink for `config`; null with `error` when it cannot be made.
std::unique_ptr<ServeSink> MakeServeSink(const SinkConfig& config, std::string* error);

}  // namespace vigil
