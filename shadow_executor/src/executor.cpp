#include "shadow_executor/executor.hpp"

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/delivery_ledger.hpp"
#include "shadow_executor/plan.hpp"
#include "shadow_executor/unit_runner.hpp"

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <thread>

namespace shadowpipe::executor {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void log(const std::string& line) { std::cerr << "shadow-executor: " << line << '\n'; }

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

// Kafka errors that a retry will not cure (credentials, ACLs): fatal.
bool permanent_kafka_error(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return true;
    default:
      return false;
  }
}

// Thrown out of a retry loop of the rebalance callback at shutdown.
struct StopRequested {};

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

// The progress stamp: `,"published_below":N` spliced before the closing
// brace of an encoded record (readers ignore member order). The logged
// payload is encoded before the stamp is known, and a republished record
// needs a fresh one, so it is added at produce time.
std::string stamp_member(int64_t published_below) {
  return ",\"published_below\":" + std::to_string(published_below);
}

std::string with_stamp(std::string_view payload, const std::string& stamp) {
  std::string out;
  out.reserve(payload.size() + stamp.size());
  out.append(payload.substr(0, payload.size() - 1));
  out.append(stamp);
  out.push_back('}');
  return out;
}

std::string without_stamp(std::string_view payload, size_t stamp_bytes) {
  if (stamp_bytes == 0 || payload.size() < stamp_bytes + 1) return std::string(payload);
  std::string out(payload.substr(0, payload.size() - 1 - stamp_bytes));
  out.push_back('}');
  return out;
}

// A dead letter's logged payload, with the `refused` result of its unit
// after a newline when there is one: encoded JSON never holds a raw
// newline, and one row per source offset keeps shadowpipe.results_log's key.
std::string with_refusal(const std::string& dead_letter, const std::string& refusal) {
  return refusal.empty() ? dead_letter : dead_letter + '\n' + refusal;
}

bool explainable(statement::Kind kind) { return kind == statement::Kind::read || kind == statement::Kind::write; }

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

  std::mutex failed_mutex;
  std::vector<FailedDelivery> failed;
  Streak produce_streak;

  std::string consumer_name() const { return "shadow-executor/" + options.executor_id; }

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
               std::string_view key, std::string_view payload) {
    ledger.publishing(source_partition, source_offset);
    auto tag = std::make_unique<DeliveryTag>(DeliveryTag{topic, target_partition, source_partition, source_offset});
    std::string stamped;
    const bool stamp = topic == options.results_topic && payload.size() >= 2 && payload.back() == '}';
    for (;;) {
      if (stamp) {
        // Read again on every attempt: a stamp may only grow meanwhile.
        const std::string member = stamp_member(ledger.committable(source_partition));
        stamped = with_stamp(payload, member);
        tag->stamp_bytes = member.size();
      }
      const auto err = producer->produce(topic, target_partition, key, stamp ? std::string_view(stamped) : payload,
                                         tag.get());
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        tag.release();  // owned by the delivery report now
        return;
      }
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        metrics.delivery_failures.Increment();
        if (produce_streak.failed()) {
          log("cannot produce to " + topic + "[" + std::to_string(target_partition) + "]: " + rd_kafka_err2str(err) +
              " (kept in shadowpipe.results_log, retried; logged once until a record is delivered)");
        }
        std::lock_guard lock(failed_mutex);
        failed.push_back(FailedDelivery{std::move(tag), std::string(key), std::string(payload)});
        return;
      }
      if (shutting_down.load()) {
        log("the producer's queue is full at shutdown: " + topic + "[" + std::to_string(target_partition) +
            "] record of offset " + std::to_string(source_offset) +
            " not sent (kept in shadowpipe.results_log, re-published by the next owner)");
        return;
      }
      producer->poll(milliseconds(5));
    }
  }

  // Publishes a record of shadowpipe.results_log where it belongs: a result
  // to the results topic, same partition; a dead letter to the DLQ topic,
  // and the `refused` result logged with it (see with_refusal) to the
  // results topic.
  void publish_logged(const LoggedRecord& record, int32_t partition) {
    if (record.destination == Destination::results) {
      publish(options.results_topic, partition, partition, record.source_offset, record.key, record.payload);
      return;
    }
    const std::string_view payload = record.payload;
    const size_t split = payload.find('\n');
    publish(options.dlq_topic, RD_KAFKA_PARTITION_UA, partition, record.source_offset, record.key,
            payload.substr(0, split));
    if (split != std::string_view::npos) {
      publish(options.results_topic, partition, partition, record.source_offset, record.key, payload.substr(split + 1));
    }
  }

  void on_delivery(const rd_kafka_message_t& message) {
    std::unique_ptr<DeliveryTag> tag(static_cast<DeliveryTag*>(message._private));
    if (!tag) return;
    if (message.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ledger.delivered(tag->source_partition, tag->source_offset);
      produce_streak.recovered("producing");
      return;
    }
    metrics.delivery_failures.Increment();
    const size_t stamp_bytes = tag->stamp_bytes;
    std::lock_guard lock(failed_mutex);
    failed.push_back(FailedDelivery{
        std::move(tag), std::string(static_cast<const char*>(message.key), message.key_len),
        without_stamp({static_cast<const char*>(message.payload), message.len}, stamp_bytes)});
  }

  void retry_failed_deliveries() {
    std::vector<FailedDelivery> retry;
    {
      std::lock_guard lock(failed_mutex);
      retry.swap(failed);
    }
    for (auto& entry : retry) {
      // The ledger still counts the first attempt as undelivered; the retry
      // adds a second entry, then the first one is acknowledged away. In
      // that order: the other way round the committable offset (and the
      // progress stamp of a record produced meanwhile) would briefly pass
      // this undelivered record.
      publish(entry.tag->topic, entry.tag->target_partition, entry.tag->source_partition, entry.tag->source_offset,
              entry.key, entry.payload);
      ledger.delivered(entry.tag->source_partition, entry.tag->source_offset);
    }
  }
};

