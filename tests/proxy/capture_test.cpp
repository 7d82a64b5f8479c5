// The capture without sockets: protocol messages as a client and a server
// exchange them, fed in the order the proxy would see them; what comes out
// is the units and drops.
#include "shadowpipe/binary_text.hpp"
#include "shadowpipe/proxy/capture.hpp"
#include "shadowpipe/proxy/protocol.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>

namespace shadowpipe::proxy {
namespace {

using Clock = SessionCapture::Clock;
using digest::binary_to_text;

struct Collected : UnitSink {
  std::vector<CapturedUnit> units;
  std::vector<UnitDrop> drops;
  std::vector<std::string> wrote_keys;  // drops that must be announced as gaps
  void unit(CapturedUnit&& unit) override { units.push_back(std::move(unit)); }
  void dropped(UnitDrop why, std::optional<std::string_view> wrote_under_key) override {
    drops.push_back(why);
    if (wrote_under_key) wrote_keys.emplace_back(*wrote_under_key);
  }
};

// Message bodies, written as the protocol does.
struct Body {
  std::string bytes;
  Body& i16(int16_t v) {
    bytes.push_back(static_cast<char>((v >> 8) & 0xFF));
    bytes.push_back(static_cast<char>(v & 0xFF));
    return *this;
  }
  Body& i32(int32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((v >> shift) & 0xFF));
    return *this;
  }
  Body& str(std::string_view s) {
    bytes.append(s);
    bytes.push_back('\0');
    return *this;
  }
  Body& raw(std::string_view s) {
    bytes.append(s);
    return *this;
  }
};

std::string query(std::string_view sql) { return Body().str(sql).bytes; }
std::string parse(std::string_view name, std::string_view sql, const std::vector<uint32_t>& types = {}) {
  Body body;
  body.str(name).str(sql).i16(static_cast<int16_t>(types.size()));
  for (uint32_t type : types) body.i32(static_cast<int32_t>(type));
  return body.bytes;
}
std::string bind(std::string_view portal, std::string_view statement, const std::vector<std::string>& params,
                 int16_t param_format = 0, int16_t result_format = 0) {
  Body body;
  body.str(portal).str(statement).i16(1).i16(param_format).i16(static_cast<int16_t>(params.size()));
  for (const auto& param : params) body.i32(static_cast<int32_t>(param.size())).raw(param);
  body.i16(1).i16(result_format);  // one result format for all columns
  return body.bytes;
}
std::string describe(char what, std::string_view name) {
  Body body;
  body.bytes.push_back(what);
  return body.str(name).bytes;
}
std::string execute(std::string_view portal, int32_t max_rows = 0) { return Body().str(portal).i32(max_rows).bytes; }
std::string row_description(const std::vector<std::pair<std::string, uint32_t>>& columns, int16_t format = 0) {
  Body body;
  body.i16(static_cast<int16_t>(columns.size()));
  for (const auto& [name, oid] : columns) {
    body.str(name).i32(0).i16(0).i32(static_cast<int32_t>(oid)).i16(4).i32(-1).i16(format);
  }
  return body.bytes;
}
std::string data_row(const std::vector<std::optional<std::string>>& values) {
  Body body;
  body.i16(static_cast<int16_t>(values.size()));
  for (const auto& value : values) {
    if (value) {
      body.i32(static_cast<int32_t>(value->size())).raw(*value);
    } else {
      body.i32(-1);
    }
  }
  return body.bytes;
}
std::string complete(std::string_view tag) { return Body().str(tag).bytes; }
std::string error(std::string_view sqlstate, std::string_view message) {
  return Body().raw("SERROR").raw(std::string_view("\0", 1)).raw("C").str(sqlstate).raw("M").str(message).raw(
      std::string_view("\0", 1)).bytes;
}
std::string ready(char status) { return std::string(1, status); }

constexpr uint32_t kInt4 = 23;
constexpr uint32_t kText = 25;

digest::ResultDigest expected_digest(const std::vector<std::pair<std::string, uint32_t>>& columns,
                                     const std::vector<std::vector<std::optional<std::string>>>& rows) {
  std::vector<digest::Column> named;
  for (const auto& [name, oid] : columns) named.push_back({name, oid, std::string(digest::builtin_type_name(oid))});
  digest::DigestBuilder builder(named, digest::NormalizationRules{});
  for (const auto& row : rows) {
    std::vector<std::optional<std::string_view>> values;
    for (const auto& value : row) values.push_back(value ? std::optional<std::string_view>(*value) : std::nullopt);
    builder.add_row(values);
  }
  return std::move(builder).finish();
}

class ProxyCapture : public ::testing::Test {
 protected:
  Collected sink;
  digest::NormalizationConfig normalization;
  SessionCapture capture{sink, "key-1", normalization};
  SessionCapture* fed = &capture;  // the capture client() and server() feed
  Clock::time_point now = Clock::now();
  void client(char type, const std::string& body) { fed->frontend(type, body, now); }
  void server(char type, const std::string& body) {
    now += std::chrono::microseconds(100);
    fed->backend(type, body, now);
  }
};

TEST_F(ProxyCapture, MultiStatementQueryIsOneImplicitTransactionWithAStatementEach) {
  client('Q', query("SELECT 1 AS a; SELECT 'x' AS b"));
  server('T', row_description({{"a", kInt4}}));
  server('D', data_row({"1"}));
  server('C', complete("SELECT 1"));
  server('T', row_description({{"b", kText}}));
  server('D', data_row({"x"}));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u);
  const auto& unit = sink.units[0];
  EXPECT_EQ(unit.tx, wire::TxMode::commit);
  EXPECT_EQ(unit.key, "key-1");
  ASSERT_EQ(unit.statements.size(), 2u);
  EXPECT_EQ(unit.statements[0].sql, "SELECT 1 AS a");
  EXPECT_EQ(unit.statements[1].sql, "SELECT 'x' AS b");
  wire::StatementResult expected;
  expected.set_digest(expected_digest({{"b", kText}}, {{"x"}}));
  EXPECT_EQ(unit.statements[1].result.ordered, expected.ordered);
  EXPECT_EQ(unit.statements[1].result.columns, expected.columns);
  EXPECT_EQ(unit.statements[1].result.rows, 1);
}

