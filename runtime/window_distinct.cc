// WindowedHyperLogLog (runtime/window_distinct.h explains the lists of pairs): Add, Estimate,
// Prune, the pool the lists live in, and serialization.
#include "runtime/window_distinct.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "runtime/hyperloglog.h"

namespace vigil {
namespace {

constexpr int64_t kIdBias = int64_t{1} << 57;
constexpr size_t kMinSweep = 64;

int Clamp(int precision) {
  return std::clamp(precision, HyperLogLog::kMinPrecision, HyperLogLog::kMaxPrecision);
}

// The register and rank of a hash, as HyperLogLog::Add takes them.
void RegisterAndRank(uint64_t hash, int p, size_t* reg, int* rank) {
  const uint64_t stop = uint64_t{1} << (p - 1);
  *rank = std::countl_zero((hash << p) | stop) + 1;
  *reg = static_cast<size_t>(hash >> (64 - p));
}

}  // namespace

uint64_t DistinctHash(bool is_string, std::string_view bytes) {
  if (is_string || bytes.size() != 8) return HllHashBytes(bytes);
  uint64_t word;
  std::memcpy(&word, bytes.data(), sizeof word);
  return HllHash(word);
}

WindowedHyperLogLog::WindowedHyperLogLog(int precision)
    : precision_(Clamp(precision)),
      offset_(size_t{1} << precision_, 0),
      length_(size_t{1} << precision_, 0),
      capacity_(size_t{1} << precision_, 0) {}

uint64_t WindowedHyperLogLog::Word(int64_t slice_id, int rank) {
  const int64_t id = std::clamp(slice_id, -kIdBias, kIdBias - 1);
  return (static_cast<uint64_t>(id + kIdBias) << 6) | static_cast<uint64_t>(rank);
}

void WindowedHyperLogLog::Add(uint64_t hash, int64_t slice_id) {
  size_t r;
  int rank;
  RegisterAndRank(hash, precision_, &r, &rank);
  const uint64_t word = Word(slice_id, rank);
  const int64_t id = IdOf(word);
  uint64_t* list = pool_.data() + offset_[r];
  const size_t n = length_[r];
  // j: the first pair no older than the new one. The pairs from j on are the newer ones, the
  // first of them of the largest rank: if it is >= the new rank, the new pair is dominated.
  size_t j = 0;
  while (j < n && IdOf(list[j]) < id) ++j;
  if (j < n && RankOf(list[j]) >= rank) return;
  // The pairs it dominates: no newer (before j, or at j with the same id) and of no greater rank
  // (a run ending there, ranks falling along the list).
  size_t end = j < n && IdOf(list[j]) == id ? j + 1 : j;
  size_t begin = j;
  while (begin > 0 && RankOf(list[begin - 1]) <= rank) --begin;
  if (begin == end) {   // nothing replaced: one more pair
    if (n == capacity_[r]) {
      Grow(r);
      list = pool_.data() + offset_[r];
    }
    std::memmove(list + j + 1, list + j, (n - j) * sizeof(uint64_t));
    list[j] = word;
    ++length_[r];
  } else {
    list[begin] = word;
    std::memmove(list + begin + 1, list + end, (n - end) * sizeof(uint64_t));
    length_[r] = static_cast<uint8_t>(n - (end - begin - 1));
  }
  oldest_pair_ = std::min(oldest_pair_, id);
}

void WindowedHyperLogLog::Grow(size_t r) {
  const size_t old_capacity = capacity_[r];
  const size_t capacity = old_capacity == 0 ? 2 : std::min<size_t>(old_capacity * 2, 64);
  const size_t at = pool_.size();
  pool_.resize(at + capacity);
  std::memcpy(pool_.data() + at, pool_.data() + offset_[r], length_[r] * sizeof(uint64_t));
  offset_[r] = static_cast<uint32_t>(at);
  capacity_[r] = static_cast<uint8_t>(capacity);
  holes_ += old_capacity;
  if (holes_ * 2 > pool_.size()) Compact();
}

// The lists in register order, each keeping its capacity (so they do not grow again at once).
void WindowedHyperLogLog::Compact() {
  std::vector<uint64_t> pool;
  pool.reserve(pool_.size() - holes_);
  for (size_t r = 0; r < offset_.size(); ++r) {
    const size_t at = pool.size();
    pool.insert(pool.end(), pool_.begin() + offset_[r], pool_.begin() + offset_[r] + capacity_[r]);
    offset_[r] = static_cast<uint32_t>(at);
  }
  pool_.swap(pool);
  holes_ = 0;
}

double WindowedHyperLogLog::Estimate(int64_t first, std::span<uint8_t> scratch, const uint64_t* extra) const {
  const uint64_t from = Word(first, 0);   // the words of slices >= first are >= it
  for (size_t r = 0; r < length_.size(); ++r) {
    const uint64_t* list = pool_.data() + offset_[r];
    const size_t n = length_[r];
    size_t j = 0;
    while (j < n && list[j] < from) ++j;
    scratch[r] = j < n ? static_cast<uint8_t>(RankOf(list[j])) : 0;
  }
  if (extra != nullptr) {
    size_t r;
    int rank;
    RegisterAndRank(*extra, precision_, &r, &rank);
    scratch[r] = std::max(scratch[r], static_cast<uint8_t>(rank));
  }
  return HyperLogLog::EstimateRegisters(scratch.first(length_.size()));
}

void WindowedHyperLogLog::Prune(int64_t oldest, size_t dropped, size_t live) {
  dropped_since_sweep_ += dropped;
  if (oldest <= oldest_pair_ || dropped_since_sweep_ < std::max(live, kMinSweep)) return;
  dropped_since_sweep_ = 0;
  const uint64_t from = Word(oldest, 0);
  int64_t oldest_left = INT64_MAX;
  for (size_t r = 0; r < length_.size(); ++r) {
    uint64_t* list = pool_.data() + offset_[r];
    const size_t n = length_[r];
    size_t k = 0;
    while (k < n && list[k] < from) ++k;
    if (k > 0) {
      std::memmove(list, list + k, (n - k) * sizeof(uint64_t));
      length_[r] = static_cast<uint8_t>(n - k);
    }
    if (length_[r] > 0) oldest_left = std::min(oldest_left, IdOf(list[0]));
  }
  oldest_pair_ = oldest_left;
}

size_t WindowedHyperLogLog::pairs() const {
  size_t n = 0;
  for (uint8_t l : length_) n += l;
  return n;
}

size_t WindowedHyperLogLog::memory_bytes() const {
  return sizeof(*this) + offset_.capacity() * sizeof(uint32_t) + length_.capacity() + capacity_.capacity() +
         pool_.capacity() * sizeof(uint64_t);
}

double WindowedHyperLogLog::relative_standard_error() const {
  return HyperLogLog::RelativeStandardError(precision_);
}

bool WindowedHyperLogLog::operator==(const WindowedHyperLogLog& other) const {
  if (precision_ != other.precision_) return false;
  for (size_t r = 0; r < length_.size(); ++r) {
    if (length_[r] != other.length_[r]) return false;
    if (!std::equal(pool_.begin() + offset_[r], pool_.begin() + offset_[r] + length_[r],
                    other.pool_.begin() + other.offset_[r]))
      return false;
  }
  return true;
}

void WindowedHyperLogLog::AppendTo(std::string* out) const {
  out->push_back(static_cast<char>(kFormatVersion));
  out->push_back(static_cast<char>(precision_));
  for (size_t r = 0; r < length_.size(); ++r) {
    out->push_back(static_cast<char>(length_[r]));
    for (size_t j = 0; j < length_[r]; ++j) {
      const uint64_t w = pool_[offset_[r] + j];
      for (int b = 0; b < 8; ++b) out->push_back(static_cast<char>(w >> (8 * b)));
    }
  }
}

bool WindowedHyperLogLog::ReadFrom(std::string_view in, WindowedHyperLogLog* out) {
  if (in.size() < 2 || static_cast<uint8_t>(in[0]) != kFormatVersion) return false;
  const int precision = static_cast<uint8_t>(in[1]);
  if (precision < HyperLogLog::kMinPrecision || precision > HyperLogLog::kMaxPrecision) return false;
  const int max_rank = 65 - precision;
  WindowedHyperLogLog sketch(precision);
  size_t at = 2;
  for (size_t r = 0; r < sketch.length_.size(); ++r) {
    if (at >= in.size()) return false;
    const size_t n = static_cast<uint8_t>(in[at++]);
    if (n > static_cast<size_t>(max_rank) || in.size() - at < 8 * n) return false;
    const size_t capacity = std::bit_ceil(std::max<size_t>(n, 2));
    sketch.offset_[r] = static_cast<uint32_t>(sketch.pool_.size());
    sketch.capacity_[r] = n == 0 ? 0 : static_cast<uint8_t>(capacity);
    sketch.length_[r] = static_cast<uint8_t>(n);
    if (n == 0) continue;
    sketch.pool_.resize(sketch.pool_.size() + capacity);
    uint64_t* list = sketch.pool_.data() + sketch.offset_[r];
    for (size_t j = 0; j < n; ++j) {
      uint64_t w = 0;
      for (int b = 0; b < 8; ++b) w |= uint64_t{static_cast<uint8_t>(in[at++])} << (8 * b);
      const int rank = RankOf(w);
      if (rank < 1 || rank > max_rank) return false;
      if (j > 0 && (IdOf(w) <= IdOf(list[j - 1]) || rank >= RankOf(list[j - 1]))) return false;
      list[j] = w;
    }
    sketch.oldest_pair_ = std::min(sketch.oldest_pair_, IdOf(list[0]));
  }
  if (at != in.size()) return false;
  *out = std::move(sketch);
  return true;
}

}  // namespace vigil
