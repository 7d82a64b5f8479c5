// The unit runner's policy and retry logic over a fake session (no server):
// each case runs with the plain and the pipelined transport where both
// apply, since they are one savepoint engine and must agree.
#include "fake_session.hpp"

#include "shadow_executor/unit_runner.hpp"

#include <gtest/gtest.h>

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

INSTANTIATE_TEST_SUITE_P(Transports, Runner, ::testing::Values(false, true),
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
