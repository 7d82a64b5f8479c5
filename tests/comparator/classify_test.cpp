#include "comparator/classify.hpp"

#include <gtest/gtest.h>

namespace sp = shadowpipe;
namespace cmp = shadowpipe::comparator;

namespace {

sp::wire::StatementResult ok_result(int64_t rows = 2) {
  sp::wire::StatementResult result;
  result.rows = rows;
  result.columns = {{"id", 23}, {"name", 25}};
  result.ordered = 0x1111;
  result.unordered = 0x2222;
  result.column_digests = {0xaaaa, 0xbbbb};
  return result;
}

sp::wire::StatementResult failed(std::string sqlstate, std::string message = "failed") {
  sp::wire::StatementResult result;
  result.status = sp::wire::Status::error;
  result.sqlstate = std::move(sqlstate);
  result.message = std::move(message);
  return result;
}

std::vector<std::string> kinds(const std::vector<cmp::Finding>& findings) {
  std::vector<std::string> out;
  for (const auto& finding : findings) out.push_back(finding.kind);
  return out;
}

using Kinds = std::vector<std::string>;

}  // namespace

TEST(Classify, IdenticalResultsAreNoDiscrepancy) {
  EXPECT_TRUE(cmp::classify_statement(ok_result(), ok_result(), {}, 0).empty());
}

TEST(Classify, ShadowFailureWhenPrimarySucceededIsShadowErrorWithItsEvidence) {
  auto found = cmp::classify_statement(ok_result(), failed("22001", "value too long for type character varying(5)"), {}, 3);
  ASSERT_EQ(kinds(found), Kinds{"shadow_error"});
  EXPECT_EQ(found[0].statement_index, 3);
  EXPECT_NE(found[0].detail.find("22001"), std::string::npos);
  EXPECT_NE(found[0].detail.find("value too long"), std::string::npos);
}

TEST(Classify, ShadowRefusedByTheGuardIsShadowError) {
  auto refused = failed("", "NOTIFY reaches outside the database");
  refused.status = sp::wire::Status::refused;
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(), refused, {}, 0)), Kinds{"shadow_error"});
}

TEST(Classify, PrimaryFailureOnlyIsPrimaryErrorOnly) {
  EXPECT_EQ(kinds(cmp::classify_statement(failed("23505"), ok_result(), {}, 0)), Kinds{"primary_error_only"});
}

TEST(Classify, BothFailingWithDifferentSqlstateIsErrorMismatch) {
  auto found = cmp::classify_statement(failed("23505"), failed("42703"), {}, 0);
  ASSERT_EQ(kinds(found), Kinds{"error_mismatch"});
  EXPECT_NE(found[0].detail.find("23505"), std::string::npos);
  EXPECT_NE(found[0].detail.find("42703"), std::string::npos);
}

TEST(Classify, BothFailingWithTheSameSqlstateIsNoDiscrepancy) {
  EXPECT_TRUE(cmp::classify_statement(failed("23505", "a"), failed("23505", "b"), {}, 0).empty());
}

TEST(Classify, DifferentColumnTypeIsATypeChangedNoticeAndValuesAreStillCompared) {
  auto shadow = ok_result();
  shadow.columns[1].type_oid = 1043;
  auto found = cmp::classify_statement(ok_result(), shadow, {}, 0);
  ASSERT_EQ(kinds(found), Kinds{"type_changed"});
  EXPECT_EQ(found[0].columns_differ, std::vector<std::string>{"name"});
  shadow.column_digests[1] = 0xcccc;
  shadow.unordered = 0x3333;
  found = cmp::classify_statement(ok_result(), shadow, {}, 0);
  ASSERT_EQ(kinds(found), (Kinds{"type_changed", "value_mismatch"}));
  EXPECT_EQ(found[1].columns_differ, std::vector<std::string>{"name"});
}

TEST(Classify, TypesCompareByNameNotOid) {
  auto primary = ok_result();
  auto shadow = ok_result();
  primary.columns[1] = {"name", 16390, "mood"};
  shadow.columns[1] = {"name", 17001, "mood"};  // restored: a new oid, the same type
  EXPECT_TRUE(cmp::classify_statement(primary, shadow, {}, 0).empty());
  shadow.columns[1].type_name = "public.mood";
  auto found = cmp::classify_statement(primary, shadow, {}, 0);
  ASSERT_EQ(kinds(found), Kinds{"type_changed"});
  EXPECT_NE(found[0].detail.find("mood on the primary, public.mood on the shadow"), std::string::npos) << found[0].detail;
  // A side without a name for a user type (an older record): not comparable, not reported.
  shadow.columns[1].type_name.clear();
  EXPECT_TRUE(cmp::classify_statement(primary, shadow, {}, 0).empty());
}

