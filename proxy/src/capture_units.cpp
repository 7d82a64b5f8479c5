// Outcomes and units: statement errors and completions, and the unit handed to the sink (or dropped) at ReadyForQuery.
#include "capture_internal.hpp"

namespace shadowpipe::proxy {

using capture_text::micros;
using capture_text::shadow_key_tag;
using capture_text::wrote;

void SessionCapture::query_next_piece(Clock::time_point now) {
  if (next_piece_ < pieces_.size()) {
    begin_statement(query_execution_, std::move(pieces_[next_piece_]), {}, std::nullopt, now);
    ++next_piece_;
  } else {
    query_execution_.reset();
  }
}

void SessionCapture::error(std::string_view payload, Clock::time_point now) {
  const auto fields = protocol::parse_error(payload);
  if (ops_.empty()) return;  // a FATAL at shutdown, or during authentication
  unit_failed_ = true;
  Op& op = ops_.front();
  auto record_failure = [&](std::string sql, std::vector<std::optional<std::string>> params, Clock::time_point start) {
    CapturedStatement statement;
    statement.sql = std::move(sql);
    statement.params = std::move(params);
    statement.result.status = wire::Status::error;
    statement.result.sqlstate = fields.sqlstate;
    statement.result.message = fields.message;
    statement.result.latency_us = micros(now - start);
    ++statements_captured_;
    if (statements_.empty()) unit_session_ = session_;
    if (statements_.size() < limits_.max_statements) {
      statements_.push_back(std::move(statement));
    } else {
      problem(UnitDrop::oversized);
    }
    last_completion_ = now;
  };
  if (op.kind == OpKind::query) {
    if (op.problem) {
      problem(*op.problem);
    } else if (query_execution_) {
      if (query_execution_->problem) {
        problem(*query_execution_->problem);
      } else {
        record_failure(std::move(query_execution_->sql), {}, query_execution_->start);
      }
    }
    query_execution_.reset();
    query_failed_ = true;  // the rest of the text is not run; ReadyForQuery follows
    return;
  }
  // Extended protocol: the failed message, then everything up to Sync is skipped.
  if (op.problem) {
    problem(*op.problem);
  } else if (op.kind == OpKind::parse) {
    // A failed Parse leaves no statement (an unnamed one is gone too).
    if (auto found = prepared_.find(op.name); found != prepared_.end() && op.name.empty()) prepared_.erase(found);
    record_failure(std::move(op.text), {}, start_of(op));
  } else if (op.kind == OpKind::bind) {
    if (auto found = portals_.find(op.name); found != portals_.end() && op.name.empty()) portals_.erase(found);
    Portal portal = bind_portal(op);
    if (portal.problem) {
      problem(*portal.problem);
    } else {
      record_failure(std::move(portal.sql), std::move(portal.params), start_of(op));
    }
  } else if (op.kind == OpKind::execute) {
    if (auto found = portals_.find(op.name); found != portals_.end()) {
      auto& portal = found->second;
      if (portal.problem) {
        problem(*portal.problem);
      } else if (portal.running && portal.running->problem) {
        problem(*portal.running->problem);
      } else {
        const auto start = portal.running ? portal.running->start : start_of(op);
        record_failure(portal.sql, portal.params, start);
      }
      portal.running.reset();
    }
  } else if (op.kind == OpKind::sync) {
    return;  // the implicit COMMIT at Sync failed: ReadyForQuery follows, the unit is rolled back
  }
  while (!ops_.empty() && ops_.front().kind != OpKind::sync) ops_.pop_front();
  if (ops_.empty()) discarding_ = true;
}

void SessionCapture::complete(std::string_view tag, Clock::time_point now) {
  last_tag_.assign(tag);
  if (Execution* execution = current(); execution != nullptr && wrote(tag, execution->sql, copy_out_)) {
    unit_writes_ = true;
  } else if (execution == nullptr && !tag.starts_with("SELECT") && wrote(tag, {}, copy_out_)) {
    unit_writes_ = true;
  }
  copy_out_ = false;
  if (ops_.empty()) {
    problem(UnitDrop::unmatched);
    return;
  }
  Op& op = ops_.front();
  if (op.kind == OpKind::query) {
    if (op.problem) {
      problem(*op.problem);
    } else if (!query_execution_) {
      problem(UnitDrop::unmatched);  // more statements ran than the text was split into
    } else {
      finish_statement(std::move(query_execution_), now);
    }
    query_next_piece(now);
    return;
  }
  if (op.kind != OpKind::execute) {
    problem(UnitDrop::unmatched);
    return;
  }
  if (auto found = portals_.find(op.name); found != portals_.end()) {
    finish_statement(std::move(found->second.running), now);
  }
  ops_.pop_front();
}

void SessionCapture::ready(char status, Clock::time_point now) {
  // Everything up to this Sync (or Query) is answered.
  while (!ops_.empty()) {
    const OpKind kind = ops_.front().kind;
    if (kind == OpKind::query && !query_failed_ && query_execution_) problem(UnitDrop::unmatched);
    ops_.pop_front();
    if (kind == OpKind::sync || kind == OpKind::query) break;
  }
  query_started_ = false;
  query_failed_ = false;
  query_execution_.reset();
  pieces_.clear();
  last_completion_ = now;
  if (status == 'T' || status == 'E') {
    in_transaction_ = true;
    return;
  }
  // 'I': the transaction (or the implicit one of a Sync or a Query) is over,
  // and with it every portal.
  for (auto& [name, portal] : portals_) {
    if (portal.running) problem(portal.running->problem.value_or(UnitDrop::row_limited));
  }
  portals_.clear();
  if (statements_.empty() && !unit_problem_ && !in_transaction_) return;
  // The application's own key for the unit, when a statement carries one.
  std::string key = key_;
  for (const auto& statement : statements_) {
    if (auto tagged = shadow_key_tag(statement.sql); !tagged.empty()) {
      key = std::move(tagged);
      break;
    }
  }
  if (unit_problem_) {
    // Its writes stand on the primary unless it rolled back.
    const bool rolled_back = in_transaction_ ? last_tag_ != "COMMIT" : unit_failed_;
    sink_.dropped(*unit_problem_, unit_writes_ && !rolled_back ? std::optional<std::string_view>(key) : std::nullopt);
  } else if (!statements_.empty()) {
    CapturedUnit unit;
    unit.session = unit_session_;
    unit.key = std::move(key);
    unit.database = database_;
    if (in_transaction_) {
      // COMMIT of a failed transaction answers "ROLLBACK".
      unit.tx = last_tag_ == "COMMIT" ? wire::TxMode::commit : wire::TxMode::rollback;
    } else if (statements_.size() == 1) {
      unit.autocommit = true;
      unit.tx = wire::TxMode::autocommit;
    } else {
      // Several statements in one Query or before one Sync: one implicit
      // transaction, rolled back by any failure.
      unit.tx = unit_failed_ ? wire::TxMode::rollback : wire::TxMode::commit;
    }
    unit.writes = unit_writes_;
    unit.statements = std::move(statements_);
    sink_.unit(std::move(unit));
  }
  statements_.clear();
  unit_bytes_ = 0;
  in_transaction_ = false;
  unit_failed_ = false;
  unit_writes_ = false;
  unit_problem_.reset();
}

}  // namespace shadowpipe::proxy
