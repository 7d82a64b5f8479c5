// The unit runner's policy and retry logic over a fake session (no server):
// each case runs with the plain and the pipelined transport where both
// apply, since they are one savepoint engine and must agree.
#include "fake_session.hpp"

#include "shadow_executor/unit_runner.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace sp = shadowpipe;
namespace ex = shadowpipe::executor;
using sp::Transient;
using sp::testing::FakeSession;
using sp::wire::Status;
using sp::wire::TxMode;

namespace {

sp::wire::Request request(TxMode tx, const std::vector<std::string>& statements) {
  sp::wire::Request out;
  out.request_id = "r";
  out.key = "k";
  out.tx = tx;
  for (const auto& sql : statements) out.statements.push_back(sp::wire::Statement{sql, {}, "", {}});
  return out;
}

class Runner : public ::testing::TestWithParam<bool> {
 protected:
  ex::UnitReport run(const sp::wire::Request& unit) { return runner().run(unit, id, offset++); }
  std::vector<ex::UnitReport> run_batch(const std::vector<sp::wire::Request>& units) {
    std::vector<ex::BatchUnit> batch;
    for (const auto& unit : units) batch.push_back(ex::BatchUnit{&unit, offset++});
    return runner().run_batch(batch, id);
  }
  ex::UnitRunner& runner() {
    if (!runner_) {
      runner_ = std::make_unique<ex::UnitRunner>(
          session, ex::RunnerConfig{ex::WritesMode::apply, 0, nullptr, "test", nullptr, GetParam()}, analyzer);
    }
    return *runner_;
  }
  static std::vector<Status> statuses(const ex::UnitReport& report) {
    std::vector<Status> out;
    for (const auto& statement : report.result.statements) out.push_back(statement.result.status);
    return out;
  }

  FakeSession session;
  sp::statement::Analyzer analyzer;
  ex::PartitionId id{"group", "topic", 0};
  int64_t offset = 0;
  std::unique_ptr<ex::UnitRunner> runner_;
};

TEST_P(Runner, AStatementErrorIsRolledBackToTheSavepointAndTheAutocommitUnitGoesOn) {
  session.fail_always["INSERT INTO t VALUES (2)"] = "23505";
  auto report = run(request(TxMode::autocommit, {"INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)",
                                                 "INSERT INTO t VALUES (3)"}));
  EXPECT_TRUE(report.applied);
  EXPECT_EQ(statuses(report), (std::vector<Status>{Status::ok, Status::error, Status::ok}));
  EXPECT_EQ(report.result.statements[1].result.sqlstate, "23505");
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 3}));
  EXPECT_EQ(session.committed.next_offset, 1);
  EXPECT_EQ(session.committed.logged, 1);
}

TEST_P(Runner, AFailedTransactionUnitIsUndoneAndTheNextUnitOfTheBatchKept) {
  session.fail_always["INSERT INTO t VALUES (2)"] = "23505";
  auto reports = run_batch({request(TxMode::commit, {"INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)",
                                                     "INSERT INTO t VALUES (3)"}),
                            request(TxMode::commit, {"INSERT INTO t VALUES (4)"})});
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(statuses(reports[0]), (std::vector<Status>{Status::ok, Status::error, Status::error}));
  EXPECT_EQ(reports[0].result.statements[2].result.sqlstate, ex::kAbortedSqlstate) << "not reached, as on the primary";
  EXPECT_EQ(reports[0].notes[2].disposition, ex::Disposition::not_reached);
  EXPECT_EQ(statuses(reports[1]), (std::vector<Status>{Status::ok}));
  EXPECT_EQ(session.committed.rows, (std::set<int>{4})) << "the failed unit's first insert is undone";
  EXPECT_EQ(session.committed.next_offset, 2);
  EXPECT_EQ(session.committed.logged, 2);
  EXPECT_EQ(session.begins, 1) << "one transaction for the batch";
}

TEST_P(Runner, ARolledBackUnitRunsButKeepsNothing) {
  auto reports = run_batch({request(TxMode::rollback, {"INSERT INTO t VALUES (1)"}),
                            request(TxMode::autocommit, {"INSERT INTO t VALUES (2)"})});
  EXPECT_EQ(statuses(reports[0]), (std::vector<Status>{Status::ok}));
  EXPECT_EQ(session.committed.rows, (std::set<int>{2}));
}

