// Executes one partition's units in offset order on its own shadow
// connection, on a thread of its own; the executor's main loop feeds it the
// partition's messages. Internal to shadowpipe_executor.
#pragma once

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/shared.hpp"
#include "shadow_executor/unit_runner.hpp"

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/wire.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace shadowpipe::executor {

class PartitionWorker {
 public:
  using Clock = std::chrono::steady_clock;
  PartitionWorker(Shared& shared, int32_t partition, int64_t next_offset)
      : shared_(shared),
        id_{shared.options.group, shared.options.requests_topic, partition},
        next_offset_(next_offset),
        expected_offset_(next_offset),
        thread_([this] { loop(); }) {}

  ~PartitionWorker() { stop(Clock::now() + shared_.options.shutdown_deadline); }

  void push(kafka::Message message);

  // What waits in the queue: units and their payloads' bytes (read together).
  struct Backlog {
    size_t units = 0;
    size_t bytes = 0;
  };
  Backlog backlog() const;

  int64_t next_offset() const { return next_offset_.load(); }

  // Where the shadow's position went back to, found on a reconnect, when it
  // is below what this worker applied (the server lost committed
  // transactions: a crash with synchronous_commit off, a restore or a
  // failover to a server behind). The worker has stopped then; its
  // partition must be started again from there. nullopt: none.
  std::optional<int64_t> went_back_to() const {
    const int64_t to = went_back_to_.load();
    return to >= 0 ? std::optional<int64_t>(to) : std::nullopt;
  }

  // Finishes the unit in flight and drops the queued ones (the partition's
  // next owner reads them again from shadowpipe.applied). Past the deadline
  // the running statement is cancelled and its unit rolled back.
  void stop(Clock::time_point deadline);

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
    // Offsets from here to this message's were never received: deleted by
    // retention while the partition was behind, when Kafka's earliest offset
    // says so (otherwise transaction markers). -1: none skipped.
    int64_t skipped_from = -1;
  };

  // The next message not applied yet: the one a batch left over, else the
  // queue's front. Never waits.
  std::optional<Unit> take();

  // SQL the parser cannot read goes to the dead-letter topic, the whole unit,
  // as the comparator does with its request: the guard cannot vouch for it.
  std::optional<Error> unparsable_sql(const wire::Request& request);

  // The `refused` result of a dead-lettered unit whose request id can be
  // read (from `request`, else from a decode without limits, for a record
  // refused for its size); empty when it cannot.
  std::string refusal_of(const kafka::Message& message, const wire::Request* request, const Error& why);

  // Group commit: the first unit and the ones queued behind it that may
  // share its transaction (same session settings, nothing that must run
  // alone), within the batch limits. A unit that may not join waits for the
  // next batch.
  std::vector<Unit> next_batch();

  void loop();

  bool stopping() const;

  static std::string offsets(std::span<const Unit> batch);

  // Retries a batch as RetryPolicy says (retry_policy.hpp).
  void process_with_retry(std::span<const Unit> batch);

  // Returns true when stopping.
  bool sleep_unless_stopping(std::chrono::milliseconds duration);

  bool connect();
  // The shadow DSN with this partition's session settings as startup parameters.
  std::string session_dsn(bool with_deadlock_timeout) const;
  // A connection with them; without deadlock_timeout, for good, once the
  // shadow refuses it to the executor's role (said once).
  std::unique_ptr<pg::Connection> open_session();
  // After a connect: stops the worker when the shadow's position is below
  // what it applied (see went_back_to()).
  bool went_back();

  void disconnect();

  // The offset was applied before (a crash or a dropped connection after
  // COMMIT): publish what was logged then; the comparator drops duplicates.
  void republish_logged(int64_t offset);

  void advance(int64_t offset);

  void record_not_replayed(const Unit& unit, const std::string& why);

  void process(std::span<const Unit> batch);

  // Announces and records the offsets retention deleted before `unit`
  // (Unit::skipped_from), like the executor does on assignment.
  void record_skipped(const Unit& unit);

  Shared& shared_;
  const PartitionId id_;
  std::atomic<int64_t> next_offset_;
  std::atomic<int64_t> went_back_to_{-1};
  std::atomic<bool> abandon_{false};  // stop()'s deadline passed: roll back the unit in flight
  double on_the_shadow_seconds_ = 0;  // of the batch in hand: its run_batch calls (worker_seconds metrics)
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable finished_;
  std::deque<kafka::Message> queue_;
  size_t queued_bytes_ = 0;  // the payloads in queue_
  std::optional<Unit> carry_;  // taken from the queue but left for the next batch (worker thread only)
  int64_t expected_offset_;     // the offset after the last one taken (worker thread only)
  bool stopping_ = false;
  bool done_ = false;
  bool ever_connected_ = false;
  bool bookkeeping_as_text_told_ = false;  // logged once a connection (UnitRunner::bookkeeping_sent_as_text)
  Streak transient_;  // connection losses and transient refusals (worker thread only)
  std::unique_ptr<pg::Connection> connection_;
  PGcancel* cancel_ = nullptr;
  std::unique_ptr<UnitRunner> runner_;
  std::thread thread_;  // last: starts once everything above is built
};

}  // namespace shadowpipe::executor
