// HyperLogLog (runtime/hyperloglog.h): construction, Merge, Ertl's estimator, serialization, and
// HllHashBytes. Add is inline in the header.
#include "runtime/hyperloglog.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>

namespace vigil {
namespace {

// fold(x): the 128-bit product x × 0x9E3779B97F4A7C15, its two halves xor-ed (docs/matching.md §8).
uint64_t Fold(uint64_t x) {
  const unsigned __int128 r = static_cast<unsigned __int128>(x) * 0x9E3779B97F4A7C15ull;
  return static_cast<uint64_t>(r >> 64) ^ static_cast<uint64_t>(r);
}

// `n` (≤ 8) bytes at p as a little-endian word, zero-padded.
uint64_t LoadLittleEndian(const char* p, size_t n) {
  uint64_t w = 0;
  for (size_t i = 0; i < n; ++i) w |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return w;
}

// Ertl (2017), Algorithm 6's σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k−1), for the registers still 0.
double Sigma(double x) {
  if (x == 1) return std::numeric_limits<double>::infinity();
  double y = 1;
  double z = x;
  double z_old;
  do {
    x *= x;
    z_old = z;
    z += x * y;
    y += y;
  } while (z != z_old);
  return z;
}

// Ertl (2017), Algorithm 6's τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² 2^−k) / 3, for the registers
// at the largest rank q + 1.
double Tau(double x) {
  if (x == 0 || x == 1) return 0;
  double y = 1;
  double z = 1 - x;
  double z_old;
  do {
    x = std::sqrt(x);
    z_old = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
  } while (z != z_old);
  return z / 3;
}

int ClampPrecision(int precision) {
  assert(precision >= HyperLogLog::kMinPrecision && precision <= HyperLogLog::kMaxPrecision);
  return std::clamp(precision, HyperLogLog::kMinPrecision, HyperLogLog::kMaxPrecision);
}

}  // namespace

uint64_t HllHashBytes(std::string_view bytes) {
  uint64_t h = (bytes.size() + 1) * 0xC2B2AE3D27D4EB4Full;
  const char* p = bytes.data();
  size_t left = bytes.size();
  for (; left >= 8; p += 8, left -= 8) h = Fold(h ^ LoadLittleEndian(p, 8));
  if (left > 0) h = Fold(h ^ LoadLittleEndian(p, left));
  return HllHash(h);
}

HyperLogLog::HyperLogLog(int precision)
    : precision_(ClampPrecision(precision)), registers_(size_t{1} << precision_, 0) {}

bool HyperLogLog::Merge(const HyperLogLog& other) {
  if (other.precision_ != precision_) return false;
  uint8_t* dst = registers_.data();
  const uint8_t* src = other.registers_.data();
  for (size_t i = 0, m = registers_.size(); i < m; ++i) dst[i] = std::max(dst[i], src[i]);
  return true;
}

double HyperLogLog::EstimateRegisters(std::span<const uint8_t> registers) {
  const int q = 64 - std::countr_zero(registers.size());
  std::array<uint32_t, 66> histogram{};   // register values 0 .. q + 1 ≤ 61
  for (uint8_t r : registers) ++histogram[r];
  const double m = static_cast<double>(registers.size());
  double z = m * Tau(1 - histogram[q + 1] / m);
  for (int k = q; k >= 1; --k) z = 0.5 * (z + histogram[k]);
  z += m * Sigma(histogram[0] / m);
  constexpr double kAlphaInfinity = 0.5 / 0.69314718055994530942;   // 1 / (2 ln 2)
  return kAlphaInfinity * m * m / z;
}

void HyperLogLog::Clear() { std::fill(registers_.begin(), registers_.end(), uint8_t{0}); }

double HyperLogLog::RelativeStandardError(int precision) {
  return 1.04 / std::sqrt(static_cast<double>(size_t{1} << ClampPrecision(precision)));
}

double HyperLogLog::relative_standard_error() const { return RelativeStandardError(precision_); }

void HyperLogLog::AppendTo(std::string* out) const {
  out->push_back(static_cast<char>(kFormatVersion));
  out->push_back(static_cast<char>(precision_));
  out->append(reinterpret_cast<const char*>(registers_.data()), registers_.size());
}

bool HyperLogLog::ReadFrom(std::string_view in, HyperLogLog* out) {
  if (in.size() < 2 || static_cast<uint8_t>(in[0]) != kFormatVersion) return false;
  const int precision = static_cast<uint8_t>(in[1]);
  if (precision < kMinPrecision || precision > kMaxPrecision) return false;
  const size_t m = size_t{1} << precision;
  if (in.size() != 2 + m) return false;
  const std::string_view regs = in.substr(2);
  const auto max_rank = static_cast<uint8_t>(65 - precision);
  for (char c : regs) {
    if (static_cast<uint8_t>(c) > max_rank) return false;
  }
  HyperLogLog sketch(precision);
  std::memcpy(sketch.registers_.data(), regs.data(), m);
  *out = std::move(sketch);
  return true;
}

}  // namespace vigil
