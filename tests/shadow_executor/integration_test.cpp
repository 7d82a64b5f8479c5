// The executor against the real stack: Kafka, the shadow server, and a
// reference database on the primary server that gets the same statements once.
#include "harness.hpp"

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/unit_runner.hpp"
#include "shadowpipe/pg_result.hpp"

#include <prometheus/text_serializer.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

namespace sp = shadowpipe;
namespace ex = shadowpipe::executor;
using namespace sp::testing;
using sp::wire::Status;
using sp::wire::TxMode;

namespace {

double metric_value(sp::executor::Executor& executor, const std::string& line_prefix) {
  const auto text = prometheus::TextSerializer().Serialize(executor.registry().Collect());
  std::istringstream lines(text);
  std::string line;
  double total = 0;
  while (std::getline(lines, line)) {
    if (line.rfind(line_prefix, 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

// A shadow database with the executor's schema, a claimed partition and a runner.
struct RunnerBench {
  explicit RunnerBench(ex::WritesMode writes, bool pipeline = false, ex::DirectBatches direct = ex::DirectBatches::off,
                       bool triggers_or_rules = false, std::atomic<bool>* ddl_seen = nullptr)
      : database(shadow_dsn(), "exec_runner"), conn(database.dsn()) {
    ex::ensure_schema(conn);
    conn.exec_checked("CREATE TABLE items (id int PRIMARY KEY, label text)");
    // A deferred check: violated only at COMMIT.
    conn.exec_checked(
        "CREATE TABLE links (id int PRIMARY KEY, item int REFERENCES items (id) DEFERRABLE INITIALLY DEFERRED)");
    ex::claim_next_offset(conn, id, 0);
    runner = std::make_unique<ex::UnitRunner>(
        conn,
        ex::RunnerConfig{writes, 0, nullptr, "test-executor", nullptr, pipeline, direct, triggers_or_rules, ddl_seen},
        analyzer);
  }
  int64_t count(const std::string& where = "true") {
    return std::stoll(std::string(conn.exec_checked("SELECT count(*) FROM items WHERE " + where).value(0, 0)));
  }
  ex::UnitReport run(const sp::wire::Request& request) { return runner->run(request, id, next++); }
  // The requests as one batch at the next offsets.
  std::vector<ex::UnitReport> run_batch(const std::vector<sp::wire::Request>& requests) {
    std::vector<ex::BatchUnit> units;
    for (const auto& request : requests) units.push_back(ex::BatchUnit{&request, next++});
    return runner->run_batch(units, id);
  }
  std::string checksum(const std::string& table) { return table_checksum(database.dsn(), table); }

  ScratchDatabase database;
  sp::pg::Connection conn;
  sp::statement::Analyzer analyzer;
  ex::PartitionId id{"g", "t", 0};
  std::unique_ptr<ex::UnitRunner> runner;
  int64_t next = 0;
};

sp::wire::Statement insert_item(int id, const std::string& label) {
  return make_statement("INSERT INTO items VALUES ($1, $2)", {std::to_string(id), label});
}

std::string mode_name(const ::testing::TestParamInfo<bool>& info) { return info.param ? "pipeline" : "plain"; }

// Every way a unit can end, side by side: failures in the middle of each kind
// of unit, a tx=rollback unit between writes, a refused statement, reads that
// must see exactly what the units before them kept.
std::vector<sp::wire::Request> mixed_units() {
  return {
      make_request("u0", "k", TxMode::autocommit, {insert_item(1, "a")}),
      make_request("u1", "k", TxMode::commit, {insert_item(2, "b"), make_statement("SELECT 1/0"), insert_item(3, "c")}),
      make_request("u2", "k", TxMode::rollback,
                   {insert_item(4, "d"), make_statement("UPDATE items SET label = 'rolled' WHERE id = 1")}),
      make_request("u3", "k", TxMode::autocommit, {insert_item(5, "e"), insert_item(1, "dup"), insert_item(6, "f")}),
      make_request("u4", "k", TxMode::autocommit, {insert_item(1, "dup")}),
      make_request("u5", "k", TxMode::commit,
                   {make_statement("BEGIN"), make_statement("UPDATE items SET label = label || '+' WHERE id <= $1", {"5"}),
                    make_statement("COMMIT")}),
      make_request("u6", "k", TxMode::rollback, {insert_item(7, "g"), make_statement("SELECT 1/0")}),
      make_request("u7", "k", TxMode::autocommit,
                   {make_statement("SELECT id, label FROM items ORDER BY id"), make_statement("SELECT count(*) FROM items")}),
      make_request("u8", "k", TxMode::commit,
                   {make_statement("INSERT INTO items SELECT g, 'gen' FROM generate_series(10, 12) g"),
                    make_statement("NOTIFY leak"), make_statement("SELECT sum(id) FROM items")}),
      make_request("u9", "k", TxMode::autocommit, {make_statement("SELECT label FROM items WHERE id = $1", {"2"})}),
      make_request("u10", "k", TxMode::autocommit, {insert_item(20, "x"), make_statement("SELECT 1/0")}),
      make_request("u11", "k", TxMode::autocommit, {make_statement("SELECT label FROM items ORDER BY id")}),
  };
}

// The statements' results without their timing.
std::vector<sp::wire::ShadowStatement> untimed(const sp::wire::ShadowResult& result) {
  auto statements = result.statements;
  for (auto& statement : statements) statement.result.latency_us = 0;
  return statements;
}

}  // namespace

class ExecutorRunner : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Modes, ExecutorRunner, ::testing::Bool(), mode_name);

TEST_P(ExecutorRunner, BatchEndsInTheSameStateWithTheSameResultsAsUnitByUnit) {
  for (auto writes : {ex::WritesMode::apply, ex::WritesMode::rollback}) {
    SCOPED_TRACE(std::string(ex::to_string(writes)));
    const auto requests = mixed_units();
    RunnerBench serial(writes, false);
    RunnerBench batched(writes, GetParam());
    std::vector<ex::UnitReport> expected;
    for (const auto& request : requests) expected.push_back(serial.run(request));
    auto reports = batched.run_batch(requests);
    ASSERT_EQ(reports.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      SCOPED_TRACE(requests[i].request_id);
      EXPECT_TRUE(reports[i].applied);
      EXPECT_EQ(reports[i].result.request_id, requests[i].request_id);
      EXPECT_EQ(reports[i].result.source_offset, static_cast<int64_t>(i));
      EXPECT_EQ(untimed(reports[i].result), untimed(expected[i].result));
      ASSERT_EQ(reports[i].notes.size(), expected[i].notes.size());
      for (size_t n = 0; n < reports[i].notes.size(); ++n) {
        EXPECT_EQ(reports[i].notes[n].disposition, expected[i].notes[n].disposition) << "statement " << n;
      }
    }
    EXPECT_EQ(batched.checksum("items"), serial.checksum("items"));
    // One offset and one logged result per unit, in order.
    EXPECT_EQ(ex::read_next_offset(batched.conn, batched.id), static_cast<int64_t>(requests.size()));
    auto logged = ex::logged_records(batched.conn, batched.id, 0);
    ASSERT_EQ(logged.size(), requests.size());
    for (size_t i = 0; i < logged.size(); ++i) {
      EXPECT_EQ(logged[i].source_offset, static_cast<int64_t>(i));
      auto decoded = sp::wire::decode_result(logged[i].payload);
      ASSERT_TRUE(decoded.ok());
      EXPECT_EQ(decoded->request_id, requests[i].request_id);
    }
  }
  // And what apply must keep, spelled out.
  RunnerBench batched(ex::WritesMode::apply, GetParam());
  auto reports = batched.run_batch(mixed_units());
  EXPECT_EQ(batched.count(), 7) << "u0 1, u3 5 and 6, u8 10-12, u10 20";
  EXPECT_EQ(batched.count("label LIKE '%+'"), 2) << "u5 saw what u0 and u3 kept (1, 5), not u2's rollback (4)";
  EXPECT_EQ(batched.count("label = 'rolled'"), 0);
  EXPECT_EQ(reports[1].result.statements[2].result.sqlstate, "25P02");
  EXPECT_EQ(reports[3].result.statements[1].result.sqlstate, "23505");
  EXPECT_EQ(reports[3].result.statements[2].result.status, Status::ok);
  EXPECT_EQ(reports[8].result.statements[1].result.status, Status::refused);
  EXPECT_EQ(reports[9].result.statements[0].result.rows, 0) << "u1 was undone";
}

// A batch that may run without savepoints, with a unique violation in the
// middle (u2, the shadow's own error, and u4's, one the primary had too):
// the direct attempt stops there, is rolled back with its offset and log,
// and the batch runs again on the savepoint path — so every unit ends as the
// savepoint path alone ends it: u0, u1 and u3 applied once, u2 and u4
// recorded with 23505, the units after them applied.
TEST_P(ExecutorRunner, ADirectBatchThatFailsMidwayGivesEveryUnitTheSavepointPathsResult) {
  auto primary_had_it = insert_item(1, "dup again");
  primary_had_it.result.status = Status::error;
  primary_had_it.result.sqlstate = "23505";
  const std::vector<sp::wire::Request> requests{
      make_request("u0", "k", TxMode::autocommit, {insert_item(1, "a")}),
      make_request("u1", "k", TxMode::commit,
                   {insert_item(2, "b"), make_statement("UPDATE items SET label = label || '+' WHERE id <= $1", {"2"})}),
      make_request("u2", "k", TxMode::commit, {insert_item(3, "c"), insert_item(1, "dup"), insert_item(4, "d")}),
      make_request("u3", "k", TxMode::autocommit, {insert_item(5, "e"), make_statement("SELECT count(*) FROM items")}),
      make_request("u4", "k", TxMode::autocommit, {insert_item(6, "f"), primary_had_it, insert_item(7, "g")}),
      make_request("u5", "k", TxMode::autocommit, {make_statement("SELECT id, label FROM items ORDER BY id")}),
  };
  RunnerBench with_savepoints(ex::WritesMode::apply, GetParam(), ex::DirectBatches::off);
  RunnerBench direct(ex::WritesMode::apply, GetParam(), ex::DirectBatches::all);
  const auto expected = with_savepoints.run_batch(requests);
  const auto reports = direct.run_batch(requests);
  ASSERT_EQ(reports.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(requests[i].request_id);
    EXPECT_TRUE(reports[i].applied);
    EXPECT_EQ(untimed(reports[i].result), untimed(expected[i].result));
    ASSERT_EQ(reports[i].notes.size(), expected[i].notes.size());
    for (size_t n = 0; n < reports[i].notes.size(); ++n) {
      EXPECT_EQ(reports[i].notes[n].disposition, expected[i].notes[n].disposition) << "statement " << n;
    }
  }
  EXPECT_EQ(reports[2].result.statements[1].result.sqlstate, "23505");
  EXPECT_EQ(reports[2].result.statements[2].result.sqlstate, "25P02") << "the rest of a failed tx unit not reached";
  EXPECT_EQ(reports[4].result.statements[1].result.sqlstate, "23505");
  EXPECT_EQ(reports[4].result.statements[2].result.status, Status::ok);
  EXPECT_EQ(direct.count(), 5) << "1, 2, 5, 6, 7: u2 undone, everything else applied once";
  EXPECT_EQ(direct.count("label = 'b+'"), 1) << "u1's update ran once";
  EXPECT_EQ(direct.checksum("items"), with_savepoints.checksum("items"));
  EXPECT_EQ(ex::read_next_offset(direct.conn, direct.id), static_cast<int64_t>(requests.size()));
  EXPECT_EQ(ex::logged_records(direct.conn, direct.id, 0).size(), requests.size()) << "one log row per unit";
  // Not by the safety net of a refused COMMIT (which runs the units one
  // transaction each): the batch committed once, its log rows in one insert.
  EXPECT_EQ(direct.conn.exec_checked("SELECT count(DISTINCT xmin::text) FROM shadowpipe.results_log").value(0, 0),
            std::string_view("1"));

  // A batch without failures runs without a single subtransaction; once a
  // fingerprint failed, its batches take the savepoint path at once. Seen
  // from the server: a row written under a savepoint carries the
  // subtransaction's xid as its xmin, not the batch's top-level xid. (Not
  // by counting xids taken: other sessions on the server take them too.)
  auto rows_written_in_subtransactions = [&](RunnerBench& bench, std::vector<sp::wire::Request> batch) {
    bench.conn.exec_checked("CREATE TABLE IF NOT EXISTS xids (x xid8)");
    bench.conn.exec_checked("TRUNCATE xids");
    batch.push_back(make_request("probe", "k", TxMode::autocommit,
                                 {make_statement("INSERT INTO xids SELECT pg_current_xact_id()")}));
    bench.run_batch(batch);
    const auto row = bench.conn.exec_checked(
        "SELECT count(*) FROM items WHERE id IN (30, 31) AND "
        "xmin::text::bigint <> (SELECT x::text::bigint % 4294967296 FROM xids)");
    return std::stoll(std::string(row.value(0, 0)));
  };
  RunnerBench fresh(ex::WritesMode::apply, GetParam(), ex::DirectBatches::all);
  EXPECT_EQ(rows_written_in_subtransactions(fresh, {make_request("c0", "k", TxMode::autocommit, {insert_item(30, "x")}),
                                                      make_request("c1", "k", TxMode::autocommit, {insert_item(31, "y")})}),
            0)
      << "a clean direct batch writes under the batch's own xid";
  EXPECT_EQ(rows_written_in_subtransactions(direct, {make_request("c0", "k", TxMode::autocommit, {insert_item(30, "x")}),
                                                       make_request("c1", "k", TxMode::autocommit, {insert_item(31, "y")})}),
            2)
      << "INSERT INTO items failed in a direct batch before: its batches run with savepoints";
}

// A failed direct attempt is rolled back and the batch runs again, so its
// statements run twice; nextval is not rolled back. With the default (safe)
// a batch that may take a sequence's value never runs direct: the ids the
// shadow gives are the primary's (a=1, b=2, the failed insert took 3, c=4),
// so later statements naming a row by its id find the same row. With `all`
// they drift, which is why it is not the default.
TEST_P(ExecutorRunner, SafeDirectBatchesKeepSequencesInStepWithThePrimary) {
  auto duplicate = make_statement("INSERT INTO serials (label) VALUES ($1)", {"a"});
  duplicate.result.status = Status::error;
  duplicate.result.sqlstate = "23505";
  const std::vector<sp::wire::Request> requests{
      make_request("a", "k", TxMode::autocommit, {make_statement("INSERT INTO serials (label) VALUES ($1)", {"a"})}),
      make_request("b", "k", TxMode::autocommit, {make_statement("INSERT INTO serials (label) VALUES ($1)", {"b"})}),
      make_request("dup", "k", TxMode::autocommit, {duplicate}),
      make_request("c", "k", TxMode::autocommit, {make_statement("INSERT INTO serials (label) VALUES ($1)", {"c"})}),
  };
  auto ids = [&](ex::DirectBatches mode) {
    RunnerBench bench(ex::WritesMode::apply, GetParam(), mode);
    bench.conn.exec_checked("CREATE TABLE serials (id serial PRIMARY KEY, label text UNIQUE)");
    bench.run_batch(requests);
    const auto rows = bench.conn.exec_checked("SELECT string_agg(label || '=' || id, ' ' ORDER BY label) FROM serials");
    return std::string(rows.value(0, 0));
  };
  EXPECT_EQ(ids(ex::DirectBatches::off), "a=1 b=2 c=4");
  EXPECT_EQ(ids(ex::DirectBatches::safe), "a=1 b=2 c=4");
  EXPECT_NE(ids(ex::DirectBatches::all), "a=1 b=2 c=4") << "a rerun after a failed direct attempt advances the sequence";
}

// Which batches the safe mode runs direct: reads, and UPDATE/DELETE without
// function calls or DEFAULT on a shadow without triggers or rules, until DDL
// runs on the connection.
TEST_P(ExecutorRunner, SafeDirectBatchesRunOnlyWhatCannotAdvanceASequence) {
  auto batch_of = [](std::vector<std::string> sqls) {
    std::vector<sp::wire::Request> requests;
    for (size_t i = 0; i < sqls.size(); ++i) {
      requests.push_back(make_request("u" + std::to_string(i), "k", TxMode::autocommit, {make_statement(sqls[i])}));
    }
    return requests;
  };
  auto runs_direct = [&](RunnerBench& bench, std::vector<std::string> sqls) {
    const size_t before = bench.runner->direct_batches_run();
    bench.run_batch(batch_of(std::move(sqls)));
    return bench.runner->direct_batches_run() > before;
  };
  RunnerBench bench(ex::WritesMode::apply, GetParam(), ex::DirectBatches::safe);
  bench.conn.exec_checked("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 10) g");
  EXPECT_TRUE(runs_direct(bench, {"UPDATE items SET label = 'y' WHERE id = 1", "SELECT label FROM items WHERE id = 1",
                                  "DELETE FROM items WHERE id = 2"}));
  EXPECT_FALSE(runs_direct(bench, {"UPDATE items SET label = 'y' WHERE id = 3", "INSERT INTO items VALUES (20, 'z')"}));
  // A sequence that exists: a nextval of a missing one fails, and a failed
  // batch never counts as run direct whatever the check says.
  bench.conn.exec_checked("CREATE SEQUENCE items_seq");
  EXPECT_FALSE(runs_direct(bench, {"SELECT 1", "SELECT nextval('items_seq')"}));
  EXPECT_FALSE(runs_direct(bench, {"SELECT 1", "UPDATE items SET label = lower(label) WHERE id = 4"}));
  EXPECT_FALSE(runs_direct(bench, {"SELECT 1", "UPDATE items SET label = DEFAULT WHERE id = 5"}));
  EXPECT_TRUE(runs_direct(bench, {"SELECT 1", "SELECT 2"}));
  // DDL on the connection: a trigger may exist now.
  bench.run_batch(batch_of({"CREATE TABLE audit (id serial, at int)"}));
  EXPECT_FALSE(runs_direct(bench, {"UPDATE items SET label = 'y' WHERE id = 6", "SELECT 1"}));
  EXPECT_TRUE(runs_direct(bench, {"SELECT 1", "SELECT 2"})) << "reads stay direct";

  // DDL through another partition's session of the same executor: a trigger
  // created there fires for this one's UPDATEs too.
  std::atomic<bool> executor_ddl_seen{false};
  RunnerBench partition_a(ex::WritesMode::apply, GetParam(), ex::DirectBatches::safe, false, &executor_ddl_seen);
  RunnerBench partition_b(ex::WritesMode::apply, GetParam(), ex::DirectBatches::safe, false, &executor_ddl_seen);
  partition_b.conn.exec_checked("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 10) g");
  EXPECT_TRUE(runs_direct(partition_b, {"UPDATE items SET label = 'y' WHERE id = 1", "SELECT 1"}));
  partition_a.run_batch(batch_of({"CREATE TABLE audit (id serial, at int)"}));
  EXPECT_FALSE(runs_direct(partition_b, {"UPDATE items SET label = 'y' WHERE id = 2", "SELECT 1"}))
      << "DDL on partition a's session ends direct writes on partition b's";

  RunnerBench with_triggers(ex::WritesMode::apply, GetParam(), ex::DirectBatches::safe, /*triggers_or_rules=*/true);
  with_triggers.conn.exec_checked("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 10) g");
  EXPECT_FALSE(runs_direct(with_triggers, {"UPDATE items SET label = 'y' WHERE id = 1", "SELECT 1"}));
  EXPECT_TRUE(runs_direct(with_triggers, {"SELECT 1", "SELECT label FROM items WHERE id = 1"}));
}

// What the worker reads at connect to decide whether writes may run direct
// (RunnerConfig::shadow_has_triggers_or_rules). Every PostgreSQL has rules of
// its own (pg_settings' pg_settings_u and pg_settings_n): counting those
// kept every write batch on the savepoint path on any shadow.
TEST(ExecutorShadowCatalog, OnlyTheUsersTriggersAndRulesCount) {
  ScratchDatabase database(shadow_dsn(), "exec_rules");
  sp::pg::Connection conn(database.dsn());
  ex::ensure_schema(conn);
  conn.exec_checked("CREATE TABLE items (id int PRIMARY KEY, label text)");
  EXPECT_FALSE(ex::shadow_has_triggers_or_rules(conn)) << "the system catalogs' own rules are not the user's";

  conn.exec_checked("CREATE TABLE items_log (id int)");
  conn.exec_checked("CREATE RULE log_update AS ON UPDATE TO items DO ALSO INSERT INTO items_log VALUES (NEW.id)");
  EXPECT_TRUE(ex::shadow_has_triggers_or_rules(conn)) << "a rule";
  conn.exec_checked("DROP RULE log_update ON items");
  EXPECT_FALSE(ex::shadow_has_triggers_or_rules(conn));

  conn.exec_checked("CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$");
  conn.exec_checked("CREATE TRIGGER touch BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch()");
  EXPECT_TRUE(ex::shadow_has_triggers_or_rules(conn)) << "a trigger";
  conn.exec_checked("DROP TRIGGER touch ON items");
  conn.exec_checked("CREATE VIEW labels AS SELECT label FROM items");
  EXPECT_FALSE(ex::shadow_has_triggers_or_rules(conn)) << "a view's _RETURN rule is no rule of the user's";
}

TEST_P(ExecutorRunner, AFailureAtCommitRedoesTheBatchOneUnitPerTransaction) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  auto reports = bench.run_batch({
      make_request("a", "k", TxMode::autocommit, {insert_item(1, "a")}),
      make_request("dangling", "k", TxMode::commit,
                   {make_statement("INSERT INTO links VALUES (1, 99)"), make_statement("SELECT 1")}),
      make_request("b", "k", TxMode::autocommit,
                   {insert_item(2, "b"), make_statement("INSERT INTO links VALUES (2, 2)")}),
  });
  ASSERT_EQ(reports.size(), 3u);
  for (const auto& report : reports) EXPECT_TRUE(report.applied);
  EXPECT_EQ(reports[0].result.statements[0].result.status, Status::ok);
  const auto& dangling = reports[1].result.statements;
  EXPECT_EQ(dangling[0].result.status, Status::ok);
  EXPECT_EQ(dangling[1].result.sqlstate, "23503") << "reported on the last statement the server ran";
  EXPECT_NE(dangling[1].result.message.find("at COMMIT"), std::string::npos);
  EXPECT_EQ(reports[2].result.statements[1].result.status, Status::ok);
  EXPECT_EQ(bench.count(), 2) << "the other units are not lost with the failing one";
  EXPECT_EQ(bench.checksum("links"), "1:" + std::string(bench.conn.exec_checked("SELECT md5('(2,2)')").value(0, 0)));
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 3);
  EXPECT_EQ(ex::logged_records(bench.conn, bench.id, 0).size(), 3u);
}

TEST_P(ExecutorRunner, ABatchSkipsTheUnitsAppliedBeforeAndRunsTheRest) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  std::vector<sp::wire::Request> requests;
  for (int i = 0; i < 5; ++i) {
    requests.push_back(make_request("r" + std::to_string(i), "k", TxMode::commit,
                                    {make_statement("INSERT INTO items SELECT coalesce(max(id), 0) + 1, $1 FROM items",
                                                    {std::to_string(i)})}));
  }
  ASSERT_TRUE(bench.run(requests[0]).applied);
  ASSERT_TRUE(bench.run(requests[1]).applied);
  // A restart (or a second instance) hands the same offsets again, with more.
  std::vector<ex::BatchUnit> units;
  for (size_t i = 0; i < requests.size(); ++i) units.push_back(ex::BatchUnit{&requests[i], static_cast<int64_t>(i)});
  auto reports = bench.runner->run_batch(units, bench.id);
  EXPECT_FALSE(reports[0].applied);
  EXPECT_FALSE(reports[1].applied);
  for (size_t i = 2; i < reports.size(); ++i) {
    EXPECT_TRUE(reports[i].applied);
    EXPECT_EQ(reports[i].result.statements.at(0).result.status, Status::ok);
  }
  EXPECT_EQ(bench.count(), 5);
  EXPECT_EQ(bench.count("id = label::int + 1"), 5) << "each unit once, in order";
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 5);
  auto again = bench.runner->run_batch(units, bench.id);
  for (const auto& report : again) EXPECT_FALSE(report.applied);
  EXPECT_EQ(bench.count(), 5);
}