TEST_F(ProxyCapture, PipelinedStatementsKeepTheirOwnSqlAndColumns) {
  // Both requests pass before the first answer (psycopg's pipeline mode).
  for (const char* sql : {"SELECT id FROM a WHERE id = $1", "SELECT name FROM b WHERE id = $1"}) {
    client('P', parse("", sql));
    client('B', bind("", "", {"7"}));
    client('D', describe('P', ""));
    client('E', execute(""));
    client('S', "");
  }
  server('1', "");
  server('2', "");
  server('T', row_description({{"id", kInt4}}));
  server('D', data_row({"7"}));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  server('1', "");
  server('2', "");
  server('T', row_description({{"name", kText}}));
  server('D', data_row({"seven"}));
  server('D', data_row({std::nullopt}));
  server('C', complete("SELECT 2"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 2u);
  EXPECT_TRUE(sink.units[0].autocommit);
  EXPECT_EQ(sink.units[0].statements[0].sql, "SELECT id FROM a WHERE id = $1");
  EXPECT_EQ(sink.units[0].statements[0].params, (std::vector<std::optional<std::string>>{"7"}));
  EXPECT_EQ(sink.units[0].statements[0].result.columns[0].name, "id");
  EXPECT_EQ(sink.units[1].statements[0].sql, "SELECT name FROM b WHERE id = $1");
  EXPECT_EQ(sink.units[1].statements[0].result.columns[0].name, "name");
  EXPECT_EQ(sink.units[1].statements[0].result.rows, 2);
  wire::StatementResult expected;
  expected.set_digest(expected_digest({{"name", kText}}, {{"seven"}, {std::nullopt}}));
  EXPECT_EQ(sink.units[1].statements[0].result.unordered, expected.unordered);
}

TEST_F(ProxyCapture, LatencyRunsFromTheRequestToItsCompletionAndPipelinedOnesFromThePreviousEnd) {
  for (const char* sql : {"SELECT 1", "SELECT 2"}) {
    client('P', parse("", sql));
    client('B', bind("", "", {}));
    client('E', execute(""));
  }
  client('S', "");
  server('1', "");  // +100us each
  server('2', "");
  server('C', complete("SELECT 1"));  // +300: the first statement's whole round trip
  server('1', "");
  server('2', "");
  server('C', complete("SELECT 1"));  // +600: 300 after the first ended
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u);
  ASSERT_EQ(sink.units[0].statements.size(), 2u);
  EXPECT_EQ(sink.units[0].statements[0].result.latency_us, 300);
  EXPECT_EQ(sink.units[0].statements[1].result.latency_us, 300);
}

TEST_F(ProxyCapture, AnErrorSkipsTheRestUntilSyncAndTheNextSyncIsItsOwnUnit) {
  client('P', parse("", "INSERT INTO t VALUES ($1)"));
  client('B', bind("", "", {"1"}));
  client('E', execute(""));
  client('P', parse("", "SELECT never_run"));  // skipped by the server after the error
  client('B', bind("", "", {}));
  client('E', execute(""));
  client('S', "");
  client('P', parse("", "SELECT 2"));
  client('B', bind("", "", {}));
  client('D', describe('P', ""));
  client('E', execute(""));
  client('S', "");
  server('1', "");
  server('2', "");
  server('E', error("23505", "duplicate key value"));
  server('Z', ready('I'));
  server('1', "");
  server('2', "");
  server('T', row_description({{"?column?", kInt4}}));
  server('D', data_row({"2"}));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 2u) << "drops: " << sink.drops.size();
  ASSERT_EQ(sink.units[0].statements.size(), 1u);
  EXPECT_EQ(sink.units[0].statements[0].sql, "INSERT INTO t VALUES ($1)");
  EXPECT_EQ(sink.units[0].statements[0].result.status, wire::Status::error);
  EXPECT_EQ(sink.units[0].statements[0].result.sqlstate, "23505");
  EXPECT_EQ(sink.units[1].statements[0].sql, "SELECT 2");
  EXPECT_EQ(sink.units[1].statements[0].result.status, wire::Status::ok);
}

TEST_F(ProxyCapture, TransactionIsOneUnitAndAFailedCommitIsARollback) {
  const std::vector<std::pair<std::string, std::string>> steps = {
      {"BEGIN", "BEGIN"}, {"INSERT INTO t VALUES (1)", "INSERT 0 1"}, {"SAVEPOINT s", "SAVEPOINT"}};
  for (const auto& [sql, tag] : steps) {
    client('Q', query(sql));
    server('C', complete(tag));
    server('Z', ready('T'));
  }
  client('Q', query("INSERT INTO t VALUES (1)"));
  server('E', error("23505", "duplicate"));
  server('Z', ready('E'));
  EXPECT_TRUE(sink.units.empty());
  client('Q', query("COMMIT"));
  server('C', complete("ROLLBACK"));  // COMMIT of a failed transaction
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u);
  EXPECT_EQ(sink.units[0].tx, wire::TxMode::rollback);
  EXPECT_EQ(sink.units[0].statements.size(), 5u);
  EXPECT_EQ(sink.units[0].statements[1].result.rows, 1);
}

