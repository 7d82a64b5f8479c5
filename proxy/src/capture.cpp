#include "shadowpipe/proxy/capture.hpp"

#include "shadowpipe/proxy/binary_text.hpp"
#include "shadowpipe/proxy/protocol.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/statement_split.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace shadowpipe::proxy {

// SHADOW_PROXY_TRACE=1: every message's type and each drop's reason on
// stderr, to find where the capture lost its place with a new driver.
static const bool kTrace = std::getenv("SHADOW_PROXY_TRACE") != nullptr;

std::string_view to_string(UnitDrop drop) {
  switch (drop) {
    case UnitDrop::client_gone: return "client_gone";
    case UnitDrop::primary_gone: return "primary_gone";
    case UnitDrop::binary_parameters: return "binary_parameters";
    case UnitDrop::binary_results: return "binary_results";
    case UnitDrop::copy_data: return "copy_data";
    case UnitDrop::function_call: return "function_call";
    case UnitDrop::oversized: return "oversized";
    case UnitDrop::row_limited: return "row_limited";
    case UnitDrop::unmatched: return "unmatched";
    case UnitDrop::queue_full: return "queue_full";
  }
  return "unknown";
}

// One statement on its way through the server: the rows are digested as
// they pass, nothing of them is kept.
struct SessionCapture::Execution {
  std::string sql;
  std::vector<std::optional<std::string>> params;
  std::vector<digest::Column> columns;
  std::vector<int16_t> formats;  // per column: 0 text, 1 binary (rendered as text for the digest)
  bool described = false;  // columns known (RowDescription seen, or from a Describe)
  std::unique_ptr<digest::DigestBuilder> builder;
  std::vector<std::optional<std::string_view>> row;
  std::vector<std::string> rendered;  // text of this row's binary values
  Clock::time_point start;
  std::optional<UnitDrop> problem;
};

namespace {

using protocol::Reader;

int64_t micros(SessionCapture::Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

// The statements of a simple Query, in the order the server runs them. A
// text the scanner cannot split is one statement (the server will refuse
// it with the error the client sees).
std::vector<std::string> pieces_of(std::string_view sql) {
  std::vector<std::string> out;
  // Most texts are one statement: no semicolon before the trailing ones, no
  // leading comment. They skip the scanner (on the relay's thread), and are
  // trimmed as split() trims.
  std::string_view one = sql;
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!one.empty() && space(one.front())) one.remove_prefix(1);
  while (!one.empty() && (space(one.back()) || one.back() == ';')) one.remove_suffix(1);
  if (one.find(';') == std::string_view::npos && !one.starts_with("--") && !one.starts_with("/*")) {
    if (!one.empty()) out.emplace_back(one);
    return out;
  }
  auto pieces = statement::split(sql);
  if (!pieces.ok()) {
    out.emplace_back(sql);
    return out;
  }
  out.reserve(pieces->size());
  for (auto& piece : *pieces) out.push_back(std::move(piece.sql));
  return out;
}

// Whether a statement that completed with this tag wrote (conservatively:
// a wrong "yes" only announces a gap that was not one). Tags of statements
// that never write, except SELECT with a data-modifying WITH or INTO.
bool wrote(std::string_view tag, std::string_view sql, bool copy_out) {
  static constexpr std::string_view kReadTags[] = {
      "SELECT", "SHOW", "FETCH", "MOVE", "BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT",
      "RELEASE", "SET", "RESET", "DECLARE CURSOR", "CLOSE CURSOR", "PREPARE", "DEALLOCATE", "DISCARD",
      "LISTEN", "UNLISTEN"};
  if (tag.starts_with("COPY")) return !copy_out;
  bool read = false;
  for (auto candidate : kReadTags) {
    read = read || tag == candidate ||
           (tag.starts_with(candidate) && tag.size() > candidate.size() && tag[candidate.size()] == ' ');
  }
  if (!read) return true;
  if (!tag.starts_with("SELECT")) return false;
  std::string lowered(sql);
  for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view lock : {"for no key update", "for update"}) {
    for (size_t at = lowered.find(lock); at != std::string::npos; at = lowered.find(lock, at)) {
      lowered.replace(at, lock.size(), lock.size(), ' ');
    }
  }
  for (std::string_view verb : {"insert", "update", "delete", "merge", "into", "create"}) {
    if (lowered.find(verb) != std::string::npos) return true;
  }
  return false;
}

