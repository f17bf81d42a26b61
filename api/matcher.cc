// Matcher of the embedded API: the facade over the engine's vigil::Matcher (runtime/matcher.h).
// It owns the decoders for JSON / msgpack input and a record builder they decode into, turns
// the engine's alerts into public Alert views for the user's callback, and is where exceptions
// stop: whatever throws inside (a callback, an allocation) is caught here and becomes a
// kInternal Status, after which the matcher refuses further work (its state may be half-updated).
#include <exception>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "adapters/json_decoder.h"
#include "adapters/msgpack_decoder.h"
#include "api/api_internal.h"

namespace vigil::api {

struct Matcher::Impl {
  std::shared_ptr<const Rules> rules;
  AlertCallback on_alert;
  DecoderOptions decoder_options;
  std::unique_ptr<vigil::Matcher> engine;
  std::unique_ptr<AlertWriter> writer;       // message rendering, shared with `vigil run`
  std::unique_ptr<JsonDecoder> json;         // made on first use
  std::unique_ptr<MsgpackDecoder> msgpack;   // made on first use
  RecordBuilder decoded;
  uint64_t events_invalid = 0;
  size_t engine_max_per_key = 0;             // MatcherOptions::max_buffered_events_per_key
  std::string broken;                        // non-empty: an exception escaped; refuse work
  bool busy = false;                         // inside a call: the callback must not re-enter

  // Runs `body` unless broken; turns an exception into kInternal and breaks the matcher.
  template <typename F>
  Status Guard(F&& body) {
    if (!broken.empty()) {
      return Status(StatusCode::kInternal, "matcher unusable after an earlier failure: " + broken);
    }
    if (busy) {
      return Status(StatusCode::kInvalidArgument,
                    "a Matcher must not be called from its own alert callback");
    }
    struct Busy {
      bool& flag;
      explicit Busy(bool& f) : flag(f) { flag = true; }
      ~Busy() { flag = false; }
    } busy_scope(busy);
    try {
      return body();
    } catch (const std::exception& e) {
      broken = e.what();
    } catch (...) {
      broken = "unknown exception";
    }
    if (broken.empty()) broken = "exception";
    return Status(StatusCode::kInternal, "exception inside the matcher (from the alert callback?): " + broken);
  }

  Status PushRecord(RecordView record) {
    const uint64_t rejected = engine->counters().events_rejected;
    if (engine->Push(record)) return Status();
    if (engine->counters().events_rejected != rejected) {   // not late: its key's buffer is full
      return Status(StatusCode::kRejectedEvent,
                    fmt::format("{} at {} ms: its key already has {} events waiting for the "
                                "watermark (max_buffered_events_per_key): rejected, not matched",
                                rules->impl().schema().types[static_cast<size_t>(record.type_id())].name,
                                record.event_time(), engine_max_per_key));
    }
    return Status(StatusCode::kLateEvent,
                  fmt::format("{} at {} ms is not after the watermark {} ms: late, not matched",
                              rules->impl().schema().types[static_cast<size_t>(record.type_id())].name,
                              record.event_time(), engine->watermark()));
  }

  Status Decoded(const DecodeStatus& status) {
    if (status.is_watermark()) {   // a punctuation (adapters/decoder.h): never lowers W
      engine->AdvanceWatermark(status.watermark_ms);
      return Status();
    }
    if (!status.ok()) {
      ++events_invalid;
      return DecodeError(status);
    }
    return PushRecord(decoded.record());
  }
};

Matcher::Matcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Matcher::~Matcher() = default;

Status Matcher::Create(std::shared_ptr<const Rules> rules, MatcherOptions options,
                       AlertCallback on_alert, std::unique_ptr<Matcher>* out) {
  if (rules == nullptr) return Status(StatusCode::kInvalidArgument, "Matcher::Create: rules is null");
  if (out == nullptr) return Status(StatusCode::kInvalidArgument, "Matcher::Create: out is null");
  try {
    auto impl = std::make_unique<Impl>();
    impl->rules = std::move(rules);
    impl->on_alert = std::move(on_alert);
    impl->decoder_options.discriminator = std::move(options.discriminator);
    MatcherCallbacks callbacks;
    Impl* self = impl.get();
    callbacks.on_alert = [self](const vigil::Alert& alert) {
      if (!self->on_alert) return;
      Alert::Data data{&alert, self->rules->impl().program.get(), self->writer.get()};
      self->on_alert(Alert(&data));
    };
    vigil::MatcherOptions engine_options;
    engine_options.bounded_out_of_orderness_ms = options.bounded_out_of_orderness_ms;
    engine_options.max_partial_matches = options.max_partial_matches;
    engine_options.on_partial_limit = options.reject_new_partial_matches
                                          ? vigil::MatcherOptions::OnPartialLimit::kRejectNew
                                          : vigil::MatcherOptions::OnPartialLimit::kDropOldest;
    engine_options.max_keys = options.max_keys;
    engine_options.on_key_limit = options.reject_new_keys ? vigil::MatcherOptions::OnKeyLimit::kRejectNew
                                                          : vigil::MatcherOptions::OnKeyLimit::kEvictIdle;
    engine_options.max_buffered_events = options.max_buffered_events;
    engine_options.max_buffered_events_per_key = options.max_buffered_events_per_key;
    engine_options.on_key_buffer_limit = options.reject_new_buffered_events
                                             ? vigil::MatcherOptions::OnKeyBufferLimit::kRejectNew
                                             : vigil::MatcherOptions::OnKeyBufferLimit::kForceWatermark;
    engine_options.distinct_exact_limit = options.distinct_exact_limit;
    impl->engine_max_per_key = options.max_buffered_events_per_key;
    impl->writer = std::make_unique<AlertWriter>(*self->rules->impl().program->checked);
    impl->engine = std::make_unique<vigil::Matcher>(self->rules->impl().program, engine_options,
                                                    std::move(callbacks));
    out->reset(new Matcher(std::move(impl)));
    return Status();
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, fmt::format("creating the matcher: {}", e.what()));
  }
}

