// What the files of api/ share behind the public header include/vigil/vigil.h: the pimpl
// structs of Rules, EventBuilder and Alert, and the conversions from the engine's values to the
// public Value. Nothing outside api/ includes this file.
#pragma once

#include <memory>
#include <string>

#include "adapters/alert_writer.h"
#include "adapters/decoder.h"
#include "adapters/record_writer.h"
#include "grammar/schema.h"
#include "nfa/program.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"
#include "runtime/matcher.h"
#include "vigil/vigil.h"

namespace vigil::api {

struct Rules::Impl {
  std::shared_ptr<const Program> program;
  const Schema& schema() const { return program->schema(); }
};

struct EventBuilder::Impl {
  Impl(std::shared_ptr<const Rules> r, const DecoderOptions& options)
      : rules(std::move(r)), writer(rules->impl().schema(), options, /*validate_utf8=*/true) {}
  std::shared_ptr<const Rules> rules;
  RecordWriter writer;
  RecordBuilder record;
  const EventType* type = nullptr;   // null: no Start() yet
  bool finished = false;
};

struct Alert::Data {
  const vigil::Alert* alert = nullptr;
  const Program* program = nullptr;
  AlertWriter* writer = nullptr;   // renders the message exactly as `vigil run` writes it
};

// Builds public Values from the engine's (friend of Value).
struct ValueAccess {
  // An expression result (emit field, key). Views into `v`'s strings / list.
  static Value FromExpr(const ExprValue& v);
  // Field `slot` of `record`, whose declared type is `type`.
  static Value FromField(RecordView record, int slot, vigil::ValueType type);
  // A scalar of `type` from a record cell; strings point into `image`.
  static Value FromCell(ValueType type, const Cell& cell, const char* image);
};

// The public form of a decoder / builder message.
Status DecodeError(const DecodeStatus& status);

}  // namespace vigil::api
