#include "shadow_executor/unit_runner.hpp"

#include "shadow_executor/plan.hpp"
#include "shadow_executor/savepoint_engine.hpp"

#include "shadowpipe/result.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace shadowpipe::executor {

namespace {
constexpr size_t kMaxFailedFingerprints = 4096;
}  // namespace

UnitRunner::UnitRunner(const pg::Connection& conn, RunnerConfig config, statement::Analyzer& analyzer)
    : owned_session_(std::make_unique<PgSession>(conn)),
      session_(*owned_session_),
      quote_([this](std::string_view text) { return session_.literal(text); }),
      config_(std::move(config)),
      analyzer_(analyzer),
      catalog_([this] { return session_.open_sibling(); }, analyzer) {
  if (config_.ddl_seen == nullptr) config_.ddl_seen = &own_ddl_seen_;
}

UnitRunner::UnitRunner(ShadowSession& session, RunnerConfig config, statement::Analyzer& analyzer)
    : session_(session),
      quote_([this](std::string_view text) { return session_.literal(text); }),
      config_(std::move(config)),
      analyzer_(analyzer),
      catalog_([this] { return session_.open_sibling(); }, analyzer) {
  if (config_.ddl_seen == nullptr) config_.ddl_seen = &own_ddl_seen_;
}

UnitRunner::~UnitRunner() = default;

// The runner's side of one attempt at a batch: records each statement's
// reply in its step, and decides from the start's replies and each error
// whether the batch goes on (statement_policy.hpp).
class UnitRunner::Attempt final : public EngineSink {
 public:
  enum class Start { ok, begin_refused, fence_refused, settings_refused, savepoint_refused, prepared_lost };

  Attempt(UnitRunner& runner, std::vector<PlannedUnit>& units, bool batch, bool has_settings, bool direct)
      : runner_(runner), units_(units), batch_(batch), has_settings_(has_settings), direct_(direct) {}

  bool started(const std::vector<Reply>& replies) override {
    // BEGIN, the fence, the settings when there are any, SAVEPOINT sp (not in a direct batch).
    const size_t settings_at = 2, savepoint_at = has_settings_ ? 3 : 2;
    if (!replies[0].ok()) return refuse(Start::begin_refused, replies[0]);
    // 26000: the fence's prepared statement is gone, which says nothing of the offsets.
    if (!replies[1].ok()) {
      return refuse(replies[1].sqlstate == "26000" ? Start::prepared_lost : Start::fence_refused, replies[1]);
    }
    if (has_settings_ && !replies[settings_at].ok()) return refuse(Start::settings_refused, replies[settings_at]);
    if (!direct_ && !replies[savepoint_at].ok()) return refuse(Start::savepoint_refused, replies[savepoint_at]);
    return true;
  }

  bool statement_done(const Command& command, const Reply& reply, int64_t latency_us) override {
    Step& step = units_[command.unit].steps[command.step];
    const wire::Statement& recorded = units_[command.unit].request->statements[command.step];
    step.shadow.result.latency_us = latency_us;
    if (step.record(reply, runner_.normalization().for_fingerprint(step.shadow.fingerprint))) {
      if (reply.returns_rows()) {
        runner_.catalog_.describe(step.shadow.fingerprint, recorded.sql, reply.result.get(), step.shadow.result);
      }
      if (step.changes_session) session_changed = true;
      return true;
    }
    switch (classify_shadow_error(step.shadow.result, recorded, batch_)) {
      case ShadowError::unit_result:
        // Without savepoints this error would take the units before it
        // down with it: the batch runs again on the savepoint path.
        if (direct_) {
          failed_fingerprint = step.shadow.fingerprint;
          return false;
        }
        return true;
      case ShadowError::redo_serially: redo = true; return false;
      case ShadowError::transient:
        if (!transient) {
          transient = "a statement failed on the shadow with " + step.shadow.result.sqlstate + " (" +
                      step.shadow.result.message + "), which the primary did not have";
        }
        return false;
    }
    return true;
  }

  void statement_skipped(const Command& command) override { units_[command.unit].steps[command.step].not_reached(); }

  Start start = Start::ok;
  Reply refusal;                      // the start's refused reply
  bool session_changed = false;       // a plain SET or set_config ran: reset after the commit so it cannot leak
  bool redo = false;                  // a batch artefact: run the units one per transaction
  std::optional<std::string> transient;  // a passing cause: retry the units later
  std::optional<std::string> failed_fingerprint;  // a direct batch failed here: redo it with savepoints