// Executes one partition's units in offset order on its own connection.
class PartitionWorker {
 public:
  PartitionWorker(Shared& shared, int32_t partition, int64_t next_offset)
      : shared_(shared),
        id_{shared.options.group, shared.options.requests_topic, partition},
        next_offset_(next_offset),
        thread_([this] { loop(); }) {}

  ~PartitionWorker() { stop(Clock::now() + shared_.options.shutdown_deadline); }

  void push(kafka::Message message) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(message));
    }
    wake_.notify_one();
  }

  size_t queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

  int64_t next_offset() const { return next_offset_.load(); }

  // Finishes the unit in flight and drops the queued ones (the partition's
  // next owner reads them again from shadowpipe.applied). Past the deadline
  // the running statement is cancelled and its unit rolled back.
  void stop(Clock::time_point deadline) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      queue_.clear();
    }
    wake_.notify_all();
    if (!thread_.joinable()) return;
    {
      std::unique_lock lock(mutex_);
      if (!finished_.wait_until(lock, deadline, [this] { return done_; })) {
        abandon_ = true;
        if (cancel_) {
          char errbuf[256];
          PQcancel(cancel_, errbuf, sizeof errbuf);
        }
      }
    }
    thread_.join();
  }

 private:
  // A message taken from the queue and decoded.
  struct Unit {
    kafka::Message message;
    std::optional<wire::Request> request;  // empty: a dead letter (does not decode, or its SQL does not parse)
    std::string dead_letter;               // the encoded dead letter then
    // With the dead letter, when its request id can still be read: the
    // `refused` result that tells the comparator the unit was decided.
    std::string refusal;
    // A gap record a recorder announced on the requests topic: not a bad
    // record; its offset is passed over (applied, nothing run, no record).
    bool gap = false;
  };

  // The next message not applied yet: the one a batch left over, else the
  // queue's front. Never waits.
  std::optional<Unit> take() {
    if (carry_) return std::exchange(carry_, std::nullopt);
    for (;;) {
      kafka::Message message;
      {
        std::lock_guard lock(mutex_);
        if (stopping_ || queue_.empty()) return std::nullopt;
        message = std::move(queue_.front());
        queue_.pop_front();
      }
      if (message.offset() < next_offset_.load()) continue;  // applied before (a re-fetch after resume)
      Unit unit;
      auto decoded = wire::decode_request(message.payload(), shared_.options.limits);
      std::optional<Error> refused = decoded.ok() ? unparsable_sql(decoded.value()) : decoded.error();
      if (!decoded.ok() && wire::is_gap_record(message.payload()) && wire::decode_gap(message.payload()).ok()) {
        unit.gap = true;
      } else if (!refused) {
        unit.request = std::move(decoded.value());
      } else {
        unit.dead_letter = wire::encode(wire::make_dead_letter(*refused, shared_.consumer_name(), message.topic(),
                                                               message.partition(), message.offset(),
                                                               message.payload()));
        unit.refusal = refusal_of(message, decoded.ok() ? &decoded.value() : nullptr, *refused);
      }
      unit.message = std::move(message);
      return unit;
    }
  }

  // SQL the parser cannot read goes to the dead-letter topic, the whole unit,
  // as the comparator does with its request: the guard cannot vouch for it.
  std::optional<Error> unparsable_sql(const wire::Request& request) {
    for (size_t i = 0; i < request.statements.size(); ++i) {
      auto analysis = shared_.analyzer.analyze(request.statements[i].sql);
      if (analysis.ok()) continue;
      Error error = analysis.error();
      error.field = "statements[" + std::to_string(i) + "].sql";
      return error;
    }
    return std::nullopt;
  }

  // The `refused` result of a dead-lettered unit whose request id can be
  // read (from `request`, else from a decode without limits, for a record
  // refused for its size); empty when it cannot.
  std::string refusal_of(const kafka::Message& message, const wire::Request* request, const Error& why) {
    std::optional<wire::Request> unbounded;
    if (!request) {
      constexpr size_t kNoLimit = std::numeric_limits<size_t>::max();
      auto decoded = wire::decode_request(message.payload(),
                                          wire::Limits{kNoLimit, kNoLimit, kNoLimit, kNoLimit, kNoLimit, kNoLimit, kNoLimit});
      if (!decoded.ok()) return {};
      unbounded = std::move(decoded.value());
      request = &*unbounded;
    }
    wire::ShadowResult result;
    result.request_id = request->request_id;
    result.ts_us = wire::now_us();
    result.key = request->key;
    result.executor = shared_.options.executor_id;
    result.source_partition = message.partition();
    result.source_offset = message.offset();
    const size_t statements = std::min(request->statements.size(), shared_.options.limits.max_statements);
    for (size_t i = 0; i < std::max<size_t>(statements, 1); ++i) {
      auto& statement = result.statements.emplace_back();
      if (i < request->statements.size() && request->statements[i].fingerprint.size() <= shared_.options.limits.max_string_bytes) {
        statement.fingerprint = request->statements[i].fingerprint;
      }
      statement.result.status = wire::Status::refused;
      statement.result.message = "not replayed: sent to the dead-letter topic (" + why.describe() + ")";
      if (statement.result.message.size() > 1024) statement.result.message.resize(1024);
    }
    if (result.request_id.size() > shared_.options.limits.max_string_bytes ||
        result.key.size() > shared_.options.limits.max_string_bytes) {
      return {};
    }
    return wire::encode(result);
  }

  // Group commit: the first unit and the ones queued behind it that may
  // share its transaction (same session settings, nothing that must run
  // alone), within the batch limits. A unit that may not join waits for the
  // next batch.
  std::vector<Unit> next_batch() {
    std::vector<Unit> batch;
    auto first = take();
    if (!first) return batch;
    batch.push_back(std::move(*first));
    if (!batch[0].request) return batch;
    const wire::Request& lead = *batch[0].request;
    size_t statements = lead.statements.size();
    while (batch.size() < shared_.options.batch_units) {
      auto next = take();
      if (!next) break;
      if (!next->request || statements + next->request->statements.size() > kMaxBatchStatements ||
          !UnitRunner::may_share_batch(lead, *next->request, shared_.analyzer)) {
        carry_ = std::move(next);
        break;
      }
      statements += next->request->statements.size();
      batch.push_back(std::move(*next));
    }
    return batch;
  }

  void loop() {
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || carry_.has_value(); });
        if (stopping_) break;
      }
      auto batch = next_batch();
      if (!batch.empty()) process_with_retry(batch);
    }
    carry_.reset();
    disconnect();
    std::lock_guard lock(mutex_);
    done_ = true;
    finished_.notify_all();
  }

  bool stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  static std::string offsets(std::span<const Unit> batch) {
    const auto first = std::to_string(batch.front().message.offset());
    return batch.size() == 1 ? "offset " + first
                             : "offsets " + first + ".." + std::to_string(batch.back().message.offset());
  }

  // A batch that fails this often without a connection loss is poison (a
  // unit the executor cannot run or record, not a passing outage): it is
  // split, and a single unit is recorded as not replayed, so the partition
  // moves on. Failures of the recording itself (the bookkeeping refused) are
  // retried for good: the unit is never skipped unrecorded.
  static constexpr int kMaxFailedAttempts = 3;

  void process_with_retry(std::span<const Unit> batch) {
    auto backoff = milliseconds(100);
    int failures = 0;
    std::string last_failure;
    for (;;) {
      try {
        if (!connect()) return;  // stopping
        if (failures >= kMaxFailedAttempts && batch.size() == 1 && batch.front().request) {
          record_not_replayed(batch.front(), last_failure);
        } else {
          process(batch);
        }
        transient_.recovered("partition " + std::to_string(id_.partition));
        return;
      } catch (const ConnectionLost& lost) {
        // Neither counted nor the unit's error: the shadow went away.
        if (transient_.failed()) {
          log("partition " + std::to_string(id_.partition) + " " + offsets(batch) + ": " + lost.what() +
              "; reconnecting with backoff and retrying (logged once until it works again)");
        }
        disconnect();
      } catch (const TransientFailure& transient) {
        // Neither counted nor the unit's error: a passing refusal.
        if (transient_.failed()) {
          log("partition " + std::to_string(id_.partition) + " " + offsets(batch) + ": " + transient.what() +
              " (retried with backoff; logged once until it works again)");
        }
        if (connection_ && !connection_->healthy()) disconnect();
      } catch (const UnitAbandoned&) {
        return;
      } catch (const Failure& failure) {
        // The bookkeeping was refused (grants, schema dropped): retrying
        // without a fix would spin, skipping would lose the unit. Keep the
        // partition stopped at this offset and say so.
        log("partition " + std::to_string(id_.partition) + " " + offsets(batch) + ": " +
            failure.what() + "; retrying in " + std::to_string(backoff.count()) + " ms");
        disconnect();
        if (failures < kMaxFailedAttempts) last_failure = failure.what();
        if (++failures == kMaxFailedAttempts && batch.size() > 1) {
          log("partition " + std::to_string(id_.partition) + " " + offsets(batch) + ": failed " +
              std::to_string(failures) + " times; running its units one by one");
          for (size_t i = 0; i < batch.size(); ++i) {
            if (stopping()) return;
            process_with_retry(batch.subspan(i, 1));
          }
          return;
        }
      }
      if (sleep_unless_stopping(backoff)) return;
      backoff = std::min(backoff * 2, milliseconds(5000));
    }
  }

  // Returns true when stopping.
  bool sleep_unless_stopping(milliseconds duration) {
    std::unique_lock lock(mutex_);
    return wake_.wait_for(lock, duration, [this] { return stopping_; });
  }

  bool connect() {
    if (connection_) return true;
    auto backoff = milliseconds(100);
    for (;;) {
      if (stopping()) return false;
      try {
        auto connection = std::make_unique<pg::Connection>(shared_.options.shadow_dsn);
        // Names the backend so an operator (or a test) can find this partition's session.
        connection->exec_checked("SET application_name = 'shadow-executor/p" + std::to_string(id_.partition) + "'");
        std::lock_guard lock(mutex_);
        connection_ = std::move(connection);
        cancel_ = PQgetCancel(connection_->get());
        if (ever_connected_) shared_.metrics.reconnects.Increment();
        ever_connected_ = true;
        RunnerConfig config{shared_.options.writes, shared_.options.statement_timeout_ms,
                            &shared_.options.normalization, shared_.options.executor_id, &abandon_,
                            shared_.options.pipeline};
        runner_ = std::make_unique<UnitRunner>(*connection_, std::move(config), shared_.analyzer);
        return true;
      } catch (const Failure& failure) {
        if (transient_.failed()) {
          log("partition " + std::to_string(id_.partition) + ": " + failure.what() +
              "; retrying with backoff (logged once until it works again)");
        }
      }
      if (sleep_unless_stopping(backoff)) return false;
      backoff = std::min(backoff * 2, milliseconds(5000));
    }
  }

  void disconnect() {
    std::lock_guard lock(mutex_);
    runner_.reset();
    if (cancel_) PQfreeCancel(cancel_);
    cancel_ = nullptr;
    connection_.reset();
  }

  // The offset was applied before (a crash or a dropped connection after
  // COMMIT): publish what was logged then; the comparator drops duplicates.
  void republish_logged(int64_t offset) {
    for (const auto& record : logged_record_at(*connection_, id_, offset)) {
      shared_.publish_logged(record, id_.partition);
      shared_.metrics.results_republished.Increment();
    }
  }

  void advance(int64_t offset) {
    shared_.ledger.applied(id_.partition, offset + 1);
    next_offset_ = offset + 1;
  }

  void record_not_replayed(const Unit& unit, const std::string& why) {
    const int64_t offset = unit.message.offset();
    log("partition " + std::to_string(id_.partition) + " offset " + std::to_string(offset) + ": failed " +
        std::to_string(kMaxFailedAttempts) + " times; recorded as not replayed (shadow error " +
        kNotReplayedSqlstate + ")");
    UnitReport report = runner_->record_not_replayed(*unit.request, id_, offset, why);
    if (!report.applied) {
      shared_.metrics.units_already_applied.Increment();
      republish_logged(offset);
    } else {
      shared_.metrics.units_applied.Increment();
      for (size_t i = 0; i < report.result.statements.size(); ++i) count(report.result.statements[i].result, report.notes[i]);
      shared_.publish(shared_.options.results_topic, id_.partition, id_.partition, offset, unit.request->key,
                      report.logged_payload);
    }
    advance(offset);
  }

  void process(std::span<const Unit> batch) {
    if (batch.front().gap) {
      // The comparator reads the gap from the requests topic itself.
      const int64_t offset = batch.front().message.offset();
      if (runner_->record_passed_over(id_, offset)) {
        shared_.metrics.gap_records_passed.Increment();
        log("partition " + std::to_string(id_.partition) + " offset " + std::to_string(offset) +
            ": a gap record announced by a recorder; passed over");
      }
      advance(offset);
      return;
    }
    if (!batch.front().request) {
      const Unit& unit = batch.front();
      const int64_t offset = unit.message.offset();
      const LoggedRecord logged{offset, Destination::dlq, std::string(unit.message.key()),
                                with_refusal(unit.dead_letter, unit.refusal)};
      if (runner_->record_dead_letter(id_, offset, logged.key, logged.payload)) {
        shared_.metrics.dead_letters.Increment();
        shared_.publish_logged(logged, id_.partition);
      } else {
        republish_logged(offset);
      }
      advance(offset);
      return;
    }
    std::vector<BatchUnit> units;
    units.reserve(batch.size());
    for (const auto& unit : batch) units.push_back(BatchUnit{&*unit.request, unit.message.offset()});
    std::vector<UnitReport> reports = runner_->run_batch(units, id_);
    shared_.metrics.batch_units.Observe(static_cast<double>(units.size()));
    for (size_t u = 0; u < units.size(); ++u) {
      const wire::Request& request = *units[u].request;
      const int64_t offset = units[u].offset;
      UnitReport& report = reports[u];
      if (!report.applied) {
        shared_.metrics.units_already_applied.Increment();
        republish_logged(offset);
        advance(offset);
        continue;
      }
      shared_.metrics.units_applied.Increment();
      bool planned = false;
      for (size_t i = 0; i < report.result.statements.size(); ++i) {
        auto& statement = report.result.statements[i];
        count(statement.result, report.notes[i]);
        if (report.notes[i].disposition != Disposition::executed || !explainable(report.notes[i].kind)) continue;
        if (!shared_.plans.should_capture(statement.fingerprint, statement.result.latency_us)) continue;
        if (auto plan = runner_->explain(request, i)) {
          statement.plan = std::move(plan);
          shared_.metrics.plans_captured.Increment();
          planned = true;
        }
      }
      shared_.publish(shared_.options.results_topic, id_.partition, id_.partition, offset, request.key,
                      planned ? wire::encode(report.result) : report.logged_payload);
      advance(offset);
    }
  }

  void count(const wire::StatementResult& result, const StatementNote& note) {
    auto& metrics = shared_.metrics;
    switch (result.status) {
      case wire::Status::ok: metrics.statements_ok.Increment(); break;
      case wire::Status::error:
        metrics.statements_error.Increment();
        metrics.statement_error(result.sqlstate).Increment();
        break;
      case wire::Status::refused: metrics.statements_refused.Increment(); break;
    }
    switch (note.disposition) {
      case Disposition::executed:
        metrics.execution_seconds.Observe(static_cast<double>(result.latency_us) / 1e6);
        break;
      case Disposition::refused_by_guard: metrics.refused_by_guard.Increment(); break;
      case Disposition::writes_skipped: metrics.writes_skipped.Increment(); break;
      case Disposition::transaction_control: metrics.transaction_control_skipped.Increment(); break;
      case Disposition::unparsable: metrics.unparsable.Increment(); break;
      case Disposition::not_replayable: metrics.not_replayable.Increment(); break;
      case Disposition::not_reached: break;
    }
  }

  Shared& shared_;
  const PartitionId id_;
  std::atomic<int64_t> next_offset_;
  std::atomic<bool> abandon_{false};  // stop()'s deadline passed: roll back the unit in flight
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable finished_;
  std::deque<kafka::Message> queue_;
  std::optional<Unit> carry_;  // taken from the queue but left for the next batch (worker thread only)
  bool stopping_ = false;
  bool done_ = false;
  bool ever_connected_ = false;
  Streak transient_;  // connection losses and transient refusals (worker thread only)
  std::unique_ptr<pg::Connection> connection_;
  PGcancel* cancel_ = nullptr;
  std::unique_ptr<UnitRunner> runner_;
  std::thread thread_;  // last: starts once everything above is built
};

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
        control(std::make_unique<pg::Connection>(options.shadow_dsn)) {
    ensure_schema(*control);
    shared.producer = std::make_unique<kafka::Producer>(
        with_defaults({{"enable.idempotence", "true"}, {"linger.ms", "5"}, {"client.id", shared.consumer_name()}},
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
                            {"heartbeat.interval.ms", "1000"},
                            // A fetch that long-polls an idle partition holds back the next
                            // fetch of a resumed one: keep the broker's wait short.
                            {"fetch.wait.max.ms", "20"}};
    // An id the operator gave is stable across restarts: it names a static
    // member, so a restarted instance takes its partitions back at once,
    // without a rebalance. A generated id (hostname-pid) never comes back.
    if (stable_id) group.emplace_back("group.instance.id", "shadow-executor/" + options.executor_id);
    consumer = std::make_unique<kafka::Consumer>(
        with_defaults(std::move(group), options.kafka),
        [this](rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* partitions) {
          on_rebalance(event, partitions);
        });
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

  // Repeats a Kafka request until it is answered: right after a broker
  // starts or a topic is created, and while all brokers are down, requests
  // fail (unknown topic or partition, not leader, coordinator loading, timed
  // out) for a while; that is waited out with backoff, logged once per
  // streak. Errors a retry cannot cure (authorization) are fatal.
  template <class Attempt>
  void until_answered(const std::string& what, Attempt attempt) {
    auto backoff = milliseconds(100);
    Streak streak;
    for (;;) {
      const rd_kafka_resp_err_t err = attempt();
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        streak.recovered(what);
        return;
      }
      if (permanent_kafka_error(err)) throw Failure(what + ": " + rd_kafka_err2str(err));
      if (streak.failed()) {
        log(what + ": " + rd_kafka_err2str(err) + "; retrying with backoff until the broker answers (logged once)");
      }
      if (stopping()) throw StopRequested{};
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, milliseconds(2000));
    }
  }

  // The group's committed offset, or RD_KAFKA_OFFSET_INVALID when it has none.
  int64_t kafka_committed(int32_t partition) {
    int64_t offset = RD_KAFKA_OFFSET_INVALID;
    until_answered("reading the committed offset of " + where(partition), [&] {
      kafka::PartitionList list(1);
      list.add(options.requests_topic, partition);
      auto err = rd_kafka_committed(consumer->get(), list.get(), 5000);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list[0].err;
      offset = list[0].offset;
      return err;
    });
    return offset;
  }

  int64_t low_watermark(int32_t partition) {
    int64_t low = 0, high = 0;
    until_answered("reading the offsets of " + where(partition), [&] {
      return rd_kafka_query_watermark_offsets(consumer->get(), options.requests_topic.c_str(), partition, &low, &high,
                                              5000);
    });
    return low;
  }

  std::string where(int32_t partition) const { return options.requests_topic + "[" + std::to_string(partition) + "]"; }

  // Starts a partition where shadowpipe.applied says, re-publishes what was
  // logged but maybe not delivered, and starts its worker.
  int64_t start_partition(int32_t partition) {
    const PartitionId id{options.group, options.requests_topic, partition};
    const int64_t kafka_offset = kafka_committed(partition);
    auto backoff = milliseconds(200);
    for (;;) {
      try {
        const auto& conn = control_connection();
        const int64_t earliest = low_watermark(partition);
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
    wire::Gap gap;
    gap.ts_us = wire::now_us();
    gap.source = shared.consumer_name();
    gap.reason = "retention";
    gap.partition = id.partition;
    gap.from_offset = from;
    gap.to_offset = earliest;
    gap.units = static_cast<uint64_t>(earliest - from);
    gap.write_units = gap.units;  // unknown: the requests are gone
    gap.detail = "requests " + std::to_string(from) + ".." + std::to_string(earliest - 1) + " of " +
                 where(id.partition) + " were deleted by retention before the shadow applied them";
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
      paused.erase(partition);
      committed.erase(partition);
      shared.ledger.forget(partition);
      shared.metrics.lag_family.Remove(&shared.metrics.lag(partition));
    }
  }

  void on_rebalance(rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* partitions) {
    const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(consumer->get())) == "COOPERATIVE";
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
    if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      if (cooperative) {
        if (auto* error = rd_kafka_incremental_assign(consumer->get(), partitions)) rd_kafka_error_destroy(error);
      } else {
        rd_kafka_assign(consumer->get(), partitions);
      }
    } else {
      if (cooperative) {
        if (auto* error = rd_kafka_incremental_unassign(consumer->get(), partitions)) rd_kafka_error_destroy(error);
      } else {
        rd_kafka_assign(consumer->get(), nullptr);
      }
    }
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
    kafka::PartitionList list(1);
    list.add(options.requests_topic, partition);
    if (pause) {
      rd_kafka_pause_partitions(consumer->get(), list.get());
      paused.insert(partition);
    } else {
      rd_kafka_resume_partitions(consumer->get(), list.get());
      paused.erase(partition);
    }
  }

  void dispatch(kafka::Message message) {
    const int32_t partition = message.partition();
    auto found = workers.find(partition);
    if (found == workers.end()) return;  // revoked meanwhile; its next owner reads it from shadowpipe.applied
    found->second->push(std::move(message));
    if (found->second->queued() >= options.queue_capacity && !paused.contains(partition)) set_paused(partition, true);
  }

  void resume_drained() {
    std::vector<int32_t> drained;
    for (auto partition : paused) {
      auto found = workers.find(partition);
      if (found == workers.end() || found->second->queued() <= options.queue_capacity / 2) drained.push_back(partition);
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
    consumer->close();  // leaves the group; the revoke finds nothing left to stop
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
