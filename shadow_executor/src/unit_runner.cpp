#include "shadow_executor/unit_runner.hpp"

#include "shadow_executor/plan.hpp"

#include "shadowpipe/result.hpp"

#include <chrono>
#include <cstring>
#include <memory>

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

UnitRunner::UnitRunner(const pg::Connection& conn, RunnerConfig config, statement::Analyzer& analyzer)
    : conn_(conn), config_(std::move(config)), analyzer_(analyzer) {}

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

std::string UnitRunner::log_insert(const PartitionId& id, int64_t offset, Destination destination,
                                   std::string_view key, std::string_view payload) const {
  return std::string("INSERT INTO ") + kLogColumns + " VALUES (" + log_values(id, offset, destination, key, payload) +
         ")" + kLogConflict;
}

bool UnitRunner::fence_and_log(const PartitionId& id, int64_t offset, Destination destination, std::string_view key,
                               const std::string& payload) {
  // One statement, so fence and log commit together without a transaction block.
  const std::string sql = "WITH fence AS (" + fence_update(id, offset) + " RETURNING 1) INSERT INTO " + kLogColumns +
                          " SELECT " + log_values(id, offset, destination, key, payload) + " FROM fence" +
                          kLogConflict;
  auto results = script(sql);
  if (results.size() != 1 || !results[0].succeeded()) {
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

UnitReport UnitRunner::run(const wire::Request& request, const PartitionId& id, int64_t offset) {
  UnitReport report;
  auto& result = report.result;
  result.request_id = request.request_id;
  result.key = request.key;
  result.executor = config_.executor_id;
  result.source_partition = id.partition;
  result.source_offset = offset;

  const size_t count = request.statements.size();
  const bool per_statement_savepoints = request.tx == wire::TxMode::autocommit && count > 1;

  // Start: one round trip.
  const std::string settings = settings_select(request.session);
  std::string start = "BEGIN; " + fence_update(id, offset) + "; ";
  if (!settings.empty()) start += settings + "; ";
  start += "SAVEPOINT unit";
  if (per_statement_savepoints) start += "; SAVEPOINT stmt";
  auto started = script(start);
  if (started.size() < 2 || !started[0].succeeded() || !started[1].succeeded()) {
    script("ROLLBACK");
    throw Failure("updating shadowpipe.applied on the shadow failed: " +
                  (started.size() >= 2 ? started[1].error_message() : std::string("no result")) +
                  " — check the executor role's grants on schema shadowpipe");
  }
  if (started[1].affected_rows() == 0) {
    script("ROLLBACK");
    return report;  // applied before: not again
  }
  const bool settings_failed = !settings.empty() && (started.size() < 3 || !started[2].succeeded());

  bool aborted = false;           // a tx=commit unit failed: the rest is not run
  bool any_failed = false;
  bool session_changed = false;   // a plain SET ran: reset after the unit so it cannot leak
  bool stmt_savepoint_open = per_statement_savepoints;
  std::string pending;            // savepoint commands not sent yet, prefixed to the next round trip

  result.statements.reserve(count);
  report.notes.reserve(count);
  for (const auto& statement : request.statements) {
    wire::ShadowStatement shadow;
    StatementNote note;
    auto analysis = analyzer_.analyze(statement.sql);
    shadow.fingerprint = !statement.fingerprint.empty() ? statement.fingerprint
                         : analysis.ok()               ? analysis->fingerprint
                                                       : "";
    if (settings_failed) {
      note.disposition = Disposition::not_reached;
      shadow.result = not_executed(wire::Status::error, started[2].sqlstate(),
                                   "session setting refused: " + started[2].error_message());
    } else if (!analysis.ok()) {
      // Not sent: the guard cannot vouch for text its parser cannot read.
      note.disposition = Disposition::unparsable;
      shadow.result = not_executed(wire::Status::error, "42601", analysis.error().message);
    } else if (analysis->kind != statement::Kind::transaction_control && analysis->reaches_outside()) {
      note.disposition = Disposition::refused_by_guard;
      note.kind = analysis->kind;
      shadow.result = not_executed(wire::Status::refused, "",
                                   "refused: reaches outside the shadow database (" +
                                       join(analysis->outside_reasons, "; ") + ")");
    } else if (analysis->statement_count > 1 && !statement.params.empty()) {
      note.disposition = Disposition::unparsable;
      note.kind = analysis->kind;
      shadow.result = not_executed(wire::Status::error, "42601", "cannot insert multiple commands into a prepared statement");
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
    } else if (aborted) {
      note.disposition = Disposition::not_reached;
      note.kind = analysis->kind;
      shadow.result = not_executed(wire::Status::error, kAbortedSqlstate, kAbortedMessage);
    } else {
      note.kind = analysis->kind;
      if (per_statement_savepoints && !stmt_savepoint_open) {
        pending += "SAVEPOINT stmt";
        stmt_savepoint_open = true;
      }
      if (!pending.empty()) {
        for (auto& step : script(pending)) {
          if (!step.succeeded()) throw Failure("savepoint bookkeeping failed on the shadow: " + step.error_message());
        }
        pending.clear();
      }
      const auto begin = std::chrono::steady_clock::now();
      pg::Result executed = this->statement(statement, analysis->statement_count);
      shadow.result.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - begin)
                                     .count();
      if (executed.succeeded()) {
        shadow.result.set_digest(digest::digest_result(executed.get(), rules_for(shadow.fingerprint)));
        if (executed.status() == PGRES_COMMAND_OK) shadow.result.rows = executed.affected_rows();
        if (analysis->kind == statement::Kind::utility) session_changed = true;
      } else {
        shadow.result.status = wire::Status::error;
        shadow.result.sqlstate = executed.sqlstate();
        shadow.result.message = executed.error_message();
        any_failed = true;
        if (request.tx != wire::TxMode::autocommit) aborted = true;
      }
      if (per_statement_savepoints) {
        pending = executed.succeeded() ? "RELEASE SAVEPOINT stmt; "
                                       : "ROLLBACK TO SAVEPOINT stmt; RELEASE SAVEPOINT stmt; ";
        stmt_savepoint_open = false;
      }
    }
    result.statements.push_back(std::move(shadow));
    report.notes.push_back(note);
  }

  result.ts_us = wire::now_us();
  report.logged_payload = wire::encode(result);

  const bool undo_unit = settings_failed || request.tx == wire::TxMode::rollback ||
                         config_.writes == WritesMode::rollback || (any_failed && !per_statement_savepoints);
  if (config_.abandon && config_.abandon->load()) {
    script("ROLLBACK");
    throw UnitAbandoned("unit at offset " + std::to_string(offset) + " abandoned at shutdown");
  }
  std::string finish = pending;
  if (undo_unit) finish += "ROLLBACK TO SAVEPOINT unit; ";
  finish += log_insert(id, offset, Destination::results, request.key, report.logged_payload) + "; COMMIT";
  if (session_changed) finish += "; RESET ALL";
  auto finished = script(finish);
  // A COMMIT of a transaction the server had aborted answers with the tag
  // ROLLBACK, not an error: the unit counts as committed only on "COMMIT".
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
    report.applied = true;
    return report;
  }

  // COMMIT refused (a deferred constraint, a serialization failure): the
  // unit's effects are gone, as the primary's would be had its COMMIT failed.
  // Report that on the last statement the server ran, and record the offset.
  script("ROLLBACK");
  for (size_t i = result.statements.size(); i-- > 0;) {
    if (report.notes[i].disposition == Disposition::executed) {
      auto& failed = result.statements[i].result;
      failed = not_executed(wire::Status::error, commit_sqlstate, "at COMMIT: " + commit_error);
      break;
    }
  }
  report.logged_payload = wire::encode(result);
  report.applied = fence_and_log(id, offset, Destination::results, request.key, report.logged_payload);
  return report;
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

}  // namespace shadowpipe::executor