TEST(Classify, RenderedDigestsThatDifferWithEqualCanonicalDigestsAreARepresentationMismatch) {
  auto primary = ok_result();
  auto shadow = ok_result();
  primary.column_values = shadow.column_values = {0x77, 0x88};
  shadow.column_digests[1] = 0xcccc;
  shadow.unordered = 0x3333;
  auto found = cmp::classify_statement(primary, shadow, {}, 0);
  ASSERT_EQ(kinds(found), Kinds{"representation_mismatch"});
  EXPECT_EQ(found[0].columns_differ, std::vector<std::string>{"name"});
  shadow.column_values[1] = 0x99;
  EXPECT_EQ(kinds(cmp::classify_statement(primary, shadow, {}, 0)), Kinds{"value_mismatch"});
}

TEST(Classify, OrderIsTheSequenceOfTheSortKeysThatAreOutputColumns) {
  auto primary = ok_result();
  auto shadow = ok_result();
  primary.column_ordered = {0x10, 0x20};
  shadow.column_ordered = {0x10, 0x21};  // names in another sequence, ids in the same
  shadow.ordered = 0x5555;
  cmp::StatementTraits by_id{.top_level_order_by = true};
  by_id.sort_keys = {sp::statement::SortKey{0, "id", "id", ""}};
  EXPECT_TRUE(cmp::classify_statement(primary, shadow, by_id, 0).empty());  // ties on id: a multiset
  cmp::StatementTraits by_name = by_id;
  by_name.sort_keys = {sp::statement::SortKey{2, "", "", ""}};
  auto found = cmp::classify_statement(primary, shadow, by_name, 0);
  ASSERT_EQ(kinds(found), Kinds{"order_mismatch"});
  EXPECT_EQ(found[0].columns_differ, std::vector<std::string>{"name"});
  cmp::StatementTraits hidden = by_id;
  hidden.sort_keys = {sp::statement::SortKey{0, "", "created", ""}};
  EXPECT_EQ(kinds(cmp::classify_statement(primary, shadow, hidden, 0)), Kinds{"order_not_checked"});
}

TEST(Classify, LimitWithoutAProvenTotalOrderComparesRowCountsOnly) {
  auto shadow = ok_result();
  shadow.unordered = 0x4444;
  shadow.column_digests[0] = 0x1;
  cmp::StatementTraits limited{.top_level_order_by = true};
  limited.limited = true;
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(), shadow, limited, 0)), Kinds{"nondeterministic_result"});
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(2), ok_result(1), limited, 0)),
            (Kinds{"row_count_mismatch"}));
  shadow.order_total = true;  // the shadow's catalog proved the ORDER BY total
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(), shadow, limited, 0)), Kinds{"value_mismatch"});
}

TEST(Classify, AVolatileColumnIsLeftOutAndTheOthersAreCompared) {
  auto shadow = ok_result();
  shadow.unordered = 0x4444;
  shadow.column_digests[1] = 0x1;
  shadow.volatile_columns = {{1, "default now()"}};
  auto found = cmp::classify_statement(ok_result(), shadow, {}, 0);
  ASSERT_EQ(kinds(found), Kinds{"columns_not_compared"});
  EXPECT_EQ(found[0].columns_differ, std::vector<std::string>{"name"});
  shadow.column_digests[0] = 0x2;
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(), shadow, {}, 0)),
            (Kinds{"columns_not_compared", "value_mismatch"}));
}

TEST(Classify, MissingColumnIsSchemaMismatch) {
  auto shadow = ok_result();
  shadow.columns.pop_back();
  shadow.column_digests.pop_back();
  auto found = cmp::classify_statement(ok_result(), shadow, {}, 0);
  ASSERT_EQ(kinds(found), Kinds{"schema_mismatch"});
  EXPECT_EQ(found[0].columns_differ, std::vector<std::string>{"name"});
}

TEST(Classify, DifferentRowCountIsRowCountMismatchAlone) {
  auto shadow = ok_result(3);
  shadow.unordered = 0x9999;
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(2), shadow, {}, 0)), Kinds{"row_count_mismatch"});
}

TEST(Classify, SchemaAndRowCountBothReportedOnce) {
  auto shadow = ok_result(5);
  shadow.columns[0].name = "item_id";
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(2), shadow, {}, 0)),
            (Kinds{"schema_mismatch", "row_count_mismatch"}));
}

