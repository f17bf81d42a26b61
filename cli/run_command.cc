// `vigil run --rules PATH... --input FILE|- [--format json|msgpack] [--out FILE|-] [--late FILE|-]
//  [--dead-letter FILE|-] [--out-of-orderness DURATION|none] [--max-partial-matches N] [--max-keys N]
//  [--max-buffered-events N] [--max-buffered-events-per-key N]
//  [--on-key-buffer-limit force-watermark|reject] [--distinct-exact-limit N] [--no-suppress] [--quiet]`:
// the offline run. Checks and compiles the rules (errors printed as `vigil check` prints them,
// exit 1), decodes the input (JSON lines, or a stream of concatenated msgpack maps) with the
// adapters' decoders, pushes every event into one vigil::Matcher and calls Finish() at the end
// of the input, so every pending deadline fires. Alerts that pass `suppress` are written as JSON
// lines (adapters/alert_writer.h) to --out (stdout by default).
//
// Nothing is dropped silently: an event whose time is at or below the watermark when it arrives
// is written to --late, an input line or message that cannot be decoded to --dead-letter, each
// as a JSON line with its reason; both default to stderr. With --max-buffered-events-per-key N
// and --on-key-buffer-limit reject, an event whose key already has N events waiting for the
// watermark is not matched either: it goes to --dead-letter as a late event's line with reason
// "key buffer full" (the default, force-watermark, matches it and forces the watermark instead).
// A rule the engine cannot run yet (a construct the compiler rejects as unsupported: W502) is
// reported as a one-line warning at its
// file:line:col and the other rules run; a run with no rule left is an error. At the end a summary goes to stderr (unless --quiet): events read (every
// non-blank line or message), decoded, watermarks, late, dead letters, alerts and suppressed
// alerts per rule, elapsed time and throughput; then what the matcher's limits did, when they
// did anything (evictions, rejections, forced watermarks, distinct counts turned approximate).
//
// Watermarks: with --out-of-orderness D (default 0) the watermark trails the latest event time by
// D; besides, the input may carry punctuation, a message of the reserved type `$watermark`
// (adapters/decoder.h), e.g. {"type":"$watermark","watermark":"2024-01-01T00:10:00Z"}, which
// raises the watermark to its time (never lowers it: one at or below the current watermark does
// nothing). Both work together; with `--out-of-orderness none` punctuation is the only thing that
// moves the watermark before the end of the input. A punctuation is counted, never written
// anywhere; a bad one (no `watermark`, not a timestamp) is a dead letter.
//
// The read loop allocates nothing per event: the input is read in 1 MiB chunks into one buffer
// (grown only for a line longer than it), JSON lines are handed to the decoder in place with the
// padding simdjson needs (JsonDecoder::DecodePadded), one RecordBuilder is reused, and the
// writers format into reused buffers (alert lines bound for a file straight into its output
// buffer, written a MiB at a time). Exit code: 0 when the input was processed (dead letters and
// late events included), 1 when the rules have errors or a file cannot be opened, read or written,
// 2 for a bad option value (as for CLI11's usage errors).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "adapters/alert_writer.h"
#include "adapters/json_decoder.h"
#include "adapters/msgpack_decoder.h"
#include "cli/commands.h"
#include "cli/compile_rules.h"
#include "grammar/check.h"
#include "grammar/time_format.h"
#include "nfa/program.h"
#include "runtime/matcher.h"

