// The comparator's deciding without Kafka: decoded sides in, records out.
#include "comparator/decider.hpp"

#include "shadowpipe/digest.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmp = shadowpipe::comparator;
namespace digest = shadowpipe::digest;
namespace wire = shadowpipe::wire;

namespace {

constexpr int64_t kNow = 1'700'000'000'000'000;
constexpr uint32_t kInt4 = 23, kInt8 = 20, kText = 25;

using Row = std::vector<std::optional<std::string_view>>;

// A result as a recorder or executor would record it: real digests over rows.
wire::StatementResult rows_result(std::vector<digest::Column> columns, const std::vector<Row>& rows) {
  digest::DigestBuilder builder(std::move(columns), {});
  for (const auto& row : rows) builder.add_row(row);
  wire::StatementResult result;
  result.set_digest(std::move(builder).finish());
  result.latency_us = 100;
  return result;
}

wire::StatementResult error_result(std::string sqlstate) {
  wire::StatementResult result;
  result.status = wire::Status::error;
  result.sqlstate = std::move(sqlstate);
  result.message = "value too long for type character varying(5)";
  return result;
}

std::vector<digest::Column> id_and_name(uint32_t id_type = kInt4) {
  return {{"id", id_type, id_type == kInt4 ? "integer" : "bigint"}, {"name", kText, "text"}};
}

class DeciderTest : public ::testing::Test {
 protected:
  // Registers the statement and returns its fingerprint, as the service does
  // for every request before deciding it.
  std::string fingerprint_of(const std::string& sql) {
    std::vector<wire::Statement> statements(1);
    statements[0].sql = sql;
    EXPECT_TRUE(decider.register_fingerprints(statements).ok()) << sql;
    return statements[0].fingerprint;
  }

  cmp::Joined joined(const std::string& id, const std::string& key, const std::string& sql,
                     wire::StatementResult primary, wire::StatementResult shadow) {
    const std::string fingerprint = fingerprint_of(sql);
    cmp::Joined pair;
    pair.request_id = id;
    pair.request.key = key;
    pair.request.ts_us = kNow;
    pair.request.offset = next_offset;
    pair.request.statements.push_back({fingerprint, std::move(primary)});
    pair.result.ts_us = kNow;
    pair.result.offset = next_offset++;
    pair.result.statements.push_back({fingerprint, std::move(shadow)});
    return pair;
  }

  static std::vector<std::string> kinds(const cmp::Decision& decision) {
    std::vector<std::string> out;
    for (const auto& record : decision.publish) out.push_back(record.kind);
    return out;
  }

  // Request r9 at offset 9, passed by the executor's stamp 12 without a result read.
  cmp::Missing passed_request_nine() {
    cmp::Missing missing;
    missing.request_id = "r9";
    missing.request.key = "k9";
    missing.request.offset = 9;
    missing.request.statements.push_back({fingerprint_of(select), rows_result(id_and_name(), {{"1", "ada"}})});
    missing.passed_at = 12;
    return missing;
  }