TEST_F(ProxyCapture, BinaryParametersDropTheUnitAndCountIt) {
  client('P', parse("", "SELECT $1::int"));
  client('B', bind("", "", {std::string("\0\0\0\7", 4)}, 1));
  client('E', execute(""));
  client('S', "");
  server('1', "");
  server('2', "");
  server('D', data_row({"7"}));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  EXPECT_TRUE(sink.units.empty());
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::binary_parameters});
}

TEST_F(ProxyCapture, BinaryValuesOfTypesWithAFixedTextFormAreRecordedInText) {
  constexpr uint32_t kInt8 = 20;
  client('P', parse("", "SELECT id, owner FROM accounts WHERE id = $1", {kInt8}));
  client('B', bind("", "", {std::string("\0\0\0\0\0\0\0\7", 8)}, 1, 1));
  client('D', describe('P', ""));
  client('E', execute(""));
  client('S', "");
  server('1', "");
  server('2', "");
  server('T', row_description({{"id", kInt4}, {"owner", kText}}, 1));
  server('D', data_row({std::string("\0\0\0\7", 4), "owner 7"}));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u) << "drops: " << sink.drops.size();
  const auto& statement = sink.units[0].statements[0];
  EXPECT_EQ(statement.params, (std::vector<std::optional<std::string>>{"7"}));
  wire::StatementResult expected;
  expected.set_digest(expected_digest({{"id", kInt4}, {"owner", kText}}, {{"7", "owner 7"}}));
  EXPECT_EQ(statement.result.ordered, expected.ordered);
}

TEST_F(ProxyCapture, BinaryResultsOfOtherTypesAreDigestedOverTheirBytes) {
  constexpr uint32_t kNumeric = 1700;
  client('P', parse("", "SELECT id, balance FROM accounts"));
  client('B', bind("", "", {}, 0, 1));
  client('D', describe('P', ""));
  client('E', execute(""));
  client('S', "");
  server('1', "");
  server('2', "");
  server('T', row_description({{"id", kInt4}, {"balance", kNumeric}}, 1));
  const std::string numeric_seven("\0\1\0\0\0\0\0\0\0\7", 10);
  server('D', data_row({std::string("\0\0\0\7", 4), numeric_seven}));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u) << "drops: " << sink.drops.size();
  const auto& statement = sink.units[0].statements[0];
  // The executor asks for binary results too, and digests as the proxy did:
  // int4 rendered as text, numeric over its bytes (column format 1).
  EXPECT_EQ(statement.binding.result_format, 1);
  ASSERT_EQ(statement.result.columns.size(), 2u);
  EXPECT_EQ(statement.result.columns[0].format, 0);
  EXPECT_EQ(statement.result.columns[1].format, 1);
  std::vector<digest::Column> columns = {{"id", kInt4, "integer"}, {"balance", kNumeric, "numeric", 1}};
  digest::DigestBuilder builder(columns, digest::NormalizationRules{});
  builder.add_row(std::vector<std::optional<std::string_view>>{std::string_view("7"), std::string_view(numeric_seven)});
  const auto expected = std::move(builder).finish();
  EXPECT_EQ(statement.result.ordered, expected.ordered);
  EXPECT_EQ(statement.result.column_digests, expected.column_digests);
}

TEST_F(ProxyCapture, BinaryResultsBesideTextColumnsWithoutARenderingDropTheUnit) {
  // PgJDBC-style per-column formats: numeric in binary, a date in text. The
  // executor can only ask for one format for all columns, and could not
  // render the date's binary form as its text: not recordable.
  constexpr uint32_t kNumeric = 1700, kDate = 1082;
  client('P', parse("", "SELECT balance, opened FROM accounts"));
  Body bind_body;
  bind_body.str("").str("").i16(0).i16(0).i16(2).i16(1).i16(0);
  client('B', bind_body.bytes);
  client('D', describe('P', ""));
  client('E', execute(""));
  client('S', "");
  server('1', "");
  server('2', "");
  Body description;
  description.i16(2);
  description.str("balance").i32(0).i16(0).i32(kNumeric).i16(-1).i32(-1).i16(1);
  description.str("opened").i32(0).i16(0).i32(kDate).i16(4).i32(-1).i16(0);
  server('T', description.bytes);
  server('D', data_row({std::string("\0\1\0\0\0\0\0\0\0\7", 10), "2024-01-02"}));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  EXPECT_TRUE(sink.units.empty());
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::binary_results});
}

