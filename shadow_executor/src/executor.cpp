#include "shadow_executor/executor.hpp"

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/broker_queries.hpp"
#include "shadow_executor/partition_worker.hpp"
#include "shadow_executor/shared.hpp"

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/preflight.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <set>
#include <string_view>
#include <thread>

namespace shadowpipe::executor {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The shadow may be starting (57P03), restarting or out of connections when
// the executor starts: connecting is retried with backoff for up to
// Options::startup_wait, the first failure logged. A server that does not
// answer by then (or a wrong DSN) ends the process with the error.
std::unique_ptr<pg::Connection> connect_at_startup(const Options& options) {
  const auto until = Clock::now() + options.startup_wait;
  auto backoff = milliseconds(200);
  for (bool first = true;; first = false) {
    try {
      return std::make_unique<pg::Connection>(options.shadow_dsn);
    } catch (const Failure& failure) {
      if (Clock::now() + backoff > until) throw;
      if (first) {
        log(std::string(failure.what()) + "; retrying for up to " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options.startup_wait).count()) + " s");
      }
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, milliseconds(2000));
  }
}

kafka::Properties with_defaults(kafka::Properties defaults, const kafka::Properties& given) {
  defaults.insert(defaults.end(), given.begin(), given.end());  // later entries win
  return defaults;
}

}  // namespace

struct Executor::Impl {
  Impl(Options given, bool stable_id)
      : options(std::move(given)),
        endpoint(options.metrics_bind),
        shared(options, endpoint.registry()),
        control(connect_at_startup(options)) {
    for (const auto& allowed : preflight::refuse_outside_reach(*control, options.allow_outside_reach)) {
      log("allowed by " + std::string(preflight::kOverrideFlag) + ": " + allowed.describe());
    }
    ensure_schema(*control);
    // linger.ms 25, not 5: a worker publishes a batch's results at once after
    // its COMMIT, so with 5 ms nearly every batch cost the broker its own
    // produce request (~0.8 ms of its CPU, 18-50 us a unit on the bench);
    // 25 ms gathers several batches per request (6-7 us a unit). Results
    // reach the comparator up to 20 ms later; order and exactly-once do not
    // depend on when a record is sent (docs/BENCHMARKS.md, issue 14).
    shared.producer = std::make_unique<kafka::Producer>(
        with_defaults({{"enable.idempotence", "true"}, {"linger.ms", "25"}, {"client.id", shared.consumer_name()}},
                      options.kafka),
        [this](const rd_kafka_message_t& message) { shared.on_delivery(message); });
    kafka::Properties group{{"group.id", options.group},
                            {"client.id", shared.consumer_name()},
                            {"enable.auto.commit", "false"},
                            {"enable.auto.offset.store", "false"},
                            {"auto.offset.reset", "earliest"},
                            // Eager, not cooperative-sticky: Debian's librdkafka 2.0.2
                            // aborts (rd_kafka_sticky_assignor_state_destroy assertion,
                            // librdkafka #4312, fixed in 2.3.0) when a member that
                            // never got an assignment is closed. An eager revoke
                            // finishes the unit in flight and commits, so nothing is
                            // lost, only paused for the rebalance.
                            {"partition.assignment.strategy", "roundrobin"},
                            // A crashed member's partitions move to the others once its
                            // session times out: 6 s (the broker's minimum by default),
                            // not librdkafka's 45 s, so they resume within 10 s.
                            {"session.timeout.ms", "6000"},
                            {"heartbeat.interval.ms", "1000"}};
    const kafka::Properties fetch = kafka::live_stream_fetch();
    group.insert(group.end(), fetch.begin(), fetch.end());
    // An id the operator gave is stable across restarts: it names a static
    // member, so a restarted instance takes its partitions back at once,
    // without a rebalance. A generated id (hostname-pid) never comes back.
    if (stable_id) group.emplace_back("group.instance.id", "shadow-executor/" + options.executor_id);
    consumer = std::make_unique<kafka::Consumer>(
        with_defaults(std::move(group), options.kafka),
        [this](rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* partitions) {
          on_rebalance(event, partitions);
        });
    // For workers that find offsets skipped while running (librdkafka resets
    // a position retention overtook to the earliest offset).
    shared.earliest_offset = [this](int32_t partition) {
      try {
        return kafka::log_start_offset(consumer->get(), options.requests_topic, partition, std::chrono::seconds(5));
      } catch (const Failure& failure) {
        throw Transient(Transient::Cause::refused_for_now,
                        "reading the earliest offset of " + where(partition) + ": " + failure.what());
      }
    };
  }

