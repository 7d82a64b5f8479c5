#include "shadow_executor/unit_runner.hpp"

#include "shadow_executor/plan.hpp"

#include "shadowpipe/pg_result.hpp"
#include "shadowpipe/result.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <stdexcept>

namespace shadowpipe::executor {

namespace {

void throw_if_lost(const pg::Connection& conn) {
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::string why = PQerrorMessage(conn.get());
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw ConnectionLost("shadow connection lost: " + why);
  }
}

bool is_command_tag(const pg::Result& result, const char* tag) {
  return result && std::strcmp(PQcmdStatus(result.get()), tag) == 0;
}

wire::StatementResult not_executed(wire::Status status, std::string sqlstate, std::string message) {
  wire::StatementResult result;
  result.status = status;
  result.sqlstate = std::move(sqlstate);
  result.message = std::move(message);
  return result;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

constexpr const char* kLogColumns =
    "shadowpipe.results_log (consumer_group, topic, partition, source_offset, destination, record_key, payload)";
constexpr const char* kLogConflict =
    " ON CONFLICT (consumer_group, topic, partition, source_offset) DO UPDATE"
    " SET destination = EXCLUDED.destination, record_key = EXCLUDED.record_key, payload = EXCLUDED.payload";

}  // namespace

bool transient_sqlstate(std::string_view sqlstate) {
  return sqlstate == "57P01" || sqlstate == "57P03" || sqlstate == "53300" || sqlstate == "40001" ||
         sqlstate == "40P01" || sqlstate == "53100";
}

std::string not_replayable(const statement::Analysis& analysis) {
  if (analysis.statement_count > 1 && analysis.has_transaction_control) {
    return "transaction control inside a text of several statements cannot be replayed (the executor owns the "
           "transaction: a COMMIT in it would commit without the offset)";
  }
  if (analysis.copies_client_data) {
    return "COPY with client data (STDIN/STDOUT) cannot be replayed (the data is not in the record)";
  }
  if (!analysis.session_reasons.empty()) {
    return "leaves state in the shadow session past the unit (" + join(analysis.session_reasons, "; ") + ")";
  }
  return {};
}

UnitRunner::UnitRunner(const pg::Connection& conn, RunnerConfig config, statement::Analyzer& analyzer)
    : conn_(conn), config_(std::move(config)), analyzer_(analyzer) {}

namespace {
std::string quote_identifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The connection string of an open connection, from what libpq used for it
// (PQconninfo), so a second connection reaches the same server and database
// as the same role.
std::string same_server_dsn(PGconn* conn) {
  std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> options(PQconninfo(conn), PQconninfoFree);
  std::string dsn;
  for (const PQconninfoOption* option = options.get(); option && option->keyword; ++option) {
    if (option->val == nullptr || *option->val == '\0') continue;
    dsn += std::string(option->keyword) + "='";
    for (const char* c = option->val; *c; ++c) {
      if (*c == '\'' || *c == '\\') dsn += '\\';
      dsn += *c;
    }
    dsn += "' ";
  }
  return dsn + "application_name='shadow-executor catalog'";
}
}  // namespace

void UnitRunner::describe_from_catalog(const std::string& fingerprint, const std::string& sql,
                                      const pg::Result& executed, wire::StatementResult& out) {
  if (catalog_unavailable_ || executed.status() != PGRES_TUPLES_OK) return;
  try {
    if (!catalog_) {
      catalog_conn_ = std::make_unique<pg::Connection>(same_server_dsn(conn_.get()));
      catalog_ = std::make_unique<catalog::Catalog>(*catalog_conn_);
    }
    catalog_->name_types(out.columns);
    // A statement's facts depend on its text and the catalog, not on its
    // parameters: worked out once per fingerprint and result width, so the
    // steady state costs one lookup per statement.
    const std::string key = fingerprint + "/" + std::to_string(out.columns.size());
    auto known = catalog_facts_.find(key);
    if (known == catalog_facts_.end()) {
      wire::StatementResult facts;
      auto analysis = analyzer_.analyze(sql);
      if (analysis.ok()) catalog_->describe(*analysis, executed.get(), facts);
      if (catalog_facts_.size() >= kMaxCatalogFacts) catalog_facts_.clear();
      known = catalog_facts_.emplace(key, CatalogFacts{std::move(facts.volatile_columns),
                                                       std::move(facts.volatile_statement), facts.order_total})
                  .first;
    }
    out.volatile_columns = known->second.volatile_columns;
    out.volatile_statement = known->second.volatile_statement;
    out.order_total = known->second.order_total;
  } catch (const std::exception& failure) {
    // Without the catalog the comparison falls back to what the statement
    // text shows: user types unnamed (not compared), no catalog exclusions.
    std::cerr << "shadow-executor: the shadow's catalog cannot be read, results go without its facts: "
              << failure.what() << "\n";
    catalog_unavailable_ = true;
    catalog_.reset();
    catalog_conn_.reset();
  }
}

const digest::NormalizationRules& UnitRunner::rules_for(std::string_view fingerprint) const {
  const auto& config = config_.normalization ? *config_.normalization : default_normalization_;
  return config.for_fingerprint(fingerprint);
}

std::string UnitRunner::literal(std::string_view text) const {
  std::unique_ptr<char, decltype(&PQfreemem)> quoted(PQescapeLiteral(conn_.get(), text.data(), text.size()),
                                                     &PQfreemem);
  if (!quoted) {
    throw_if_lost(conn_);
    throw Failure(std::string("cannot quote a value for the shadow: ") + PQerrorMessage(conn_.get()));
  }
  return quoted.get();
}

std::vector<pg::Result> UnitRunner::script(const std::string& sql) const {
  if (!PQsendQuery(conn_.get(), sql.c_str())) {
    throw_if_lost(conn_);
    throw Failure(std::string("cannot send to the shadow: ") + PQerrorMessage(conn_.get()));
  }
  std::vector<pg::Result> results;
  while (PGresult* raw = PQgetResult(conn_.get())) results.emplace_back(raw);
  throw_if_lost(conn_);
  return results;
}

pg::Result UnitRunner::statement(const wire::Statement& statement, int statement_count) const {
  // One statement: the extended protocol, which also refuses a smuggled
  // second statement. Several in one text (no parameters possible): the
  // simple protocol, whose last result is the text's result.
  pg::Result result = statement_count > 1 ? conn_.exec(statement.sql) : conn_.exec(statement.sql, statement.params);
  throw_if_lost(conn_);
  if (!result) throw ConnectionLost("shadow connection lost: no result");
  return result;
}

std::string UnitRunner::isolation_clause(const wire::Request& request) {
  if (request.tx == wire::TxMode::autocommit) return "";
  std::string level;
  for (const auto& statement : request.statements) {
    auto analysis = analyzer_.analyze(statement.sql);
    if (analysis.ok() && !analysis->isolation_level.empty()) level = analysis->isolation_level;
  }
  // The parser's names, checked: nothing else is written into the BEGIN.
  for (const char* known : {"serializable", "repeatable read", "read committed", "read uncommitted"}) {
    if (level == known) return " ISOLATION LEVEL " + level;
  }
  return "";
}

std::string UnitRunner::settings_select(const wire::Session& session) const {
  std::vector<std::string> calls;
  auto add = [&](std::string_view name, std::string_view value) {
    if (!value.empty()) calls.push_back("set_config(" + literal(name) + ", " + literal(value) + ", true)");
  };
  if (config_.statement_timeout_ms > 0) add("statement_timeout", std::to_string(config_.statement_timeout_ms));
  add("TimeZone", session.time_zone);
  add("DateStyle", session.date_style);
  add("IntervalStyle", session.interval_style);
  add("search_path", session.search_path);
  for (const auto& [name, value] : session.extra) add(name, value);
  return calls.empty() ? "" : "SELECT " + join(calls, ", ");
}

std::string UnitRunner::fence_update(const PartitionId& id, int64_t offset) const {
  return "UPDATE shadowpipe.applied SET next_offset = " + std::to_string(offset + 1) +
         ", updated_at = now() WHERE consumer_group = " + literal(id.group) + " AND topic = " + literal(id.topic) +
         " AND partition = " + std::to_string(id.partition) + " AND next_offset <= " + std::to_string(offset);
}

std::string UnitRunner::log_values(const PartitionId& id, int64_t offset, Destination destination,
                                   std::string_view key, std::string_view payload) const {
  return literal(id.group) + ", " + literal(id.topic) + ", " + std::to_string(id.partition) + ", " +
         std::to_string(offset) + ", '" + to_string(destination) + "', " + literal(key) + ", " + literal(payload);
}

bool UnitRunner::fence_and_log(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                               const std::string& payload) {
  // One statement, so fence and log commit together without a transaction block.
  const std::string sql = "WITH fence AS (" + fence_update(id, offset) + " RETURNING 1) INSERT INTO " + kLogColumns +
                          " SELECT " + log_values(id, offset, destination, key, payload) + " FROM fence" +
                          kLogConflict;
  auto results = script(sql);
  if (results.size() != 1 || !results[0].succeeded()) {
    if (!results.empty() && transient_sqlstate(results.back().sqlstate())) {
      throw TransientFailure("recording offset " + std::to_string(offset) + " on the shadow: " +
                             results.back().error_message() + " (" + results.back().sqlstate() + ")");
    }
    throw Failure("recording offset " + std::to_string(offset) + " of " + id.topic + "[" +
                  std::to_string(id.partition) + "] on the shadow failed: " +
                  (results.empty() ? std::string("no result") : results.back().error_message()) +
                  " — check the executor role's grants on schema shadowpipe");
  }
  return results[0].affected_rows() == 1;
}

bool UnitRunner::record_dead_letter(const PartitionId& id, int64_t offset, std::string_view key,
                                    const std::string& payload) {
  return fence_and_log(id, offset, Destination::dlq, key, payload);
}

namespace {

using Clock = std::chrono::steady_clock;

int64_t micros(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

// SQLSTATEs a statement gets because the batch holds the locks of several
// units at once (a deadlock the primary, committing unit by unit, did not
// have; a serialization failure against another partition's batch): the
// batch is rolled back and run again one unit per transaction, where such an
// error is the unit's own.
bool batch_artefact(std::string_view sqlstate) { return sqlstate == "40P01" || sqlstate == "40001"; }

// The bookkeeping (BEGIN, savepoints, the fence and log) was refused: for a
// passing cause the units are retried later, else the refusal is a Failure.
[[noreturn]] void throw_refused(const std::string& what, const pg::Result* result) {
  const std::string sqlstate = result ? result->sqlstate() : "";
  const std::string why = what + (result ? result->error_message() : std::string("no result"));
  if (transient_sqlstate(sqlstate)) throw TransientFailure(why + " (" + sqlstate + ")");
  throw Failure(why);
}

// A statement failed for a passing cause the primary did not have: the
// unit is retried rather than recorded with an error it owes to the shadow.
void throw_if_transient(const wire::StatementResult& shadow, const wire::Statement& primary) {
  if (shadow.status != wire::Status::error || !transient_sqlstate(shadow.sqlstate)) return;
  if (primary.result.status == wire::Status::error && primary.result.sqlstate == shadow.sqlstate) return;
  throw TransientFailure("a statement failed on the shadow with " + shadow.sqlstate + " (" + shadow.message +
                         "), which the primary did not have");
}

// libpq pipeline mode for one batch. Non-blocking, so that sending a long
// batch while the server answers cannot deadlock with both socket buffers
// full: while the output is not flushed, input is read into libpq's buffer.
class Pipeline {
 public:
  enum class Type { bookkeeping, statement, sync };
  struct Command {
    Type type;
    size_t unit = 0;
    size_t step = 0;
    Clock::time_point sent{};
  };

  explicit Pipeline(const pg::Connection& conn) : conn_(conn) {
    if (PQsetnonblocking(conn_.get(), 1) != 0 || PQenterPipelineMode(conn_.get()) != 1) {
      throw_if_lost(conn_);
      throw Failure(std::string("cannot enter libpq pipeline mode: ") + PQerrorMessage(conn_.get()));
    }
  }
  ~Pipeline() { exit(); }
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  size_t size() const { return commands_.size(); }
  const Command& command(size_t i) const { return commands_[i]; }
  const pg::Result& result(size_t i) const { return results_[i]; }
  Clock::time_point arrival(size_t i) const { return arrivals_[i]; }

  void send(const std::string& sql, Type type = Type::bookkeeping, size_t unit = 0, size_t step = 0,
            const std::vector<std::optional<std::string>>* params = nullptr) {
    std::vector<const char*> values;
    if (params) {
      values.reserve(params->size());
      for (const auto& param : *params) values.push_back(param ? param->c_str() : nullptr);
    }
    if (!PQsendQueryParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                           values.empty() ? nullptr : values.data(), nullptr, nullptr, 0)) {
      throw_if_lost(conn_);
      throw Failure(std::string("cannot send to the shadow: ") + PQerrorMessage(conn_.get()));
    }
    commands_.push_back(Command{type, unit, step, {}});
  }

  // Asks the server to send the results so far now rather than at the next
  // sync, so each statement's arrival time is its own.
  void flush_request() {
    if (!PQsendFlushRequest(conn_.get())) throw_if_lost(conn_);
  }

  // Ends a segment: the server skips the rest of a segment after an error,
  // and resumes at the command after the sync.
  void sync() {
    if (PQpipelineSync(conn_.get()) != 1) {
      throw_if_lost(conn_);
      throw Failure(std::string("cannot sync the pipeline: ") + PQerrorMessage(conn_.get()));
    }
    commands_.push_back(Command{Type::sync});
    flush();
    const auto now = Clock::now();
    for (size_t i = segment_start_; i < commands_.size(); ++i) commands_[i].sent = now;
    segment_start_ = commands_.size();
  }

  // One result per command, in order, with the time it arrived.
  void collect() {
    results_.reserve(commands_.size());
    arrivals_.reserve(commands_.size());
    for (const auto& command : commands_) {
      pg::Result result(PQgetResult(conn_.get()));
      arrivals_.push_back(Clock::now());
      if (!result) {
        throw_if_lost(conn_);
        throw ConnectionLost("shadow connection lost: a pipeline result is missing");
      }
      const bool is_sync = result.status() == PGRES_PIPELINE_SYNC;
      if (is_sync != (command.type == Type::sync)) {
        throw_if_lost(conn_);
        throw Failure("the shadow's pipeline answered out of step (" + std::string(PQresStatus(result.status())) +
                      ": " + result.error_message() + ")");
      }
      if (!is_sync) {
        // Each command's results end with a null.
        if (PGresult* extra = PQgetResult(conn_.get())) {
          PQclear(extra);
          throw Failure("a statement returned more than one result in pipeline mode (COPY?)");
        }
      }
      results_.push_back(std::move(result));
    }
  }

  void exit() {
    if (PQpipelineStatus(conn_.get()) != PQ_PIPELINE_OFF) PQexitPipelineMode(conn_.get());
    PQsetnonblocking(conn_.get(), 0);
  }

 private:
  void flush() {
    for (;;) {
      const int flushed = PQflush(conn_.get());
      if (flushed == 0) return;
      if (flushed < 0) {
        throw_if_lost(conn_);
        throw ConnectionLost(std::string("shadow connection lost: ") + PQerrorMessage(conn_.get()));
      }
      pollfd fd{PQsocket(conn_.get()), POLLIN | POLLOUT, 0};
      if (poll(&fd, 1, 1000) < 0 && errno != EINTR) throw ConnectionLost("shadow connection lost: poll failed");
      if ((fd.revents & (POLLIN | POLLHUP | POLLERR)) && !PQconsumeInput(conn_.get())) {
        throw_if_lost(conn_);
        throw ConnectionLost(std::string("shadow connection lost: ") + PQerrorMessage(conn_.get()));
      }
    }
  }

  const pg::Connection& conn_;
  std::vector<Command> commands_;
  std::vector<pg::Result> results_;
  std::vector<Clock::time_point> arrivals_;
  size_t segment_start_ = 0;
};

}  // namespace

// What the executor does with one statement of a unit, decided before any of
// the unit's statements runs.
struct UnitRunner::Step {
  wire::ShadowStatement shadow;
  StatementNote note;
  bool execute = false;
  int statement_count = 1;
  // Transaction control replayed inside the unit (savepoints under names of
  // their own, SET CONSTRAINTS as is): the text sent instead of the record's.
  std::optional<wire::Statement> replayed;
  bool restores = false;  // ROLLBACK TO SAVEPOINT: ends the abort a failure left, as on the primary

