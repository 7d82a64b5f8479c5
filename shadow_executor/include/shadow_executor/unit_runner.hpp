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
//   one statement that moves shadowpipe.applied to the last offset + 1 and
//   logs the result records in shadowpipe.results_log (BatchLog); COMMIT.
// The batch commits atomically with its offset, so exactly-once holds as for
// one unit. When COMMIT fails (a deferred constraint, a serialization
// failure), or a statement is chosen as a deadlock victim or fails to
// serialize (an artefact of holding several units' locks at once), the batch
// is rolled back and its units are run again one unit per transaction.
//
// Direct batches (RunnerConfig::direct_batches): a batch whose units have
// nothing to undo and no savepoints of their own first runs without any
// savepoint command — BEGIN, the fence, the settings, the statements, the
// bookkeeping, COMMIT. The first statement that fails with an error that
// would be its unit's result ends that attempt: the transaction (offset and
// log included) is rolled back and the batch runs again on the savepoint
// path above, so every unit's outcome is what the savepoint path gives. A
// fingerprint that failed once sends the batches holding it straight to the
// savepoint path afterwards.
//
// Without pipeline mode each statement is one round trip, and the savepoint
// commands between them share a round trip (a simple-query script before the
// next statement). With pipeline mode (RunnerConfig::pipeline) the whole batch
// is sent at once; then one round trip logs and commits. Both are the one
// savepoint engine (savepoint_engine.hpp) with two transports; what each
// statement is and what an error means is statement_policy.hpp; the runner
// talks to the shadow through a ShadowSession (shadow_session.hpp).
#pragma once

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/catalog_facts.hpp"
#include "shadow_executor/options.hpp"
#include "shadow_executor/runner_errors.hpp"
#include "shadow_executor/shadow_session.hpp"
#include "shadow_executor/statement_policy.hpp"

#include "shadowpipe/digest.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace shadowpipe::executor {

struct PlannedUnit;  // savepoint_engine.hpp

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
  // Which batches try the direct path first (see above).
  DirectBatches direct_batches = DirectBatches::off;
  // Whether the shadow has user triggers or rewrite rules (read at connect):
  // then an UPDATE or DELETE may do what its text does not show.
  bool shadow_has_triggers_or_rules = true;
  // Set once DDL ran on any of the executor's connections (a trigger created
  // through one partition's session is there for all of them); shared by
  // every runner of the executor. Null: this runner keeps its own.
  std::atomic<bool>* ddl_seen = nullptr;
};

// Whether the shadow database has user triggers or rewrite rules (the
// system's own are not counted): RunnerConfig::shadow_has_triggers_or_rules.
bool shadow_has_triggers_or_rules(const pg::Connection& connection);

struct UnitReport {
  bool applied = false;  // false: this offset was already applied (by us before a crash, or another executor)
  wire::ShadowResult result;
  std::vector<StatementNote> notes;  // parallel to result.statements
  std::string logged_payload;        // the encoded record kept in results_log
};

// One unit of a batch: a request and its offset (offsets ascending).
struct BatchUnit {
  const wire::Request* request = nullptr;
  int64_t offset = -1;
};

class UnitRunner {
 public:
  // Over a shadow connection (the session is a PgSession of it).
  UnitRunner(const pg::Connection& conn, RunnerConfig config, statement::Analyzer& analyzer);
  // Over any session (the unit tests' fake); `session` outlives the runner.
  UnitRunner(ShadowSession& session, RunnerConfig config, statement::Analyzer& analyzer);
  ~UnitRunner();
  UnitRunner(const UnitRunner&) = delete;  // quote_ and catalog_ hold `this`
  UnitRunner& operator=(const UnitRunner&) = delete;

  // statement_policy.hpp's, here for the callers that know the runner.
  static bool runs_alone(const wire::Request& request, statement::Analyzer& analyzer) {
    return executor::runs_alone(request, analyzer);
  }
  static bool may_share_batch(const wire::Request& first, const wire::Request& next, statement::Analyzer& analyzer) {
    return executor::may_share_batch(first, next, analyzer);
  }