  ~Impl() {
    // Close while the workers and connections the revoke callback uses are alive.
    shared.shutting_down = true;
    if (consumer) consumer->close();
  }

  Options options;
  metrics::Endpoint endpoint;
  Shared shared;
  std::unique_ptr<pg::Connection> control;  // the main thread's bookkeeping connection
  std::unique_ptr<kafka::Consumer> consumer;
  std::map<int32_t, std::unique_ptr<PartitionWorker>> workers;
  std::set<int32_t> paused;
  std::map<int32_t, int64_t> committed;  // last Kafka offset committed per partition
  std::exception_ptr callback_failure;   // exceptions must not cross librdkafka's C frames
  Streak commit_streak;
  rd_kafka_resp_err_t consumer_error = RD_KAFKA_RESP_ERR_NO_ERROR;  // the last one logged

  const pg::Connection& control_connection() {
    if (!control || !control->healthy()) control = std::make_unique<pg::Connection>(options.shadow_dsn);
    return *control;
  }

  const std::atomic<bool>* stop_flag = nullptr;  // run()'s
  bool stopping() const { return shared.shutting_down.load() || (stop_flag && stop_flag->load()); }

  std::string where(int32_t partition) const { return options.requests_topic + "[" + std::to_string(partition) + "]"; }

  // Starts a partition where shadowpipe.applied says, re-publishes what was
  // logged but maybe not delivered, and starts its worker.
  int64_t start_partition(int32_t partition) {
    const PartitionId id{options.group, options.requests_topic, partition};
    const BrokerQueries broker(*consumer, options.requests_topic, [this] { return stopping(); });
    const int64_t kafka_offset = broker.committed(partition);
    auto backoff = milliseconds(200);
    for (;;) {
      try {
        const auto& conn = control_connection();
        const int64_t earliest = broker.low_watermark(partition);
        int64_t start = claim_next_offset(conn, id, kafka_offset >= 0 ? kafka_offset : earliest);
        if (start < earliest) start = skip_retention_gap(conn, id, start, earliest);
        shared.ledger.track(partition, start);
        const int64_t from = std::max<int64_t>(kafka_offset, 0);
        for (const auto& record : logged_records(conn, id, from)) {
          shared.publish_logged(record, partition);
          shared.metrics.results_republished.Increment();
        }
        if (kafka_offset > 0) forget_logged_below(conn, options.group, options.requests_topic, {{partition, kafka_offset}});
        committed[partition] = kafka_offset;
        workers[partition] = std::make_unique<PartitionWorker>(shared, partition, start);
        return start;
      } catch (const Failure& failure) {
        if (control && control->healthy()) throw;  // refused by a working server: not transient
        log(std::string(failure.what()) + "; retrying in " + std::to_string(backoff.count()) + " ms");
        control.reset();
        if (shared.shutting_down) throw;
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, milliseconds(5000));
      }
    }
  }

  // Retention deleted requests [from, earliest) before the shadow applied
  // them: the position moves to `earliest` and a gap record saying so is
  // logged in the same statement, to be published below with the other
  // logged records (on the results topic, same partition, stamped), so the
  // gap is never silent and announced once. Returns the new start.
  int64_t skip_retention_gap(const pg::Connection& conn, const PartitionId& id, int64_t from, int64_t earliest) {
    const wire::Gap gap = wire::retention_gap(shared.consumer_name(), options.requests_topic, id.partition, from, earliest);
    if (!record_retention_gap(conn, id, from, earliest, wire::encode(gap))) {
      // Another owner moved it meanwhile.
      const int64_t moved = read_next_offset(conn, id);
      return moved < earliest ? skip_retention_gap(conn, id, moved, earliest) : moved;
    }
    shared.metrics.retention_gap_units.Increment(static_cast<double>(gap.units));
    log("gap: " + gap.detail + "; continuing from offset " + std::to_string(earliest) +
        " (gap record published to " + options.results_topic + ")");
    return earliest;
  }

  void stop_partitions(const std::vector<int32_t>& partitions) {
    const auto deadline = Clock::now() + options.shutdown_deadline;
    for (auto partition : partitions) {
      if (auto found = workers.find(partition); found != workers.end()) found->second->stop(deadline);
    }
    // Give the last results a moment to be acknowledged, so the commit below
    // covers them and the next owner re-publishes less.
    while (shared.ledger.undelivered() > 0 && Clock::now() < deadline) shared.producer->poll(milliseconds(10));
    commit_progress();
    for (auto partition : partitions) {
      workers.erase(partition);
      // librdkafka keeps a partition's pause across a revoke and its next
      // assignment, while `paused` forgets it here: resumed while still
      // assigned, or a partition paused at a rebalance would never fetch again.
      if (paused.contains(partition)) set_paused(partition, false);
      committed.erase(partition);
      shared.ledger.forget(partition);
      shared.metrics.lag_family.Remove(&shared.metrics.lag(partition));
    }
  }

  void on_rebalance(rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* partitions) {
    try {
      if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < partitions->cnt; ++i) {
          auto& entry = partitions->elems[i];
          entry.offset = start_partition(entry.partition);
          log("assigned " + options.requests_topic + "[" + std::to_string(entry.partition) + "] from offset " +
              std::to_string(entry.offset));
        }
      } else {
        std::vector<int32_t> revoked;
        for (int i = 0; i < partitions->cnt; ++i) revoked.push_back(partitions->elems[i].partition);
        stop_partitions(revoked);
      }
    } catch (const StopRequested&) {
      // Stopping while waiting for the broker: the partitions get no worker;
      // their next owner starts them from shadowpipe.applied.
    } catch (...) {
      callback_failure = std::current_exception();
    }
    // The assignment must be applied (or released) whatever happened above.
    consumer->default_rebalance(event, partitions);
  }

  // Commits each partition's Kafka offset up to its applied and delivered
  // records, then deletes the logged copies below it.
  void commit_progress() {
    kafka::PartitionList list;
    std::vector<ForgetBelow> bounds;
    for (const auto& [partition, offset] : shared.ledger.committable()) {
      auto known = committed.find(partition);
      if (known != committed.end() && known->second >= offset) continue;
      list.add(options.requests_topic, partition, offset);
      bounds.push_back({partition, offset});
    }
    if (bounds.empty()) return;
    if (auto err = consumer->commit(list)) {
      if (commit_streak.failed()) {
        log(std::string("committing offsets failed: ") + rd_kafka_err2str(err) +
            " (retried every interval; logged once until it works again)");
      }
      return;
    }
    commit_streak.recovered("committing offsets");
    for (const auto& bound : bounds) committed[bound.partition] = bound.offset;
    try {
      forget_logged_below(control_connection(), options.group, options.requests_topic, bounds);
    } catch (const Failure& failure) {
      control.reset();  // the rows stay; deleted at the next commit
      log(std::string("deleting delivered results from shadowpipe.results_log failed: ") + failure.what());
    }
  }

  // A worker that found its shadow's position gone back (lost commits) has
  // stopped: its partition starts again from shadowpipe.applied, as at an
  // assignment, and the consumer seeks there (librdkafka drops what it had
  // fetched past it), so the units the shadow lost are applied again.
  void restart_partitions_that_went_back() {
    std::vector<int32_t> went_back;
    for (const auto& [partition, worker] : workers) {
      if (worker->went_back_to()) went_back.push_back(partition);
    }
    for (auto partition : went_back) {
      workers.at(partition)->stop(Clock::now() + options.shutdown_deadline);
      workers.erase(partition);
      committed.erase(partition);
      shared.ledger.forget(partition);
      if (paused.contains(partition)) set_paused(partition, false);
      int64_t start = 0;
      try {
        start = start_partition(partition);
      } catch (const StopRequested&) {
        return;  // stopping: the partition's next owner starts it from shadowpipe.applied
      }
      kafka::PartitionList list;
      list.add(options.requests_topic, partition, start);
      rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer->get(), list.get(), 10000);
      const std::string failed = error ? rd_kafka_error_string(error)
                                       : list[0].err ? rd_kafka_err2str(list[0].err) : "";
      if (error) rd_kafka_error_destroy(error);
      if (!failed.empty()) {
        // Going on would skip the lost units; a restart starts the partition from the shadow's position.
        throw Failure("seeking " + where(partition) + " back to offset " + std::to_string(start) +
                      " after the shadow lost committed units failed: " + failed +
                      "; restart the executor (it resumes from shadowpipe.applied)");
      }
      log("restarted " + where(partition) + " from offset " + std::to_string(start) + ", where the shadow's position went back to");
    }
  }

  void update_lag() {
    for (const auto& [partition, worker] : workers) {
      int64_t low = 0, high = 0;
      if (rd_kafka_get_watermark_offsets(consumer->get(), options.requests_topic.c_str(), partition, &low, &high) ==
              RD_KAFKA_RESP_ERR_NO_ERROR &&
          high >= 0) {
        shared.metrics.lag(partition).Set(static_cast<double>(std::max<int64_t>(0, high - worker->next_offset())));
      }
    }
  }

  void set_paused(int32_t partition, bool pause) {
    kafka::set_paused(consumer->get(), options.requests_topic, partition, pause);
    if (pause) {
      paused.insert(partition);
    } else {
      paused.erase(partition);
    }
  }

  void dispatch(kafka::Message message) {
    const int32_t partition = message.partition();
    auto found = workers.find(partition);
    if (found == workers.end()) return;  // revoked meanwhile; its next owner reads it from shadowpipe.applied
    found->second->push(std::move(message));
    const auto backlog = found->second->backlog();
    if ((backlog.units >= options.queue_capacity || backlog.bytes >= options.queue_bytes) &&
        !paused.contains(partition)) {
      set_paused(partition, true);
    }
  }

  void resume_drained() {
    std::vector<int32_t> drained;
    for (auto partition : paused) {
      auto found = workers.find(partition);
      if (found == workers.end()) {
        drained.push_back(partition);
        continue;
      }
      const auto backlog = found->second->backlog();
      if (backlog.units <= options.queue_capacity / 2 && backlog.bytes <= options.queue_bytes / 2) {
        drained.push_back(partition);
      }
    }
    for (auto partition : drained) set_paused(partition, false);
  }

  void rethrow_callback_failure() {
    if (callback_failure) std::rethrow_exception(std::exchange(callback_failure, nullptr));
  }

  int run(const std::atomic<bool>& stop) {
    stop_flag = &stop;
    consumer->subscribe({options.requests_topic});
    auto last_commit = Clock::now();
    auto last_retry = Clock::now();
    while (!stop.load()) {
      kafka::Message message = consumer->poll(milliseconds(50));
      rethrow_callback_failure();
      shared.producer->poll(milliseconds(0));
      if (Clock::now() - last_retry >= milliseconds(500)) {  // a refused record is retried twice a second, not in a spin
        shared.retry_failed_deliveries();
        last_retry = Clock::now();
      }
      if (message) {
        if (message.error() == RD_KAFKA_RESP_ERR_NO_ERROR) {
          if (consumer_error != RD_KAFKA_RESP_ERR_NO_ERROR) log("consumer: receiving again");
          consumer_error = RD_KAFKA_RESP_ERR_NO_ERROR;
          dispatch(std::move(message));
        } else if (message.error() != RD_KAFKA_RESP_ERR__PARTITION_EOF && message.error() != consumer_error) {
          // librdkafka retries by itself (brokers down, a topic not there
          // yet); say so once per kind of error, not on every poll.
          consumer_error = message.error();
          log("consumer: " + message.error_text() + " (librdkafka retries; logged once until it changes)");
        }
      }
      resume_drained();
      restart_partitions_that_went_back();
      if (Clock::now() - last_commit >= options.commit_interval) {
        commit_progress();
        update_lag();
        last_commit = Clock::now();
      }
    }
    shared.shutting_down = true;
    std::vector<int32_t> assigned;
    for (const auto& [partition, worker] : workers) assigned.push_back(partition);
    stop_partitions(assigned);
    shared.producer->flush(milliseconds(2000));
    // Leaves the group; a static member (an --executor-id given) sends no
    // LeaveGroup (KIP-345) and its partitions move when its session times
    // out. The revoke finds nothing left to stop.
    consumer->close();
    rethrow_callback_failure();
    return 0;
  }
};

Executor::Executor(Options options) {
  const bool stable_id = !options.executor_id.empty();
  if (!stable_id) options.executor_id = default_executor_id();
  impl_ = std::make_unique<Impl>(std::move(options), stable_id);
}

Executor::~Executor() = default;

int Executor::run(const std::atomic<bool>& stop) { return impl_->run(stop); }

ExecutorMetrics& Executor::metrics() { return impl_->shared.metrics; }

prometheus::Registry& Executor::registry() { return impl_->endpoint.registry(); }

}  // namespace shadowpipe::executor