// Each statement is timed over its own stretch of the batch, and the
// stretches do not overlap, so they add up to no more than the batch took —
// on any machine, however loaded. A statement charged another's time (the
// sleep) would count the sleep twice and break the sum.
TEST_P(ExecutorRunner, LatencyIsEachStatementsOwnInsideABatch) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  constexpr int64_t kSleepUs = 500'000;
  const auto started = std::chrono::steady_clock::now();
  auto reports = bench.run_batch({
      make_request("fast", "k", TxMode::autocommit, {make_statement("SELECT 1")}),
      make_request("slow", "k", TxMode::commit, {make_statement("SELECT 2"), make_statement("SELECT pg_sleep(0.5)"),
                                                 make_statement("SELECT 3")}),
      make_request("fast2", "k", TxMode::autocommit, {make_statement("SELECT 4")}),
  });
  const int64_t batch_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
  const int64_t slow_us = reports[1].result.statements[1].result.latency_us;
  // Pipelined, the server starts the sleep as soon as it has sent the
  // previous reply, and the stretch starts when the client reads that reply:
  // on a loaded machine a millisecond or two later. Most of the sleep is the
  // slow statement's own either way.
  EXPECT_GE(slow_us, kSleepUs * 9 / 10);
  int64_t others_us = 0;
  for (auto [unit, statement] : std::initializer_list<std::pair<int, int>>{{0, 0}, {1, 0}, {1, 2}, {2, 0}}) {
    const int64_t latency_us = reports[unit].result.statements[statement].result.latency_us;
    EXPECT_GE(latency_us, 0) << "unit " << unit << " statement " << statement;
    others_us += latency_us;
  }
  EXPECT_LE(slow_us + others_us, batch_us)
      << "the statements were charged " << slow_us + others_us << " us in a batch of " << batch_us
      << " us: some statement was charged another statement's time";
}

TEST_P(ExecutorRunner, ABatchHoldsOnlyUnitsWithTheSameSessionSettings) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  auto tokyo = make_request("tokyo", "k", TxMode::autocommit, {make_statement("SELECT 1")});
  tokyo.session.time_zone = "Asia/Tokyo";
  const auto utc = make_request("utc", "k", TxMode::autocommit, {make_statement("SELECT 1")});
  const auto set = make_request("set", "k", TxMode::autocommit, {make_statement("SET work_mem = '8MB'")});
  sp::statement::Analyzer analyzer;
  EXPECT_FALSE(ex::UnitRunner::may_share_batch(utc, tokyo, analyzer));
  EXPECT_FALSE(ex::UnitRunner::may_share_batch(utc, set, analyzer)) << "a SET may change the session";
  const auto set_config = make_request("set_config", "k", TxMode::autocommit,
                                       {make_statement("SELECT set_config('work_mem', '8MB', false)")});
  EXPECT_FALSE(ex::UnitRunner::may_share_batch(utc, set_config, analyzer)) << "so may set_config(..., false)";
  const auto local = make_request("local", "k", TxMode::commit,
                                  {make_statement("SELECT set_config('work_mem', '8MB', true)")});
  EXPECT_TRUE(ex::UnitRunner::may_share_batch(utc, local, analyzer)) << "set_config(..., true) ends with its unit";
  EXPECT_TRUE(ex::UnitRunner::may_share_batch(utc, utc, analyzer));
  EXPECT_THROW(bench.run_batch({utc, tokyo}), std::invalid_argument);
}

