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

// One row per logged write: a batch's records as three arrays in offset
// order, keyed by the last offset. Rows never overlap: a write for offsets
// F..L first takes every record at or after F out of the log (deleting rows
// wholly past F, cutting a row that straddles it), which only a hand-lowered
// shadowpipe.applied leaves there (the records of units being run again);
// the records before F stay.
constexpr const char* kLogColumns =
    "shadowpipe.results_log (consumer_group, topic, partition, last_offset, destination, source_offsets,"
    " record_keys, payloads)";
// A row's records, one per source offset, as record(o, k, p).
constexpr const char* kUnnestRecords =
    " ROWS FROM (pg_catalog.unnest(r.source_offsets), pg_catalog.unnest(r.record_keys),"
    " pg_catalog.unnest(r.payloads)) AS record(o, k, p)";
constexpr const char* kLogConflict =
    " ON CONFLICT (consumer_group, topic, partition, last_offset) DO UPDATE"
    " SET destination = EXCLUDED.destination, source_offsets = EXCLUDED.source_offsets,"
    " record_keys = EXCLUDED.record_keys, payloads = EXCLUDED.payloads";

// A log row to write, each field an SQL expression (a parameter or a literal).
struct LogRowSql {
  std::string group, topic, partition;
  std::string first_offset, last_offset;
  std::string destination;
  std::string offsets, keys, payloads;  // arrays
};

// The rest of a statement that writes one log row after a CTE moving the
// partition's offset: when `gate` names that CTE, the row is written (and
// older records taken out) only if it returned a row. The INSERT reads the
// two CTEs that take records out so they run first: an unread
// data-modifying CTE runs after the main statement, whose unique check would
// then meet the row it replaces.
std::string log_write(const LogRowSql& row, std::string_view gate) {
  const std::string& from = row.first_offset;
  const std::string reaching = " WHERE consumer_group = " + row.group + " AND topic = " + row.topic +
                               " AND partition = " + row.partition + " AND last_offset >= " + from +
                               (gate.empty() ? "" : " AND EXISTS (SELECT FROM " + std::string(gate) + ")");
  // How many of a straddling row's records are before `from`.
  const std::string kept = "(SELECT pg_catalog.count(*)::int FROM pg_catalog.unnest(source_offsets) AS o WHERE o < " + from + ")";
  return ", stale AS (DELETE FROM shadowpipe.results_log" + reaching + " AND source_offsets[1] >= " + from +
         " RETURNING 1), cut AS (UPDATE shadowpipe.results_log SET source_offsets = source_offsets[1:" + kept +
         "], record_keys = record_keys[1:" + kept + "], payloads = payloads[1:" + kept + "], last_offset = source_offsets[" +
         kept + "]" + reaching + " AND source_offsets[1] < " + from + " RETURNING 1) INSERT INTO " + kLogColumns +
         " SELECT " + row.group + ", " + row.topic + ", " + row.partition + ", " + row.last_offset + ", " +
         row.destination + ", " + row.offsets + ", " + row.keys + ", " + row.payloads +
         " FROM (SELECT pg_catalog.count(*) FROM stale) AS deleted, (SELECT pg_catalog.count(*) FROM cut) AS cut_short" +
         (gate.empty() ? "" : ", " + std::string(gate)) + kLogConflict;
}

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

// What the schema holds: "ready", "missing" (a table or the schema) or
// "rows" (results_log in its first layout, one row per record).
std::string schema_state(const pg::Connection& conn) {
  return std::string(conn.exec_checked(
                             "SELECT CASE WHEN to_regclass('shadowpipe.applied') IS NULL"
                             " OR to_regclass('shadowpipe.results_log') IS NULL THEN 'missing'"
                             " WHEN EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass('shadowpipe.results_log')"
                             " AND attname = 'source_offsets' AND NOT attisdropped) THEN 'ready' ELSE 'rows' END")
                         .value(0, 0));
}