// The runner's one retryable error, with the cause the worker acts on.
template <class Work>
void expect_transient(Transient::Cause cause, Work work, const std::string& context = "") {
  try {
    work();
    ADD_FAILURE() << "no Transient thrown " << context;
  } catch (const Transient& transient) {
    EXPECT_EQ(transient.cause(), cause) << transient.what() << " " << context;
  }
}

TEST_P(Runner, ATransientErrorRetriesTheUnitAndNeverBecomesItsResult) {
  for (const char* sqlstate : {"40001", "57P01", "40P01", "53300"}) {
    session.fail_once["INSERT INTO t VALUES (1)"] = sqlstate;
    const auto unit = request(TxMode::commit, {"INSERT INTO t VALUES (1)"});
    expect_transient(Transient::Cause::refused_for_now, [&] { (void)runner().run(unit, id, offset); }, sqlstate);
    EXPECT_TRUE(session.committed.rows.empty()) << sqlstate;
    EXPECT_EQ(session.committed.next_offset, offset) << "nothing recorded for " << sqlstate;
    EXPECT_EQ(session.committed.logged, offset);
    auto report = run(unit);  // the worker's retry
    EXPECT_EQ(statuses(report), (std::vector<Status>{Status::ok})) << sqlstate;
    EXPECT_EQ(session.committed.rows, (std::set<int>{1}));
    session.committed.rows.clear();
  }
}

TEST_P(Runner, ATransientErrorThePrimaryAlsoHadIsTheUnitsResult) {
  auto unit = request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"});
  unit.statements[0].result.status = Status::error;
  unit.statements[0].result.sqlstate = "40001";
  session.fail_once["INSERT INTO t VALUES (1)"] = "40001";
  auto report = run(unit);
  EXPECT_TRUE(report.applied);
  EXPECT_EQ(report.result.statements[0].result.sqlstate, "40001");
}

TEST_P(Runner, ADeadlockInABatchRunsItsUnitsOnePerTransaction) {
  session.fail_once["INSERT INTO t VALUES (2)"] = "40P01";
  auto reports = run_batch({request(TxMode::commit, {"INSERT INTO t VALUES (1)"}),
                            request(TxMode::commit, {"INSERT INTO t VALUES (2)"})});
  EXPECT_EQ(statuses(reports[0]), (std::vector<Status>{Status::ok}));
  EXPECT_EQ(statuses(reports[1]), (std::vector<Status>{Status::ok})) << "an artefact of the batch, not the unit's";
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 2}));
  EXPECT_EQ(session.begins, 3) << "the batch, then each unit alone";
}

TEST_P(Runner, ACommitLostIsRetriedNotRecorded) {
  const auto unit = request(TxMode::commit, {"INSERT INTO t VALUES (1)"});
  session.commit_fails_once = "08006";
  expect_transient(Transient::Cause::connection_lost, [&] { (void)runner().run(unit, id, 0); });
  EXPECT_TRUE(session.committed.rows.empty());
  EXPECT_EQ(session.committed.next_offset, 0);
  auto report = runner().run(unit, id, 0);
  EXPECT_TRUE(report.applied);
  EXPECT_EQ(statuses(report), (std::vector<Status>{Status::ok}));
  EXPECT_EQ(session.committed.next_offset, 1);
}

TEST_P(Runner, ACommitCancelledOrCutIsRetriedNotRecorded) {
  const auto unit = request(TxMode::commit, {"INSERT INTO t VALUES (1)"});
  for (const char* sqlstate : {"57014", "57P01", "08003"}) {  // answered, the connection still up
    session.commit_fails_once = sqlstate;
    expect_transient(Transient::Cause::connection_lost, [&] { (void)runner().run(unit, id, 0); }, sqlstate);
    EXPECT_EQ(session.committed.next_offset, 0) << sqlstate;
    EXPECT_EQ(session.committed.logged, 0) << sqlstate;
  }
  EXPECT_EQ(statuses(runner().run(unit, id, 0)), (std::vector<Status>{Status::ok}));
}