TEST_P(ExecutorRunner, AutocommitUnitKeepsTheStatementsAroundAFailedOne) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  auto report = bench.run(make_request("r1", "k", TxMode::autocommit,
                                       {insert_item(1, "a"), insert_item(1, "dup"), insert_item(2, "b")}));
  ASSERT_TRUE(report.applied);
  ASSERT_EQ(report.result.statements.size(), 3u);
  EXPECT_EQ(report.result.statements[0].result.status, Status::ok);
  EXPECT_EQ(report.result.statements[0].result.rows, 1);
  EXPECT_EQ(report.result.statements[1].result.status, Status::error);
  EXPECT_EQ(report.result.statements[1].result.sqlstate, "23505");
  EXPECT_EQ(report.result.statements[2].result.status, Status::ok);
  EXPECT_EQ(bench.count(), 2);
}

TEST_P(ExecutorRunner, CommitUnitFailsAsAWholeAndReportsTheRestAsAborted) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  auto report = bench.run(make_request("r1", "k", TxMode::commit,
                                       {insert_item(1, "a"), make_statement("SELECT 1/0"), insert_item(2, "b")}));
  ASSERT_TRUE(report.applied);
  EXPECT_EQ(report.result.statements[0].result.status, Status::ok);
  EXPECT_EQ(report.result.statements[1].result.sqlstate, "22012");
  EXPECT_EQ(report.result.statements[2].result.sqlstate, "25P02");
  EXPECT_EQ(bench.count(), 0);
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 1);  // recorded all the same
  EXPECT_EQ(ex::logged_records(bench.conn, bench.id, 0).size(), 1u);
}

TEST_P(ExecutorRunner, RollbackUnitLeavesNothingAndTransactionControlIsSkipped) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  auto report = bench.run(make_request("r1", "k", TxMode::rollback,
                                       {make_statement("BEGIN"), insert_item(1, "a"), make_statement("ROLLBACK")}));
  ASSERT_TRUE(report.applied);
  EXPECT_EQ(report.notes[0].disposition, ex::Disposition::transaction_control);
  EXPECT_EQ(report.notes[2].disposition, ex::Disposition::transaction_control);
  EXPECT_EQ(report.result.statements[1].result.status, Status::ok);
  EXPECT_EQ(bench.count(), 0);
}

TEST_P(ExecutorRunner, WhatCannotBeReplayedIsRefusedAndTheNextUnitRuns) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  const std::vector<std::string> refused = {
      "BEGIN; INSERT INTO items VALUES (1, 'a'); COMMIT",  // its COMMIT would commit without the offset
      "ROLLBACK; INSERT INTO items VALUES (2, 'b')",
      "COPY items FROM STDIN",                              // puts the connection in COPY state
      "COPY items TO STDOUT",
      "SET ROLE postgres",                                  // outlives the unit on the connection
      "SELECT pg_advisory_lock(42)",
      "PREPARE p AS SELECT 1",
      // Session state through functions and temporary objects reaches the
      // next units of other application sessions on the shared connection.
      "SELECT set_config('role', 'postgres', false)",       // a role change, like SET ROLE
      "SELECT set_config($1, 'postgres', false)",           // a name the text does not fix may be the role
      "CREATE TEMP TABLE scratch (id int)",
      "CREATE TEMPORARY TABLE scratch2 AS SELECT 1 AS x",
  };
  for (const auto& sql : refused) {
    auto statement = make_statement(sql);
    if (sql.find("$1") != std::string::npos) statement.params = {std::string("role")};
    auto report = bench.run(make_request("r-" + sql, "k", TxMode::autocommit, {statement}));
    ASSERT_TRUE(report.applied) << sql;
    EXPECT_EQ(report.notes[0].disposition, ex::Disposition::not_replayable) << sql;
    EXPECT_EQ(report.result.statements[0].result.status, Status::refused) << sql;
    const auto& message = report.result.statements[0].result.message;
    EXPECT_TRUE(message.find("cannot be replayed") != std::string::npos ||
                message.find("state in the shadow session") != std::string::npos)
        << sql << ": " << message;
  }
  EXPECT_EQ(bench.count(), 0);
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), static_cast<int64_t>(refused.size()));
  // Nothing was left on the connection: no lock, no prepared statement (but the runner's own), and the next unit runs.
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").value(0, 0)), "0");
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT count(*) FROM pg_prepared_statements WHERE name NOT IN ('shadowpipe_fence', 'shadowpipe_batch_log')").value(0, 0)), "0");
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT count(*) FROM pg_class WHERE relpersistence = 't'").value(0, 0)), "0");
  EXPECT_EQ(std::string(bench.conn.exec_checked("SHOW search_path").value(0, 0)), "\"$user\", public");
  auto next = bench.run(make_request("after", "k", TxMode::autocommit, {insert_item(3, "c")}));
  ASSERT_TRUE(next.applied);
  EXPECT_EQ(next.result.statements[0].result.status, Status::ok);
  EXPECT_EQ(bench.count(), 1);
}

TEST_P(ExecutorRunner, SavepointsAreReplayedInOrderSoAGetOrCreateKeepsItsWrites) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  bench.conn.exec_checked("INSERT INTO items VALUES (1, 'existing')");
  auto request = make_request(
      "goc", "k", TxMode::commit,
      {make_statement("SAVEPOINT outer_sp"), insert_item(2, "kept"), make_statement("SAVEPOINT get_or_create"),
       insert_item(1, "dup"), make_statement("ROLLBACK TO SAVEPOINT get_or_create"),
       make_statement("SELECT label FROM items WHERE id = 1"), insert_item(3, "after"),
       make_statement("RELEASE SAVEPOINT outer_sp")});
  auto report = bench.run(request);
  ASSERT_TRUE(report.applied);
  const auto& results = report.result.statements;
  ASSERT_EQ(results.size(), 8u);
  EXPECT_EQ(results[3].result.sqlstate, "23505");  // as on the primary
  for (size_t i : {0u, 1u, 2u, 4u, 5u, 6u, 7u}) {
    EXPECT_EQ(results[i].result.status, Status::ok) << i << ": " << results[i].result.message;
  }
  EXPECT_EQ(results[5].result.rows, 1);
  EXPECT_EQ(bench.count(), 3) << "the unit's writes are kept, as the primary kept them";
  // The executor's own savepoint survived the unit's: the next unit runs normally.
  auto next = bench.run(make_request("next", "k", TxMode::commit, {insert_item(4, "next")}));
  EXPECT_EQ(next.result.statements[0].result.status, Status::ok);
  EXPECT_EQ(bench.count(), 4);
}

TEST_P(ExecutorRunner, SetConstraintsIsHonoured) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  bench.conn.exec_checked(
      "CREATE TABLE tags (id int PRIMARY KEY, item int REFERENCES items (id) DEFERRABLE INITIALLY IMMEDIATE)");
  // DEFERRED: the row that satisfies the key comes after the row that needs it, as the primary allowed.
  auto report = bench.run(make_request(
      "deferred", "k", TxMode::commit,
      {make_statement("SET CONSTRAINTS ALL DEFERRED"), make_statement("INSERT INTO tags VALUES (1, 50)"),
       insert_item(50, "target")}));
  ASSERT_EQ(report.result.statements.size(), 3u);
  for (const auto& statement : report.result.statements) {
    EXPECT_EQ(statement.result.status, Status::ok) << statement.result.message;
  }
  EXPECT_EQ(bench.count("id = 50"), 1);
  // The setting ends with the unit: the next unit's check is immediate again.
  auto next = bench.run(make_request("immediate", "k", TxMode::commit, {make_statement("INSERT INTO tags VALUES (2, 51)")}));
  EXPECT_EQ(next.result.statements[0].result.sqlstate, "23503");
}

TEST_P(ExecutorRunner, IsolationLevelAndReadOnlyAreHonoured) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  const std::string probe = "SELECT current_setting('transaction_isolation') AS isolation";
  auto report = bench.run(make_request(
      "serializable", "k", TxMode::commit,
      {make_statement("BEGIN ISOLATION LEVEL SERIALIZABLE"), make_statement(probe), make_statement("COMMIT")}));
  sp::pg::Connection reference(bench.database.dsn());
  reference.exec_checked("BEGIN ISOLATION LEVEL SERIALIZABLE");
  auto expected = reference.exec_checked(probe);
  reference.exec_checked("COMMIT");
  EXPECT_EQ(report.result.statements.at(1).result.unordered, sp::digest::digest_result(expected.get(), {}).unordered);

  // READ ONLY: the write fails as it failed on the primary, and the mode ends with the unit.
  auto read_only = bench.run(make_request(
      "read-only", "k", TxMode::commit,
      {make_statement("START TRANSACTION READ ONLY"), make_statement("SELECT count(*) FROM items"), insert_item(1, "x")}));
  ASSERT_EQ(read_only.result.statements.size(), 3u);
  EXPECT_EQ(read_only.result.statements[1].result.status, Status::ok);
  EXPECT_EQ(read_only.result.statements[2].result.sqlstate, "25006");
  auto next = bench.run(make_request("next", "k", TxMode::commit, {insert_item(2, "y")}));
  EXPECT_EQ(next.result.statements[0].result.status, Status::ok) << next.result.statements[0].result.message;
  EXPECT_EQ(bench.count(), 1);
}

TEST_P(ExecutorRunner, TransactionScopedSessionStateIsReplayed) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  auto report = bench.run(make_request(
      "local", "k", TxMode::commit,
      {make_statement("SELECT set_config('application_name', 'unit-local', true)"),
       make_statement("CREATE TEMP TABLE scratch (id int) ON COMMIT DROP"),
       make_statement("INSERT INTO scratch VALUES (1)"), make_statement("INSERT INTO items SELECT id, 'from temp' FROM scratch")}));
  ASSERT_TRUE(report.applied);
  for (const auto& statement : report.result.statements) {
    EXPECT_EQ(statement.result.status, Status::ok) << statement.result.message;
  }
  EXPECT_EQ(bench.count("label = 'from temp'"), 1);
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT count(*) FROM pg_class WHERE relpersistence = 't'").value(0, 0)), "0");
}

// A setting a unit makes past its transaction (plain SET, set_config(...,
// false)) is replayed and reset after the unit, so it never reaches the next
// unit; the settings a unit's session had (session.extra) hold for that unit
// only.
TEST_P(ExecutorRunner, SessionSettingsHoldForTheirUnitOnly) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  auto show = [&](const char* name) { return std::string(bench.conn.exec_checked(std::string("SHOW ") + name).value(0, 0)); };
  const std::string default_digits = show("extra_float_digits");
  auto setting = [&](const std::string& id, std::vector<std::pair<std::string, std::string>> extra) {
    auto request = make_request(id, "k", TxMode::autocommit,
                                {make_statement("SELECT current_setting('extra_float_digits') AS digits")});
    request.session.extra = std::move(extra);
    auto report = bench.run(request);
    EXPECT_TRUE(report.applied) << id;
    EXPECT_EQ(report.result.statements.at(0).result.status, Status::ok) << report.result.statements.at(0).result.message;
    return report.result.statements.at(0).result.unordered;
  };
  const uint64_t under_default = setting("default", {});
  const uint64_t under_minus_three = setting("minus-three", {{"extra_float_digits", "-3"}});
  EXPECT_NE(under_default, under_minus_three) << "session.extra was not applied";
  EXPECT_EQ(show("extra_float_digits"), default_digits) << "session.extra outlived its unit";

  for (const char* sql : {"SELECT set_config('extra_float_digits', '-3', false)", "SET extra_float_digits = -3"}) {
    auto report = bench.run(make_request(std::string("set-") + sql, "k", TxMode::commit,
                                         {make_statement(sql), make_statement("SELECT current_setting('extra_float_digits') AS digits")}));
    ASSERT_TRUE(report.applied) << sql;
    EXPECT_EQ(report.notes[0].disposition, ex::Disposition::executed) << sql;
    EXPECT_EQ(report.result.statements[1].result.unordered, under_minus_three) << sql << ": not in effect inside its unit";
    EXPECT_EQ(show("extra_float_digits"), default_digits) << sql << ": leaked past its unit";
    EXPECT_EQ(setting(std::string("after-") + sql, {}), under_default) << sql << ": reached the next unit";
  }
}

// --statement-timeout is SET LOCAL: it must not cover the bookkeeping at the
// end of the transaction, or a slow log insert becomes the unit's error.
TEST_P(ExecutorRunner, TheStatementTimeoutDoesNotCoverTheBookkeeping) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  bench.runner = std::make_unique<ex::UnitRunner>(
      bench.conn, ex::RunnerConfig{ex::WritesMode::apply, 300, nullptr, "test-executor", nullptr, GetParam()},
      bench.analyzer);
  // Another session inserts the log row of offset 0 and holds it for longer
  // than the timeout: the unit's own log insert waits for it.
  sp::pg::Connection other(bench.database.dsn());
  other.exec_checked("BEGIN");
  other.exec_checked(
      "INSERT INTO shadowpipe.results_log VALUES ('g', 't', 0, 0, 'results', '{0}', '{k}', '{held}')");
  constexpr auto kHeld = 1200ms;
  const auto held_since = std::chrono::steady_clock::now();
  std::thread release([&] {
    std::this_thread::sleep_for(kHeld);
    other.exec_checked("ROLLBACK");
  });
  ex::UnitReport report;
  try {
    report = bench.run(make_request("r1", "k", TxMode::autocommit, {insert_item(1, "a")}));
  } catch (const std::exception& error) {
    release.join();
    FAIL() << error.what();
  }
  const auto waited = std::chrono::steady_clock::now() - held_since;
  release.join();
  // The unit cannot end before the other session lets go of the row: an
  // earlier end means it never waited, and the test proved nothing about the
  // timeout (300 ms) and the bookkeeping.
  EXPECT_GE(waited, kHeld) << "the unit ended after "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms";
  ASSERT_TRUE(report.applied);
  EXPECT_EQ(report.result.statements[0].result.status, Status::ok) << report.result.statements[0].result.message;
  EXPECT_EQ(bench.count(), 1);
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 1);
}

