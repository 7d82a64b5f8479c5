#include "shadow_executor/partition_worker.hpp"

#include "shadow_executor/retry_policy.hpp"

#include "shadowpipe/conninfo.hpp"

#include <algorithm>
#include <limits>

namespace shadowpipe::executor {

using std::chrono::milliseconds;

namespace {
bool explainable(statement::Kind kind) { return kind == statement::Kind::read || kind == statement::Kind::write; }
}  // namespace

void PartitionWorker::push(kafka::Message message) {
  {
    std::lock_guard lock(mutex_);
    queued_bytes_ += message.payload().size();
    queue_.push_back(std::move(message));
  }
  wake_.notify_one();
}

PartitionWorker::Backlog PartitionWorker::backlog() const {
  std::lock_guard lock(mutex_);
  return {queue_.size(), queued_bytes_};
}

void PartitionWorker::stop(Clock::time_point deadline) {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
    queued_bytes_ = 0;
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

std::optional<PartitionWorker::Unit> PartitionWorker::take() {
  if (carry_) return std::exchange(carry_, std::nullopt);
  for (;;) {
    kafka::Message message;
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || queue_.empty()) return std::nullopt;
      message = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= message.payload().size();
    }
    if (message.offset() < next_offset_.load()) continue;  // applied before (a re-fetch after resume)
    Unit unit;
    if (message.offset() > expected_offset_) unit.skipped_from = expected_offset_;
    expected_offset_ = message.offset() + 1;
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

std::optional<Error> PartitionWorker::unparsable_sql(const wire::Request& request) {
  for (size_t i = 0; i < request.statements.size(); ++i) {
    auto analysis = shared_.analyzer.analyze_shared(request.statements[i].sql);
    if (analysis.ok()) continue;
    Error error = analysis.error();
    error.field = "statements[" + std::to_string(i) + "].sql";
    return error;
  }
  return std::nullopt;
}

std::string PartitionWorker::refusal_of(const kafka::Message& message, const wire::Request* request, const Error& why) {
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

std::vector<PartitionWorker::Unit> PartitionWorker::next_batch() {
  std::vector<Unit> batch;
  auto first = take();
  if (!first) return batch;
  batch.push_back(std::move(*first));
  if (!batch[0].request) return batch;
  // Read through batch[0] each time: push_back may move the units, and a
  // reference into the first one would then point at freed memory.
  size_t statements = batch[0].request->statements.size();
  while (batch.size() < shared_.options.batch_units) {
    auto next = take();
    if (!next) break;
    if (!next->request || next->skipped_from >= 0 ||
        statements + next->request->statements.size() > kMaxBatchStatements ||
        !UnitRunner::may_share_batch(*batch[0].request, *next->request, shared_.analyzer)) {
      carry_ = std::move(next);
      break;
    }
    statements += next->request->statements.size();
    batch.push_back(std::move(*next));
  }
  return batch;
}

namespace {
double seconds_between(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}
}  // namespace

void PartitionWorker::loop() {
  for (;;) {
    const auto waiting = Clock::now();
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || carry_.has_value(); });
      if (stopping_) break;
    }
    const auto reading = Clock::now();
    auto batch = next_batch();
    const auto processing = Clock::now();
    on_the_shadow_seconds_ = 0;
    if (!batch.empty()) process_with_retry(batch);
    const auto done = Clock::now();
    shared_.metrics.worker_waiting_for_units.Increment(seconds_between(waiting, reading));
    shared_.metrics.worker_reading_units.Increment(seconds_between(reading, processing));
    shared_.metrics.worker_on_the_shadow.Increment(on_the_shadow_seconds_);
    shared_.metrics.worker_publishing.Increment(
        std::max(0.0, seconds_between(processing, done) - on_the_shadow_seconds_));
  }
  carry_.reset();
  disconnect();
  std::lock_guard lock(mutex_);
  done_ = true;
  finished_.notify_all();
}

bool PartitionWorker::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

std::string PartitionWorker::offsets(std::span<const Unit> batch) {
  const auto first = std::to_string(batch.front().message.offset());
  return batch.size() == 1 ? "offset " + first
                           : "offsets " + first + ".." + std::to_string(batch.back().message.offset());
}

