// The expression interpreter: runs an ExprProgram (nfa/expr_program.h, which explains the
// instructions and the "no value" rules) over one event, the events bound to the pattern
// variables so far, and the match's key. Entry points: ExprEvaluator::Eval / EvalPredicate.
//
// Three lifetimes (docs/style.md item 3): the ExprProgram is immutable and shared; the events and
// the key are passed in per call (EvalInput, filled by the matcher from its per-key state without
// allocating); the ExprEvaluator is per-thread scratch — the value stack, the Hyperscan scratch
// and the buffer lower()/upper() write into. After Prepare() has seen every program a thread
// runs, Eval allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "nfa/expr_program.h"
#include "runtime/event.h"

struct hs_scratch;

namespace vigil {

// A typed value: an expression's result, or the match's key. `type.kind == kNull` or
// !has_value: no value (see expr_program.h). int, timestamp, duration: `i`; bool: `i` (0/1);
// float: `f`; string: `s`; list: `list`. Strings and lists point into the records, the program's
// constants, the key the caller passed, or the evaluator's scratch: valid until the next Eval on
// the same evaluator and as long as those live.
struct ExprValue {
  ValueType type;
  bool has_value = false;
  int64_t i = 0;
  double f = 0;
  std::string_view s;
  ListView list;

  static ExprValue NoValue() { return ExprValue{}; }
  static ExprValue Int(int64_t v, ScalarType t = ScalarType::kInt);
  static ExprValue Float(double v);
  static ExprValue Bool(bool v);
  static ExprValue String(std::string_view v);
};

// The events of one pattern variable bound so far, in match order: one for a single-event
// variable, zero or more for a loop variable (inside the loop's own condition: the events taken
// before the one under test). Empty when the variable is not bound.
using VarEvents = std::span<const RecordView>;

// Where windowed aggregates and ewma (kWindow) get their values: the engine's per-key window
// state, or a test's reference. Read is called during Eval with the term to compute; it knows the
// key and the instant (set up by its owner before the Eval). Strings in the result must stay
// valid until the Eval returns. It may not call Eval on the same evaluator.
class WindowReader {
 public:
  virtual ExprValue Read(const ExprProgram::WindowTerm& term) = 0;

 protected:
  ~WindowReader() = default;
};

// What an expression reads. Nothing is copied; everything must outlive the Eval call.
struct EvalInput {
  RecordView event;                   // the event under test (invalid view: none, e.g. emit)
  std::span<const VarEvents> vars;    // indexed by pattern variable
  ExprValue key;                      // the match's key (for `key` in emit)
  WindowReader* windows = nullptr;    // kWindow (null: every window term has no value)
};

// Great-circle distance in km between two (latitude, longitude) points in degrees (haversine,
// mean Earth radius 6371.0088 km). The function distance_km.
double GreatCircleKm(double lat1, double lon1, double lat2, double lon2);

// Per-thread evaluation scratch. Not thread safe; one per thread, used for any number of
// programs.
class ExprEvaluator {
 public:
  ExprEvaluator();
  ~ExprEvaluator();
  ExprEvaluator(const ExprEvaluator&) = delete;
  ExprEvaluator& operator=(const ExprEvaluator&) = delete;

  // Sizes the scratch for `program` (stack, Hyperscan scratch for its regexes). Allocates; call
  // for each program at setup. Eval also grows the scratch on first use if Prepare was skipped.
  // Returns false if Hyperscan cannot allocate scratch.
  bool Prepare(const ExprProgram& program);

  // Evaluates `program`. The result's strings may point into this evaluator's scratch (valid
  // until the next Eval).
  ExprValue Eval(const ExprProgram& program, const EvalInput& input);
  // A condition: true only if the value is a bool true (no value is false).
  bool EvalPredicate(const ExprProgram& program, const EvalInput& input);

 private:
  struct Slot;
  // Bump buffer for lower()/upper() results: blocks are kept across evaluations and never move,
  // so earlier results stay valid while later ones are written.
  class TextScratch {
   public:
    char* Allocate(size_t n);
    void Reset() {
      block_ = 0;
      used_ = 0;
    }

   private:
    struct Block {
      std::unique_ptr<char[]> bytes;
      size_t size = 0;
    };
    std::vector<Block> blocks_;
    size_t block_ = 0;
    size_t used_ = 0;
  };

  // Runs the code; leaves the result in stack_[0].
  void Run(const ExprProgram& program, const EvalInput& input);
  bool Matches(const ExprProgram& program, int regex, std::string_view text);

  std::unique_ptr<Slot[]> stack_;
  size_t stack_size_ = 0;
  hs_scratch* scratch_ = nullptr;
  TextScratch text_;
};

}  // namespace vigil