namespace vigil::cli {
namespace {

struct RunOptions {
  std::vector<std::string> rules;
  std::string input;
  std::string format = "json";
  std::string out = "-";
  std::string late;         // empty: stderr
  std::string dead_letter;  // empty: stderr
  std::string out_of_orderness = "0s";
  bool no_suppress = false;
  bool quiet = false;
  // Matcher limits (runtime/matcher.h, MatcherOptions); 0: no limit.
  size_t max_partial_matches = MatcherOptions{}.max_partial_matches;
  size_t max_keys = 0;
  size_t max_buffered_events = 0;
  size_t max_buffered_events_per_key = 0;
  std::string on_key_buffer_limit = "force-watermark";   // or "reject"
  size_t distinct_exact_limit = MatcherOptions{}.distinct_exact_limit;
};

// An output stream of JSON lines: stdout, stderr or a file. A file's lines are appended to a
// large buffer of its own, written with write(2) each time it holds kBufferBytes (alert lines
// are formatted straight into it, AlertWriter::AppendLine: no copy through stdio). stdout goes
// through stdio with a large buffer: several outputs may be stdout, and their lines must stay in
// the order they were written.
class LineOutput {
 public:
  // "-": stdout; "": stderr; otherwise a file (truncated).
  bool Open(const std::string& path) {
    name_ = path == "-" ? "<stdout>" : path.empty() ? "<stderr>" : path;
    if (path == "-") {
      // Several outputs may be stdout; its buffer is set once and lives as long as the process.
      static char stdout_buffer[kBufferBytes];
      static const bool buffered = std::setvbuf(stdout, stdout_buffer, _IOFBF, kBufferBytes) == 0;
      (void)buffered;
      file_ = stdout;
      return true;
    }
    if (path.empty()) {
      file_ = stderr;
      return true;  // stays unbuffered, interleaves with the summary in order
    }
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) return false;
    pending_.reserve(kBufferBytes + 64 * 1024);
    return true;
  }
  ~LineOutput() {
    if (fd_ >= 0) ::close(fd_);
  }
  // A file's buffer, for appending lines to it directly (then call Appended); null for stdout
  // and stderr (call Write).
  fmt::memory_buffer* buffer() { return fd_ >= 0 ? &pending_ : nullptr; }
  // After lines were appended to buffer(): writes it out once it holds kBufferBytes.
  void Appended() {
    if (pending_.size() >= kBufferBytes) Flush();
  }
  // fwrite_unlocked: one thread writes each stream, so stdio's per-call lock is pure cost.
  void Write(std::string_view line) {
    if (fd_ >= 0) {
      pending_.append(line.data(), line.data() + line.size());
      Appended();
      return;
    }
    ::fwrite_unlocked(line.data(), 1, line.size(), file_);
  }
  // Flushes; false if anything failed to be written.
  bool Close() {
    if (fd_ >= 0) {
      Flush();
      const bool closed = ::close(fd_) == 0;
      fd_ = -1;
      return closed && !failed_;
    }
    return std::fflush(file_) == 0 && !std::ferror(file_);
  }
  const std::string& name() const { return name_; }

 private:
  static constexpr size_t kBufferBytes = size_t{1} << 20;

  // Writes the file's buffer out and empties it; after a failure nothing more is written.
  void Flush() {
    const char* p = pending_.data();
    size_t left = pending_.size();
    while (left > 0 && !failed_) {
      const ssize_t n = ::write(fd_, p, left);
      if (n > 0) {
        p += n;
        left -= static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        failed_ = true;
      }
    }
    pending_.clear();
  }

  std::FILE* file_ = nullptr;   // stdout or stderr
  int fd_ = -1;                 // a file
  fmt::memory_buffer pending_;  // the file's lines not written yet
  bool failed_ = false;
  std::string name_;
};

// Reads a file descriptor in large chunks into one buffer; the unread bytes are
// [data() + begin, data() + end). The buffer always has JsonDecoder::kPadding readable bytes past
// its capacity, so any view into it can go to DecodePadded.
class ChunkReader {
 public:
  static constexpr size_t kChunkBytes = size_t{1} << 20;

  explicit ChunkReader(int fd) : fd_(fd) { Resize(kChunkBytes); }

  const char* data() const { return buf_.get(); }
  size_t begin = 0;
  size_t end = 0;
  bool eof() const { return eof_; }
  size_t capacity() const { return capacity_; }
  uint64_t bytes_read() const { return bytes_read_; }
  const std::string& error() const { return error_; }