TEST_F(ProxyCapture, BinaryParametersOfBuiltInTypesStayBinaryWithTheirTypes) {
  constexpr uint32_t kNumeric = 1700, kTimestamptz = 1184;
  // asyncpg: Parse without types, Describe, then the types from ParameterDescription.
  client('P', parse("s1", "SELECT $1::numeric + 1, $2::timestamptz, $3::text, $4::int"));
  client('D', describe('S', "s1"));
  client('S', "");
  server('1', "");
  Body types;
  types.i16(4).i32(kNumeric).i32(kTimestamptz).i32(kText).i32(kInt4);
  server('t', types.bytes);
  server('n', "");
  server('Z', ready('I'));
  const std::string numeric_seven("\0\1\0\0\0\0\0\0\0\7", 10);
  const std::string when("\0\2\xa5\x1b\xc8\x5e\x40\0", 8);
  Body bind_body;
  bind_body.str("").str("s1").i16(1).i16(1).i16(4);
  bind_body.i32(10).raw(numeric_seven).i32(8).raw(when).i32(-1).i32(4).raw(std::string("\0\0\0\x2a", 4));
  bind_body.i16(0);
  client('B', bind_body.bytes);
  client('E', execute(""));
  client('S', "");
  server('2', "");
  server('C', complete("SELECT 0"));  // no rows: the test is about the parameters
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u) << "drops: " << sink.drops.size();
  const auto& statement = sink.units[0].statements[0];
  EXPECT_EQ(statement.params,
            (std::vector<std::optional<std::string>>{numeric_seven, when, std::nullopt, std::string("42")}));
  EXPECT_EQ(statement.binding.param_types, (std::vector<uint32_t>{kNumeric, kTimestamptz, kText, kInt4}));
  // int4 is rendered as text, as before; NULL has no format of its own.
  EXPECT_EQ(statement.binding.param_formats, (std::vector<int16_t>{1, 1, 0, 0}));
}

TEST_F(ProxyCapture, BinaryParametersOfUserTypesDropTheUnit) {
  constexpr uint32_t kUserType = 16501;  // an enum: its OID on the shadow differs
  client('P', parse("", "SELECT $1::mood", {kUserType}));
  client('B', bind("", "", {std::string("happy")}, 1));
  client('E', execute(""));
  client('S', "");
  server('1', "");
  server('2', "");
  server('C', complete("SELECT 0"));
  server('Z', ready('I'));
  EXPECT_TRUE(sink.units.empty());
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::binary_parameters});
}

TEST(ProxyBinaryText, RendersAsTheServerDoes) {
  auto be64 = [](double value) {
    const auto bits = std::bit_cast<uint64_t>(value);
    std::string out;
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((bits >> shift) & 0xFF));
    return out;
  };
  auto be32 = [](float value) {
    const auto bits = std::bit_cast<uint32_t>(value);
    std::string out;
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((bits >> shift) & 0xFF));
    return out;
  };
  // What SELECT x::float8 / x::float4 prints on PostgreSQL 15.
  EXPECT_EQ(binary_to_text(701, be64(100000.0)), "100000");
  EXPECT_EQ(binary_to_text(701, be64(1e15)), "1e+15");
  EXPECT_EQ(binary_to_text(701, be64(123456789012345.0)), "123456789012345");
  EXPECT_EQ(binary_to_text(701, be64(0.0001)), "0.0001");
  EXPECT_EQ(binary_to_text(701, be64(0.00001)), "1e-05");
  EXPECT_EQ(binary_to_text(701, be64(-1.5)), "-1.5");
  EXPECT_EQ(binary_to_text(701, be64(0.1 + 0.2)), "0.30000000000000004");
  EXPECT_EQ(binary_to_text(700, be32(1000000.0f)), "1e+06");
  EXPECT_EQ(binary_to_text(700, be32(100000.0f)), "100000");
  EXPECT_EQ(binary_to_text(16, std::string(1, '\1')), "t");
  EXPECT_EQ(binary_to_text(21, std::string("\xff\xfe", 2)), "-2");
  EXPECT_EQ(binary_to_text(17, std::string("\x01\xab", 2)), "\\x01ab");
  EXPECT_EQ(binary_to_text(2950, std::string(16, '\x11')), "11111111-1111-1111-1111-111111111111");
  EXPECT_EQ(binary_to_text(1700, "anything"), std::nullopt);
  EXPECT_EQ(binary_to_text(23, "abc"), std::nullopt);  // not 4 bytes
}

TEST_F(ProxyCapture, RowLimitedExecutesMakeOneStatementWithAllRows) {
  client('P', parse("s1", "SELECT g FROM generate_series(1, 3) g"));
  client('D', describe('S', "s1"));
  client('S', "");
  server('1', "");
  server('t', Body().i16(0).bytes);
  server('T', row_description({{"g", kInt4}}));
  server('Z', ready('I'));
  client('Q', query("BEGIN"));
  server('C', complete("BEGIN"));
  server('Z', ready('T'));
  client('B', bind("p", "s1", {}));
  client('E', execute("p", 2));
  client('S', "");
  server('2', "");
  server('D', data_row({"1"}));
  server('D', data_row({"2"}));
  server('s', "");
  server('Z', ready('T'));
  client('E', execute("p", 2));
  client('S', "");
  server('D', data_row({"3"}));
  server('C', complete("SELECT 1"));
  server('Z', ready('T'));
  client('Q', query("COMMIT"));
  server('C', complete("COMMIT"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u);
  EXPECT_EQ(sink.units[0].tx, wire::TxMode::commit);
  ASSERT_EQ(sink.units[0].statements.size(), 3u);
  const auto& select = sink.units[0].statements[1];
  EXPECT_EQ(select.sql, "SELECT g FROM generate_series(1, 3) g");
  EXPECT_EQ(select.result.rows, 3);
  wire::StatementResult expected;
  expected.set_digest(expected_digest({{"g", kInt4}}, {{"1"}, {"2"}, {"3"}}));
  EXPECT_EQ(select.result.ordered, expected.ordered);
}

TEST_F(ProxyCapture, ClientGoneInsideATransactionDropsTheUnit) {
  client('Q', query("BEGIN"));
  server('C', complete("BEGIN"));
  server('Z', ready('T'));
  client('Q', query("INSERT INTO t VALUES (1)"));
  server('C', complete("INSERT 0 1"));
  server('Z', ready('T'));
  capture.closed(UnitDrop::client_gone);
  EXPECT_TRUE(sink.units.empty());
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::client_gone});
}