// The value of a sqlcommenter-style tag shadow_key='...' in a statement's
// comments (URL-encoded, as sqlcommenter writes values), or empty.
std::string shadow_key_tag(std::string_view sql) {
  static constexpr std::string_view kTag = "shadow_key='";
  const size_t comment = sql.find("/*");
  if (comment == std::string_view::npos) return {};
  const size_t at = sql.find(kTag, comment);
  if (at == std::string_view::npos) return {};
  const size_t end = sql.find('\'', at + kTag.size());
  if (end == std::string_view::npos) return {};
  const std::string_view encoded = sql.substr(at + kTag.size(), end - at - kTag.size());
  std::string key;
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '%' && i + 2 < encoded.size() && std::isxdigit(static_cast<unsigned char>(encoded[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(encoded[i + 2]))) {
      key.push_back(static_cast<char>(std::stoi(std::string(encoded.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      key.push_back(encoded[i]);
    }
  }
  return key;
}

// The recorder's rules for a statement: by its fingerprint only when some
// fingerprint has rules of its own (else no parse on the relay's thread).
const digest::NormalizationRules& rules_for(const digest::NormalizationConfig& normalization, std::string_view sql) {
  if (!normalization.has_overrides()) return normalization.defaults();
  auto analysis = statement::analyze(sql);
  return analysis.ok() ? normalization.for_fingerprint(analysis->fingerprint) : normalization.defaults();
}

}  // namespace

SessionCapture::SessionCapture(UnitSink& sink, std::string key, const digest::NormalizationConfig& normalization,
                               CaptureLimits limits)
    : sink_(sink), key_(std::move(key)), normalization_(normalization), limits_(limits) {}

SessionCapture::~SessionCapture() = default;

void SessionCapture::problem(UnitDrop why) {
  if (kTrace) std::fprintf(stderr, "trace: problem %s\n", std::string(to_string(why)).c_str());
  if (!unit_problem_) unit_problem_ = why;
}

SessionCapture::Clock::time_point SessionCapture::start_of(const Op& op) const {
  return std::max(op.arrived, last_completion_);
}

// ---- frontend -----------------------------------------------------------

void SessionCapture::frontend(char type, std::string_view payload, Clock::time_point now) {
  if (kTrace) std::fprintf(stderr, "trace: F %c %zu ops=%zu\n", type, payload.size(), ops_.size());
  if (disabled_) return;
  Reader reader(payload);
  // After an error in the extended protocol the server skips every message
  // up to Sync: they get no response, so none is expected.
  if (discarding_ && type != 'S') return;
  switch (type) {
    case 'Q':
      ops_.push_back(Op{OpKind::query, std::string(reader.cstring()), now});
      break;
    case 'P': {
      Op op{OpKind::parse, std::string(reader.cstring()), now};
      op.text.assign(reader.cstring());
      const int16_t count = reader.i16();
      for (int16_t i = 0; i < count && reader.ok(); ++i) op.param_types.push_back(static_cast<uint32_t>(reader.i32()));
      ops_.push_back(std::move(op));
      break;
    }
    case 'B': {
      Op op{OpKind::bind, std::string(reader.cstring()), now};
      op.text.assign(reader.cstring());
      std::vector<int16_t> formats(static_cast<size_t>(std::max<int16_t>(reader.i16(), 0)));
      for (auto& format : formats) format = reader.i16();
      const int16_t count = reader.i16();
      for (int16_t i = 0; i < count && reader.ok(); ++i) {
        const size_t index = static_cast<size_t>(i);
        const int16_t format = formats.empty() ? 0 : formats.size() == 1 ? formats[0] : index < formats.size() ? formats[index] : 0;
        const int32_t length = reader.i32();
        if (length < 0) {
          op.params.emplace_back(std::nullopt);
          continue;
        }
        op.params.emplace_back(std::in_place, reader.bytes(static_cast<size_t>(length)));
        op.param_formats.resize(op.params.size());
        op.param_formats.back() = format;
      }
      op.param_formats.resize(op.params.size());
      op.result_formats.resize(static_cast<size_t>(std::max<int16_t>(reader.i16(), 0)));
      for (auto& format : op.result_formats) format = reader.i16();
      if (!reader.ok() && !op.problem) op.problem = UnitDrop::unmatched;
      ops_.push_back(std::move(op));
      break;
    }
    case 'D': {
      const char what = static_cast<char>(reader.byte());
      ops_.push_back(Op{what == 'S' ? OpKind::describe_statement : OpKind::describe_portal,
                        std::string(reader.cstring()), now});
      break;
    }
    case 'E':
      ops_.push_back(Op{OpKind::execute, std::string(reader.cstring()), now});
      break;
    case 'C': {
      const char what = static_cast<char>(reader.byte());
      Op op{OpKind::close, std::string(reader.cstring()), now};
      op.target = what;
      ops_.push_back(std::move(op));
      break;
    }
    case 'S':
      discarding_ = false;
      ops_.push_back(Op{OpKind::sync, {}, now});
      break;
    case 'F':
      ops_.push_back(Op{OpKind::function, {}, now});
      break;
    default:
      // Flush, Terminate, CopyData/CopyDone/CopyFail, password and SASL
      // messages: no response of their own to match.
      break;
  }
}

void SessionCapture::frontend_skipped(char type, Clock::time_point now) {
  if (disabled_ || (discarding_ && type != 'S')) return;
  switch (type) {
    case 'Q': ops_.push_back(Op{OpKind::query, {}, now, UnitDrop::oversized}); break;
    case 'P':  // its name is in the bytes not read: every statement is in doubt (see ParseComplete)
      ops_.push_back(Op{OpKind::parse, {}, now, UnitDrop::oversized});
      break;
    case 'B':
      ops_.push_back(Op{OpKind::bind, {}, now, UnitDrop::oversized});
      break;
    case 'F': ops_.push_back(Op{OpKind::function, {}, now}); break;
    default: break;
  }
}

// ---- backend ------------------------------------------------------------

// The portal a Bind made, from the statement as it stands when the server
// answers the Bind.
SessionCapture::Portal SessionCapture::bind_portal(Op& op) {
  Portal portal;
  portal.params = std::move(op.params);
  portal.result_formats = std::move(op.result_formats);
  portal.problem = op.problem;
  auto found = prepared_.find(op.text);
  if (found == prepared_.end() || found->second.oversized) {
    if (!portal.problem) portal.problem = found == prepared_.end() ? UnitDrop::unmatched : UnitDrop::oversized;
    return portal;
  }
  const Prepared& prepared = found->second;
  portal.statement = op.text;
  portal.sql = prepared.sql;
  // Binary parameters in text, where the type's text form is the value's.
  for (size_t i = 0; i < portal.params.size(); ++i) {
    if (i >= op.param_formats.size() || op.param_formats[i] == 0 || !portal.params[i]) continue;
    const uint32_t type = i < prepared.param_types.size() ? prepared.param_types[i] : 0;
    auto text = binary_to_text(type, *portal.params[i]);
    if (!text) {
      if (!portal.problem) portal.problem = UnitDrop::binary_parameters;
      continue;
    }
    portal.params[i] = std::move(*text);
  }
  portal.columns = prepared.columns;
  if (portal.columns) {
    const auto& formats = portal.result_formats;
    portal.formats.resize(portal.columns->size());
    for (size_t c = 0; c < portal.columns->size(); ++c) {
      portal.formats[c] = formats.empty() ? 0 : formats.size() == 1 ? formats[0] : c < formats.size() ? formats[c] : 0;
    }
    if (!renderable(*portal.columns, portal.formats) && !portal.problem) portal.problem = UnitDrop::binary_results;
  }
  return portal;
}

bool SessionCapture::renderable(const std::vector<digest::Column>& columns, const std::vector<int16_t>& formats) {
  for (size_t c = 0; c < columns.size() && c < formats.size(); ++c) {
    if (formats[c] != 0 && !renders_binary(columns[c].type_oid)) return false;
  }
  return true;
}

SessionCapture::Execution* SessionCapture::current() {
  if (ops_.empty()) return nullptr;
  Op& op = ops_.front();
  if (op.kind == OpKind::query) return query_execution_.get();
  if (op.kind == OpKind::execute) {
    auto found = portals_.find(op.name);
    return found != portals_.end() ? found->second.running.get() : nullptr;
  }
  return nullptr;
}

void SessionCapture::begin_statement(std::unique_ptr<Execution>& slot, const Portal& portal, Clock::time_point start) {
  begin_statement(slot, portal.sql, portal.params, portal.columns, start);
  slot->formats = portal.formats;
  slot->formats.resize(slot->columns.size());
  if (portal.problem) slot->problem = portal.problem;
}

void SessionCapture::begin_statement(std::unique_ptr<Execution>& slot, std::string sql,
                                     std::vector<std::optional<std::string>> params,
                                     std::optional<std::vector<digest::Column>> columns, Clock::time_point start) {
  slot = std::make_unique<Execution>();
  slot->sql = std::move(sql);
  slot->params = std::move(params);
  slot->start = start;
  if (columns) {
    slot->columns = std::move(*columns);
    slot->described = true;
  }
}

void SessionCapture::row_description(std::string_view payload, std::vector<digest::Column>& columns,
                                     std::vector<int16_t>& formats) {
  Reader reader(payload);
  const int16_t count = reader.i16();
  columns.clear();
  formats.clear();
  for (int16_t i = 0; i < count && reader.ok(); ++i) {
    digest::Column column;
    column.name.assign(reader.cstring());
    reader.i32();  // table oid
    reader.i16();  // attribute number
    column.type_oid = static_cast<uint32_t>(reader.i32());
    column.type_name.assign(digest::builtin_type_name(column.type_oid));
    reader.i16();  // type size
    reader.i32();  // type modifier
    formats.push_back(reader.i16());
    columns.push_back(std::move(column));
  }
  if (!reader.ok()) problem(UnitDrop::unmatched);
}

void SessionCapture::data_row(std::string_view payload) {
  Execution* execution = current();
  if (execution == nullptr) {
    problem(UnitDrop::unmatched);
    return;
  }
  if (execution->problem) return;
  if (!execution->described) {
    execution->problem = UnitDrop::unmatched;  // rows of a portal never described: no columns to digest by
    return;
  }
  if (!execution->builder) {
    execution->builder =
        std::make_unique<digest::DigestBuilder>(execution->columns, rules_for(normalization_, execution->sql));
    execution->row.resize(execution->columns.size());
  }
  Reader reader(payload);
  const int16_t count = reader.i16();
  if (count < 0 || static_cast<size_t>(count) != execution->columns.size()) {
    execution->problem = UnitDrop::unmatched;
    return;
  }
  execution->rendered.resize(execution->row.size());
  for (size_t c = 0; c < execution->row.size(); ++c) {
    auto& value = execution->row[c];
    const int32_t length = reader.i32();
    if (length < 0) {
      value.reset();
      continue;
    }
    value = reader.bytes(static_cast<size_t>(length));
    if (c < execution->formats.size() && execution->formats[c] != 0) {
      auto text = binary_to_text(execution->columns[c].type_oid, *value);
      if (!text) {
        execution->problem = UnitDrop::binary_results;
        return;
      }
      execution->rendered[c] = std::move(*text);
      value = execution->rendered[c];
    }
  }
  if (!reader.ok()) {
    execution->problem = UnitDrop::unmatched;
    return;
  }
  execution->builder->add_row(execution->row);
}

void SessionCapture::finish_statement(std::unique_ptr<Execution> execution, Clock::time_point now) {
  last_completion_ = now;
  if (!execution) return;
  if (execution->problem) {
    problem(*execution->problem);
    return;
  }
  CapturedStatement statement;
  auto& result = statement.result;
  if (execution->described && !execution->columns.empty()) {
    if (!execution->builder) {
      execution->builder =
          std::make_unique<digest::DigestBuilder>(execution->columns, rules_for(normalization_, execution->sql));
    }
    result.set_digest(std::move(*execution->builder).finish());
  } else {
    // No result columns: libpq's PGRES_COMMAND_OK, rows from the tag.
    result.set_digest(digest::DigestBuilder({}, rules_for(normalization_, execution->sql)).finish());
    result.rows = protocol::command_rows(last_tag_).value_or(0);
  }
  result.latency_us = micros(now - execution->start);
  statement.sql = std::move(execution->sql);
  statement.params = std::move(execution->params);
  ++statements_captured_;
  unit_bytes_ += statement.sql.size();
  for (const auto& param : statement.params) unit_bytes_ += param ? param->size() : 0;
  if (statements_.size() >= limits_.max_statements || unit_bytes_ > limits_.max_unit_bytes) {
    problem(UnitDrop::oversized);
    statements_.clear();
    return;
  }
  if (statements_.empty()) unit_session_ = session_;
  statements_.push_back(std::move(statement));
}

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

void SessionCapture::backend(char type, std::string_view payload, Clock::time_point now) {
  if (kTrace) std::fprintf(stderr, "trace: B %c %zu ops=%zu head=%d\n", type, payload.size(), ops_.size(), ops_.empty() ? -1 : static_cast<int>(ops_.front().kind));
  if (disabled_) return;
  if (type == 'S') {  // ParameterStatus: the session's rendering settings
    Reader reader(payload);
    const auto name = reader.cstring();
    const auto value = reader.cstring();
    if (name == "TimeZone") session_.time_zone.assign(value);
    if (name == "DateStyle") session_.date_style.assign(value);
    if (name == "IntervalStyle") session_.interval_style.assign(value);
    if (name == "search_path") session_.search_path.assign(value);  // PostgreSQL 18+
    return;
  }
  if (ops_.empty()) {
    if (type == 'Z') ready(payload.empty() ? 'I' : payload[0], now);
    return;  // authentication, BackendKeyData, notices
  }
  Op& op = ops_.front();
  // A Query's first response starts its first statement.
  if (op.kind == OpKind::query && !query_started_ && type != 'N' && type != 'A') {
    query_started_ = true;
    if (!op.problem) {
      pieces_ = pieces_of(op.name);
      next_piece_ = 0;
      query_next_piece(start_of(op));
    }
  }
  switch (type) {
    case '1':  // ParseComplete
      if (op.kind == OpKind::parse) {
        if (op.problem) {
          // A Parse too large to read: which statement it replaced is unknown.
          for (auto& [name, prepared] : prepared_) prepared.oversized = true;
          problem(*op.problem);
        } else {
          prepared_[op.name] = Prepared{std::move(op.text), std::move(op.param_types), std::nullopt, false};
        }
      }
      ops_.pop_front();
      break;
    case '2':  // BindComplete
      if (op.kind == OpKind::bind) {
        if (op.problem == UnitDrop::oversized) {
          portals_.clear();
          problem(UnitDrop::oversized);
        } else {
          std::string name = op.name;
          portals_[name] = bind_portal(op);
        }
      }
      ops_.pop_front();
      break;
    case '3':  // CloseComplete
      if (op.kind == OpKind::close) {
        if (op.target == 'S') {
          if (auto found = prepared_.find(op.name); found != prepared_.end()) prepared_.erase(found);
        } else if (auto found = portals_.find(op.name); found != portals_.end()) {
          if (found->second.running) problem(found->second.running->problem.value_or(UnitDrop::row_limited));
          portals_.erase(found);
        }
      }
      ops_.pop_front();
      break;
    case 't':  // ParameterDescription: the types the server chose; a RowDescription or NoData follows
      if (op.kind == OpKind::describe_statement) {
        if (auto found = prepared_.find(op.name); found != prepared_.end()) {
          Reader reader(payload);
          const int16_t count = reader.i16();
          found->second.param_types.clear();
          for (int16_t i = 0; i < count && reader.ok(); ++i) {
            found->second.param_types.push_back(static_cast<uint32_t>(reader.i32()));
          }
        }
      }
      break;
    case 'n':  // NoData
      if (op.kind == OpKind::describe_statement) {
        if (auto found = prepared_.find(op.name); found != prepared_.end()) found->second.columns.emplace();
      } else if (op.kind == OpKind::describe_portal) {
        if (auto found = portals_.find(op.name); found != portals_.end()) found->second.columns.emplace();
      }
      if (op.kind == OpKind::describe_statement || op.kind == OpKind::describe_portal) ops_.pop_front();
      break;
    case 'T': {
      std::vector<digest::Column> columns;
      std::vector<int16_t> formats;
      row_description(payload, columns, formats);
      if (op.kind == OpKind::describe_statement) {
        // A statement's description has no formats yet (Bind chooses them).
        if (auto found = prepared_.find(op.name); found != prepared_.end()) found->second.columns = std::move(columns);
        ops_.pop_front();
      } else if (op.kind == OpKind::describe_portal) {
        if (auto found = portals_.find(op.name); found != portals_.end()) {
          auto& portal = found->second;
          if (!renderable(columns, formats) && !portal.problem) portal.problem = UnitDrop::binary_results;
          // The statement's columns too: later Binds of it may come without
          // a Describe (PgJDBC describes the portal once, then only binds).
          if (auto statement = prepared_.find(portal.statement); statement != prepared_.end() && !portal.sql.empty()) {
            statement->second.columns = columns;
          }
          portal.columns = std::move(columns);
          portal.formats = std::move(formats);
        }
        ops_.pop_front();
      } else if (op.kind == OpKind::query && query_execution_) {
        if (!renderable(columns, formats)) query_execution_->problem = UnitDrop::binary_results;
        query_execution_->columns = std::move(columns);
        query_execution_->formats = std::move(formats);
        query_execution_->described = true;
      } else {
        problem(UnitDrop::unmatched);
      }
      break;
    }
    case 'D':
      if (op.kind == OpKind::execute) {
        auto found = portals_.find(op.name);
        if (found == portals_.end()) {
          problem(UnitDrop::unmatched);
          break;
        }
        auto& portal = found->second;
        if (!portal.running) {
          begin_statement(portal.running, portal, start_of(op));
        }
      }
      data_row(payload);
      break;
    case 'C':
    case 'I': {  // CommandComplete, EmptyQueryResponse
      if (op.kind == OpKind::execute) {
        if (auto found = portals_.find(op.name); found != portals_.end() && !found->second.running) {
          auto& portal = found->second;
          begin_statement(portal.running, portal, start_of(op));
        }
      }
      if (type == 'I') {
        if (op.kind == OpKind::execute) {
          if (auto found = portals_.find(op.name); found != portals_.end()) found->second.running.reset();
          ops_.pop_front();
        }
        break;  // an empty Query has no statement (the split left none)
      }
      Reader reader(payload);
      complete(reader.cstring(), now);
      break;
    }
    case 's':  // PortalSuspended: the portal's statement goes on at its next Execute
      if (op.kind == OpKind::execute) ops_.pop_front();
      break;
    case 'E':
      error(payload, now);
      break;
    case 'Z':
      ready(payload.empty() ? 'I' : payload[0], now);
      break;
    case 'G': case 'H': case 'W':  // COPY: the data is on the client connection, not in any record
      copy_out_ = type == 'H';
      if (op.kind == OpKind::execute) {
        if (auto found = portals_.find(op.name); found != portals_.end()) {
          auto& portal = found->second;
          if (!portal.running) begin_statement(portal.running, portal, start_of(op));
          portal.running->problem = UnitDrop::copy_data;
        }
      } else if (op.kind == OpKind::query && query_execution_) {
        query_execution_->problem = UnitDrop::copy_data;
      }
      break;
    case 'V':  // FunctionCallResponse
      problem(UnitDrop::function_call);
      if (op.kind == OpKind::function) ops_.pop_front();
      break;
    default:  // notices, notifications, CopyData/CopyDone from the server, BackendKeyData
      break;
  }
}

void SessionCapture::backend_skipped(char type, Clock::time_point now) {
  if (disabled_) return;
  if (type == 'D') {
    if (Execution* execution = current()) {
      execution->problem = UnitDrop::oversized;
    } else if (!ops_.empty() && ops_.front().kind == OpKind::execute) {
      auto found = portals_.find(ops_.front().name);
      if (found != portals_.end() && !found->second.running) {
        auto& portal = found->second;
        begin_statement(portal.running, portal, start_of(ops_.front()));
        portal.running->problem = UnitDrop::oversized;
      }
    }
    return;
  }
  // Any other message that large (a huge error or notice text): the unit
  // cannot be told exactly.
  (void)now;
  problem(UnitDrop::oversized);
}

void SessionCapture::lost_sync() {
  if (disabled_) return;
  disabled_ = true;
  // What this session writes from here on is not seen: announced once, as a
  // write under its key, so the shadow is known not to follow.
  sink_.dropped(UnitDrop::unmatched, key_);
  statements_.clear();
}

void SessionCapture::closed(UnitDrop why) {
  if (disabled_) return;
  disabled_ = true;
  // Inside a transaction: rolled back by the server. A statement in flight
  // outside one may still commit; its kind is not known before it ends.
  if (!statements_.empty() || in_transaction_ || !ops_.empty()) sink_.dropped(why, std::nullopt);
  statements_.clear();
}

}  // namespace shadowpipe::proxy
