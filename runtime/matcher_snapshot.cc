// Matcher::Snapshot / Restore (matcher.h): all runtime state as bytes, and back.
//
// A snapshot is taken at every checkpoint of the daemon while event processing waits for it, so
// it is written for speed: a short msgpack envelope around a body of flat, fixed-width arrays
// written with memcpy (format 5; up to format 4 the body was msgpack object by object, ~6x
// slower: 1M partial matches took ~0.8 s). It is taken in two halves (matcher.h): CaptureSnapshot
// writes the body into a reusable ByteBuffer on the matcher's thread — the only part that stops
// processing — and SealSnapshot wraps it, on any thread.
//
// Envelope (msgpack, fixed-width so that its size is the body's + kEnvelopeBytes):
//   ["vigil-matcher", format version (uint64), program fingerprint (uint64), body (bin 32),
//    checksum (uint64: BodyChecksum of the body)]
// Body: native fixed-width integers (the layout section says which: byte order, sizeof(Run),
// sizeof(Cell); Restore refuses another), sections in this order:
//   layout     u64 0x0102030405060708, u32 sizeof(Run), u32 sizeof(Cell)
//   scalars    i64 watermark, i64 max_seen, i64 next_seq, u64 next_ord, u64 next_key_serial,
//              u64 clock hand, u64 key slot count
//   counters   u64 x kCumulativeCounters, u64 rule count, u64 alerts per rule x rule count
//   events     u64 count; each: u32 handle, u32 refs, i64 seq, u64 ord, u64 cells, the record
//              image (cells x 8 bytes; images are position independent, runtime/event.h)
//   reorder    u64 count; u32 handle x count, in release order
//   nodes      u64 count (ids 0..count-1); each id from 1: u32 event, u32 parent, i16 variable,
//              i16 step, u32 refs, u32 live, u16 rule, u8 flags, u8 0 (24 bytes; a free node is
//              all zero)
//   keys       u64 count; each: u32 slot, i32 spec, u64 serial, u32 key bytes, u32 runs,
//              u8 referenced (the CLOCK bit), 7 zero bytes; the key bytes; the runs (struct Run
//              as in memory, 48 bytes, no padding: state, node, start_ord, first_time,
//              last_time, step_anchor, expiry)
//   free slots u64 count; u32 x count (in order: CreateKey takes the last)
//   windows    u64 size; WindowState::Pack's bytes
//   revisions  u64 count; each: i64 window end, i32 threshold, i32 revision, u8 held, 3 zero
//              bytes, u32 key bytes; the key bytes (matcher_late.cc)
// Event handles are renumbered on restore; node ids and key slots are kept, the free node slots
// rebuilt (lowest id reused first). The timer heap is rebuilt from the runs' expiries. Restore
// reads and checks everything before it changes the matcher.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include <fmt/ranges.h>
#include <msgpack.hpp>

#include "runtime/matcher_impl.h"

