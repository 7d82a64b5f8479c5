#include "shadowpipe/conninfo.hpp"
#include "shadowctl/report.hpp"
#include "shadowctl/reset.hpp"
#include "shadowctl/since.hpp"
#include "shadowpipe/result.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

namespace shadowctl = shadowpipe::shadowctl;

using shadowctl::ReportBuilder;
namespace wire = shadowpipe::wire;

namespace {

wire::Mismatch mismatch(const std::string& request, const std::string& kind, const std::string& fingerprint) {
  wire::Mismatch out;
  out.kind = kind;
  out.request_id = request;
  out.fingerprint = fingerprint;
  out.normalized_sql = "select * from t where id = $1";
  out.statement_index = 0;
  out.ts_us = 1'800'000'000'000'000;
  return out;
}

wire::Summary summary(const std::string& comparator, const std::string& fingerprint, uint64_t compared, int64_t ts) {
  wire::Summary out;
  out.comparator = comparator;
  out.fingerprint = fingerprint;
  out.compared = compared;
  out.ts_us = ts;
  out.primary_latency = {compared, 100, 200, 300, 400};
  out.shadow_latency = {compared, 110, 220, 330, 440};
  return out;
}

}  // namespace

TEST(ReportBuilder, CountsEachDecisionOnceEvenWhenRepublished) {
  ReportBuilder builder;
  builder.add_mismatch(mismatch("r1", "value_mismatch", "f1"));
  builder.add_mismatch(mismatch("r1", "value_mismatch", "f1"));  // a replay after a crash
  builder.add_mismatch(mismatch("r1", "row_count_mismatch", "f1"));
  builder.add_mismatch(mismatch("r2", "value_mismatch", "f1"));
  const auto report = builder.build();
  ASSERT_EQ(report.fingerprints.size(), 1u);
  EXPECT_EQ(report.fingerprints[0].discrepancies.at("value_mismatch"), 2u);
  EXPECT_EQ(report.fingerprints[0].discrepancies.at("row_count_mismatch"), 1u);
  EXPECT_EQ(report.duplicate_mismatch_records, 1u);
  EXPECT_EQ(report.mismatch_records, 4u);
  EXPECT_EQ(report.fingerprints[0].example_request_ids, (std::vector<std::string>{"r1", "r2"}));
}

TEST(ReportBuilder, GapsOfTheShadowAndOfTheComparisonAreListedApart) {
  ReportBuilder builder;
  auto shadow_gap = mismatch("gap:shadow.results:0:7", "shadow_gap", "");
  shadow_gap.primary = wire::StatementResult{};
  shadow_gap.primary->rows = 12;
  auto comparison_gap = mismatch("lost:shadow.requests:0:20", "comparison_gap", "");
  comparison_gap.primary = wire::StatementResult{};
  comparison_gap.primary->rows = 20;
  comparison_gap.detail = "20 requests never compared";
  builder.add_mismatch(shadow_gap);
  builder.add_mismatch(comparison_gap);
  builder.add_mismatch(comparison_gap);  // republished after a crash
  const auto report = builder.build();
  ASSERT_EQ(report.gaps.size(), 1u);
  EXPECT_EQ(report.gaps[0].write_units, 12u);
  ASSERT_EQ(report.comparison_gaps.size(), 1u);
  EXPECT_EQ(report.comparison_gaps[0].id, "lost:shadow.requests:0:20");
  EXPECT_EQ(report.comparison_gaps[0].write_units, 20u);
  EXPECT_EQ(report.comparison_gaps[0].detail, "20 requests never compared");
}

TEST(ReportBuilder, AGrownLatencyRegressionReplacesTheEarlierOne) {
  ReportBuilder builder;
  auto first = mismatch("latency_regression:f9", "latency_regression", "f9");
  first.statement_index = -1;
  first.latency_ratio = 4;
  auto grown = first;
  grown.latency_ratio = 9;
  builder.add_mismatch(first);
  builder.add_mismatch(grown);
  const auto report = builder.build();
  ASSERT_EQ(report.fingerprints.size(), 1u);
  EXPECT_EQ(report.fingerprints[0].discrepancies.at("latency_regression"), 1u);
  EXPECT_EQ(report.fingerprints[0].latency_regression->latency_ratio, 9);
  EXPECT_EQ(report.duplicate_mismatch_records, 0u) << "a grown regression is news, not a repeat";
}