TEST_F(ProxyCapture, CopyToIsDroppedAndCopyFromCarriesItsData) {
  client('Q', query("COPY (SELECT 1) TO STDOUT"));
  server('H', Body().raw(std::string(1, '\0')).i16(0).bytes);
  server('d', "1\n");
  server('c', "");
  server('C', complete("COPY 1"));
  server('Z', ready('I'));
  client('Q', query("COPY t FROM STDIN"));
  server('G', Body().raw(std::string(1, '\0')).i16(0).bytes);
  client('d', "1\n");
  client('d', std::string("2\0\xff\n", 4));  // bytes as they come (binary COPY too)
  client('c', "");
  server('C', complete("COPY 2"));
  server('Z', ready('I'));
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::copy_data}) << "COPY TO STDOUT";
  EXPECT_TRUE(sink.wrote_keys.empty()) << "COPY TO wrote nothing";
  ASSERT_EQ(sink.units.size(), 1u);
  const auto& statement = sink.units[0].statements.at(0);
  EXPECT_EQ(statement.sql, "COPY t FROM STDIN");
  EXPECT_EQ(statement.copy_data, std::string("1\n2\0\xff\n", 6));
  EXPECT_EQ(statement.result.rows, 2);
  EXPECT_TRUE(sink.units[0].writes);
}

class ProxyCaptureSmallCopy : public ProxyCapture {
 protected:
  ProxyCaptureSmallCopy() { fed = &small; }
  SessionCapture small{sink, "key-1", normalization, CaptureLimits{.max_copy_bytes = 4}};
};

TEST_F(ProxyCaptureSmallCopy, CopyFromAboveTheBoundIsDroppedAndAnnouncedForAGap) {
  client('Q', query("COPY t FROM STDIN"));
  server('G', Body().raw(std::string(1, '\0')).i16(0).bytes);
  client('d', "1\n");
  client('d', "22\n");  // 5 bytes in all, over 4
  client('c', "");
  server('C', complete("COPY 2"));
  server('Z', ready('I'));
  EXPECT_TRUE(sink.units.empty());
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::copy_data});
  EXPECT_EQ(sink.wrote_keys, std::vector<std::string>{"key-1"});
  // Within the bound: recorded.
  client('Q', query("COPY t FROM STDIN"));
  server('G', Body().raw(std::string(1, '\0')).i16(0).bytes);
  client('d', "1\n");
  client('c', "");
  server('C', complete("COPY 1"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u);
  EXPECT_EQ(sink.units[0].statements.at(0).copy_data, "1\n");
}

TEST_F(ProxyCaptureSmallCopy, ADroppedUnitThatRolledBackWroteNothing) {
  client('Q', query("BEGIN"));
  server('C', complete("BEGIN"));
  server('Z', ready('T'));
  client('Q', query("COPY t FROM STDIN"));
  server('G', Body().raw(std::string(1, '\0')).i16(0).bytes);
  client('d', "12345\n");
  client('c', "");
  server('C', complete("COPY 1"));
  server('Z', ready('T'));
  client('Q', query("ROLLBACK"));
  server('C', complete("ROLLBACK"));
  server('Z', ready('I'));
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::copy_data});
  EXPECT_TRUE(sink.wrote_keys.empty());
}

TEST_F(ProxyCaptureSmallCopy, CopyDataSentBeforeTheServerAskedIsKeptAndBounded) {
  // asyncpg sends the Query, its CopyData and CopyDone in one go.
  client('Q', query("COPY t FROM STDIN (FORMAT binary)"));
  client('d', "ab");
  client('d', "cd");
  client('c', "");
  server('G', Body().raw(std::string(1, '\1')).i16(0).bytes);
  server('C', complete("COPY 1"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 1u);
  EXPECT_EQ(sink.units[0].statements.at(0).copy_data, "abcd");
  client('Q', query("COPY t FROM STDIN (FORMAT binary)"));
  client('d', "abc");
  client('d', "de");  // over 4
  client('c', "");
  server('G', Body().raw(std::string(1, '\1')).i16(0).bytes);
  server('C', complete("COPY 1"));
  server('Z', ready('I'));
  EXPECT_EQ(sink.units.size(), 1u);
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::copy_data});
  EXPECT_EQ(sink.wrote_keys, std::vector<std::string>{"key-1"});
}

TEST_F(ProxyCapture, CopyFailDropsTheUnitWithoutAGap) {
  client('Q', query("COPY t FROM STDIN"));
  server('G', Body().raw(std::string(1, '\0')).i16(0).bytes);
  client('d', "1\n");
  client('f', Body().str("client gave up").bytes);
  server('E', error("57014", "COPY from stdin failed: client gave up"));
  server('Z', ready('I'));
  EXPECT_TRUE(sink.units.empty());
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::copy_data});
  EXPECT_TRUE(sink.wrote_keys.empty());
}

