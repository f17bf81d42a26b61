// HyperLogLog: an approximate distinct count in a fixed few kilobytes, for the windowed
// `distinct` aggregate once a key's exact set passes its configured cardinality (issue 4).
// Entry points: HyperLogLog::Add, Merge, Estimate; HllHash / HllHashBytes make the hashes it
// takes.
//
// What. The sketch has m = 2^p registers. Add(h) takes a 64-bit hash h of a value: its top p bits
// choose a register, and the rank of the other q = 64 − p bits — the position of their first 1
// bit from the top, 1 .. q, or q + 1 when they are all 0 — is kept there if it is larger than
// what the register holds. A register therefore holds the largest rank of the values that fell
// into it, 0 if none did. Among n distinct values about n / 2^k reach rank k, so the registers
// together say how many values there were. Adding a value again changes nothing, and the sketch
// of a union is the register-wise maximum of the two sketches (Merge), which is what lets a
// sliding window keep one sketch per slice and combine the slices it covers.
//
// Estimate() uses Ertl's improved estimator (O. Ertl, "New cardinality estimation algorithms for
// HyperLogLog sketches", arXiv:1702.01284, 2017, Algorithm 6): from the histogram of register
// values it computes one estimate for the whole range, with no switch between linear counting
// and the raw estimator of Flajolet et al. (2007). Just past that switch (n = 2.5 m) the classic
// estimator is biased: +2.1% at n = 2.6 m, p = 12, over 2,000 random streams, more than one
// standard error; Ertl's, +0.06%. An empty sketch estimates exactly 0.
//
// Error: the relative standard error is 1.04 / sqrt(m) (relative_standard_error()): 3.25% at
// p = 10, 1.63% at p = 12 (the default), 0.81% at p = 14; about 99.7% of estimates are within
// three times that. Far below m values the error is smaller: it approaches linear counting's,
// about n / sqrt(2m) values (a standard deviation of 1.1 at n = 100, p = 12).
// tests/hyperloglog_test.cc measures it.
//
// Example (p = 4, so q = 60): h = 0x3400'0000'0000'0000 is 0011 0100 0000 ...: register 0b0011
// = 3; the rest starts 0100 ..., whose first 1 bit is the 2nd, so register 3 becomes
// max(register 3, 2).
//
// Representation: one byte per register (4 KiB at p = 12), not the 6 bits a register needs (the
// largest rank is 65 − p ≤ 61). Packing would save a quarter of the memory, but Add would read
// and write registers that straddle bytes, and Merge would have to unpack; with bytes, Add is
// one load, compare and store, and Merge a byte-wise max the compiler can vectorize. A distinct
// aggregate holds a sketch only for keys past their exact cardinality, so the 1 KiB saved per
// sketch at p = 12 was judged not worth it.
//
// Invariants: 4 ≤ precision() ≤ 16; registers().size() == 2^precision(); every register is
// ≤ 65 − precision(). Add, Merge, Estimate and Clear allocate nothing; only construction,
// copying and ReadFrom do. Not thread-safe: one sketch belongs to one key's state.
//
// Hashes. Add takes a hash, not a value: the caller hashes with HllHash (ints, timestamps,
// durations, bools, float bits) or HllHashBytes (strings). These are fixed functions, not
// absl::Hash, whose seed changes from one process to the next: a sketch is written to snapshots
// and merged with values added after a restart, so a value must hash the same in every process.
// The index and the rank use all 64 bits, so the hash must mix well: HllHash is SplitMix64's
// finalizer, which makes sequential integers look random. (The multiply-and-fold of
// docs/matching.md §8 alone does not: on the integers 0 .. n − 1 it made the estimate 75-85% too
// high from n = 10,000 to 1,000,000 at p = 12; HllHashBytes uses it only before HllHash.)
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vigil {

// The 64-bit hash of a value for HyperLogLog::Add: SplitMix64's output function (G. Steele,
// D. Lea, C. Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; the mixing
// constants of D. Stafford's "Mix13"). A bijection of uint64_t, so distinct inputs never share a
// hash; adding the golden-ratio constant first keeps 0 from mapping to 0. Stable across processes,
// builds and machines (part of the snapshot format).
//
// Inputs, so the sketch counts what `distinct` counts (docs/language.md): an int, timestamp or
// duration as its two's-complement bits; a bool as 0 or 1; a float as the bits of the double,
// with −0.0 taken as +0.0 and every NaN as one NaN (HllHashDouble does that).
inline uint64_t HllHash(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// HllHash of a double's bits, with −0.0 as +0.0 and all NaNs as the quiet NaN 0x7FF8...0.
inline uint64_t HllHashDouble(double d) {
  uint64_t bits;
  if (d != d) {
    bits = 0x7FF8000000000000ull;
  } else {
    if (d == 0) d = 0.0;
    std::memcpy(&bits, &d, sizeof bits);
  }
  return HllHash(bits);
}

// The 64-bit hash of a string's bytes for HyperLogLog::Add. The bytes are read as little-endian
// 64-bit words (the last one zero-padded); the state starts as the length times a constant, and
// each word w is folded in as h = fold(h xor w), fold(x) = the high 64 bits xor the low 64 bits
// of the 128-bit product x × 0x9E3779B97F4A7C15 (docs/matching.md §8); the result goes through
// HllHash. Stable across processes and machines (part of the snapshot format). Not keyed: someone
// who knows it can choose strings that collide, making a key's count too low.
uint64_t HllHashBytes(std::string_view bytes);

class HyperLogLog {
 public:
  static constexpr int kMinPrecision = 4;
  static constexpr int kMaxPrecision = 16;
  static constexpr int kDefaultPrecision = 12;
  // The first byte of AppendTo's output; ReadFrom rejects any other.
  static constexpr uint8_t kFormatVersion = 1;

  // An empty sketch with 2^precision registers. `precision` must be in [kMinPrecision,
  // kMaxPrecision] (the rule checker validates configured values); outside it, a debug build
  // asserts and a release build clamps it into the range.
  explicit HyperLogLog(int precision = kDefaultPrecision);

  // Adds the value whose hash is `hash` (HllHash, HllHashBytes). Allocates nothing.
  void Add(uint64_t hash) {
    const uint64_t rest = hash << precision_;
    // `stop`, bit p − 1, is below every bit of `rest`: it ends the count of leading zeros at q,
    // so a `rest` of all zeros has rank q + 1.
    const uint64_t stop = uint64_t{1} << (precision_ - 1);
    const auto rank = static_cast<uint8_t>(std::countl_zero(rest | stop) + 1);
    uint8_t& reg = registers_[hash >> (64 - precision_)];
    if (rank > reg) reg = rank;
  }

  // Makes this the sketch of the union: each register the larger of the two. Returns false and
  // changes nothing if the precisions differ. Allocates nothing.
  bool Merge(const HyperLogLog& other);

  // The estimated number of distinct values added (Ertl's improved estimator; 0 for an empty
  // sketch). O(m + q): it builds the histogram of register values each time; allocates nothing.
  double Estimate() const { return EstimateRegisters(registers_); }
  // The same estimator over registers held elsewhere (runtime/window_distinct.h builds a window's
  // registers): `registers.size()` must be 2^p for a p in [kMinPrecision, kMaxPrecision], every
  // register at most 65 − p.
  static double EstimateRegisters(std::span<const uint8_t> registers);

  // Empties the sketch (every register 0), keeping its precision and memory.
  void Clear();

  int precision() const { return precision_; }
  size_t num_registers() const { return registers_.size(); }
  std::span<const uint8_t> registers() const { return registers_; }

  // 1.04 / sqrt(2^precision): the relative standard error of Estimate(), to state in the docs
  // and in alerts whose `distinct` value came from a sketch.
  double relative_standard_error() const;
  static double RelativeStandardError(int precision);

  // Heap and inline bytes held by this sketch.
  size_t memory_bytes() const { return sizeof(*this) + registers_.capacity(); }

  // Appends the serialized sketch to *out: kFormatVersion, precision, then the 2^precision
  // register bytes (2 + 2^p bytes; the registers are stored as they are, one byte each).
  void AppendTo(std::string* out) const;

  // Reads a sketch written by AppendTo; `in` must hold exactly one. Returns false, leaving *out
  // unchanged, if the version is not kFormatVersion, the precision is out of range, the length
  // is not 2 + 2^precision, or a register is larger than 65 − precision.
  static bool ReadFrom(std::string_view in, HyperLogLog* out);

  // Same precision and the same registers (hence the same estimate).
  bool operator==(const HyperLogLog& other) const = default;

 private:
  int precision_;
  std::vector<uint8_t> registers_;
};

}  // namespace vigil
