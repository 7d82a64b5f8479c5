// The application-side recorder: turns what the application ran on its
// primary database into shadow.requests records, without ever blocking or
// failing the application.
//
// Cost on the application thread: statement analysis (cached by SQL text),
// the result digest (core digest_result), encoding, and a non-blocking
// enqueue into librdkafka. librdkafka's own queue is the bounded queue
// (queue.buffering.max.messages / queue.buffering.max.kbytes); when it is
// full the unit is dropped and counted, never waited for. A background thread
// serves delivery reports.
//
// Every Recorder and Unit method is noexcept: nothing is ever thrown into the
// application. Only the constructor throws (shadowpipe::Failure), for a
// configuration that cannot work, at application start.
#pragma once

#include "shadowpipe/digest.hpp"
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/wire.hpp"

#include <libpq-fe.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prometheus {
class Registry;
}

namespace shadowpipe::producer {

// Why a recorded unit was not published. Each is counted exactly.
enum class DropReason {
  queue_full,           // librdkafka's bounded queue was full (broker slow or down)
  too_large,            // the record is over max_record_bytes (or the broker refused its size)
  sampled_out,          // the sampler left it out
  serialization_error,  // a statement could not be fingerprinted, or encoding failed
  delivery_failed,      // not acknowledged and certainly not written (rd_kafka_message_status NOT_PERSISTED)
  // Not acknowledged, but it may have reached the topic all the same
  // (POSSIBLY_PERSISTED: sent, and the broker's answer was lost or late).
  possibly_delivered,
};
inline constexpr std::array<DropReason, 6> kDropReasons = {
    DropReason::queue_full, DropReason::too_large, DropReason::sampled_out, DropReason::serialization_error,
    DropReason::delivery_failed, DropReason::possibly_delivered};
std::string_view to_string(DropReason reason);

// The name of the recorder's thread that serves librdkafka's delivery reports
// (as top -H, perf and /proc/<pid>/task/*/comm show it).
inline constexpr const char* kPollerThreadName = "shadow-poller";

struct Counters {
  // Units handed over for publishing (after the rollback policy). Every one
  // of them ends as exactly one of: published, dropped (by reason), pending.
  uint64_t recorded = 0;
  uint64_t published = 0;  // acknowledged by Kafka (acks=all)
  std::array<uint64_t, kDropReasons.size()> dropped_by_reason{};
  // Not part of `recorded`: units the policy or the application left out.
  uint64_t rollbacks_discarded = 0;  // rolled back while publish_rollbacks is false
  uint64_t abandoned = 0;            // a Unit destroyed without commit() or rollback()
  // Gap records (wire::Gap, reason producer_dropped) announcing write units
  // dropped as queue_full, delivery_failed or possibly_delivered, and the
  // write units they announced (acknowledged by Kafka).
  uint64_t gaps_announced = 0;
  uint64_t gap_units_announced = 0;
  // Dropped write units not announced yet (waiting for Kafka to accept
  // records again).
  uint64_t gap_units_pending = 0;

  uint64_t dropped(DropReason reason) const { return dropped_by_reason[static_cast<size_t>(reason)]; }
  uint64_t dropped() const;
  // Enqueued, delivery not yet reported.
  uint64_t pending() const;
};

struct Sampling {
  double rate = 1.0;  // share of units published, 0..1
  // Rate by statement fingerprint (16 hex digits). A unit's rate is the
  // highest rate among its statements.
  std::map<std::string, double, std::less<>> by_fingerprint;
  // Writes are published regardless of the rate unless this is true:
  // leaving a write out makes the shadow's data diverge from the primary's,
  // and every later read of those rows then reports a false discrepancy.
  bool sample_writes = false;
  uint64_t seed = 0;  // 0: seeded from std::random_device; else reproducible
};

struct RecorderConfig {
  // librdkafka properties (bootstrap.servers, TLS, SASL, tuning), applied
  // after default_kafka_properties(), so any default can be overridden.
  kafka::Properties kafka;
  std::string topic = wire::default_topics::requests;
  std::string source = "app";  // application name; "@<hostname>" is appended
  Sampling sampling;
  bool publish_rollbacks = true;  // false: rolled-back units are not published at all
  // search_path when neither the application (Unit::set_search_path) nor the
  // server (PQparameterStatus, PostgreSQL 18+) tells it; empty: the
  // executor's default.
  std::string default_search_path;
  digest::NormalizationConfig normalization;  // must match the executor's
  size_t max_record_bytes = 1'000'000;        // librdkafka's message.max.bytes default
  size_t max_statements = wire::Limits{}.max_statements;
  std::chrono::milliseconds flush_timeout{5000};  // how long the destructor waits for deliveries
  // Prometheus counters: registered in `registry` when given, else served on
  // /metrics at `metrics_bind` ("127.0.0.1:9103") when set, else not exported.
  std::shared_ptr<prometheus::Registry> registry;
  std::string metrics_bind;
  size_t analyzer_cache = 4096;  // statements whose analysis is cached
};

// enable.idempotence, acks=all, lz4, Java-compatible murmur2 partitioning,
// a short linger, and the bounded queue's size.
kafka::Properties default_kafka_properties();

// The partition librdkafka's murmur2_random partitioner (the Java client's
// default) gives a non-empty key among `partitions`.
int32_t partition_of(std::string_view key, int partitions);

// A globally unique request id: a UUIDv7 (millisecond time + 74 random bits).
std::string new_request_id();

using ParamView = std::optional<std::string_view>;  // nullopt is SQL NULL

namespace detail {
struct RecorderState;
struct UnitState;
}  // namespace detail

// One application unit of work: a transaction (published at commit(), or per
// the rollback policy at rollback()). Owned by one application thread. A
// default-constructed or moved-from Unit is inert: every call is a no-op.
class Unit {
 public:
  Unit() noexcept;
  Unit(Unit&&) noexcept;
  Unit& operator=(Unit&&) noexcept;
  ~Unit();  // without commit() or rollback(): counted as abandoned