TEST_P(Runner, ACommitRefusedForAPassingCauseIsRetried) {
  const auto unit = request(TxMode::commit, {"INSERT INTO t VALUES (1)"});
  session.commit_fails_once = "40001";
  expect_transient(Transient::Cause::refused_for_now, [&] { (void)runner().run(unit, id, 0); });
  EXPECT_EQ(session.committed.next_offset, 0);
  EXPECT_EQ(statuses(runner().run(unit, id, 0)), (std::vector<Status>{Status::ok}));
}

TEST_P(Runner, ACommitRefusedByADeferredConstraintIsTheUnitsResult) {
  session.commit_fails_once = "23503";
  auto report = run(request(TxMode::commit, {"INSERT INTO t VALUES (1)", "SELECT 1"}));
  EXPECT_TRUE(report.applied);
  EXPECT_EQ(report.result.statements[1].result.sqlstate, "23503") << "on the last statement the server ran";
  EXPECT_NE(report.result.statements[1].result.message.find("at COMMIT"), std::string::npos);
  EXPECT_TRUE(session.committed.rows.empty());
  EXPECT_EQ(session.committed.next_offset, 1);
  EXPECT_EQ(session.committed.logged, 1);
}

TEST_P(Runner, UnitsAppliedBeforeAreNotRunAgain) {
  session.committed.next_offset = 1;
  auto reports = run_batch({request(TxMode::commit, {"INSERT INTO t VALUES (1)"}),
                            request(TxMode::commit, {"INSERT INTO t VALUES (2)"})});
  EXPECT_FALSE(reports[0].applied);
  EXPECT_TRUE(reports[1].applied);
  EXPECT_EQ(session.committed.rows, (std::set<int>{2}));
}

// The statements every batch runs are parsed and planned once a connection
// (they were 260 us of the server's CPU a batch), and their loss never
// becomes a unit's result, a moved fence or a skipped unit.
size_t count_sent(const FakeSession& session, const std::string& prefix) { return session.sent_starting(prefix).size(); }

TEST_P(Runner, TheBatchStatementsArePreparedOnceAConnectionAndRunByName) {
  for (int i = 1; i <= 3; ++i) EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (" + std::to_string(i) + ")"})).applied);
  EXPECT_EQ(count_sent(session, "PREPARE "), 2u) << "the fence and the batch log, once";
  EXPECT_EQ(count_sent(session, "EXECUTE shadowpipe_fence("), 3u);
  EXPECT_EQ(count_sent(session, "EXECUTE shadowpipe_batch_log"), 3u);
  EXPECT_EQ(count_sent(session, "SELECT coalesce((SELECT next_offset"), 0u) << "no fence text";
  EXPECT_EQ(count_sent(session, "WITH advanced AS"), 0u) << "no batch log text";
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 2, 3}));
  EXPECT_EQ(session.committed.next_offset, 3);
  EXPECT_EQ(session.committed.logged, 3);
  EXPECT_EQ(runner().bookkeeping_sent_as_text(), "") << "nothing for the worker to report";
}

TEST_P(Runner, AfterTrafficThatDropsThemTheBatchLogGoesAsTextAndTheStatementsArePreparedAgain) {
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"})).applied);
  auto deallocating = run(request(TxMode::autocommit, {"DEALLOCATE ALL"}));
  EXPECT_TRUE(deallocating.applied);
  EXPECT_EQ(statuses(deallocating), (std::vector<Status>{Status::ok}));
  EXPECT_EQ(count_sent(session, "WITH advanced AS"), 1u) << "the unit that may have deallocated them logs by text";
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (2)"})).applied);
  EXPECT_EQ(count_sent(session, "PREPARE "), 4u) << "prepared again before the next batch";
  EXPECT_EQ(count_sent(session, "EXECUTE shadowpipe_batch_log"), 2u);
  EXPECT_EQ(session.committed.next_offset, 3);
  EXPECT_EQ(session.committed.logged, 3);
  EXPECT_EQ(runner().bookkeeping_sent_as_text(), "") << "one batch by text is not a connection that cannot keep them";
}

