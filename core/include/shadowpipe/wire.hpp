// The wire records of every topic (schemas/ holds their JSON Schemas), their
// decoding with simdjson (on-demand) and their encoding. Decoding untrusted
// bytes returns Result<T> with a typed Error naming the field; it never
// throws and never crashes. Encoding goes through one writer, never through
// strings built by hand in callers.
#pragma once

#include "shadowpipe/digest.hpp"
#include "shadowpipe/result.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shadowpipe::wire {

// Major version this build reads and writes. Minor additions are new optional
// fields, ignored by older readers; a higher major is refused.
inline constexpr int kVersion = 1;
// shadow.requests has a major version 2 (schemas/requests.v2.schema.json):
// statements bound with binary parameters or binary results, and COPY FROM
// STDIN data, which a reader must not replay as text. A request is written
// as v1 when it needs none of that, so older executors keep reading it, and
// as v2 only when it does, which they refuse with unsupported_version rather
// than replay wrong. This build reads both.
inline constexpr int kRequestVersion = 2;

// Size limits for untrusted input; configurable per program.
struct Limits {
  size_t max_record_bytes = 16 * 1024 * 1024;
  size_t max_sql_bytes = 1024 * 1024;
  size_t max_params = 10'000;
  size_t max_param_bytes = 1024 * 1024;
  size_t max_statements = 1'000;
  size_t max_string_bytes = 64 * 1024;  // ids, keys, names, messages
  size_t max_columns = 1664;  // result columns, their digests, columns_differ (PostgreSQL's target-list maximum)
};

enum class Status { ok, error, refused };  // refused: the side-effect guard stopped it
enum class TxMode { autocommit, commit, rollback };

std::string_view to_string(Status status);
std::string_view to_string(TxMode mode);

// The discrepancy kinds of DESIGN.md and docs/COMPARISON.md, then the
// notices: the domain of Mismatch::kind. A notice says how a fingerprint was
// compared (a type renamed, an order or columns that could not be checked); it
// is published once per fingerprint and column, and does not count against
// the verdict (type_changed does with shadowctl verdict --fail-on-type-change).
// shadow_gap: write units the shadow never received or applied (a Gap record).
// comparison_gap: requests never compared: retention deleted them (one
// record, request id lost:<topic>:<partition>:<first offset>) or their shadow
// results (a record a request, under its own id) before a comparator decided
// them. Their number is in primary.rows.
inline constexpr std::array<std::string_view, 16> kMismatchKinds = {
    "shadow_error",    "primary_error_only", "error_mismatch",  "row_count_mismatch", "value_mismatch",
    "order_mismatch",  "schema_mismatch",    "shadow_missing",  "latency_regression", "representation_mismatch",
    "type_changed",    "order_not_checked",  "nondeterministic_result", "columns_not_compared", "shadow_gap",
    "comparison_gap"};
bool is_mismatch_kind(std::string_view kind);
bool is_notice_kind(std::string_view kind);

// An output column whose values legitimately differ between the two sides,
// found from the shadow's catalog (see catalog.hpp): not compared.
struct VolatileColumn {
  uint32_t index = 0;   // position in the result's columns
  std::string reason;   // "default now()", "identity column", "calls stamp()"...
  bool operator==(const VolatileColumn&) const = default;
};

// What one side observed executing one statement.
struct StatementResult {
  Status status = Status::ok;
  std::string sqlstate;  // empty when ok
  std::string message;   // error or refusal message; empty when ok
  int64_t rows = 0;      // rows returned, or affected by a write
  std::vector<digest::Column> columns;
  uint64_t ordered = 0;
  uint64_t unordered = 0;
  std::vector<uint64_t> column_digests;  // parallel to columns
  // Optional (absent in records of older writers): parallel to columns.
  std::vector<uint64_t> column_ordered;  // each column's values in row order
  std::vector<uint64_t> column_values;   // each column's canonical values, unordered
  int64_t latency_us = 0;
  // What the shadow's catalog says about the result (the executor fills them;
  // absent from the primary's results):
  std::vector<VolatileColumn> volatile_columns;
  std::string volatile_statement;  // non-empty: no value of the statement is comparable, and why
  std::optional<bool> order_total; // ORDER BY proven a total order by a unique key (LIMIT, DISTINCT ON)

  // Fills rows, columns and digests from a digest of the result.
  // By value: a digest just computed is moved in, its column names not copied.
  void set_digest(digest::ResultDigest digest);
  bool operator==(const StatementResult&) const = default;
};

// Rendering settings of the primary session, applied by the executor first.
struct Session {
  std::string time_zone;
  std::string date_style;
  std::string interval_style;
  std::string search_path;
  std::vector<std::pair<std::string, std::string>> extra;  // other GUCs that change rendering
  bool operator==(const Session&) const = default;
};

