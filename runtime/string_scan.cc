// StringScanner: one hs_scan per indexed string field of an event (nfa/string_index.h explains
// the patterns, runtime/string_scan.h the interface).
//
// First every covered predicate of the event's type gets its no-match value (false, or true for
// a negated test, or the constant) with one memcpy of StringIndex::defaults_by_type; then, per
// field, each pattern Hyperscan reports (at most once, SINGLEMATCH) applies its settings. The settings of a predicate's patterns all carry
// the same value, so the order of reports does not matter.
#include "runtime/string_scan.h"

#include <hs.h>

#include <cstring>

namespace vigil {

namespace {

struct MatchContext {
  const StringFieldIndex* field;
  PredicateValues* out;
};

int OnMatch(unsigned id, unsigned long long /*from*/, unsigned long long /*to*/,
            unsigned /*flags*/, void* context) {
  const MatchContext& c = *static_cast<const MatchContext*>(context);
  const StringFieldIndex& f = *c.field;
  for (uint32_t k = f.target_begin[id]; k < f.target_begin[id + 1]; ++k) {
    c.out->Set(f.targets[k].predicate, f.targets[k].value);
  }
  return 0;   // continue: other patterns may decide other predicates
}

}  // namespace

StringScanner::StringScanner(const StringIndex& index) { ok_ = Prepare(index); }

StringScanner::~StringScanner() {
  if (scratch_ != nullptr) hs_free_scratch(scratch_);
}

bool StringScanner::Prepare(const StringIndex& index) {
  for (const StringFieldIndex& f : index.fields) {
    if (f.db != nullptr && hs_alloc_scratch(f.db.get(), &scratch_) != HS_SUCCESS) return false;
  }
  return true;
}

void StringScanner::Scan(const StringIndex& index, RecordView event, PredicateValues& out) {
  const int type = event.type_id();
  if (type < 0 || static_cast<size_t>(type) >= index.fields_by_type.size()) return;
  const TypeDefaults& defaults = index.defaults_by_type[static_cast<size_t>(type)];
  if (defaults.values.empty()) return;
  std::memcpy(out.values().data() + defaults.first, defaults.values.data(),
              defaults.values.size());
  for (int32_t f : index.fields_by_type[static_cast<size_t>(type)]) {
    ScanField(index.fields[static_cast<size_t>(f)], event, out);
  }
}

bool StringScanner::ScanOnce(const StringFieldIndex& field, std::string_view text,
                             PredicateValues& out) {
  MatchContext context{&field, &out};
  const char* data = text.empty() ? "" : text.data();
  const hs_error_t rc = hs_scan(field.db.get(), data, static_cast<unsigned>(text.size()), 0,
                                scratch_, OnMatch, &context);
  return rc == HS_SUCCESS;
}

void StringScanner::ScanField(const StringFieldIndex& field, RecordView event,
                              PredicateValues& out) {
  if (field.db == nullptr) return;   // constants only: the defaults are the values
  const std::string_view text = event.GetString(field.slot);
  if (ScanOnce(field, text, out)) return;
  // Scratch missing or too small (Prepare was not called for this index): size it once. A
  // failed scan may have applied some matches: restore the defaults first.
  bool ok = hs_alloc_scratch(field.db.get(), &scratch_) == HS_SUCCESS;
  if (ok) {
    for (const PredicateSetting& d : field.defaults) out.Set(d.predicate, d.value);
    ok = ScanOnce(field, text, out);
  }
  if (!ok) {
    for (const PredicateSetting& d : field.defaults) {
      out.values()[static_cast<size_t>(d.predicate)] = PredicateTruth::kUndecided;
    }
  }
}

}  // namespace vigil
