// ByteBuffer: a growable byte array written through pointers, for snapshots (Matcher::
// CaptureSnapshot). Unlike std::string it never zero-fills what it is about to overwrite, and it
// keeps its memory across Clear(): a buffer reused checkpoint after checkpoint has its pages
// mapped already, so filling it costs about a memcpy of what is written — no page faults, no
// kernel zeroing (a fresh 150 MB std::string costs ~40 ms of those alone).
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
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
  // Maps every page of the capacity not yet written now, so that writing it later costs no
  // fault (ShardPool's prewarmer does this off the checkpoint's pause). Two steps, measured on
  // this project's VMs (a paravirtualised guest; figures for 278 MB in perf/README, "Daemon"):
  // one MADV_POPULATE_WRITE for the whole pages of the range (the kernel maps them: ~50 ms
  // instead of ~850 ms faulted a page at a time), then a written byte per page from user space —
  // on a guest whose hypervisor builds its own page tables lazily, the first user access to each
  // page the kernel populated still exits to the hypervisor (~5 µs per 4 KiB page: 380 ms for
  // 278 MB, which the first checkpoint paid before this loop). On an older kernel (no
  // MADV_POPULATE_WRITE) the loop does all the mapping. (MADV_HUGEPAGE first made the mapping
  // cheap but every later copy into the buffer 2-8x slower there: not done.)
  void TouchPages() {
    char* begin = data_.get() + size_;
    char* end = data_.get() + capacity_;
#ifdef MADV_POPULATE_WRITE
    const uintptr_t page = 4096;
    const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) & ~(page - 1);
    const uintptr_t last = reinterpret_cast<uintptr_t>(end) & ~(page - 1);
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE);
#endif
    for (char* at = begin; at < end; at += 4096) *static_cast<volatile char*>(at) = 0;
    if (begin < end) *static_cast<volatile char*>(end - 1) = 0;
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