 private:
  bool refuse(Start why, const Reply& reply) {
    start = why;
    refusal.kind = reply.kind;
    refusal.sqlstate = reply.sqlstate;
    refusal.message = reply.kind == Reply::Kind::skipped ? "no result" : reply.message;
    return false;
  }

  UnitRunner& runner_;
  std::vector<PlannedUnit>& units_;
  bool batch_;
  bool has_settings_;
  bool direct_;
};

namespace {
bool contains_ignoring_case(std::string_view text, std::string_view lowercase_word) {
  return std::search(text.begin(), text.end(), lowercase_word.begin(), lowercase_word.end(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         }) != text.end();
}
bool starts_with_ignoring_case(std::string_view text, std::string_view lowercase_word) {
  return text.size() >= lowercase_word.size() && contains_ignoring_case(text.substr(0, lowercase_word.size()), lowercase_word);
}
}  // namespace

// User triggers or rewrite rules anywhere in the shadow database: then an
// UPDATE or DELETE may insert, or call nextval, behind its text. Rules on
// the system's own relations (pg_settings has two) are not the user's: a
// view's _RETURN rule is not either.
bool shadow_has_triggers_or_rules(const pg::Connection& connection) {
  const auto reply = connection.exec_checked(
      "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE NOT tgisinternal)"
      " OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class"
      " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
      " WHERE r.rulename <> '_RETURN' AND n.nspname NOT IN ('pg_catalog', 'information_schema'))");
  return std::string_view(reply.value(0, 0)) != "f";
}

bool UnitRunner::reruns_cleanly(const wire::Statement& statement) {
  // In place: this runs for every statement of every batch.
  auto analysis = analyzer_.analyze_shared(statement.sql);
  if (!analysis.ok()) return false;
  const statement::Analysis& facts = *analysis.value();
  if (facts.kind == statement::Kind::ddl) config_.ddl_seen->store(true, std::memory_order_relaxed);
  if (facts.statement_count != 1 || facts.calls_volatile() || !facts.called_functions.empty()) return false;
  if (facts.kind == statement::Kind::read) return true;
  if (facts.kind != statement::Kind::write || config_.shadow_has_triggers_or_rules ||
      config_.ddl_seen->load(std::memory_order_relaxed)) {
    return false;
  }
  // UPDATE or DELETE, without a DEFAULT (an UPDATE ... SET c = DEFAULT may
  // call nextval); INSERT, MERGE and COPY may always take a sequence's value.
  const std::string_view text = facts.normalized_sql;
  const bool update_or_delete = starts_with_ignoring_case(text, "update ") || starts_with_ignoring_case(text, "delete ");
  return update_or_delete && !contains_ignoring_case(text, "default");
}

bool UnitRunner::runs_direct(const std::vector<PlannedUnit>& planned) {
  if (config_.direct_batches == DirectBatches::off) return false;
  bool direct = planned.size() >= 2;
  for (const auto& unit : planned) {
    if (!may_run_direct(unit)) direct = false;
    for (size_t i = 0; i < unit.steps.size(); ++i) {
      const Step& step = unit.steps[i];
      if (!step.execute) continue;
      if (failed_fingerprints_.contains(step.shadow.fingerprint)) direct = false;
      // Every statement is looked at, even once the batch is known not to
      // run direct: DDL anywhere ends direct writes on this connection.
      if (config_.direct_batches == DirectBatches::safe && !reruns_cleanly(unit.request->statements[i])) direct = false;
    }
  }
  return direct;
}

