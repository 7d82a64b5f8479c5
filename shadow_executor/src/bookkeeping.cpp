#include "shadow_executor/bookkeeping.hpp"

#include <cstdlib>

namespace shadowpipe::executor {

const char* to_string(Destination destination) {
  return destination == Destination::dlq ? "dlq" : "results";
}

namespace {
Destination destination_of(std::string_view text) {
  return text == "dlq" ? Destination::dlq : Destination::results;
}

constexpr const char* kLogColumns =
    "shadowpipe.results_log (consumer_group, topic, partition, source_offset, destination, record_key, payload)";
constexpr const char* kLogConflict =
    " ON CONFLICT (consumer_group, topic, partition, source_offset) DO UPDATE"
    " SET destination = EXCLUDED.destination, record_key = EXCLUDED.record_key, payload = EXCLUDED.payload";

// The WHERE of the partition's row in shadowpipe.applied.
std::string partition_row(const Quote& quote, const PartitionId& id) {
  return " WHERE consumer_group = " + quote(id.group) + " AND topic = " + quote(id.topic) +
         " AND partition = " + std::to_string(id.partition);
}

int64_t to_int64(std::string_view text) { return std::strtoll(std::string(text).c_str(), nullptr, 10); }

std::vector<LoggedRecord> read_records(const pg::Result& result) {
  std::vector<LoggedRecord> records;
  records.reserve(static_cast<size_t>(result.rows()));
  for (int row = 0; row < result.rows(); ++row) {
    records.push_back(LoggedRecord{to_int64(result.value(row, 0)), destination_of(result.value(row, 1)),
                                   std::string(result.value(row, 2)), std::string(result.value(row, 3))});
  }
  return records;
}
}  // namespace

void ensure_schema(const pg::Connection& conn) {
  auto present = conn.exec_checked(
      "SELECT to_regclass('shadowpipe.applied') IS NOT NULL AND to_regclass('shadowpipe.results_log') IS NOT NULL");
  if (present.value(0, 0) == "t") return;
  // The lock serializes executors that start together: CREATE ... IF NOT
  // EXISTS is not safe against a concurrent creation of the same name.
  conn.exec_checked("BEGIN");
  try {
    conn.exec_checked("SELECT pg_advisory_xact_lock(hashtext('shadowpipe.schema'))");
    // Only when missing: CREATE SCHEMA checks the database's CREATE privilege
    // even with IF NOT EXISTS, and a role given a ready schema lacks it.
    if (conn.exec_checked("SELECT to_regnamespace('shadowpipe') IS NULL").value(0, 0) == "t") {
      conn.exec_checked("CREATE SCHEMA shadowpipe");
    }
    conn.exec_checked(
        "CREATE TABLE IF NOT EXISTS shadowpipe.applied ("
        " consumer_group text NOT NULL, topic text NOT NULL, partition int NOT NULL,"
        " next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (consumer_group, topic, partition))");
    conn.exec_checked(
        "CREATE TABLE IF NOT EXISTS shadowpipe.results_log ("
        " consumer_group text NOT NULL, topic text NOT NULL, partition int NOT NULL,"
        " source_offset bigint NOT NULL, destination text NOT NULL CHECK (destination IN ('results', 'dlq')),"
        " record_key text NOT NULL, payload text NOT NULL,"
        " PRIMARY KEY (consumer_group, topic, partition, source_offset))");
    conn.exec_checked("COMMIT");
  } catch (...) {
    conn.exec("ROLLBACK");
    throw;
  }
}

int64_t claim_next_offset(const pg::Connection& conn, const PartitionId& id, int64_t start_if_new) {
  auto result = conn.exec_checked(
      "WITH inserted AS ("
      " INSERT INTO shadowpipe.applied (consumer_group, topic, partition, next_offset)"
      " VALUES ($1, $2, $3::int, $4::bigint) ON CONFLICT DO NOTHING RETURNING next_offset)"
      " SELECT next_offset FROM inserted"
      " UNION ALL SELECT next_offset FROM shadowpipe.applied"
      " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int",
      {id.group, id.topic, std::to_string(id.partition), std::to_string(start_if_new)});
  if (result.rows() == 0) return start_if_new;  // cannot happen: one of the two branches returns a row
  return to_int64(result.value(0, 0));
}

bool record_retention_gap(const pg::Connection& conn, const PartitionId& id, int64_t from, int64_t to,
                          const std::string& payload) {
  auto result = conn.exec_checked(
      "WITH moved AS (UPDATE shadowpipe.applied SET next_offset = $5::bigint, updated_at = now()"
      " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int AND next_offset = $4::bigint RETURNING 1)"
      " INSERT INTO " + std::string(kLogColumns) + " SELECT $1, $2, $3::int, $4::bigint, 'results', '', $6 FROM moved" +
          kLogConflict,
      {id.group, id.topic, std::to_string(id.partition), std::to_string(from), std::to_string(to), payload});
  return result.affected_rows() == 1;
}

int64_t read_next_offset(const pg::Connection& conn, const PartitionId& id) {
  auto result = conn.exec_checked(
      "SELECT next_offset FROM shadowpipe.applied WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int",
      {id.group, id.topic, std::to_string(id.partition)});
  return result.rows() == 0 ? -1 : to_int64(result.value(0, 0));
}

std::vector<LoggedRecord> logged_records(const pg::Connection& conn, const PartitionId& id, int64_t from_offset) {
  return read_records(conn.exec_checked(
      "SELECT source_offset, destination, record_key, payload FROM shadowpipe.results_log"
      " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int AND source_offset >= $4::bigint"
      " ORDER BY source_offset",
      {id.group, id.topic, std::to_string(id.partition), std::to_string(from_offset)}));
}

std::vector<LoggedRecord> logged_record_at(const pg::Connection& conn, const PartitionId& id, int64_t offset) {
  return read_records(conn.exec_checked(
      "SELECT source_offset, destination, record_key, payload FROM shadowpipe.results_log"
      " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int AND source_offset = $4::bigint",
      {id.group, id.topic, std::to_string(id.partition), std::to_string(offset)}));
}

void forget_logged_below(const pg::Connection& conn, const std::string& group, const std::string& topic,
                         const std::vector<ForgetBelow>& bounds) {
  if (bounds.empty()) return;
  std::string partitions = "{", offsets = "{";
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (i) {
      partitions += ',';
      offsets += ',';
    }
    partitions += std::to_string(bounds[i].partition);
    offsets += std::to_string(bounds[i].offset);
  }
  partitions += '}';
  offsets += '}';
  conn.exec_checked(
      "DELETE FROM shadowpipe.results_log AS r USING unnest($3::int[], $4::bigint[]) AS bound(partition, below)"
      " WHERE r.consumer_group = $1 AND r.topic = $2 AND r.partition = bound.partition"
      " AND r.source_offset < bound.below",
      {group, topic, partitions, offsets});
}

