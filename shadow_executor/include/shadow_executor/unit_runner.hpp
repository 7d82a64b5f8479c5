// Executes one shadow.requests unit on a shadow connection, exactly once.
//
// One shadow transaction per unit:
//   BEGIN; UPDATE shadowpipe.applied (the fence: only if next_offset <= this
//   offset, which also locks the partition's row against a second executor);
//   set_config(..., is_local) of the record's session settings and the
//   statement timeout; SAVEPOINT unit;
//   the statements: autocommit units run each in its own savepoint, so one
//   failure does not undo the others (as autocommit did on the primary); a
//   tx=commit unit stops at its first failure (the rest are reported 25P02,
//   as the primary's session would have seen); tx=rollback and --writes
//   rollback end in ROLLBACK TO SAVEPOINT unit;
//   INSERT the result record into shadowpipe.results_log; COMMIT.
// Bookkeeping commands share round trips with each other (one simple-query
// script before the first statement, one after the last).
#pragma once

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/options.hpp"

#include "shadowpipe/digest.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>
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

struct RunnerConfig {
  WritesMode writes = WritesMode::apply;
  int statement_timeout_ms = 0;
  const digest::NormalizationConfig* normalization = nullptr;  // null: default rules
  std::string executor_id;
  // Set by the shutdown deadline: the unit is rolled back instead of
  // committed (its statements were likely cancelled, so their results lie).
  const std::atomic<bool>* abandon = nullptr;
};

// Why a statement ended as it did, beyond what the wire result says; drives
// the metrics and plan capture.
enum class Disposition {
  executed,
  refused_by_guard,      // reaches outside the database
  unparsable,            // the parser refused it; not sent to the server
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

class UnitRunner {
 public:
  UnitRunner(const pg::Connection& conn, RunnerConfig config, statement::Analyzer& analyzer);

  // Runs the unit at `offset` of partition `id`. Throws ConnectionLost when
  // the connection broke; Failure when the bookkeeping itself is refused
  // (missing grants, missing shadowpipe schema).
  UnitReport run(const wire::Request& request, const PartitionId& id, int64_t offset);

  // Records a dead letter at `offset` (fence and log in one statement).
  // Returns false when the offset was already applied.
  bool record_dead_letter(const PartitionId& id, int64_t offset, std::string_view key, const std::string& payload);

  // EXPLAIN (FORMAT JSON) of one statement with its parameters and the unit's
  // session settings, in its own transaction (rolled back). nullopt when the
  // statement cannot be explained.
  std::optional<wire::PlanSummary> explain(const wire::Request& request, size_t statement_index);

 private:
  std::vector<pg::Result> script(const std::string& sql) const;
  pg::Result statement(const wire::Statement& statement, int statement_count) const;
  std::string literal(std::string_view text) const;
  std::string settings_select(const wire::Session& session) const;
  std::string fence_update(const PartitionId& id, int64_t offset) const;
  std::string log_values(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                         std::string_view payload) const;
  std::string log_insert(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                         std::string_view payload) const;
  bool fence_and_log(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                     const std::string& payload);
  const digest::NormalizationRules& rules_for(std::string_view fingerprint) const;

  const pg::Connection& conn_;
  RunnerConfig config_;
  statement::Analyzer& analyzer_;
  digest::NormalizationConfig default_normalization_;
};

}  // namespace shadowpipe::executor
