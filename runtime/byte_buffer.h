// ByteBuffer: a growable byte array written through pointers, for snapshots (Matcher::
// CaptureSnapshot). Unlike std::string it never zero-fills what it is about to overwrite, and it
// keeps its memory across Clear(): a buffer reused checkpoint after checkpoint has its pages
// mapped already, so filling it costs about a memcpy of what is written — no page faults, no
// kernel zeroing (a fresh 150 MB std::string costs ~40 ms of those alone).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace vigil {

class ByteBuffer {
 public:
  // `n` writable bytes at the end (the size grows by n); valid until the next Extend or Reserve.
  char* Extend(size_t n) {
    if (n > capacity_ - size_) Grow(n);
    char* at = data_.get() + size_;
    size_ += n;
    return at;
  }
  void Append(const void* bytes, size_t n) {
    if (n != 0) std::memcpy(Extend(n), bytes, n);
  }
  // Room for `n` bytes in all without reallocating.
  void Reserve(size_t n) {
    if (n > capacity_) Reallocate(n);
  }
  void Clear() { size_ = 0; }   // keeps the memory
  // Writes a byte in every page of the capacity not yet written, so that the kernel maps them
  // now (ShardPool's prewarmer does this off the checkpoint's pause).
  void TouchPages() {
    for (size_t at = size_; at < capacity_; at += 4096) data_.get()[at] = 0;
  }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  void Grow(size_t n) { Reallocate(std::max(size_ + n, capacity_ * 2)); }
  void Reallocate(size_t capacity) {
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    if (size_ != 0) std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    capacity_ = capacity;
  }

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace vigil