  // Moves the unread bytes to the front, doubles the buffer if they fill it (up to `limit`
  // bytes), and reads more. False at the end of the input or on a read error (see error()).
  bool Fill(size_t limit) {
    if (begin > 0) {
      std::memmove(buf_.get(), buf_.get() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    if (end == capacity_) {
      if (capacity_ >= limit) return false;
      Resize(std::min(limit, capacity_ * 2));
    }
    while (true) {
      const ssize_t n = ::read(fd_, buf_.get() + end, capacity_ - end);
      if (n > 0) {
        end += static_cast<size_t>(n);
        bytes_read_ += static_cast<uint64_t>(n);
        return true;
      }
      if (n == 0) {
        eof_ = true;
        return false;
      }
      if (errno == EINTR) continue;
      error_ = std::strerror(errno);
      eof_ = true;
      return false;
    }
  }

 private:
  void Resize(size_t capacity) {
    auto bigger = std::make_unique<char[]>(capacity + JsonDecoder::kPadding);
    std::memset(bigger.get() + capacity, 0, JsonDecoder::kPadding);
    if (buf_) std::memcpy(bigger.get(), buf_.get(), end);
    buf_ = std::move(bigger);
    capacity_ = capacity;
  }

  int fd_;
  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  bool eof_ = false;
  uint64_t bytes_read_ = 0;
  std::string error_;
};

struct RunStats {
  uint64_t read = 0;  // lines (non-blank) or messages
  uint64_t decoded = 0;
  uint64_t watermarks = 0;  // punctuations (`$watermark` messages)
  uint64_t dead_letters = 0;
  uint64_t late = 0;
  std::vector<uint64_t> alerts;  // per rule, after suppress
};

// The rules that run and the notes about the ones that do not.
struct LoadedProgram {
  std::shared_ptr<const Program> program;
  std::vector<std::string> not_run;  // per rule: "" runs, else why not
};

void PrintErrors(const CheckResult& checked) {
  for (const Diagnostic& d : checked.diagnostics.all()) {
    if (d.severity == Severity::kError) {
      const std::string text = RenderText(checked.sources, d);
      std::fwrite(text.data(), 1, text.size(), stderr);
    }
  }
}

// Checks and compiles; rules the compiler rejects as unsupported are disabled and reported as
// one-line W502 warnings at their location (cli/compile_rules.h). Empty program on error
// (already printed).
LoadedProgram LoadProgram(const std::vector<std::string>& paths, bool quiet) {
  LoadedProgram loaded;
  CheckResult checked = CheckPaths(paths);
  if (checked.diagnostics.has_errors()) {
    PrintErrors(checked);
    return loaded;
  }
  auto rules = std::make_shared<CheckedRules>(std::move(checked.rules));
  loaded.not_run.assign(rules->rules.size(), "");
  for (size_t i = 0; i < rules->rules.size(); ++i) {
    if (!rules->rules[i].meta.enabled) loaded.not_run[i] = "disabled (enabled false)";
  }
  RunnableProgram runnable = CompileRunnable(rules);
  if (!runnable.error.empty()) {
    fmt::print(stderr, "vigil run: cannot compile: {}\n", runnable.error);
    return loaded;
  }
  for (const NotRun& n : runnable.not_run) {
    loaded.not_run[n.rule] = n.why;
    if (!quiet) {
      // One line per rule (file:line:col: warning W502: ...): `vigil check` shows the source.
      const std::string text = RenderText(checked.sources, NotRunWarning(*rules, n));
      fmt::print(stderr, "{}\n", std::string_view(text).substr(0, text.find('\n')));
    }
  }
  bool any = false;
  for (const std::string& why : loaded.not_run) any = any || why.empty();
  if (!any) {
    fmt::print(stderr, "vigil run: no rule can run\n");
    return loaded;
  }
  loaded.program = runnable.program;
  return loaded;
}

// "5s", "250ms", "1m30s", a plain number of ms, or "none" (-1: only the end of the input moves
// the watermark: everything is sorted before matching).
std::optional<int64_t> ParseOutOfOrderness(const std::string& text) {
  if (text == "none") return -1;
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
      text.size() < 16) {
    return std::stoll(text);
  }
  return ParseDuration(text);
}

// Pushes decoded events into the matcher and routes alerts, late events and dead letters.
class Runner {
 public:
  Runner(std::shared_ptr<const Program> program, const RunOptions& options, int64_t delay_ms,
         LineOutput& out, LineOutput& late, LineOutput& dead)
      : program_(program),
        alert_writer_(*program->checked),
        reject_writer_(program->schema()),
        suppressor_(*program->checked),
        // Only when some rule has a `suppress` clause (else Admit would let every alert through).
        suppress_(!options.no_suppress &&
                  std::any_of(program->checked->rules.begin(), program->checked->rules.end(),
                              [](const CheckedRule& rule) { return rule.suppress_ms > 0; })),
        out_(out),
        late_(late),
        dead_(dead),
        matcher_(program,
                 MatcherOptions{.bounded_out_of_orderness_ms = delay_ms,
                                .max_partial_matches = options.max_partial_matches,
                                .max_keys = options.max_keys,
                                .max_buffered_events = options.max_buffered_events,
                                .max_buffered_events_per_key = options.max_buffered_events_per_key,
                                .on_key_buffer_limit =
                                    options.on_key_buffer_limit == "reject"
                                        ? MatcherOptions::OnKeyBufferLimit::kRejectNew
                                        : MatcherOptions::OnKeyBufferLimit::kForceWatermark,
                                .distinct_exact_limit = options.distinct_exact_limit},
                 MatcherCallbacks{
                     .on_alert = [this](const Alert& a) { OnAlert(a); },
                     .on_late = [this](RecordView e, int64_t seq) { OnLate(e, seq); },
                     .on_rejected = [this](RecordView e, int64_t seq,
                                           RejectReason) { OnRejected(e, seq); },
                 }) {
    stats_.alerts.assign(program->rules.size(), 0);
  }