// How a statement was bound on the primary when not all in text (requests
// v2): the executor replays it with the same types and formats. Empty (the
// default): parameters in text, untyped, results in text, as in v1.
struct Binding {
  std::vector<uint32_t> param_types;   // parallel to params when not empty; 0: the server infers it
  std::vector<int16_t> param_formats;  // parallel to params when not empty: 0 text, 1 binary (the value's bytes)
  int16_t result_format = 0;           // 1: ask for every result column in binary
  bool empty() const { return param_types.empty() && param_formats.empty() && result_format == 0; }
  bool binary_param(size_t index) const { return index < param_formats.size() && param_formats[index] != 0; }
  bool operator==(const Binding&) const = default;
};

struct Statement {
  std::string sql;
  std::vector<std::optional<std::string>> params;  // text, or bytes where binding says binary; nullopt is NULL
  std::string fingerprint;                         // 16 hex digits, statement::analyze
  StatementResult result;                          // the primary's
  Binding binding = {};                            // v2: binary parameters and results
  std::optional<std::string> copy_data = {};       // v2: COPY ... FROM STDIN, the data the client sent
  bool needs_v2() const { return !binding.empty() || copy_data.has_value(); }
  bool operator==(const Statement&) const = default;
};

// shadow.requests — one per application unit of work.
struct Request {
  std::string request_id;
  int64_t ts_us = 0;  // primary commit time, microseconds since the epoch
  std::string key;    // consistency key = partition key
  std::string source; // app name and host
  Session session;
  TxMode tx = TxMode::autocommit;
  std::vector<Statement> statements;
  bool operator==(const Request&) const = default;
};

// A captured EXPLAIN (FORMAT JSON), summarized.
struct PlanSummary {
  std::vector<std::string> node_types;    // distinct node types, outermost first
  std::vector<std::string> seq_scans;     // relations read by a sequential scan
  double total_cost = 0;
  double plan_rows = 0;
  bool operator==(const PlanSummary&) const = default;
};

struct ShadowStatement {
  std::string fingerprint;
  StatementResult result;
  std::optional<PlanSummary> plan;
  bool operator==(const ShadowStatement&) const = default;
};

// shadow.results — one per request, same partition number as the request.
struct ShadowResult {
  std::string request_id;
  int64_t ts_us = 0;       // when the shadow finished the unit
  std::string key;
  std::string executor;    // executor instance id
  int32_t source_partition = -1;
  int64_t source_offset = -1;
  // Progress stamp: every result for a source offset below this one was
  // already acknowledged by Kafka when this record was produced, so it stands
  // earlier in this partition. A reader that has not seen the result of such
  // an offset knows the executor passed it without one. -1: not stamped.
  int64_t published_below = -1;
  std::vector<ShadowStatement> statements;
  bool operator==(const ShadowResult&) const = default;
};

// A stretch of the request stream the shadow never received or applied
// (schemas/gaps.v1.schema.json). Carried on shadow.requests (a recorder that
// dropped write units announces them on the partition they were meant for)
// and on shadow.results (an executor whose position fell below what
// retention left), in order with the records around it.
struct Gap {
  int64_t ts_us = 0;
  std::string source;          // who announces it: "shadow-executor/<id>", the recorder's source
  std::string reason;          // "retention" or "producer_dropped"
  int32_t partition = -1;      // partition of shadow.requests
  int64_t from_offset = -1;    // retention: first offset never applied; -1 when not known
  int64_t to_offset = -1;      // retention: first offset applied after the gap; -1 when not known
  uint64_t units = 0;          // units lost
  uint64_t write_units = 0;    // of which known to write (retention: the same as units, unknown)
  std::string detail;
  bool operator==(const Gap&) const = default;
};

// The design's topic names: the default of every program's topic options
// (recorder, executor, comparator, shadowctl), written once.
namespace default_topics {
inline constexpr const char* requests = "shadow.requests";
inline constexpr const char* results = "shadow.results";
inline constexpr const char* mismatches = "shadow.mismatches";
inline constexpr const char* summary = "shadow.summary";
inline constexpr const char* dlq = "shadow.dlq";
}  // namespace default_topics

inline constexpr std::string_view kGapRecordTag = "gap";  // value of the "record" member

// The two kinds of gap, built in one place for the executor and the recorder.
// retention: requests [from, to) of topic[partition] deleted before applied.
Gap retention_gap(std::string source, const std::string& topic, int32_t partition, int64_t from, int64_t to);
// producer_dropped: write units the recorder could not publish to partition.
Gap producer_dropped_gap(std::string source, int32_t partition, uint64_t write_units);

