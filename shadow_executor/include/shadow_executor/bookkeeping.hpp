// The executor's own state in the shadow database, schema `shadowpipe`:
//
//   applied(consumer_group, topic, partition, next_offset)
//     the next request offset to execute per topic-partition; updated in the
//     same transaction as the unit it records, so a unit is applied exactly
//     once whatever happens to the process or the Kafka committed offset.
//   results_log(consumer_group, topic, partition, last_offset, destination,
//               source_offsets[], record_keys[], payloads[])
//     the records the units produced (shadow.results or shadow.dlq records),
//     one row per transaction that wrote them — a batch's in one row, as
//     arrays in offset order — written in that same transaction, deleted once
//     Kafka acknowledged every record of the row and the consumer offset moved
//     past it; re-published on assignment, so a crash between commit and
//     delivery loses no result. One row a batch, not one a record: the
//     server's cost of the log is per row (a heap tuple, an index entry and
//     their WAL), and so is the DELETE's. Rows never overlap.
#pragma once

#include "shadowpipe/pg.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::executor {

// Which partition's state a statement reads or writes.
struct PartitionId {
  std::string group;
  std::string topic;
  int32_t partition = -1;
};

// Where a logged record goes.
enum class Destination { results, dlq };
const char* to_string(Destination destination);

struct LoggedRecord {
  int64_t source_offset = -1;
  Destination destination = Destination::results;
  std::string key;
  std::string payload;
};

// Creates the schema and tables when missing (serialized by an advisory lock
// so executors starting together do not race), and upgrades a results_log of
// the first layout (one row per record) in place, moving its rows. When they exist nothing is
// created, so a role without CREATE on the database works once a DBA ran
// this (see shadow_executor/README.md).
void ensure_schema(const pg::Connection& conn);

// The partition's next offset to execute; when the partition has no row yet,
// inserts `start_if_new` and returns it.
int64_t claim_next_offset(const pg::Connection& conn, const PartitionId& id, int64_t start_if_new);

// Moves the partition's next offset from `from` to `to` (retention deleted
// the requests between) and logs the gap record announcing it at source
// offset `from`, in one statement. False when the next offset was not
// `from` any more (another owner moved it).
bool record_retention_gap(const pg::Connection& conn, const PartitionId& id, int64_t from, int64_t to,
                          const std::string& payload);

// The partition's next offset, or -1 when it has no row.
int64_t read_next_offset(const pg::Connection& conn, const PartitionId& id);

// Records logged at or after from_offset, in offset order.
std::vector<LoggedRecord> logged_records(const pg::Connection& conn, const PartitionId& id, int64_t from_offset);

// One logged record, for a unit whose commit outcome was unknown (the
// connection dropped during COMMIT).
std::vector<LoggedRecord> logged_record_at(const pg::Connection& conn, const PartitionId& id, int64_t offset);

// Deletes the logged rows whose records are all below each partition's
// offset, in one statement (a row reaching the offset stays whole).
struct ForgetBelow {
  int32_t partition;
  int64_t offset;
};
void forget_logged_below(const pg::Connection& conn, const std::string& group, const std::string& topic,
                         const std::vector<ForgetBelow>& bounds);

// The bookkeeping the unit runner sends inside a unit's transaction as SQL
// text (it shares round trips with savepoint commands), each value quoted by
// `quote` (the session's literal()). A batch's closing bookkeeping is
// BatchLog, below.
using Quote = std::function<std::string(std::string_view)>;
namespace bookkeeping_sql {

// Locks the partition's row and fails (so nothing after it in the
// transaction runs) unless `first_offset` is not applied yet.
std::string fence_check(const Quote& quote, const PartitionId& id, int64_t first_offset);

// The statements every batch runs, PREPAREd once a connection so the server
// parses and plans them once (planning them was 260 us of its CPU a batch):
// the script that (re)prepares them, the fence as an EXECUTE of its
// prepared form (the same check, the same error), and the name of
// BatchLog's statement.
inline constexpr const char* kBatchLogStatement = "shadowpipe_batch_log";
std::string prepare_batch_statements();
std::string fence_check_prepared(const Quote& quote, const PartitionId& id, int64_t first_offset);
// Moves the partition past `last_offset` (its row locked by the fence).
std::string advance_applied(const Quote& quote, const PartitionId& id, int64_t last_offset);
// Moves the partition past `offset` unless it is there already; one row
// affected when it moved.
std::string fence_update(const Quote& quote, const PartitionId& id, int64_t offset);
// fence_update and the log in one statement, so they commit together
// without a transaction block; one row affected when the offset was not
// applied before.
std::string fence_and_log(const Quote& quote, const PartitionId& id, int64_t offset, Destination destination,
                          std::string_view key, std::string_view payload);
// The partition's next offset: one row, or none.
std::string next_offset(const Quote& quote, const PartitionId& id);

}  // namespace bookkeeping_sql

// The bookkeeping that closes a batch, as one statement with parameters:
// the partition moved past the last unit (its row locked by the fence) and
// every unit's result record logged, in one row. The records go as three
// binary array parameters (offsets, keys, payloads): nothing is quoted or
// escaped on either side, and the statement's text is the same for every
// batch. A row logged before that reaches the batch's offsets (left by a
// hand-lowered shadowpipe.applied) is replaced.
class BatchLog {
 public:
  BatchLog(const PartitionId& id, size_t units);
  void add(int64_t offset, std::string_view key, std::string_view payload);
  // The statement, for `next_offset` = the last unit's offset + 1.
  const wire::Statement& statement(int64_t next_offset);
  size_t size() const { return count_; }

 private:
  wire::Statement statement_;
  std::string offsets_, keys_, payloads_;  // the arrays' elements, in array_recv's binary format
  size_t count_ = 0;
  int64_t first_offset_ = -1;
};

}  // namespace shadowpipe::executor