  RunStats& stats() { return stats_; }
  Matcher& matcher() { return matcher_; }
  const AlertSuppressor& suppressor() const { return suppressor_; }

  void Push(RecordView record) {
    ++stats_.decoded;
    watermark_before_push_ = matcher_.watermark();
    matcher_.Push(record);
  }
  // A punctuation: raises the watermark to `t` (AdvanceWatermark never lowers it).
  void Watermark(int64_t t) {
    ++stats_.watermarks;
    matcher_.AdvanceWatermark(t);
  }
  void DeadLine(const DecodeStatus& status, int64_t line, std::string_view raw) {
    ++stats_.dead_letters;
    dead_.Write(reject_writer_.FormatBadLine(status, line, raw));
  }
  void DeadMessage(const DecodeStatus& status, int64_t offset, std::string_view raw) {
    ++stats_.dead_letters;
    dead_.Write(reject_writer_.FormatBadMessage(status, offset, raw));
  }

 private:
  void OnAlert(const Alert& alert) {
    if (suppress_ && !suppressor_.Admit(alert)) return;
    ++stats_.alerts[static_cast<size_t>(alert.rule)];
    if (fmt::memory_buffer* buffer = out_.buffer()) {
      alert_writer_.AppendLine(alert, *buffer);
      out_.Appended();
    } else {
      out_.Write(alert_writer_.Format(alert));
    }
  }
  void OnLate(RecordView event, int64_t seq) {
    ++stats_.late;
    late_.Write(reject_writer_.FormatLate(event, seq, watermark_before_push_));
  }
  // The matcher's one reason to reject (RejectReason::kKeyBufferFull).
  void OnRejected(RecordView event, int64_t seq) {
    dead_.Write(reject_writer_.FormatRejected(event, seq, watermark_before_push_, "key buffer full"));
  }

