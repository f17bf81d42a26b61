// EventBuilder of the embedded API: typed events by field name. It drives the decoders' own
// RecordWriter (adapters/record_writer.h) with values instead of wire tokens, so a built event
// follows exactly the type rules and messages of JSON / msgpack input; what only a builder can
// get wrong (an unknown field name, a setter of the wrong kind) is checked here first.
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "api/api_internal.h"

namespace vigil::api {
namespace {

std::string Suggest(std::string_view name, const std::vector<std::string>& candidates) {
  const std::string hint = ClosestName(name, candidates);
  return hint.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", hint);
}

}  // namespace

EventBuilder::EventBuilder(std::shared_ptr<const Rules> rules) {
  if (rules == nullptr) {
    status_ = Status(StatusCode::kInvalidArgument, "EventBuilder: rules is null");
    return;
  }
  impl_ = std::make_unique<Impl>(std::move(rules), DecoderOptions{});
}

EventBuilder::~EventBuilder() = default;

EventBuilder& EventBuilder::Start(std::string_view event_type) {
  if (impl_ == nullptr) return *this;   // no rules: the constructor's error stays
  status_ = Status();
  impl_->type = nullptr;
  impl_->finished = false;
  const Schema& schema = impl_->rules->impl().schema();
  if (schema.TypeIndex(event_type) < 0) {
    std::vector<std::string> names;
    for (const EventType& t : schema.types) names.push_back(t.name);
    status_ = Status(StatusCode::kInvalidArgument,
                     fmt::format("unknown event type '{}'{}", EscapeForMessage(event_type),
                                 Suggest(event_type, names)));
    return *this;
  }
  impl_->writer.Reset();
  impl_->writer.BeginType(event_type, impl_->record);
  impl_->type = &schema.types[static_cast<size_t>(schema.TypeIndex(event_type))];
  return *this;
}

// The slot of `field` for a setter, or -1 with status_ set. `want`: the scalar type a typed
// setter (SetTimestamp, SetDuration) requires, if any.
static int FindSlot(EventBuilder::Impl& impl, Status& status, std::string_view field,
                    const ScalarType* want = nullptr) {
  if (!status.ok()) return -1;
  if (impl.type == nullptr) {
    status = Status(StatusCode::kInvalidArgument, "EventBuilder: Set before Start");
    return -1;
  }
  if (impl.finished) {
    status = Status(StatusCode::kInvalidArgument,
                    fmt::format("{}: Set after Finish (call Start for a new event)", impl.type->name));
    return -1;
  }
  const int declared = impl.type->FieldIndex(field);
  if (declared < 0) {
    std::vector<std::string> names;
    for (const FieldDef& f : impl.type->fields) names.push_back(f.name);
    status = Status(StatusCode::kInvalidArgument,
                    fmt::format("{}: unknown field '{}'{}", impl.type->name,
                                EscapeForMessage(field), Suggest(field, names)));
    return -1;
  }
  const vigil::ValueType type = impl.type->fields[static_cast<size_t>(declared)].type;
  if (want != nullptr && !type.is(*want)) {
    status = Status(StatusCode::kInvalidArgument,
                    fmt::format("{}: field '{}' is {}, not {}", impl.type->name, field,
                                TypeName(type), ScalarTypeName(*want)));
    return -1;
  }
  const int slot = impl.writer.Slot(field);   // marks it seen; kFailed: set twice
  if (slot < 0) {
    status = Status(StatusCode::kInvalidArgument, impl.writer.status().message);
    return -1;
  }
  return slot;
}

// Stores one scalar wire value into `slot` (a list field reports the wrong kind).
static void StoreValue(EventBuilder::Impl& impl, Status& status, int slot, const WireValue& v) {
  if (slot < 0) return;
  if (!impl.writer.Store(slot, v))
    status = Status(StatusCode::kInvalidArgument, impl.writer.status().message);
}

EventBuilder& EventBuilder::Set(std::string_view field, std::string_view value) {
  if (impl_) StoreValue(*impl_, status_, FindSlot(*impl_, status_, field), WireValue::String(value));
  return *this;
}

EventBuilder& EventBuilder::Set(std::string_view field, int64_t value) {
  if (impl_) StoreValue(*impl_, status_, FindSlot(*impl_, status_, field), WireValue::Int(value));
  return *this;
}

EventBuilder& EventBuilder::Set(std::string_view field, double value) {
  if (impl_) StoreValue(*impl_, status_, FindSlot(*impl_, status_, field), WireValue::Float(value));
  return *this;
}

EventBuilder& EventBuilder::Set(std::string_view field, bool value) {
  if (impl_) StoreValue(*impl_, status_, FindSlot(*impl_, status_, field), WireValue::Bool(value));
  return *this;
}

EventBuilder& EventBuilder::SetTimestamp(std::string_view field, int64_t millis_since_epoch) {
  static constexpr ScalarType kWant = ScalarType::kTimestamp;
  if (impl_) {
    StoreValue(*impl_, status_, FindSlot(*impl_, status_, field, &kWant),
               WireValue::Int(millis_since_epoch));
  }
  return *this;
}

EventBuilder& EventBuilder::SetDuration(std::string_view field, int64_t millis) {
  static constexpr ScalarType kWant = ScalarType::kDuration;
  if (impl_) {
    StoreValue(*impl_, status_, FindSlot(*impl_, status_, field, &kWant), WireValue::Int(millis));
  }
  return *this;
}

// A list setter: elements through the writer's list protocol; a scalar field reports "got list".
template <typename T, typename ToWire>
static void StoreList(EventBuilder::Impl& impl, Status& status, std::string_view field,
                      std::span<const T> values, ToWire to_wire) {
  const int slot = FindSlot(impl, status, field);
  if (slot < 0) return;
  if (!impl.writer.is_list(slot)) {
    StoreValue(impl, status, slot, WireValue::Of(WireValue::Kind::kList));
    return;
  }
  impl.writer.BeginList();
  for (const T& v : values) {
    if (!impl.writer.AddElement(slot, to_wire(v))) {
      status = Status(StatusCode::kInvalidArgument, impl.writer.status().message);
      return;
    }
  }
  impl.writer.EndList(slot);
}

EventBuilder& EventBuilder::SetList(std::string_view field,
                                    std::span<const std::string_view> values) {
  if (impl_) StoreList(*impl_, status_, field, values, [](std::string_view v) { return WireValue::String(v); });
  return *this;
}

EventBuilder& EventBuilder::SetList(std::string_view field, std::span<const int64_t> values) {
  if (impl_) StoreList(*impl_, status_, field, values, [](int64_t v) { return WireValue::Int(v); });
  return *this;
}

EventBuilder& EventBuilder::SetList(std::string_view field, std::span<const double> values) {
  if (impl_) StoreList(*impl_, status_, field, values, [](double v) { return WireValue::Float(v); });
  return *this;
}

Status EventBuilder::Finish() {
  if (!status_.ok()) return status_;
  if (impl_->type == nullptr) {
    status_ = Status(StatusCode::kInvalidArgument, "EventBuilder: Finish before Start");
    return status_;
  }
  if (impl_->finished) return status_;
  if (!impl_->writer.Finish()) {
    status_ = Status(StatusCode::kInvalidArgument, impl_->writer.status().message);
    return status_;
  }
  impl_->finished = true;
  return status_;
}

}  // namespace vigil::api