namespace {
// PostgreSQL's binary formats: big-endian integers; a one-dimensional array
// without NULLs is its header (dimensions, has-nulls flag, element type,
// length, lower bound) then each element as its length and its bytes.
constexpr uint32_t kInt4Oid = 23, kInt8Oid = 20, kTextOid = 25, kInt8ArrayOid = 1016, kTextArrayOid = 1009;

void put_be32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xff);
}
void put_be64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xff);
}
std::string binary_array(uint32_t element_type, size_t count, const std::string& elements) {
  std::string array;
  array.reserve(20 + elements.size());
  put_be32(array, 1);  // dimensions
  put_be32(array, 0);  // no NULLs
  put_be32(array, element_type);
  put_be32(array, static_cast<uint32_t>(count));
  put_be32(array, 1);  // lower bound
  return array += elements;
}
}  // namespace

BatchLog::BatchLog(const PartitionId& id, size_t units) {
  // The UPDATE in a WITH runs whether or not the INSERT reads it. unnest is
  // qualified (the traffic may have set any search_path for its unit), so
  // the three arrays are zipped by ROWS FROM: unnest(a, b, c) is that
  // syntax's shorthand for the unqualified name only.
  statement_.sql =
      "WITH advanced AS (UPDATE shadowpipe.applied SET next_offset = $4::bigint, updated_at = now()"
      " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int RETURNING 1)"
      " INSERT INTO " + std::string(kLogColumns) + " SELECT $1, $2, $3::int, o, 'results', k, p"
      " FROM ROWS FROM (pg_catalog.unnest($5::bigint[]), pg_catalog.unnest($6::text[]),"
      " pg_catalog.unnest($7::text[])) AS record(o, k, p)" + kLogConflict;
  // The scalars as text, the arrays binary.
  statement_.params = {id.group, id.topic, std::to_string(id.partition), std::string(), std::string(),
                       std::string(), std::string()};
  statement_.binding.param_types = {kTextOid, kTextOid, kInt4Oid, kInt8Oid, kInt8ArrayOid, kTextArrayOid, kTextArrayOid};
  statement_.binding.param_formats = {0, 0, 0, 0, 1, 1, 1};
  offsets_.reserve(units * 12);
  keys_.reserve(units * 24);
}