  cmp::Decider decider{cmp::DeciderOptions{false, {}, "comparator-test"}};
  int64_t next_offset = 0;
  const std::string select = "SELECT id, name FROM customers WHERE id = 1";
};

TEST_F(DeciderTest, EqualResultsPublishNothingAndCountTheRequest) {
  const auto rows = std::vector<Row>{{"1", "ada"}};
  auto decision = decider.decide(joined("r1", "k1", select, rows_result(id_and_name(), rows), rows_result(id_and_name(), rows)));
  EXPECT_TRUE(decision.publish.empty());
  EXPECT_TRUE(decision.tally.request);
  decider.count({decision.tally});
  const auto summaries = decider.take_summaries(kNow, {});
  ASSERT_FALSE(summaries.empty());
  EXPECT_EQ(summaries.front().fingerprint, "") << "the whole-stream summary comes first";
  EXPECT_EQ(summaries.front().compared, 1u);
}

TEST_F(DeciderTest, AChangedValueIsAValueMismatchNamingTheColumn) {
  auto decision = decider.decide(joined("r1", "k1", select, rows_result(id_and_name(), {{"1", "ada"}}),
                                        rows_result(id_and_name(), {{"1", "bob"}})));
  ASSERT_EQ(kinds(decision), std::vector<std::string>{"value_mismatch"});
  const auto& record = decision.publish[0];
  EXPECT_EQ(record.request_id, "r1");
  EXPECT_EQ(record.key, "k1");
  EXPECT_EQ(record.columns_differ, std::vector<std::string>{"name"});
  EXPECT_TRUE(record.first_divergence_on_key);
  EXPECT_EQ(decision.tally.discrepancies.size(), 1u);
}

TEST_F(DeciderTest, AnErrorOnlyTheShadowRaisesIsAShadowError) {
  const std::string insert = "INSERT INTO customers (id, name) VALUES (2, 'a long name')";
  wire::StatementResult ok;
  ok.rows = 1;
  auto decision = decider.decide(joined("r1", "k1", insert, ok, error_result("22001")));
  ASSERT_EQ(kinds(decision), std::vector<std::string>{"shadow_error"});
  ASSERT_TRUE(decision.publish[0].shadow.has_value());
  EXPECT_EQ(decision.publish[0].shadow->sqlstate, "22001");
}

TEST_F(DeciderTest, OnlyTheFirstDiscrepancyOnAKeyIsItsCause) {
  auto first = decider.decide(joined("r1", "k1", select, rows_result(id_and_name(), {{"1", "ada"}}),
                                     rows_result(id_and_name(), {{"1", "bob"}})));
  auto echo = decider.decide(joined("r2", "k1", select, rows_result(id_and_name(), {{"1", "ada"}}),
                                    rows_result(id_and_name(), {{"1", "bob"}})));
  auto other_key = decider.decide(joined("r3", "k2", select, rows_result(id_and_name(), {{"1", "ada"}}),
                                         rows_result(id_and_name(), {{"1", "bob"}})));
  ASSERT_EQ(first.publish.size(), 1u);
  ASSERT_EQ(echo.publish.size(), 1u);
  ASSERT_EQ(other_key.publish.size(), 1u);
  EXPECT_TRUE(first.publish[0].first_divergence_on_key);
  EXPECT_FALSE(echo.publish[0].first_divergence_on_key) << "a later discrepancy on a diverged key is an echo";
  EXPECT_TRUE(other_key.publish[0].first_divergence_on_key);
}

TEST_F(DeciderTest, WhatAnEarlierOwnerPublishedIsNotPublishedAgain) {
  auto pair = [&] {
    return joined("r1", "k1", select, rows_result(id_and_name(), {{"1", "ada"}}),
                  rows_result(id_and_name(), {{"1", "bob"}}));
  };
  cmp::Decider fresh{cmp::DeciderOptions{false, {}, "first-owner"}};
  std::swap(fresh, decider);
  const auto published = decider.decide(pair());
  ASSERT_EQ(published.publish.size(), 1u);
  std::swap(fresh, decider);  // the next owner reads back what the first published
  decider.add_reported(published.publish[0], kNow);
  const auto again = decider.decide(pair());
  EXPECT_TRUE(again.publish.empty());
  EXPECT_EQ(again.suppressed, 1u);
  EXPECT_EQ(again.tally.discrepancies.size(), 1u) << "still counted: the count is this owner's to commit";
}

TEST_F(DeciderTest, AWidenedTypeWithEqualValuesIsANoticeOncePerFingerprintNotAMismatch) {
  const auto rows = std::vector<Row>{{"1", "ada"}};
  auto first = decider.decide(
      joined("r1", "k1", select, rows_result(id_and_name(kInt4), rows), rows_result(id_and_name(kInt8), rows)));
  auto second = decider.decide(
      joined("r2", "k2", select, rows_result(id_and_name(kInt4), rows), rows_result(id_and_name(kInt8), rows)));
  EXPECT_EQ(kinds(first), std::vector<std::string>{"type_changed"});
  EXPECT_TRUE(second.publish.empty()) << "a notice is published once per fingerprint and column";
}

TEST_F(DeciderTest, ARequestThePassedExecutorNeverAnsweredIsShadowMissing) {
  const cmp::Missing missing = passed_request_nine();
  auto decision = decider.decide_missing(missing);
  ASSERT_EQ(kinds(decision), std::vector<std::string>{"shadow_missing"});
  EXPECT_EQ(decision.publish[0].request_id, "r9");
  EXPECT_TRUE(decision.tally.request);
}

TEST_F(DeciderTest, APassedRequestWhoseResultRetentionMayHaveDeletedIsNeverComparedNotMissing) {
  cmp::Missing missing = passed_request_nine();
  missing.results_lost = cmp::LostOffsets{30, 50};
  auto decision = decider.decide_never_compared(missing, "shadow.results", 2);
  ASSERT_EQ(kinds(decision), std::vector<std::string>{"comparison_gap"});
  const auto& record = decision.publish[0];
  EXPECT_EQ(record.request_id, "r9") << "the request itself, so the report says which";
  ASSERT_TRUE(record.primary.has_value());
  EXPECT_EQ(record.primary->rows, 1) << "one request never compared";
  EXPECT_NE(record.detail.find("request at offset 9 never compared"), std::string::npos) << record.detail;
  EXPECT_NE(record.detail.find("retention deleted results within offsets 30..49 of shadow.results[2]"), std::string::npos)
      << record.detail;
  EXPECT_FALSE(decision.tally.request) << "nothing was compared: not counted as compared";
  EXPECT_TRUE(decision.tally.discrepancies.empty());
  decider.add_reported(record, kNow);  // the next owner read it back
  const auto again = decider.decide_never_compared(missing, "shadow.results", 2);
  EXPECT_TRUE(again.publish.empty());
  EXPECT_EQ(again.suppressed, 1u);
}

TEST_F(DeciderTest, AGapIsOneShadowGapNamingTheWriteUnits) {
  wire::Gap gap;
  gap.reason = "retention";
  gap.partition = 3;
  gap.from_offset = 20;
  gap.to_offset = 40;
  gap.units = gap.write_units = 20;
  auto decision = decider.decide_gap(gap, "shadow.requests", 41);
  ASSERT_EQ(kinds(decision), std::vector<std::string>{"shadow_gap"});
  EXPECT_NE(decision.publish[0].detail.find("20"), std::string::npos) << decision.publish[0].detail;
}

TEST_F(DeciderTest, RequestsRetentionTookBeforeTheyWereReadAreOneComparisonGapPublishedOnce) {
  auto decision = decider.decide_lost_requests("shadow.requests", 2, 20, 40, kNow);
  ASSERT_EQ(kinds(decision), std::vector<std::string>{"comparison_gap"});
  const auto& record = decision.publish[0];
  EXPECT_EQ(record.request_id, "lost:shadow.requests:2:20") << "deterministic: a replay finds it published";
  ASSERT_TRUE(record.primary.has_value());
  EXPECT_EQ(record.primary->rows, 20) << "the requests never compared";
  EXPECT_NE(record.detail.find("20 requests never compared: retention deleted offsets 20..39 of shadow.requests[2]"),
            std::string::npos)
      << record.detail;
  EXPECT_FALSE(decision.tally.request) << "nothing was compared: no request is counted";
  decider.add_reported(record, kNow);  // the next owner read it back
  const auto again = decider.decide_lost_requests("shadow.requests", 2, 20, 40, kNow);
  EXPECT_TRUE(again.publish.empty());
  EXPECT_EQ(again.suppressed, 1u);
}

TEST_F(DeciderTest, SqlThatDoesNotParseIsAnErrorNamingTheStatement) {
  std::vector<wire::Statement> statements(2);
  statements[0].sql = "SELECT 1";
  statements[1].sql = "SELEC broken FROM";
  const auto registered = decider.register_fingerprints(statements);
  ASSERT_FALSE(registered.ok());
  EXPECT_EQ(registered.error().field, "statements[1].sql");
  EXPECT_FALSE(statements[0].fingerprint.empty()) << "the statements before it are registered";
}

}  // namespace