// A COMMIT cancelled (a shutdown cancel, an operator) is not the unit's
// failure: nothing is recorded, the unit runs again later.
TEST_P(ExecutorRunner, ACancelledCommitIsRetriedNotRecorded) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  bench.conn.exec_checked(
      "CREATE FUNCTION cancel_me() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "PERFORM pg_cancel_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NULL; END $$");
  bench.conn.exec_checked(
      "CREATE CONSTRAINT TRIGGER cancel_at_commit AFTER INSERT ON items DEFERRABLE INITIALLY DEFERRED "
      "FOR EACH ROW EXECUTE FUNCTION cancel_me()");
  try {
    (void)bench.run(make_request("r1", "k", TxMode::autocommit, {insert_item(1, "a")}));
    ADD_FAILURE() << "a run on a terminated connection must throw Transient";
  } catch (const shadowpipe::Transient& lost) {
    EXPECT_EQ(lost.cause(), shadowpipe::Transient::Cause::connection_lost) << lost.what();
  }
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 0);
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT count(*) FROM shadowpipe.results_log").value(0, 0)), "0");
  EXPECT_EQ(bench.count(), 0);
}

TEST_P(ExecutorRunner, AnOffsetIsAppliedOnlyOnce) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  const auto request = make_request("r1", "k", TxMode::commit, {insert_item(1, "a")});
  ASSERT_TRUE(bench.runner->run(request, bench.id, 0).applied);
  EXPECT_FALSE(bench.runner->run(request, bench.id, 0).applied);
  EXPECT_EQ(bench.count(), 1);
}

// The batch's fence and log run as statements prepared on the connection;
// traffic that deallocates them costs at most a batch run again, and never
// a unit's result or an offset.
TEST_P(ExecutorRunner, TrafficThatDeallocatesTheBatchStatementsIsAppliedOnceWithItsOwnResults) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  ASSERT_TRUE(bench.run(make_request("r0", "k", TxMode::autocommit, {insert_item(1, "a")})).applied);
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT count(*) FROM pg_prepared_statements").value(0, 0)), "2")
      << "the fence and the log, prepared on the runner's connection (the bench's own)";
  auto deallocating = bench.run(make_request("r1", "k", TxMode::autocommit, {make_statement("DEALLOCATE ALL", {})}));
  EXPECT_TRUE(deallocating.applied);
  ASSERT_EQ(deallocating.result.statements.size(), 1u);
  EXPECT_EQ(deallocating.result.statements[0].result.status, Status::ok);
  ASSERT_TRUE(bench.run(make_request("r2", "k", TxMode::autocommit, {insert_item(2, "b")})).applied);
  // DEALLOCATE ALL ran, then the text failed: known from the text, so the
  // log goes by its text at once, and the unit keeps its own error.
  auto failing = bench.run(make_request("r3", "k", TxMode::autocommit, {make_statement("DEALLOCATE ALL; SELECT 1/0", {})}));
  EXPECT_TRUE(failing.applied);
  ASSERT_EQ(failing.result.statements.size(), 1u);
  EXPECT_EQ(failing.result.statements[0].result.sqlstate, "22012") << "its own error, not the lost statement's";
  ASSERT_TRUE(bench.run(make_request("r4", "k", TxMode::autocommit, {insert_item(3, "c")})).applied);
  // Dropped where the runner cannot see it (the bench shares its
  // connection): the fence finds its statement gone, nothing runs, and the
  // batch runs again once they are prepared again.
  bench.conn.exec_checked("DEALLOCATE ALL");
  const auto unit = make_request("r5", "k", TxMode::autocommit, {insert_item(4, "d")});
  EXPECT_THROW(bench.runner->run(unit, bench.id, 5), sp::Transient);
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 5);
  EXPECT_EQ(bench.count(), 3);
  ASSERT_TRUE(bench.runner->run(unit, bench.id, 5).applied);
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 6);
  EXPECT_EQ(bench.count(), 4);
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT sum(cardinality(source_offsets)) FROM shadowpipe.results_log").value(0, 0)), "6")
      << "one logged record per unit";
}

// Traffic that names the executor's own prepared statements (the
// application's PREPARE is never replayed, so no other name of its can be
// there): refused, never run with the traffic's arguments on the real server.
TEST_P(ExecutorRunner, TrafficThatNamesTheExecutorsPreparedStatementsIsRefused) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  ASSERT_TRUE(bench.run(make_request("r0", "k", TxMode::autocommit, {insert_item(1, "a")})).applied);
  const std::string forged = "EXECUTE shadowpipe_batch_log('g', 't', 0, 1000, '{1000}', '{k}', '{forged}', 1000)";
  // EXPLAIN ANALYZE runs what it explains.
  const std::vector<std::string> texts = {forged, "EXPLAIN ANALYZE " + forged,
                                          "EXECUTE shadowpipe_fence('g', 't', 0, 1000)", "DEALLOCATE shadowpipe_batch_log"};
  int n = 0;
  for (const auto& text : texts) {
    auto report = bench.run(make_request("r-" + std::to_string(++n), "k", TxMode::autocommit, {make_statement(text, {})}));
    EXPECT_TRUE(report.applied) << text;
    ASSERT_EQ(report.result.statements.size(), 1u);
    EXPECT_EQ(report.result.statements[0].result.status, Status::refused) << text;
  }
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 5) << "moved by the five units, one each";
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT count(*) FROM shadowpipe.results_log"
                                                " WHERE 'forged' = ANY (payloads) OR last_offset >= 1000").value(0, 0)),
            "0");
  EXPECT_EQ(std::string(bench.conn.exec_checked("SELECT count(*) FROM pg_prepared_statements").value(0, 0)), "2")
      << "the executor's statements are still there";
}

TEST_P(ExecutorRunner, SessionSettingsOfTheRecordApply) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  auto request = make_request("r1", "k", TxMode::autocommit,
                              {make_statement("SELECT current_setting('TimeZone'), '2024-01-02 03:04:05+00'::timestamptz")});
  request.session.time_zone = "Asia/Tokyo";
  auto report = bench.run(request);
  sp::pg::Connection reference(bench.database.dsn());
  reference.exec_checked("SET TimeZone = 'Asia/Tokyo'");
  auto expected = reference.exec_checked(request.statements[0].sql);
  EXPECT_EQ(report.result.statements[0].result.unordered,
            sp::digest::digest_result(expected.get(), {}).unordered);
  // SET LOCAL: nothing leaks into the connection's next unit.
  EXPECT_NE(bench.conn.exec_checked("SHOW TimeZone").value(0, 0), "Asia/Tokyo");
}

TEST_P(ExecutorRunner, ResultsCarryTypeNamesAndTheShadowCatalogsFacts) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  bench.conn.exec_checked("CREATE TYPE mood AS ENUM ('sad', 'ok')");
  bench.conn.exec_checked(
      "CREATE TABLE events (id int PRIMARY KEY, m mood, seen timestamptz DEFAULT now(), serial_no int GENERATED ALWAYS AS IDENTITY)");
  auto units = std::vector<sp::wire::Request>{
      make_request("w", "k", TxMode::autocommit, {make_statement("INSERT INTO events (id, m) VALUES (1, 'ok')")}),
      make_request("r", "k", TxMode::autocommit,
                   {make_statement("SELECT id, m, seen, serial_no, now() AS asked FROM events ORDER BY id LIMIT 1")})};
  auto reports = bench.run_batch(units);
  ASSERT_EQ(reports.size(), 2u);
  const auto& result = reports[1].result.statements.at(0).result;
  ASSERT_EQ(result.status, Status::ok) << result.message;
  ASSERT_EQ(result.columns.size(), 5u);
  EXPECT_EQ(result.columns[0].type_name, "integer");
  EXPECT_EQ(result.columns[1].type_name, "mood");  // a user type, named from the catalog
  ASSERT_EQ(result.volatile_columns.size(), 2u);
  EXPECT_EQ(result.volatile_columns[0].index, 2u);
  EXPECT_EQ(result.volatile_columns[0].reason, "default now()");
  EXPECT_EQ(result.volatile_columns[1].index, 3u);
  EXPECT_EQ(result.volatile_columns[1].reason, "identity column");
  EXPECT_EQ(result.order_total, std::optional<bool>(true));  // ORDER BY the primary key
  // The encoded record carries them to the comparator.
  auto decoded = sp::wire::decode_result(sp::wire::encode(reports[1].result));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->statements[0].result.volatile_columns, result.volatile_columns);
}

TEST_P(ExecutorRunner, BinaryValuesAndCopyDataAreReplayedAsRecorded) {
  RunnerBench bench(ex::WritesMode::apply, GetParam());
  // A v2 statement as shadow-proxy records asyncpg's: numeric and
  // timestamptz bound in binary with their types, an int in text, results
  // asked for in binary.
  sp::wire::Statement typed = make_statement("SELECT $1::numeric * 2 AS doubled, $2 AS at, $3::int + 1 AS n, "
                                             "date '2024-02-29' AS d");
  const std::string numeric_seven("\0\1\0\0\0\0\0\0\0\7", 10);   // 7
  const std::string epoch_2000(8, '\0');                          // 2000-01-01 00:00:00+00
  typed.params = {numeric_seven, epoch_2000, std::string("41")};
  typed.binding.param_types = {1700, 1184, 0};
  typed.binding.param_formats = {1, 1, 0};
  typed.binding.result_format = 1;
  sp::wire::Statement copy = make_statement("COPY items FROM STDIN");
  copy.copy_data = std::string("30\tcopied\n31\tcopied too\n");
  auto units = std::vector<sp::wire::Request>{
      make_request("typed", "k", TxMode::autocommit, {typed}),
      make_request("copy", "k", TxMode::commit, {insert_item(29, "before"), copy, make_statement("SELECT count(*) FROM items")})};
  // Through the codec, as the executor gets them.
  for (auto& unit : units) unit = sp::wire::decode_request(sp::wire::encode(unit)).value();
  // One at a time: a unit with COPY data runs alone (libpq has no COPY in pipeline mode).
  std::vector<ex::UnitReport> reports;
  for (const auto& unit : units) reports.push_back(bench.run(unit));
  const auto& result = reports[0].result.statements.at(0).result;
  ASSERT_EQ(result.status, Status::ok) << result.message;
  // The digest the primary's side computes over the same binary result.
  const char* values[] = {numeric_seven.data(), epoch_2000.data(), "41"};
  const int lengths[] = {10, 8, 0};
  const int formats[] = {1, 1, 0};
  const Oid types[] = {1700, 1184, 0};
  sp::pg::Result expected(PQexecParams(bench.conn.get(), typed.sql.c_str(), 3, types, values, lengths, formats, 1));
  ASSERT_EQ(expected.status(), PGRES_TUPLES_OK) << expected.error_message();
  const auto digest = sp::digest::digest_result(expected.get(), {});
  EXPECT_EQ(result.ordered, digest.ordered);
  EXPECT_EQ(result.column_digests, digest.column_digests);
  ASSERT_EQ(result.columns.size(), 4u);
  EXPECT_EQ(result.columns[0].format, 1);  // numeric: over its binary bytes
  EXPECT_EQ(result.columns[1].format, 1);  // timestamptz
  EXPECT_EQ(result.columns[2].format, 0);  // int4: rendered as text, as a text result would be
  EXPECT_EQ(result.columns[3].format, 1);  // date
  // Replayed as text instead (what a v1 reader would do), the digest differs.
  sp::pg::Result as_text(PQexecParams(bench.conn.get(), typed.sql.c_str(), 3, types, values, lengths, formats, 0));
  EXPECT_NE(sp::digest::digest_result(as_text.get(), {}).ordered, result.ordered);
  // EXPLAIN binds it the same way (binary bytes sent as text would fail).
  EXPECT_TRUE(bench.runner->explain(units[0], 0).has_value());
  // The COPY ran with its data, inside its unit's transaction.
  const auto& copied = reports[1].result.statements;
  ASSERT_EQ(copied.size(), 3u);
  EXPECT_EQ(copied[1].result.status, Status::ok) << copied[1].result.message;
  EXPECT_EQ(copied[1].result.rows, 2);
  EXPECT_EQ(reports[1].notes[1].disposition, ex::Disposition::executed);
  EXPECT_EQ(bench.count("id >= 29"), 3);
  EXPECT_EQ(bench.count("label = 'copied too'"), 1);
  // Without its data, a COPY FROM STDIN is still refused.
  auto refused = bench.run(make_request("bare", "k", TxMode::autocommit, {make_statement("COPY items FROM STDIN")}));
  EXPECT_EQ(refused.notes.at(0).disposition, ex::Disposition::not_replayable);
}

TEST_P(ExecutorRunner, WritesSkipRunsReadsOnlyAndWritesRollbackKeepsNothing) {
  RunnerBench skip(ex::WritesMode::skip, GetParam());
  auto skipped = skip.run(make_request("r1", "k", TxMode::autocommit, {insert_item(1, "a"), make_statement("SELECT 1")}));
  EXPECT_EQ(skipped.result.statements[0].result.status, Status::refused);
  EXPECT_EQ(skipped.result.statements[0].result.message, ex::kWritesSkippedMessage);
  EXPECT_EQ(skipped.result.statements[1].result.status, Status::ok);
  EXPECT_EQ(skip.count(), 0);

  RunnerBench rollback(ex::WritesMode::rollback, GetParam());
  auto rolled = rollback.run(make_request("r1", "k", TxMode::commit, {insert_item(1, "a")}));
  EXPECT_EQ(rolled.result.statements[0].result.status, Status::ok);
  EXPECT_EQ(rolled.result.statements[0].result.rows, 1);
  EXPECT_EQ(rollback.count(), 0);
  EXPECT_EQ(ex::read_next_offset(rollback.conn, rollback.id), 1);
}

