// shadow-comparator: joins shadow.requests with shadow.results by request id
// and publishes every discrepancy. Options only; the logic is shadowpipe_comparator.
#include "comparator/service.hpp"
#include "shadowpipe/cli.hpp"
#include "shadowpipe/metrics.hpp"

#include <atomic>
#include <csignal>

namespace {
std::atomic<bool> stop_requested{false};
extern "C" void request_stop(int) { stop_requested.store(true); }
}  // namespace

int main(int argc, char** argv) {
  namespace cmp = shadowpipe::comparator;
  CLI::App app{"shadow-comparator: joins requests with shadow results and publishes every discrepancy",
               "shadow-comparator"};
  shadowpipe::cli::KafkaOptions kafka;
  shadowpipe::cli::add_kafka_options(app, kafka);
  cmp::Options options;
  int64_t window_ms = options.window.count();
  int64_t summary_ms = options.summary_interval.count();
  int64_t commit_ms = options.commit_interval.count();
  int64_t lookback_ms = 0;
  std::string metrics_port;
  app.add_option("--group", options.group, "Kafka consumer group")->capture_default_str();
  app.add_option("--comparator-id", options.comparator_id, "instance id in summaries and DLQ records (default host-pid)");
  app.add_option("--requests-topic", options.requests_topic)->capture_default_str();
  app.add_option("--results-topic", options.results_topic)->capture_default_str();
  app.add_option("--mismatches-topic", options.mismatches_topic)->capture_default_str();
  app.add_option("--summary-topic", options.summary_topic)->capture_default_str();
  app.add_option("--dlq-topic", options.dlq_topic)->capture_default_str();
  app.add_option("--window", window_ms, "ms without executor progress after which a partition whose requests wait is reported stalled (nothing is decided by it)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--summary-interval", summary_ms, "ms between summary records and latency evaluations")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--commit-interval", commit_ms, "ms between offset commits")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--dedup-lookback", lookback_ms,
                 "ms before now of published mismatches read back on assignment to avoid repeats (default: from window + 5 min before the first replayed request, at least 2 x window + 5 min)");
  app.add_option("--min-samples", options.min_samples, "samples per side before a fingerprint's latency is judged")
      ->capture_default_str();
  app.add_option("--latency-ratio", options.latency_ratio,
                 "latency_regression when shadow/primary p95 exceeds this times the median ratio")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--latency-min-difference", options.latency_min_difference_ms,
                 "ms the shadow p95 must also exceed the primary p95 by")
      ->capture_default_str();
  app.add_option("--latency-median-ratio", options.latency_median_factor,
                 "the shadow p50 must also be this many times the primary p50 (tail-only noise is not a "
                 "regression); 0 turns the check off")
      ->capture_default_str();
  app.add_option("--max-pending-bytes", options.max_pending_bytes,
                 "memory for pending entries; above it the partitions that run ahead are paused")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_flag("--include-params", options.include_params, "include raw statement parameters in mismatch records");
  app.add_option("--metrics-port", metrics_port, "serve /metrics on this port or host:port");
  app.add_option("--workers", options.workers,
                 "threads that decode, join and classify (a partition pair belongs to one); 1: all on the consumer's "
                 "thread; 0: min(2, hardware threads)")
      ->envname("SHADOWPIPE_COMPARATOR_WORKERS")
      ->capture_default_str();

  return shadowpipe::cli::run_main(app, argc, argv, [&] {
    options.kafka = kafka.to_properties();
    options.window = std::chrono::milliseconds(window_ms);
    options.summary_interval = std::chrono::milliseconds(summary_ms);
    options.commit_interval = std::chrono::milliseconds(commit_ms);
    options.dedup_lookback = std::chrono::milliseconds(lookback_ms);
    options.metrics_bind = shadowpipe::metrics::bind_address(metrics_port);
    std::signal(SIGTERM, request_stop);
    std::signal(SIGINT, request_stop);
    cmp::Comparator comparator(std::move(options));
    comparator.run(stop_requested);
    return 0;
  });
}