// Decided from the text, not from how it ended, and not for every utility
// statement: a DEALLOCATE ALL in a text of several statements that succeeds
// costs no second run (a second run would advance sequences a second time).
TEST_P(Runner, ATextThatDeallocatesAmongOtherStatementsRunsOnceAndASetDoesNotPrepareAgain) {
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"})).applied);
  const int begins = session.begins;
  auto report = run(request(TxMode::autocommit, {"DEALLOCATE ALL; SELECT 1"}));
  EXPECT_TRUE(report.applied);
  EXPECT_EQ(session.begins, begins + 1) << "one transaction: no 26000, no second run";
  EXPECT_EQ(count_sent(session, "WITH advanced AS"), 1u);
  EXPECT_TRUE(run(request(TxMode::autocommit, {"SET work_mem = '64MB'"})).applied);
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (2)"})).applied);
  EXPECT_EQ(count_sent(session, "PREPARE "), 4u) << "prepared again after the DEALLOCATE, not after the SET";
  EXPECT_EQ(count_sent(session, "EXECUTE shadowpipe_batch_log"), 3u);
  EXPECT_EQ(session.committed.next_offset, 4);
}

// The application's PREPARE is not replayed, so a name its traffic uses is
// missing on the shadow's connection, or is the executor's own: run with the
// traffic's arguments, shadowpipe_batch_log would move the partition's
// position. Neither is sent.
TEST_P(Runner, TrafficThatUsesAPreparedNameIsRefusedAndTheExecutorsOwnNeverRunForIt) {
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"})).applied);
  const std::string own = "EXECUTE shadowpipe_batch_log('g', 't', 0, 99, '{}', '{}', '{}', 99)";
  for (const std::string& sql : {own, "EXPLAIN ANALYZE " + own, std::string("EXECUTE p(1)"),
                                 std::string("DEALLOCATE shadowpipe_fence")}) {
    auto report = run(request(TxMode::autocommit, {sql}));
    EXPECT_TRUE(report.applied) << sql;
    EXPECT_EQ(statuses(report), (std::vector<Status>{Status::refused})) << sql;
    ASSERT_EQ(report.notes.size(), 1u);
    EXPECT_EQ(report.notes[0].disposition, ex::Disposition::not_replayable) << sql;
    EXPECT_NE(report.result.statements[0].result.message.find("PREPAREd earlier in the application's session"),
              std::string::npos)
        << report.result.statements[0].result.message;
    EXPECT_EQ(count_sent(session, sql), 0u) << sql;
  }
  EXPECT_EQ(session.committed.next_offset, 5) << "each unit moved the position by one, as its own";
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (2)"})).applied);
  EXPECT_EQ(count_sent(session, "PREPARE "), 2u) << "the executor's statements were never dropped";
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 2}));
}

// However the attempt that ran it ends: a deadlock the primary did not have
// ends it before its log, and the next attempt must not find the fence gone.
TEST_P(Runner, AnAttemptThatDeallocatedAndEndedEarlyLeavesTheNextToPrepareAgain) {
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"})).applied);
  session.fail_once["DEALLOCATE ALL; SELECT 1"] = "40P01";
  const auto unit = request(TxMode::autocommit, {"DEALLOCATE ALL; SELECT 1"});
  EXPECT_THROW(runner().run(unit, id, 1), Transient) << "the deadlock, retried";
  auto report = runner().run(unit, id, 1);
  EXPECT_TRUE(report.applied) << "no 26000 at the fence: prepared again first";
  EXPECT_EQ(count_sent(session, "PREPARE "), 4u);
  EXPECT_EQ(session.committed.next_offset, 2);
}

TEST_P(Runner, StatementsTheServerLostAtTheFenceRunTheBatchAgainNeverMovingTheFence) {
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"})).applied);
  session.prepared.clear();
  const auto unit = request(TxMode::autocommit, {"INSERT INTO t VALUES (2)"});
  EXPECT_THROW(runner().run(unit, id, 1), Transient) << "a 26000 at the fence is not a refused fence (a Failure)";
  EXPECT_EQ(session.committed.next_offset, 1);
  auto report = runner().run(unit, id, 1);  // as the partition worker retries it
  EXPECT_TRUE(report.applied);
  EXPECT_EQ(statuses(report), (std::vector<Status>{Status::ok}));
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 2}));
  EXPECT_EQ(session.committed.next_offset, 2);
}