class ExecutorModes : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Modes, ExecutorModes, ::testing::Bool(), mode_name);

TEST_P(ExecutorModes, TwoInstancesKeepPerKeyOrder) {
  Topics topics(4);
  ScratchDatabase shadow(shadow_dsn(), "exec_order");
  ScratchDatabase reference(primary_dsn(), "exec_order_ref");
  const std::string schema = "CREATE TABLE accounts (key text PRIMARY KEY, v bigint NOT NULL, history text NOT NULL)";
  sp::pg::Connection(shadow.dsn()).exec_checked(schema);
  sp::pg::Connection ref(reference.dsn());
  ref.exec_checked(schema);

  // Each step depends on the previous value of the same key: any reordering
  // within a key changes v and history.
  std::vector<sp::wire::Request> requests;
  const int keys = 12, rounds = 150;
  for (int k = 0; k < keys; ++k) {
    const std::string key = "key-" + std::to_string(k);
    requests.push_back(make_request(key + "-init", key, TxMode::autocommit,
                                    {make_statement("INSERT INTO accounts VALUES ($1, 1, '')", {key})}));
  }
  for (int r = 0; r < rounds; ++r) {
    for (int k = 0; k < keys; ++k) {
      const std::string key = "key-" + std::to_string(k);
      requests.push_back(make_request(
          key + "-" + std::to_string(r), key, r % 3 == 0 ? TxMode::commit : TxMode::autocommit,
          {make_statement("UPDATE accounts SET v = (v * 7 + $1::bigint) % 1000003, history = history || $1 || ',' "
                          "WHERE key = $2",
                          {std::to_string(r), key})}));
    }
  }
  const std::string group = unique_name("order-group");
  auto options = base_options(topics, shadow.dsn(), group);
  options.pipeline = GetParam();
  options.executor_id = "first";
  RunningExecutor first(options);
  for (size_t i = 0; i < requests.size() / 2; ++i) topics.produce(requests[i]);
  topics.flush();
  options.executor_id = "second";
  RunningExecutor second(options);  // joins mid-stream: partitions move between them
  // Reads on every key until the second instance has partitions and works.
  size_t probes = 0;
  const auto joined_until = std::chrono::steady_clock::now() + 30s;
  while (second.executor().metrics().units_applied.Value() == 0 && std::chrono::steady_clock::now() < joined_until) {
    for (int k = 0; k < keys; ++k, ++probes) {
      topics.produce(make_request("probe-" + std::to_string(probes), "key-" + std::to_string(k), TxMode::autocommit,
                                  {make_statement("SELECT 1")}));
    }
    topics.flush();
    std::this_thread::sleep_for(100ms);
  }
  for (size_t i = requests.size() / 2; i < requests.size(); ++i) topics.produce(requests[i]);
  topics.flush();
  for (const auto& request : requests) apply_on_reference(ref, request);

  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 45s));
  EXPECT_EQ(table_checksum(shadow.dsn(), "accounts"), table_checksum(reference.dsn(), "accounts"));
  EXPECT_EQ(first.stop(), 0);
  EXPECT_EQ(second.stop(), 0);
  auto results = topics.results_by_request(requests.size() + probes, 20s);
  EXPECT_EQ(results.size(), requests.size() + probes);
  std::set<std::string> executors;
  for (const auto& [id, result] : results) executors.insert(result.executor);
  EXPECT_EQ(executors, (std::set<std::string>{"first", "second"}));
}

TEST(ExecutorIntegration, GuardKeepsEverythingInsideTheShadow) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_guard");
  const auto marker = std::filesystem::temp_directory_path() / (unique_name("guard-marker") + ".txt");
  sp::pg::Connection listener(shadow.dsn());
  listener.exec_checked("LISTEN guard_channel");

  const std::vector<std::string> outside = {
      "NOTIFY guard_channel, 'leak'",
      "SELECT pg_notify('guard_channel', 'leak')",
      "COPY (SELECT 1) TO PROGRAM 'touch " + marker.string() + "'",
      "SELECT * FROM dblink('host=127.0.0.1 dbname=postgres', 'SELECT 1') AS t(x int)",
  };
  std::vector<sp::wire::Statement> statements;
  for (const auto& sql : outside) statements.push_back(make_statement(sql));
  statements.push_back(make_statement("SELECT 42"));
  topics.produce(make_request("guarded", "k", TxMode::autocommit, statements));
  topics.flush();

  const std::string group = unique_name("guard-group");
  RunningExecutor running(base_options(topics, shadow.dsn(), group));
  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 30s));
  auto results = topics.results_by_request(1, 20s);
  ASSERT_EQ(results.count("guarded"), 1u);
  const auto& result = results["guarded"];
  ASSERT_EQ(result.statements.size(), outside.size() + 1);
  for (size_t i = 0; i < outside.size(); ++i) {
    EXPECT_EQ(result.statements[i].result.status, Status::refused) << outside[i];
    EXPECT_NE(result.statements[i].result.message.find("reaches outside"), std::string::npos) << outside[i];
  }
  EXPECT_EQ(result.statements.back().result.status, Status::ok) << result.statements.back().result.message;
  EXPECT_EQ(metric_value(running.executor(), "shadowpipe_executor_statements_not_executed_total{reason=\"reaches_outside\""),
            static_cast<double>(outside.size()));

  // Nothing left the shadow: no notification arrived, no program ran.
  listener.exec_checked("SELECT 1");  // lets libpq read any pending notification
  PQconsumeInput(listener.get());
  PGnotify* notification = PQnotifies(listener.get());
  EXPECT_EQ(notification, nullptr);
  if (notification) PQfreemem(notification);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

// Partition 0 as an earlier owner left it when it crashed after applying
// `count` units but before Kafka acknowledged their results: position
// `count`, the results logged in shadowpipe.results_log, and the requests on
// the topic.
void leave_logged_results(const std::string& shadow_dsn, const std::string& group, Topics& topics, int count) {
  sp::pg::Connection conn(shadow_dsn);
  ex::ensure_schema(conn);
  ex::claim_next_offset(conn, ex::PartitionId{group, topics.requests(), 0}, count);
  for (int offset = 0; offset < count; ++offset) {
    sp::wire::ShadowResult result;
    result.request_id = "logged-" + std::to_string(offset);
    result.key = "k";
    result.executor = "earlier";
    result.source_partition = 0;
    result.source_offset = offset;
    conn.exec_checked("INSERT INTO shadowpipe.results_log VALUES ($1, $2, 0, $3, 'results', ARRAY[$3::bigint], '{k}', ARRAY[$4])",
                      {group, topics.requests(), std::to_string(offset), sp::wire::encode(result)});
    topics.produce_raw("k", sp::wire::encode(make_request("logged-" + std::to_string(offset), "k", TxMode::autocommit,
                                                          {make_statement("SELECT 1")})),
                       0);
  }
  topics.flush();
}

// Results logged but not delivered are re-published on assignment from the
// main thread, which is also the only one polling the producer: with a local
// queue of one record, publish() must serve the delivery reports itself.
TEST(ExecutorIntegration, RepublishingMoreThanTheProducerQueueHoldsDoesNotDeadlock) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_queue");
  const std::string group = unique_name("queue-group");
  constexpr int kLogged = 4;
  leave_logged_results(shadow.dsn(), group, topics, kLogged);
  auto options = base_options(topics, shadow.dsn(), group);
  options.kafka.emplace_back("queue.buffering.max.messages", "1");
  RunningExecutor running(std::move(options));
  auto results = topics.results_by_request(kLogged, 30s);
  EXPECT_EQ(results.size(), static_cast<size_t>(kLogged));
  EXPECT_EQ(running.stop(), 0);
}

// The results log's own write path (BatchLog: offsets, keys and payloads as
// binary arrays, in the statement that moves the partition's offset): an
// owner that committed batches and died before publishing any of their
// results leaves them to the next owner, which publishes exactly those
// records — the committed payloads, not a second execution — and runs the
// rest. Both paths a batch commits by: savepoints (INSERTs) and direct
// (UPDATEs and reads).
TEST(ExecutorIntegration, TheNextOwnerRepublishesExactlyTheResultsABatchCommittedButNeverDelivered) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_relog");
  const std::string group = unique_name("relog-group");
  sp::pg::Connection conn(shadow.dsn());
  ex::ensure_schema(conn);
  conn.exec_checked("CREATE TABLE items (id int PRIMARY KEY, label text)");
  std::vector<sp::wire::Request> requests;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(make_request("insert-" + std::to_string(i), "k", TxMode::autocommit,
                                    {make_statement("INSERT INTO items VALUES ($1, $2)", {std::to_string(i), "it's \\ \"new\""})}));
  }
  for (int i = 0; i < 4; ++i) {
    requests.push_back(make_request("update-" + std::to_string(i), "k", TxMode::autocommit,
                                    {make_statement("UPDATE items SET label = label || '!' WHERE id = $1", {std::to_string(i)}),
                                     make_statement("SELECT label FROM items WHERE id = $1", {std::to_string(i)})}));
  }
  constexpr size_t kCommitted = 8;  // both batches; the rest is the next owner's to run
  for (int i = 0; i < 3; ++i) {
    requests.push_back(make_request("fresh-" + std::to_string(i), "k", TxMode::autocommit,
                                    {make_statement("UPDATE items SET label = label || '?' WHERE id = $1", {std::to_string(i)})}));
  }
  for (const auto& request : requests) topics.produce_raw(request.key, sp::wire::encode(request), 0);
  topics.flush();

  // The earlier owner: two batches committed, nothing published.
  const ex::PartitionId id{group, topics.requests(), 0};
  ex::claim_next_offset(conn, id, 0);
  sp::statement::Analyzer analyzer;
  ex::UnitRunner earlier(conn, ex::RunnerConfig{ex::WritesMode::apply, 0, nullptr, "earlier-owner", nullptr, false,
                                                ex::DirectBatches::safe, false},
                         analyzer);
  std::map<std::string, std::string> logged_by_request;
  for (auto [from, to] : {std::pair<size_t, size_t>{0, 4}, {4, kCommitted}}) {
    std::vector<ex::BatchUnit> units;
    for (size_t i = from; i < to; ++i) units.push_back(ex::BatchUnit{&requests[i], static_cast<int64_t>(i)});
    const size_t direct_before = earlier.direct_batches_run();
    for (auto& report : earlier.run_batch(units, id)) {
      ASSERT_TRUE(report.applied);
      logged_by_request[report.result.request_id] = report.logged_payload;
    }
    EXPECT_EQ(earlier.direct_batches_run() > direct_before, from == 4) << "the second batch runs direct";
  }
  ASSERT_EQ(ex::read_next_offset(conn, id), static_cast<int64_t>(kCommitted));
  const auto logged = ex::logged_records(conn, id, 0);
  ASSERT_EQ(logged.size(), kCommitted);
  for (size_t i = 0; i < kCommitted; ++i) {
    EXPECT_EQ(logged[i].source_offset, static_cast<int64_t>(i));
    EXPECT_EQ(logged[i].key, "k");
    EXPECT_EQ(logged[i].destination, ex::Destination::results);
    EXPECT_EQ(logged[i].payload, logged_by_request[requests[i].request_id]) << "the log keeps the payload byte for byte";
  }

  RunningExecutor running(base_options(topics, shadow.dsn(), group));
  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 30s));
  auto results = topics.results_by_request(requests.size(), 30s);
  ASSERT_EQ(results.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& result = results[requests[i].request_id];
    EXPECT_EQ(result.source_offset, static_cast<int64_t>(i));
    if (i < kCommitted) {
      EXPECT_EQ(result.executor, "earlier-owner") << requests[i].request_id << ": republished, not run again";
      auto decoded = sp::wire::decode_result(logged_by_request[requests[i].request_id]);
      ASSERT_TRUE(decoded.ok());
      EXPECT_EQ(result.statements, decoded.value().statements) << requests[i].request_id;
    } else {
      EXPECT_NE(result.executor, "earlier-owner") << requests[i].request_id;
    }
  }
  // Every unit applied once: each update's '!' once, the fresh ones' '?' once.
  EXPECT_EQ(table_checksum(shadow.dsn(), "(SELECT id, label FROM items ORDER BY id)"),
            table_checksum(shadow.dsn(), "(VALUES (0, 'it''s \\ \"new\"!?'), (1, 'it''s \\ \"new\"!?'),"
                                         " (2, 'it''s \\ \"new\"!?'), (3, 'it''s \\ \"new\"!'))"));
  EXPECT_EQ(running.stop(), 0);
}

// The results log keeps one row per batch (issue 14: the server's cost of
// the log is per row). Its records come back one by one, in offset order, and
// a row goes only once every record in it is below the delivered offset.
TEST(ExecutorResultsLog, ABatchIsOneRowWhoseRecordsComeBackOneByOne) {
  RunnerBench bench(ex::WritesMode::apply);
  std::vector<sp::wire::Request> requests;
  for (int i = 0; i < 5; ++i) requests.push_back(make_request("r" + std::to_string(i), "key-" + std::to_string(i),
                                                              TxMode::autocommit, {insert_item(i, "it's")}));
  const auto reports = bench.run_batch(requests);
  for (const auto& report : reports) ASSERT_TRUE(report.applied);
  auto rows = [&] { return std::string(bench.conn.exec_checked("SELECT count(*) FROM shadowpipe.results_log").value(0, 0)); };
  EXPECT_EQ(rows(), "1") << "one row for the batch";
  const auto logged = ex::logged_records(bench.conn, bench.id, 0);
  ASSERT_EQ(logged.size(), requests.size());
  for (size_t i = 0; i < logged.size(); ++i) {
    EXPECT_EQ(logged[i].source_offset, static_cast<int64_t>(i));
    EXPECT_EQ(logged[i].key, requests[i].key);
    EXPECT_EQ(logged[i].destination, ex::Destination::results);
    EXPECT_EQ(logged[i].payload, reports[i].logged_payload);
  }
  const auto from_three = ex::logged_records(bench.conn, bench.id, 3);
  ASSERT_EQ(from_three.size(), 2u);
  EXPECT_EQ(from_three[0].source_offset, 3);
  EXPECT_EQ(from_three[1].source_offset, 4);
  const auto at_two = ex::logged_record_at(bench.conn, bench.id, 2);
  ASSERT_EQ(at_two.size(), 1u);
  EXPECT_EQ(at_two[0].payload, reports[2].logged_payload);
  EXPECT_TRUE(ex::logged_record_at(bench.conn, bench.id, 5).empty());

  ex::forget_logged_below(bench.conn, bench.id.group, bench.id.topic, {{0, 4}});
  EXPECT_EQ(ex::logged_records(bench.conn, bench.id, 0).size(), 5u) << "offset 4 is not delivered: the row stays whole";
  ex::forget_logged_below(bench.conn, bench.id.group, bench.id.topic, {{1, 5}});
  EXPECT_EQ(rows(), "1") << "another partition's bound";
  ex::forget_logged_below(bench.conn, bench.id.group, bench.id.topic, {{0, 5}});
  EXPECT_EQ(rows(), "0");
}