namespace vigil {
namespace {

constexpr const char* kMagic = "vigil-matcher";
constexpr size_t kCumulativeCounters = 22;   // before the per-rule alert counts
// 2: every counter, key slots and the CLOCK state; 3: window state; 4: distinct sketches (in the
// window state, and their counter), allowed lateness (slices with their first and last times,
// window revisions and their counters), string slices, `by` groups; 5: the body as flat arrays.
constexpr uint64_t kFormatVersion = 5;
constexpr uint64_t kByteOrder = 0x0102030405060708ull;
// fixarray, fixstr "vigil-matcher", uint64 version, uint64 fingerprint, bin 32 header; uint64 checksum.
constexpr size_t kEnvelopeHead = 1 + 1 + 13 + 9 + 9 + 5;
constexpr size_t kEnvelopeBytes = kEnvelopeHead + 9;
constexpr size_t kEventHead = 32, kNodeBytes = 24, kKeyHead = 32, kRevisionHead = 24;
static_assert(std::has_unique_object_representations_v<Run>, "runs are written as they are in memory");
static_assert(sizeof(Cell) == 8);

// FNV-1a, for the program's fingerprint (computed once).
uint64_t Fnv(std::string_view bytes, uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The body's checksum: damage detection over a body of ~100 MB, so 8 bytes at a time in four
// independent lanes (xxHash64's round and merge; byte-wise FNV-1a took ~0.3 s there).
uint64_t BodyChecksum(std::string_view bytes) {
  constexpr uint64_t p1 = 0x9E3779B185EBCA87ull, p2 = 0xC2B2AE3D27D4EB4Full, p3 = 0x165667B19E3779F9ull;
  auto round = [](uint64_t acc, uint64_t w) {
    acc += w * p2;
    acc = (acc << 31) | (acc >> 33);
    return acc * p1;
  };
  auto load = [](const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  const char* p = bytes.data();
  size_t n = bytes.size();
  uint64_t v[4] = {p1 + p2, p2, 0, 0 - p1};
  for (; n >= 32; n -= 32, p += 32)
    for (int i = 0; i < 4; ++i) v[i] = round(v[i], load(p + 8 * i));
  uint64_t h = bytes.size() * p3;
  for (int i = 0; i < 4; ++i) h = (h ^ round(0, v[i])) * p1 + p3;
  for (; n >= 8; n -= 8, p += 8) {
    h ^= round(0, load(p));
    h = ((h << 27) | (h >> 37)) * p1 + p3;
  }
  for (; n > 0; --n, ++p) h = ((h ^ static_cast<unsigned char>(*p)) * p3) ^ (h >> 29);
  h ^= h >> 33;
  h *= p2;
  h ^= h >> 29;
  return h;
}

// Copies of a few dozen bytes, inline: a call of the library's memcpy per event, key and run
// cost more than the copying (~2.5M calls for 1M partial matches).
template <typename T>
char* PutEach(char* at, const T* from, size_t n) {
  for (size_t i = 0; i < n; ++i, at += sizeof(T)) __builtin_memcpy(at, from + i, sizeof(T));
  return at;
}
char* PutBytes(char* at, const char* from, size_t n) {
  for (; n >= 8; n -= 8, at += 8, from += 8) __builtin_memcpy(at, from, 8);
  for (; n > 0; --n) *at++ = *from++;
  return at;
}

template <typename T>
char* Put(char* at, T v) {
  std::memcpy(at, &v, sizeof v);
  return at + sizeof v;
}
void PutBigEndian64(char* at, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) at[i] = static_cast<char>(v & 0xff);
}

// Reading: every accessor checks the shape and throws Bad, caught in Restore.
struct Bad {
  std::string what;
};

const msgpack::object_array& Array(const msgpack::object& o, size_t min, const char* what) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size < min) throw Bad{what};
  return o.via.array;
}
uint64_t UInt(const msgpack::object& o) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) throw Bad{"unsigned integer expected"};
  return o.via.u64;
}
std::string_view Bin(const msgpack::object& o) {
  if (o.type == msgpack::type::BIN) return {o.via.bin.ptr, o.via.bin.size};
  if (o.type == msgpack::type::STR) return {o.via.str.ptr, o.via.str.size};
  throw Bad{"bytes expected"};
}

