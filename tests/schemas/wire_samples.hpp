// Realistic records of every wire type, with every optional member present,
// shared by the codec's unit tests and the schema test's sample writer.
#pragma once

#include "shadowpipe/wire.hpp"

namespace shadowpipe::wire::samples {

inline StatementResult ok_result(int64_t rows, std::vector<digest::Column> columns, uint64_t seed, int64_t latency_us) {
  StatementResult result;
  result.rows = rows;
  result.columns = std::move(columns);
  result.ordered = 0x9e3779b97f4a7c15ULL ^ seed;
  result.unordered = 0xc2b2ae3d27d4eb4fULL ^ seed;
  for (size_t i = 0; i < result.columns.size(); ++i) {
    auto& column = result.columns[i];
    if (column.type_name.empty()) column.type_name = std::string(digest::builtin_type_name(column.type_oid));
    result.column_digests.push_back(0x165667b19e3779f9ULL * (seed + i + 1));
    result.column_ordered.push_back(0x27d4eb2f165667c5ULL * (seed + i + 1));
    result.column_values.push_back(0x85ebca77c2b2ae63ULL * (seed + i + 1));
  }
  result.latency_us = latency_us;
  return result;
}

inline StatementResult error_result(std::string sqlstate, std::string message, int64_t latency_us) {
  StatementResult result;
  result.status = Status::error;
  result.sqlstate = std::move(sqlstate);
  result.message = std::move(message);
  result.latency_us = latency_us;
  return result;
}

// A committed transaction: a read with parameters (one NULL), an insert, and
// a read with ORDER BY; text with quotes, newlines and non-ASCII characters.
inline Request request() {
  Request record;
  record.request_id = "01HZX3K9Q7G4V2M8N5P6R1T0WY";
  record.ts_us = 1717171717123456;
  record.key = "tenant:4711";
  record.source = "billing-api@web-7";
  record.session.time_zone = "Europe/Berlin";
  record.session.date_style = "ISO, DMY";
  record.session.interval_style = "postgres";
  record.session.search_path = "\"$user\", public";
  record.session.extra = {{"extra_float_digits", "1"}, {"bytea_output", "hex"}};
  record.tx = TxMode::commit;

  Statement lookup;
  lookup.sql = "SELECT id, name, balance FROM accounts WHERE tenant_id = $1 AND closed_at IS NOT DISTINCT FROM $2";
  lookup.params = {std::string("4711"), std::nullopt};
  lookup.fingerprint = "5e6f0a1b2c3d4e5f";
  lookup.result = ok_result(2, {{"id", 20}, {"name", 25}, {"balance", 1700}}, 1, 412);

  Statement insert;
  insert.sql = "INSERT INTO notes (account_id, body)\nVALUES ($1, $2)";
  insert.params = {std::string("42"), std::string("Grüße aus \"Köln\" \\ 東京 — tab\there")};
  insert.fingerprint = "a1b2c3d4e5f60718";
  insert.result = ok_result(1, {}, 2, 958);

  Statement ordered;
  ordered.sql = "SELECT body FROM notes WHERE account_id = $1 ORDER BY created_at DESC LIMIT 5";
  ordered.params = {std::string("42")};
  ordered.fingerprint = "0f1e2d3c4b5a6978";
  ordered.result = ok_result(5, {{"body", 25}}, 3, 233);

  record.statements = {lookup, insert, ordered};
  return record;
}

// A request v2: an asyncpg-style statement with binary parameters (numeric,
// timestamptz, one NULL, one in text) and binary results digested over
// their bytes, then a COPY FROM STDIN with its data (bytes that are not UTF-8
// included).
inline Request binary_request() {
  Request record = request();
  record.statements.resize(1);
  Statement& lookup = record.statements[0];
  lookup.sql = "SELECT id, balance, opened_at FROM accounts WHERE balance > $1 AND opened_at < $2 AND note = $3 AND x = $4";
  lookup.params = {std::string("\x00\x02\x00\x00\x00\x00\x00\x02\x00\x0c\x0f\xa0", 12),
                   std::string("\x00\x02\xa5\x1b\xc8\x5e\x40\x00", 8), std::nullopt, std::string("plain text")};
  lookup.binding.param_types = {1700, 1184, 25, 0};
  lookup.binding.param_formats = {1, 1, 1, 0};
  lookup.binding.result_format = 1;
  lookup.result = ok_result(1, {{"id", 20}, {"balance", 1700}, {"opened_at", 1184}}, 4, 640);
  lookup.result.columns[1].format = 1;
  lookup.result.columns[2].format = 1;
  Statement copy;
  copy.sql = "COPY notes (account_id, body) FROM STDIN";
  copy.params = {};
  copy.fingerprint = "1a2b3c4d5e6f7081";
  copy.copy_data = std::string("42\tfirst\n43\tsecond \xff\xfe\n");
  copy.result = ok_result(2, {}, 5, 1200);
  record.statements.push_back(copy);
  return record;
}

inline PlanSummary plan() {
  PlanSummary summary;
  summary.node_types = {"Limit", "Sort", "Seq Scan"};
  summary.seq_scans = {"notes"};
  summary.total_cost = 1834.27;
  summary.plan_rows = 5;
  return summary;
}

// The shadow's side of request(): the insert failed on the new schema
// (a narrowed column), so the unit stopped there.
inline ShadowResult shadow_result() {
  const Request primary = request();
  ShadowResult record;
  record.request_id = primary.request_id;
  record.ts_us = primary.ts_us + 250'000;
  record.key = primary.key;
  record.executor = "shadow-executor-0@host-b";
  record.source_partition = 3;
  record.source_offset = 918273;
  ShadowStatement lookup{primary.statements[0].fingerprint, primary.statements[0].result, std::nullopt};
  lookup.result.latency_us = 530;
  // What the shadow's catalog added (catalog.hpp).
  lookup.result.volatile_columns = {{1, "default now()"}};
  lookup.result.volatile_statement = "calls the volatile or stable function audit() outside the select list";
  lookup.result.order_total = false;
  ShadowStatement insert{primary.statements[1].fingerprint,
                         error_result("22001", "value too long for type character varying(20)", 301), plan()};
  record.statements = {lookup, insert};
  return record;
}

inline Mismatch mismatch() {
  const Request primary = request();
  Mismatch record;
  record.kind = "value_mismatch";
  record.request_id = primary.request_id;
  record.key = primary.key;
  record.ts_us = primary.ts_us;
  record.fingerprint = primary.statements[0].fingerprint;
  record.normalized_sql = "SELECT id, name, balance FROM accounts WHERE tenant_id = $1 AND closed_at IS NOT DISTINCT FROM $2";
  record.statement_index = 0;
  record.primary = primary.statements[0].result;
  record.shadow = primary.statements[0].result;
  record.shadow->column_digests[2] ^= 0xffff;
  record.columns_differ = {"balance"};
  record.latency_ratio = 1.2864077669902914;
  record.plan = plan();
  record.first_divergence_on_key = true;
  record.detail = "column balance differs (numeric(12,2) -> numeric(12,0)?)";
  record.params = std::vector<std::optional<std::string>>{std::string("4711"), std::nullopt};
  return record;
}

inline Summary summary() {
  Summary record;
  record.ts_us = 1717171800000000;
  record.comparator = "shadow-comparator-1@host-c";
  record.fingerprint = "5e6f0a1b2c3d4e5f";
  record.normalized_sql = "SELECT id, name, balance FROM accounts WHERE tenant_id = $1";
  record.compared = 18234;
  record.discrepancies = {{"value_mismatch", 17}, {"shadow_error", 2}, {"duplicate", 5}};
  record.primary_latency = {18234, 380.5, 912, 1480.25, 9120};
  record.shadow_latency = {18234, 402, 1011.75, 2210, 15003};
  return record;
}

inline Gap gap() {
  Gap record;
  record.ts_us = 1717171719000000;
  record.source = "shadow-executor/host-b-4242";
  record.reason = "retention";
  record.partition = 3;
  record.from_offset = 1200;
  record.to_offset = 1450;
  record.units = record.write_units = 250;
  record.detail = "shadow.requests[3] offsets 1200..1449 were deleted by retention before they were applied";
  return record;
}

inline DeadLetter dead_letter() {
  DeadLetter record;
  record.ts_us = 1717171717999999;
  record.consumer = "shadow-executor-0@host-b";
  record.error_code = "too_large";
  record.field = "statements[2].params[0]";
  record.reason = "too_large at statements[2].params[0]: 2097152 bytes, over the limit of 1048576";
  record.source_topic = "shadow.requests";
  record.source_partition = 5;
  record.source_offset = 1200344;
  record.payload = "{\"v\":1,\"request_id\":\"01HZX4\",\"ts\":1717171717999000,\"key\":\"tenant:9\"";
  record.payload_bytes = 2098001;
  return record;
}

}  // namespace shadowpipe::wire::samples
