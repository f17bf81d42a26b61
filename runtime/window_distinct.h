// A windowed HyperLogLog: the approximate `distinct` of a key's series once it holds more
// distinct values than MatcherOptions::distinct_exact_limit (docs/language.md "Aggregates",
// issue 4). Entry points: WindowedHyperLogLog::Add, Estimate, Prune; DistinctHash makes the
// hashes it takes from the bytes runtime/window_state.cc keeps for an exact count.
//
// Why not a plain HyperLogLog (runtime/hyperloglog.h): one series answers every window over it —
// `over T` at any instant, the current tumbling or sliding window, a closing `when` window, a
// session — so the sketch must answer "how many distinct values in the slices from `first` on"
// for any `first`. It follows the sliding HyperLogLog of Y. Chabchoub and G. Hébrail ("Sliding
// HyperLogLog: estimating cardinality in a data stream over a sliding window", ICDM Workshops
// 2010), whose per-register list they call LPFM, "list of future possible maxima":
//
//   Each of the m = 2^p registers keeps a list of (slice id, rank) pairs instead of one rank: a
//   value's hash picks the register and the rank as in HyperLogLog::Add, and (its slice, rank)
//   enters the list, dropping every pair it dominates — a pair no newer and of no greater rank,
//   which can never again be the maximum of a window that holds the new one. So along a list the
//   ids rise and the ranks fall strictly. In a window starting at slice `first`, a register's
//   value is the largest rank among its pairs with id >= first: the rank of the first such pair.
//   Those m values are a HyperLogLog's registers for exactly the values seen in the window (each
//   at its last slice), and Ertl's estimator (HyperLogLog::EstimateRegisters) turns them into a
//   count.
//
// Example (one register): values of ranks 3 (slice 10), 1 (slice 11), 2 (slice 12) leave
// [(10, 3), (12, 2)] — (11, 1) was dominated by (12, 2). A window from slice 11 reads 2, one from
// slice 10 or before reads 3, one from slice 13 reads 0 (no value in it).
//
// Error: that of a HyperLogLog of precision p, for any window: a relative standard error of
// 1.04 / sqrt(2^p), 1.63% at kPrecision = 12 (docs/language.md states it); small windows approach
// linear counting's error (about ±1 value below a few hundred values).
//
// Memory. A pair is one 64-bit word: (slice id + 2^57) << 6 | rank, so words order by id.
// Because the ranks along a list fall strictly, a list holds at most 65 − p pairs (53 at p = 12)
// — the hard bound — and in practice as many as the records among the ranks its register saw
// within the series' horizon: about 2.6 for 60,000 events per key in the horizon, 4.6 for a
// million, 6.3 for ten million (simulated; tests/window_distinct_test.cc prints the first). The
// lists live in one pool (each register: an offset, a length and a capacity that doubles, 6
// bytes), so a sketch is 24 KiB of register heads plus 8 bytes per pair (with capacity slack and
// holes left by moved lists, at most four times that; the pool is compacted when half of it is
// holes): 280 KiB measured at 2.1 pairs per register. Pairs of slices that have left every
// window are dropped by Prune, swept over all registers once at least as many slices have gone
// since the last sweep as remain (and 64).
//
// Cost: Add O(list length), allocating only when a list outgrows its capacity (amortized, no
// allocation once every list has reached its largest size); Estimate O(m + pairs) into a
// caller's scratch of m bytes, allocating nothing.
//
// Ids may come in any order (Add places the pair among the others), though window_state.cc adds
// them in processing order, non-decreasing. Slice ids are clamped to ±2^57 (event times of ±4.5
// million years at 1 ms slices).
//
// Not thread-safe: one sketch belongs to one key's series.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vigil {

// The hash of one value as runtime/window_state.cc keeps it for an exact distinct count: a
// string's bytes (HllHashBytes), else 8 bytes of an int, bool, timestamp, duration or the
// normalized bits of a float (HllHash; the same as HllHashDouble of the float).
uint64_t DistinctHash(bool is_string, std::string_view bytes);

class WindowedHyperLogLog {
 public:
  static constexpr int kPrecision = 12;
  // The first byte of AppendTo's output; ReadFrom rejects any other.
  static constexpr uint8_t kFormatVersion = 1;

  // `precision` in [HyperLogLog::kMinPrecision, kMaxPrecision] (clamped into it).
  explicit WindowedHyperLogLog(int precision = kPrecision);

  // The value whose hash is `hash`, seen in slice `slice_id`.
  void Add(uint64_t hash, int64_t slice_id);

  // The estimated number of distinct values seen in slices >= `first`, and the value hashed
  // `*extra` if not null (`including current`). `scratch` must hold num_registers() bytes (it is
  // overwritten). Allocates nothing.
  double Estimate(int64_t first, std::span<uint8_t> scratch, const uint64_t* extra = nullptr) const;

  // Slices before `oldest` are in no window any more: `dropped` of them went now, `live` remain.
  // Their pairs are dropped in a sweep over every register (O(m + pairs)) once at least
  // max(live, 64) slices have gone since the last one and some pair is older than `oldest`.
  void Prune(int64_t oldest, size_t dropped, size_t live);

  int precision() const { return precision_; }
  size_t num_registers() const { return length_.size(); }
  size_t pairs() const;
  // Heap and inline bytes held.
  size_t memory_bytes() const;
  // 1.04 / sqrt(2^precision).
  double relative_standard_error() const;

  // kFormatVersion, precision, then per register its length and its pairs (8 bytes each,
  // little-endian).
  void AppendTo(std::string* out) const;
  // Reads what AppendTo wrote (`in` exactly); false, leaving *out unchanged, if it is malformed
  // (version, precision, lengths, a list whose ids do not rise or ranks do not fall, a rank out
  // of range).
  static bool ReadFrom(std::string_view in, WindowedHyperLogLog* out);

  // Same precision and the same lists (pool layout aside).
  bool operator==(const WindowedHyperLogLog& other) const;

 private:
  static uint64_t Word(int64_t slice_id, int rank);
  static int64_t IdOf(uint64_t word) { return static_cast<int64_t>(word >> 6) - (int64_t{1} << 57); }
  static int RankOf(uint64_t word) { return static_cast<int>(word & 63); }
  // Room for one more pair in register r (moves its list to the pool's end if it is full).
  void Grow(size_t r);
  void Compact();

  int precision_;
  std::vector<uint32_t> offset_;     // per register: its list's first word in pool_
  std::vector<uint8_t> length_;      // pairs in its list
  std::vector<uint8_t> capacity_;    // words reserved for it at offset_
  std::vector<uint64_t> pool_;
  size_t holes_ = 0;                 // words of pool_ no list owns (moved lists)
  int64_t oldest_pair_ = INT64_MAX;  // no pair is older (a sweep before it has nothing to drop)
  size_t dropped_since_sweep_ = 0;   // slices Prune was told of since the last sweep
};

}  // namespace vigil
