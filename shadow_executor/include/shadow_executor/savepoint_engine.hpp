// The savepoint engine: how the units of a batch share one shadow
// transaction, each kept or undone on its own. One plan, two transports.
//
// The plan (plan_segments, pure) cuts the batch into segments. Every segment
// starts by rolling back to the savepoint that marks the last kept work (a
// no-op when nothing failed or is to be undone since), runs its statements,
// and, when the work is kept, moves the savepoint past it (RELEASE,
// SAVEPOINT). A failure skips the rest of its segment — the statements, as
// the primary's aborted transaction did, and the moving of the savepoint —
// and the next segment's rollback undoes it. A transaction unit is one
// segment (a ROLLBACK TO SAVEPOINT of the unit's own ends the skipping, as on
// the primary; such a unit runs alone, on the plain transport, since a
// pipeline would skip it); an autocommit unit of several statements is a
// segment per statement, so one failure does not undo the others; a unit to
// undo keeps its statements apart under a nested savepoint v so sp stays
// before it.
//
// A batch may also run without savepoints (plan_direct_segment): every
// statement in one segment, nothing between them. It is only correct while
// nothing fails and nothing is to be undone: the runner uses it for batches
// with no unit to undo and no user savepoint, stops at the first failure,
// rolls the whole transaction back and runs the batch again with the
// savepoints (unit_runner.cpp). The server then runs one command per
// statement instead of four.
//
// PlainTransport sends a statement per round trip, the savepoint commands
// before it in one script (a rollback to a savepoint nothing touched since is
// left out), and skips what the plan skips after a failure itself.
// PipelinedTransport sends the whole batch at once in libpq's pipeline mode,
// a sync after each segment: the server does the skipping.
#pragma once

#include "shadow_executor/shadow_session.hpp"
#include "shadow_executor/statement_policy.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shadowpipe::executor {

struct Command {
  enum class Type { savepoint, rollback_to, release, statement, bookkeeping };
  Type type = Type::bookkeeping;
  std::string text;  // the savepoint's name; bookkeeping: the SQL
  // Statements: which unit and step, the text sent and how.
  size_t unit = 0;
  size_t step = 0;
  const wire::Statement* statement = nullptr;
  int statement_count = 1;
  bool restores = false;  // ends the skipping after a failure (a user's ROLLBACK TO SAVEPOINT)

  bool is_statement() const { return type == Type::statement; }
  std::string sql() const;  // for the non-statements
};
using Segment = std::vector<Command>;

// One unit of the batch as the plan sees it.
struct PlannedUnit {
  const wire::Request* request = nullptr;
  std::vector<Step> steps;
  bool undo = false;           // undoes_unit
  bool per_statement = false;  // runs_per_statement
};

// The segments of a batch, in order; units with nothing to execute have none.
std::vector<Segment> plan_segments(const std::vector<PlannedUnit>& units);
// The batch's statements in order as one segment, without savepoint commands
// (empty when nothing executes). Only for units with nothing to undo and no
// step that restores (may_run_direct); a failure skips everything after it.
std::vector<Segment> plan_direct_segment(const std::vector<PlannedUnit>& units);
bool may_run_direct(const PlannedUnit& unit);

// The runner's side of a run.
class EngineSink {
 public:
  virtual ~EngineSink() = default;
  // The start's replies, one per start command (skipped when not run);
  // false: nothing else may run (the fence refused, a setting was refused).
  virtual bool started(const std::vector<Reply>& replies) = 0;
  // A statement's reply and its latency; false: stop the batch (it is
  // rolled back; the plain transport sends nothing more).
  virtual bool statement_done(const Command& command, const Reply& reply, int64_t latency_us) = 0;
  // A statement not run because an earlier one of its segment failed.
  virtual void statement_skipped(const Command& command) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Runs the start (bookkeeping commands that must all succeed) and the
  // segments. A refused savepoint command rolls the transaction back and
  // throws (refused()).
  virtual void run(const Segment& start, const std::vector<Segment>& segments, EngineSink& sink) = 0;
  // The savepoint commands to send before the batch's bookkeeping at its
  // end: what is still queued, and the rollback to sp that undoes the last
  // segment's failure or unit to undo; one command each, in order.
  virtual std::vector<std::string> closing() = 0;
};

// `savepoints`: false for a direct segment, which leaves no savepoint sp to
// roll back to at the end (closing() is then empty).
std::unique_ptr<Transport> make_transport(bool pipelined, ShadowSession& session, bool savepoints = true);

// Bookkeeping was refused: a passing cause throws Transient (refused_for_now) (the
// units are retried later), any other Failure. `reply` may be null.
[[noreturn]] void throw_refused(const std::string& what, const Reply* reply);

}  // namespace shadowpipe::executor
