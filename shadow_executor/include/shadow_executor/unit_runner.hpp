// Executes shadow.requests units on a shadow connection, exactly once.
//
// Group commit: the units of one batch (consecutive offsets of one partition
// with the same session settings) share ONE shadow transaction:
//   BEGIN; the fence (SELECT ... FOR UPDATE of the partition's
//   shadowpipe.applied row, refused unless next_offset <= the batch's first
//   offset: it locks the row against a second executor); set_config(...,
//   is_local) of the batch's session settings and the statement timeout;
//   SAVEPOINT sp — sp always marks the last point whose work is kept;
//   each unit: autocommit units run each statement in its own savepoint, so
//   one failure does not undo the others (as autocommit did on the
//   primary); a tx=commit unit stops at its first failure (the rest are
//   reported 25P02, as the primary's session would have seen) and is rolled
//   back to sp; tx=rollback and --writes rollback units are rolled back to sp;
//   a kept unit moves sp past its work (RELEASE SAVEPOINT sp; SAVEPOINT sp);
//   one UPDATE of shadowpipe.applied to the last offset + 1, one multi-row
//   INSERT of the result records into shadowpipe.results_log; COMMIT.
// The batch commits atomically with its offset, so exactly-once holds as for
// one unit. When COMMIT fails (a deferred constraint, a serialization
// failure), or a statement is chosen as a deadlock victim or fails to
// serialize (an artefact of holding several units' locks at once), the batch
// is rolled back and its units are run again one unit per transaction.
//
// Without pipeline mode each statement is one round trip, and the savepoint
// commands between them share a round trip (a simple-query script before the
// next statement). With pipeline mode (RunnerConfig::pipeline) the whole batch
// is sent at once — a pipeline sync after the start and after each unit (and
// after each statement of an autocommit unit), every segment starting with
// ROLLBACK TO SAVEPOINT sp — so a failure, which makes the server skip the
// rest of its segment, is undone by the next segment and never reaches the
// next unit; then one round trip logs and commits.
#pragma once

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/options.hpp"

#include "shadowpipe/catalog.hpp"
#include "shadowpipe/digest.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace shadowpipe::executor {

// The shadow connection broke mid-unit: the transaction did not commit (or
// its outcome is unknown); reconnect and consult shadowpipe.applied.
class ConnectionLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The executor is shutting down past its deadline: the unit in flight was
// rolled back, not recorded; the partition's next owner runs it again.
class UnitAbandoned : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The shadow refused for a passing cause (transient_sqlstate): nothing
// committed; the same units run again after a backoff. Never a unit's
// error, never counted toward its failure limit.
class TransientFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// SQLSTATEs that say "try again later", not "this unit is wrong": the
// server shutting down or starting (57P01, 57P03), too many connections
// (53300), a serialization failure or deadlock (40001, 40P01: the shadow's
// concurrency, not the traffic's), disk full (53100).
bool transient_sqlstate(std::string_view sqlstate);

struct RunnerConfig {
  WritesMode writes = WritesMode::apply;
  int statement_timeout_ms = 0;
  const digest::NormalizationConfig* normalization = nullptr;  // null: default rules
  std::string executor_id;
  // Set by the shutdown deadline: the unit is rolled back instead of
  // committed (its statements were likely cancelled, so their results lie).
  const std::atomic<bool>* abandon = nullptr;
  // Send each batch through libpq's pipeline mode (see above).
  bool pipeline = false;
};

// Why a statement ended as it did, beyond what the wire result says; drives
// the metrics and plan capture.
enum class Disposition {
  executed,
  refused_by_guard,      // reaches outside the database
  unparsable,            // the parser refused it; not sent to the server
  not_replayable,        // cannot be replayed safely (see classify): not sent
  transaction_control,   // BEGIN/COMMIT/SAVEPOINT… inside a unit: the executor owns the transaction
  writes_skipped,        // --writes skip
  not_reached,           // after a failure in a tx=commit unit
};

struct StatementNote {
  Disposition disposition = Disposition::executed;
  statement::Kind kind = statement::Kind::read;
};

struct UnitReport {
  bool applied = false;  // false: this offset was already applied (by us before a crash, or another executor)
  wire::ShadowResult result;
  std::vector<StatementNote> notes;  // parallel to result.statements
  std::string logged_payload;        // the encoded record kept in results_log
};

// Messages of the statuses the executor gives to statements it did not run.
inline constexpr const char* kWritesSkippedMessage = "writes skipped (--writes skip)";
inline constexpr const char* kAbortedMessage =
    "current transaction is aborted, commands ignored until end of transaction block";
inline constexpr const char* kAbortedSqlstate = "25P02";
inline constexpr const char* kNotReplayedSqlstate = "XX000";
inline constexpr const char* kNotReplayedMessage = "not replayed: the executor failed on this unit repeatedly: ";

// Why a parsed statement text must not be sent to the shadow although it stays
// inside the database; empty when it may be. Transaction control in a text of
// several statements (its COMMIT would end the executor's transaction),
// COPY FROM STDIN / TO STDOUT (puts the connection in COPY state), and
// statements whose effect outlives the unit on the shared connection
// (SET ROLE, SET SESSION AUTHORIZATION, session advisory locks, PREPARE,
// DECLARE ... WITH HOLD, set_config(..., false) — a role change through it
// named like SET ROLE —, temporary tables, views and sequences without ON
// COMMIT DROP). Each refusal is counted (statements_not_executed_total,
// reason not_replayable) and its result says why.
std::string not_replayable(const statement::Analysis& analysis);

