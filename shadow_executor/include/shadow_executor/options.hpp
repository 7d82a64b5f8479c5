// Everything the executor is configured with; main.cpp fills it from the
// command line, tests fill it directly.
#pragma once

#include "shadowpipe/digest.hpp"
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/wire.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::executor {

// --writes: apply keeps the shadow in step with the primary; rollback runs
// every unit and rolls it back (proves the writes succeed, keeps nothing);
// skip executes reads only.
enum class WritesMode { apply, rollback, skip };
std::string_view to_string(WritesMode mode);
WritesMode parse_writes_mode(std::string_view text);  // throws Failure on anything else

struct Options {
  std::string shadow_dsn;
  // Objects of the shadow that reach outside it, accepted by name (exactly as
  // the start-up refusal lists them; see shadowpipe/preflight.hpp).
  std::vector<std::string> allow_outside_reach;
  std::string group = "shadow-executor";
  std::string executor_id;  // empty: default_executor_id()
  std::string requests_topic = wire::default_topics::requests;
  std::string results_topic = wire::default_topics::results;
  std::string dlq_topic = wire::default_topics::dlq;
  WritesMode writes = WritesMode::apply;
  int statement_timeout_ms = 0;  // 0: the server's setting
  digest::NormalizationConfig normalization;
  std::string metrics_bind;      // metrics::bind_address form; empty serves nothing
  int plans_per_minute = 60;
  double plan_latency_factor = 5.0;  // re-plan when latency > factor x running median
  kafka::Properties kafka;           // bootstrap.servers and -X passthrough
  wire::Limits limits;
  // Per partition; the partition is paused above it and resumed at half.
  // librdkafka drops a paused partition's prefetched records and fetches
  // them again on resume, so a small queue starves the worker (512 held the
  // benchmark to ~2,400 units/s whatever the shadow could do).
  size_t queue_capacity = 4096;
  // Group commit: a partition worker runs the units already queued (never
  // waiting for more), up to this many units or kMaxBatchStatements
  // statements, in one shadow transaction. 1: one transaction per unit.
  size_t batch_units = 64;
  // libpq pipeline mode: a batch's statements are sent without waiting for
  // each reply (see unit_runner.hpp).
  bool pipeline = false;
  // Run batches without per-unit savepoints first, falling back to them
  // when a statement fails (unit_runner.hpp). false: always per-unit savepoints.
  bool direct_batches = true;
  // The executor's sessions' synchronous_commit. off: a COMMIT does not wait
  // for its WAL flush. Safe for exactly-once: a unit and its offset commit
  // together, so a server crash loses a suffix of both, and a reconnect that
  // finds the position gone back applies that suffix again (partition_worker.hpp).
  std::string synchronous_commit = "off";
  std::chrono::milliseconds shutdown_deadline{15000};
  std::chrono::milliseconds commit_interval{1000};
  // How long the first connection to the shadow is retried at startup (a
  // server still starting or restarting) before the executor gives up.
  std::chrono::milliseconds startup_wait{60000};
};

// Statements per batch at most (each kept write takes a subtransaction id;
// PostgreSQL caches 64 per backend before snapshots get slower for everyone).
inline constexpr size_t kMaxBatchStatements = 64;

// "<hostname>-<pid>": unique per process, readable in results and logs.
std::string default_executor_id();

}  // namespace shadowpipe::executor