void PartitionWorker::process_with_retry(std::span<const Unit> batch) {
  auto backoff = milliseconds(100);
  RetryPolicy retry;
  for (;;) {
    RetryPolicy::Next next = RetryPolicy::Next::retry;
    try {
      if (!connect()) return;  // stopping
      if (retry.gives_up(batch.size()) && batch.front().request) {
        record_not_replayed(batch.front(), retry.last_failure());
      } else {
        process(batch);
      }
      transient_.recovered("partition " + std::to_string(id_.partition));
      return;
    } catch (const Transient& transient) {
      // Neither counted nor the unit's error: the shadow went away, or refused for a passing cause.
      const bool lost = transient.cause() == Transient::Cause::connection_lost;
      if (transient_.failed()) {
        log("partition " + std::to_string(id_.partition) + " " + offsets(batch) + ": " + transient.what() +
            (lost ? "; reconnecting with backoff and retrying" : "; retrying with backoff") +
            " (logged once until it works again)");
      }
      if (lost || (connection_ && !connection_->healthy())) disconnect();
      retry.failed(lost ? RetryPolicy::Failed::connection_lost : RetryPolicy::Failed::transient, batch.size(),
                   transient.what());
    } catch (const UnitAbandoned&) {
      return;
    } catch (const Failure& failure) {
      // The bookkeeping was refused (grants, schema dropped): retrying
      // without a fix would spin, skipping would lose the unit. Keep the
      // partition stopped at this offset and say so.
      log("partition " + std::to_string(id_.partition) + " " + offsets(batch) + ": " +
          failure.what() + "; retrying in " + std::to_string(backoff.count()) + " ms");
      disconnect();
      next = retry.failed(RetryPolicy::Failed::refused, batch.size(), failure.what());
    }
    if (next == RetryPolicy::Next::one_by_one) {
      log("partition " + std::to_string(id_.partition) + " " + offsets(batch) + ": failed " +
          std::to_string(RetryPolicy::kMaxFailedAttempts) + " times; running its units one by one");
      for (size_t i = 0; i < batch.size(); ++i) {
        if (stopping()) return;
        process_with_retry(batch.subspan(i, 1));
      }
      return;
    }
    if (sleep_unless_stopping(backoff)) return;
    backoff = std::min(backoff * 2, milliseconds(5000));
  }
}

bool PartitionWorker::sleep_unless_stopping(milliseconds duration) {
  std::unique_lock lock(mutex_);
  return wake_.wait_for(lock, duration, [this] { return stopping_; });
}

std::string PartitionWorker::session_dsn(bool with_deadlock_timeout) const {
  // Startup parameters, not SETs: the RESET ALL after a unit that SET
  // something returns to them. The application name lets an operator (or a
  // test) find this partition's session.
  const auto conninfo = pg::Conninfo::parse(shared_.options.shadow_dsn, "the --shadow DSN");
  std::string options = conninfo.get("options");
  if (!options.empty()) options += ' ';
  options += "-c synchronous_commit=" + shared_.options.synchronous_commit;
  if (with_deadlock_timeout) options += " -c deadlock_timeout=" + std::to_string(shared_.options.deadlock_timeout_ms);
  return conninfo.with("application_name", "shadow-executor/p" + std::to_string(id_.partition))
      .with("options", std::move(options))
      .str();
}

std::unique_ptr<pg::Connection> PartitionWorker::open_session() {
  const bool with_deadlock_timeout =
      shared_.options.deadlock_timeout_ms > 0 && !shared_.deadlock_timeout_refused.load();
  try {
    return std::make_unique<pg::Connection>(session_dsn(with_deadlock_timeout));
  } catch (const Failure& failure) {
    // A role that may not set it is refused at connect ("permission denied
    // to set parameter "deadlock_timeout""); the parameter's name is in the
    // message whatever the server's language.
    if (!with_deadlock_timeout || std::string_view(failure.what()).find("deadlock_timeout") == std::string_view::npos) {
      throw;
    }
    if (!shared_.deadlock_timeout_refused.exchange(true)) {
      const std::string_view why = failure.what();
      log("the shadow refused deadlock_timeout=" + std::to_string(shared_.options.deadlock_timeout_ms) +
          "ms for the executor's sessions (" + std::string(why.substr(0, why.find(" — "))) +
          "); they keep the server's, so batches of two partitions that deadlock each wait that long before one "
          "is run again unit by unit. To lower it, as a superuser on the shadow: GRANT SET ON PARAMETER "
          "deadlock_timeout TO <the executor's role>, or start with --deadlock-timeout-ms 0 to keep the server's "
          "without this message");
    }
    return std::make_unique<pg::Connection>(session_dsn(false));
  }
}