  // Runs the unit at `offset` of partition `id` (a batch of one). Throws
  // Transient (connection_lost) when the connection broke, (refused_for_now) when the
  // shadow refused for a passing cause (nothing recorded: run it again
  // later); Failure when the bookkeeping itself is refused (missing grants,
  // missing shadowpipe schema).
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

  // Batches whose statements all ran on the direct path, since this runner was made.
  size_t direct_batches_run() const { return direct_batches_run_; }

  // Why this connection sends the bookkeeping statements' texts with every
  // batch instead of running them prepared (the server refused PREPARE, or
  // lost them three times); empty while they are prepared or not yet tried.
  // Texts cost the shadow a parse and plan a batch: the worker says so once.
  const std::string& bookkeeping_sent_as_text() const { return bookkeeping_as_text_why_; }

 private:
  class Attempt;
  enum class Outcome { committed, fence_moved, redo_serially, redo_with_savepoints };

  // `try_direct`: false forces the savepoint path.
  Outcome attempt(const std::vector<BatchUnit>& units, size_t first, const PartitionId& id,
                  std::vector<UnitReport>& reports, bool try_direct);
  bool runs_direct(const std::vector<PlannedUnit>& planned);
  // Under DirectBatches::safe: whether running this statement twice (a
  // failed direct attempt and its rerun) leaves nothing behind, as far as
  // the text and the shadow's triggers and rules tell.
  bool reruns_cleanly(const wire::Statement& statement);
  // `prepared`: the log runs as the prepared statement (else by its text).
  Outcome finish(const std::vector<BatchUnit>& units, size_t first, const PartitionId& id,
                 std::vector<UnitReport>& reports, const std::vector<std::string>& closing, bool session_changed,
                 bool prepared);
  // Records every statement of the unit as not run, with `status`, and the offset.
  void record_unrun(const wire::Request& request, const PartitionId& id, int64_t offset, const std::string& sqlstate,
                    const std::string& message, UnitReport& report);
  UnitReport blank_report(const wire::Request& request, const PartitionId& id, int64_t offset) const;
  bool fence_and_log(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                     const std::string& payload);
  int64_t next_offset(const PartitionId& id);
  std::string settings_select(const wire::Session& session);
  bool abandoning() const { return config_.abandon && config_.abandon->load(); }
  const digest::NormalizationConfig& normalization() const {
    return config_.normalization ? *config_.normalization : default_normalization_;
  }

  // The batch statements PREPAREd on this connection
  // (bookkeeping_sql::prepare_batch_statements). `no`: not yet, or to be
  // prepared again (after traffic that may have dropped them: DEALLOCATE,
  // DISCARD ALL; or the server said it lost them); `unavailable`:
  // the server does not keep them (refused, or lost three times: a
  // transaction-mode pooler between), so their texts are sent, as before.
  enum class Prepared { no, yes, unavailable };
  void prepare_batch_statements();
  [[noreturn]] void batch_statements_lost(const std::string& sqlstate, const std::string& message);

  std::unique_ptr<ShadowSession> owned_session_;
  ShadowSession& session_;
  Quote quote_;
  RunnerConfig config_;
  statement::Analyzer& analyzer_;
  CatalogFacts catalog_;
  digest::NormalizationConfig default_normalization_;
  std::string fence_error_;  // why the last fence check refused
  // Fingerprints of statements that failed in a direct batch: their batches
  // take the savepoint path at once (cleared when it grows past a bound).
  std::unordered_set<std::string> failed_fingerprints_;
  // DDL ran: triggers or rules may exist now that the check at connect did
  // not see. config_.ddl_seen points here when no shared flag was given.
  std::atomic<bool> own_ddl_seen_{false};
  size_t direct_batches_run_ = 0;
  Prepared prepared_ = Prepared::no;
  int prepared_lost_ = 0;
  std::string bookkeeping_as_text_why_;
};

}  // namespace shadowpipe::executor