// The body, read front to back; running past its end is damage.
class BodyReader {
 public:
  explicit BodyReader(std::string_view bytes) : at_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  template <typename T>
  T Get() {
    if (sizeof(T) > left()) throw Bad{"the snapshot body is cut short"};
    T v;
    std::memcpy(&v, at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string_view Bytes(uint64_t n) {
    if (n > left()) throw Bad{"the snapshot body is cut short"};
    const std::string_view v(at_, static_cast<size_t>(n));
    at_ += n;
    return v;
  }
  void Skip(size_t n) { Bytes(n); }
  // A count of items of at least `min_bytes` each, all within what is left.
  uint64_t Count(size_t min_bytes, const char* what) {
    const uint64_t n = Get<uint64_t>();
    if (n > left() / min_bytes) throw Bad{what};
    return n;
  }
  size_t left() const { return static_cast<size_t>(end_ - at_); }

 private:
  const char* at_;
  const char* end_;
};

}  // namespace

// The rules — names, and for each enabled one its checked form without its metadata (key,
// within, pattern, emits: vigil check --dump) and its automaton — and the declarations of every
// event type the program reads (its index, name, fields with their types, time and key fields):
// what the snapshot's states, keys, bound events and record images mean. Severity, description,
// tags, owner and version do not count; neither do types no rule reads, so declaring a new type
// after the others (for a new rule) leaves other programs' snapshots valid (one declared before
// a type a rule reads moves that type's index, which counts). Computed once, at construction.
uint64_t Matcher::Impl::ComputeFingerprint(const Program& program) {
  uint64_t h = Fnv("program");
  for (size_t r = 0; r < program.rules.size(); ++r) {
    const CompiledRule& rule = program.rules[r];
    h = Fnv(rule.checked->name, h);
    if (rule.start < 0 && !rule.threshold) continue;   // disabled
    CheckedRule bare = *rule.checked;
    bare.meta = RuleMetadata{};
    bare.tests.clear();
    h = Fnv(DumpCheckedRule(bare, program.schema()), h);
    h = Fnv(DumpRuleProgram(program, static_cast<int>(r)), h);
  }
  const Schema& schema = program.schema();
  for (size_t t = 0; t < schema.types.size(); ++t) {
    bool reads = t < program.rules_by_type.size() && !program.rules_by_type[t].empty();
    for (const WindowAggregate& w : program.windows) reads = reads || static_cast<size_t>(w.term.event_type) == t;
    if (!reads) continue;
    const EventType& type = schema.types[t];
    h = Fnv(fmt::format("type {} {} time {} key [{}]", t, type.name, type.time_field, fmt::join(type.key_fields, ",")), h);
    for (const FieldDef& f : type.fields) h = Fnv(fmt::format("{}:{}", f.name, TypeName(f.type)), h);
  }
  return h;
}

uint64_t Matcher::fingerprint() const { return impl_->Fingerprint(); }

void Matcher::CaptureSnapshot(ByteBuffer* body) const { impl_->CaptureSnapshot(body); }

std::string Matcher::Snapshot() const {
  ByteBuffer body;
  impl_->CaptureSnapshot(&body);
  std::string out;
  SealSnapshot(impl_->Fingerprint(), body.view(), &out);
  return out;
}

size_t Matcher::SealedSize(size_t body_bytes) { return kEnvelopeBytes + body_bytes; }

void Matcher::SealSnapshot(uint64_t fingerprint, std::string_view body, std::string* out) {
  char head[kEnvelopeHead];
  char* at = head;
  *at++ = static_cast<char>(0x95);   // array of 5
  *at++ = static_cast<char>(0xa0 | 13);
  std::memcpy(at, kMagic, 13);
  at += 13;
  *at++ = static_cast<char>(0xcf);
  PutBigEndian64(at, kFormatVersion);
  at += 8;
  *at++ = static_cast<char>(0xcf);
  PutBigEndian64(at, fingerprint);
  at += 8;
  *at++ = static_cast<char>(0xc6);   // bin 32
  if (body.size() > UINT32_MAX) {   // msgpack's bin holds at most 4 GiB: refuse, never cut
    throw std::length_error(fmt::format("a matcher snapshot of {} bytes is over msgpack's 4 GiB", body.size()));
  }
  const auto size = static_cast<uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) *at++ = static_cast<char>(size >> (24 - 8 * i));
  char tail[9];
  tail[0] = static_cast<char>(0xcf);
  PutBigEndian64(tail + 1, BodyChecksum(body));
  out->reserve(out->size() + SealedSize(body.size()));
  out->append(head, sizeof head);
  out->append(body);
  out->append(tail, sizeof tail);
}