void BatchLog::add(int64_t offset, std::string_view key, std::string_view payload) {
  put_be32(offsets_, 8);
  put_be64(offsets_, static_cast<uint64_t>(offset));
  put_be32(keys_, static_cast<uint32_t>(key.size()));
  keys_.append(key);
  put_be32(payloads_, static_cast<uint32_t>(payload.size()));
  payloads_.append(payload);
  ++count_;
}

const wire::Statement& BatchLog::statement(int64_t next_offset) {
  statement_.params[3] = std::to_string(next_offset);
  statement_.params[4] = binary_array(kInt8Oid, count_, offsets_);
  statement_.params[5] = binary_array(kTextOid, count_, keys_);
  statement_.params[6] = binary_array(kTextOid, count_, payloads_);
  return statement_;
}

namespace bookkeeping_sql {

std::string fence_check(const Quote& quote, const PartitionId& id, int64_t first_offset) {
  // Under READ COMMITTED a row another executor updated meanwhile is
  // re-checked in its new version once that executor commits.
  return "SELECT coalesce((SELECT next_offset::text FROM shadowpipe.applied" + partition_row(quote, id) +
         " AND next_offset <= " + std::to_string(first_offset) + " FOR UPDATE), " +
         quote("shadowpipe fence: offset " + std::to_string(first_offset) + " was applied before") + ")::bigint";
}

std::string advance_applied(const Quote& quote, const PartitionId& id, int64_t last_offset) {
  return "UPDATE shadowpipe.applied SET next_offset = " + std::to_string(last_offset + 1) + ", updated_at = now()" +
         partition_row(quote, id);
}

std::string fence_update(const Quote& quote, const PartitionId& id, int64_t offset) {
  return advance_applied(quote, id, offset) + " AND next_offset <= " + std::to_string(offset);
}

namespace {
std::string log_values(const Quote& quote, const PartitionId& id, int64_t offset, Destination destination,
                       std::string_view key, std::string_view payload) {
  return quote(id.group) + ", " + quote(id.topic) + ", " + std::to_string(id.partition) + ", " +
         std::to_string(offset) + ", '" + to_string(destination) + "', " + quote(key) + ", " + quote(payload);
}
}  // namespace

std::string fence_and_log(const Quote& quote, const PartitionId& id, int64_t offset, Destination destination,
                          std::string_view key, std::string_view payload) {
  return "WITH fence AS (" + fence_update(quote, id, offset) + " RETURNING 1) INSERT INTO " + kLogColumns +
         " SELECT " + log_values(quote, id, offset, destination, key, payload) + " FROM fence" +
         kLogConflict;
}

std::string next_offset(const Quote& quote, const PartitionId& id) {
  return "SELECT next_offset FROM shadowpipe.applied" + partition_row(quote, id);
}

}  // namespace bookkeeping_sql

}  // namespace shadowpipe::executor