// shadow.mismatches — one per discrepancy, keyed by request id.
struct Mismatch {
  std::string kind;            // shadow_error, value_mismatch, ... (see DESIGN.md)
  std::string request_id;
  std::string key;
  int64_t ts_us = 0;           // the request's primary commit time
  std::string fingerprint;
  std::string normalized_sql;
  int32_t statement_index = -1;  // -1 when the discrepancy is the whole request
  std::optional<StatementResult> primary;
  std::optional<StatementResult> shadow;
  std::vector<std::string> columns_differ;
  double latency_ratio = 0;      // shadow / primary, latency_regression only
  std::optional<PlanSummary> plan;
  bool first_divergence_on_key = false;
  std::string detail;            // one line a human reads first
  std::optional<std::vector<std::optional<std::string>>> params;  // only when the operator asks
  bool operator==(const Mismatch&) const = default;
};

struct LatencySummary {
  uint64_t count = 0;
  double p50_us = 0, p95_us = 0, p99_us = 0, max_us = 0;
  bool operator==(const LatencySummary&) const = default;
};

// shadow.summary — per fingerprint, every summary interval.
struct Summary {
  int64_t ts_us = 0;
  std::string comparator;
  std::string fingerprint;
  std::string normalized_sql;
  uint64_t compared = 0;
  std::map<std::string, uint64_t> discrepancies;  // by kind
  LatencySummary primary_latency;
  LatencySummary shadow_latency;
  // Whole-stream summaries only: partitions whose requests wait for results
  // that stopped coming (no executor progress for the comparator's window).
  struct Stall {
    int32_t partition = -1;
    int64_t since_us = 0;     // wall time of the partition's last progress
    uint64_t undecided = 0;   // requests waiting on it
    bool operator==(const Stall&) const = default;
  };
  std::vector<Stall> stalled;
  bool operator==(const Summary&) const = default;
};

// shadow.dlq — a record that could not be used, and why.
struct DeadLetter {
  int64_t ts_us = 0;
  std::string consumer;      // program and instance that refused it
  std::string error_code;    // ErrorCode name
  std::string field;
  std::string reason;        // Error::describe()
  std::string source_topic;
  int32_t source_partition = -1;
  int64_t source_offset = -1;
  std::string payload;       // the record's first bytes (valid UTF-8 kept, others escaped)
  uint64_t payload_bytes = 0;
  bool operator==(const DeadLetter&) const = default;
};

Result<Request> decode_request(std::string_view json, const Limits& limits = {});
// decode_request into a record the caller keeps (one per consumer thread):
// its strings and vectors keep their capacity from record to record, so a
// steady stream of similar records decodes without allocating. Returns the
// error, or nullopt when `out` holds the record. After an error `out` is valid
// but its contents are unspecified.
Result<void> decode_request_into(std::string_view json, Request& out, const Limits& limits = {});
Result<ShadowResult> decode_result(std::string_view json, const Limits& limits = {});
// decode_result into a record the caller keeps, as decode_request_into.
Result<void> decode_result_into(std::string_view json, ShadowResult& out, const Limits& limits = {});
Result<Mismatch> decode_mismatch(std::string_view json, const Limits& limits = {});
Result<Summary> decode_summary(std::string_view json, const Limits& limits = {});
Result<DeadLetter> decode_dead_letter(std::string_view json, const Limits& limits = {});
Result<Gap> decode_gap(std::string_view json, const Limits& limits = {});
// Whether a record that failed to decode as a request or result is a gap
// record instead (cheap: called only on the failure path).
bool is_gap_record(std::string_view json);

// Strings that are not valid UTF-8 are written with each offending byte
// replaced by U+FFFD, so the output is always valid JSON; non-finite doubles
// (which JSON cannot carry) are written as 0 (NaN) or +-DBL_MAX (infinity).
std::string encode(const Request& record);
// The same bytes into `into` (its content replaced, its capacity kept): the
// recorder encodes every unit into one buffer per thread, without allocating.
void encode_into(const Request& record, std::string& into);
// The major version encode(record) writes: 1, or 2 when a statement needs it.
int request_version(const Request& record);
std::string encode(const ShadowResult& record);
std::string encode(const Mismatch& record);
std::string encode(const Summary& record);
std::string encode(const DeadLetter& record);
std::string encode(const Gap& record);

// A DLQ record for bytes that failed to decode. The payload excerpt is at most
// max_payload bytes of valid UTF-8: well-formed characters are kept, each other
// byte is written as the four characters \xNN; payload_bytes is the full size.
DeadLetter make_dead_letter(const Error& error, std::string_view consumer, std::string_view topic,
                            int32_t partition, int64_t offset, std::string_view payload,
                            size_t max_payload = 4096);

int64_t now_us();

}  // namespace shadowpipe::wire
