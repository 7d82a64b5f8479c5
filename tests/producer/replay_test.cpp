// shadow-replay's input parsing (JSON lines, .sql files) and the scanner-based
// statement splitter it uses; no servers.
#include "shadowpipe/replay.hpp"
#include "shadowpipe/statement_split.hpp"

#include <gtest/gtest.h>

namespace shadowpipe::replay {
namespace {

TEST(StatementSplitTest, SemicolonsInsideQuotesCommentsAndDollarQuotesDoNotSplit) {
  const std::string text =
      "-- leading comment; not a statement\n"
      "SELECT 'a;b' AS x;\n"
      "SELECT \"odd;name\" FROM t;  /* block; comment */\n"
      "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
      ";;\n"
      "SELECT 3";
  auto pieces = statement::split(text);
  ASSERT_TRUE(pieces.ok()) << pieces.error().describe();
  ASSERT_EQ(pieces->size(), 4u);
  EXPECT_EQ((*pieces)[0].sql, "SELECT 'a;b' AS x");
  EXPECT_EQ((*pieces)[0].line, 2);
  EXPECT_EQ((*pieces)[1].sql, "SELECT \"odd;name\" FROM t");
  EXPECT_EQ((*pieces)[2].sql, "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql");
  EXPECT_EQ((*pieces)[2].line, 4);
  EXPECT_EQ((*pieces)[3].sql, "SELECT 3");
  EXPECT_EQ((*pieces)[3].line, 6);
}

TEST(StatementSplitTest, TextWithoutAKeywordIsKeptSoItCanBeReported) {
  // libpg_query's scanner split drops such stretches; split() must not.
  auto pieces = statement::split("SELECT 1;\nSELEC broken;\n'just a literal';\nSELECT 2;\nnonsense");
  ASSERT_TRUE(pieces.ok()) << pieces.error().describe();
  std::vector<std::string> sql;
  std::vector<int> lines;
  for (const auto& piece : *pieces) {
    sql.push_back(piece.sql);
    lines.push_back(piece.line);
  }
  EXPECT_EQ(sql, (std::vector<std::string>{"SELECT 1", "SELEC broken", "'just a literal'", "SELECT 2", "nonsense"}));
  EXPECT_EQ(lines, (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(StatementSplitTest, UnterminatedQuoteIsAnErrorNamingTheLine) {
  auto pieces = statement::split("SELECT 1;\nSELECT 'open;\n");
  ASSERT_FALSE(pieces.ok());
  EXPECT_EQ(pieces.error().code, ErrorCode::sql_syntax);
  EXPECT_NE(pieces.error().message.find("line 2"), std::string::npos) << pieces.error().message;
}

TEST(ReplayParseTest, JsonLinesGroupConsecutiveTxIntoOneTransaction) {
  const std::string text =
      R"j({"sql": "SELECT $1::int", "params": [41, null, "x", true], "key": "a"})j" "\n"
      R"j({"sql": "INSERT INTO t VALUES ($1)", "params": ["1"], "tx": "g1", "key": "b"})j" "\n"
      R"j({"sql": "UPDATE t SET v = 2", "tx": "g1"})j" "\n"
      R"j({"sql": "UPDATE t SET v = 3", "tx": "g2"})j" "\n"
      "\n"
      R"j({"sql": "SELECT 1", "tx": 7})j" "\n";
  auto parsed = parse_json_lines(text, "default");
  EXPECT_TRUE(parsed.bad.empty());
  EXPECT_EQ(parsed.lines, 5u);
  ASSERT_EQ(parsed.units.size(), 4u);
  EXPECT_FALSE(parsed.units[0].transaction);
  EXPECT_EQ(parsed.units[0].key, "a");
  const std::vector<std::optional<std::string>> params = {"41", std::nullopt, "x", "true"};
  EXPECT_EQ(parsed.units[0].statements[0].params, params);
  EXPECT_TRUE(parsed.units[1].transaction);
  EXPECT_EQ(parsed.units[1].key, "b");
  ASSERT_EQ(parsed.units[1].statements.size(), 2u);
  EXPECT_EQ(parsed.units[1].statements[1].sql, "UPDATE t SET v = 2");
  EXPECT_EQ(parsed.units[2].key, "default");
  EXPECT_EQ(parsed.units[3].line, 6);
}

TEST(ReplayParseTest, BadLinesAreReportedWithTheirNumberAndSkipped) {
  const std::string text =
      R"j({"sql": "SELECT 1"})j" "\n"
      "not json\n"
      R"j({"sql": 5})j" "\n"
      R"j({"params": []})j" "\n"
      R"j({"sql": "SELEC 1"})j" "\n"
      R"j({"sql": "SELECT 1; SELECT 2"})j" "\n"
      R"j({"sql": "SELECT $1", "params": [{"nested": 1}]})j" "\n"
      "[1, 2]\n"
      R"j({"sql": "SELECT 2"})j";
  auto parsed = parse_json_lines(text);
  ASSERT_EQ(parsed.units.size(), 2u);
  ASSERT_EQ(parsed.bad.size(), 7u);
  std::vector<int> lines;
  for (const auto& bad : parsed.bad) lines.push_back(bad.line);
  EXPECT_EQ(lines, (std::vector<int>{2, 3, 4, 5, 6, 7, 8}));
  EXPECT_NE(parsed.bad[2].reason.find("missing_field"), std::string::npos) << parsed.bad[2].reason;
  EXPECT_NE(parsed.bad[3].reason.find("SELEC"), std::string::npos) << parsed.bad[3].reason;
  EXPECT_NE(parsed.bad[5].reason.find("params[0]"), std::string::npos) << parsed.bad[5].reason;
}

TEST(ReplayParseTest, SqlFileBeginCommitMakesOneTransactionAndRollbackIsKept) {
  const std::string text =
      "SELECT 1;\n"
      "BEGIN;\n"
      "INSERT INTO t VALUES (1);\n"
      "SAVEPOINT s; ROLLBACK TO s;\n"
      "COMMIT;\n"
      "START TRANSACTION; DELETE FROM t; ROLLBACK;\n"
      "SELEC broken;\n"
      "BEGIN; SELECT 9;\n";
  auto parsed = parse_sql(text, "file");
  ASSERT_EQ(parsed.units.size(), 3u);
  EXPECT_FALSE(parsed.units[0].transaction);
  EXPECT_TRUE(parsed.units[1].transaction);
  EXPECT_FALSE(parsed.units[1].ends_in_rollback);
  ASSERT_EQ(parsed.units[1].statements.size(), 3u);  // INSERT, SAVEPOINT, ROLLBACK TO
  EXPECT_EQ(parsed.units[1].statements[2].sql, "ROLLBACK TO s");
  EXPECT_TRUE(parsed.units[2].ends_in_rollback);
  EXPECT_EQ(parsed.units[2].key, "file");
  ASSERT_EQ(parsed.bad.size(), 2u);
  EXPECT_EQ(parsed.bad[0].line, 7);  // SELEC broken
  EXPECT_EQ(parsed.bad[1].line, 8);  // a transaction that never ends
}

}  // namespace
}  // namespace shadowpipe::replay
