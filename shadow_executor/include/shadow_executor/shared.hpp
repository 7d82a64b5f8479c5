// What every partition worker and the executor's main loop share: options,
// the statement analyzer, plan policy, metrics, the delivery ledger and the
// results producer, with publishing (progress stamp, retries of failed
// deliveries). Internal to shadowpipe_executor.
#pragma once

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/delivery_ledger.hpp"
#include "shadow_executor/executor_metrics.hpp"
#include "shadow_executor/options.hpp"
#include "shadow_executor/plan.hpp"

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace prometheus {
class Registry;
}

namespace shadowpipe::executor {

// One line on stderr, prefixed "shadow-executor: ".
void log(const std::string& line);

// A passing fault (a broker not answering yet, a shadow restarting) is
// logged when it starts and when it ends, not on every retry.
// Thread-safe.
class Streak {
 public:
  // Returns whether this failure starts the streak (the caller logs it then).
  bool failed() { return failures_.fetch_add(1) == 0; }
  // Logs the end of a streak, if there was one.
  void recovered(const std::string& what) {
    if (const uint64_t failures = failures_.exchange(0); failures > 0) {
      log(what + ": recovered after " + std::to_string(failures) + " failed attempt(s)");
    }
  }

 private:
  std::atomic<uint64_t> failures_{0};
};

// Rides with each produced record to its delivery report.
struct DeliveryTag {
  std::string topic;
  int32_t target_partition;
  int32_t source_partition;
  int64_t source_offset;
  size_t stamp_bytes = 0;  // length of the progress stamp spliced into the payload (0: none)
};

struct FailedDelivery {
  std::unique_ptr<DeliveryTag> tag;
  std::string key;
  std::string payload;  // as logged: without the stamp, which a retry takes afresh
};

// A dead letter's logged payload, with the `refused` result of its unit
// after a newline when there is one: encoded JSON never holds a raw
// newline, and one record per source offset keeps shadowpipe.results_log's
// offsets unique.
std::string with_refusal(const std::string& dead_letter, const std::string& refusal);

// State every partition worker shares.
struct Shared {
  Shared(const Options& options, prometheus::Registry& registry)
      : options(options), plans(options.plans_per_minute, options.plan_latency_factor), metrics(registry) {}

  const Options& options;
  statement::Analyzer analyzer;
  PlanPolicy plans;
  ExecutorMetrics metrics;
  DeliveryLedger ledger;
  std::unique_ptr<kafka::Producer> producer;
  std::atomic<bool> shutting_down{false};
  std::atomic<bool> shadow_ddl_seen{false};  // RunnerConfig::ddl_seen
  // The shadow refused the sessions' deadlock_timeout (Options::deadlock_timeout_ms):
  // every partition connects without it from then on.
  std::atomic<bool> deadlock_timeout_refused{false};

  std::mutex failed_mutex;
  std::vector<FailedDelivery> failed;
  Streak produce_streak;

  std::string consumer_name() const { return "shadow-executor/" + options.executor_id; }

  // The earliest offset Kafka still has of a requests partition (set by the
  // executor; thread-safe). Throws Transient (refused_for_now) when Kafka does not answer.
  std::function<int64_t(int32_t)> earliest_offset;

  // Announces the record to the ledger and enqueues it. A full local queue
  // is drained by serving the producer's delivery reports here (rd_kafka_poll
  // is thread-safe): the main thread calls this too (assignment, retries),
  // and nobody else would poll meanwhile. Gives up at shutdown, and a record
  // the producer refuses is retried by the main loop; either way it stays in
  // shadowpipe.results_log and undelivered in the ledger, so the Kafka offset
  // is not committed past it and the next owner re-publishes it.
  //
  // A record for the results topic carries the progress stamp
  // (wire::ShadowResult::published_below): the ledger's committable offset of
  // its partition, read after this record was announced and before it is
  // produced. Every record of an offset below it was acknowledged by Kafka
  // by then, so it stands earlier in the partition than this one.
  void publish(const std::string& topic, int32_t target_partition, int32_t source_partition, int64_t source_offset,
               std::string_view key, std::string_view payload);

  // Publishes a record of shadowpipe.results_log where it belongs: a result
  // to the results topic, same partition; a dead letter to the DLQ topic,
  // and the `refused` result logged with it (see with_refusal) to the
  // results topic.
  void publish_logged(const LoggedRecord& record, int32_t partition);

  void on_delivery(const rd_kafka_message_t& message);

  void retry_failed_deliveries();
};

}  // namespace shadowpipe::executor
