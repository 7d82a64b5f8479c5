#include "shadow_executor/statement_policy.hpp"

#include "shadowpipe/pg_result.hpp"

#include <algorithm>

namespace shadowpipe::executor {

namespace {

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

std::string quote_identifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

constexpr const char* kReadOnly = "SET TRANSACTION READ ONLY";

// A setting changed past the transaction (a plain SET, set_config(..., false)
// or with an is_local that is not a constant true): its unit runs alone and
// the session is reset after it. set_config(..., true) ends with the unit.
bool changes_session(const statement::Analysis& analysis) {
  return analysis.kind == statement::Kind::utility ||
         std::any_of(analysis.setting_changes.begin(), analysis.setting_changes.end(),
                     [](const statement::SettingChange& change) { return !change.local; });
}

}  // namespace

bool transient_sqlstate(std::string_view sqlstate) {
  return sqlstate == "57P01" || sqlstate == "57P03" || sqlstate == "53300" || sqlstate == "40001" ||
         sqlstate == "40P01" || sqlstate == "53100";
}

bool batch_artefact(std::string_view sqlstate) { return sqlstate == "40P01" || sqlstate == "40001"; }

std::string not_replayable(const statement::Analysis& analysis, bool has_copy_data) {
  if (analysis.statement_count > 1 && analysis.has_transaction_control) {
    return "transaction control inside a text of several statements cannot be replayed (the executor owns the "
           "transaction: a COMMIT in it would commit without the offset)";
  }
  // A COPY FROM STDIN whose data the record carries is replayed with it (one
  // statement: a text of several cannot say which COPY the data is for).
  const bool data_in_record = has_copy_data && analysis.copies_from_client && analysis.statement_count == 1;
  if (analysis.copies_client_data && !data_in_record) {
    return "COPY with client data (STDIN/STDOUT) cannot be replayed (the data is not in the record)";
  }
  if (!analysis.session_reasons.empty()) {
    return "leaves state in the shadow session past the unit (" + join(analysis.session_reasons, "; ") + ")";
  }
  // The application's PREPARE is never replayed (above), so on the shadow's
  // connection the name is missing, or is the executor's own bookkeeping
  // statement (shadowpipe_fence, shadowpipe_batch_log), which must never
  // run with the traffic's arguments.
  if (!analysis.prepared_names_used.empty()) {
    return "uses a statement PREPAREd earlier in the application's session (" +
           join(analysis.prepared_names_used, ", ") + "), which the shadow's session does not have";
  }
  return {};
}

wire::StatementResult not_executed(wire::Status status, std::string sqlstate, std::string message) {
  wire::StatementResult result;
  result.status = status;
  result.sqlstate = std::move(sqlstate);
  result.message = std::move(message);
  return result;
}

bool Step::record(const Reply& reply, const digest::NormalizationRules& rules) {
  if (reply.ok()) {
    shadow.result.set_digest(digest::digest_result(reply.result.get(), rules));
    if (reply.result.status() == PGRES_COMMAND_OK) shadow.result.rows = reply.affected_rows;
    return true;
  }
  shadow.result.status = wire::Status::error;
  shadow.result.sqlstate = reply.sqlstate;
  shadow.result.message = reply.message;
  return false;
}

void Step::not_reached() {
  note.disposition = Disposition::not_reached;
  shadow.result = not_executed(wire::Status::error, kAbortedSqlstate, kAbortedMessage);
}

std::vector<Step> plan_unit(const wire::Request& request, statement::Analyzer& analyzer, WritesMode writes,
                            const digest::NormalizationConfig& normalization) {
  std::vector<Step> steps;
  steps.reserve(request.statements.size());
  for (const auto& statement : request.statements) {
    Step step;
    auto& shadow = step.shadow;
    auto& note = step.note;
    // The cache's own analysis, read in place: a copy of its strings and
    // vectors for every statement was a fifth of the executor's allocations.
    auto shared_analysis = analyzer.analyze_shared(statement.sql);
    if (!shared_analysis.ok()) {
      // Not sent: the guard cannot vouch for text its parser cannot read.
      shadow.fingerprint = statement.fingerprint;
      note.disposition = Disposition::unparsable;
      shadow.result = not_executed(wire::Status::error, "42601", shared_analysis.error().message);
      steps.push_back(std::move(step));
      continue;
    }
    const statement::Analysis* analysis = shared_analysis.value().get();
    shadow.fingerprint = !statement.fingerprint.empty() ? statement.fingerprint : analysis->fingerprint;
    note.kind = analysis->kind;
    const bool in_transaction = request.tx != wire::TxMode::autocommit;
    if (analysis->kind != statement::Kind::transaction_control && analysis->reaches_outside()) {
      note.disposition = Disposition::refused_by_guard;
      shadow.result = not_executed(wire::Status::refused, "",
                                   "refused: reaches outside the shadow database (" +
                                       join(analysis->outside_reasons, "; ") + ")");
    } else if (const std::string why = not_replayable(*analysis, statement.copy_data.has_value()); !why.empty()) {
      note.disposition = Disposition::not_replayable;
      shadow.result = not_executed(wire::Status::refused, "", "refused: " + why);
    } else if (analysis->statement_count > 1 && !statement.params.empty()) {
      note.disposition = Disposition::unparsable;
      shadow.result =
          not_executed(wire::Status::error, "42601", "cannot insert multiple commands into a prepared statement");
    } else if (in_transaction && (!analysis->savepoint_command.empty() || analysis->sets_constraints)) {
      // Inside the unit's transaction, in order. User savepoints get a prefix
      // so they never meet the executor's own (sp, v), which stay below them.
      step.execute = true;
      step.replayed.emplace();
      step.replayed->sql = analysis->sets_constraints
                               ? statement.sql
                               : analysis->savepoint_command + " " + quote_identifier("u_" + analysis->savepoint_name);
      step.restores = analysis->savepoint_command == "ROLLBACK TO SAVEPOINT";
    } else if (in_transaction && analysis->read_only) {
      // READ ONLY for the unit's work: set inside the unit's savepoint, which
      // is rolled back at the end (a read-only unit has nothing to keep), so
      // the mode never reaches the executor's bookkeeping or the next unit.
      // The isolation level is the unit's transaction's (isolation_clause).
      step.execute = true;
      step.replayed.emplace();
      step.replayed->sql = kReadOnly;
    } else if (analysis->kind == statement::Kind::transaction_control) {
      // The executor owns the unit's transaction; the primary saw these succeed.
      note.disposition = Disposition::transaction_control;
      shadow.result.set_digest(digest::DigestBuilder({}, normalization.for_fingerprint(shadow.fingerprint)).finish());
    } else if (writes == WritesMode::skip &&
               (analysis->kind == statement::Kind::write || analysis->kind == statement::Kind::ddl)) {
      note.disposition = Disposition::writes_skipped;
      shadow.result = not_executed(wire::Status::refused, "", kWritesSkippedMessage);
    } else {
      step.execute = true;
      step.statement_count = analysis->statement_count;
      step.changes_session = changes_session(*analysis);
      step.drops_prepared_statements = analysis->drops_prepared_statements;
    }
    steps.push_back(std::move(step));
  }
  return steps;
}

bool undoes_unit(const wire::Request& request, const std::vector<Step>& steps, WritesMode writes) {
  return request.tx == wire::TxMode::rollback || writes == WritesMode::rollback ||
         std::any_of(steps.begin(), steps.end(),
                     [](const Step& step) { return step.replayed && step.replayed->sql == kReadOnly; });
}

bool runs_per_statement(const wire::Request& request) {
  return request.tx == wire::TxMode::autocommit && request.statements.size() > 1;
}

bool runs_alone(const wire::Request& request, statement::Analyzer& analyzer) {
  for (const auto& statement : request.statements) {
    if (statement.copy_data) return true;  // COPY is not allowed in libpq's pipeline mode
    auto shared_analysis = analyzer.analyze_shared(statement.sql);  // in place: this runs for every unit, twice
    if (!shared_analysis.ok()) continue;
    const statement::Analysis& analysis = *shared_analysis.value();
    if (!analysis.reaches_outside() && not_replayable(analysis).empty() &&  // refusals are not run
        (changes_session(analysis) || analysis.statement_count > 1)) {
      return true;
    }
    if (request.tx != wire::TxMode::autocommit &&
        (!analysis.savepoint_command.empty() || analysis.sets_constraints || analysis.sets_transaction_mode())) {
      return true;
    }
  }
  return false;
}

bool may_share_batch(const wire::Request& first, const wire::Request& next, statement::Analyzer& analyzer) {
  return first.session == next.session && !runs_alone(first, analyzer) && !runs_alone(next, analyzer);
}

std::string isolation_clause(const wire::Request& request, statement::Analyzer& analyzer) {
  if (request.tx == wire::TxMode::autocommit) return "";
  std::string level;
  for (const auto& statement : request.statements) {
    auto analysis = analyzer.analyze_shared(statement.sql);
    if (analysis.ok() && !analysis.value()->isolation_level.empty()) level = analysis.value()->isolation_level;
  }
  // The parser's names, checked: nothing else is written into the BEGIN.
  for (const char* known : {"serializable", "repeatable read", "read committed", "read uncommitted"}) {
    if (level == known) return " ISOLATION LEVEL " + level;
  }
  return "";
}

ShadowError classify_shadow_error(const wire::StatementResult& shadow, const wire::Statement& primary, bool in_batch) {
  if (in_batch && batch_artefact(shadow.sqlstate)) return ShadowError::redo_serially;
  // A passing cause the primary did not have: the unit is retried rather
  // than recorded with an error it owes to the shadow.
  if (transient_sqlstate(shadow.sqlstate) &&
      !(primary.result.status == wire::Status::error && primary.result.sqlstate == shadow.sqlstate)) {
    return ShadowError::transient;
  }
  return ShadowError::unit_result;
}

CommitFailure classify_commit_failure(std::string_view sqlstate, bool abandoning, bool in_batch) {
  // Not the units' doing: a shutdown cancel, or the server going away. The
  // units did not commit; they run again later rather than being recorded
  // with an error they never had.
  if (sqlstate == "57014" && abandoning) return CommitFailure::abandoned;
  if (sqlstate == "57014" || sqlstate.starts_with("08") || sqlstate.starts_with("57P")) {
    return CommitFailure::connection_lost;
  }
  if (in_batch) return CommitFailure::redo_serially;
  // One unit whose COMMIT failed for a passing cause (disk full, a
  // serialization failure against another partition): run it again later.
  if (transient_sqlstate(sqlstate)) return CommitFailure::transient;
  return CommitFailure::unit_result;
}

}  // namespace shadowpipe::executor