UnitRunner::Outcome UnitRunner::attempt(const std::vector<BatchUnit>& units, size_t first, const PartitionId& id,
                                        std::vector<UnitReport>& reports, bool try_direct) {
  const bool batch = units.size() - first > 1;
  std::vector<PlannedUnit> planned;
  for (size_t u = first; u < units.size(); ++u) {
    const wire::Request& request = *units[u].request;
    auto steps = plan_unit(request, analyzer_, config_.writes, normalization());
    const bool undo = undoes_unit(request, steps, config_.writes);
    planned.push_back(PlannedUnit{&request, std::move(steps), undo, runs_per_statement(request)});
  }
  const bool direct = try_direct && runs_direct(planned);
  prepare_batch_statements();
  const std::string settings = settings_select(units[first].request->session);
  // A unit that ran under another isolation level on the primary runs
  // alone, and its transaction gets that level.
  const std::string isolation = batch ? "" : isolation_clause(*units[first].request, analyzer_);
  Segment start;
  const std::string fence = prepared_ == Prepared::yes
                                ? bookkeeping_sql::fence_check_prepared(quote_, id, units[first].offset)
                                : bookkeeping_sql::fence_check(quote_, id, units[first].offset);
  for (std::string sql : {"BEGIN" + isolation, fence, settings, std::string(direct ? "" : "SAVEPOINT sp")}) {
    if (!sql.empty()) start.push_back(Command{Command::Type::bookkeeping, std::move(sql)});
  }
  // Decided from the texts before they run: whatever way the attempt ends,
  // the next one prepares the statements again, and this one's log goes by
  // its text.
  const bool drops = std::any_of(planned.begin(), planned.end(), [](const PlannedUnit& unit) {
    return std::any_of(unit.steps.begin(), unit.steps.end(),
                       [](const Step& step) { return step.execute && step.drops_prepared_statements; });
  });
  const bool log_prepared = prepared_ == Prepared::yes && !drops;
  if (prepared_ == Prepared::yes && !log_prepared) prepared_ = Prepared::no;
  const bool alone = runs_alone(*units[first].request, analyzer_);
  auto transport = make_transport(config_.pipeline && !alone, session_, !direct);
  Attempt attempt(*this, planned, batch, !settings.empty(), direct);
  transport->run(start, direct ? plan_direct_segment(planned) : plan_segments(planned), attempt);

  if (attempt.start != Attempt::Start::ok || attempt.redo || attempt.transient || attempt.failed_fingerprint) {
    session_.script("ROLLBACK");
  }
  switch (attempt.start) {
    case Attempt::Start::ok: break;
    case Attempt::Start::begin_refused:
      throw_refused("cannot begin a transaction on the shadow: ", &attempt.refusal);
    case Attempt::Start::fence_refused:
      fence_error_ = attempt.refusal.message;
      return Outcome::fence_moved;
    case Attempt::Start::settings_refused:
      for (size_t i = first; i < units.size(); ++i) {
        record_unrun(*units[i].request, id, units[i].offset, attempt.refusal.sqlstate,
                     "session setting refused: " + attempt.refusal.message, reports[i]);
      }
      return Outcome::committed;
    case Attempt::Start::savepoint_refused:
      throw_refused("SAVEPOINT refused on the shadow: ", &attempt.refusal);
    case Attempt::Start::prepared_lost: batch_statements_lost(attempt.refusal.sqlstate, attempt.refusal.message);
  }
  if (attempt.redo) return Outcome::redo_serially;
  if (attempt.transient) throw Transient(Transient::Cause::refused_for_now, *attempt.transient);
  if (attempt.failed_fingerprint) {
    if (failed_fingerprints_.size() >= kMaxFailedFingerprints) failed_fingerprints_.clear();
    failed_fingerprints_.insert(std::move(*attempt.failed_fingerprint));
    return Outcome::redo_with_savepoints;
  }
  if (direct) ++direct_batches_run_;
  for (size_t u = first; u < units.size(); ++u) {
    for (auto& step : planned[u - first].steps) {
      reports[u].result.statements.push_back(std::move(step.shadow));
      reports[u].notes.push_back(step.note);
    }
  }
  return finish(units, first, id, reports, transport->closing(), attempt.session_changed, log_prepared);
}