TEST_P(Runner, StatementsTheServerLostBeforeTheBatchLogRunTheBatchAgainNeverRecordingTheLoss) {
  EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"})).applied);
  session.lose_prepared_at = "INSERT INTO t VALUES (2)";
  const auto unit = request(TxMode::autocommit, {"INSERT INTO t VALUES (2)"});
  EXPECT_THROW(runner().run(unit, id, 1), Transient);
  EXPECT_EQ(session.committed.rows, (std::set<int>{1})) << "rolled back";
  EXPECT_EQ(session.committed.next_offset, 1);
  EXPECT_EQ(session.committed.logged, 1);
  session.lose_prepared_at.clear();
  auto report = runner().run(unit, id, 1);
  EXPECT_TRUE(report.applied);
  EXPECT_EQ(statuses(report), (std::vector<Status>{Status::ok})) << "the 26000 is not the unit's result";
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 2}));
  EXPECT_EQ(session.committed.next_offset, 2);
}

TEST_P(Runner, AServerThatLosesThemThreeTimesOrRefusesThemGetsTheTexts) {
  session.refuse_prepare = true;
  for (int i = 1; i <= 2; ++i) EXPECT_TRUE(run(request(TxMode::autocommit, {"INSERT INTO t VALUES (" + std::to_string(i) + ")"})).applied);
  EXPECT_EQ(count_sent(session, "PREPARE "), 1u) << "refused once, not asked again on this connection";
  EXPECT_EQ(count_sent(session, "SET LOCAL statement_timeout = 0"), 2u);
  EXPECT_EQ(count_sent(session, "EXECUTE "), 0u);
  EXPECT_EQ(count_sent(session, "WITH advanced AS"), 2u);
  EXPECT_EQ(runner().bookkeeping_sent_as_text(), "PREPARE refused (08P01: prepared statements are not supported)")
      << "why, for the worker to say once";

  FakeSession losing;
  ex::UnitRunner runner(losing, ex::RunnerConfig{ex::WritesMode::apply, 0, nullptr, "test", nullptr, GetParam()}, analyzer);
  losing.lose_prepared_at = "INSERT INTO t VALUES (7)";
  const auto unit = request(TxMode::autocommit, {"INSERT INTO t VALUES (7)"});
  for (int attempt = 1; attempt <= 3; ++attempt) {
    EXPECT_TRUE(runner.bookkeeping_sent_as_text().empty()) << "prepared again before attempt " << attempt;
    EXPECT_THROW(runner.run(unit, id, 0), Transient) << attempt;
  }
  EXPECT_TRUE(runner.run(unit, id, 0).applied) << "the fourth attempt sends the texts";
  EXPECT_NE(runner.bookkeeping_sent_as_text().find("the server lost them three times, the last time with 26000"),
            std::string::npos)
      << runner.bookkeeping_sent_as_text();
  EXPECT_EQ(losing.committed.next_offset, 1);
  EXPECT_EQ(losing.committed.rows, (std::set<int>{7}));
}

INSTANTIATE_TEST_SUITE_P(Transports, Runner, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "pipelined" : "plain"; });

// Direct batches (no per-unit savepoints until a statement fails), with both
// transports, against the savepoint path on a session of its own.
class DirectBatches : public ::testing::TestWithParam<bool> {
 protected:
  static std::vector<Status> statuses(const ex::UnitReport& report) {
    std::vector<Status> out;
    for (const auto& statement : report.result.statements) out.push_back(statement.result.status);
    return out;
  }
  std::vector<ex::UnitReport> run_batch(FakeSession& on, bool direct, const std::vector<sp::wire::Request>& units,
                                        int64_t first_offset = 0) {
    auto& runner = direct ? direct_runner(on) : savepoint_runner(on);
    std::vector<ex::BatchUnit> batch;
    for (const auto& unit : units) batch.push_back(ex::BatchUnit{&unit, first_offset++});
    return runner.run_batch(batch, id);
  }
  ex::UnitRunner& direct_runner(FakeSession& on) { return make(direct_, on, true); }
  ex::UnitRunner& savepoint_runner(FakeSession& on) { return make(savepoints_, on, false); }
  // The commands of the first transaction sent, BEGIN to its end.
  static std::vector<std::string> first_transaction(const FakeSession& on) {
    std::vector<std::string> out;
    for (const auto& command : on.sent) {
      if (command == "SYNC") continue;
      out.push_back(command);
      if (command == "ROLLBACK" || command == "COMMIT") break;
    }
    return out;
  }
  static size_t count_savepoint_commands(const std::vector<std::string>& commands) {
    size_t n = 0;
    for (const auto& command : commands) {
      if (command.find("SAVEPOINT") != std::string::npos) ++n;
    }
    return n;
  }

