// The daemon's metric families (serve_metrics.h).
#include "adapters/serve_metrics.h"

namespace vigil {
namespace {

prometheus::Counter& Counter(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Gauge& Gauge(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

}  // namespace

ServeMetrics::ServeMetrics(std::shared_ptr<prometheus::Registry> r)
    : registry(std::move(r)),
      messages(prometheus::BuildCounter()
                   .Name("vigil_source_messages_total")
                   .Help("Messages read, per source and partition")
                   .Register(*registry)),
      watermark_lag(prometheus::BuildGauge()
                        .Name("vigil_watermark_lag_seconds")
                        .Help("Wall clock minus the partition's watermark (event time behind now)")
                        .Register(*registry)),
      alerts(prometheus::BuildCounter()
                 .Name("vigil_alerts_total")
                 .Help("Alerts handed to the sinks, per rule (after suppress)")
                 .Register(*registry)),
      partial_matches(prometheus::BuildGauge()
                          .Name("vigil_partial_matches")
                          .Help("Partial matches held, per shard (as of the last checkpoint)")
                          .Register(*registry)),
      keys(prometheus::BuildGauge()
               .Name("vigil_keys")
               .Help("Keys with state, per shard (as of the last checkpoint)")
               .Register(*registry)),
      state_bytes(prometheus::BuildGauge()
                      .Name("vigil_state_bytes")
                      .Help("Size of the shard's last snapshot")
                      .Register(*registry)),
      queue_depth(prometheus::BuildGauge()
                      .Name("vigil_shard_queue_depth")
                      .Help("Event batches waiting in the shard's input queue")
                      .Register(*registry)),
      reloads(prometheus::BuildCounter()
                  .Name("vigil_rule_reloads_total")
                  .Help("Rule reloads: applied, rejected (the new rules have errors; the old ones "
                        "keep running) or failed")
                  .Register(*registry)),
      events(Counter(*registry, "vigil_events_total", "Events decoded")),
      dead_letters(Counter(*registry, "vigil_dead_letters_total", "Messages that could not be decoded (dead letters)")),
      late(Counter(*registry, "vigil_late_events_total", "Events at or below the watermark on arrival")),
      ignored(Counter(*registry, "vigil_events_ignored_total", "Events of types no rule reads")),
      backpressure_seconds(Counter(*registry, "vigil_backpressure_seconds_total",
                                   "Time the router waited for a full shard queue")),
      output_queue_depth(Gauge(*registry, "vigil_output_queue_depth", "Alerts and other lines waiting for the sinks")),
      checkpoints(Counter(*registry, "vigil_checkpoints_total", "Checkpoints written")),
      checkpoint_failures(Counter(*registry, "vigil_checkpoint_failures_total", "Checkpoints not written")),
      checkpoint_pause_seconds(Gauge(*registry, "vigil_checkpoint_pause_seconds",
                                     "The last checkpoint's pause of the router (barrier and snapshots)")),
      checkpoint_prepare_seconds(Gauge(*registry, "vigil_checkpoint_prepare_seconds",
                                       "The last checkpoint's wait for its copy buffers and rehearsal (events flow meanwhile)")),
      checkpoint_write_seconds(Gauge(*registry, "vigil_checkpoint_write_seconds",
                                     "The last checkpoint's sink flush and file write")),
      checkpoint_bytes(Gauge(*registry, "vigil_checkpoint_bytes", "The last checkpoint file's size")),
      checkpoint_age_seconds(Gauge(*registry, "vigil_checkpoint_age_seconds",
                                   "Time since the last checkpoint became durable")),
      watermark_seconds(Gauge(*registry, "vigil_watermark_seconds", "The input's watermark (event time)")),
      alert_latency(prometheus::BuildHistogram()
                        .Name("vigil_alert_latency_seconds")
                        .Help("From reading an alert's last event to handing the alert to the sinks")
                        .Register(*registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{
                                     0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5, 1, 2.5, 5, 10, 30})) {}

}  // namespace vigil