UnitRunner::Outcome UnitRunner::finish(const std::vector<BatchUnit>& units, size_t first, const PartitionId& id,
                                       std::vector<UnitReport>& reports, const std::vector<std::string>& closing, bool session_changed,
                                       bool prepared) {
  if (abandoning()) {
    session_.script("ROLLBACK");
    throw UnitAbandoned("units from offset " + std::to_string(units[first].offset) + " abandoned at shutdown");
  }
  BatchLog log(id, units.size() - first);
  for (size_t i = first; i < units.size(); ++i) {
    auto& report = reports[i];
    report.result.ts_us = wire::now_us();
    report.logged_payload = wire::encode(report.result);
    log.add(units[i].offset, units[i].request->key, report.logged_payload);
  }
  // One round trip, a pipeline segment: the open savepoint commands, the
  // offset and the results in one statement, COMMIT. The statement timeout
  // (set at the start) is for the traffic's statements, not for the
  // bookkeeping: a slow log insert must not turn into a shadow error of the
  // unit. After an error the server skips the rest of the segment, COMMIT
  // included.
  std::vector<Reply> replies;
  session_.pipeline_enter();
  try {
    for (const auto& command : closing) session_.pipeline_send(command, nullptr);
    session_.pipeline_send("SET LOCAL statement_timeout = 0", nullptr);
    const wire::Statement& bookkeeping = log.statement(units.back().offset + 1);
    if (prepared) {
      session_.pipeline_send_prepared(bookkeeping_sql::kBatchLogStatement, bookkeeping);
    } else {
      session_.pipeline_send(bookkeeping.sql, &bookkeeping);
    }
    session_.pipeline_send("COMMIT", nullptr);
    if (session_changed) session_.pipeline_send("RESET ALL", nullptr);
    session_.pipeline_sync();
    replies = session_.pipeline_collect();
  } catch (...) {
    session_.pipeline_leave();
    throw;
  }
  const size_t log_at = closing.size() + 1;  // the closing commands, the settings, the log
  const bool log_lost = prepared && replies.size() > log_at && replies[log_at].kind == Reply::Kind::error &&
                        replies[log_at].sqlstate == "26000";
  // A COMMIT of a transaction the server had aborted answers with the tag
  // ROLLBACK, not an error: the batch counts as committed only on "COMMIT".
  bool committed = false;
  std::string commit_error = "the transaction was rolled back at COMMIT";
  std::string commit_sqlstate = "40000";
  for (const auto& reply : replies) {
    if (reply.kind == Reply::Kind::sync) continue;
    if (!reply.ok()) {
      commit_error = reply.message;
      commit_sqlstate = reply.sqlstate;
      break;
    }
    if (reply.tag == "COMMIT") committed = true;
  }
  if (committed) {
    for (size_t i = first; i < units.size(); ++i) reports[i].applied = true;
    return Outcome::committed;
  }
  session_.script("ROLLBACK");
  if (log_lost) batch_statements_lost(replies[log_at].sqlstate, replies[log_at].message);
  const std::string why = "the shadow did not commit (" + commit_sqlstate + "): " + commit_error;
  switch (classify_commit_failure(commit_sqlstate, abandoning(), units.size() - first > 1)) {
    case CommitFailure::abandoned:
      throw UnitAbandoned("units from offset " + std::to_string(units[first].offset) + " cancelled at shutdown");
    case CommitFailure::connection_lost: throw Transient(Transient::Cause::connection_lost, why);
    case CommitFailure::redo_serially: return Outcome::redo_serially;
    case CommitFailure::transient: throw Transient(Transient::Cause::refused_for_now, why);
    case CommitFailure::unit_result: break;
  }
  // One unit whose COMMIT was refused (a deferred constraint, a
  // serialization failure): its effects are gone, as the primary's would be
  // had its COMMIT failed. Report that on the last statement the server ran,
  // and record the offset.
  auto& report = reports[first];
  auto& result = report.result;
  for (size_t i = result.statements.size(); i-- > 0;) {
    if (report.notes[i].disposition == Disposition::executed) {
      result.statements[i].result = not_executed(wire::Status::error, commit_sqlstate, "at COMMIT: " + commit_error);
      break;
    }
  }
  report.logged_payload = wire::encode(result);
  report.applied =
      fence_and_log(id, units[first].offset, Destination::results, units[first].request->key, report.logged_payload);
  return Outcome::committed;
}

UnitReport UnitRunner::run(const wire::Request& request, const PartitionId& id, int64_t offset) {
  return std::move(run_batch({BatchUnit{&request, offset}}, id).front());
}

UnitReport UnitRunner::blank_report(const wire::Request& request, const PartitionId& id, int64_t offset) const {
  UnitReport report;
  report.result.request_id = request.request_id;
  report.result.key = request.key;
  report.result.executor = config_.executor_id;
  report.result.source_partition = id.partition;
  report.result.source_offset = offset;
  return report;
}