TEST(ReportBuilder, SummaryCountsAddUpAndTheNewestLatencyDescribesEachInstance) {
  ReportBuilder builder;
  builder.add_summary(summary("c1", "f1", 100, 1));
  builder.add_summary(summary("c1", "f1", 150, 3));  // the next interval of the same instance
  builder.add_summary(summary("c1", "f1", 20, 2));   // an older interval arriving late still counts
  builder.add_summary(summary("c2", "f1", 50, 5));
  const auto report = builder.build();
  ASSERT_EQ(report.fingerprints.size(), 1u);
  EXPECT_EQ(report.fingerprints[0].compared, 320u);
  EXPECT_EQ(report.compared, 320u);
  EXPECT_EQ(report.fingerprints[0].primary_latency.count, 150u)
      << "latency of the newest record of the instance that compared the most";
}

TEST(ReportBuilder, RequestsComeFromTheWholeStreamSummaries) {
  ReportBuilder builder;
  builder.add_summary(summary("c1", "f1", 300, 1));  // statements of f1
  builder.add_summary(summary("c1", "f2", 200, 1));  // statements of f2
  builder.add_summary(summary("c1", "", 250, 1));    // requests, whatever their statements
  builder.add_summary(summary("c2", "", 50, 2));
  const auto report = builder.build();
  EXPECT_EQ(report.compared, 300u);
  ASSERT_EQ(report.fingerprints.size(), 2u) << "the whole-stream record is not a fingerprint";
  EXPECT_EQ(report.fingerprints[0].compared + report.fingerprints[1].compared, 500u);
}

TEST(ReportBuilder, EvidenceIsCollected) {
  ReportBuilder builder;
  auto error = mismatch("r1", "shadow_error", "f2");
  error.shadow = wire::StatementResult{};
  error.shadow->status = wire::Status::error;
  error.shadow->sqlstate = "22001";
  error.shadow->message = "value too long for type character varying(64)";
  builder.add_mismatch(error);
  auto values = mismatch("r2", "value_mismatch", "f3");
  values.columns_differ = {"price"};
  builder.add_mismatch(values);
  auto slow = mismatch("r3", "latency_regression", "f4");
  slow.latency_ratio = 40;
  slow.plan = wire::PlanSummary{{"Sort", "Seq Scan"}, {"orders"}, 4521.5, 12};
  builder.add_mismatch(slow);
  const auto report = builder.build();
  ASSERT_EQ(report.fingerprints.size(), 3u);
  EXPECT_EQ(report.discrepancies(false), 2u);
  EXPECT_EQ(report.discrepancies(true), 3u);
  for (const auto& fingerprint : report.fingerprints) {
    if (fingerprint.fingerprint == "f2") {
      EXPECT_EQ(fingerprint.sqlstates, (std::set<std::string>{"22001"}));
      EXPECT_EQ(fingerprint.error_messages.size(), 1u);
    } else if (fingerprint.fingerprint == "f3") {
      EXPECT_EQ(fingerprint.columns_differ, (std::set<std::string>{"price"}));
    } else {
      ASSERT_TRUE(fingerprint.latency_regression.has_value());
      EXPECT_EQ(fingerprint.latency_regression->plan->seq_scans.front(), "orders");
    }
  }
}

TEST(ReportRender, JsonIsOneDocumentWithTheEvidence) {
  ReportBuilder builder;
  auto values = mismatch("r2", "value_mismatch", "f3");
  values.columns_differ = {"price"};
  builder.add_mismatch(values);
  builder.add_summary(summary("c1", "f3", 10, 1));
  auto slow = mismatch("r3", "latency_regression", "f3");
  slow.latency_ratio = 12.5;
  slow.plan = wire::PlanSummary{{"Seq Scan"}, {"orders"}, 100, 1};
  builder.add_mismatch(slow);
  const auto json = shadowctl::render(builder.build(), shadowctl::Format::json);
  simdjson::dom::parser parser;
  auto document = parser.parse(json);
  ASSERT_FALSE(document.error()) << json;
  EXPECT_EQ(uint64_t(document["compared"]), 10u);
  EXPECT_EQ(uint64_t(document["discrepancies"]), 1u);
  auto fingerprint = document["fingerprints"].at(0);
  EXPECT_EQ(std::string_view(fingerprint["fingerprint"]), "f3");
  EXPECT_EQ(std::string_view(fingerprint["columns_differ"].at(0)), "price");
  EXPECT_EQ(uint64_t(fingerprint["discrepancies"]["value_mismatch"]), 1u);
  EXPECT_EQ(double(fingerprint["latency_regression"]["ratio"]), 12.5);
  EXPECT_EQ(std::string_view(fingerprint["latency_regression"]["plan"]["seq_scans"].at(0)), "orders");
  EXPECT_EQ(double(fingerprint["latency"]["shadow"]["p95_us"]), 220);
}

