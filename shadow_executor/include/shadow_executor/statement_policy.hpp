// The executor's statement policy, as pure functions of the records, the
// statement analysis and the shadow's replies: what each statement of a
// unit is and how it is replayed or refused, which units may share a
// transaction, and what a shadow error means (the unit's result, a retry,
// a batch to run again unit by unit). No I/O: unit-tested without a server
// (tests/shadow_executor/policy_test.cpp).
#pragma once

#include "shadow_executor/options.hpp"
#include "shadow_executor/shadow_session.hpp"

#include "shadowpipe/digest.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::executor {

// SQLSTATEs that say "try again later", not "this unit is wrong": the
// server shutting down or starting (57P01, 57P03), too many connections
// (53300), a serialization failure or deadlock (40001, 40P01: the shadow's
// concurrency, not the traffic's), disk full (53100).
bool transient_sqlstate(std::string_view sqlstate);

// SQLSTATEs a statement gets because the batch holds the locks of several
// units at once (a deadlock the primary, committing unit by unit, did not
// have; a serialization failure against another partition's batch).
bool batch_artefact(std::string_view sqlstate);

// Why a parsed statement text must not be sent to the shadow although it stays
// inside the database; empty when it may be. Transaction control in a text of
// several statements (its COMMIT would end the executor's transaction),
// COPY FROM STDIN / TO STDOUT (puts the connection in COPY state), and
// statements whose effect outlives the unit on the shared connection
// (SET ROLE, SET SESSION AUTHORIZATION, session advisory locks, PREPARE,
// DECLARE ... WITH HOLD, LISTEN, a role change through set_config(...,
// false) — or a set_config whose name the text does not fix — named like
// SET ROLE, temporary tables, views and sequences without ON COMMIT DROP).
// Each refusal is counted (statements_not_executed_total, reason
// not_replayable) and its result says why. A plain SET and any other
// set_config(..., false) are replayed, in a unit of their own, and the
// session is reset (RESET ALL) after its COMMIT.
// has_copy_data: the record carries the data of its COPY FROM STDIN (requests v2).
std::string not_replayable(const statement::Analysis& analysis, bool has_copy_data = false);

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

// Messages of the statuses the executor gives to statements it did not run.
inline constexpr const char* kWritesSkippedMessage = "writes skipped (--writes skip)";
inline constexpr const char* kAbortedMessage =
    "current transaction is aborted, commands ignored until end of transaction block";
inline constexpr const char* kAbortedSqlstate = "25P02";
inline constexpr const char* kNotReplayedSqlstate = "XX000";
inline constexpr const char* kNotReplayedMessage = "not replayed: the executor failed on this unit repeatedly: ";

wire::StatementResult not_executed(wire::Status status, std::string sqlstate, std::string message);

// What the executor does with one statement of a unit, decided before any of
// the unit's statements runs.
struct Step {
  wire::ShadowStatement shadow;
  StatementNote note;
  bool execute = false;
  int statement_count = 1;
  // Transaction control replayed inside the unit (savepoints under names of
  // their own, SET CONSTRAINTS as is, SET TRANSACTION READ ONLY): the text
  // sent instead of the record's.
  std::optional<wire::Statement> replayed;
  bool restores = false;  // ROLLBACK TO SAVEPOINT: ends the abort a failure left, as on the primary
  // A plain SET or a set_config(..., false) whose setting outlives the
  // unit: the session is reset (RESET ALL) after the unit's COMMIT.
  bool changes_session = false;
  // DEALLOCATE or DISCARD ALL in its text: the runner's own prepared
  // statements may be gone once it ran, whether or not it succeeded.
  bool drops_prepared_statements = false;

  // Fills the result from the server's reply; false when it failed.
  bool record(const Reply& reply, const digest::NormalizationRules& rules);
  // After a failure in a transaction unit: what the primary's session saw.
  void not_reached();
};

// The steps of a unit's statements, in order. `normalization` may be null
// (default rules).
std::vector<Step> plan_unit(const wire::Request& request, statement::Analyzer& analyzer, WritesMode writes,
                            const digest::NormalizationConfig& normalization);

// Whether the unit's work is rolled back at its end (tx=rollback, --writes
// rollback, a READ ONLY transaction: nothing to keep).
bool undoes_unit(const wire::Request& request, const std::vector<Step>& steps, WritesMode writes);
// Whether each statement runs in a savepoint of its own, so one failure
// does not undo the others (an autocommit unit of several statements).
bool runs_per_statement(const wire::Request& request);

// Whether the unit must have a transaction of its own instead of sharing a
// batch: it holds a utility statement (SET, ...: it may change the session,
// which is reset after its commit), a text of several statements (it may
// hide a COMMIT; it cannot be pipelined), or, in a transaction, savepoints,
// SET CONSTRAINTS or a transaction mode (they act on the whole transaction,
// and a ROLLBACK TO after a failure must reach the server).
bool runs_alone(const wire::Request& request, statement::Analyzer& analyzer);
// Whether `next` may join a batch that holds `first`.
bool may_share_batch(const wire::Request& first, const wire::Request& next, statement::Analyzer& analyzer);
// " ISOLATION LEVEL x" when the unit's BEGIN or SET TRANSACTION named one.
std::string isolation_clause(const wire::Request& request, statement::Analyzer& analyzer);

// What a failed statement of the traffic means.
enum class ShadowError {
  unit_result,    // the unit's own error: recorded, the unit goes on as the primary's did
  redo_serially,  // an artefact of the batch: roll back, run each unit in a transaction of its own
  transient,      // a passing cause the primary did not have: roll back, retry the units later
};
ShadowError classify_shadow_error(const wire::StatementResult& shadow, const wire::Statement& primary, bool in_batch);

// What a COMMIT that did not commit means.
enum class CommitFailure {
  abandoned,        // cancelled at shutdown: the next owner runs the units
  connection_lost,  // the server went away or cancelled: outcome unknown, consult shadowpipe.applied
  redo_serially,    // a batch: which unit failed is unknown, each runs alone
  transient,        // a passing cause: the unit runs again later
  unit_result,      // the unit's own (a deferred constraint): recorded on its last statement
};
CommitFailure classify_commit_failure(std::string_view sqlstate, bool abandoning, bool in_batch);

}  // namespace shadowpipe::executor
