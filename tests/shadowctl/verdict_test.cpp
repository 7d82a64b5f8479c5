#include "shadowctl/verdict.hpp"

#include <gtest/gtest.h>

namespace shadowctl = shadowpipe::shadowctl;

using shadowctl::FingerprintReport;
using shadowctl::Report;

namespace {

Report report_with(uint64_t compared, std::map<std::string, uint64_t> discrepancies, double latency_ratio = 0) {
  Report report;
  FingerprintReport fingerprint;
  fingerprint.fingerprint = "f1";
  fingerprint.normalized_sql = "select 1";
  fingerprint.compared = compared;
  fingerprint.discrepancies = std::move(discrepancies);
  if (latency_ratio > 0) {
    fingerprint.latency_regression = shadowpipe::wire::Mismatch{};
    fingerprint.latency_regression->latency_ratio = latency_ratio;
    fingerprint.latency_regression->plan = shadowpipe::wire::PlanSummary{{"Seq Scan"}, {"orders"}, 1, 1};
    fingerprint.discrepancies["latency_regression"] = 1;
  }
  report.compared = compared;
  report.fingerprints.push_back(fingerprint);
  return report;
}

bool mentions(const shadowctl::Verdict& verdict, const std::string& text) {
  for (const auto& reason : verdict.reasons) {
    if (reason.find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST(Verdict, PassesCleanTrafficAboveTheMinimum) {
  auto verdict = shadowctl::judge(report_with(5000, {}), {1000, 0.0, 3.0});
  EXPECT_TRUE(verdict.pass);
  EXPECT_EQ(shadowctl::render(verdict).rfind("PASS", 0), 0u);
}

TEST(Verdict, FailsWithTooFewRequests) {
  auto verdict = shadowctl::judge(report_with(999, {}), {1000, 0.0, 3.0});
  EXPECT_FALSE(verdict.pass);
  EXPECT_TRUE(mentions(verdict, "--min-requests 1000"));
}

TEST(Verdict, FailsAboveTheMismatchRateAndNamesTheFingerprint) {
  auto verdict = shadowctl::judge(report_with(1000, {{"shadow_error", 5}}), {100, 0.001, 3.0});
  EXPECT_FALSE(verdict.pass);
  EXPECT_TRUE(mentions(verdict, "5 discrepancies in 1000"));
  EXPECT_TRUE(mentions(verdict, "f1: shadow_error 5"));
  EXPECT_TRUE(shadowctl::judge(report_with(1000, {{"shadow_error", 1}}), {100, 0.001, 3.0}).pass)
      << "a rate at the limit passes";
}

TEST(Verdict, RequestsNeverComparedFailWhateverTheRate) {
  auto report = report_with(5000, {});
  report.comparison_gaps.push_back({"lost:shadow.requests:0:20", 20, "20 requests never compared: retention deleted offsets 20..39"});
  report.comparison_gaps.push_back({"lost:shadow.requests:1:7", 3, "3 requests never compared: retention deleted offsets 7..9"});
  auto verdict = shadowctl::judge(report, {1000, 0.01, 3.0});
  EXPECT_FALSE(verdict.pass) << "a verdict must not pass on what was never compared";
  EXPECT_TRUE(mentions(verdict, "23 requests never compared: retention deleted them, or their shadow results, before "
                                "a comparator decided them"));
  EXPECT_TRUE(mentions(verdict, "retention deleted offsets 7..9"));
}

TEST(Verdict, ALossFoundAgainFromAnEarlierOffsetIsCountedOnce) {
  auto report = report_with(5000, {});
  // Found while running from offset 20, then by a successor restarted from
  // the committed offset 10: 10..39 in all, not 20 + 30.
  report.comparison_gaps.push_back({"lost:shadow.requests:0:20", 20, "20 requests never compared"});
  report.comparison_gaps.push_back({"lost:shadow.requests:0:10", 30, "30 requests never compared"});
  report.comparison_gaps.push_back({"lost:shadow.requests:1:10", 5, "another partition"});
  report.comparison_gaps.push_back({"lost:other.requests:0:10", 5, "another topic"});
  auto verdict = shadowctl::judge(report, {1000, 0.01, 3.0});
  EXPECT_FALSE(verdict.pass);
  EXPECT_TRUE(mentions(verdict, "40 requests never compared")) << shadowctl::render(verdict);
}

// Results lost to retention leave one record a request: counted one each,
// a few listed, and not in the rate (nothing compared found them).
TEST(Verdict, RequestsWhoseResultsWereLostAreCountedEachAndAFewListed) {
  auto report = report_with(5000, {});
  for (int i = 0; i < 25; ++i) {
    report.comparison_gaps.push_back({"request-" + std::to_string(i), 1, "request at offset " + std::to_string(i) + " never compared"});
  }
  auto verdict = shadowctl::judge(report, {1000, 0.0, 3.0});
  EXPECT_FALSE(verdict.pass);
  EXPECT_TRUE(mentions(verdict, "25 requests never compared")) << shadowctl::render(verdict);
  EXPECT_TRUE(mentions(verdict, "request at offset 9 never compared"));
  EXPECT_FALSE(mentions(verdict, "request at offset 10 never compared")) << "ten listed, not every one";
  EXPECT_TRUE(mentions(verdict, "... and 15 more (shadowctl report --format json lists every one)"));
  EXPECT_FALSE(mentions(verdict, "discrepancies in")) << "requests never compared are not findings of a comparison";
}

TEST(Verdict, LatencyRegressionFailsOnlyAboveTheRatio) {
  auto slow = shadowctl::judge(report_with(1000, {}, 8.0), {100, 0.0, 3.0});
  EXPECT_FALSE(slow.pass);
  EXPECT_TRUE(mentions(slow, "scans orders sequentially"));
  EXPECT_TRUE(shadowctl::judge(report_with(1000, {}, 2.5), {100, 0.0, 3.0}).pass)
      << "latency regressions do not count as mismatches; only the ratio limit judges them";
}

TEST(Verdict, ATypeChangeFailsOnlyWithFailOnTypeChange) {
  auto report = report_with(5000, {});
  report.fingerprints[0].notices["type_changed"] = {"type changed: id: integer on the primary, bigint on the shadow"};
  EXPECT_TRUE(shadowctl::judge(report, {1000, 0.0, 3.0}).pass) << "same rendered values: a notice, not a failure";
  shadowctl::VerdictOptions strict{1000, 0.0, 3.0};
  strict.fail_on_type_change = true;
  auto verdict = shadowctl::judge(report, strict);
  EXPECT_FALSE(verdict.pass);
  EXPECT_TRUE(mentions(verdict, "integer on the primary, bigint on the shadow"));
}