  // Fills the result from what the server answered; false when it failed.
  bool record(const pg::Result& executed, const digest::NormalizationRules& rules) {
    const int64_t latency_us = shadow.result.latency_us;
    shadow.result = pg::statement_result(executed.get(), rules);  // as the recorder converts the primary's
    shadow.result.latency_us = latency_us;
    return executed.succeeded();
  }

  // After a failure in a transaction unit: what the primary's session saw.
  void not_reached() {
    note.disposition = Disposition::not_reached;
    shadow.result = not_executed(wire::Status::error, kAbortedSqlstate, kAbortedMessage);
  }
};

bool UnitRunner::runs_alone(const wire::Request& request, statement::Analyzer& analyzer) {
  for (const auto& statement : request.statements) {
    auto analysis = analyzer.analyze(statement.sql);
    if (analysis.ok() && !analysis->reaches_outside() && not_replayable(*analysis).empty() &&  // refusals are not run
        (analysis->kind == statement::Kind::utility || analysis->statement_count > 1)) {
      return true;
    }
    // Savepoints and SET CONSTRAINTS act on the whole transaction, and a
    // ROLLBACK TO after a failure must reach the server (a pipeline skips it).
    if (analysis.ok() && request.tx != wire::TxMode::autocommit &&
        (!analysis->savepoint_command.empty() || analysis->sets_constraints || analysis->sets_transaction_mode())) {
      return true;
    }
  }
  return false;
}

bool UnitRunner::may_share_batch(const wire::Request& first, const wire::Request& next,
                                 statement::Analyzer& analyzer) {
  return first.session == next.session && !runs_alone(first, analyzer) && !runs_alone(next, analyzer);
}

std::vector<UnitRunner::Step> UnitRunner::classify(const wire::Request& request) {
  std::vector<Step> steps;
  steps.reserve(request.statements.size());
  for (const auto& statement : request.statements) {
    Step step;
    auto& shadow = step.shadow;
    auto& note = step.note;
    auto analysis = analyzer_.analyze(statement.sql);
    shadow.fingerprint = !statement.fingerprint.empty() ? statement.fingerprint
                         : analysis.ok()               ? analysis->fingerprint
                                                       : "";
    if (!analysis.ok()) {
      // Not sent: the guard cannot vouch for text its parser cannot read.
      note.disposition = Disposition::unparsable;
      shadow.result = not_executed(wire::Status::error, "42601", analysis.error().message);
    } else if (analysis->kind != statement::Kind::transaction_control && analysis->reaches_outside()) {
      note.disposition = Disposition::refused_by_guard;
      note.kind = analysis->kind;
      shadow.result = not_executed(wire::Status::refused, "",
                                   "refused: reaches outside the shadow database (" +
                                       join(analysis->outside_reasons, "; ") + ")");
    } else if (const std::string why = not_replayable(*analysis); !why.empty()) {
      note.disposition = Disposition::not_replayable;
      note.kind = analysis->kind;
      shadow.result = not_executed(wire::Status::refused, "", "refused: " + why);
    } else if (analysis->statement_count > 1 && !statement.params.empty()) {
      note.disposition = Disposition::unparsable;
      note.kind = analysis->kind;
      shadow.result =
          not_executed(wire::Status::error, "42601", "cannot insert multiple commands into a prepared statement");
    } else if (request.tx != wire::TxMode::autocommit &&
               (!analysis->savepoint_command.empty() || analysis->sets_constraints)) {
      // Inside the unit's transaction, in order. User savepoints get a prefix
      // so they never meet the executor's own (sp, v), which stay below them.
      note.kind = analysis->kind;
      step.execute = true;
      step.replayed.emplace();
      step.replayed->sql = analysis->sets_constraints
                               ? statement.sql
                               : analysis->savepoint_command + " " + quote_identifier("u_" + analysis->savepoint_name);
      step.restores = analysis->savepoint_command == "ROLLBACK TO SAVEPOINT";
    } else if (request.tx != wire::TxMode::autocommit && analysis->read_only) {
      // READ ONLY for the unit's work: set inside the unit's savepoint, which
      // is rolled back at the end (a read-only unit has nothing to keep), so
      // the mode never reaches the executor's bookkeeping or the next unit.
      // The isolation level is the unit's transaction's (see attempt_plain).
      note.kind = analysis->kind;
      step.execute = true;
      step.replayed.emplace();
      step.replayed->sql = "SET TRANSACTION READ ONLY";
    } else if (analysis->kind == statement::Kind::transaction_control) {
      // The executor owns the unit's transaction; the primary saw these succeed.
      note.disposition = Disposition::transaction_control;
      note.kind = analysis->kind;
      shadow.result.set_digest(digest::DigestBuilder({}, rules_for(shadow.fingerprint)).finish());
    } else if (config_.writes == WritesMode::skip &&
               (analysis->kind == statement::Kind::write || analysis->kind == statement::Kind::ddl)) {
      note.disposition = Disposition::writes_skipped;
      note.kind = analysis->kind;
      shadow.result = not_executed(wire::Status::refused, "", kWritesSkippedMessage);
    } else {
      note.kind = analysis->kind;
      step.execute = true;
      step.statement_count = analysis->statement_count;
    }
    steps.push_back(std::move(step));
  }
  return steps;
}

std::string UnitRunner::fence_check(const PartitionId& id, int64_t first_offset) const {
  // Locks the partition's row, and fails (so nothing after it in the
  // transaction runs) unless the batch's first offset is not applied yet.
  // Under READ COMMITTED a row another executor updated meanwhile is
  // re-checked in its new version once that executor commits.
  return "SELECT coalesce((SELECT next_offset::text FROM shadowpipe.applied WHERE consumer_group = " +
         literal(id.group) + " AND topic = " + literal(id.topic) + " AND partition = " +
         std::to_string(id.partition) + " AND next_offset <= " + std::to_string(first_offset) + " FOR UPDATE), " +
         literal("shadowpipe fence: offset " + std::to_string(first_offset) + " was applied before") + ")::bigint";
}

std::string UnitRunner::advance_applied(const PartitionId& id, int64_t last_offset) const {
  // The row is locked by the fence since the batch began.
  return "UPDATE shadowpipe.applied SET next_offset = " + std::to_string(last_offset + 1) +
         ", updated_at = now() WHERE consumer_group = " + literal(id.group) + " AND topic = " + literal(id.topic) +
         " AND partition = " + std::to_string(id.partition);
}

UnitReport UnitRunner::run(const wire::Request& request, const PartitionId& id, int64_t offset) {
  return std::move(run_batch({BatchUnit{&request, offset}}, id).front());
}

std::vector<UnitReport> UnitRunner::run_batch(const std::vector<BatchUnit>& units, const PartitionId& id) {
  std::vector<UnitReport> reports(units.size());
  for (size_t i = 0; i < units.size(); ++i) {
    auto& result = reports[i].result;
    result.request_id = units[i].request->request_id;
    result.key = units[i].request->key;
    result.executor = config_.executor_id;
    result.source_partition = id.partition;
    result.source_offset = units[i].offset;
  }
  if (units.empty()) return reports;
  const bool alone = runs_alone(*units[0].request, analyzer_);
  if (units.size() > 1) {
    for (size_t i = 0; i < units.size(); ++i) {
      if ((i > 0 && units[i].offset <= units[i - 1].offset) ||
          !may_share_batch(*units[0].request, *units[i].request, analyzer_)) {
        throw std::invalid_argument("run_batch: units must ascend and be able to share a transaction");
      }
    }
  }
  size_t first = 0;
  for (;;) {
    const Outcome outcome = config_.pipeline && !alone ? attempt_pipelined(units, first, id, reports)
                                                       : attempt_plain(units, first, id, reports);
    if (outcome == Outcome::committed) return reports;
    if (outcome == Outcome::redo_serially) {
      for (size_t i = first; i < units.size(); ++i) reports[i] = std::move(run_batch({units[i]}, id).front());
      return reports;
    }
    // The fence refused: some of the units were applied before (by this
    // executor before a crash, or another instance during a rebalance).
    const int64_t next = read_next_offset(conn_, id);
    if (next <= units[first].offset) {
      throw Failure("the fence in shadowpipe.applied was refused on the shadow: " + fence_error_ +
                    (next < 0 ? " (the partition has no row)" : "") +
                    " — check the executor role's grants on schema shadowpipe");
    }
    for (; first < units.size() && units[first].offset < next; ++first) reports[first].applied = false;
    if (first == units.size()) return reports;
  }
}

void UnitRunner::record_settings_refused(const BatchUnit& unit, const PartitionId& id, const std::string& sqlstate,
                                         const std::string& message, UnitReport& report) {
  auto steps = classify(*unit.request);
  for (auto& step : steps) {
    step.note.disposition = Disposition::not_reached;
    step.shadow.result = not_executed(wire::Status::error, sqlstate, "session setting refused: " + message);
    report.result.statements.push_back(std::move(step.shadow));
    report.notes.push_back(step.note);
  }
  report.result.ts_us = wire::now_us();
  report.logged_payload = wire::encode(report.result);
  report.applied = fence_and_log(id, unit.offset, Destination::results, unit.request->key, report.logged_payload);
}

UnitReport UnitRunner::record_not_replayed(const wire::Request& request, const PartitionId& id, int64_t offset,
                                           const std::string& why) {
  UnitReport report;
  report.result.request_id = request.request_id;
  report.result.key = request.key;
  report.result.executor = config_.executor_id;
  report.result.source_partition = id.partition;
  report.result.source_offset = offset;
  auto steps = classify(request);
  for (auto& step : steps) {
    step.note.disposition = Disposition::not_reached;
    step.shadow.result = not_executed(wire::Status::error, kNotReplayedSqlstate, kNotReplayedMessage + why);
    report.result.statements.push_back(std::move(step.shadow));
    report.notes.push_back(step.note);
  }
  report.result.ts_us = wire::now_us();
  report.logged_payload = wire::encode(report.result);
  report.applied = fence_and_log(id, offset, Destination::results, request.key, report.logged_payload);
  return report;
}

UnitRunner::Outcome UnitRunner::attempt_plain(const std::vector<BatchUnit>& units, size_t first,
                                              const PartitionId& id, std::vector<UnitReport>& reports) {
  const std::string settings = settings_select(units[first].request->session);
  // Start: one round trip. A unit that ran under another isolation level on
  // the primary runs alone, and its transaction gets that level.
  const std::string isolation = units.size() - first == 1 ? isolation_clause(*units[first].request) : "";
  std::string start = "BEGIN" + isolation + "; " + fence_check(id, units[first].offset) + "; ";
  if (!settings.empty()) start += settings + "; ";
  start += "SAVEPOINT sp";
  auto started = script(start);
  if (started.empty() || !started[0].succeeded()) {
    script("ROLLBACK");
    throw_refused("cannot begin a transaction on the shadow: ", started.empty() ? nullptr : &started[0]);
  }
  if (started.size() < 2 || !started[1].succeeded()) {
    fence_error_ = started.size() < 2 ? std::string("no result") : started[1].error_message();
    script("ROLLBACK");
    return Outcome::fence_moved;
  }
  if (!settings.empty() && (started.size() < 3 || !started[2].succeeded())) {
    const std::string sqlstate = started.size() < 3 ? "" : started[2].sqlstate();
    const std::string message = started.size() < 3 ? "no result" : started[2].error_message();
    script("ROLLBACK");
    for (size_t i = first; i < units.size(); ++i) record_settings_refused(units[i], id, sqlstate, message, reports[i]);
    return Outcome::committed;
  }
  if (!started.back().succeeded()) {
    script("ROLLBACK");
    throw_refused("SAVEPOINT refused on the shadow: ", &started.back());
  }

  const bool batch = units.size() - first > 1;
  bool session_changed = false;  // a plain SET ran: reset after the unit so it cannot leak
  std::string pending;           // savepoint commands not sent yet, prefixed to the next round trip
  for (size_t u = first; u < units.size(); ++u) {
    const wire::Request& request = *units[u].request;
    auto steps = classify(request);
    const bool undo = request.tx == wire::TxMode::rollback || config_.writes == WritesMode::rollback ||
                      std::any_of(steps.begin(), steps.end(), [](const Step& step) {
                        return step.replayed && step.replayed->sql == "SET TRANSACTION READ ONLY";
                      });
    const bool per_statement = request.tx == wire::TxMode::autocommit && request.statements.size() > 1;
    // An autocommit unit to be undone keeps its statements apart with a
    // nested savepoint v, so sp stays before the unit.
    const std::string level = per_statement && undo ? "v" : "sp";
    bool aborted = false;
    bool executed_any = false;
    for (size_t i = 0; i < steps.size(); ++i) {
      auto& step = steps[i];
      if (!step.execute) continue;
      if (aborted && !step.restores) {
        step.not_reached();
        continue;
      }
      aborted = false;  // ROLLBACK TO SAVEPOINT runs in an aborted transaction, as on the primary
      if (per_statement && undo && !executed_any) pending += "SAVEPOINT v; ";
      executed_any = true;
      if (!pending.empty()) {
        for (auto& done : script(pending)) {
          if (!done.succeeded()) throw_refused("savepoint bookkeeping failed on the shadow: ", &done);
        }
        pending.clear();
      }
      const auto begin = Clock::now();
      pg::Result executed = this->statement(step.replayed ? *step.replayed : request.statements[i], step.statement_count);
      step.shadow.result.latency_us = micros(Clock::now() - begin);
      const bool ok = step.record(executed, rules_for(step.shadow.fingerprint));
      if (ok) describe_from_catalog(step.shadow.fingerprint, request.statements[i].sql, executed, step.shadow.result);
      if (ok && step.note.kind == statement::Kind::utility) session_changed = true;
      if (!ok && batch && batch_artefact(step.shadow.result.sqlstate)) {
        script("ROLLBACK");
        return Outcome::redo_serially;
      }
      if (!ok) {
        try {
          throw_if_transient(step.shadow.result, request.statements[i]);
        } catch (const TransientFailure&) {
          script("ROLLBACK");
          throw;
        }
      }
      if (per_statement) {
        pending += ok ? "RELEASE SAVEPOINT " + level + "; SAVEPOINT " + level + "; "
                      : "ROLLBACK TO SAVEPOINT " + level + "; ";
      } else if (!ok) {
        aborted = true;
      }
    }
    if (executed_any) {
      if (undo || aborted) {
        pending += "ROLLBACK TO SAVEPOINT sp; ";
      } else if (!per_statement) {
        pending += "RELEASE SAVEPOINT sp; SAVEPOINT sp; ";
      }
    }
    for (auto& step : steps) {
      reports[u].result.statements.push_back(std::move(step.shadow));
      reports[u].notes.push_back(step.note);
    }
  }
  return finish(units, first, id, reports, std::move(pending), session_changed);
}

UnitRunner::Outcome UnitRunner::attempt_pipelined(const std::vector<BatchUnit>& units, size_t first,
                                                  const PartitionId& id, std::vector<UnitReport>& reports) {
  const std::string settings = settings_select(units[first].request->session);
  std::vector<std::vector<Step>> steps(units.size());
  Pipeline pipe(conn_);
  // Start segment; the fence fails the segment when it refuses, and the
  // missing savepoint sp then fails every later one: nothing runs.
  pipe.send("BEGIN");
  const size_t fence_at = pipe.size();
  pipe.send(fence_check(id, units[first].offset));
  const size_t settings_at = pipe.size();
  if (!settings.empty()) pipe.send(settings);
  pipe.send("SAVEPOINT sp");
  pipe.sync();
  // Every segment starts by undoing what failed in the one before it (a
  // no-op when nothing did: sp is then at the current point).
  for (size_t u = first; u < units.size(); ++u) {
    const wire::Request& request = *units[u].request;
    steps[u] = classify(request);
    const bool undo = request.tx == wire::TxMode::rollback || config_.writes == WritesMode::rollback;
    const bool per_statement = request.tx == wire::TxMode::autocommit && request.statements.size() > 1;
    std::vector<size_t> executed;
    for (size_t i = 0; i < steps[u].size(); ++i) {
      if (steps[u][i].execute) executed.push_back(i);
    }
    if (executed.empty()) continue;
    if (per_statement) {
      // One segment per statement, so a failure skips nothing else.
      const std::string level = undo ? "v" : "sp";
      for (size_t n = 0; n < executed.size(); ++n) {
        if (undo && n == 0) {
          pipe.send("ROLLBACK TO SAVEPOINT sp");
          pipe.send("SAVEPOINT v");
        } else {
          pipe.send("ROLLBACK TO SAVEPOINT " + level);
        }
        pipe.send(request.statements[executed[n]].sql, Pipeline::Type::statement, u, executed[n],
                  &request.statements[executed[n]].params);
        pipe.send("RELEASE SAVEPOINT " + level);
        pipe.send("SAVEPOINT " + level);
        pipe.sync();
      }
    } else {
      // One segment: after a failure the server skips the rest of the unit,
      // as the primary's aborted transaction did; the next segment undoes it.
      pipe.send("ROLLBACK TO SAVEPOINT sp");
      for (size_t n = 0; n < executed.size(); ++n) {
        pipe.send(request.statements[executed[n]].sql, Pipeline::Type::statement, u, executed[n],
                  &request.statements[executed[n]].params);
        if (n + 1 < executed.size()) pipe.flush_request();
      }
      if (!undo) {  // a unit to undo leaves sp before it: the next segment rolls it back
        pipe.send("RELEASE SAVEPOINT sp");
        pipe.send("SAVEPOINT sp");
      }
      pipe.sync();
    }
  }
  pipe.collect();
  pipe.exit();

  if (!pipe.result(0).succeeded()) {
    script("ROLLBACK");
    throw_refused("cannot begin a transaction on the shadow: ", &pipe.result(0));
  }
  if (!pipe.result(fence_at).succeeded()) {
    fence_error_ = pipe.result(fence_at).error_message();
    script("ROLLBACK");
    return Outcome::fence_moved;
  }
  if (!settings.empty() && !pipe.result(settings_at).succeeded()) {
    const std::string sqlstate = pipe.result(settings_at).sqlstate();
    const std::string message = pipe.result(settings_at).error_message();
    script("ROLLBACK");
    for (size_t i = first; i < units.size(); ++i) record_settings_refused(units[i], id, sqlstate, message, reports[i]);
    return Outcome::committed;
  }
  const bool batch = units.size() - first > 1;
  bool redo = false;
  std::optional<std::string> transient;  // a statement failed for a passing cause: retry the units
  // latency_us in pipeline mode: from the later of the statement's sending
  // and the arrival of the previous statement's result (or sync) to the
  // arrival of its own result: the server's time for it, without the round
  // trip the pipeline saves.
  Clock::time_point previous{};
  for (size_t c = 0; c < pipe.size(); ++c) {
    const auto& command = pipe.command(c);
    const auto& result = pipe.result(c);
    if (command.type == Pipeline::Type::sync) {
      previous = pipe.arrival(c);
      continue;
    }
    if (command.type == Pipeline::Type::bookkeeping) {
      if (result.status() == PGRES_FATAL_ERROR) {
        script("ROLLBACK");
        throw_refused("savepoint bookkeeping failed on the shadow: ", &result);
      }
      continue;
    }
    auto& step = steps[command.unit][command.step];
    if (result.status() == PGRES_PIPELINE_ABORTED) {
      step.not_reached();
      continue;
    }
    step.shadow.result.latency_us = micros(pipe.arrival(c) - std::max(command.sent, previous));
    previous = pipe.arrival(c);
    const bool ok = step.record(result, rules_for(step.shadow.fingerprint));
    if (ok) {
      describe_from_catalog(step.shadow.fingerprint, units[command.unit].request->statements[command.step].sql, result,
                            step.shadow.result);
    }
    if (!ok && batch && batch_artefact(step.shadow.result.sqlstate)) redo = true;
    if (!ok && !transient) {
      try {
        throw_if_transient(step.shadow.result, units[command.unit].request->statements[command.step]);
      } catch (const TransientFailure& failure) {
        transient = failure.what();
      }
    }
  }
  if (redo) {
    script("ROLLBACK");
    return Outcome::redo_serially;
  }
  if (transient) {
    script("ROLLBACK");
    throw TransientFailure(*transient);
  }
  for (size_t u = first; u < units.size(); ++u) {
    for (auto& step : steps[u]) {
      reports[u].result.statements.push_back(std::move(step.shadow));
      reports[u].notes.push_back(step.note);
    }
  }
  return finish(units, first, id, reports, "ROLLBACK TO SAVEPOINT sp; ", false);
}

UnitRunner::Outcome UnitRunner::finish(const std::vector<BatchUnit>& units, size_t first, const PartitionId& id,
                                       std::vector<UnitReport>& reports, std::string pending, bool session_changed) {
  if (config_.abandon && config_.abandon->load()) {
    script("ROLLBACK");
    throw UnitAbandoned("units from offset " + std::to_string(units[first].offset) + " abandoned at shutdown");
  }
  std::string values;
  for (size_t i = first; i < units.size(); ++i) {
    auto& report = reports[i];
    report.result.ts_us = wire::now_us();
    report.logged_payload = wire::encode(report.result);
    if (!values.empty()) values += ", ";
    values += "(" + log_values(id, units[i].offset, Destination::results, units[i].request->key,
                               report.logged_payload) + ")";
  }
  // One round trip: the open savepoint commands, the offset, the results, COMMIT.
  // The statement timeout (SET LOCAL at the start) is for the traffic's
  // statements, not for the bookkeeping: a slow log insert must not turn into
  // a shadow error of the unit.
  std::string sql = std::move(pending) + "SET LOCAL statement_timeout = 0; " + advance_applied(id, units.back().offset) + "; INSERT INTO " + kLogColumns +
                    " VALUES " + values + kLogConflict + "; COMMIT";
  if (session_changed) sql += "; RESET ALL";
  auto finished = script(sql);
  // A COMMIT of a transaction the server had aborted answers with the tag
  // ROLLBACK, not an error: the batch counts as committed only on "COMMIT".
  bool committed = false;
  std::string commit_error = "the transaction was rolled back at COMMIT";
  std::string commit_sqlstate = "40000";
  for (const auto& step : finished) {
    if (!step.succeeded()) {
      commit_error = step.error_message();
      commit_sqlstate = step.sqlstate();
      break;
    }
    if (is_command_tag(step, "COMMIT")) committed = true;
  }
  if (committed) {
    for (size_t i = first; i < units.size(); ++i) reports[i].applied = true;
    return Outcome::committed;
  }
  script("ROLLBACK");
  // Not the units' doing: a shutdown cancel, or the server going away. The
  // units did not commit; they run again later rather than being recorded
  // with an error they never had.
  if (commit_sqlstate == "57014" && config_.abandon && config_.abandon->load()) {
    throw UnitAbandoned("units from offset " + std::to_string(units[first].offset) + " cancelled at shutdown");
  }
  if (commit_sqlstate == "57014" || commit_sqlstate.starts_with("08") || commit_sqlstate.starts_with("57P")) {
    throw ConnectionLost("the shadow did not commit (" + commit_sqlstate + "): " + commit_error);
  }
  // A batch: which unit made COMMIT fail is unknown; each runs again in a
  // transaction of its own, so the others are not lost with it.
  if (units.size() - first > 1) return Outcome::redo_serially;
  // One unit whose COMMIT failed for a passing cause (disk full, a
  // serialization failure against another partition): run it again later.
  if (transient_sqlstate(commit_sqlstate)) {
    throw TransientFailure("the shadow did not commit (" + commit_sqlstate + "): " + commit_error);
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

std::optional<wire::PlanSummary> UnitRunner::explain(const wire::Request& request, size_t statement_index) {
  const auto& statement = request.statements.at(statement_index);
  std::string start = "BEGIN";
  const std::string settings = settings_select(request.session);
  if (!settings.empty()) start += "; " + settings;
  auto started = script(start);
  std::optional<wire::PlanSummary> summary;
  if (!started.empty() && started.back().succeeded()) {
    pg::Result plan = conn_.exec("EXPLAIN (FORMAT JSON) " + statement.sql, statement.params);
    throw_if_lost(conn_);
    if (plan && plan.succeeded() && plan.rows() == 1 && plan.columns() == 1) {
      auto parsed = summarize_plan(plan.value(0, 0));
      if (parsed.ok()) summary = std::move(parsed.value());
    }
  }
  script("ROLLBACK");
  return summary;
}

bool UnitRunner::record_passed_over(const PartitionId& id, int64_t offset) {
  auto results = script(fence_update(id, offset));
  if (results.size() != 1 || !results[0].succeeded()) {
    throw_if_lost(conn_);
    throw_refused("recording offset " + std::to_string(offset) + " of " + id.topic + "[" +
                      std::to_string(id.partition) + "] on the shadow failed: ",
                  results.empty() ? nullptr : &results[0]);
  }
  return results[0].affected_rows() == 1;
}

}  // namespace shadowpipe::executor