  explicit operator bool() const noexcept { return state_ != nullptr; }

  void set_key(std::string_view key) noexcept;
  void set_search_path(std::string_view search_path) noexcept;
  // For drivers without a PGconn to read the session settings from.
  void set_session(const wire::Session& session) noexcept;

  // A statement as the primary answered it: result is the PGresult the
  // application got (success or error); nullptr when the primary gave no
  // result (connection lost). The result is only read, during the call.
  void add(std::string_view sql, std::span<const ParamView> params, const PGresult* result,
           int64_t latency_us) noexcept;
  void add(std::string_view sql, const std::vector<std::optional<std::string>>& params, const PGresult* result,
           int64_t latency_us) noexcept;
  // A statement that failed on the primary, for drivers without a PGresult.
  void add_error(std::string_view sql, std::span<const ParamView> params, std::string_view sqlstate,
                 std::string_view message, int64_t latency_us) noexcept;
  // A statement whose primary result the caller built itself, digest
  // included (shadow-proxy digests the rows as they pass on the wire).
  void add_result(std::string_view sql, std::span<const ParamView> params, wire::StatementResult result) noexcept;
  // The same, for a statement bound with binary values or carrying COPY
  // data (a v2 request record): params holds the bytes where binding says
  // binary.
  void add_result(std::string_view sql, std::span<const ParamView> params, wire::StatementResult result,
                  wire::Binding binding, std::optional<std::string> copy_data) noexcept;

  void commit() noexcept;
  void rollback() noexcept;

 private:
  friend class Recorder;
  explicit Unit(std::unique_ptr<detail::UnitState> state) noexcept;
  std::unique_ptr<detail::UnitState> state_;
};

// Thread-safe: many application threads record through one Recorder.
class Recorder {
 public:
  explicit Recorder(RecorderConfig config);  // throws Failure for a configuration that cannot work
  ~Recorder();  // flushes for up to flush_timeout; what is left is counted as delivery_failed
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // A transaction. conn (may be nullptr) is read for the session's
  // TimeZone, DateStyle and IntervalStyle with PQparameterStatus, which
  // never talks to the server. key: the consistency key; empty means the
  // request id (no ordering with any other unit).
  Unit begin(const PGconn* conn, std::string_view key = {}) noexcept;
  // A unit from a caller without a PGconn (shadow-proxy), with the session
  // it saw. autocommit: one statement outside any transaction block; its
  // transaction control is then left out and it is published as autocommit.
  Unit begin(const wire::Session& session, std::string_view key, bool autocommit) noexcept;

  // One autocommit statement: begin, add, commit in one call.
  void record(const PGconn* conn, std::string_view key, std::string_view sql, std::span<const ParamView> params,
              const PGresult* result, int64_t latency_us) noexcept;
  void record(const PGconn* conn, std::string_view key, std::string_view sql,
              const std::vector<std::optional<std::string>>& params, const PGresult* result,
              int64_t latency_us) noexcept;

  // A write unit the caller captured but could not hand over (shadow-proxy:
  // COPY data, binary values it cannot render, its own queue full): announced
  // downstream as a gap on its key's partition, as the recorder's own dropped
  // write units are, so the shadow's divergence is never silent.
  void announce_dropped_write(std::string_view key) noexcept;

  Counters counters() const noexcept;
  // Waits up to the deadline for outstanding deliveries; returns how many
  // are still undelivered.
  int flush(std::chrono::milliseconds deadline) noexcept;
  // The last delivery or enqueue error librdkafka reported, for diagnostics.
  std::string last_error() const noexcept;

 private:
  std::shared_ptr<detail::RecorderState> state_;
};

}  // namespace shadowpipe::producer