TEST(Classify, DifferentValuesNameOnlyTheColumnsWhoseDigestsDiffer) {
  auto shadow = ok_result();
  shadow.unordered = 0x4444;
  shadow.column_digests[1] = 0xdddd;
  auto found = cmp::classify_statement(ok_result(), shadow, {}, 0);
  ASSERT_EQ(kinds(found), Kinds{"value_mismatch"});
  EXPECT_EQ(found[0].columns_differ, std::vector<std::string>{"name"});
  EXPECT_NE(found[0].detail.find("name"), std::string::npos);
}

TEST(Classify, ValuesRecombinedAcrossRowsIsValueMismatchWithoutColumns) {
  auto shadow = ok_result();
  shadow.unordered = 0x4444;
  auto found = cmp::classify_statement(ok_result(), shadow, {}, 0);
  ASSERT_EQ(kinds(found), Kinds{"value_mismatch"});
  EXPECT_TRUE(found[0].columns_differ.empty());
}

TEST(Classify, OrderMattersOnlyWithTopLevelOrderBy) {
  auto shadow = ok_result();
  shadow.ordered = 0x5555;
  EXPECT_TRUE(cmp::classify_statement(ok_result(), shadow, {.top_level_order_by = false}, 0).empty());
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(), shadow, {.top_level_order_by = true}, 0)),
            Kinds{"order_mismatch"});
}

TEST(Classify, VolatileStatementsCompareOnlyErrorsAndRowCounts) {
  auto shadow = ok_result();
  shadow.unordered = 0x4444;
  shadow.ordered = 0x5555;
  shadow.column_digests[0] = 0x1;
  const cmp::StatementTraits volatile_ordered{.top_level_order_by = true, .calls_volatile = true};
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(), shadow, volatile_ordered, 0)), Kinds{"columns_not_compared"});
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(2), ok_result(1), volatile_ordered, 0)),
            Kinds{"row_count_mismatch"});
  EXPECT_EQ(kinds(cmp::classify_statement(ok_result(), failed("57014"), volatile_ordered, 0)), Kinds{"shadow_error"});
}

namespace {
std::vector<cmp::SideStatement> statements(std::vector<sp::wire::StatementResult> results) {
  std::vector<cmp::SideStatement> out;
  for (auto& result : results) out.push_back({"fp" + std::to_string(out.size()), std::move(result)});
  return out;
}
const cmp::StatementTraits* plain(const std::string&) { return nullptr; }
}  // namespace

TEST(ClassifyRequest, EachStatementIsClassifiedWithItsIndex) {
  auto primary = statements({ok_result(), ok_result(), ok_result()});
  auto shadow = statements({ok_result(), failed("22001"), ok_result(4)});
  auto found = cmp::classify_request(primary, shadow, plain);
  ASSERT_EQ(kinds(found), (Kinds{"shadow_error", "row_count_mismatch"}));
  EXPECT_EQ(found[0].statement_index, 1);
  EXPECT_EQ(found[1].statement_index, 2);
}

TEST(ClassifyRequest, DifferentStatementCountIsASchemaMismatchOfTheWholeRequest) {
  auto found = cmp::classify_request(statements({ok_result(), ok_result()}), statements({ok_result()}), plain);
  ASSERT_EQ(kinds(found), Kinds{"schema_mismatch"});
  EXPECT_EQ(found[0].statement_index, -1);
  EXPECT_NE(found[0].detail.find("2 statements"), std::string::npos);
}

TEST(ClassifyRequest, ShadowStoppingAtAReportedFailureIsOnlyThatFailure) {
  auto found = cmp::classify_request(statements({ok_result(), ok_result(), ok_result()}),
                                     statements({ok_result(), failed("22001")}), plain);
  EXPECT_EQ(kinds(found), Kinds{"shadow_error"});
}

TEST(ClassifyRequest, TraitsAreLookedUpByFingerprint) {
  auto shadow = ok_result();
  shadow.ordered = 0x5555;
  static const cmp::StatementTraits kOrdered{.top_level_order_by = true};
  static const cmp::StatementTraits kUnordered{};
  auto ordered_fp1 = [](const std::string& fingerprint) { return fingerprint == "fp1" ? &kOrdered : &kUnordered; };
  auto found = cmp::classify_request(statements({ok_result(), ok_result()}), statements({shadow, shadow}), ordered_fp1);
  ASSERT_EQ(kinds(found), Kinds{"order_mismatch"});
  EXPECT_EQ(found[0].statement_index, 1);
}
