// Matcher::Snapshot / Restore (matcher.h): all runtime state as msgpack bytes.
//
// Layout: ["vigil-matcher", format version, program fingerprint, body (bin), checksum] where the
// checksum is 64-bit FNV-1a of the body bytes and the body is
//   [watermark, max_seen, next_seq, next_ord, next_key_serial,
//    [cumulative counters..., [alerts per rule...]],
//    [[handle, seq, ord, refs, image (bin)] per stored event],
//    [handles of the reorder buffer, in release order],
//    [[id, event, parent, variable, step, refs, live, rule, flags] per live node],
//    [[key bytes (bin), spec, serial, [[state, rule, node, last_step, start_ord, first_time,
//      last_time, step_anchor, expiry] per run]] per key], clock hand, [slot count, free
//    slots], window state (bin: WindowState::Pack),
//    [[window end, threshold, key bytes (bin), revision, held] per updatable window
//     (matcher_late.cc)]]. A run's rule and last step are
//      derived from its state and node; they are written for the format's sake and checked.
// Event handles are renumbered on restore; node ids are kept. Record images are position
// independent (runtime/event.h), so they are stored as they are. The timer heap is rebuilt from
// the runs' expiries. Restore parses and checks everything before it changes the matcher.
#include <cstring>

#include <fmt/ranges.h>
#include <msgpack.hpp>

#include "runtime/matcher_impl.h"

