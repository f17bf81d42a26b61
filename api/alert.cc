// Alert of the embedded API: a read-only view of the engine's vigil::Alert (runtime/matcher.h)
// during the alert callback, with names resolved through the program (rule, fields, variables,
// event types) and values as public Values.
#include <string>

#include <fmt/format.h>

#include "api/api_internal.h"

namespace vigil::api {
namespace {

const std::vector<EmitField>& Fields(const vigil::Alert& a) {
  return a.kind == vigil::AlertKind::kTimeout ? a.rule_info->timeout_emit : a.rule_info->emit;
}

}  // namespace

AlertKind Alert::kind() const {
  switch (data_->alert->kind) {
    case vigil::AlertKind::kTimeout: return AlertKind::kTimeout;
    case vigil::AlertKind::kWindow: return AlertKind::kWindow;
    default: return AlertKind::kMatch;
  }
}

std::string_view Alert::rule_name() const { return data_->alert->rule_info->name; }
int64_t Alert::rule_version() const { return data_->alert->rule_info->meta.version; }
std::string_view Alert::severity() const {
  return RuleSeverityName(data_->alert->rule_info->meta.severity);
}

std::string Alert::key() const { return ValueAccess::FromExpr(data_->alert->key_value).ToString(); }

int64_t Alert::detection_ms() const { return data_->alert->detection_ms; }
int64_t Alert::window_start_ms() const { return data_->alert->window_start_ms; }
int64_t Alert::window_end_ms() const { return data_->alert->window_end_ms; }
double Alert::distinct_rse() const { return data_->alert->distinct_rse; }
bool Alert::field_approximate(size_t i) const {
  return i < data_->alert->approximate_fields.size() && data_->alert->approximate_fields[i] != 0;
}
int Alert::revision() const { return data_->alert->revision; }
bool Alert::retracted() const { return data_->alert->retracted; }
size_t Alert::group_count() const { return data_->alert->group.size(); }
std::string_view Alert::group_name(size_t i) const {
  const std::vector<std::string>& names = data_->alert->rule_info->group_fields;
  return i < data_->alert->group.size() && i < names.size() ? std::string_view(names[i]) : "";
}
Value Alert::group(size_t i) const {
  if (i >= data_->alert->group.size()) return Value();
  return ValueAccess::FromExpr(data_->alert->group[i]);
}
std::string Alert::match_id() const { return fmt::format("{:016x}", data_->alert->match_id); }
uint64_t Alert::match_id_value() const { return data_->alert->match_id; }

size_t Alert::field_count() const { return data_->alert->fields.size(); }

std::string_view Alert::field_name(size_t i) const {
  const std::vector<EmitField>& fields = Fields(*data_->alert);
  return i < fields.size() ? std::string_view(fields[i].name) : "";
}

Value Alert::field(size_t i) const {
  if (i >= data_->alert->fields.size()) return Value();
  return ValueAccess::FromExpr(data_->alert->fields[i]);
}

int Alert::field_index(std::string_view name) const {
  const std::vector<EmitField>& fields = Fields(*data_->alert);
  for (size_t i = 0; i < fields.size() && i < data_->alert->fields.size(); ++i)
    if (fields[i].name == name) return static_cast<int>(i);
  return -1;
}

Value Alert::field(std::string_view name) const {
  const int i = field_index(name);
  return i < 0 ? Value() : field(static_cast<size_t>(i));
}

std::string Alert::message() const {
  return std::string(data_->writer->RenderMessage(*data_->alert));
}

size_t Alert::event_count() const { return data_->alert->events.size(); }

int64_t Alert::event_time_ms(size_t i) const {
  return i < event_count() ? data_->alert->events[i].time_ms : 0;
}

int64_t Alert::event_seq(size_t i) const {
  return i < event_count() ? data_->alert->events[i].seq : -1;
}

std::string_view Alert::event_variable(size_t i) const {
  if (i >= event_count()) return "";
  const int var = data_->alert->events[i].variable;
  const std::vector<PatternVariable>& vars = data_->alert->rule_info->pattern.variables;
  return var >= 0 && static_cast<size_t>(var) < vars.size() ? std::string_view(vars[var].name) : "";
}

std::string_view Alert::event_type(size_t i) const {
  if (i >= event_count()) return "";
  return data_->program->schema().types[static_cast<size_t>(data_->alert->events[i].record.type_id())].name;
}

Value Alert::event_field(size_t i, std::string_view field) const {
  if (i >= event_count()) return Value();
  const RecordView record = data_->alert->events[i].record;
  const EventType& type = data_->program->schema().types[static_cast<size_t>(record.type_id())];
  const int slot = type.FieldIndex(field);
  if (slot < 0) return Value();
  return ValueAccess::FromField(record, slot, type.fields[static_cast<size_t>(slot)].type);
}

}  // namespace vigil::api