// Units run again after shadowpipe.applied was lowered by hand: their new
// records replace the old ones at the same offsets — whichever path writes
// them (a batch, a dead letter, a retention gap) — and the records before
// them stay, also those sharing a row with replaced ones.
TEST(ExecutorResultsLog, UnitsRunAgainReplaceTheirRecordsAndKeepTheOnesBefore) {
  RunnerBench bench(ex::WritesMode::apply);
  auto batch = [&](const std::string& stem, int64_t from, int count) {
    std::vector<sp::wire::Request> requests;
    for (int i = 0; i < count; ++i) {
      requests.push_back(make_request(stem + std::to_string(from + i), "k", TxMode::autocommit, {make_statement("SELECT 1")}));
    }
    bench.next = from;
    for (const auto& report : bench.run_batch(requests)) ASSERT_TRUE(report.applied);
  };
  auto lower_applied_to = [&](int64_t offset) {
    bench.conn.exec_checked("UPDATE shadowpipe.applied SET next_offset = " + std::to_string(offset));
  };
  auto logged = [&] {
    std::vector<std::string> seen;
    for (const auto& record : ex::logged_records(bench.conn, bench.id, 0)) {
      const auto decoded = sp::wire::decode_result(record.payload);
      seen.push_back(std::to_string(record.source_offset) + ":" +
                     (decoded.ok() ? decoded.value().request_id : record.payload));
    }
    return seen;
  };
  batch("first-", 0, 4);
  batch("first-", 4, 4);
  lower_applied_to(2);
  batch("again-", 2, 3);  // straddles the first row, ends inside the second
  EXPECT_EQ(logged(), (std::vector<std::string>{"0:first-0", "1:first-1", "2:again-2", "3:again-3", "4:again-4"}))
      << "records from 5 on were taken out with the row that held them: those units run again after 5";

  lower_applied_to(1);
  ASSERT_TRUE(bench.runner->record_dead_letter(bench.id, 1, "k", "dead letter at 1"));
  EXPECT_EQ(logged(), (std::vector<std::string>{"0:first-0", "1:dead letter at 1"}));
  const auto dead = ex::logged_record_at(bench.conn, bench.id, 1);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].destination, ex::Destination::dlq);

  lower_applied_to(0);
  ASSERT_TRUE(ex::record_retention_gap(bench.conn, bench.id, 0, 7, "gap 0..7"));
  EXPECT_EQ(logged(), (std::vector<std::string>{"0:gap 0..7"}));
  EXPECT_EQ(ex::read_next_offset(bench.conn, bench.id), 7);
  EXPECT_FALSE(ex::record_retention_gap(bench.conn, bench.id, 0, 9, "not the next offset any more"));
  EXPECT_FALSE(bench.runner->record_dead_letter(bench.id, 3, "k", "applied before"));
  EXPECT_EQ(logged(), (std::vector<std::string>{"0:gap 0..7"})) << "a refused write takes nothing out";
}

// A new login role without superuser or any grant; its name, an identifier.
std::string create_login_role(const sp::pg::Connection& admin, const std::string& stem) {
  std::string role = unique_name(stem);
  for (auto& c : role) c = c == '-' ? '_' : c;
  admin.exec_checked("CREATE ROLE " + role + " LOGIN NOSUPERUSER");
  return role;
}

// A shadow an earlier executor prepared keeps its results log in the first
// layout (one row per record). Starting this one moves those records into
// the new layout, in place; a role that does not own the table is told what
// to do, and nothing changes.
void create_first_layout_log(const sp::pg::Connection& admin) {
  admin.exec_checked("CREATE SCHEMA IF NOT EXISTS shadowpipe");
  admin.exec_checked(
      "CREATE TABLE shadowpipe.applied (consumer_group text NOT NULL, topic text NOT NULL, partition int NOT NULL,"
      " next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
      " PRIMARY KEY (consumer_group, topic, partition))");
  admin.exec_checked(
      "CREATE TABLE shadowpipe.results_log (consumer_group text NOT NULL, topic text NOT NULL, partition int NOT NULL,"
      " source_offset bigint NOT NULL, destination text NOT NULL CHECK (destination IN ('results', 'dlq')),"
      " record_key text NOT NULL, payload text NOT NULL, PRIMARY KEY (consumer_group, topic, partition, source_offset))");
  admin.exec_checked(
      "INSERT INTO shadowpipe.results_log VALUES ('g', 't', 0, 7, 'results', 'k7', 'seven'),"
      " ('g', 't', 0, 8, 'dlq', 'k8', 'eight'), ('g', 't', 1, 3, 'results', 'k3', 'three')");
  admin.exec_checked("INSERT INTO shadowpipe.applied VALUES ('g', 't', 0, 9), ('g', 't', 1, 4)");
}

TEST(ExecutorResultsLog, AFirstLayoutLogIsUpgradedWithItsRecords) {
  ScratchDatabase shadow(shadow_dsn(), "exec_log_upgrade");
  sp::pg::Connection conn(shadow.dsn());
  create_first_layout_log(conn);
  ex::ensure_schema(conn);
  const ex::PartitionId zero{"g", "t", 0}, one{"g", "t", 1};
  const auto logged = ex::logged_records(conn, zero, 0);
  ASSERT_EQ(logged.size(), 2u);
  EXPECT_EQ(logged[0].source_offset, 7);
  EXPECT_EQ(logged[0].key, "k7");
  EXPECT_EQ(logged[0].payload, "seven");
  EXPECT_EQ(logged[1].destination, ex::Destination::dlq);
  EXPECT_EQ(logged[1].payload, "eight");
  ASSERT_EQ(ex::logged_records(conn, one, 0).size(), 1u);
  EXPECT_EQ(ex::read_next_offset(conn, zero), 9) << "the offsets are untouched";
  EXPECT_EQ(std::string(conn.exec_checked("SELECT to_regclass('shadowpipe.results_log_rows') IS NULL").value(0, 0)), "t");
  ex::ensure_schema(conn);  // a second start finds it ready
  EXPECT_EQ(ex::logged_records(conn, zero, 0).size(), 2u);

  // The executor goes on from there: its next batch is a row of its own.
  sp::statement::Analyzer analyzer;
  ex::UnitRunner runner(conn, ex::RunnerConfig{ex::WritesMode::apply, 0, nullptr, "upgraded", nullptr, false}, analyzer);
  const auto request = make_request("after-upgrade", "k", TxMode::autocommit, {make_statement("SELECT 1")});
  ASSERT_TRUE(runner.run(request, zero, 9).applied);
  EXPECT_EQ(ex::logged_records(conn, zero, 8).size(), 2u);
}

TEST(ExecutorResultsLog, ARoleThatCannotUpgradeTheLogIsToldWhatToDo) {
  ScratchDatabase shadow(shadow_dsn(), "exec_log_upgrade_role");
  std::string role;
  {
    sp::pg::Connection admin(shadow.dsn());
    create_first_layout_log(admin);
    role = create_login_role(admin, "exec_log_role");
    admin.exec_checked("GRANT USAGE ON SCHEMA shadowpipe TO " + role);
    admin.exec_checked("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA shadowpipe TO " + role);
  }
  try {
    ex::ensure_schema(sp::pg::Connection(shadow.dsn() + " user=" + role));
    ADD_FAILURE() << "a role that does not own the first layout's table cannot upgrade it";
  } catch (const sp::Failure& refused) {
    const std::string what = refused.what();
    EXPECT_NE(what.find("shadowpipe.results_log on the shadow has the layout of an earlier shadow_executor"), std::string::npos)
        << what;
    EXPECT_NE(what.find("must be owner"), std::string::npos) << what;
    EXPECT_NE(what.find("as the table's owner"), std::string::npos) << what;
  }
  sp::pg::Connection admin(shadow.dsn());
  EXPECT_EQ(std::string(admin.exec_checked("SELECT count(*) FROM shadowpipe.results_log WHERE payload IS NOT NULL").value(0, 0)),
            "3")
      << "nothing changed";
  admin.exec_checked("DROP OWNED BY " + role);
  admin.exec_checked("DROP ROLE " + role);
}

// A login role with the grants shadow_executor/README.md documents for a
// non-superuser executor, nothing more (no SET on deadlock_timeout); the
// tables it replays into must exist already. Returns its name.
std::string create_executor_role(const sp::pg::Connection& admin, const ScratchDatabase& shadow,
                                 const std::string& stem) {
  const std::string role = create_login_role(admin, stem);
  admin.exec_checked("GRANT CONNECT ON DATABASE " + shadow.name() + " TO " + role);
  admin.exec_checked("CREATE SCHEMA shadowpipe AUTHORIZATION " + role);
  admin.exec_checked("GRANT USAGE ON SCHEMA public TO " + role);
  admin.exec_checked("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role);
  return role;
}

// The executor's own session settings (its synchronous_commit and
// deadlock_timeout, the application_name that names a partition's session)
// survive the RESET ALL that follows a unit which SET something: they are the
// session's startup values, not SETs a RESET undoes. The shadow's default
// here is off and 1s, the executor asks for on and 37 ms.
TEST(ExecutorIntegration, ItsSessionSettingsOutliveATrafficUnitsResetAll) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_settings");
  {
    sp::pg::Connection admin(shadow.dsn());
    admin.exec_checked("CREATE TABLE seen (label text, sync text, deadlock text, app text)");
    ASSERT_EQ(std::string(admin.exec_checked("SHOW synchronous_commit").value(0, 0)), "off");
    ASSERT_EQ(std::string(admin.exec_checked("SHOW deadlock_timeout").value(0, 0)), "1s");
  }
  auto seen = [](const std::string& label) {
    return make_statement("INSERT INTO seen SELECT $1, current_setting('synchronous_commit'), "
                          "current_setting('deadlock_timeout'), current_setting('application_name')",
                          {label});
  };
  topics.produce(make_request("before", "k", TxMode::autocommit, {seen("before")}));
  topics.produce(make_request("set", "k", TxMode::autocommit, {make_statement("SET search_path = public")}));
  topics.produce(make_request("after", "k", TxMode::autocommit, {seen("after")}));
  topics.flush();
  const std::string group = unique_name("settings-group");
  auto options = base_options(topics, shadow.dsn(), group);
  options.synchronous_commit = "on";
  options.deadlock_timeout_ms = 37;
  RunningExecutor running(std::move(options));
  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 30s));
  sp::pg::Connection check(shadow.dsn());
  const auto rows =
      check.exec_checked("SELECT label || ' ' || sync || ' ' || deadlock || ' ' || app FROM seen ORDER BY label DESC");
  ASSERT_EQ(rows.rows(), 2);
  EXPECT_EQ(std::string(rows.value(0, 0)), "before on 37ms shadow-executor/p0");
  EXPECT_EQ(std::string(rows.value(1, 0)), "after on 37ms shadow-executor/p0")
      << "RESET ALL undid the executor's settings";
  EXPECT_EQ(running.stop(), 0);
}

// deadlock_timeout needs a superuser or GRANT SET ON PARAMETER: a role
// without either is refused at connect when it asks for it. The executor
// then connects without it, keeps the server's and applies as before.
TEST(ExecutorIntegration, ARoleThatMayNotSetDeadlockTimeoutKeepsTheServersAndApplies) {
  Topics topics(2);
  ScratchDatabase shadow(shadow_dsn(), "exec_deadlock_role");
  std::string role, server_default;
  {
    sp::pg::Connection admin(shadow.dsn());
    admin.exec_checked("CREATE TABLE seen (label text, deadlock text)");
    role = create_executor_role(admin, shadow, "exec_dl_role");
    server_default = admin.exec_checked("SHOW deadlock_timeout").value(0, 0);
  }
  for (int i = 0; i < 6; ++i) {
    const std::string label = "unit-" + std::to_string(i);
    topics.produce(make_request(label, "key-" + std::to_string(i), TxMode::autocommit,
                                {make_statement("INSERT INTO seen SELECT $1, current_setting('deadlock_timeout')",
                                                {label})}));
  }
  topics.flush();
  auto options = base_options(topics, shadow.dsn() + " user=" + role, unique_name("dl-role-group"));
  options.deadlock_timeout_ms = 37;
  RunningExecutor running(options);
  ASSERT_TRUE(wait_applied(shadow.dsn(), options.group, topics, 30s)) << "the refused setting kept it from connecting";
  sp::pg::Connection check(shadow.dsn());
  const auto rows = check.exec_checked("SELECT count(*), count(*) FILTER (WHERE deadlock = $1) FROM seen",
                                       {server_default});
  EXPECT_EQ(std::string(rows.value(0, 0)), "6");
  EXPECT_EQ(std::string(rows.value(0, 1)), "6") << "every session keeps the server's " << server_default;
  EXPECT_EQ(running.stop(), 0);
}