void UnitRunner::prepare_batch_statements() {
  if (prepared_ != Prepared::no) return;
  const auto replies = session_.script(bookkeeping_sql::prepare_batch_statements());
  const auto failed = std::find_if(replies.begin(), replies.end(), [](const Reply& reply) { return !reply.ok(); });
  // A passing cause (a cancel or lock timeout while DDL holds the tables
  // among them) is tried again, not taken for a server that cannot keep them.
  if (failed != replies.end() &&
      (transient_sqlstate(failed->sqlstate) || failed->sqlstate == "57014" || failed->sqlstate == "55P03")) {
    throw Transient(Transient::Cause::refused_for_now, "preparing the executor's bookkeeping statements failed for now (" +
                                                           failed->sqlstate + ": " + failed->message + ")");
  }
  if (failed == replies.end() && replies.size() == 3) {
    prepared_ = Prepared::yes;
    return;
  }
  prepared_ = Prepared::unavailable;
  bookkeeping_as_text_why_ =
      failed == replies.end()
          ? "PREPARE answered " + std::to_string(replies.size()) + " replies, not 3"
          : "PREPARE refused (" + failed->sqlstate + ": " + failed->message + ")";
}

// Nothing of the batch committed (the transaction was rolled back): it is
// run again once the statements are prepared again.
void UnitRunner::batch_statements_lost(const std::string& sqlstate, const std::string& message) {
  prepared_ = ++prepared_lost_ >= 3 ? Prepared::unavailable : Prepared::no;
  if (prepared_ == Prepared::unavailable) {
    bookkeeping_as_text_why_ = "the server lost them three times, the last time with " + sqlstate + ": " + message;
  }
  throw Transient(Transient::Cause::refused_for_now,
                  "the shadow lost the executor's prepared bookkeeping statements (" + sqlstate + ": " + message +
                      "); the batch runs again" +
                      (prepared_ == Prepared::unavailable ? " with their texts (lost three times on this connection)" : ""));
}

std::vector<UnitReport> UnitRunner::run_batch(const std::vector<BatchUnit>& units, const PartitionId& id) {
  std::vector<UnitReport> reports;
  reports.reserve(units.size());
  for (const auto& unit : units) reports.push_back(blank_report(*unit.request, id, unit.offset));
  if (units.empty()) return reports;
  if (units.size() > 1) {
    for (size_t i = 0; i < units.size(); ++i) {
      if ((i > 0 && units[i].offset <= units[i - 1].offset) ||
          !may_share_batch(*units[0].request, *units[i].request, analyzer_)) {
        throw std::invalid_argument("run_batch: units must ascend and be able to share a transaction");
      }
    }
  }
  size_t first = 0;
  bool try_direct = true;
  for (;;) {
    const Outcome outcome = attempt(units, first, id, reports, try_direct);
    if (outcome == Outcome::committed) return reports;
    if (outcome == Outcome::redo_with_savepoints) {
      try_direct = false;
      continue;
    }
    if (outcome == Outcome::redo_serially) {
      for (size_t i = first; i < units.size(); ++i) reports[i] = std::move(run_batch({units[i]}, id).front());
      return reports;
    }
    // The fence refused: some of the units were applied before (by this
    // executor before a crash, or another instance during a rebalance).
    const int64_t next = next_offset(id);
    if (next <= units[first].offset) {
      throw Failure("the fence in shadowpipe.applied was refused on the shadow: " + fence_error_ +
                    (next < 0 ? " (the partition has no row)" : "") +
                    " — check the executor role's grants on schema shadowpipe");
    }
    for (; first < units.size() && units[first].offset < next; ++first) reports[first].applied = false;
    if (first == units.size()) return reports;
  }
}

void UnitRunner::record_unrun(const wire::Request& request, const PartitionId& id, int64_t offset,
                              const std::string& sqlstate, const std::string& message, UnitReport& report) {
  for (auto& step : plan_unit(request, analyzer_, config_.writes, normalization())) {
    step.note.disposition = Disposition::not_reached;
    step.shadow.result = not_executed(wire::Status::error, sqlstate, message);
    report.result.statements.push_back(std::move(step.shadow));
    report.notes.push_back(step.note);
  }
  report.result.ts_us = wire::now_us();
  report.logged_payload = wire::encode(report.result);
  report.applied = fence_and_log(id, offset, Destination::results, request.key, report.logged_payload);
}