void create_results_log(const pg::Connection& conn) {
  if (conn.exec_checked("SELECT to_regclass('shadowpipe.results_log') IS NULL").value(0, 0) != "t") return;
  conn.exec_checked(
      "CREATE TABLE shadowpipe.results_log ("
      " consumer_group text NOT NULL, topic text NOT NULL, partition int NOT NULL,"
      " last_offset bigint NOT NULL, destination text NOT NULL CHECK (destination IN ('results', 'dlq')),"
      " source_offsets bigint[] NOT NULL, record_keys text[] NOT NULL, payloads text[] NOT NULL,"
      " PRIMARY KEY (consumer_group, topic, partition, last_offset))");
  // Payloads are stored as they come: compressing a batch's ~20 kB of JSON
  // costs the server more than writing it, and a row lives for a second.
  conn.exec_checked("ALTER TABLE shadowpipe.results_log ALTER COLUMN payloads SET STORAGE EXTERNAL");
}

// The first layout's rows become one-record rows of this one, in the
// transaction that swaps the tables. Only the table's owner may do it.
void upgrade_results_log(const pg::Connection& conn) {
  try {
    conn.exec_checked("ALTER TABLE shadowpipe.results_log RENAME TO results_log_rows");
    conn.exec_checked("ALTER TABLE shadowpipe.results_log_rows RENAME CONSTRAINT results_log_pkey TO results_log_rows_pkey");
  } catch (const Failure& refused) {
    throw Failure(std::string("shadowpipe.results_log on the shadow has the layout of an earlier shadow_executor"
                              " (one row per result) and upgrading it failed: ") +
                  refused.what() +
                  " — stop every executor of the shadow, then start one once as the table's owner (or a superuser)"
                  " to upgrade it");
  }
  create_results_log(conn);
  conn.exec_checked(
      "INSERT INTO shadowpipe.results_log SELECT consumer_group, topic, partition, source_offset, destination,"
      " ARRAY[source_offset], ARRAY[record_key], ARRAY[payload] FROM shadowpipe.results_log_rows");
  conn.exec_checked("DROP TABLE shadowpipe.results_log_rows");
}
}  // namespace

void ensure_schema(const pg::Connection& conn) {
  if (schema_state(conn) == "ready") return;
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
    // Likewise only when missing: CREATE TABLE IF NOT EXISTS checks the
    // schema's CREATE privilege before it looks for the table.
    if (conn.exec_checked("SELECT to_regclass('shadowpipe.applied') IS NULL").value(0, 0) == "t") {
      conn.exec_checked(
        "CREATE TABLE shadowpipe.applied ("
        " consumer_group text NOT NULL, topic text NOT NULL, partition int NOT NULL,"
        " next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (consumer_group, topic, partition))");
    }
    if (schema_state(conn) == "rows") upgrade_results_log(conn);
    create_results_log(conn);
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
      " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int AND next_offset = $4::bigint RETURNING 1)" +
          log_write({"$1", "$2", "$3::int", "$4::bigint", "$4::bigint", "'results'", "ARRAY[$4::bigint]",
                     "ARRAY[''::text]", "ARRAY[$6::text]"},
                    "moved"),
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
      "SELECT record.o, r.destination, record.k, record.p FROM shadowpipe.results_log AS r," + std::string(kUnnestRecords) +
          " WHERE r.consumer_group = $1 AND r.topic = $2 AND r.partition = $3::int AND r.last_offset >= $4::bigint"
          " AND record.o >= $4::bigint ORDER BY record.o",
      {id.group, id.topic, std::to_string(id.partition), std::to_string(from_offset)}));
}