// Two partitions' units that lock the same two rows in opposite orders,
// which the primary ran at different times, deadlock when the shadow runs
// them at once: the victim is run again, and every unit's result is what it
// was on the primary, not the shadow's deadlock.
TEST(ExecutorIntegration, UnitsThatDeadlockEachOtherOnTheShadowGetTheirOwnResults) {
  Topics topics(2);
  ScratchDatabase shadow(shadow_dsn(), "exec_deadlock");
  {
    sp::pg::Connection admin(shadow.dsn());
    admin.exec_checked("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)");
    admin.exec_checked("INSERT INTO accounts VALUES (1, 0), (2, 0)");
  }
  auto update = [](int id) { return make_statement("UPDATE accounts SET balance = balance + 1 WHERE id = $1",
                                                   {std::to_string(id)}); };
  // Partition 0: row 1, a pause, row 2; partition 1: row 2, a pause, row 1.
  for (int partition : {0, 1}) {
    const int first = partition == 0 ? 1 : 2, second = partition == 0 ? 2 : 1;
    const std::string key = "p" + std::to_string(partition);
    const auto request = make_request(key, key, TxMode::commit,
                                      {update(first), make_statement("SELECT pg_sleep(0.3)"), update(second)});
    topics.produce_raw(key, sp::wire::encode(request), partition);
  }
  topics.flush();
  const auto deadlocks = [&] {
    sp::pg::Connection check(shadow.dsn());
    return std::stoll(std::string(
        check.exec_checked("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").value(0, 0)));
  };
  const auto deadlocks_before = deadlocks();
  auto options = base_options(topics, shadow.dsn(), unique_name("deadlock-group"));
  options.deadlock_timeout_ms = 37;
  RunningExecutor running(options);
  ASSERT_TRUE(wait_applied(shadow.dsn(), options.group, topics, 30s));
  auto results = topics.results_by_request(2, 20s);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& [name, result] : results) {
    for (const auto& statement : result.statements) {
      EXPECT_EQ(statement.result.status, Status::ok)
          << name << ": " << statement.result.sqlstate << " " << statement.result.message;
    }
  }
  EXPECT_EQ(table_checksum(shadow.dsn(), "(SELECT id, balance FROM accounts ORDER BY id)"),
            table_checksum(shadow.dsn(), "(VALUES (1, 2), (2, 2))"));
  // A backend reports its deadlocks to pg_stat_database when idle for a
  // while or when it exits: stop the executor, then read.
  EXPECT_EQ(running.stop(), 0);
  auto seen = deadlocks();
  for (int i = 0; i < 50 && seen == deadlocks_before; ++i) {
    std::this_thread::sleep_for(100ms);
    seen = deadlocks();
  }
  EXPECT_GT(seen, deadlocks_before) << "the units did not deadlock: the test no longer tests the rerun";
}

// The progress stamp (issue 10): every result says below which source offset
// every result already stands in its partition, also for results
// re-published from shadowpipe.results_log on assignment.
TEST(ExecutorIntegration, EveryResultCarriesATrueProgressStamp) {
  Topics topics(2);
  ScratchDatabase shadow(shadow_dsn(), "exec_stamp");
  const std::string group = unique_name("stamp-group");
  constexpr int kLogged = 4, kFresh = 300;
  leave_logged_results(shadow.dsn(), group, topics, kLogged);
  auto options = base_options(topics, shadow.dsn(), group);
  options.batch_units = 4;  // many batches: many stamps to check
  RunningExecutor running(std::move(options));
  // In waves, so that acknowledgements come back between them and the
  // stamps move on.
  for (int i = 0; i < kFresh; ++i) {
    topics.produce(make_request("fresh-" + std::to_string(i), "key-" + std::to_string(i % 7), TxMode::autocommit,
                                {make_statement("SELECT $1::int", {std::to_string(i)})}));
    if (i % 30 == 29) {
      topics.flush();
      std::this_thread::sleep_for(150ms);
    }
  }
  topics.flush();
  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 60s));
  const auto records = topics.read_placed(topics.results(), kLogged + kFresh, 30s);
  ASSERT_GE(records.size(), static_cast<size_t>(kLogged + kFresh));
  const auto highest = check_progress_stamps(records);
  for (const auto& [partition, stamp] : highest) EXPECT_GT(stamp, kLogged) << "partition " << partition;
  EXPECT_EQ(running.stop(), 0);
}

// The gap records of a results topic (each stamped, on the partition it
// announces) and the request ids of its results.
std::pair<std::vector<sp::wire::Gap>, std::set<std::string>> gaps_and_results(
    const std::vector<Topics::Placed>& records) {
  std::vector<sp::wire::Gap> gaps;
  std::set<std::string> ids;
  for (const auto& record : records) {
    if (sp::wire::is_gap_record(record.payload)) {
      auto gap = sp::wire::decode_gap(record.payload);
      EXPECT_TRUE(gap.ok()) << record.payload;
      if (!gap.ok()) continue;
      EXPECT_NE(record.payload.find("\"published_below\":"), std::string::npos) << record.payload;
      EXPECT_EQ(record.partition, gap->partition);
      gaps.push_back(gap.value());
    } else if (auto result = sp::wire::decode_result(record.payload); result.ok()) {
      ids.insert(result->request_id);
    }
  }
  return {gaps, ids};
}

// Gaps are never silent (issue 10): requests retention deleted while the
// executor was down are announced once, as a gap record on the results
// topic (same partition, stamped), counted, and the executor continues from
// the earliest offset left. A gap record a recorder put on the requests
// topic is passed over: applied once, no dead letter.
TEST(ExecutorIntegration, ARetentionGapIsAnnouncedOnceAndARecordersGapIsPassedOver) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_gap");
  const std::string group = unique_name("gap-group");
  auto request = [](int i) {
    return make_request("r-" + std::to_string(i), "k", TxMode::autocommit,
                        {make_statement("SELECT $1::int", {std::to_string(i)})});
  };
  for (int i = 0; i < 10; ++i) topics.produce(request(i));
  sp::wire::Gap dropped;
  dropped.ts_us = sp::wire::now_us();
  dropped.source = "app@host";
  dropped.reason = "producer_dropped";
  dropped.partition = 0;
  dropped.units = 3;
  dropped.write_units = 3;
  topics.produce_raw("", sp::wire::encode(dropped), 0);  // offset 10
  topics.flush();
  {
    RunningExecutor running(base_options(topics, shadow.dsn(), group));
    ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 30s));
    EXPECT_EQ(metric_value(running.executor(), "shadowpipe_executor_gap_records_passed_total"), 1);
    EXPECT_EQ(metric_value(running.executor(), "shadowpipe_executor_dead_letters_total"), 0);
    EXPECT_EQ(running.stop(), 0);
  }
  // Down: 20 more requests (offsets 11..30), of which retention takes 11..25.
  for (int i = 11; i < 31; ++i) topics.produce(request(i));
  topics.flush();
  delete_records(topics.requests(), 0, 26);
  for (int run = 0; run < 2; ++run) {  // the second start finds no gap left to announce
    RunningExecutor running(base_options(topics, shadow.dsn(), group));
    ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 30s));
    EXPECT_EQ(metric_value(running.executor(), "shadowpipe_executor_gap_units_total{reason=\"retention\"}"),
              run == 0 ? 15 : 0);
    // Its records delivered and committed before the next start.
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(running.stop(), 0);
  }
  const auto records = topics.read_placed(topics.results(), 10 + 1 + 5, 30s);
  const auto [gaps, ids] = gaps_and_results(records);
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].reason, "retention");
  EXPECT_EQ(gaps[0].partition, 0);
  EXPECT_EQ(gaps[0].from_offset, 11);
  EXPECT_EQ(gaps[0].to_offset, 26);
  EXPECT_EQ(gaps[0].units, 15u);
  EXPECT_EQ(ids.size(), 15u);  // r-0..r-9 and r-26..r-30
  EXPECT_TRUE(ids.contains("r-26") && ids.contains("r-30") && !ids.contains("r-25"));
  // Offset 10 (the recorder's gap) has no result and the stamps stay true.
  check_progress_stamps(records, {{0, 10}});
  EXPECT_TRUE(topics.read_all(topics.dlq(), 1, 3s).empty()) << "a gap record is not a bad record";
}


// One partition: a slow first unit, then 20 requests; while the executor
// runs the slow one, retention deletes offsets 0..14. `bound` sets what
// makes it pause behind the slow unit, so it has fetched little; what it
// published, and the gap units it counted, are for the test to judge.
struct OvertakenByRetention {
  std::vector<Topics::Placed> records;
  std::vector<sp::wire::Gap> gaps;
  std::set<std::string> ids;
  double announced = 0;  // shadowpipe_executor_gap_units_total{reason="retention"}
};
OvertakenByRetention run_overtaken_by_retention(const std::string& stem,
                                                const std::function<void(ex::Options&)>& bound) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_" + stem);
  const std::string group = unique_name(stem + "-group");
  topics.produce(make_request("slow", "k", TxMode::autocommit, {make_statement("SELECT pg_sleep(4)")}));
  for (int i = 1; i <= 20; ++i) {
    topics.produce(make_request("r-" + std::to_string(i), "k", TxMode::autocommit,
                                {make_statement("SELECT $1::int", {std::to_string(i)})}));
  }
  topics.flush();
  auto options = base_options(topics, shadow.dsn(), group);
  bound(options);
  RunningExecutor running(std::move(options));
  OvertakenByRetention run;
  {
    // Until the slow unit runs. The group's first assignment can take long on
    // a loaded machine; deleting before it would test nothing (the executor
    // would start where retention left off), so that is a failure of its own.
    sp::pg::Connection conn(shadow.dsn());
    const auto until = std::chrono::steady_clock::now() + 90s;
    bool running_slow_unit = false;
    while (!running_slow_unit && std::chrono::steady_clock::now() < until) {
      running_slow_unit =
          conn.exec_checked("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(4)'").value(0, 0) != "0";
      if (!running_slow_unit) std::this_thread::sleep_for(20ms);
    }
    if (!running_slow_unit) {
      ADD_FAILURE() << "the executor did not run the slow unit within 90 s: not assigned?";
      return run;
    }
  }
  delete_records(topics.requests(), 0, 15);
  EXPECT_TRUE(wait_applied(shadow.dsn(), group, topics, 30s));
  run.announced = metric_value(running.executor(), "shadowpipe_executor_gap_units_total{reason=\"retention\"}");
  EXPECT_EQ(running.stop(), 0);
  run.records = topics.read_placed(topics.results(), 1 + 1 + 6, 30s);
  std::tie(run.gaps, run.ids) = gaps_and_results(run.records);
  return run;
}

// A partition is paused when its queue holds --queue-bytes, however few
// units that is: behind a slow unit, the executor holds the first request or
// two, not the topic. Shown by retention deleting records meanwhile: what a
// paused partition had not fetched is announced as a gap, not applied.
TEST(ExecutorIntegration, AQueueFullByBytesPausesItsPartition) {
  const auto run = run_overtaken_by_retention("queue-bytes", [](ex::Options& options) {
    options.queue_bytes = 1;  // every request is more: paused after each
    ASSERT_GE(options.queue_capacity, 1000u) << "the unit bound alone would pause it";
  });
  ASSERT_EQ(run.gaps.size(), 1u) << "the partition was not paused: it had fetched what retention deleted";
  EXPECT_LE(run.gaps[0].from_offset, 3);
  EXPECT_EQ(run.gaps[0].to_offset, 15);
  EXPECT_EQ(run.ids.size() + run.gaps[0].units, 21u);
}

// Retention overtaking a running executor (issue 10): while the partition
// is paused behind a slow unit, the requests after it are deleted; librdkafka
// resumes at the earliest offset left, and the worker announces the skipped
// offsets as a gap record instead of applying on silently.
TEST(ExecutorIntegration, RetentionOvertakingARunningExecutorIsAnnouncedAsAGap) {
  const auto run = run_overtaken_by_retention("gap-running", [](ex::Options& options) {
    options.queue_capacity = 1;  // paused behind the slow unit: little else prefetched
  });
  ASSERT_EQ(run.gaps.size(), 1u);
  // The gap starts after what the executor had received before the pause
  // took effect (the slow unit, sometimes one more), and ends where
  // retention left off; every offset has a result or is in the gap.
  EXPECT_GE(run.gaps[0].from_offset, 1);
  EXPECT_LE(run.gaps[0].from_offset, 3);
  EXPECT_EQ(run.gaps[0].to_offset, 15);
  EXPECT_EQ(run.gaps[0].units, static_cast<uint64_t>(run.gaps[0].to_offset - run.gaps[0].from_offset));
  EXPECT_EQ(run.announced, static_cast<double>(run.gaps[0].units));
  EXPECT_EQ(run.ids.size() + run.gaps[0].units, 21u);
  for (int i = 15; i <= 20; ++i) EXPECT_TRUE(run.ids.contains("r-" + std::to_string(i))) << i;
  check_progress_stamps(run.records);
}

// A record the producer refuses outright (here: larger than message.max.bytes)
// is retried, not forgotten: forgotten, its offset would stay undelivered and
// block the partition's Kafka commits for good.
TEST(ExecutorIntegration, ARecordTheProducerRefusesIsRetried) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_refused");
  topics.produce(make_request("big-key", std::string(4000, 'k'), TxMode::autocommit, {make_statement("SELECT 1")}));
  topics.flush();
  const std::string group = unique_name("refused-group");
  auto options = base_options(topics, shadow.dsn(), group);
  options.kafka.emplace_back("message.max.bytes", "2000");
  RunningExecutor running(std::move(options));
  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 30s));
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (metric_value(running.executor(), "shadowpipe_executor_delivery_failures_total") < 3 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GE(metric_value(running.executor(), "shadowpipe_executor_delivery_failures_total"), 3);
  EXPECT_EQ(running.stop(), 0);
}

