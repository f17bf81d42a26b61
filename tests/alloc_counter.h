// Heap-allocation counting for tests that assert a hot path allocates nothing in steady state
// (decoders, expression evaluation). tests/alloc_counter.cc replaces the global operator new of
// the whole test binary: it only counts and forwards to malloc.
#pragma once

namespace vigil::test {

// Number of operator new calls so far in this process (all threads).
long AllocationCount();

}  // namespace vigil::test