size_t Matcher::SnapshotBound() const { return impl_->SnapshotBound(); }

// The store's chunks hold every live image; windows and revisions are not counted (Extend grows
// the buffer for them).
size_t Matcher::Impl::SnapshotBound() const {
  return 256 + 8 * (kCumulativeCounters + counters_.alerts_per_rule.size()) +
         store_.live() * (kEventHead + 4) + store_.bytes_reserved() + nodes_.size() * kNodeBytes +
         counters_.keys_live * (kKeyHead + 32) + counters_.runs_live * sizeof(Run) + 4 * free_keys_.size();
}

void Matcher::Impl::CaptureSnapshot(ByteBuffer* body) const {
  ByteBuffer& out = *body;
  out.Clear();
  // Room for about all of it at once, and half as much again when it grows: a reallocated buffer
  // is fresh memory, faulted page by page (ShardPool prewarms its buffers to spare the pause that).
  const size_t bound = SnapshotBound();
  if (bound > out.capacity()) out.Reserve(bound + bound / 2);
  char* at = out.Extend(16 + 7 * 8);
  at = Put(at, kByteOrder);
  at = Put(at, static_cast<uint32_t>(sizeof(Run)));
  at = Put(at, static_cast<uint32_t>(sizeof(Cell)));
  for (int64_t v : {watermark_, max_seen_, next_seq_}) at = Put(at, v);
  for (uint64_t v : {next_ord_, next_key_serial_, static_cast<uint64_t>(clock_hand_), static_cast<uint64_t>(keys_.size())})
    at = Put(at, v);

  const MatcherCounters& c = counters_;
  at = out.Extend(8 * (kCumulativeCounters + 1 + c.alerts_per_rule.size()));
  for (uint64_t v : {c.events_pushed, c.events_processed, c.events_late, c.events_ignored, c.matches,
                     c.timeouts, c.runs_evicted, c.runs_started, c.keys_created, c.runs_rejected,
                     c.keys_evicted, c.keys_rejected, c.watermark_forced, c.watermark_forced_per_key,
                     c.events_rejected, c.window_alerts,
                     windows_ != nullptr ? windows_->evicted() : c.window_keys_evicted,
                     windows_ != nullptr ? windows_->rejected() : c.window_keys_rejected,
                     windows_ != nullptr ? windows_->distinct_sketches() : c.distinct_sketches,
                     c.late_events_windowed, c.window_revisions, c.window_retractions})
    at = Put(at, v);
  at = Put(at, static_cast<uint64_t>(c.alerts_per_rule.size()));
  for (uint64_t v : c.alerts_per_rule) at = Put(at, v);

  Put(out.Extend(8), static_cast<uint64_t>(store_.live()));
  store_.ForEach([&](EventStore::Handle h) {
    const auto image = store_.view(h).image();
    char* e = out.Extend(kEventHead + image.size_bytes());
    e = Put(e, h);
    e = Put(e, store_.refs(h));
    e = Put(e, store_.seq(h));
    e = Put(e, store_.ord(h));
    e = Put(e, static_cast<uint64_t>(image.size()));
    PutEach(e, image.data(), image.size());
  });
  const std::vector<EventStore::Handle> reorder = reorder_.InOrder();
  Put(out.Extend(8), static_cast<uint64_t>(reorder.size()));
  out.Append(reorder.data(), reorder.size() * sizeof(EventStore::Handle));

  Put(out.Extend(8), static_cast<uint64_t>(nodes_.size()));
  at = out.Extend((nodes_.size() - 1) * kNodeBytes);
  for (size_t n = 1; n < nodes_.size(); ++n) {
    const Node& node = nodes_[n];
    if (node.refs == 0) {
      std::memset(at, 0, kNodeBytes);
      at += kNodeBytes;
      continue;
    }
    at = Put(at, node.event);
    at = Put(at, node.parent);
    at = Put(at, node.variable);
    at = Put(at, node.step);
    at = Put(at, node.refs);
    at = Put(at, node.live);
    at = Put(at, node.rule);
    at = Put(at, node.flags);
    at = Put(at, uint8_t{0});
  }

  Put(out.Extend(8), static_cast<uint64_t>(counters_.keys_live));
  for (size_t slot = 0; slot < keys_.size(); ++slot) {
    const KeyState& key = keys_[slot];
    if (slot + 8 < keys_.size()) {   // a key's bytes and runs are apart from it: fetch them early
      __builtin_prefetch(keys_[slot + 8].bytes.data());
      __builtin_prefetch(keys_[slot + 8].runs.data());
    }
    if (!key.in_use) continue;
    const size_t runs = key.runs.size() * sizeof(Run);
    char* k = out.Extend(kKeyHead + key.bytes.size() + runs);
    k = Put(k, static_cast<uint32_t>(slot));
    k = Put(k, key.spec);
    k = Put(k, key.serial);
    k = Put(k, static_cast<uint32_t>(key.bytes.size()));
    k = Put(k, static_cast<uint32_t>(key.runs.size()));
    k = Put(k, static_cast<uint64_t>(key.referenced));   // the CLOCK bit, then 7 zero bytes
    PutEach(PutBytes(k, key.bytes.data(), key.bytes.size()), key.runs.data(), key.runs.size());
  }
  Put(out.Extend(8), static_cast<uint64_t>(free_keys_.size()));
  out.Append(free_keys_.data(), free_keys_.size() * sizeof(uint32_t));

  std::string windows;
  if (windows_ != nullptr) windows_->Pack(&windows);
  Put(out.Extend(8), static_cast<uint64_t>(windows.size()));
  out.Append(windows.data(), windows.size());
  Put(out.Extend(8), static_cast<uint64_t>(revisions_.size()));
  for (const auto& [id, state] : revisions_) {
    const std::string& key = std::get<2>(id);
    char* r = out.Extend(kRevisionHead + key.size());
    r = Put(r, std::get<0>(id));
    r = Put(r, std::get<1>(id));
    r = Put(r, state.revision);
    r = Put(r, static_cast<uint32_t>(state.held));   // held, then 3 zero bytes
    r = Put(r, static_cast<uint32_t>(key.size()));
    std::memcpy(r, key.data(), key.size());
  }
}