namespace vigil {
namespace {

constexpr const char* kMagic = "vigil-matcher";
constexpr size_t kCumulativeCounters = 22;   // before the per-rule alert counts
// 2: every counter, key slots and the CLOCK state; 3: window state; 4: distinct sketches (in the
// window state, and their counter), allowed lateness (slices with their first and last times,
// window revisions and their counters), string slices, `by` groups.
constexpr uint64_t kFormatVersion = 4;

uint64_t Fnv(std::string_view bytes, uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

using Packer = msgpack::packer<msgpack::sbuffer>;

void PackBin(Packer& pk, std::string_view bytes) {
  pk.pack_bin(static_cast<uint32_t>(bytes.size()));
  pk.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
}

// Reading: every accessor checks the shape and throws Bad, caught in Restore.
struct Bad {
  std::string what;
};

const msgpack::object_array& Array(const msgpack::object& o, size_t min, const char* what) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size < min) throw Bad{what};
  return o.via.array;
}
int64_t Int(const msgpack::object& o) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<int64_t>(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  throw Bad{"integer expected"};
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

}  // namespace

// The rules — names, and for each enabled one its checked form without its metadata (key,
// within, pattern, emits: vigil check --dump) and its automaton — and the declarations of every
// event type the program reads (its index, name, fields with their types, time and key fields):
// what the snapshot's states, keys, bound events and record images mean. Severity, description,
// tags, owner and version do not count; neither do types no rule reads, so declaring a new type
// (for a new rule) leaves other programs' snapshots valid. Computed once, at construction.
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

std::string Matcher::Impl::Snapshot() const {
  msgpack::sbuffer body;
  Packer pk(&body);
  pk.pack_array(14);
  pk.pack(watermark_);
  pk.pack(max_seen_);
  pk.pack(next_seq_);
  pk.pack(next_ord_);
  pk.pack(next_key_serial_);
  const MatcherCounters& c = counters_;
  pk.pack_array(kCumulativeCounters + 1);
  for (uint64_t v : {c.events_pushed, c.events_processed, c.events_late, c.events_ignored, c.matches,
                     c.timeouts, c.runs_evicted, c.runs_started, c.keys_created, c.runs_rejected,
                     c.keys_evicted, c.keys_rejected, c.watermark_forced, c.watermark_forced_per_key,
                     c.events_rejected, c.window_alerts,
                     windows_ != nullptr ? windows_->evicted() : c.window_keys_evicted,
                     windows_ != nullptr ? windows_->rejected() : c.window_keys_rejected,
                     windows_ != nullptr ? windows_->distinct_sketches() : c.distinct_sketches,
                     c.late_events_windowed, c.window_revisions, c.window_retractions})
    pk.pack(v);
  pk.pack(c.alerts_per_rule);
  size_t events = 0;
  store_.ForEach([&](EventStore::Handle) { ++events; });
  pk.pack_array(static_cast<uint32_t>(events));
  store_.ForEach([&](EventStore::Handle h) {
    pk.pack_array(5);
    pk.pack(h);
    pk.pack(store_.seq(h));
    pk.pack(store_.ord(h));
    pk.pack(store_.refs(h));
    const auto image = store_.view(h).image();
    PackBin(pk, std::string_view(reinterpret_cast<const char*>(image.data()), image.size_bytes()));
  });
  pk.pack(reorder_.InOrder());
  size_t live_nodes = 0;
  for (size_t n = 1; n < nodes_.size(); ++n) live_nodes += nodes_[n].refs > 0;
  pk.pack_array(static_cast<uint32_t>(live_nodes));
  for (size_t n = 1; n < nodes_.size(); ++n) {
    const Node& node = nodes_[n];
    if (node.refs == 0) continue;
    pk.pack_array(9);
    pk.pack(static_cast<uint32_t>(n));
    pk.pack(node.event);
    pk.pack(node.parent);
    pk.pack(node.variable);
    pk.pack(node.step);
    pk.pack(node.refs);
    pk.pack(node.live);
    pk.pack(node.rule);
    pk.pack(node.flags);
  }
  pk.pack_array(static_cast<uint32_t>(counters_.keys_live));
  for (size_t slot = 0; slot < keys_.size(); ++slot) {
    const KeyState& key = keys_[slot];
    if (!key.in_use) continue;
    pk.pack_array(6);
    PackBin(pk, key.bytes);
    pk.pack(key.spec);
    pk.pack(key.serial);
    pk.pack_array(static_cast<uint32_t>(key.runs.size()));
    for (const Run& r : key.runs) {
      pk.pack_array(9);
      pk.pack(r.state);
      pk.pack(RuleOf(r));   // derived since format 1; kept so the format did not change
      pk.pack(r.node);
      pk.pack(LastStep(r));
      pk.pack(r.start_ord);
      pk.pack(r.first_time);
      pk.pack(r.last_time);
      pk.pack(r.step_anchor);
      pk.pack(r.expiry);
    }
    // Where the key lives and its CLOCK bit: max_keys evicts by slot order (EvictIdleKey).
    pk.pack(static_cast<uint32_t>(slot));
    pk.pack(key.referenced);
  }
  pk.pack(static_cast<uint64_t>(clock_hand_));
  pk.pack_array(2);
  pk.pack(static_cast<uint32_t>(keys_.size()));
  pk.pack(free_keys_);   // in order: CreateKey takes the last
  std::string windows;
  if (windows_ != nullptr) windows_->Pack(&windows);
  PackBin(pk, windows);
  pk.pack_array(static_cast<uint32_t>(revisions_.size()));
  for (const auto& [id, state] : revisions_) {
    pk.pack_array(5);
    pk.pack(std::get<0>(id));
    pk.pack(std::get<1>(id));
    PackBin(pk, std::get<2>(id));
    pk.pack(state.revision);
    pk.pack(state.held);
  }
  msgpack::sbuffer out;
  Packer outer(&out);
  outer.pack_array(5);
  outer.pack(std::string(kMagic));
  outer.pack(kFormatVersion);
  outer.pack(Fingerprint());
  const std::string_view body_bytes(body.data(), body.size());
  PackBin(outer, body_bytes);
  outer.pack(Fnv(body_bytes));
  return std::string(out.data(), out.size());
}

bool Matcher::Impl::Restore(std::string_view bytes, std::string* error) {
  if (counters_.events_pushed != 0) {
    *error = "restore needs a matcher that has seen no event";
    return false;
  }
  try {
    const msgpack::object_handle outer_handle = msgpack::unpack(bytes.data(), bytes.size());
    const auto& outer = Array(outer_handle.get(), 5, "not a Vigil matcher snapshot");
    if (Bin(outer.ptr[0]) != kMagic) throw Bad{"not a Vigil matcher snapshot"};
    if (UInt(outer.ptr[1]) != kFormatVersion)
      throw Bad{fmt::format("snapshot format {} (this build reads {})", UInt(outer.ptr[1]), kFormatVersion)};
    if (UInt(outer.ptr[2]) != Fingerprint()) throw Bad{"the snapshot was taken with other rules"};
    const std::string_view body_bytes = Bin(outer.ptr[3]);
    if (UInt(outer.ptr[4]) != Fnv(body_bytes)) throw Bad{"checksum mismatch: the snapshot is damaged"};
    const msgpack::object_handle body_handle = msgpack::unpack(body_bytes.data(), body_bytes.size());
    const auto& body = Array(body_handle.get(), 14, "bad snapshot body");
    const Program& p = *program_;

    // Check everything first.
    const auto& counters = Array(body.ptr[5], kCumulativeCounters + 1, "bad counters");
    const auto& per_rule = Array(counters.ptr[kCumulativeCounters], p.rules.size(), "bad per-rule counters");
    const auto& events = Array(body.ptr[6], 0, "bad events");
    const auto& reorder = Array(body.ptr[7], 0, "bad reorder buffer");
    const auto& nodes = Array(body.ptr[8], 0, "bad nodes");
    const auto& keys = Array(body.ptr[9], 0, "bad keys");
    absl::flat_hash_map<uint64_t, size_t> event_index;   // old handle -> index in `events`
    for (uint32_t i = 0; i < events.size; ++i) {
      const auto& e = Array(events.ptr[i], 5, "bad event");
      const std::string_view image = Bin(e.ptr[4]);
      if (image.size() < RecordView::kHeaderCells * sizeof(Cell) || image.size() % sizeof(Cell) != 0)
        throw Bad{"bad event image"};
      event_index[UInt(e.ptr[0])] = i;
    }
    uint32_t max_node = 0;
    for (uint32_t i = 0; i < nodes.size; ++i) {
      const auto& n = Array(nodes.ptr[i], 9, "bad node");
      if (!event_index.contains(UInt(n.ptr[1])) || UInt(n.ptr[7]) >= p.rules.size()) throw Bad{"bad node"};
      max_node = std::max(max_node, static_cast<uint32_t>(UInt(n.ptr[0])));
    }
    const auto& layout = Array(body.ptr[11], 2, "bad key slots");
    const uint64_t slot_count = UInt(layout.ptr[0]);
    const auto& free_slots = Array(layout.ptr[1], 0, "bad key slots");
    if (slot_count > uint64_t{1} << 32 || keys.size + free_slots.size != slot_count) throw Bad{"bad key slots"};
    std::vector<uint8_t> slot_used(static_cast<size_t>(slot_count), 0);
    auto claim = [&](uint64_t slot) {
      if (slot >= slot_count || slot_used[static_cast<size_t>(slot)]) throw Bad{"bad key slots"};
      slot_used[static_cast<size_t>(slot)] = 1;
    };
    for (uint32_t i = 0; i < free_slots.size; ++i) claim(UInt(free_slots.ptr[i]));
    if (UInt(body.ptr[10]) > slot_count) throw Bad{"bad key slots"};
    for (uint32_t i = 0; i < keys.size; ++i) {
      const auto& k = Array(keys.ptr[i], 6, "bad key");
      claim(UInt(k.ptr[4]));
      if (Int(k.ptr[1]) < 0 || static_cast<size_t>(Int(k.ptr[1])) >= specs_.size()) throw Bad{"bad key spec"};
      const auto& runs = Array(k.ptr[3], 0, "bad runs");
      for (uint32_t j = 0; j < runs.size; ++j) {
        const auto& r = Array(runs.ptr[j], 9, "bad run");
        if (Int(r.ptr[0]) < 0 || static_cast<size_t>(Int(r.ptr[0])) >= p.states.size() ||
            Int(r.ptr[1]) != p.states[static_cast<size_t>(Int(r.ptr[0]))].rule ||
            UInt(r.ptr[2]) > max_node)
          throw Bad{"bad run"};
      }
    }
    for (uint32_t i = 0; i < reorder.size; ++i)
      if (!event_index.contains(UInt(reorder.ptr[i]))) throw Bad{"bad reorder buffer"};
    const std::string_view window_bytes = Bin(body.ptr[12]);
    std::unique_ptr<WindowState> windows;
    if (windows_ != nullptr) {
      windows = windows_->EmptyLike();
      std::string why;
      if (!windows->Unpack(window_bytes, &why)) throw Bad{why};
    } else if (!window_bytes.empty()) {
      throw Bad{"bad window state"};
    }
    const auto& revisions = Array(body.ptr[13], 0, "bad window revisions");
    decltype(revisions_) revised;
    for (uint32_t i = 0; i < revisions.size; ++i) {
      const auto& r = Array(revisions.ptr[i], 5, "bad window revision");
      const int64_t threshold = Int(r.ptr[1]);
      if (windows_ == nullptr || threshold < 0 || static_cast<size_t>(threshold) >= windows_->thresholds().size() ||
          r.ptr[4].type != msgpack::type::BOOLEAN)
        throw Bad{"bad window revision"};
      revised[std::make_tuple(Int(r.ptr[0]), static_cast<int32_t>(threshold), std::string(Bin(r.ptr[2])))] =
          RevisionState{static_cast<int32_t>(Int(r.ptr[3])), r.ptr[4].via.boolean};
    }

    // Apply.
    if (windows != nullptr) windows_ = std::move(windows);
    revisions_ = std::move(revised);
    watermark_ = Int(body.ptr[0]);
    max_seen_ = Int(body.ptr[1]);
    next_seq_ = Int(body.ptr[2]);
    next_ord_ = UInt(body.ptr[3]);
    next_key_serial_ = UInt(body.ptr[4]);
    uint64_t* cumulative[kCumulativeCounters] = {
        &counters_.events_pushed, &counters_.events_processed, &counters_.events_late,
        &counters_.events_ignored, &counters_.matches, &counters_.timeouts, &counters_.runs_evicted,
        &counters_.runs_started, &counters_.keys_created, &counters_.runs_rejected,
        &counters_.keys_evicted, &counters_.keys_rejected, &counters_.watermark_forced,
        &counters_.watermark_forced_per_key, &counters_.events_rejected, &counters_.window_alerts,
        &counters_.window_keys_evicted, &counters_.window_keys_rejected, &counters_.distinct_sketches,
        &counters_.late_events_windowed, &counters_.window_revisions, &counters_.window_retractions};
    for (size_t i = 0; i < kCumulativeCounters; ++i) *cumulative[i] = UInt(counters.ptr[i]);
    if (windows_ != nullptr) windows_->set_counts(counters_.window_keys_evicted, counters_.window_keys_rejected);
    if (windows_ != nullptr) windows_->set_distinct_sketches(counters_.distinct_sketches);
    for (size_t r = 0; r < p.rules.size(); ++r) counters_.alerts_per_rule[r] = UInt(per_rule.ptr[r]);
    absl::flat_hash_map<uint64_t, EventStore::Handle> handle;   // old -> new
    std::vector<Cell> image;
    for (uint32_t i = 0; i < events.size; ++i) {
      const auto& e = events.ptr[i].via.array;
      const std::string_view bytes_of = Bin(e.ptr[4]);
      image.assign(bytes_of.size() / sizeof(Cell), Cell{});
      std::memcpy(image.data(), bytes_of.data(), bytes_of.size());
      const EventStore::Handle h = store_.Add(RecordView(image.data()), Int(e.ptr[1]));
      store_.set_ord(h, UInt(e.ptr[2]));
      store_.set_refs(h, static_cast<uint32_t>(UInt(e.ptr[3])));
      handle[UInt(e.ptr[0])] = h;
    }
    nodes_.assign(max_node + 1, Node{});
    std::vector<uint8_t> used(max_node + 1, 0);
    for (uint32_t i = 0; i < nodes.size; ++i) {
      const auto& n = nodes.ptr[i].via.array;
      const uint32_t id = static_cast<uint32_t>(UInt(n.ptr[0]));
      nodes_[id] = Node{handle[UInt(n.ptr[1])], static_cast<uint32_t>(UInt(n.ptr[2])),
                        static_cast<int16_t>(Int(n.ptr[3])), static_cast<int16_t>(Int(n.ptr[4])),
                        static_cast<uint32_t>(UInt(n.ptr[5])), static_cast<uint32_t>(UInt(n.ptr[6])),
                        static_cast<uint16_t>(UInt(n.ptr[7])), static_cast<uint8_t>(UInt(n.ptr[8]))};
      used[id] = 1;
    }
    free_nodes_.clear();
    for (uint32_t id = max_node; id >= 1; --id)
      if (!used[id]) free_nodes_.push_back(id);
    // Keys in their own slots, the free slots in their order: key creation and CLOCK eviction
    // go on exactly as they would have.
    keys_.assign(static_cast<size_t>(slot_count), KeyState{});
    free_keys_.clear();
    for (uint32_t i = 0; i < free_slots.size; ++i) free_keys_.push_back(static_cast<uint32_t>(UInt(free_slots.ptr[i])));
    clock_hand_ = static_cast<size_t>(UInt(body.ptr[10]));
    for (uint32_t i = 0; i < keys.size; ++i) {
      const auto& k = keys.ptr[i].via.array;
      key_bytes_.assign(Bin(k.ptr[0]));
      const uint32_t id = static_cast<uint32_t>(UInt(k.ptr[4]));
      free_keys_.push_back(id);   // CreateKey takes it from the back
      const uint32_t created = CreateKey(static_cast<int32_t>(Int(k.ptr[1])));
      --counters_.keys_created;   // CreateKey counted it; the restored counter already has it
      KeyState& key = keys_[created];
      key.serial = UInt(k.ptr[2]);
      key.referenced = k.ptr[5].type == msgpack::type::BOOLEAN && k.ptr[5].via.boolean;
      const auto& runs = k.ptr[3].via.array;
      for (uint32_t j = 0; j < runs.size; ++j) {
        const auto& r = runs.ptr[j].via.array;
        Run run;
        run.state = static_cast<int32_t>(Int(r.ptr[0]));
        run.node = static_cast<uint32_t>(UInt(r.ptr[2]));   // [1] rule, [3] last step: derived
        run.start_ord = UInt(r.ptr[4]);
        run.first_time = Int(r.ptr[5]);
        run.last_time = Int(r.ptr[6]);
        run.step_anchor = Int(r.ptr[7]);
        run.expiry = Int(r.ptr[8]);
        key.runs.push_back(run);
      }
      counters_.runs_live += key.runs.size();
      Schedule(id);
    }
    next_key_serial_ = UInt(body.ptr[4]);   // CreateKey drew serials; the keys have their own
    for (uint32_t i = 0; i < reorder.size; ++i) reorder_.Push(handle[UInt(reorder.ptr[i])]);
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