  FakeSession session;  // the direct runner's
  FakeSession reference;  // the savepoint path's
  sp::statement::Analyzer analyzer;
  ex::PartitionId id{"group", "topic", 0};

 private:
  ex::UnitRunner& make(std::unique_ptr<ex::UnitRunner>& runner, FakeSession& on, bool direct) {
    if (!runner) {
      runner = std::make_unique<ex::UnitRunner>(
          on,
          ex::RunnerConfig{ex::WritesMode::apply, 0, nullptr, "test", nullptr, GetParam(),
                           direct ? ex::DirectBatches::all : ex::DirectBatches::off},
          analyzer);
    }
    return *runner;
  }
  std::unique_ptr<ex::UnitRunner> direct_;
  std::unique_ptr<ex::UnitRunner> savepoints_;
};

TEST_P(DirectBatches, ABatchWithoutFailuresSendsNoSavepointCommand) {
  auto reports = run_batch(session, true,
                           {request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"}),
                            request(TxMode::commit, {"INSERT INTO t VALUES (2)", "SELECT 1"}),
                            request(TxMode::autocommit, {"INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)"})});
  EXPECT_EQ(count_savepoint_commands(session.sent), 0u);
  EXPECT_EQ(session.begins, 1);
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 2, 3, 4}));
  EXPECT_EQ(session.committed.next_offset, 3);
  EXPECT_EQ(session.committed.logged, 3);
  for (const auto& report : reports) EXPECT_TRUE(report.applied);
}

// The failing unit in the middle of a batch: the direct attempt stops at its
// failure and is rolled back whole; the batch runs again with savepoints, and
// every unit ends exactly as on the savepoint path — the units before applied
// once, the failing one recorded with its error (the rest of a tx unit not
// reached), the units after applied.
TEST_P(DirectBatches, AFailureMidwayRunsTheBatchAgainWithSavepointsAndEveryUnitEndsAsOnTheSavepointPath) {
  for (FakeSession* on : {&session, &reference}) {
    on->fail_always["INSERT INTO t VALUES (3)"] = "23505";
    on->fail_always["INSERT INTO t VALUES (8)"] = "23505";
  }
  const std::vector<sp::wire::Request> units{
      request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"}),
      request(TxMode::commit, {"INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)"}),
      request(TxMode::autocommit, {"INSERT INTO t VALUES (5)"}),
      request(TxMode::autocommit, {"INSERT INTO t VALUES (6)", "INSERT INTO t VALUES (8)", "INSERT INTO t VALUES (7)"}),
  };
  const auto expected = run_batch(reference, false, units);
  const auto reports = run_batch(session, true, units);

  const auto first = first_transaction(session);
  EXPECT_EQ(count_savepoint_commands(first), 0u) << "the first attempt ran without savepoints";
  EXPECT_EQ(first.back(), "ROLLBACK") << "and was rolled back whole at the failure";
  EXPECT_EQ(std::count(first.begin(), first.end(), "INSERT INTO t VALUES (5)"), 0) << "nothing ran after it";
  EXPECT_EQ(session.begins, 2) << "the direct attempt, then the savepoint path";
  ASSERT_EQ(reports.size(), units.size());
  for (size_t i = 0; i < units.size(); ++i) {
    SCOPED_TRACE("unit " + std::to_string(i));
    EXPECT_TRUE(reports[i].applied);
    EXPECT_EQ(statuses(reports[i]), statuses(expected[i]));
    ASSERT_EQ(reports[i].result.statements.size(), expected[i].result.statements.size());
    for (size_t n = 0; n < reports[i].result.statements.size(); ++n) {
      auto got = reports[i].result.statements[n];
      auto want = expected[i].result.statements[n];
      got.result.latency_us = want.result.latency_us = 0;
      EXPECT_EQ(got, want) << "statement " << n;  // status, SQLSTATE, message, digests
      EXPECT_EQ(reports[i].notes[n].disposition, expected[i].notes[n].disposition);
    }
  }
  EXPECT_EQ(statuses(reports[1]), (std::vector<Status>{Status::ok, Status::error, Status::error}));
  EXPECT_EQ(reports[1].result.statements[1].result.sqlstate, "23505");
  EXPECT_EQ(reports[1].result.statements[2].result.sqlstate, ex::kAbortedSqlstate);
  EXPECT_EQ(statuses(reports[3]), (std::vector<Status>{Status::ok, Status::error, Status::ok}));
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 5, 6, 7})) << "u1 undone, the others applied once";
  EXPECT_EQ(session.committed.rows, reference.committed.rows);
  EXPECT_EQ(session.committed.next_offset, 4);
  EXPECT_EQ(session.committed.logged, 4) << "one log row per unit, the direct attempt's rolled back";
}