TEST_F(ProxyCapture, ASqlcommenterShadowKeyTagKeysItsUnit) {
  client('Q', query("BEGIN"));
  server('C', complete("BEGIN"));
  server('Z', ready('T'));
  client('Q', query("UPDATE a SET x = 1 /*action='pay',shadow_key='customer%3A42'*/"));
  server('C', complete("UPDATE 1"));
  server('Z', ready('T'));
  client('Q', query("COMMIT"));
  server('C', complete("COMMIT"));
  server('Z', ready('I'));
  client('Q', query("SELECT 1 /* shadow_key is not a tag here */"));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  ASSERT_EQ(sink.units.size(), 2u);
  EXPECT_EQ(sink.units[0].key, "customer:42");
  EXPECT_EQ(sink.units[1].key, "key-1");
}

// ---- session settings and state ------------------------------------------

class ProxySession : public ProxyCapture {
 protected:
  // One simple Query answered with `tag` (no rows) and ReadyForQuery `status`.
  void run(const std::string& sql, const std::string& tag, char status = 'I') {
    client('Q', query(sql));
    server('C', complete(tag));
    server('Z', ready(status));
  }
  void parameter_status(const std::string& name, const std::string& value) {
    server('S', Body().str(name).str(value).bytes);
  }
  using Extra = std::vector<std::pair<std::string, std::string>>;
  const wire::Session& last_session() { return sink.units.back().session; }
};

TEST_F(ProxySession, WhatASessionSetsIsRecordedWithItsLaterUnits) {
  parameter_status("TimeZone", "UTC");  // at start-up
  run("SET extra_float_digits = 0", "SET");
  ASSERT_EQ(sink.units.size(), 1u);
  EXPECT_TRUE(last_session().extra.empty()) << "a unit is recorded with the settings it began under";
  EXPECT_EQ(last_session().time_zone, "UTC");
  run("SELECT 1", "SELECT 1");
  EXPECT_EQ(last_session().extra, (Extra{{"extra_float_digits", "0"}}));
  run("SET search_path TO app, \"Mixed\"", "SET");
  run("set Bytea_Output = 'escape'", "SET");
  client('Q', query("SET TimeZone = 'Asia/Tokyo'"));  // reported by the server, not read from the text
  server('C', complete("SET"));
  parameter_status("TimeZone", "Asia/Tokyo");
  server('Z', ready('I'));
  run("SELECT 2", "SELECT 1");
  EXPECT_EQ(last_session().search_path, "app, \"Mixed\"");
  EXPECT_EQ(last_session().extra, (Extra{{"bytea_output", "escape"}, {"extra_float_digits", "0"}}));
  EXPECT_EQ(last_session().time_zone, "Asia/Tokyo");
  run("RESET extra_float_digits", "RESET");
  run("SELECT 3", "SELECT 1");
  EXPECT_EQ(last_session().extra, (Extra{{"bytea_output", "escape"}}));
  run("RESET ALL", "RESET");
  run("SELECT 4", "SELECT 1");
  EXPECT_TRUE(last_session().extra.empty());
  EXPECT_EQ(last_session().search_path, "");
  EXPECT_TRUE(sink.drops.empty());
}

TEST_F(ProxySession, RolledBackChangesAndSetLocalDoNotOutliveTheirTransaction) {
  run("BEGIN", "BEGIN", 'T');
  run("SET bytea_output = escape", "SET", 'T');
  run("ROLLBACK", "ROLLBACK");
  run("BEGIN", "BEGIN", 'T');
  run("SET app.kept = '1'", "SET", 'T');
  run("SAVEPOINT s", "SAVEPOINT", 'T');
  run("SET app.undone = '2'", "SET", 'T');
  run("ROLLBACK TO SAVEPOINT s", "ROLLBACK", 'T');
  run("SAVEPOINT t", "SAVEPOINT", 'T');
  run("SET app.released = '3'", "SET", 'T');
  run("RELEASE SAVEPOINT t", "RELEASE", 'T');
  run("SET LOCAL app.local = '4'", "SET", 'T');
  run("COMMIT", "COMMIT");
  run("BEGIN", "BEGIN", 'T');
  run("SET app.failed = '5'", "SET", 'T');
  client('Q', query("SELECT 1/0"));
  server('E', error("22012", "division by zero"));
  server('Z', ready('E'));
  run("COMMIT", "ROLLBACK");  // a failed transaction's COMMIT
  client('Q', query("SET app.implicit = '6'; SELECT 1/0"));
  server('C', complete("SET"));
  server('E', error("22012", "division by zero"));  // ...rolled back by its error
  server('Z', ready('I'));
  run("SELECT 1", "SELECT 1");
  EXPECT_EQ(last_session().extra, (Extra{{"app.kept", "1"}, {"app.released", "3"}}));
}