// One unit of a batch: a request and its offset (offsets ascending).
struct BatchUnit {
  const wire::Request* request = nullptr;
  int64_t offset = -1;
};

class UnitRunner {
 public:
  UnitRunner(const pg::Connection& conn, RunnerConfig config, statement::Analyzer& analyzer);

  // Whether the unit must have a transaction of its own instead of sharing
  // a batch: it holds a utility statement (SET, ...: it may change the
  // session, which is reset after its commit) or a text of several
  // statements (it may hide a COMMIT; it cannot be pipelined).
  static bool runs_alone(const wire::Request& request, statement::Analyzer& analyzer);
  // Whether `next` may join a batch that holds `first`.
  static bool may_share_batch(const wire::Request& first, const wire::Request& next, statement::Analyzer& analyzer);

  // Runs the unit at `offset` of partition `id` (a batch of one). Throws
  // ConnectionLost when the connection broke; Failure when the bookkeeping
  // itself is refused (missing grants, missing shadowpipe schema).
  UnitReport run(const wire::Request& request, const PartitionId& id, int64_t offset);

  // Runs consecutive units of partition `id` in one transaction (see above).
  // One report per unit, in order; a report's `applied` is false when its
  // offset was applied before. Same exceptions as run(). Units that must run
  // alone (runs_alone) are only accepted as a batch of one.
  std::vector<UnitReport> run_batch(const std::vector<BatchUnit>& units, const PartitionId& id);

  // Records a dead letter at `offset` (fence and log in one statement).
  // Returns false when the offset was already applied.
  bool record_dead_letter(const PartitionId& id, int64_t offset, std::string_view key, const std::string& payload);

  // Records `offset` as applied with nothing to run and no record (a gap
  // record a recorder put on the requests topic). Returns false when the
  // offset was already applied.
  bool record_passed_over(const PartitionId& id, int64_t offset);

  // Records the unit at `offset` as not replayed, without running it: every
  // statement a shadow error (kNotReplayedSqlstate) carrying `why`. For a
  // unit that failed again and again without a connection loss, so that it
  // cannot block its partition. Throws like run() when the recording fails.
  UnitReport record_not_replayed(const wire::Request& request, const PartitionId& id, int64_t offset,
                                 const std::string& why);

  // EXPLAIN (FORMAT JSON) of one statement with its parameters and the unit's
  // session settings, in its own transaction (rolled back). nullopt when the
  // statement cannot be explained.
  std::optional<wire::PlanSummary> explain(const wire::Request& request, size_t statement_index);

 private:
  struct Step;
  enum class Outcome { committed, fence_moved, redo_serially };

  std::vector<Step> classify(const wire::Request& request);
  Outcome attempt_plain(const std::vector<BatchUnit>& units, size_t first, const PartitionId& id,
                        std::vector<UnitReport>& reports);
  Outcome attempt_pipelined(const std::vector<BatchUnit>& units, size_t first, const PartitionId& id,
                            std::vector<UnitReport>& reports);
  Outcome finish(const std::vector<BatchUnit>& units, size_t first, const PartitionId& id,
                 std::vector<UnitReport>& reports, std::string pending, bool session_changed);
  void record_settings_refused(const BatchUnit& unit, const PartitionId& id, const std::string& sqlstate,
                               const std::string& message, UnitReport& report);
  std::vector<pg::Result> script(const std::string& sql) const;
  pg::Result statement(const wire::Statement& statement, int statement_count) const;
  std::string fence_check(const PartitionId& id, int64_t first_offset) const;
  std::string advance_applied(const PartitionId& id, int64_t last_offset) const;
  std::string literal(std::string_view text) const;
  std::string settings_select(const wire::Session& session) const;
  // " ISOLATION LEVEL x" when the unit's BEGIN or SET TRANSACTION named one.
  std::string isolation_clause(const wire::Request& request);
  std::string fence_update(const PartitionId& id, int64_t offset) const;
  std::string log_values(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                         std::string_view payload) const;
  bool fence_and_log(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                     const std::string& payload);
  const digest::NormalizationRules& rules_for(std::string_view fingerprint) const;
  // Names the result's user types and adds what the shadow's catalog says
  // about its columns (catalog.hpp), over a connection of its own so no
  // lookup ever runs inside a unit's transaction or pipeline.
  void describe_from_catalog(const std::string& fingerprint, const std::string& sql, const pg::Result& executed,
                             wire::StatementResult& out);
  struct CatalogFacts {
    std::vector<wire::VolatileColumn> volatile_columns;
    std::string volatile_statement;
    std::optional<bool> order_total;
  };
  static constexpr size_t kMaxCatalogFacts = 4096;  // fingerprints; the cache starts over beyond

  const pg::Connection& conn_;
  std::unique_ptr<pg::Connection> catalog_conn_;
  std::unique_ptr<catalog::Catalog> catalog_;
  bool catalog_unavailable_ = false;
  std::unordered_map<std::string, CatalogFacts> catalog_facts_;  // by fingerprint and result width
  RunnerConfig config_;
  statement::Analyzer& analyzer_;
  digest::NormalizationConfig default_normalization_;
  std::string fence_error_;  // why the last fence check refused
};

}  // namespace shadowpipe::executor
