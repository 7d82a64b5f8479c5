// shadow-executor: options in, Executor::run out (the logic is in shadowpipe_executor).
#include "shadow_executor/executor.hpp"

#include "shadowpipe/cli.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/preflight.hpp"

#include <csignal>

namespace {
std::atomic<bool> stop_requested{false};
extern "C" void request_stop(int) { stop_requested.store(true); }
}  // namespace

int main(int argc, char** argv) {
  using namespace shadowpipe;
  CLI::App app{"shadow-executor: replays shadow.requests on the shadow database, in order, exactly once",
               "shadow-executor"};
  cli::KafkaOptions kafka;
  cli::add_kafka_options(app, kafka);
  executor::Options options;
  std::string writes = "apply";
  std::string normalization_file;
  std::string metrics_port;
  int shutdown_deadline_ms = static_cast<int>(options.shutdown_deadline.count());
  app.add_option("--shadow", options.shadow_dsn, "libpq DSN of the shadow database")->envname("SHADOW_DSN")->required();
  app.add_option(std::string(preflight::kOverrideFlag), options.allow_outside_reach,
                 "accept this object of the shadow that can reach outside it (a foreign table, a trigger calling "
                 "pg_notify...), named exactly as the start-up refusal lists it, e.g. 'trigger orders_notify on "
                 "public.orders'; repeatable. Without it the executor refuses such a shadow")
      ->allow_extra_args(false);
  app.add_option("--group", options.group, "Kafka consumer group")->capture_default_str();
  app.add_option("--executor-id", options.executor_id, "id in result records (default hostname-pid)");
  app.add_option("--requests-topic", options.requests_topic)->capture_default_str();
  app.add_option("--results-topic", options.results_topic)->capture_default_str();
  app.add_option("--dlq-topic", options.dlq_topic)->capture_default_str();
  app.add_option("--writes", writes, "apply: keep the shadow in step; rollback: run and roll back; skip: reads only")
      ->check(CLI::IsMember({"apply", "rollback", "skip"}))
      ->capture_default_str();
  app.add_option("--statement-timeout", options.statement_timeout_ms,
                 "ms; a statement over it is a shadow error 57014 (0: the server's setting)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--normalization", normalization_file, "JSON normalization rules (the producer's file)")
      ->check(CLI::ExistingFile);
  app.add_option("--metrics-port", metrics_port, "serve /metrics on this port or host:port");
  app.add_option("--plans-per-minute", options.plans_per_minute, "EXPLAIN captures per minute, all partitions")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--plan-latency-factor", options.plan_latency_factor,
                 "capture a plan again when a statement takes this many times its running median")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--queue-capacity", options.queue_capacity, "queued requests per partition before it is paused")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--batch-units", options.batch_units,
                 "group commit: queued units of a partition run in one shadow transaction, at most this many "
                 "(1: a transaction per unit)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--pipeline", options.pipeline,
               "libpq pipeline mode: send a batch's statements without waiting for each reply");
  app.add_flag("--per-unit-savepoints{false}", options.direct_batches,
               "run every batch with a savepoint around each unit, instead of trying it without them first and "
               "falling back to them only when a statement fails");
  app.add_option("--synchronous-commit", options.synchronous_commit,
                 "synchronous_commit of the executor's shadow sessions; off is safe: a crash that loses commits "
                 "is found on reconnect and those units are applied again")
      ->check(CLI::IsMember({"on", "off", "local", "remote_write", "remote_apply"}))
      ->capture_default_str();
  app.add_option("--max-sql-bytes", options.limits.max_sql_bytes, "longer statements are dead-lettered")
      ->capture_default_str();
  app.add_option("--max-record-bytes", options.limits.max_record_bytes, "larger records are dead-lettered")
      ->capture_default_str();
  app.add_option("--shutdown-deadline", shutdown_deadline_ms,
                 "ms to finish in-flight units on SIGTERM before cancelling them")
      ->capture_default_str();

  return cli::run_main(app, argc, argv, [&] {
    options.writes = executor::parse_writes_mode(writes);
    options.kafka = kafka.to_properties();
    options.metrics_bind = metrics::bind_address(metrics_port);
    options.shutdown_deadline = std::chrono::milliseconds(shutdown_deadline_ms);
    if (!normalization_file.empty()) options.normalization = digest::NormalizationConfig::load_file(normalization_file);
    std::signal(SIGTERM, request_stop);
    std::signal(SIGINT, request_stop);
    executor::Executor executor(std::move(options));
    return executor.run(stop_requested);
  });
}