bool Matcher::Impl::Restore(std::string_view bytes, std::string* error) {
  if (counters_.events_pushed != 0) {
    *error = "restore needs a matcher that has seen no event";
    return false;
  }
  try {
    // The body is read in place (the envelope's bin referenced, not copied).
    const msgpack::object_handle outer_handle = msgpack::unpack(
        bytes.data(), bytes.size(), +[](msgpack::type::object_type, size_t, void*) { return true; });
    const auto& outer = Array(outer_handle.get(), 5, "not a Vigil matcher snapshot");
    if (Bin(outer.ptr[0]) != kMagic) throw Bad{"not a Vigil matcher snapshot"};
    if (UInt(outer.ptr[1]) != kFormatVersion)
      throw Bad{fmt::format("snapshot format {} (this build reads {})", UInt(outer.ptr[1]), kFormatVersion)};
    if (UInt(outer.ptr[2]) != Fingerprint()) throw Bad{"the snapshot was taken with other rules"};
    const std::string_view body_bytes = Bin(outer.ptr[3]);
    if (UInt(outer.ptr[4]) != BodyChecksum(body_bytes)) throw Bad{"checksum mismatch: the snapshot is damaged"};
    BodyReader in(body_bytes);
    const Program& p = *program_;

    // Read and check everything first.
    if (in.Get<uint64_t>() != kByteOrder || in.Get<uint32_t>() != sizeof(Run) || in.Get<uint32_t>() != sizeof(Cell))
      throw Bad{"the snapshot was written by a build of another byte order or layout"};
    const int64_t watermark = in.Get<int64_t>(), max_seen = in.Get<int64_t>(), next_seq = in.Get<int64_t>();
    const uint64_t next_ord = in.Get<uint64_t>(), next_key_serial = in.Get<uint64_t>();
    const uint64_t clock_hand = in.Get<uint64_t>(), slot_count = in.Get<uint64_t>();
    uint64_t cumulative_values[kCumulativeCounters];
    for (uint64_t& v : cumulative_values) v = in.Get<uint64_t>();
    if (in.Get<uint64_t>() != p.rules.size()) throw Bad{"bad per-rule counters"};
    std::vector<uint64_t> per_rule(p.rules.size());
    for (uint64_t& v : per_rule) v = in.Get<uint64_t>();

    struct SavedEvent {
      uint32_t refs;
      int64_t seq;
      uint64_t ord;
      std::string_view image;
    };
    std::vector<SavedEvent> events(in.Count(kEventHead, "bad events"));
    absl::flat_hash_map<uint32_t, uint32_t> event_index;   // old handle -> index in `events`
    event_index.reserve(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      const uint32_t handle = in.Get<uint32_t>();
      SavedEvent& e = events[i];
      e.refs = in.Get<uint32_t>();
      e.seq = in.Get<int64_t>();
      e.ord = in.Get<uint64_t>();
      const uint64_t cells = in.Get<uint64_t>();
      if (cells < RecordView::kHeaderCells || cells > in.left() / sizeof(Cell)) throw Bad{"bad event image"};
      e.image = in.Bytes(cells * sizeof(Cell));
      Cell header[RecordView::kHeaderCells];
      std::memcpy(header, e.image.data(), sizeof header);
      const RecordView view(header);
      if (view.size_bytes() != e.image.size() || view.type_id() < 0 ||
          static_cast<size_t>(view.type_id()) >= p.schema().types.size())
        throw Bad{"bad event image"};
      if (!event_index.emplace(handle, static_cast<uint32_t>(i)).second) throw Bad{"bad event: handle twice"};
    }
    std::vector<uint32_t> reorder(in.Count(sizeof(uint32_t), "bad reorder buffer"));
    for (uint32_t& h : reorder) {
      const auto it = event_index.find(in.Get<uint32_t>());
      if (it == event_index.end()) throw Bad{"bad reorder buffer"};
      h = it->second;
    }

    const uint64_t node_count = in.Get<uint64_t>();
    if (node_count == 0 || node_count - 1 > in.left() / kNodeBytes || node_count > uint64_t{1} << 32) throw Bad{"bad nodes"};
    std::vector<Node> nodes(static_cast<size_t>(node_count));
    std::vector<uint32_t> node_event(static_cast<size_t>(node_count), 0);   // index in `events`
    for (size_t n = 1; n < nodes.size(); ++n) {
      Node& node = nodes[n];
      node.event = in.Get<uint32_t>();
      node.parent = in.Get<uint32_t>();
      node.variable = in.Get<int16_t>();
      node.step = in.Get<int16_t>();
      node.refs = in.Get<uint32_t>();
      node.live = in.Get<uint32_t>();
      node.rule = in.Get<uint16_t>();
      node.flags = in.Get<uint8_t>();
      in.Skip(1);
      if (node.refs == 0) continue;   // free
      const auto it = event_index.find(node.event);
      if (it == event_index.end() || node.rule >= p.rules.size() || node.parent >= node_count) throw Bad{"bad node"};
      node_event[n] = it->second;
    }
    for (size_t n = 1; n < nodes.size(); ++n)
      if (nodes[n].refs != 0 && nodes[n].parent != kNoNode && nodes[nodes[n].parent].refs == 0) throw Bad{"bad node"};

    // (Every slot is a key, of more than 4 bytes, or a free slot, of 4: bounded before allocating.)
    if (slot_count > uint64_t{1} << 32 || slot_count > in.left() / 4 || clock_hand > slot_count)
      throw Bad{"bad key slots"};
    std::vector<uint8_t> slot_used(static_cast<size_t>(slot_count), 0);
    auto claim = [&](uint64_t slot) {
      if (slot >= slot_count || slot_used[static_cast<size_t>(slot)]) throw Bad{"bad key slots"};
      slot_used[static_cast<size_t>(slot)] = 1;
    };
    struct SavedKey {
      uint32_t slot;
      int32_t spec;
      uint64_t serial;
      bool referenced;
      std::string_view bytes;
      const char* runs;
      uint32_t run_count;
    };
    std::vector<SavedKey> keys(in.Count(kKeyHead, "bad keys"));
    for (SavedKey& k : keys) {
      k.slot = in.Get<uint32_t>();
      claim(k.slot);
      k.spec = in.Get<int32_t>();
      if (k.spec < 0 || static_cast<size_t>(k.spec) >= specs_.size()) throw Bad{"bad key spec"};
      k.serial = in.Get<uint64_t>();
      const uint32_t key_size = in.Get<uint32_t>();
      k.run_count = in.Get<uint32_t>();
      const uint64_t referenced = in.Get<uint64_t>();
      if (referenced > 1) throw Bad{"bad key"};
      k.referenced = referenced == 1;
      k.bytes = in.Bytes(key_size);
      if (k.run_count > in.left() / sizeof(Run)) throw Bad{"bad runs"};
      k.runs = in.Bytes(k.run_count * sizeof(Run)).data();
      for (uint32_t j = 0; j < k.run_count; ++j) {
        Run r;
        std::memcpy(&r, k.runs + j * sizeof(Run), sizeof r);
        if (r.state < 0 || static_cast<size_t>(r.state) >= p.states.size() || r.node >= node_count ||
            (r.node != kNoNode && nodes[r.node].refs == 0))
          throw Bad{"bad run"};
      }
    }
    std::vector<uint32_t> free_slots(in.Count(sizeof(uint32_t), "bad key slots"));
    for (uint32_t& slot : free_slots) {
      slot = in.Get<uint32_t>();
      claim(slot);
    }
    if (keys.size() + free_slots.size() != slot_count) throw Bad{"bad key slots"};

    const std::string_view window_bytes = in.Bytes(in.Get<uint64_t>());
    std::unique_ptr<WindowState> windows;
    if (windows_ != nullptr) {
      windows = windows_->EmptyLike();
      std::string why;
      if (!windows->Unpack(window_bytes, &why)) throw Bad{why};
    } else if (!window_bytes.empty()) {
      throw Bad{"bad window state"};
    }
    decltype(revisions_) revised;
    const uint64_t revision_count = in.Count(kRevisionHead, "bad window revisions");
    for (uint64_t i = 0; i < revision_count; ++i) {
      const int64_t end = in.Get<int64_t>();
      const int32_t threshold = in.Get<int32_t>();
      const int32_t revision = in.Get<int32_t>();
      const uint32_t held = in.Get<uint32_t>();
      const std::string_view key = in.Bytes(in.Get<uint32_t>());
      if (windows_ == nullptr || threshold < 0 || static_cast<size_t>(threshold) >= windows_->thresholds().size() ||
          held > 1)
        throw Bad{"bad window revision"};
      revised[std::make_tuple(end, threshold, std::string(key))] = RevisionState{revision, held == 1};
    }
    if (in.left() != 0) throw Bad{"bad snapshot body: bytes after its end"};

    // Apply.
    if (windows != nullptr) windows_ = std::move(windows);
    revisions_ = std::move(revised);
    watermark_ = watermark;
    max_seen_ = max_seen;
    next_seq_ = next_seq;
    next_ord_ = next_ord;
    uint64_t* cumulative[kCumulativeCounters] = {
        &counters_.events_pushed, &counters_.events_processed, &counters_.events_late,
        &counters_.events_ignored, &counters_.matches, &counters_.timeouts, &counters_.runs_evicted,
        &counters_.runs_started, &counters_.keys_created, &counters_.runs_rejected,
        &counters_.keys_evicted, &counters_.keys_rejected, &counters_.watermark_forced,
        &counters_.watermark_forced_per_key, &counters_.events_rejected, &counters_.window_alerts,
        &counters_.window_keys_evicted, &counters_.window_keys_rejected, &counters_.distinct_sketches,
        &counters_.late_events_windowed, &counters_.window_revisions, &counters_.window_retractions};
    for (size_t i = 0; i < kCumulativeCounters; ++i) *cumulative[i] = cumulative_values[i];
    if (windows_ != nullptr) windows_->set_counts(counters_.window_keys_evicted, counters_.window_keys_rejected);
    if (windows_ != nullptr) windows_->set_distinct_sketches(counters_.distinct_sketches);
    for (size_t r = 0; r < p.rules.size(); ++r) counters_.alerts_per_rule[r] = per_rule[r];
    std::vector<EventStore::Handle> handle(events.size());   // index in `events` -> new handle
    std::vector<Cell> image;
    for (size_t i = 0; i < events.size(); ++i) {
      const SavedEvent& e = events[i];
      image.resize(e.image.size() / sizeof(Cell));
      std::memcpy(image.data(), e.image.data(), e.image.size());
      const EventStore::Handle h = store_.Add(RecordView(image.data()), e.seq);
      store_.set_ord(h, e.ord);
      store_.set_refs(h, e.refs);
      handle[i] = h;
    }
    free_nodes_.clear();
    for (size_t n = nodes.size() - 1; n >= 1; --n) {
      if (nodes[n].refs == 0) {
        nodes[n] = Node{};
        free_nodes_.push_back(static_cast<uint32_t>(n));   // the lowest id is reused first
      } else {
        nodes[n].event = handle[node_event[n]];
      }
    }
    nodes_ = std::move(nodes);
    // Keys in their own slots, the free slots in their order: key creation and CLOCK eviction
    // go on exactly as they would have.
    keys_.assign(static_cast<size_t>(slot_count), KeyState{});
    free_keys_ = std::move(free_slots);
    clock_hand_ = static_cast<size_t>(clock_hand);
    for (const SavedKey& k : keys) {
      key_bytes_.assign(k.bytes);
      free_keys_.push_back(k.slot);   // CreateKey takes it from the back
      const uint32_t created = CreateKey(k.spec);
      --counters_.keys_created;   // CreateKey counted it; the restored counter already has it
      KeyState& key = keys_[created];
      key.serial = k.serial;
      key.referenced = k.referenced;
      key.runs.resize(k.run_count);
      if (k.run_count != 0) std::memcpy(key.runs.data(), k.runs, k.run_count * sizeof(Run));
      counters_.runs_live += key.runs.size();
      Schedule(created);
    }
    next_key_serial_ = next_key_serial;   // CreateKey drew serials; the keys have their own
    for (uint32_t i : reorder) reorder_.Push(handle[i]);
    RebuildKeyBuffers();   // the per-key counts follow from the buffer (not in the format)
    counters_.events_buffered = reorder_.size();
    counters_.events_stored = store_.live();
    counters_.nodes_live = nodes_.size() - 1 - free_nodes_.size();
    return true;
  } catch (const Bad& bad) {
    *error = bad.what;
  } catch (const std::exception& e) {
    *error = std::string("not a Vigil matcher snapshot: ") + e.what();
  }
  return false;
}

}  // namespace vigil