std::vector<LoggedRecord> logged_record_at(const pg::Connection& conn, const PartitionId& id, int64_t offset) {
  // The one row that can hold the offset: the first whose last offset reaches it.
  return read_records(conn.exec_checked(
      "SELECT record.o, r.destination, record.k, record.p FROM (SELECT * FROM shadowpipe.results_log"
      " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int AND last_offset >= $4::bigint"
      " ORDER BY last_offset LIMIT 1) AS r," + std::string(kUnnestRecords) + " WHERE record.o = $4::bigint",
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
      " AND r.last_offset < bound.below",
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

namespace {
// The UPDATE in a WITH runs whether or not the INSERT reads it: the fence
// at the batch's start checked the offset already.
const std::string& batch_log_sql() {
  static const std::string sql =
      "WITH advanced AS (UPDATE shadowpipe.applied SET next_offset = $4::bigint, updated_at = now()"
      " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int RETURNING 1)" +
      log_write({"$1", "$2", "$3::int", "$8::bigint", "$4::bigint - 1", "'results'", "$5::bigint[]", "$6::text[]",
                 "$7::text[]"},
                "");
  return sql;
}
}  // namespace

BatchLog::BatchLog(const PartitionId& id, size_t units) {
  statement_.sql = batch_log_sql();
  // The scalars as text, the arrays binary.
  statement_.params = {id.group,      id.topic,      std::to_string(id.partition), std::string(),
                       std::string(), std::string(), std::string(),                std::string()};
  statement_.binding.param_types = {kTextOid,      kTextOid,      kInt4Oid,      kInt8Oid,
                                    kInt8ArrayOid, kTextArrayOid, kTextArrayOid, kInt8Oid};
  statement_.binding.param_formats = {0, 0, 0, 0, 1, 1, 1, 0};
  offsets_.reserve(units * 12);
  keys_.reserve(units * 24);
}

void BatchLog::add(int64_t offset, std::string_view key, std::string_view payload) {
  if (count_ == 0) first_offset_ = offset;
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
  statement_.params[7] = std::to_string(first_offset_);
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

std::string prepare_batch_statements() {
  // DEALLOCATE ALL first: what the traffic left (it cannot PREPARE: the
  // runner refuses that) and a half-done earlier attempt are gone, so the
  // names are free. The parameter types are BatchLog's binding's.
  return "DEALLOCATE ALL; PREPARE shadowpipe_fence (text, text, int, bigint) AS"
         " SELECT coalesce((SELECT next_offset::text FROM shadowpipe.applied WHERE consumer_group = $1 AND topic = $2"
         " AND partition = $3 AND next_offset <= $4 FOR UPDATE),"
         " 'shadowpipe fence: offset ' || $4 || ' was applied before')::bigint; PREPARE " +
         std::string(kBatchLogStatement) + " (text, text, int, bigint, bigint[], text[], text[], bigint) AS " +
         batch_log_sql();
}

std::string fence_check_prepared(const Quote& quote, const PartitionId& id, int64_t first_offset) {
  return "EXECUTE shadowpipe_fence(" + quote(id.group) + ", " + quote(id.topic) + ", " + std::to_string(id.partition) +
         ", " + std::to_string(first_offset) + ")";
}

std::string advance_applied(const Quote& quote, const PartitionId& id, int64_t last_offset) {
  return "UPDATE shadowpipe.applied SET next_offset = " + std::to_string(last_offset + 1) + ", updated_at = now()" +
         partition_row(quote, id);
}

std::string fence_update(const Quote& quote, const PartitionId& id, int64_t offset) {
  return advance_applied(quote, id, offset) + " AND next_offset <= " + std::to_string(offset);
}

std::string fence_and_log(const Quote& quote, const PartitionId& id, int64_t offset, Destination destination,
                          std::string_view key, std::string_view payload) {
  const std::string at = std::to_string(offset);
  return "WITH fence AS (" + fence_update(quote, id, offset) + " RETURNING 1)" +
         log_write({quote(id.group), quote(id.topic), std::to_string(id.partition), at, at,
                    std::string("'") + to_string(destination) + "'", "ARRAY[" + at + "::bigint]",
                    "ARRAY[" + quote(key) + "::text]", "ARRAY[" + quote(payload) + "::text]"},
                   "fence");
}

std::string next_offset(const Quote& quote, const PartitionId& id) {
  return "SELECT next_offset FROM shadowpipe.applied" + partition_row(quote, id);
}

}  // namespace bookkeeping_sql

}  // namespace shadowpipe::executor