TEST_F(ProxySession, SetConfigPastItsTransactionIsFollowedWithItsParametersAndDiscardAllForgetsIt) {
  client('P', parse("", "SELECT set_config('MyApp.Tenant', $1, false)"));
  client('B', bind("", "", {"acme"}));
  client('D', describe('P', ""));
  client('E', execute(""));
  client('S', "");
  server('1', "");
  server('2', "");
  server('T', row_description({{"set_config", kText}}));
  server('D', data_row({"acme"}));
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  run("SELECT set_config('app.constant', 'on', false), set_config('app.local', 'x', true)", "SELECT 1");
  run("SELECT 1", "SELECT 1");
  EXPECT_EQ(last_session().extra, (Extra{{"app.constant", "on"}, {"myapp.tenant", "acme"}}));
  EXPECT_TRUE(sink.drops.empty());
  run("DISCARD ALL", "DISCARD ALL");  // cannot run in the executor's transaction: not recorded
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::session_state});
  run("SELECT 2", "SELECT 1");
  EXPECT_TRUE(last_session().extra.empty());
  sink.drops.clear();
  // A name the text does not fix may be the role: the executor refuses it, so it is not recorded.
  client('P', parse("", "SELECT set_config($1, $2, false)"));
  client('B', bind("", "", {"myapp.tenant", "other"}));
  client('E', execute(""));
  client('S', "");
  server('1', "");
  server('2', "");
  server('C', complete("SELECT 1"));
  server('Z', ready('I'));
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>{UnitDrop::session_state});
  run("SELECT 3", "SELECT 1");
  EXPECT_EQ(last_session().extra, (Extra{{"myapp.tenant", "other"}})) << "followed all the same";
}

TEST_F(ProxySession, SettingsFromTheStartupMessageHoldUntilSetAndComeBackAtReset) {
  SessionCapture started{sink, "key-1", normalization};
  started.startup(Body()
                      .str("user").str("app")
                      .str("database").str("shop")
                      .str("options").str("-c search_path=archive,public --extra-float-digits=0 -cbytea_output=escape "
                                          "-c statement_timeout=5s -c app.note=a\\ b")
                      .str("application_name").str("psql")
                      .str("MyApp.Tenant").str("acme")
                      .raw(std::string_view("\0", 1))
                      .bytes);
  auto run_on = [&](const char* sql, const char* tag) {
    started.frontend('Q', query(sql), now);
    started.backend('C', complete(tag), now);
    started.backend('Z', ready('I'), now);
  };
  run_on("SELECT 1", "SELECT 1");
  EXPECT_EQ(last_session().search_path, "archive,public");
  EXPECT_EQ(last_session().extra, (Extra{{"app.note", "a b"}, {"bytea_output", "escape"}, {"extra_float_digits", "0"},
                                         {"myapp.tenant", "acme"}}))
      << "not carried: the timeouts (the executor's), application_name (reported by the server)";
  run_on("SET bytea_output = hex", "SET");
  run_on("SET search_path = public", "SET");
  run_on("SELECT 2", "SELECT 1");
  EXPECT_EQ(last_session().search_path, "public");
  EXPECT_EQ(last_session().extra[1], (std::pair<std::string, std::string>{"bytea_output", "hex"}));
  run_on("RESET ALL", "RESET");
  run_on("SELECT 3", "SELECT 1");
  EXPECT_EQ(last_session().search_path, "archive,public") << "RESET returns to the startup value";
  EXPECT_EQ(last_session().extra[1], (std::pair<std::string, std::string>{"bytea_output", "escape"}));
}

TEST_F(ProxySession, SessionStateTheShadowCannotHoldDropsItsUnitsCounted) {
  // A role: the unit, and every unit after it until the role is reset.
  run("SET ROLE app", "SET");
  run("SELECT 1", "SELECT 1");
  run("RESET ROLE", "RESET");
  run("SELECT 2", "SELECT 1");  // recorded
  run("SELECT set_config('role', 'app', false)", "SELECT 1");
  run("SET SESSION AUTHORIZATION DEFAULT", "SET");
  // Statements prepared by SQL, LISTEN, session advisory locks.
  run("PREPARE p AS SELECT 1", "PREPARE");
  run("EXECUTE p", "SELECT 1");
  run("DEALLOCATE p", "DEALLOCATE");
  run("LISTEN orders", "LISTEN");
  run("SELECT pg_advisory_lock(7)", "SELECT 1");
  run("SELECT pg_advisory_unlock(7)", "SELECT 1");
  // A temporary table: until DISCARD TEMP, the session's units may use it.
  run("CREATE TEMP TABLE scratch (id int)", "CREATE TABLE");
  run("INSERT INTO orders SELECT * FROM scratch", "INSERT 0 1");
  run("DISCARD TEMP", "DISCARD TEMP");
  run("CREATE TEMP TABLE t (id int) ON COMMIT DROP", "CREATE TABLE");  // recorded: it ends with its unit
  // A setting whose value comes from the data: that unit replays it, and
  // the session's settings are unknown after it, until RESET ALL.
  run("SELECT set_config('app.tenant', name, false) FROM tenants LIMIT 1", "SELECT 1");
  run("SELECT 3", "SELECT 1");
  run("RESET ALL", "RESET");
  run("SELECT 4", "SELECT 1");  // recorded
  EXPECT_EQ(sink.drops, std::vector<UnitDrop>(16, UnitDrop::session_state));
  ASSERT_EQ(sink.units.size(), 4u);
  EXPECT_EQ(sink.units[0].statements[0].sql, "SELECT 2");
  EXPECT_EQ(sink.units[1].statements[0].sql, "CREATE TEMP TABLE t (id int) ON COMMIT DROP");
  EXPECT_EQ(sink.units[2].statements[0].sql, "SELECT set_config('app.tenant', name, false) FROM tenants LIMIT 1");
  EXPECT_EQ(sink.units[3].statements[0].sql, "SELECT 4");
  EXPECT_TRUE(sink.units[3].session.extra.empty());
  // The CREATE TEMP TABLE (by its tag, conservatively) and the INSERT into a
  // real table wrote on the primary: announced as gaps.
  EXPECT_EQ(sink.wrote_keys, (std::vector<std::string>{"key-1", "key-1"}));
}