  std::shared_ptr<const Program> program_;
  AlertWriter alert_writer_;
  RejectWriter reject_writer_;
  AlertSuppressor suppressor_;
  bool suppress_;
  LineOutput& out_;
  LineOutput& late_;
  LineOutput& dead_;
  RunStats stats_;
  int64_t watermark_before_push_ = kNoWatermark;
  Matcher matcher_;
};

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// JSON lines: one object per line; blank lines are skipped (they hold no event); a line longer
// than the decoder's limit is dead-lettered with its first KiB and skipped to its end.
bool ReadJsonLines(ChunkReader& in, JsonDecoder& decoder, RecordBuilder& builder, Runner& run,
                   size_t limit) {
  int64_t line_no = 0;
  while (true) {
    const char* base = in.data();
    const void* nl = std::memchr(base + in.begin, '\n', in.end - in.begin);
    if (nl == nullptr && !in.eof()) {
      if (in.Fill(limit + 1)) continue;
      if (in.eof()) {
        if (!in.error().empty()) return false;
        continue;  // scan again: what is left is the last line
      }
      {
        // The buffer is at the limit and holds no newline: the line is too long.
        ++line_no;
        const std::string head(in.data() + in.begin, std::min<size_t>(1024, in.end - in.begin));
        size_t skipped = 0;
        const void* end_of_line = nullptr;
        while (end_of_line == nullptr) {
          skipped += in.end - in.begin;
          in.begin = in.end;
          if (!in.Fill(limit + 1)) break;
          end_of_line = std::memchr(in.data() + in.begin, '\n', in.end - in.begin);
        }
        if (end_of_line != nullptr) {
          const size_t rest =
              static_cast<size_t>(static_cast<const char*>(end_of_line) - (in.data() + in.begin));
          skipped += rest;
          in.begin += rest + 1;
        }
        ++run.stats().read;
        DecodeStatus status;
        status.code = DecodeCode::kMalformed;
        status.message = fmt::format(
            "message too large ({} bytes, limit {}); raw holds its first {} bytes", skipped,
            limit, head.size());
        run.DeadLine(status, line_no, head);
        if (!in.error().empty()) return false;
        continue;
      }
    }
    if (nl == nullptr && in.begin == in.end) return true;
    const size_t stop = nl ? static_cast<size_t>(static_cast<const char*>(nl) - base) : in.end;
    std::string_view line(base + in.begin, stop - in.begin);
    in.begin = nl ? stop + 1 : stop;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlank(line)) continue;
    ++run.stats().read;
    const DecodeStatus status = decoder.DecodePadded(line, builder);
    if (status.ok()) {
      run.Push(builder.record());
    } else if (status.is_watermark()) {
      run.Watermark(status.watermark_ms);
    } else {
      run.DeadLine(status, line_no, line);
    }
  }
}

// A stream of concatenated msgpack maps. A message that is well-formed msgpack but not a valid
// event is dead-lettered and skipped; malformed bytes cannot be resynchronised, so the rest of
// the input becomes one dead letter (its first KiB in the line) and reading stops.
bool ReadMsgpack(ChunkReader& in, MsgpackDecoder& decoder, RecordBuilder& builder, Runner& run,
                 size_t limit) {
  uint64_t consumed_before = 0;  // input offset of in.data()[0]
  while (true) {
    if (in.begin == in.end) {
      consumed_before += in.begin;
      in.begin = in.end = 0;
      if (!in.Fill(limit)) return in.error().empty();
    }
    const std::string_view stream(in.data(), in.end);
    size_t offset = in.begin;
    const DecodeStatus& status = decoder.DecodeNextInPlace(stream, &offset, builder);
    if (offset != in.begin) {
      ++run.stats().read;
      if (status.ok()) {
        run.Push(builder.record());
      } else if (status.is_watermark()) {
        run.Watermark(status.watermark_ms);
      } else {
        run.DeadMessage(status, static_cast<int64_t>(consumed_before + in.begin),
                        stream.substr(in.begin, offset - in.begin));
      }
      in.begin = offset;
      continue;
    }
    const bool truncated = status.message.find("truncated") != std::string::npos;
    if (truncated && !in.eof()) {
      const size_t moved = in.begin;
      if (in.Fill(limit)) {
        consumed_before += moved;
        continue;
      }
      consumed_before += moved;
      if (!in.error().empty()) return false;
    }
    // Malformed, or truncated at the end of the input (or at the size limit). Fill may have
    // moved the buffer: view it again.
    ++run.stats().read;
    const int64_t at = static_cast<int64_t>(consumed_before + in.begin);
    const std::string rest(in.data() + in.begin, std::min<size_t>(1024, in.end - in.begin));
    uint64_t skipped = in.end - in.begin;
    in.begin = in.end;
    while (!in.eof() && in.Fill(limit)) {
      skipped += in.end - in.begin;
      in.begin = in.end;
    }
    DecodeStatus dead = status;
    dead.message =
        fmt::format("{}; the remaining {} bytes of the input are skipped", status.message, skipped);
    run.DeadMessage(dead, at, rest);
    return in.error().empty();
  }
}

std::string WithThousands(uint64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<size_t>(i), ",");
  return digits;
}

