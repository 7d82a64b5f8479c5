#include "comparator/latency.hpp"

#include <gtest/gtest.h>

namespace cmp = shadowpipe::comparator;

namespace {

void feed(cmp::FingerprintStats& stats, double primary_us, double shadow_us, int samples) {
  for (int i = 0; i < samples; ++i) {
    stats.primary_latency.add(primary_us);
    stats.shadow_latency.add(shadow_us);
  }
}

cmp::RegressionPolicy policy() {
  cmp::RegressionPolicy policy;
  policy.min_samples = 50;
  policy.ratio_factor = 3;
  policy.min_difference_us = 1000;
  return policy;
}

}  // namespace

TEST(LatencyRegression, FarAboveTheMedianRatioIsARegression) {
  std::map<std::string, cmp::FingerprintStats> table;
  feed(table["a"], 1000, 1200, 60);
  feed(table["b"], 2000, 2400, 60);
  feed(table["c"], 500, 600, 60);
  feed(table["slow"], 1000, 20000, 60);
  auto found = cmp::find_regressions(table, policy());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].fingerprint, "slow");
  EXPECT_NEAR(found[0].ratio, 20, 1);
  EXPECT_NEAR(found[0].baseline, 1.2, 0.1);
  EXPECT_EQ(found[0].fingerprints_compared, 4u);
  EXPECT_NEAR(found[0].shadow.p95_us, 20000, 400);
  EXPECT_NEAR(found[0].primary.p99_us, 1000, 20);
}

TEST(LatencyRegression, PublishedOnceAndAgainOnlyWhenItGrowsMarkedly) {
  std::map<std::string, cmp::FingerprintStats> table;
  feed(table["slow"], 1000, 10000, 60);
  ASSERT_EQ(cmp::find_regressions(table, policy()).size(), 1u);
  EXPECT_TRUE(cmp::find_regressions(table, policy()).empty());
  feed(table["slow"], 1000, 100000, 400);
  EXPECT_EQ(cmp::find_regressions(table, policy()).size(), 1u);
}

TEST(LatencyRegression, ATailStretchedByContentionIsNotARegression) {
  std::map<std::string, cmp::FingerprintStats> table;
  feed(table["a"], 1000, 1000, 60);
  feed(table["b"], 2000, 2000, 60);
  // Same median on both sides; a few shadow executions waited on locks.
  feed(table["busy"], 150, 150, 90);
  feed(table["busy"], 400, 4000, 10);
  EXPECT_TRUE(cmp::find_regressions(table, policy()).empty());

  auto tail_only = policy();
  tail_only.median_factor = 0;  // the check off: the tail alone decides
  const auto found = cmp::find_regressions(table, tail_only);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].fingerprint, "busy");
}

TEST(LatencyRegression, UniformSlowdownAcrossFingerprintsIsNotARegression) {
  std::map<std::string, cmp::FingerprintStats> table;
  feed(table["a"], 1000, 5000, 60);
  feed(table["b"], 2000, 10000, 60);
  feed(table["c"], 3000, 15000, 60);
  EXPECT_TRUE(cmp::find_regressions(table, policy()).empty());
}

TEST(LatencyRegression, WithFewFingerprintsTheBaselineIsOne) {
  std::map<std::string, cmp::FingerprintStats> table;
  feed(table["a"], 1000, 5000, 60);
  feed(table["b"], 1000, 1100, 60);
  auto found = cmp::find_regressions(table, policy());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].fingerprint, "a");
  EXPECT_EQ(found[0].baseline, 1);
}

TEST(LatencyRegression, NeedsMinimumSamplesOnBothSides) {
  std::map<std::string, cmp::FingerprintStats> table;
  feed(table["a"], 1000, 50000, 49);
  EXPECT_TRUE(cmp::find_regressions(table, policy()).empty());
}

TEST(LatencyRegression, SmallAbsoluteDifferenceIsNotARegression) {
  std::map<std::string, cmp::FingerprintStats> table;
  feed(table["fast"], 50, 900, 60);  // 18x, but 0.85 ms
  EXPECT_TRUE(cmp::find_regressions(table, policy()).empty());
}