// Results lost to retention leave one record a request never compared: the
// text lists the first twenty, the JSON every one, with the shadow's gaps.
TEST(ReportRender, RequestsNeverComparedAreAllInTheJsonAndAFewInTheText) {
  ReportBuilder builder;
  auto shadow_gap = mismatch("gap:shadow.results:0:7", "shadow_gap", "");
  shadow_gap.primary = wire::StatementResult{};
  shadow_gap.primary->rows = 12;
  shadow_gap.detail = "12 write units never applied";
  builder.add_mismatch(shadow_gap);
  for (int i = 0; i < 25; ++i) {
    auto gap = mismatch("request-" + std::to_string(i), "comparison_gap", "");
    gap.statement_index = -1;
    gap.primary = wire::StatementResult{};
    gap.primary->rows = 1;
    gap.detail = "request at offset " + std::to_string(i) + " never compared";
    builder.add_mismatch(gap);
  }
  const auto report = builder.build();
  EXPECT_EQ(report.discrepancies(true), 0u) << "gaps are listed apart, not findings of a comparison";
  EXPECT_TRUE(report.fingerprints.empty()) << "a gap describes no fingerprint";
  EXPECT_EQ(report.requests_never_compared(), 25u);
  const auto text = shadowctl::render(report, shadowctl::Format::text);
  EXPECT_NE(text.find("0 requests compared, 0 discrepancies"), std::string::npos) << text;
  EXPECT_NE(text.find("GAP: 12 write units never applied"), std::string::npos) << text;
  EXPECT_NE(text.find("NOT COMPARED: 25 requests in all"), std::string::npos) << text;
  EXPECT_NE(text.find("NOT COMPARED: request at offset 19 never compared"), std::string::npos) << text;
  EXPECT_EQ(text.find("request at offset 20 never compared"), std::string::npos) << text;
  EXPECT_NE(text.find("NOT COMPARED: ... and 5 more (--format json lists every one)"), std::string::npos) << text;
  const auto json = shadowctl::render(report, shadowctl::Format::json);
  simdjson::dom::parser parser;
  auto document = parser.parse(json);
  ASSERT_FALSE(document.error()) << json;
  auto never_compared = document["comparison_gaps"].get_array();
  ASSERT_FALSE(never_compared.error()) << json;
  EXPECT_EQ(never_compared.value().size(), 25u);
  EXPECT_EQ(std::string_view(document["comparison_gaps"].at(24)["id"]), "request-24");
  EXPECT_EQ(uint64_t(document["comparison_gaps"].at(24)["units"]), 1u);
  EXPECT_EQ(std::string_view(document["gaps"].at(0)["detail"]), "12 write units never applied");
  EXPECT_EQ(uint64_t(document["gaps"].at(0)["units"]), 12u);
  EXPECT_EQ(uint64_t(document["discrepancies"]), 0u);
  EXPECT_EQ(uint64_t(document["discrepancies_by_kind"]["comparison_gap"]), 25u);
  EXPECT_EQ(uint64_t(document["requests_never_compared"]), 25u);
  const auto html = shadowctl::render(report, shadowctl::Format::html);
  EXPECT_NE(html.find("<p class=\"bad\">NOT COMPARED: request at offset 0 never compared</p>"), std::string::npos);
  EXPECT_NE(html.find("<p class=\"bad\">GAP: 12 write units never applied</p>"), std::string::npos);
}

TEST(ReportRender, HtmlIsSelfContainedAndEscaped) {
  ReportBuilder builder;
  auto values = mismatch("r2", "value_mismatch", "f3");
  values.normalized_sql = "select '<script>' from t";
  builder.add_mismatch(values);
  builder.add_summary(summary("c1", "f3", 10, 1));
  const auto html = shadowctl::render(builder.build(), shadowctl::Format::html);
  EXPECT_NE(html.find("<svg"), std::string::npos) << "a latency chart per fingerprint";
  EXPECT_EQ(html.find("<script"), std::string::npos) << "SQL must be escaped, and no scripts";
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos) << "nothing fetched from elsewhere";
  EXPECT_EQ(html.find("https://"), std::string::npos);
}

TEST(ReportRender, TextNamesEveryFingerprintAndItsEvidence) {
  ReportBuilder builder;
  auto error = mismatch("r1", "shadow_error", "f2");
  error.shadow = wire::StatementResult{};
  error.shadow->sqlstate = "22001";
  builder.add_mismatch(error);
  const auto text = shadowctl::render(builder.build(), shadowctl::Format::text);
  EXPECT_NE(text.find("f2"), std::string::npos);
  EXPECT_NE(text.find("shadow_error 1"), std::string::npos);
  EXPECT_NE(text.find("SQLSTATE: 22001"), std::string::npos);
  EXPECT_NE(text.find("example requests: r1"), std::string::npos);
}