void PrintSummary(const Program& program, const LoadedProgram& loaded, Runner& run,
                  double seconds) {
  const RunStats& s = run.stats();
  const MatcherCounters& c = run.matcher().counters();
  uint64_t alerts = 0, suppressed = 0;
  for (size_t r = 0; r < s.alerts.size(); ++r) {
    alerts += s.alerts[r];
    suppressed += run.suppressor().suppressed(static_cast<int>(r));
  }
  const double rate = seconds > 0 ? static_cast<double>(s.read) / seconds : 0;
  fmt::print(stderr,
             "vigil run: {} events read, {} decoded, {} watermarks, {} late, {} dead letters; "
             "{} alerts ({} suppressed); {:.3f} s, {} events/s\n",
             s.read, s.decoded, s.watermarks, s.late, s.dead_letters, alerts, suppressed, seconds,
             WithThousands(static_cast<uint64_t>(rate)));
  fmt::print(stderr, "  matcher: {} events processed, {} of types no rule uses, {} keys",
             c.events_processed, c.events_ignored, c.keys_created);
  // What the matcher's limits dropped (runtime/matcher.h, MatcherOptions), when anything.
  const std::pair<uint64_t, const char*> dropped[] = {
      {c.runs_evicted, "partial matches evicted"},
      {c.runs_rejected, "partial matches rejected"},
      {c.keys_evicted, "keys evicted"},
      {c.keys_rejected, "keys rejected"},
      {c.window_keys_evicted, "keys' window state evicted"},
      {c.window_keys_rejected, "events left out of the windows (key limit)"},
      {c.watermark_forced, "watermark advances forced"},
      {c.watermark_forced_per_key, "watermark advances forced by a key's buffer"},
      {c.events_rejected, "events rejected (key buffer full; in the dead letters)"},
      {c.distinct_sketches, "keys' distinct counts turned approximate (--distinct-exact-limit)"}};
  for (const auto& [n, what] : dropped) {
    if (n > 0) fmt::print(stderr, ", {} {}", n, what);
  }
  fmt::print(stderr, "\n");
  size_t width = 4;
  for (const CheckedRule& rule : program.checked->rules) width = std::max(width, rule.name.size());
  for (size_t r = 0; r < program.checked->rules.size(); ++r) {
    const std::string& name = program.checked->rules[r].name;
    if (!loaded.not_run[r].empty()) {
      fmt::print(stderr, "  {:<{}}  not run: {}\n", name, width, loaded.not_run[r]);
    } else {
      fmt::print(stderr, "  {:<{}}  {:>6} alerts, {} suppressed\n", name, width, s.alerts[r],
                 run.suppressor().suppressed(static_cast<int>(r)));
    }
  }
}