Status Matcher::Push(EventBuilder& builder) {
  return impl_->Guard([&] {
    // Type ids are indexes into one schema: a builder of other Rules would mislabel events.
    if (builder.impl_ != nullptr && builder.impl_->rules != impl_->rules) {
      return Status(StatusCode::kInvalidArgument, "EventBuilder made for other Rules than the matcher's");
    }
    Status status = builder.Finish();
    if (!status.ok()) {
      ++impl_->events_invalid;
      return status;
    }
    return impl_->PushRecord(builder.impl_->record.record());
  });
}

Status Matcher::PushJson(std::string_view bytes) {
  return impl_->Guard([&] {
    if (!impl_->json)
      impl_->json = std::make_unique<JsonDecoder>(impl_->rules->impl().schema(), impl_->decoder_options);
    return impl_->Decoded(impl_->json->Decode(bytes, impl_->decoded));
  });
}

Status Matcher::PushMsgpack(std::string_view bytes) {
  return impl_->Guard([&] {
    if (!impl_->msgpack) {
      impl_->msgpack =
          std::make_unique<MsgpackDecoder>(impl_->rules->impl().schema(), impl_->decoder_options);
    }
    return impl_->Decoded(impl_->msgpack->Decode(bytes, impl_->decoded));
  });
}

Status Matcher::AdvanceWatermark(int64_t millis) {
  return impl_->Guard([&] {
    impl_->engine->AdvanceWatermark(millis);
    return Status();
  });
}

Status Matcher::Finish() {
  return impl_->Guard([&] {
    impl_->engine->Finish();
    return Status();
  });
}

int64_t Matcher::watermark() const { return impl_->engine->watermark(); }

MatcherStats Matcher::stats() const {
  const MatcherCounters& c = impl_->engine->counters();
  MatcherStats s;
  s.events_pushed = c.events_pushed;
  s.events_processed = c.events_processed;
  s.events_late = c.events_late;
  s.events_invalid = impl_->events_invalid;
  s.matches = c.matches;
  s.timeouts = c.timeouts;
  s.partial_matches_evicted = c.runs_evicted;
  s.partial_matches_rejected = c.runs_rejected;
  s.partial_matches_live = c.runs_live;
  s.keys_live = c.keys_live;
  s.keys_evicted = c.keys_evicted;
  s.keys_rejected = c.keys_rejected;
  s.watermark_forced = c.watermark_forced;
  s.watermark_forced_per_key = c.watermark_forced_per_key;
  s.events_rejected = c.events_rejected;
  s.events_buffered = c.events_buffered;
  s.distinct_sketches = c.distinct_sketches;
  return s;
}

Status Matcher::Snapshot(std::string* out) {
  if (out == nullptr) return Status(StatusCode::kInvalidArgument, "Matcher::Snapshot: out is null");
  return impl_->Guard([&] {
    *out = impl_->engine->Snapshot();
    return Status();
  });
}

Status Matcher::Restore(std::string_view snapshot) {
  return impl_->Guard([&] {
    std::string error;
    if (!impl_->engine->Restore(snapshot, &error))
      return Status(StatusCode::kInvalidArgument, "Matcher::Restore: " + error);
    return Status();
  });
}

}  // namespace vigil::api
