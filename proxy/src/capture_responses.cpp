// SessionCapture::backend: each response from the primary matched to the request it answers (extended-protocol state: statements, portals).
#include "capture_internal.hpp"

#include "shadowpipe/binary_text.hpp"

#include <cstdio>

namespace shadowpipe::proxy {

using capture_text::Reader;
using capture_text::pieces_of;

// How the portal's result is recorded, by its columns' formats.
void SessionCapture::choose_result_form(Portal& portal) {
  switch (result_form(*portal.columns, portal.formats)) {
    case ResultForm::text: portal.binding.result_format = 0; break;
    case ResultForm::binary: portal.binding.result_format = 1; break;
    case ResultForm::not_recordable:
      if (!portal.problem) portal.problem = UnitDrop::binary_results;
      break;
  }
}

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
  // Binary parameters in text, where the type's text form is the value's;
  // any other stays binary, replayed with its type (requests v2), unless its
  // type is a user type or unknown: the shadow's OIDs differ.
  bool kept_binary = false;
  for (size_t i = 0; i < portal.params.size(); ++i) {
    if (i >= op.param_formats.size() || op.param_formats[i] == 0 || !portal.params[i]) continue;
    const uint32_t type = i < prepared.param_types.size() ? prepared.param_types[i] : 0;
    if (auto text = digest::binary_to_text(type, *portal.params[i])) {
      portal.params[i] = std::move(*text);
      continue;
    }
    if (type == 0 || type >= digest::kFirstUserOid || digest::renders_binary(type)) {
      if (!portal.problem) portal.problem = UnitDrop::binary_parameters;
      continue;
    }
    kept_binary = true;
  }
  if (kept_binary) {
    for (size_t i = 0; i < portal.params.size(); ++i) {
      const uint32_t type = i < prepared.param_types.size() ? prepared.param_types[i] : 0;
      const bool binary = i < op.param_formats.size() && op.param_formats[i] != 0 && portal.params[i] &&
                          !digest::renders_binary(type);
      portal.binding.param_formats.push_back(binary ? 1 : 0);
      // A text parameter of a user type is left to the server to infer, as in v1.
      portal.binding.param_types.push_back(type < digest::kFirstUserOid ? type : 0);
    }
  }
  portal.columns = prepared.columns;
  if (portal.columns) {
    const auto& formats = portal.result_formats;
    portal.formats.resize(portal.columns->size());
    for (size_t c = 0; c < portal.columns->size(); ++c) {
      portal.formats[c] = formats.empty() ? 0 : formats.size() == 1 ? formats[0] : c < formats.size() ? formats[c] : 0;
    }
    choose_result_form(portal);
  }
  return portal;
}

void SessionCapture::backend(char type, std::string_view payload, Clock::time_point now) {
  if (kTrace) std::fprintf(stderr, "trace: B %c %zu ops=%zu head=%d\n", type, payload.size(), ops_.size(), ops_.empty() ? -1 : static_cast<int>(ops_.front().kind));
  if (disabled_) return;
  if (type == 'S') {  // ParameterStatus: the session's reported settings
    parameter_status(payload);
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
          // The statement's columns too: later Binds of it may come without
          // a Describe (PgJDBC describes the portal once, then only binds).
          if (auto statement = prepared_.find(portal.statement); statement != prepared_.end() && !portal.sql.empty()) {
            statement->second.columns = columns;
          }
          portal.columns = std::move(columns);
          portal.formats = std::move(formats);
          choose_result_form(portal);
        }
        ops_.pop_front();
      } else if (op.kind == OpKind::query && query_execution_) {
        // A simple Query is replayed as text: binary (a binary cursor's
        // FETCH) only where it renders as text.
        if (result_form(columns, formats) != ResultForm::text) query_execution_->problem = UnitDrop::binary_results;
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
    case 'G': case 'H': case 'W': {
      // COPY FROM STDIN: its data is kept as the client sends it (see
      // copy_from_client). TO STDOUT and COPY BOTH: the data is not recorded.
      copy_out_ = type == 'H';
      Execution* execution = nullptr;
      if (op.kind == OpKind::execute) {
        if (auto found = portals_.find(op.name); found != portals_.end()) {
          auto& portal = found->second;
          if (!portal.running) begin_statement(portal.running, portal, start_of(op));
          execution = portal.running.get();
        }
      } else if (op.kind == OpKind::query && query_execution_) {
        execution = query_execution_.get();
      }
      if (execution != nullptr) {
        if (type == 'G') {
          execution->copy_data = op.copy_data ? std::move(*op.copy_data) : std::string();
          op.copy_data.reset();
          if (op.copy_refused && !execution->problem) execution->problem = UnitDrop::copy_data;
          op.copy_refused = false;
        } else {
          execution->problem = UnitDrop::copy_data;
        }
      }
      break;
    }
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

}  // namespace shadowpipe::proxy