TEST_P(DirectBatches, AFingerprintThatFailedOnceTakesTheSavepointPathAtOnce) {
  session.fail_always["INSERT INTO t VALUES (2)"] = "23505";
  run_batch(session, true,
            {request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"}),
             request(TxMode::autocommit, {"INSERT INTO t VALUES (2)"})});
  EXPECT_EQ(session.begins, 2);
  session.sent.clear();
  run_batch(session, true,
            {request(TxMode::autocommit, {"INSERT INTO t VALUES (5)"}),
             request(TxMode::autocommit, {"INSERT INTO t VALUES (6)"})},
            2);
  EXPECT_EQ(session.begins, 3) << "one transaction: straight to the savepoint path";
  EXPECT_GT(count_savepoint_commands(session.sent), 0u);
  session.sent.clear();
  run_batch(session, true, {request(TxMode::autocommit, {"SELECT 1"}), request(TxMode::autocommit, {"SELECT 2"})}, 4);
  EXPECT_EQ(count_savepoint_commands(session.sent), 0u) << "other fingerprints still run direct";
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 5, 6}));
  EXPECT_EQ(session.committed.next_offset, 6);
}

TEST_P(DirectBatches, UnitsToUndoKeepTheSavepointPath) {
  run_batch(session, true,
            {request(TxMode::rollback, {"INSERT INTO t VALUES (1)"}),
             request(TxMode::autocommit, {"INSERT INTO t VALUES (2)"})});
  EXPECT_GT(count_savepoint_commands(session.sent), 0u);
  EXPECT_EQ(session.committed.rows, (std::set<int>{2}));
}

INSTANTIATE_TEST_SUITE_P(Transports, DirectBatches, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "pipelined" : "plain"; });

// Savepoints of the unit's own run alone (plain transport), in order, under
// names that never meet the executor's.
TEST(RunnerSavepoints, ReplayInOrderAndARollbackToEndsTheAbort) {
  FakeSession session;
  sp::statement::Analyzer analyzer;
  ex::UnitRunner runner(session, ex::RunnerConfig{}, analyzer);
  session.fail_always["INSERT INTO t VALUES (2)"] = "23505";
  auto report = runner.run(request(TxMode::commit, {"BEGIN", "INSERT INTO t VALUES (1)", "SAVEPOINT a",
                                                    "INSERT INTO t VALUES (2)", "ROLLBACK TO SAVEPOINT a",
                                                    "INSERT INTO t VALUES (3)", "RELEASE SAVEPOINT a", "COMMIT"}),
                           ex::PartitionId{"g", "t", 0}, 0);
  EXPECT_EQ(session.sent_starting("SAVEPOINT \"u_a\"").size(), 1u);
  std::vector<std::string> user;
  for (const auto& command : session.sent) {
    if (command.find("\"u_a\"") != std::string::npos || command.rfind("INSERT INTO t", 0) == 0) user.push_back(command);
  }
  EXPECT_EQ(user, (std::vector<std::string>{"INSERT INTO t VALUES (1)", "SAVEPOINT \"u_a\"", "INSERT INTO t VALUES (2)",
                                            "ROLLBACK TO SAVEPOINT \"u_a\"", "INSERT INTO t VALUES (3)",
                                            "RELEASE SAVEPOINT \"u_a\""}));
  EXPECT_EQ(report.result.statements[3].result.sqlstate, "23505");
  EXPECT_EQ(report.result.statements[5].result.status, Status::ok) << "ROLLBACK TO SAVEPOINT ended the abort";
  EXPECT_EQ(session.committed.rows, (std::set<int>{1, 3}));
}

}  // namespace
