// The executor's pure parts: plan summaries, the plan-capture policy, the
// delivery ledger that decides which Kafka offset is safe to commit.
#include "shadow_executor/delivery_ledger.hpp"
#include "shadow_executor/options.hpp"
#include "shadow_executor/plan.hpp"

#include "shadowpipe/result.hpp"

#include <gtest/gtest.h>

namespace ex = shadowpipe::executor;
using namespace std::chrono_literals;

TEST(PlanSummary, NodeTypesOutermostFirstSeqScansAndRootEstimates) {
  const char* json = R"([{"Plan": {"Node Type": "Hash Join", "Total Cost": 120.5, "Plan Rows": 42,
    "Plans": [{"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 50, "Plan Rows": 1000},
              {"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "customers"}]},
              {"Node Type": "Index Scan", "Relation Name": "items"},
              {"Node Type": "Seq Scan", "Relation Name": "orders"}]}}])";
  auto summary = ex::summarize_plan(json);
  ASSERT_TRUE(summary.ok()) << summary.error().describe();
  EXPECT_EQ(summary->node_types, (std::vector<std::string>{"Hash Join", "Seq Scan", "Hash", "Index Scan"}));
  EXPECT_EQ(summary->seq_scans, (std::vector<std::string>{"orders", "customers"}));
  EXPECT_DOUBLE_EQ(summary->total_cost, 120.5);
  EXPECT_DOUBLE_EQ(summary->plan_rows, 42);
}

TEST(PlanSummary, RejectsWhatIsNotAnExplainDocument) {
  EXPECT_FALSE(ex::summarize_plan("not json").ok());
  EXPECT_FALSE(ex::summarize_plan("[]").ok());
  EXPECT_FALSE(ex::summarize_plan(R"({"Plan": {}})").ok());
  EXPECT_EQ(ex::summarize_plan("[{}]").error().code, shadowpipe::ErrorCode::malformed);
}

TEST(PlanPolicy, FirstExecutionThenOnlyWhenFarAboveTheMedian) {
  ex::PlanPolicy policy(100, 5.0);
  const auto now = ex::PlanPolicy::Clock::now();
  EXPECT_TRUE(policy.should_capture("fp", 100, now));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(policy.should_capture("fp", 100 + i, now));
  EXPECT_FALSE(policy.should_capture("fp", 400, now)) << "4x the median is under the factor";
  EXPECT_TRUE(policy.should_capture("fp", 1000, now));
  EXPECT_TRUE(policy.should_capture("other", 5, now)) << "each fingerprint has its own first execution";
}

// The median is the last 64 executions', so a fingerprint that became fast
// is judged against its fast executions, and one that became slow stops
// looking slow once the window is full of its new latency.
TEST(PlanPolicy, TheMedianIsOverTheLastExecutionsOnly) {
  ex::PlanPolicy policy(1000, 5.0);
  const auto now = ex::PlanPolicy::Clock::now();
  EXPECT_TRUE(policy.should_capture("fp", 1000, now));
  for (int i = 0; i < 100; ++i) policy.should_capture("fp", 1000 + i % 7, now);
  for (int i = 0; i < 64; ++i) policy.should_capture("fp", 10 + i % 3, now);  // the window holds only these now
  EXPECT_TRUE(policy.should_capture("fp", 60, now)) << "6x the last 64's median (10-12)";
  for (int i = 0; i < 33; ++i) policy.should_capture("fp", 5000, now);  // now most of the window
  EXPECT_FALSE(policy.should_capture("fp", 5000, now)) << "the median is 5000 itself";
  EXPECT_TRUE(policy.should_capture("fp", 30000, now));
}

TEST(PlanPolicy, BoundedPerMinuteAndAFirstExecutionIsRetriedLater) {
  ex::PlanPolicy policy(2, 5.0);
  const auto now = ex::PlanPolicy::Clock::now();
  EXPECT_TRUE(policy.should_capture("a", 10, now));
  EXPECT_TRUE(policy.should_capture("b", 10, now));
  EXPECT_FALSE(policy.should_capture("c", 10, now)) << "budget spent";
  EXPECT_FALSE(policy.should_capture("c", 10, now + 1s));
  EXPECT_TRUE(policy.should_capture("c", 10, now + 31s)) << "refilled: c's first plan is taken now";
  EXPECT_FALSE(policy.should_capture("c", 10, now + 45s));
}

TEST(DeliveryLedger, CommitsNeitherPastAnUnappliedUnitNorAnUndeliveredRecord) {
  ex::DeliveryLedger ledger;
  ledger.track(0, 10);
  EXPECT_EQ(ledger.committable().at(0), 10);
  ledger.publishing(0, 10);
  ledger.applied(0, 11);
  ledger.publishing(0, 11);
  ledger.applied(0, 12);
  EXPECT_EQ(ledger.committable().at(0), 10);
  ledger.delivered(0, 11);  // out of order: still held by 10
  EXPECT_EQ(ledger.committable().at(0), 10);
  ledger.delivered(0, 10);
  EXPECT_EQ(ledger.committable().at(0), 12);
  EXPECT_EQ(ledger.undelivered(), 0u);
}

TEST(DeliveryLedger, RepublishedRecordsBelowTheStartHoldTheCommit) {
  ex::DeliveryLedger ledger;
  ledger.track(3, 50);
  ledger.publishing(3, 47);  // logged before a crash, published again on assignment
  ledger.publishing(3, 47);  // and once more by a retry
  ledger.delivered(3, 47);
  EXPECT_EQ(ledger.committable().at(3), 47);
  ledger.delivered(3, 47);
  EXPECT_EQ(ledger.committable().at(3), 50);
  ledger.forget(3);
  EXPECT_TRUE(ledger.committable().empty());
}

TEST(Options, WritesModes) {
  EXPECT_EQ(ex::parse_writes_mode("apply"), ex::WritesMode::apply);
  EXPECT_EQ(ex::parse_writes_mode("rollback"), ex::WritesMode::rollback);
  EXPECT_EQ(ex::parse_writes_mode("skip"), ex::WritesMode::skip);
  EXPECT_THROW(ex::parse_writes_mode("Apply"), shadowpipe::Failure);
  EXPECT_EQ(ex::to_string(ex::WritesMode::rollback), "rollback");
}