// A unit that fails again and again without a connection loss (here: its
// result cannot be logged) must not block its partition: after a few
// attempts its batch runs unit by unit and the unit is recorded as not
// replayed; the units around it are applied.
TEST(ExecutorIntegration, APoisonUnitIsRecordedAsNotReplayedAndThePartitionMovesOn) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_poison");
  {
    sp::pg::Connection conn(shadow.dsn());
    ex::ensure_schema(conn);
    conn.exec_checked("CREATE TABLE items (id int PRIMARY KEY, label text)");
    conn.exec_checked(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.payloads::text LIKE '%poison%' AND NEW.payloads::text NOT LIKE '%not replayed%' THEN "
        "RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$");
    conn.exec_checked("CREATE TRIGGER poison BEFORE INSERT ON shadowpipe.results_log FOR EACH ROW EXECUTE FUNCTION poison()");
  }
  for (const char* id : {"before", "poison", "after"}) {
    topics.produce(make_request(id, "k", TxMode::autocommit,
                                {make_statement("INSERT INTO items VALUES ($1, $2)",
                                                {std::to_string(std::string_view(id).size()), id})}));
  }
  topics.flush();
  const std::string group = unique_name("poison-group");
  RunningExecutor running(base_options(topics, shadow.dsn(), group));
  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 60s));
  auto results = topics.results_by_request(3, 20s);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results["before"].statements.at(0).result.status, Status::ok);
  EXPECT_EQ(results["after"].statements.at(0).result.status, Status::ok);
  const auto& poisoned = results["poison"].statements.at(0).result;
  EXPECT_EQ(poisoned.status, Status::error);
  EXPECT_EQ(poisoned.sqlstate, ex::kNotReplayedSqlstate);
  EXPECT_NE(poisoned.message.find("poisoned"), std::string::npos) << poisoned.message;
  EXPECT_EQ(table_checksum(shadow.dsn(), "(SELECT label FROM items ORDER BY label)"),
            table_checksum(shadow.dsn(), "(VALUES ('after'), ('before'))"));
  EXPECT_EQ(running.stop(), 0);
}

// Passing refusals of the shadow (issue 10) are retried, never a unit's
// error nor counted toward its failure limit: a serialization failure on a
// statement, disk full at COMMIT, disk full while logging the result, each
// more times than kMaxFailedAttempts.
TEST(ExecutorIntegration, TransientRefusalsAreRetriedNotRecorded) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_transient");
  {
    sp::pg::Connection conn(shadow.dsn());
    ex::ensure_schema(conn);
    conn.exec_checked("CREATE TABLE items (id int PRIMARY KEY, label text)");
    // Sequences are not rolled back: each counts attempts across retries.
    conn.exec_checked("CREATE SEQUENCE statement_attempts; CREATE SEQUENCE commit_attempts; CREATE SEQUENCE log_attempts");
    conn.exec_checked(
        "CREATE FUNCTION flaky_statement() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id = 1 AND nextval('statement_attempts') <= 5 THEN "
        "RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END IF; RETURN NEW; END $$");
    conn.exec_checked("CREATE TRIGGER flaky_statement BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION flaky_statement()");
    conn.exec_checked(
        "CREATE FUNCTION flaky_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id = 2 AND nextval('commit_attempts') <= 5 THEN "
        "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END IF; "
        "RETURN NULL; END $$");
    conn.exec_checked(
        "CREATE CONSTRAINT TRIGGER flaky_commit AFTER INSERT ON items DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW EXECUTE FUNCTION flaky_commit()");
    conn.exec_checked(
        "CREATE FUNCTION flaky_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF EXISTS (SELECT FROM unnest(NEW.payloads) AS p WHERE p LIKE '%\"request_id\":\"log\"%')"
        " AND nextval('log_attempts') <= 5 THEN "
        "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END IF; "
        "RETURN NEW; END $$");
    conn.exec_checked("CREATE TRIGGER flaky_log BEFORE INSERT ON shadowpipe.results_log FOR EACH ROW EXECUTE FUNCTION flaky_log()");
  }
  int id = 0;
  for (const char* name : {"statement", "commit", "log"}) {
    topics.produce(make_request(name, "k", TxMode::commit,
                                {make_statement("INSERT INTO items VALUES ($1, $2)", {std::to_string(++id), name})}));
  }
  topics.flush();
  const std::string group = unique_name("transient-group");
  RunningExecutor running(base_options(topics, shadow.dsn(), group));
  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 90s));
  auto results = topics.results_by_request(3, 20s);
  ASSERT_EQ(results.size(), 3u);
  for (const char* name : {"statement", "commit", "log"}) {
    const auto& result = results[name].statements.at(0).result;
    EXPECT_EQ(result.status, Status::ok) << name << ": " << result.sqlstate << " " << result.message;
  }
  EXPECT_EQ(table_checksum(shadow.dsn(), "(SELECT label FROM items ORDER BY id)"),
            table_checksum(shadow.dsn(), "(VALUES ('statement'), ('commit'), ('log'))"));
  EXPECT_EQ(running.stop(), 0);
}

TEST(ExecutorIntegration, NonSuperuserTimeoutsPlansAndDeadLetters) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "exec_role");
  std::string role;
  {
    sp::pg::Connection admin(shadow.dsn());
    admin.exec_checked("CREATE TABLE big (id int PRIMARY KEY, payload text)");
    admin.exec_checked("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 2000) g");
    role = create_executor_role(admin, shadow, "exec_role");
  }
  auto options = base_options(topics, shadow.dsn() + " user=" + role, unique_name("role-group"));
  options.statement_timeout_ms = 300;
  options.limits.max_sql_bytes = 1000;

  topics.produce(make_request("slow", "k", TxMode::autocommit, {make_statement("SELECT pg_sleep(3)")}));
  topics.produce_raw("k", "{this is not json");
  topics.produce(make_request("oversized", "k", TxMode::autocommit,
                              {make_statement("SELECT '" + std::string(2000, 'x') + "'")}));
  topics.produce(make_request("scan", "k", TxMode::autocommit,
                              {make_statement("SELECT count(*) FROM big WHERE payload LIKE $1", {"a%"})}));
  // SQL that does not parse: the whole unit is a dead letter, as the
  // comparator makes it (README), and never reaches the shadow.
  topics.produce(make_request("unparsable", "k", TxMode::autocommit,
                              {make_statement("SELECT 1"), make_statement("SELEC 2 FORM nowhere")}));
  topics.flush();

  RunningExecutor running(options);
  ASSERT_TRUE(wait_applied(shadow.dsn(), options.group, topics, 30s));
  auto results = topics.results_by_request(4, 20s);
  ASSERT_EQ(results.size(), 4u);
  // A dead-lettered unit whose request id is readable has a `refused`
  // result, so the comparator sees a decision instead of a hole.
  for (const char* refused : {"oversized", "unparsable"}) {
    const auto& result = results[refused];
    ASSERT_FALSE(result.statements.empty()) << refused;
    for (const auto& statement : result.statements) {
      EXPECT_EQ(statement.result.status, Status::refused) << refused;
      EXPECT_NE(statement.result.message.find("dead-letter"), std::string::npos) << statement.result.message;
    }
  }
  EXPECT_EQ(results["oversized"].source_offset, 2);
  EXPECT_EQ(results["unparsable"].source_offset, 4);
  EXPECT_EQ(results["unparsable"].statements.size(), 2u);
  // Offset 1 (not JSON) has no result; every other offset's result stands
  // before any stamp that passes it.
  check_progress_stamps(topics.read_placed(topics.results(), 4, 20s), {{0, 1}});
  EXPECT_EQ(results["slow"].statements.at(0).result.status, Status::error);
  EXPECT_EQ(results["slow"].statements.at(0).result.sqlstate, "57014");
  EXPECT_EQ(results["slow"].source_offset, 0);
  const auto& scan = results["scan"].statements.at(0);
  EXPECT_EQ(scan.result.status, Status::ok);
  EXPECT_EQ(scan.result.rows, 1);
  ASSERT_TRUE(scan.plan.has_value()) << "a fingerprint's first execution is explained";
  EXPECT_EQ(scan.plan->seq_scans, std::vector<std::string>{"big"});
  EXPECT_GT(scan.plan->total_cost, 0);
  EXPECT_EQ(results["scan"].source_offset, 3);

  std::vector<sp::wire::DeadLetter> letters;
  for (const auto& payload : topics.read_all(topics.dlq(), 3, 20s)) {
    auto decoded = sp::wire::decode_dead_letter(payload);
    ASSERT_TRUE(decoded.ok()) << decoded.error().describe();
    letters.push_back(decoded.value());
  }
  ASSERT_EQ(letters.size(), 3u);
  std::sort(letters.begin(), letters.end(), [](auto& a, auto& b) { return a.source_offset < b.source_offset; });
  EXPECT_EQ(letters[0].source_topic, topics.requests());
  EXPECT_EQ(letters[0].source_partition, 0);
  EXPECT_EQ(letters[0].source_offset, 1);
  EXPECT_EQ(letters[0].error_code, "malformed");
  EXPECT_EQ(letters[0].payload, "{this is not json");
  EXPECT_EQ(letters[0].payload_bytes, 17u);
  EXPECT_EQ(letters[1].source_offset, 2);
  EXPECT_EQ(letters[1].error_code, "too_large");
  EXPECT_EQ(letters[1].field, "statements[0].sql");
  EXPECT_EQ(letters[2].source_offset, 4);
  EXPECT_EQ(letters[2].field, "statements[1].sql");
  EXPECT_NE(letters[0].consumer.find("shadow-executor"), std::string::npos);
  EXPECT_EQ(metric_value(running.executor(), "shadowpipe_executor_dead_letters_total"), 3);
  EXPECT_EQ(metric_value(running.executor(), "shadowpipe_executor_statement_errors_total{sqlstate=\"57014\"}"), 1);
  EXPECT_EQ(running.stop(), 0);
  // The executor's own state is owned by the unprivileged role.
  sp::pg::Connection admin(shadow.dsn());
  EXPECT_EQ(admin.exec_checked("SELECT tableowner FROM pg_tables WHERE schemaname = 'shadowpipe' AND tablename = 'applied'")
                .value(0, 0),
            role);
  admin.exec_checked("DROP SCHEMA shadowpipe CASCADE");
  admin.exec_checked("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM " + role);
  admin.exec_checked("REVOKE ALL ON SCHEMA public FROM " + role);
  admin.exec_checked("REVOKE ALL ON DATABASE " + shadow.name() + " FROM " + role);
  admin.exec_checked("DROP ROLE " + role);
}

TEST_P(ExecutorModes, ReconnectsAfterTheBackendIsTerminatedAndAppliesOnce) {
  // A terminated backend is a real dropped connection (the server closes the
  // socket); restarting the shared shadow server would disturb other tests.
  Topics topics(2);
  ScratchDatabase shadow(shadow_dsn(), "exec_reconnect");
  ScratchDatabase reference(primary_dsn(), "exec_reconnect_ref");
  const std::string schema = "CREATE TABLE counters (key text PRIMARY KEY, n bigint NOT NULL)";
  sp::pg::Connection admin(shadow.dsn());
  admin.exec_checked(schema);
  sp::pg::Connection ref(reference.dsn());
  ref.exec_checked(schema);
  std::vector<sp::wire::Request> requests;
  for (int k = 0; k < 6; ++k) {
    const std::string key = "k" + std::to_string(k);
    requests.push_back(make_request(key + "-init", key, TxMode::autocommit,
                                    {make_statement("INSERT INTO counters VALUES ($1, 0)", {key})}));
  }
  for (int i = 0; i < 1200; ++i) {
    const std::string key = "k" + std::to_string(i % 6);
    requests.push_back(make_request("r" + std::to_string(i), key, TxMode::commit,
                                    {make_statement("UPDATE counters SET n = (n * 3 + 1) % 1000000007 WHERE key = $1", {key}),
                                     make_statement("SELECT n FROM counters WHERE key = $1", {key})}));
  }
  for (const auto& request : requests) topics.produce(request);
  topics.flush();
  for (const auto& request : requests) apply_on_reference(ref, request);

  const std::string group = unique_name("reconnect-group");
  auto options = base_options(topics, shadow.dsn(), group);
  options.pipeline = GetParam();
  RunningExecutor running(options);
  // Each termination lands once the executor applied a further share of the
  // stream, however slow the machine: a timer may hit an executor that has
  // not started or one that is already done. A termination proves something
  // only when it found an executor backend and work was left: 0 < applied < end.
  const int64_t end = topics.requests_end();
  std::string progress;
  int mid_stream = 0;
  const auto until = std::chrono::steady_clock::now() + 30s;
  for (int64_t target : {end / 6, end / 3, end / 2}) {
    while (applied_total(admin, group, topics.requests()) < target && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(5ms);
    }
    auto killed = admin.exec_checked(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name LIKE 'shadow-executor/p%' AND pid <> pg_backend_pid()");
    const int terminated = std::stoi(std::string(killed.value(0, 0)));
    const int64_t applied = applied_total(admin, group, topics.requests());
    progress += std::to_string(terminated) + " at " + std::to_string(applied) + "/" + std::to_string(end) + "; ";
    mid_stream += terminated > 0 && applied > 0 && applied < end;
  }
  std::cout << "backends terminated: " << progress << std::endl;
  EXPECT_GE(mid_stream, 1) << "no termination hit an executor backend while work was left: " << progress;
  ASSERT_TRUE(wait_applied(shadow.dsn(), group, topics, 40s));
  EXPECT_EQ(table_checksum(shadow.dsn(), "counters"), table_checksum(reference.dsn(), "counters"));
  EXPECT_GE(metric_value(running.executor(), "shadowpipe_executor_reconnects_total"), 1);
  EXPECT_EQ(running.stop(), 0);
  EXPECT_EQ(topics.results_by_request(requests.size(), 20s).size(), requests.size());
}
