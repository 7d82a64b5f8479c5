// A statement's execution: its columns from RowDescription, its rows digested as they pass, its result once complete.
#include "capture_internal.hpp"

#include "shadowpipe/binary_text.hpp"

namespace shadowpipe::proxy {

using capture_text::micros;
using capture_text::Reader;
using capture_text::rules_for;

SessionCapture::ResultForm SessionCapture::result_form(const std::vector<digest::Column>& columns,
                                                       const std::vector<int16_t>& formats) {
  bool unrendered = false, text_unrenderable = false;
  for (size_t c = 0; c < columns.size(); ++c) {
    const bool binary = c < formats.size() && formats[c] != 0;
    const bool renders = digest::renders_binary(columns[c].type_oid);
    unrendered = unrendered || (binary && !renders);
    text_unrenderable = text_unrenderable || (!binary && !renders);
  }
  if (!unrendered) return ResultForm::text;
  return text_unrenderable ? ResultForm::not_recordable : ResultForm::binary;
}

namespace {
// Marks the columns digested over their binary bytes (see binary_text.hpp).
void mark_binary_columns(std::vector<digest::Column>& columns, const std::vector<int16_t>& formats) {
  for (size_t c = 0; c < columns.size() && c < formats.size(); ++c) {
    if (formats[c] != 0 && !digest::renders_binary(columns[c].type_oid)) columns[c].format = 1;
  }
}
}  // namespace

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
  slot->binding = portal.binding;
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
    mark_binary_columns(execution->columns, execution->formats);
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
      if (execution->columns[c].format != 0) continue;  // digested over its bytes
      auto text = digest::binary_to_text(execution->columns[c].type_oid, *value);
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

void SessionCapture::copy_from_client(char type, std::string_view data) {
  const auto keep = [&](std::optional<std::string>& kept, bool& refused) {
    if (refused) return;
    if (type != 'd' || (kept ? kept->size() : 0) + data.size() > limits_.max_copy_bytes) {
      refused = true;  // CopyFail, a message too large to read, or over the bound
      kept.reset();
      return;
    }
    if (!kept) kept.emplace();
    kept->append(data);
  };
  Execution* execution = current();
  if (execution != nullptr && execution->copy_data) {
    bool refused = execution->problem.has_value();
    keep(execution->copy_data, refused);
    if (refused && !execution->problem) execution->problem = UnitDrop::copy_data;
    return;
  }
  // Sent ahead of the server's CopyInResponse (asyncpg pipelines the Query
  // and its data): kept on the request that will start the COPY, the last
  // Query or Execute sent, until the server answers it.
  for (auto op = ops_.rbegin(); op != ops_.rend(); ++op) {
    if (op->kind == OpKind::query || op->kind == OpKind::execute) {
      keep(op->copy_data, op->copy_refused);
      return;
    }
  }
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
      mark_binary_columns(execution->columns, execution->formats);
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
  statement.binding = std::move(execution->binding);
  statement.copy_data = std::move(execution->copy_data);
  ++statements_captured_;
  unit_bytes_ += statement.sql.size() + (statement.copy_data ? statement.copy_data->size() : 0);
  for (const auto& param : statement.params) unit_bytes_ += param ? param->size() : 0;
  if (statements_.size() >= limits_.max_statements || unit_bytes_ > limits_.max_unit_bytes) {
    problem(UnitDrop::oversized);
    statements_.clear();
    return;
  }
  if (statements_.empty()) unit_session_ = session_;
  statements_.push_back(std::move(statement));
}

}  // namespace shadowpipe::proxy
