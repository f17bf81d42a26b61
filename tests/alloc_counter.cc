// The replaced global operator new / delete behind tests/alloc_counter.h. Linked into vigil_tests
// once (it cannot live in a *_test.cc: two replacements would clash).
#include "tests/alloc_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

namespace vigil::test {
long AllocationCount() { return g_allocations.load(std::memory_order_relaxed); }
}  // namespace vigil::test

// GCC 12 at -O2+ mistakes the malloc/free pair below for a new/free mismatch once the
// replaced operators are inlined into std::allocator; they are a matched pair.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// The nothrow forms too: otherwise a sanitizer's own nothrow new pairs with the free() above.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop
