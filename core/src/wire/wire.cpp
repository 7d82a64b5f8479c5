// Encoding of the wire records with RapidJSON's Writer, and the small pieces
// of the wire contract that are not decoding (names of enums, DLQ records).
// The field names written here are the ones schemas/*.v1.schema.json define.
// No RAPIDJSON_SSE2: RapidJSON 1.1.0's SIMD string scan leaves 0x1A..0x1F
// unescaped (it compares against 0x19), which is invalid JSON. Found by wire_fuzz.
#include "shadowpipe/wire.hpp"

#include "base64.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

namespace shadowpipe::wire {

std::string_view to_string(Status status) {
  switch (status) {
    case Status::ok: return "ok";
    case Status::error: return "error";
    case Status::refused: return "refused";
  }
  return "unknown";
}

std::string_view to_string(TxMode mode) {
  switch (mode) {
    case TxMode::autocommit: return "autocommit";
    case TxMode::commit: return "commit";
    case TxMode::rollback: return "rollback";
  }
  return "unknown";
}

bool is_mismatch_kind(std::string_view kind) {
  return std::find(kMismatchKinds.begin(), kMismatchKinds.end(), kind) != kMismatchKinds.end();
}

bool is_notice_kind(std::string_view kind) {
  return kind == "type_changed" || kind == "order_not_checked" || kind == "nondeterministic_result" ||
         kind == "columns_not_compared";
}

void StatementResult::set_digest(digest::ResultDigest digest) {
  rows = static_cast<int64_t>(digest.rows);
  columns = std::move(digest.columns);
  ordered = digest.ordered;
  unordered = digest.unordered;
  column_digests = std::move(digest.column_digests);
  column_ordered = std::move(digest.column_ordered);
  column_values = std::move(digest.column_values);
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

// Length of the well-formed UTF-8 sequence that starts `text` (non-empty), or
// 0 when it starts with an ill-formed one: a stray continuation byte, an
// overlong form, a surrogate, a code point above U+10FFFF, or a cut-off tail.
size_t utf8_sequence_length(std::string_view text) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3, low = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    length = 3;
  } else if (lead == 0xED) {
    length = 3, high = 0x9F;
  } else if (lead == 0xF0) {
    length = 4, low = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4, high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Valid UTF-8 prefix of `text` of at most max_bytes: well-formed characters
// are kept whole, each other byte becomes the text \xNN.
std::string utf8_excerpt(std::string_view text, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8_sequence_length(text.substr(i));
    if (length > 0) {
      if (out.size() + length > max_bytes) break;
      out.append(text.substr(i, length));
      i += length;
    } else {
      if (out.size() + 4 > max_bytes) break;
      const auto value = static_cast<unsigned char>(text[i]);
      out += "\\x";
      out += kHex[value >> 4];
      out += kHex[value & 0xF];
      ++i;
    }
  }
  return out;
}

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// One record's writer over a per-thread buffer that keeps its capacity
// between records, so steady-state encoding does not allocate for the JSON.
class Encoder {
 public:
  Encoder() : buffer_(thread_buffer()), writer_(buffer_) { buffer_.Clear(); }

  std::string finish() {
    std::string out;
    finish_into(out);
    return out;
  }
  // Into `out`, replacing what it held: a caller that keeps `out` between
  // records encodes without allocating.
  void finish_into(std::string& out) {
    out.assign(buffer_.GetString(), buffer_.GetSize());
    // A rare huge record must not pin its memory in the thread for good.
    if (buffer_.GetSize() > kKeptCapacity) thread_buffer_holder().reset();
  }

  void begin_object() { writer_.StartObject(); }
  void end_object() { writer_.EndObject(); }
  void begin_array() { writer_.StartArray(); }
  void end_array() { writer_.EndArray(); }

  // Names written by this file are ASCII constants; names from data go through key_text.
  void key(std::string_view name) { writer_.Key(name.data(), static_cast<rapidjson::SizeType>(name.size())); }
  void key_text(std::string_view name) {
    const std::string_view valid = valid_utf8(name);
    writer_.Key(valid.data(), static_cast<rapidjson::SizeType>(valid.size()));
  }
  void string(std::string_view text) {
    const std::string_view valid = valid_utf8(text);
    writer_.String(valid.data(), static_cast<rapidjson::SizeType>(valid.size()));
  }
  void null() { writer_.Null(); }
  void boolean(bool value) { writer_.Bool(value); }
  void int64(int64_t value) { writer_.Int64(value); }
  void uint64(uint64_t value) { writer_.Uint64(value); }
  void number(double value) {
    // JSON has no NaN or infinity; RapidJSON would write nothing and break the document.
    if (std::isnan(value)) value = 0;
    if (std::isinf(value)) value = value > 0 ? std::numeric_limits<double>::max() : -std::numeric_limits<double>::max();
    writer_.Double(value);
  }
  // ASCII by construction: no UTF-8 check, and no string allocated per digest.
  void hex(uint64_t value) {
    std::array<char, 16> text;
    digest::to_hex(value, text);
    writer_.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  }

  void member(std::string_view name, std::string_view text) { key(name), string(text); }
  void member_int(std::string_view name, int64_t value) { key(name), int64(value); }
  void member_uint(std::string_view name, uint64_t value) { key(name), uint64(value); }
  void member_number(std::string_view name, double value) { key(name), number(value); }
  void member_bool(std::string_view name, bool value) { key(name), boolean(value); }

  void strings(std::string_view name, const std::vector<std::string>& values) {
    key(name);
    begin_array();
    for (const auto& value : values) string(value);
    end_array();
  }

  void params(std::string_view name, const std::vector<std::optional<std::string>>& values) {
    key(name);
    begin_array();
    for (const auto& value : values) {
      if (value) {
        string(*value);
      } else {
        null();
      }
    }
    end_array();
  }

 private:
  static constexpr size_t kKeptCapacity = 1 << 20;

  static std::unique_ptr<rapidjson::StringBuffer>& thread_buffer_holder() {
    thread_local std::unique_ptr<rapidjson::StringBuffer> buffer;
    return buffer;
  }
  static rapidjson::StringBuffer& thread_buffer() {
    auto& holder = thread_buffer_holder();
    if (!holder) holder = std::make_unique<rapidjson::StringBuffer>();
    return *holder;
  }

  std::string_view valid_utf8(std::string_view text) {
    if (simdjson::validate_utf8(text.data(), text.size())) return text;
    replaced_.clear();
    for (size_t i = 0; i < text.size();) {
      const size_t length = utf8_sequence_length(text.substr(i));
      if (length > 0) {
        replaced_.append(text.substr(i, length));
        i += length;
      } else {
        replaced_.append(kReplacementCharacter);
        ++i;
      }
    }
    return replaced_;
  }

  rapidjson::StringBuffer& buffer_;
  JsonWriter writer_;
  std::string replaced_;
};

void write_version(Encoder& out, int version) { out.member_int("v", version); }

void write_result(Encoder& out, const StatementResult& result) {
  out.begin_object();
  out.member("status", to_string(result.status));
  out.member("sqlstate", result.sqlstate);
  out.member("message", result.message);
  out.member_int("rows", result.rows);
  out.key("columns");
  out.begin_array();
  for (const auto& column : result.columns) {
    out.begin_object();
    out.member("name", column.name);
    out.member_uint("type", column.type_oid);
    if (!column.type_name.empty()) out.member("type_name", column.type_name);
    if (column.format != 0) out.member_int("format", column.format);
    out.end_object();
  }
  out.end_array();
  out.key("digests");
  out.begin_object();
  out.key("ordered"), out.hex(result.ordered);
  out.key("unordered"), out.hex(result.unordered);
  const auto digests = [&](std::string_view name, const std::vector<uint64_t>& values) {
    out.key(name);
    out.begin_array();
    for (uint64_t value : values) out.hex(value);
    out.end_array();
  };
  digests("columns", result.column_digests);
  if (!result.column_ordered.empty()) digests("ordered_columns", result.column_ordered);
  if (!result.column_values.empty()) digests("value_columns", result.column_values);
  out.end_object();
  out.member_int("latency_us", result.latency_us);
  if (!result.volatile_columns.empty()) {
    out.key("volatile_columns");
    out.begin_array();
    for (const auto& column : result.volatile_columns) {
      out.begin_object();
      out.member_uint("column", column.index);
      out.member("reason", column.reason);
      out.end_object();
    }
    out.end_array();
  }
  if (!result.volatile_statement.empty()) out.member("volatile_statement", result.volatile_statement);
  if (result.order_total) out.member_bool("order_total", *result.order_total);
  out.end_object();
}

void write_plan(Encoder& out, const PlanSummary& plan) {
  out.begin_object();
  out.strings("node_types", plan.node_types);
  out.strings("seq_scans", plan.seq_scans);
  out.member_number("total_cost", plan.total_cost);
  out.member_number("plan_rows", plan.plan_rows);
  out.end_object();
}

void write_latency(Encoder& out, const LatencySummary& latency) {
  out.begin_object();
  out.member_uint("count", latency.count);
  out.member_number("p50_us", latency.p50_us);
  out.member_number("p95_us", latency.p95_us);
  out.member_number("p99_us", latency.p99_us);
  out.member_number("max_us", latency.max_us);
  out.end_object();
}

// The "statements" array of a request or a result: one walk for both. Each
// object holds what `members` writes (a request's text and parameters), the
// fingerprint, the result and, for a shadow result, the plan when captured.
template <typename StatementT, typename Members>
void write_statements(Encoder& out, const std::vector<StatementT>& statements, Members&& members) {
  out.key("statements");
  out.begin_array();
  for (const auto& statement : statements) {
    out.begin_object();
    members(statement);
    out.member("fingerprint", statement.fingerprint);
    out.key("result");
    write_result(out, statement.result);
    if constexpr (requires { statement.plan; }) {
      if (statement.plan) {
        out.key("plan");
        write_plan(out, *statement.plan);
      }
    }
    out.end_object();
  }
  out.end_array();
}

// One record: a JSON object opening with the version, its members written by
// `body`.
template <typename Body>
void encode_object_into(std::string& encoded, Body&& body, int version = kVersion) {
  Encoder out;
  out.begin_object();
  write_version(out, version);
  body(out);
  out.end_object();
  out.finish_into(encoded);
}

template <typename Body>
std::string encode_object(Body&& body, int version = kVersion) {
  std::string encoded;
  encode_object_into(encoded, std::forward<Body>(body), version);
  return encoded;
}

}  // namespace

int request_version(const Request& record) {
  for (const auto& statement : record.statements) {
    if (statement.needs_v2()) return kRequestVersion;
  }
  return 1;
}

std::string encode(const Request& record) {
  std::string out;
  encode_into(record, out);
  return out;
}

void encode_into(const Request& record, std::string& into) {
  encode_object_into(into, [&](Encoder& out) {
    out.member("request_id", record.request_id);
    out.member_int("ts", record.ts_us);
    out.member("key", record.key);
    out.member("source", record.source);
    out.key("session");
    out.begin_object();
    out.member("time_zone", record.session.time_zone);
    out.member("date_style", record.session.date_style);
    out.member("interval_style", record.session.interval_style);
    out.member("search_path", record.session.search_path);
    out.key("extra");
    out.begin_object();
    for (const auto& [name, value] : record.session.extra) out.key_text(name), out.string(value);
    out.end_object();
    out.end_object();
    out.member("tx", to_string(record.tx));
    std::string encoded;
    write_statements(out, record.statements, [&](const Statement& statement) {
      out.member("sql", statement.sql);
      const Binding& binding = statement.binding;
      if (binding.param_formats.empty()) {
        out.params("params", statement.params);
      } else {
        out.key("params");
        out.begin_array();
        for (size_t i = 0; i < statement.params.size(); ++i) {
          const auto& value = statement.params[i];
          if (!value) {
            out.null();
          } else if (binding.binary_param(i)) {
            base64::encode(*value, encoded);
            out.string(encoded);
          } else {
            out.string(*value);
          }
        }
        out.end_array();
      }
      if (!binding.param_types.empty()) {
        out.key("param_types");
        out.begin_array();
        for (uint32_t type : binding.param_types) out.uint64(type);
        out.end_array();
      }
      if (!binding.param_formats.empty()) {
        out.key("param_formats");
        out.begin_array();
        for (int16_t format : binding.param_formats) out.int64(format);
        out.end_array();
      }
      if (binding.result_format != 0) out.member_int("result_format", binding.result_format);
      if (statement.copy_data) {
        base64::encode(*statement.copy_data, encoded);
        out.member("copy_data", encoded);
      }
    });
  }, request_version(record));
}

std::string encode(const ShadowResult& record) {
  return encode_object([&](Encoder& out) {
    out.member("request_id", record.request_id);
    out.member_int("ts", record.ts_us);
    out.member("key", record.key);
    out.member("executor", record.executor);
    out.member_int("source_partition", record.source_partition);
    out.member_int("source_offset", record.source_offset);
    if (record.published_below >= 0) out.member_int("published_below", record.published_below);
    write_statements(out, record.statements, [](const ShadowStatement&) {});
  });
}

std::string encode(const Mismatch& record) {
  return encode_object([&](Encoder& out) {
    out.member("kind", record.kind);
    out.member("request_id", record.request_id);
    out.member("key", record.key);
    out.member_int("ts", record.ts_us);
    out.member("fingerprint", record.fingerprint);
    out.member("normalized_sql", record.normalized_sql);
    out.member_int("statement_index", record.statement_index);
    if (record.primary) {
      out.key("primary");
      write_result(out, *record.primary);
    }
    if (record.shadow) {
      out.key("shadow");
      write_result(out, *record.shadow);
    }
    out.strings("columns_differ", record.columns_differ);
    out.member_number("latency_ratio", record.latency_ratio);
    if (record.plan) {
      out.key("plan");
      write_plan(out, *record.plan);
    }
    out.member_bool("first_divergence_on_key", record.first_divergence_on_key);
    out.member("detail", record.detail);
    if (record.params) out.params("params", *record.params);
  });
}

std::string encode(const Summary& record) {
  return encode_object([&](Encoder& out) {
    out.member_int("ts", record.ts_us);
    out.member("comparator", record.comparator);
    out.member("fingerprint", record.fingerprint);
    out.member("normalized_sql", record.normalized_sql);
    out.member_uint("compared", record.compared);
    out.key("discrepancies");
    out.begin_object();
    for (const auto& [kind, count] : record.discrepancies) out.key_text(kind), out.uint64(count);
    out.end_object();
    out.key("primary_latency");
    write_latency(out, record.primary_latency);
    out.key("shadow_latency");
    write_latency(out, record.shadow_latency);
    if (!record.stalled.empty()) {
      out.key("stalled");
      out.begin_array();
      for (const auto& stall : record.stalled) {
        out.begin_object();
        out.member_int("partition", stall.partition);
        out.member_int("since", stall.since_us);
        out.member_uint("undecided", stall.undecided);
        out.end_object();
      }
      out.end_array();
    }
  });
}

std::string encode(const Gap& record) {
  return encode_object([&](Encoder& out) {
    out.member("record", kGapRecordTag);
    out.member_int("ts", record.ts_us);
    out.member("source", record.source);
    out.member("reason", record.reason);
    out.member_int("partition", record.partition);
    out.member_int("from_offset", record.from_offset);
    out.member_int("to_offset", record.to_offset);
    out.member_uint("units", record.units);
    out.member_uint("write_units", record.write_units);
    out.member("detail", record.detail);
  });
}

std::string encode(const DeadLetter& record) {
  return encode_object([&](Encoder& out) {
    out.member_int("ts", record.ts_us);
    out.member("consumer", record.consumer);
    out.member("error_code", record.error_code);
    out.member("field", record.field);
    out.member("reason", record.reason);
    out.member("source_topic", record.source_topic);
    out.member_int("source_partition", record.source_partition);
    out.member_int("source_offset", record.source_offset);
    out.member("payload", record.payload);
    out.member_uint("payload_bytes", record.payload_bytes);
  });
}

Gap retention_gap(std::string source, const std::string& topic, int32_t partition, int64_t from, int64_t to) {
  Gap gap;
  gap.ts_us = now_us();
  gap.source = std::move(source);
  gap.reason = "retention";
  gap.partition = partition;
  gap.from_offset = from;
  gap.to_offset = to;
  gap.units = static_cast<uint64_t>(to - from);
  gap.write_units = gap.units;  // unknown: the requests are gone
  gap.detail = "requests " + std::to_string(from) + ".." + std::to_string(to - 1) + " of " + topic + "[" +
               std::to_string(partition) + "] were deleted by retention before the shadow applied them";
  return gap;
}

Gap producer_dropped_gap(std::string source, int32_t partition, uint64_t write_units) {
  Gap gap;
  gap.ts_us = now_us();
  gap.source = std::move(source);
  gap.reason = "producer_dropped";
  gap.partition = partition;
  gap.units = gap.write_units = write_units;
  gap.detail = std::to_string(write_units) + " write unit(s) the recorder could not publish (queue full or broker down)";
  return gap;
}

DeadLetter make_dead_letter(const Error& error, std::string_view consumer, std::string_view topic,
                            int32_t partition, int64_t offset, std::string_view payload,
                            size_t max_payload) {
  // Descriptive fields are capped too: an error path can quote a hostile key,
  // and the DLQ record must stay within what its own readers accept.
  constexpr size_t kMaxText = 4096;
  DeadLetter letter;
  letter.ts_us = now_us();
  letter.consumer = utf8_excerpt(consumer, kMaxText);
  letter.error_code = std::string(to_string(error.code));
  letter.field = utf8_excerpt(error.field, kMaxText);
  letter.reason = utf8_excerpt(error.describe(), kMaxText);
  letter.source_topic = utf8_excerpt(topic, kMaxText);
  letter.source_partition = partition;
  letter.source_offset = offset;
  letter.payload = utf8_excerpt(payload, max_payload);
  letter.payload_bytes = payload.size();
  return letter;
}

}  // namespace shadowpipe::wire
