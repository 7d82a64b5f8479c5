// The executor's statement policy and savepoint plan as pure functions.
#include "shadow_executor/retry_policy.hpp"
#include "shadow_executor/savepoint_engine.hpp"
#include "shadow_executor/statement_policy.hpp"

#include <gtest/gtest.h>

namespace sp = shadowpipe;
namespace ex = shadowpipe::executor;
using sp::wire::TxMode;

namespace {

sp::wire::Request request(TxMode tx, const std::vector<std::string>& statements) {
  sp::wire::Request out;
  out.tx = tx;
  for (const auto& sql : statements) out.statements.push_back(sp::wire::Statement{sql, {}, "", {}});
  return out;
}

std::vector<ex::Disposition> dispositions(const std::vector<ex::Step>& steps) {
  std::vector<ex::Disposition> out;
  for (const auto& step : steps) out.push_back(step.note.disposition);
  return out;
}

// A segment as text: savepoint commands by their SQL, statements as "#unit.step".
std::string render(const ex::Segment& segment) {
  std::string out;
  for (const auto& command : segment) {
    if (!out.empty()) out += "; ";
    out += command.is_statement() ? "#" + std::to_string(command.unit) + "." + std::to_string(command.step)
                                  : command.sql();
  }
  return out;
}

std::vector<std::string> plan(ex::WritesMode writes, const std::vector<sp::wire::Request>& requests) {
  sp::statement::Analyzer analyzer;
  sp::digest::NormalizationConfig normalization;
  std::vector<ex::PlannedUnit> units;
  for (const auto& unit : requests) {
    auto steps = ex::plan_unit(unit, analyzer, writes, normalization);
    const bool undo = ex::undoes_unit(unit, steps, writes);
    units.push_back(ex::PlannedUnit{&unit, std::move(steps), undo, ex::runs_per_statement(unit)});
  }
  std::vector<std::string> out;
  for (const auto& segment : ex::plan_segments(units)) out.push_back(render(segment));
  return out;
}

TEST(StatementPolicy, TransientSqlstatesAreThePassingCausesOnly) {
  for (const char* sqlstate : {"57P01", "57P03", "53300", "40001", "40P01", "53100"}) {
    EXPECT_TRUE(ex::transient_sqlstate(sqlstate)) << sqlstate;
  }
  for (const char* sqlstate : {"23505", "42P01", "25P02", "57014", "08006", ""}) {
    EXPECT_FALSE(ex::transient_sqlstate(sqlstate)) << sqlstate;
  }
}

TEST(StatementPolicy, AShadowErrorIsTheUnitsUnlessItIsPassingOrAnArtefactOfTheBatch) {
  sp::wire::StatementResult shadow;
  shadow.status = sp::wire::Status::error;
  sp::wire::Statement primary;
  shadow.sqlstate = "23505";
  EXPECT_EQ(ex::classify_shadow_error(shadow, primary, true), ex::ShadowError::unit_result);
  shadow.sqlstate = "40P01";
  EXPECT_EQ(ex::classify_shadow_error(shadow, primary, true), ex::ShadowError::redo_serially);
  EXPECT_EQ(ex::classify_shadow_error(shadow, primary, false), ex::ShadowError::transient);
  shadow.sqlstate = "57P01";
  EXPECT_EQ(ex::classify_shadow_error(shadow, primary, true), ex::ShadowError::transient);
  primary.result.status = sp::wire::Status::error;
  primary.result.sqlstate = "57P01";
  EXPECT_EQ(ex::classify_shadow_error(shadow, primary, false), ex::ShadowError::unit_result)
      << "the primary had it too: it is the traffic's";
}

TEST(StatementPolicy, AFailedCommit) {
  using F = ex::CommitFailure;
  EXPECT_EQ(ex::classify_commit_failure("57014", true, false), F::abandoned);
  EXPECT_EQ(ex::classify_commit_failure("57014", false, false), F::connection_lost);
  EXPECT_EQ(ex::classify_commit_failure("08006", false, true), F::connection_lost);
  EXPECT_EQ(ex::classify_commit_failure("57P01", false, false), F::connection_lost);
  EXPECT_EQ(ex::classify_commit_failure("23503", false, true), F::redo_serially);
  EXPECT_EQ(ex::classify_commit_failure("40001", false, false), F::transient);
  EXPECT_EQ(ex::classify_commit_failure("53100", false, false), F::transient);
  EXPECT_EQ(ex::classify_commit_failure("23503", false, false), F::unit_result);
  EXPECT_EQ(ex::classify_commit_failure("40000", false, false), F::unit_result);
}

TEST(StatementPolicy, WhatEachStatementOfAUnitIs) {
  sp::statement::Analyzer analyzer;
  sp::digest::NormalizationConfig normalization;
  using D = ex::Disposition;
  auto steps = ex::plan_unit(request(TxMode::commit, {"BEGIN", "SELECT 1", "INSERT INTO t VALUES (1)", "SELEC 1",
                                                      "COPY t FROM STDIN", "SELECT 1; SELECT 2", "COMMIT"}),
                             analyzer, ex::WritesMode::skip, normalization);
  EXPECT_EQ(dispositions(steps), (std::vector<D>{D::transaction_control, D::executed, D::writes_skipped,
                                                 D::unparsable, D::not_replayable, D::executed,
                                                 D::transaction_control}));
  EXPECT_EQ(steps[5].statement_count, 2);
  EXPECT_FALSE(steps[0].execute);
  EXPECT_EQ(steps[0].shadow.result.status, sp::wire::Status::ok) << "the primary saw it succeed";
  EXPECT_EQ(steps[3].shadow.result.sqlstate, "42601");
  EXPECT_EQ(steps[2].shadow.result.message, ex::kWritesSkippedMessage);
}

TEST(StatementPolicy, TransactionControlInsideATransactionIsReplayedUnderNamesOfItsOwn) {
  sp::statement::Analyzer analyzer;
  sp::digest::NormalizationConfig normalization;
  auto steps = ex::plan_unit(request(TxMode::commit, {"SAVEPOINT a", "ROLLBACK TO SAVEPOINT a",
                                                      "SET CONSTRAINTS ALL IMMEDIATE",
                                                      "SET TRANSACTION READ ONLY"}),
                             analyzer, ex::WritesMode::apply, normalization);
  ASSERT_TRUE(steps[0].replayed && steps[1].replayed && steps[2].replayed && steps[3].replayed);
  EXPECT_EQ(steps[0].replayed->sql, "SAVEPOINT \"u_a\"");
  EXPECT_EQ(steps[1].replayed->sql, "ROLLBACK TO SAVEPOINT \"u_a\"");
  EXPECT_TRUE(steps[1].restores);
  EXPECT_EQ(steps[2].replayed->sql, "SET CONSTRAINTS ALL IMMEDIATE");
  EXPECT_EQ(steps[3].replayed->sql, "SET TRANSACTION READ ONLY");
  const auto unit = request(TxMode::commit, {"SET TRANSACTION READ ONLY"});
  EXPECT_TRUE(ex::undoes_unit(unit, ex::plan_unit(unit, analyzer, ex::WritesMode::apply, normalization),
                              ex::WritesMode::apply))
      << "a read-only unit has nothing to keep";
  EXPECT_TRUE(ex::runs_alone(unit, analyzer));
  EXPECT_EQ(ex::isolation_clause(request(TxMode::commit, {"BEGIN ISOLATION LEVEL SERIALIZABLE"}), analyzer),
            " ISOLATION LEVEL serializable");
  EXPECT_EQ(ex::isolation_clause(request(TxMode::autocommit, {"SELECT 1"}), analyzer), "");
}

TEST(StatementPolicy, WhichUnitsShareABatch) {
  sp::statement::Analyzer analyzer;
  const auto select = request(TxMode::autocommit, {"SELECT 1"});
  EXPECT_TRUE(ex::may_share_batch(select, select, analyzer));
  EXPECT_FALSE(ex::may_share_batch(select, request(TxMode::autocommit, {"SET work_mem = '8MB'"}), analyzer));
  EXPECT_FALSE(ex::may_share_batch(select, request(TxMode::autocommit, {"SELECT 1; SELECT 2"}), analyzer));
  EXPECT_FALSE(ex::may_share_batch(select, request(TxMode::commit, {"SAVEPOINT a"}), analyzer));
  auto other_zone = select;
  other_zone.session.time_zone = "Asia/Tokyo";
  EXPECT_FALSE(ex::may_share_batch(select, other_zone, analyzer));
}

TEST(SavepointPlan, ATransactionUnitIsOneSegmentKeptByMovingSp) {
  EXPECT_EQ(plan(ex::WritesMode::apply, {request(TxMode::commit, {"BEGIN", "SELECT 1", "SELECT 2", "COMMIT"})}),
            (std::vector<std::string>{
                "ROLLBACK TO SAVEPOINT sp; #0.1; #0.2; RELEASE SAVEPOINT sp; SAVEPOINT sp"}));
}

TEST(SavepointPlan, AnAutocommitUnitIsASegmentPerStatement) {
  EXPECT_EQ(plan(ex::WritesMode::apply, {request(TxMode::autocommit, {"SELECT 1", "SELECT 2"}),
                                         request(TxMode::autocommit, {"SELECT 3"})}),
            (std::vector<std::string>{"ROLLBACK TO SAVEPOINT sp; #0.0; RELEASE SAVEPOINT sp; SAVEPOINT sp",
                                      "ROLLBACK TO SAVEPOINT sp; #0.1; RELEASE SAVEPOINT sp; SAVEPOINT sp",
                                      "ROLLBACK TO SAVEPOINT sp; #1.0; RELEASE SAVEPOINT sp; SAVEPOINT sp"}));
}

TEST(SavepointPlan, AUnitToUndoLeavesSpBeforeItsWork) {
  EXPECT_EQ(plan(ex::WritesMode::apply, {request(TxMode::rollback, {"BEGIN", "SELECT 1", "ROLLBACK"})}),
            (std::vector<std::string>{"ROLLBACK TO SAVEPOINT sp; #0.1"}));
  EXPECT_EQ(plan(ex::WritesMode::rollback, {request(TxMode::autocommit, {"SELECT 1", "SELECT 2"})}),
            (std::vector<std::string>{"ROLLBACK TO SAVEPOINT sp; SAVEPOINT v; #0.0; RELEASE SAVEPOINT v; SAVEPOINT v",
                                      "ROLLBACK TO SAVEPOINT v; #0.1; RELEASE SAVEPOINT v; SAVEPOINT v"}));
}

TEST(SavepointPlan, AUnitWithNothingToRunHasNoSegment) {
  EXPECT_TRUE(plan(ex::WritesMode::skip, {request(TxMode::autocommit, {"INSERT INTO t VALUES (1)"})}).empty());
}

TEST(RetryPolicy, PassingOutagesAreRetriedForAsLongAsTheyLastAndNeverCount) {
  ex::RetryPolicy retry;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(retry.failed(ex::RetryPolicy::Failed::transient, 1, "40001"), ex::RetryPolicy::Next::retry);
    EXPECT_EQ(retry.failed(ex::RetryPolicy::Failed::connection_lost, 5, "gone"), ex::RetryPolicy::Next::retry);
  }
  EXPECT_FALSE(retry.gives_up(1)) << "a transient error must never become the unit's result (not replayed)";
}