int Run(const RunOptions& options) {
  const std::optional<int64_t> delay = ParseOutOfOrderness(options.out_of_orderness);
  if (!delay) {
    fmt::print(stderr,
               "vigil run: --out-of-orderness: invalid duration '{}' (e.g. 5s, 250ms, none)\n",
               options.out_of_orderness);
    return kExitUsage;
  }
  const LoadedProgram loaded = LoadProgram(options.rules, options.quiet);
  if (!loaded.program) return kExitErrors;

  int fd = 0;
  if (options.input != "-") {
    fd = ::open(options.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fmt::print(stderr, "vigil run: cannot open '{}': {}\n", options.input, std::strerror(errno));
      return kExitErrors;
    }
  }
  LineOutput out, late, dead;
  for (auto [output, path] : {std::pair{&out, &options.out}, std::pair{&late, &options.late},
                              std::pair{&dead, &options.dead_letter}}) {
    if (!output->Open(*path)) {
      fmt::print(stderr, "vigil run: cannot write '{}': {}\n", *path, std::strerror(errno));
      if (fd > 0) ::close(fd);
      return kExitErrors;
    }
  }

  const Schema& schema = loaded.program->schema();
  DecoderOptions decoder_options;
  const size_t limit = decoder_options.max_message_bytes;
  Runner run(loaded.program, options, *delay, out, late, dead);
  RecordBuilder builder;
  ChunkReader in(fd);
  const auto start = std::chrono::steady_clock::now();
  bool read_ok;
  if (options.format == "msgpack") {
    MsgpackDecoder decoder(schema, decoder_options);
    read_ok = ReadMsgpack(in, decoder, builder, run, limit);
  } else {
    JsonDecoder decoder(schema, decoder_options);
    read_ok = ReadJsonLines(in, decoder, builder, run, limit);
  }
  run.matcher().Finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (fd > 0) ::close(fd);

  int exit_code = kExitOk;
  if (!read_ok) {
    fmt::print(stderr, "vigil run: cannot read '{}': {}\n", options.input, in.error());
    exit_code = kExitErrors;
  }
  for (LineOutput* output : {&out, &late, &dead}) {
    if (!output->Close()) {
      fmt::print(stderr, "vigil run: cannot write '{}'\n", output->name());
      exit_code = kExitErrors;
    }
  }
  if (!options.quiet) PrintSummary(*loaded.program, loaded, run, seconds);
  return exit_code;
}

}  // namespace

void AddRunCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Run rules over an event file (JSON lines or msgpack); alerts as JSON lines");
  cmd->add_option("--rules", options->rules, "Rule files, or directories searched for *.vigil")
      ->required()
      ->type_name("PATH");
  cmd->add_option("--input", options->input, "Event file, or - for stdin")
      ->required()
      ->type_name("FILE|-");
  cmd->add_option("--format", options->format, "Input format")
      ->check(CLI::IsMember({"json", "msgpack"}))
      ->capture_default_str();
  cmd->add_option("--out", options->out, "Where alerts go (- = stdout)")
      ->type_name("FILE|-")
      ->capture_default_str();
  cmd->add_option("--late", options->late, "Where late events go (default stderr; - = stdout)")
      ->type_name("FILE|-");
  cmd->add_option("--dead-letter", options->dead_letter,
                  "Where undecodable input goes (default stderr; - = stdout)")
      ->type_name("FILE|-");
  cmd->add_option("--out-of-orderness", options->out_of_orderness,
                  "How far behind the latest event time an event may arrive and still be matched "
                  "(e.g. 5s; none: sort the whole input)")
      ->type_name("DURATION")
      ->capture_default_str();
  cmd->add_option("--max-partial-matches", options->max_partial_matches,
                  "Partial matches per rule and key (0: no limit); the oldest are evicted beyond it")
      ->capture_default_str();
  cmd->add_option("--max-keys", options->max_keys,
                  "Keys holding partial matches, and keys holding window state (each; 0: no limit); the "
                  "least recently used is evicted")
      ->capture_default_str();
  cmd->add_option("--max-buffered-events", options->max_buffered_events,
                  "Events waiting for the watermark (0: no limit); beyond it the watermark is forced")
      ->capture_default_str();
  cmd->add_option("--max-buffered-events-per-key", options->max_buffered_events_per_key,
                  "Events waiting for the watermark per key (0: no limit); see --on-key-buffer-limit")
      ->capture_default_str();
  cmd->add_option("--on-key-buffer-limit", options->on_key_buffer_limit,
                  "At --max-buffered-events-per-key: force the watermark up to the key's earliest "
                  "waiting event, or reject the new event (to --dead-letter)")
      ->check(CLI::IsMember({"force-watermark", "reject"}))
      ->capture_default_str();
  cmd->add_option("--distinct-exact-limit", options->distinct_exact_limit,
                  "Distinct values per key and series counted exactly (0: no limit); beyond it a "
                  "HyperLogLog (1.63% relative standard error; such alerts carry \"approximate\")")
      ->capture_default_str();
  cmd->add_flag("--no-suppress", options->no_suppress,
                "Write every alert, ignoring the rules' suppress clauses");
  cmd->add_flag("--quiet", options->quiet, "No summary and no warnings on stderr");
  cmd->callback([options, exit_code] { *exit_code = Run(*options); });
}

}  // namespace vigil::cli