TEST(Since, DurationsTimesAndEpochMilliseconds) {
  const int64_t now = 1'800'000'000'000;
  EXPECT_EQ(shadowctl::parse_since("90s", now), now - 90'000);
  EXPECT_EQ(shadowctl::parse_since("15m", now), now - 900'000);
  EXPECT_EQ(shadowctl::parse_since("2h", now), now - 7'200'000);
  EXPECT_EQ(shadowctl::parse_since("1d", now), now - 86'400'000);
  EXPECT_EQ(shadowctl::parse_since("1700000000000", now), 1'700'000'000'000);
  EXPECT_EQ(shadowctl::parse_since("2026-11-27T09:00:00Z", now), 1'795'770'000'000);
  EXPECT_THROW(shadowctl::parse_since("yesterday", now), shadowpipe::Failure);
  EXPECT_THROW(shadowctl::parse_since("15x", now), shadowpipe::Failure);
  EXPECT_THROW(shadowctl::parse_since("", now), shadowpipe::Failure);
}

TEST(WithDatabase, ReplacesOnlyTheDatabase) {
  const auto keywords = shadowpipe::pg::with_database("host=127.0.0.1 port=5432 user=postgres dbname=shop", "postgres");
  EXPECT_NE(keywords.find("dbname='postgres'"), std::string::npos) << keywords;
  EXPECT_EQ(keywords.find("shop"), std::string::npos) << keywords;
  EXPECT_NE(keywords.find("host='127.0.0.1'"), std::string::npos) << keywords;
  EXPECT_NE(keywords.find("user='postgres'"), std::string::npos) << keywords;
  const auto from_uri = shadowpipe::pg::with_database("postgresql://u@h:6543/shop", "postgres");
  EXPECT_NE(from_uri.find("dbname='postgres'"), std::string::npos) << from_uri;
  EXPECT_NE(from_uri.find("port='6543'"), std::string::npos) << from_uri;
  EXPECT_THROW(shadowpipe::pg::with_database("host='unterminated", "x"), shadowpipe::Failure);
}

TEST(ReportNotices, NoticesAreKeptApartFromDiscrepanciesAndRenderedInEveryFormat) {
  ReportBuilder builder;
  auto retyped = mismatch("r1", "type_changed", "f4");
  retyped.detail = "type changed: id: integer on the primary, bigint on the shadow";
  builder.add_mismatch(retyped);
  auto limited = mismatch("r2", "nondeterministic_result", "f4");
  limited.detail = "LIMIT/OFFSET without ORDER BY: which rows come back is unspecified, so only row counts are compared";
  builder.add_mismatch(limited);
  builder.add_mismatch(mismatch("r3", "representation_mismatch", "f4"));
  builder.add_summary(summary("c1", "f4", 10, 1));
  const auto report = builder.build();
  ASSERT_EQ(report.fingerprints.size(), 1u);
  EXPECT_EQ(report.discrepancies(false), 1u) << "notices are not discrepancies; a representation change is";
  EXPECT_TRUE(report.fingerprints[0].nondeterministic());

  const auto text = shadowctl::render(report, shadowctl::Format::text);
  EXPECT_NE(text.find("NON-DETERMINISTIC"), std::string::npos) << text;
  EXPECT_NE(text.find("integer on the primary, bigint on the shadow"), std::string::npos) << text;
  EXPECT_NE(text.find("representation_mismatch 1"), std::string::npos) << text;

  const auto json = shadowctl::render(report, shadowctl::Format::json);
  simdjson::dom::parser parser;
  auto document = parser.parse(json);
  ASSERT_FALSE(document.error()) << json;
  auto fingerprint = document["fingerprints"].at(0);
  EXPECT_TRUE(bool(fingerprint["nondeterministic"]));
  EXPECT_EQ(std::string_view(fingerprint["notices"]["type_changed"].at(0)), retyped.detail);
  EXPECT_EQ(uint64_t(fingerprint["discrepancies"]["representation_mismatch"]), 1u);

  const auto html = shadowctl::render(report, shadowctl::Format::html);
  EXPECT_NE(html.find("non-deterministic"), std::string::npos);
  EXPECT_NE(html.find("integer on the primary, bigint on the shadow"), std::string::npos);
}