TEST(RetryPolicy, ARefusedBatchIsSplitThenASingleUnitRecordedAsNotReplayed) {
  using R = ex::RetryPolicy;
  R batch;
  EXPECT_EQ(batch.failed(R::Failed::refused, 4, "first"), R::Next::retry);
  EXPECT_EQ(batch.failed(R::Failed::transient, 4, "passing"), R::Next::retry);
  EXPECT_EQ(batch.failed(R::Failed::refused, 4, "second"), R::Next::retry);
  EXPECT_EQ(batch.failed(R::Failed::refused, 4, "third"), R::Next::one_by_one);
  R unit;
  for (int i = 0; i < R::kMaxFailedAttempts; ++i) {
    EXPECT_FALSE(unit.gives_up(1));
    EXPECT_EQ(unit.failed(R::Failed::refused, 1, "refusal " + std::to_string(i)), R::Next::retry);
  }
  EXPECT_TRUE(unit.gives_up(1));
  EXPECT_EQ(unit.last_failure(), "refusal 2");
  unit.failed(R::Failed::refused, 1, "the recording refused too");
  EXPECT_TRUE(unit.gives_up(1)) << "the recording is retried for good";
  EXPECT_EQ(unit.last_failure(), "refusal 2") << "the unit's own reason is kept";
}

}  // namespace