TEST(ProxySessions, OneSessionsSettingsNeverReachAnothersUnits) {
  Collected sink;
  digest::NormalizationConfig normalization;
  SessionCapture first{sink, "a", normalization}, second{sink, "b", normalization};
  auto now = Clock::now();
  auto run = [&](SessionCapture& capture, const char* sql, const char* tag) {
    capture.frontend('Q', query(sql), now);
    capture.backend('C', complete(tag), now);
    capture.backend('Z', ready('I'), now);
  };
  run(first, "SET extra_float_digits = 3", "SET");
  run(second, "SET bytea_output = escape", "SET");
  run(first, "SELECT 1", "SELECT 1");
  run(second, "SELECT 1", "SELECT 1");
  ASSERT_EQ(sink.units.size(), 4u);
  EXPECT_EQ(sink.units[2].session.extra, (std::vector<std::pair<std::string, std::string>>{{"extra_float_digits", "3"}}));
  EXPECT_EQ(sink.units[3].session.extra, (std::vector<std::pair<std::string, std::string>>{{"bytea_output", "escape"}}));
}

TEST_F(ProxyCapture, UnitsSayWhetherTheyWrote) {
  for (const auto& [sql, tag] : std::vector<std::pair<std::string, std::string>>{
           {"SELECT status FROM orders WHERE id = 1 FOR UPDATE", "SELECT 1"},
           {"WITH moved AS (DELETE FROM a RETURNING *) SELECT count(*) FROM moved", "SELECT 1"},
           {"UPDATE a SET x = 1", "UPDATE 3"},
           {"FETCH 5 FROM c", "FETCH 5"}}) {
    client('Q', query(sql));
    server('C', complete(tag));
    server('Z', ready('I'));
  }
  ASSERT_EQ(sink.units.size(), 4u);
  EXPECT_FALSE(sink.units[0].writes);
  EXPECT_TRUE(sink.units[1].writes);
  EXPECT_TRUE(sink.units[2].writes);
  EXPECT_FALSE(sink.units[3].writes);
}

// ---- framing ----------------------------------------------------------------

struct Messages : protocol::MessageFramer::Sink {
  std::vector<std::pair<char, std::string>> seen;
  std::vector<std::pair<char, uint64_t>> skipped_messages;
  void message(char type, std::string_view payload) override { seen.emplace_back(type, payload); }
  void skipped(char type, uint64_t bytes) override { skipped_messages.emplace_back(type, bytes); }
};

std::string framed(char type, std::string_view body) {
  std::string out(1, type);
  Body length;
  length.i32(static_cast<int32_t>(body.size() + 4));
  return out + length.bytes + std::string(body);
}

TEST(ProxyFramer, MessagesSplitAnywhereComeOutWholeAndLargeOnesAreSkippedThrough) {
  const std::string stream = framed('Q', query("SELECT 1")) + framed('D', std::string(100, 'x')) + framed('S', "");
  protocol::MessageFramer framer(64);
  Messages messages;
  for (char byte : stream) ASSERT_TRUE(framer.feed(std::string_view(&byte, 1), messages));
  ASSERT_EQ(messages.seen.size(), 2u);
  EXPECT_EQ(messages.seen[0], (std::pair<char, std::string>{'Q', query("SELECT 1")}));
  EXPECT_EQ(messages.seen[1].first, 'S');
  EXPECT_EQ(messages.skipped_messages, (std::vector<std::pair<char, uint64_t>>{{'D', 100}}));
  EXPECT_TRUE(framer.at_boundary());
}

TEST(ProxyFramer, ALengthBelowFourIsNotTheProtocol) {
  protocol::MessageFramer framer(1024);
  Messages messages;
  EXPECT_FALSE(framer.feed(std::string("Q\0\0\0\3", 5), messages));
  EXPECT_TRUE(framer.failed());
}

TEST(ProxyProtocol, CommandTagRowsAsLibpqCountsThem) {
  EXPECT_EQ(protocol::command_rows("INSERT 0 5"), 5);
  EXPECT_EQ(protocol::command_rows("UPDATE 3"), 3);
  EXPECT_EQ(protocol::command_rows("SELECT 0"), 0);
  EXPECT_EQ(protocol::command_rows("CREATE TABLE"), std::nullopt);
  const auto fields = protocol::parse_error(error("42P01", "no such table"));
  EXPECT_EQ(fields.sqlstate, "42P01");
  EXPECT_EQ(fields.message, "no such table");
}

TEST(ProxyProtocol, StartupParametersAreReadByNameAndAMalformedListYieldsNothing) {
  const auto startup = [](std::string pairs) {
    std::string message(8, '\0');
    message += pairs;
    message += '\0';
    return message;
  };
  const std::string message = startup(std::string("user\0app\0database\0shop\0application_name\0web\0", 42));
  EXPECT_EQ(protocol::startup_parameter(message, "database"), "shop");
  EXPECT_EQ(protocol::startup_parameter(message, "user"), "app");
  EXPECT_EQ(protocol::startup_parameter(message, "options"), "");
  EXPECT_EQ(protocol::startup_parameter(startup(std::string("user\0app\0", 9)), "database"), "");
  // A value cut off without its NUL is not read past the message's end.
  EXPECT_EQ(protocol::startup_parameter(std::string(8, '\0') + std::string("database\0sh", 11), "database"), "");
  EXPECT_EQ(protocol::startup_parameter("short", "user"), "");
}

}  // namespace
}  // namespace shadowpipe::proxy