UnitReport UnitRunner::record_not_replayed(const wire::Request& request, const PartitionId& id, int64_t offset,
                                           const std::string& why) {
  UnitReport report = blank_report(request, id, offset);
  record_unrun(request, id, offset, kNotReplayedSqlstate, kNotReplayedMessage + why, report);
  return report;
}

bool UnitRunner::record_dead_letter(const PartitionId& id, int64_t offset, std::string_view key,
                                    const std::string& payload) {
  return fence_and_log(id, offset, Destination::dlq, key, payload);
}

bool UnitRunner::fence_and_log(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                               const std::string& payload) {
  auto replies = session_.script(bookkeeping_sql::fence_and_log(quote_, id, offset, destination, key, payload));
  if (replies.size() != 1 || !replies[0].ok()) {
    if (!replies.empty() && transient_sqlstate(replies.back().sqlstate)) {
      throw Transient(Transient::Cause::refused_for_now, "recording offset " + std::to_string(offset) + " on the shadow: " +
                             replies.back().message + " (" + replies.back().sqlstate + ")");
    }
    throw Failure("recording offset " + std::to_string(offset) + " of " + id.topic + "[" +
                  std::to_string(id.partition) + "] on the shadow failed: " +
                  (replies.empty() ? std::string("no result") : replies.back().message) +
                  " — check the executor role's grants on schema shadowpipe");
  }
  return replies[0].affected_rows == 1;
}

bool UnitRunner::record_passed_over(const PartitionId& id, int64_t offset) {
  auto replies = session_.script(bookkeeping_sql::fence_update(quote_, id, offset));
  if (replies.size() != 1 || !replies[0].ok()) {
    throw_refused("recording offset " + std::to_string(offset) + " of " + id.topic + "[" +
                      std::to_string(id.partition) + "] on the shadow failed: ",
                  replies.empty() ? nullptr : &replies[0]);
  }
  return replies[0].affected_rows == 1;
}

int64_t UnitRunner::next_offset(const PartitionId& id) {
  auto replies = session_.script(bookkeeping_sql::next_offset(quote_, id));
  if (replies.size() != 1 || !replies[0].returns_rows()) {
    throw_refused("reading shadowpipe.applied on the shadow failed: ", replies.empty() ? nullptr : &replies[0]);
  }
  const auto& result = replies[0].result;
  return result.rows() == 0 ? -1 : std::strtoll(std::string(result.value(0, 0)).c_str(), nullptr, 10);
}

std::string UnitRunner::settings_select(const wire::Session& session) {
  std::string calls;
  auto add = [&](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    calls += (calls.empty() ? "SELECT " : ", ") + ("set_config(" + quote_(name) + ", " + quote_(value) + ", true)");
  };
  if (config_.statement_timeout_ms > 0) add("statement_timeout", std::to_string(config_.statement_timeout_ms));
  add("TimeZone", session.time_zone);
  add("DateStyle", session.date_style);
  add("IntervalStyle", session.interval_style);
  add("search_path", session.search_path);
  for (const auto& [name, value] : session.extra) add(name, value);
  return calls;
}

std::optional<wire::PlanSummary> UnitRunner::explain(const wire::Request& request, size_t statement_index) {
  const auto& statement = request.statements.at(statement_index);
  std::string start = "BEGIN";
  const std::string settings = settings_select(request.session);
  if (!settings.empty()) start += "; " + settings;
  auto started = session_.script(start);
  std::optional<wire::PlanSummary> summary;
  if (!started.empty() && started.back().ok()) {
    wire::Statement explained;
    explained.sql = "EXPLAIN (FORMAT JSON) " + statement.sql;
    explained.params = statement.params;
    // Bound as the statement was (binary parameters of a v2 record); the plan comes back in text.
    explained.binding.param_types = statement.binding.param_types;
    explained.binding.param_formats = statement.binding.param_formats;
    const Reply plan = session_.statement(explained, 1);
    if (plan.returns_rows() && plan.result.rows() == 1 && plan.result.columns() == 1) {
      auto parsed = summarize_plan(plan.result.value(0, 0));
      if (parsed.ok()) summary = std::move(parsed.value());
    }
  }
  session_.script("ROLLBACK");
  return summary;
}

}  // namespace shadowpipe::executor