bool PartitionWorker::connect() {
  if (connection_) return true;
  auto backoff = milliseconds(100);
  for (;;) {
    if (stopping()) return false;
    try {
      auto connection = open_session();
      const bool triggers_or_rules = shadow_has_triggers_or_rules(*connection);
      {
        std::lock_guard lock(mutex_);
        connection_ = std::move(connection);
        cancel_ = PQgetCancel(connection_->get());
        if (ever_connected_) shared_.metrics.reconnects.Increment();
        ever_connected_ = true;
        RunnerConfig config{shared_.options.writes, shared_.options.statement_timeout_ms,
                            &shared_.options.normalization, shared_.options.executor_id, &abandon_,
                            shared_.options.pipeline, shared_.options.direct_batches, triggers_or_rules,
                            &shared_.shadow_ddl_seen};
        runner_ = std::make_unique<UnitRunner>(*connection_, std::move(config), shared_.analyzer);
        bookkeeping_as_text_told_ = false;
      }
      return !went_back();
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

bool PartitionWorker::went_back() {
  // Every position this worker reached was committed before it advanced, so
  // a lower one means the server lost commits: going on from here would skip
  // the units they held. Checked on every connect: a server that lost
  // commits (crash, restore, failover) broke the connection first.
  int64_t applied = -1;
  try {
    applied = read_next_offset(*connection_, id_);
  } catch (const Failure&) {
    disconnect();  // connect() retries with a fresh connection
    throw;
  }
  const int64_t reached = next_offset_.load();
  if (applied < 0 || applied >= reached) return false;
  log("partition " + std::to_string(id_.partition) + ": the shadow's position went back from offset " +
      std::to_string(reached) + " to " + std::to_string(applied) +
      " (the server lost committed transactions: a crash with synchronous_commit off, a restore or a failover to a "
      "server behind); applying again from offset " + std::to_string(applied));
  shared_.metrics.positions_went_back.Increment();
  std::lock_guard lock(mutex_);
  went_back_to_ = applied;
  stopping_ = true;
  queue_.clear();
  queued_bytes_ = 0;
  return true;
}

void PartitionWorker::disconnect() {
  std::lock_guard lock(mutex_);
  runner_.reset();
  if (cancel_) PQfreeCancel(cancel_);
  cancel_ = nullptr;
  connection_.reset();
}

void PartitionWorker::republish_logged(int64_t offset) {
  for (const auto& record : logged_record_at(*connection_, id_, offset)) {
    shared_.publish_logged(record, id_.partition);
    shared_.metrics.results_republished.Increment();
  }
}

void PartitionWorker::advance(int64_t offset) {
  shared_.ledger.applied(id_.partition, offset + 1);
  next_offset_ = offset + 1;
}

void PartitionWorker::record_not_replayed(const Unit& unit, const std::string& why) {
  const int64_t offset = unit.message.offset();
  log("partition " + std::to_string(id_.partition) + " offset " + std::to_string(offset) + ": failed " +
      std::to_string(RetryPolicy::kMaxFailedAttempts) + " times; recorded as not replayed (shadow error " +
      kNotReplayedSqlstate + ")");
  UnitReport report = runner_->record_not_replayed(*unit.request, id_, offset, why);
  if (!report.applied) {
    shared_.metrics.units_already_applied.Increment();
    republish_logged(offset);
  } else {
    shared_.metrics.units_applied.Increment();
    for (size_t i = 0; i < report.result.statements.size(); ++i) shared_.metrics.count(report.result.statements[i].result, report.notes[i]);
    shared_.publish(shared_.options.results_topic, id_.partition, id_.partition, offset, unit.request->key,
                    report.logged_payload);
  }
  advance(offset);
}

void PartitionWorker::record_skipped(const Unit& unit) {
  const int64_t from = unit.skipped_from;
  if (next_offset_.load() != from) return;  // recorded by an earlier attempt
  const int64_t to = std::min(shared_.earliest_offset(id_.partition), unit.message.offset());
  if (to <= from) return;  // not deleted: offsets without records (transaction markers)
  const wire::Gap gap = wire::retention_gap(shared_.consumer_name(), id_.topic, id_.partition, from, to);
  const LoggedRecord logged{from, Destination::results, "", wire::encode(gap)};
  if (!record_retention_gap(*connection_, id_, from, to, logged.payload)) return;  // moved by another owner
  shared_.metrics.retention_gap_units.Increment(static_cast<double>(gap.units));
  log("gap: " + gap.detail + "; continuing from offset " + std::to_string(to) + " (gap record published to " +
      shared_.options.results_topic + ")");
  shared_.publish_logged(logged, id_.partition);
  advance(to - 1);
}

void PartitionWorker::process(std::span<const Unit> batch) {
  if (batch.front().skipped_from >= 0) record_skipped(batch.front());
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
  const auto on_the_shadow = Clock::now();
  std::vector<UnitReport> reports = runner_->run_batch(units, id_);
  on_the_shadow_seconds_ += seconds_between(on_the_shadow, Clock::now());
  if (!bookkeeping_as_text_told_ && !runner_->bookkeeping_sent_as_text().empty()) {
    bookkeeping_as_text_told_ = true;
    shared_.metrics.bookkeeping_as_text.Increment();
    log("partition " + std::to_string(id_.partition) + ": this shadow connection cannot keep the executor's prepared " +
        "bookkeeping statements (" + runner_->bookkeeping_sent_as_text() +
        "); their texts are sent with every batch, which costs the shadow a parse and plan a batch. A " +
        "transaction-mode pooler between the executor and the shadow does this: connect the executor to the shadow directly");
  }
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
      shared_.metrics.count(statement.result, report.notes[i]);
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

}  // namespace shadowpipe::executor
