#include "shadowpipe/digest.hpp"
#include "shadowpipe/pg_result.hpp"

#include "shadowpipe/result.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <new>
#include <set>

// Counts heap allocations so a test can prove the per-row hot path allocates
// nothing once the builder exists. Every form of operator new and delete is
// replaced, so none pairs with the runtime's own (ASan checks the pairing).
namespace {
std::atomic<long> g_allocations{0};

void* counted_allocation(std::size_t size, std::size_t alignment) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
  return std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
}
void* counted_allocation_or_throw(std::size_t size, std::size_t alignment) {
  if (void* p = counted_allocation(size, alignment)) return p;
  throw std::bad_alloc();
}
constexpr std::size_t kDefaultAlignment = alignof(std::max_align_t);
}  // namespace

// Out of line, so GCC does not see free() paired with operator new at call sites.
[[gnu::noinline]] void* operator new(std::size_t n) { return counted_allocation_or_throw(n, kDefaultAlignment); }
[[gnu::noinline]] void* operator new[](std::size_t n) { return counted_allocation_or_throw(n, kDefaultAlignment); }
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t a) {
  return counted_allocation_or_throw(n, static_cast<std::size_t>(a));
}
[[gnu::noinline]] void* operator new[](std::size_t n, std::align_val_t a) {
  return counted_allocation_or_throw(n, static_cast<std::size_t>(a));
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_allocation(n, kDefaultAlignment);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_allocation(n, kDefaultAlignment);
}
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_allocation(n, static_cast<std::size_t>(a));
}
[[gnu::noinline]] void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_allocation(n, static_cast<std::size_t>(a));
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace shadowpipe::digest {
namespace {

constexpr uint32_t kBool = 16, kInt8 = 20, kInt4 = 23, kText = 25, kFloat4 = 700, kFloat8 = 701,
                   kVarchar = 1043, kTime = 1083, kTimestamp = 1114, kTimestamptz = 1184, kTimetz = 1266,
                   kNumeric = 1700;

using Value = std::optional<std::string_view>;
using Row = std::vector<Value>;

// Rule builders: GCC 12 warns on designated initializers that skip fields.
NormalizationRules rules_with(std::optional<int> numeric_scale, std::optional<int> float_digits,
                              std::optional<int> timestamp_precision, std::set<std::string> ignored = {}) {
  return NormalizationRules{numeric_scale, float_digits, timestamp_precision, std::move(ignored)};
}
NormalizationRules numeric_scale(int scale) { return rules_with(scale, std::nullopt, std::nullopt); }
NormalizationRules float_digits(int digits) { return rules_with(std::nullopt, digits, std::nullopt); }
NormalizationRules timestamp_precision(int digits) { return rules_with(std::nullopt, std::nullopt, digits); }
NormalizationRules exact_floats() { return rules_with(std::nullopt, std::nullopt, std::nullopt); }

ResultDigest digest_of(const std::vector<Column>& columns, const std::vector<Row>& rows,
                       const NormalizationRules& rules = {}) {
  DigestBuilder builder(columns, rules);
  for (const Row& row : rows) builder.add_row(row);
  return std::move(builder).finish();
}

// A one-column, one-row result: the unit for checking what a value normalizes to.
ResultDigest single(uint32_t oid, std::string_view value, const NormalizationRules& rules = {}) {
  return digest_of({{"v", oid}}, {{value}}, rules);
}

const std::vector<Column> kThreeColumns = {{"id", kInt4}, {"name", kText}, {"amount", kNumeric}};

std::vector<Row> sample_rows() {
  return {{"1", "alice", "10.50"}, {"2", "bob", "7.25"}, {"3", std::nullopt, "0"}};
}

TEST(Digest, IdenticalInputGivesIdenticalDigest) {
  const ResultDigest a = digest_of(kThreeColumns, sample_rows());
  const ResultDigest b = digest_of(kThreeColumns, sample_rows());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.rows, 3u);
  EXPECT_EQ(a.columns, kThreeColumns);
  EXPECT_EQ(a.column_digests.size(), 3u);
}

TEST(Digest, RowOrderChangesOrderedDigestOnly) {
  std::vector<Row> rows = sample_rows();
  const ResultDigest before = digest_of(kThreeColumns, rows);
  std::swap(rows[0], rows[2]);
  const ResultDigest after = digest_of(kThreeColumns, rows);
  EXPECT_NE(before.ordered, after.ordered);
  EXPECT_EQ(before.unordered, after.unordered);
  EXPECT_EQ(before.column_digests, after.column_digests);
  EXPECT_EQ(before.rows, after.rows);
}

TEST(Digest, ChangedValueChangesExactlyThatColumn) {
  for (size_t column = 0; column < kThreeColumns.size(); ++column) {
    std::vector<Row> rows = sample_rows();
    const ResultDigest before = digest_of(kThreeColumns, rows);
    rows[1][column] = "changed";
    const ResultDigest after = digest_of(kThreeColumns, rows);
    EXPECT_NE(before.ordered, after.ordered) << column;
    EXPECT_NE(before.unordered, after.unordered) << column;
    for (size_t other = 0; other < kThreeColumns.size(); ++other) {
      if (other == column) {
        EXPECT_NE(before.column_digests[other], after.column_digests[other]) << column;
      } else {
        EXPECT_EQ(before.column_digests[other], after.column_digests[other]) << column << " vs " << other;
      }
    }
  }
}

TEST(Digest, NullDiffersFromEmptyString) {
  const ResultDigest null_value = digest_of({{"v", kText}}, {{std::nullopt}});
  const ResultDigest empty_value = digest_of({{"v", kText}}, {{""}});
  EXPECT_NE(null_value.ordered, empty_value.ordered);
  EXPECT_NE(null_value.unordered, empty_value.unordered);
  EXPECT_NE(null_value.column_digests, empty_value.column_digests);
}

TEST(Digest, ValuesAreLengthDelimited) {
  const std::vector<Column> columns = {{"a", kText}, {"b", kText}};
  const ResultDigest ab_c = digest_of(columns, {{"ab", "c"}});
  const ResultDigest a_bc = digest_of(columns, {{"a", "bc"}});
  EXPECT_NE(ab_c.ordered, a_bc.ordered);
  EXPECT_NE(ab_c.unordered, a_bc.unordered);
  // Swapping values between columns is a different row too.
  EXPECT_NE(digest_of(columns, {{"x", "y"}}).unordered, digest_of(columns, {{"y", "x"}}).unordered);
  // Row boundaries matter in the ordered stream: one row ("a","b") is not
  // the same as a NULL-padded split.
  EXPECT_NE(digest_of(columns, {{"a", "b"}}).ordered, digest_of(columns, {{"a", std::nullopt}, {"b", std::nullopt}}).ordered);
}

TEST(Digest, DuplicateRowsCountAsAMultiset) {
  const std::vector<Column> columns = {{"v", kText}};
  const ResultDigest aab = digest_of(columns, {{"a"}, {"a"}, {"b"}});
  const ResultDigest abb = digest_of(columns, {{"a"}, {"b"}, {"b"}});
  EXPECT_EQ(aab.rows, abb.rows);
  EXPECT_NE(aab.unordered, abb.unordered);
  EXPECT_NE(aab.column_digests, abb.column_digests);
  // With XOR, any value seen twice cancels: {a,a} and {b,b} would agree.
  EXPECT_NE(digest_of(columns, {{"a"}, {"a"}}).unordered, digest_of(columns, {{"b"}, {"b"}}).unordered);
  // The row count is part of the multiset digest.
  EXPECT_NE(digest_of(columns, {}).unordered, digest_of(columns, {{"a"}}).unordered);
}

TEST(Digest, EmptyResultAndZeroColumns) {
  const ResultDigest empty = digest_of(kThreeColumns, {});
  EXPECT_EQ(empty.rows, 0u);
  EXPECT_EQ(empty.column_digests.size(), 3u);
  // Rows with no columns are still counted.
  const ResultDigest one = digest_of({}, {Row{}});
  const ResultDigest two = digest_of({}, {Row{}, Row{}});
  EXPECT_NE(one.unordered, two.unordered);
  EXPECT_NE(one.ordered, two.ordered);
}

TEST(Digest, WrongValueCountIsABrokenInvariant) {
  DigestBuilder builder(kThreeColumns, {});
  const Row short_row = {"1", "x"};
  EXPECT_THROW(builder.add_row(short_row), Failure);
}

TEST(Digest, BuilderDoesNotKeepTheRulesObject) {
  // A temporary rules object dies before the rows arrive.
  DigestBuilder builder({{"v", kNumeric}}, numeric_scale(1));
  const Row row = {"1.25"};
  builder.add_row(row);
  EXPECT_EQ(std::move(builder).finish(), single(kNumeric, "1.3", numeric_scale(1)));
}

// --- normalization -----------------------------------------------------------

struct Case {
  uint32_t oid;
  std::string_view input;
  std::string_view expected;  // the text the normalized value must hash as
};

void expect_normalizes(const NormalizationRules& rules, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    // With the rule, the input hashes as exactly `expected` hashed as plain text.
    EXPECT_EQ(single(c.oid, c.input, rules).column_digests, single(kText, c.expected).column_digests)
        << c.input << " should normalize to " << c.expected;
  }
}

TEST(Normalization, NumericRoundsHalfAwayFromZeroOnText) {
  expect_normalizes(numeric_scale(2), {
      {kNumeric, "1.005", "1.01"},
      {kNumeric, "1.004", "1.00"},
      {kNumeric, "1.01", "1.01"},
      {kNumeric, "1", "1.00"},
      {kNumeric, "0.5", "0.50"},
      {kNumeric, "-1.005", "-1.01"},
      {kNumeric, "-1.004", "-1.00"},
      {kNumeric, "-0.001", "0.00"},
      {kNumeric, "9.995", "10.00"},
      {kNumeric, "-99.999", "-100.00"},
      {kNumeric, "123456789012345678901234567890.125", "123456789012345678901234567890.13"},
      {kNumeric, "007.1", "7.10"},
      {kNumeric, ".5", "0.50"},
      {kNumeric, "NaN", "NaN"},
      {kNumeric, "Infinity", "Infinity"},
      {kNumeric, "-Infinity", "-Infinity"},
  });
  expect_normalizes(numeric_scale(0), {
      {kNumeric, "2.5", "3"},
      {kNumeric, "-2.5", "-3"},
      {kNumeric, "2.4999", "2"},
      {kNumeric, "-0.4", "0"},
      {kNumeric, "99.5", "100"},
      {kNumeric, "42", "42"},
  });
}

TEST(Normalization, FloatKeepsSignificantDigits) {
  expect_normalizes(float_digits(3), {
      {kFloat8, "3.14159", "3.14"},
      {kFloat8, "-3.14159", "-3.14"},
      {kFloat8, "1.23456e+20", "1.23e+20"},
      {kFloat8, "0.000123456", "0.000123"},
      {kFloat8, "123456", "1.23e+05"},
      {kFloat8, "100", "100"},
      {kFloat8, "-0", "0"},
      {kFloat8, "NaN", "NaN"},
      {kFloat8, "Infinity", "Infinity"},
      {kFloat8, "-Infinity", "-Infinity"},
      {kFloat4, "2.71828", "2.72"},
  });
  expect_normalizes(float_digits(15), {{kFloat8, "0.30000000000000004", "0.3"}});
}

TEST(Normalization, TimeTruncatesFractionalSecondsAndKeepsZone) {
  expect_normalizes(timestamp_precision(3), {
      {kTimestamptz, "2024-01-02 03:04:05.123456+01", "2024-01-02 03:04:05.123+01"},
      {kTimestamptz, "2024-01-02 03:04:05.1209-08", "2024-01-02 03:04:05.12-08"},
      {kTimestamptz, "2024-01-02 03:04:05.999999+05:30", "2024-01-02 03:04:05.999+05:30"},
      {kTimestamptz, "2024-01-02 03:04:05+05:30", "2024-01-02 03:04:05+05:30"},
      {kTimestamptz, "infinity", "infinity"},
      {kTimestamp, "2024-01-02 03:04:05.5 BC", "2024-01-02 03:04:05.5 BC"},
      {kTimestamp, "2024-01-02 03:04:05.0001", "2024-01-02 03:04:05"},
      {kTime, "03:04:05.98765", "03:04:05.987"},
      {kTimetz, "03:04:05.000001+05:30", "03:04:05+05:30"},
  });
  expect_normalizes(timestamp_precision(0), {
      {kTime, "23:59:59.999999", "23:59:59"},
      {kTimestamptz, "2024-01-02 03:04:05.5+00", "2024-01-02 03:04:05+00"},
  });
}

TEST(Normalization, RulesApplyOnlyToTheirTypes) {
  const NormalizationRules all = rules_with(0, 1, 0);
  // Same texts under other type oids are hashed as they are.
  for (uint32_t oid : {kText, kVarchar, kInt4, kInt8, kBool}) {
    for (std::string_view text : {"1.25", "3.14159", "03:04:05.123"}) {
      EXPECT_EQ(single(oid, text, all).column_digests, single(kText, text).column_digests) << oid << " " << text;
    }
  }
  EXPECT_EQ(single(kNumeric, "3.14159", float_digits(1)), single(kNumeric, "3.14159"));
  EXPECT_EQ(single(kFloat8, "3.14159", numeric_scale(0)), single(kFloat8, "3.14159"));
  EXPECT_EQ(single(kTimestamptz, "2024-01-02 03:04:05.123+00", numeric_scale(0)),
            single(kTimestamptz, "2024-01-02 03:04:05.123+00"));
}

TEST(Normalization, NumericScaleChangesTheDigestOnlyWhereItShould) {
  const std::vector<Column> columns = {{"price", kNumeric}, {"label", kText}};
  const NormalizationRules scale2 = numeric_scale(2);
  const std::vector<Row> a = {{"1.005", "1.005"}};
  const std::vector<Row> b = {{"1.01", "1.005"}};
  // Without the rule the numeric column differs; with it, nothing does.
  EXPECT_NE(digest_of(columns, a).column_digests[0], digest_of(columns, b).column_digests[0]);
  EXPECT_EQ(digest_of(columns, a, scale2), digest_of(columns, b, scale2));
  // The text column is left alone: its 1.005 and 1.01 still differ.
  const std::vector<Row> c = {{"1.005", "1.01"}};
  const ResultDigest a2 = digest_of(columns, a, scale2);
  const ResultDigest c2 = digest_of(columns, c, scale2);
  EXPECT_EQ(a2.column_digests[0], c2.column_digests[0]);
  EXPECT_NE(a2.column_digests[1], c2.column_digests[1]);
  EXPECT_NE(a2.unordered, c2.unordered);
}

TEST(Normalization, IgnoredColumnAffectsNothing) {
  const std::vector<Column> columns = {{"id", kInt4}, {"updated_at", kTimestamptz}, {"name", kText}};
  const std::vector<Row> a = {{"1", "2024-01-01 00:00:00+00", "x"}, {"2", std::nullopt, "y"}};
  const std::vector<Row> b = {{"1", "2025-06-30 12:00:00+00", "x"}, {"2", "2025-06-30 12:00:00+00", "y"}};
  EXPECT_NE(digest_of(columns, a), digest_of(columns, b));

  const NormalizationRules ignore = rules_with(std::nullopt, std::nullopt, std::nullopt, {"updated_at"});
  const ResultDigest da = digest_of(columns, a, ignore);
  EXPECT_EQ(da, digest_of(columns, b, ignore));
  // Left out of columns and column_digests alike; the rest as if it never existed.
  const std::vector<Column> without = {{"id", kInt4}, {"name", kText}};
  EXPECT_EQ(da.columns, without);
  EXPECT_EQ(da, digest_of(without, {{"1", "x"}, {"2", "y"}}));
}

TEST(Normalization, FingerprintOverrideAppliesOnlyToThatFingerprint) {
  const NormalizationConfig config = NormalizationConfig::parse(
      R"({"default": {"float_digits": 6},
          "fingerprints": {"a1b2c3d4e5f60718": {"numeric_scale": 2}}})",
      "inline");
  const NormalizationRules& special = config.for_fingerprint("a1b2c3d4e5f60718");
  const NormalizationRules& other = config.for_fingerprint("ffffffffffffffff");
  EXPECT_EQ(special.numeric_scale, 2);
  EXPECT_EQ(special.float_digits, 6);  // inherited from default
  EXPECT_EQ(&other, &config.defaults());
  EXPECT_EQ(single(kNumeric, "1.005", special), single(kNumeric, "1.01", special));
  EXPECT_NE(single(kNumeric, "1.005", other), single(kNumeric, "1.01", other));
}

TEST(Normalization, SetForFingerprintReplacesRules) {
  NormalizationConfig config(numeric_scale(2));
  config.set_for_fingerprint("fp", float_digits(3));
  EXPECT_FALSE(config.for_fingerprint("fp").numeric_scale.has_value());
  EXPECT_EQ(config.for_fingerprint("fp").float_digits, 3);
  EXPECT_EQ(config.for_fingerprint("nope").numeric_scale, 2);
}

TEST(Normalization, HotPathDoesNotAllocate) {
  const std::vector<Column> columns = {{"id", kInt8},         {"name", kText},   {"amount", kNumeric},
                                       {"at", kTimestamptz},  {"ratio", kFloat8}, {"flag", kBool}};
  DigestBuilder builder(columns, rules_with(2, 6, 3));
  const Row row = {"42", "someone@example.com", "19.999", "2024-01-02 03:04:05.123456+00", "0.123456789",
                   std::nullopt};
  builder.add_row(row);
  const long before = g_allocations.load();
  for (int i = 0; i < 1000; ++i) builder.add_row(row);
  EXPECT_EQ(g_allocations.load() - before, 0);
}

// --- PGresult -------------------------------------------------------------------

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

PgResultPtr make_result(const std::vector<Column>& columns, const std::vector<Row>& rows) {
  PgResultPtr result(PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
  std::vector<std::string> names;
  for (const Column& column : columns) names.push_back(column.name);
  std::vector<PGresAttDesc> attributes(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) {
    attributes[i] = PGresAttDesc{names[i].data(), 0, 0, 0, columns[i].type_oid, -1, -1};
  }
  EXPECT_EQ(PQsetResultAttrs(result.get(), static_cast<int>(columns.size()), attributes.data()), 1);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < columns.size(); ++c) {
      const Value& value = rows[r][c];
      // PQsetvalue copies; a length of -1 means NULL.
      EXPECT_EQ(PQsetvalue(result.get(), static_cast<int>(r), static_cast<int>(c),
                           value ? const_cast<char*>(value->data()) : nullptr,
                           value ? static_cast<int>(value->size()) : -1),
                1);
    }
  }
  return result;
}

TEST(DigestResult, EqualsBuilderOverTheSameRows) {
  const std::vector<Column> columns = {{"id", kInt4}, {"note", kText}, {"price", kNumeric}, {"seen", kTimestamptz}};
  const std::vector<Row> rows = {{"1", "", "1.005", "2024-01-02 03:04:05.123456+00"},
                                 {"2", std::nullopt, std::nullopt, std::nullopt},
                                 {"3", "third", "-7", "infinity"}};
  PgResultPtr result = make_result(columns, rows);
  ASSERT_EQ(PQntuples(result.get()), 3);
  ASSERT_TRUE(PQgetisnull(result.get(), 1, 1));
  ASSERT_FALSE(PQgetisnull(result.get(), 0, 1));

  // digest_result names the built-in types.
  std::vector<Column> named = columns;
  for (auto& column : named) column.type_name = std::string(builtin_type_name(column.type_oid));
  EXPECT_EQ(named[0].type_name, "integer");
  EXPECT_EQ(named[3].type_name, "timestamp with time zone");
  EXPECT_EQ(digest_result(result.get(), {}), digest_of(named, rows));
  const NormalizationRules rules = rules_with(1, std::nullopt, 2, {"id"});
  const ResultDigest with_rules = digest_result(result.get(), rules);
  EXPECT_EQ(with_rules, digest_of(named, rows, rules));
  EXPECT_EQ(with_rules.columns.size(), 3u);
  EXPECT_NE(with_rules, digest_result(result.get(), {}));
}

// Wider than the row buffer digest_result keeps on the stack (32 values),
// with and without ignored columns, and pinned to the digests the code gave
// before it stopped allocating per result: the digest is a wire contract.
TEST(DigestResult, AWideResultDigestsAsBeforeWithAndWithoutIgnoredColumns) {
  constexpr size_t kWidth = 40;
  std::vector<Column> columns;
  std::vector<std::string> texts;
  for (size_t c = 0; c < kWidth; ++c) {
    const uint32_t oid = c % 4 == 0 ? kInt4 : c % 4 == 1 ? kText : c % 4 == 2 ? kNumeric : kFloat8;
    columns.push_back(Column{"column_number_" + std::to_string(c), oid});
  }
  for (size_t r = 0; r < 3; ++r) {
    for (size_t c = 0; c < kWidth; ++c) texts.push_back(std::to_string(r * 1000 + c) + (c % 4 >= 2 ? ".50" : ""));
  }
  std::vector<Row> rows;
  for (size_t r = 0; r < 3; ++r) {
    Row row;
    for (size_t c = 0; c < kWidth; ++c) {
      if ((r + c) % 7 == 0) {
        row.push_back(std::nullopt);
      } else {
        row.push_back(texts[r * kWidth + c]);
      }
    }
    rows.push_back(std::move(row));
  }
  PgResultPtr result = make_result(columns, rows);
  std::vector<Column> named = columns;
  for (auto& column : named) column.type_name = std::string(builtin_type_name(column.type_oid));

  const ResultDigest plain = digest_result(result.get(), {});
  EXPECT_EQ(plain, digest_of(named, rows));
  ASSERT_EQ(plain.columns.size(), kWidth);
  EXPECT_EQ(plain.columns[39].name, "column_number_39");
  EXPECT_EQ(to_hex(plain.ordered), "fd2adbcbb1927bb6");
  EXPECT_EQ(to_hex(plain.unordered), "4c0421c906b79472");
  EXPECT_EQ(to_hex(plain.column_digests[39]), "fab89ebc7bbf5cf1");
  EXPECT_EQ(to_hex(plain.column_ordered[38]), "33b3f93cb9d1f39d");
  EXPECT_EQ(to_hex(plain.column_values[38]), "e9b7715382d842b3");

  const NormalizationRules rules = rules_with(0, std::nullopt, std::nullopt, {"column_number_0", "column_number_35"});
  const ResultDigest ignoring = digest_result(result.get(), rules);
  EXPECT_EQ(ignoring, digest_of(named, rows, rules));
  ASSERT_EQ(ignoring.columns.size(), kWidth - 2);
  EXPECT_EQ(ignoring.columns[0].name, "column_number_1");
  EXPECT_EQ(ignoring.columns[34].name, "column_number_36");
  EXPECT_EQ(to_hex(ignoring.ordered), "4ef20999e0f51175");
  EXPECT_EQ(to_hex(ignoring.unordered), "67416e2053f02d8b");
  EXPECT_EQ(to_hex(ignoring.column_digests[1]), "b1b6fa85f4098856");
  EXPECT_EQ(to_hex(ignoring.column_values[1]), "b1b6fa85f4098856");
}

// A usual result (a few columns) with every rule applied, one column
// ignored (values are then read through the kept columns' indexes) and more
// rows than one batch of the ordered stream (64), pinned to the digests the
// code gives: the digest is a wire contract.
TEST(DigestBuilder, ANarrowResultWithRulesKeepsItsDigests) {
  const std::vector<Column> columns = {{"id", kInt8},        {"name", kText},      {"amount", kNumeric},
                                       {"at", kTimestamptz}, {"ratio", kFloat8},   {"small", kFloat4},
                                       {"flag", kBool},      {"code", kVarchar}};
  std::vector<std::string> texts;
  for (int r = 0; r < 70; ++r) {
    texts.push_back(std::to_string(r));
    texts.push_back("customer-" + std::to_string(r * 7));
    texts.push_back(std::to_string(r) + ".12" + std::to_string(r % 10));
    texts.push_back("2024-01-02 03:04:" + std::to_string(10 + r % 50) + ".123456+00");
    texts.push_back("0." + std::to_string(123456789 + r));
    texts.push_back("1.2345" + std::to_string(r % 10));
    texts.push_back(r % 2 ? "t" : "f");
    texts.push_back("c" + std::to_string(r % 5));
  }
  std::vector<Row> rows;
  for (size_t r = 0; r < 70; ++r) {
    Row row;
    for (size_t c = 0; c < columns.size(); ++c) {
      row.push_back((r + c) % 9 == 0 ? Value() : Value(texts[r * columns.size() + c]));
    }
    rows.push_back(std::move(row));
  }
  const ResultDigest plain = digest_of(columns, rows);
  EXPECT_EQ(to_hex(plain.ordered), "839dde6eac6ce5b6");
  EXPECT_EQ(to_hex(plain.unordered), "7131e486a36d42cf");
  EXPECT_EQ(to_hex(plain.column_digests[2]), "69ecdd6ffcb7fc9a");
  EXPECT_EQ(to_hex(plain.column_ordered[4]), "a12320c61be794b9");
  EXPECT_EQ(to_hex(plain.column_values[2]), "62c2bfa3581b0390");

  const ResultDigest normalized = digest_of(columns, rows, rules_with(2, 6, 3, {"name"}));
  ASSERT_EQ(normalized.columns.size(), columns.size() - 1);
  EXPECT_EQ(normalized.columns[1].name, "amount");
  EXPECT_EQ(to_hex(normalized.ordered), "804cb578069a66df");
  EXPECT_EQ(to_hex(normalized.unordered), "46277c5154a31b36");
  EXPECT_EQ(to_hex(normalized.column_digests[1]), "7d299f00e95d4909");
  EXPECT_EQ(to_hex(normalized.column_digests[2]), "cf46e97960d24a9c");
  EXPECT_EQ(to_hex(normalized.column_ordered[3]), "9f937ff78dffbeac");
  EXPECT_EQ(to_hex(normalized.column_values[1]), "7d299f00e95d4909");
  EXPECT_EQ(to_hex(normalized.column_values[4]), "73904b4c0430ba12");
}

TEST(DigestResult, CommandResultHasNoColumnsOrRows) {
  PgResultPtr result(PQmakeEmptyPGresult(nullptr, PGRES_COMMAND_OK));
  const ResultDigest digest = digest_result(result.get(), {});
  EXPECT_TRUE(digest.columns.empty());
  EXPECT_EQ(digest.rows, 0u);
  EXPECT_EQ(digest, digest_of({}, {}));
}

// --- configuration ---------------------------------------------------------------

TEST(NormalizationConfig, ParsesEveryKey) {
  const NormalizationConfig config = NormalizationConfig::parse(
      R"({"default": {"numeric_scale": 2, "float_digits": 12, "timestamp_precision": 3,
                      "ignored_columns": ["updated_at", "version"]},
          "fingerprints": {"fp1": {"numeric_scale": null, "ignored_columns": []}}})",
      "inline");
  const NormalizationRules expected_default = rules_with(2, 12, 3, {"updated_at", "version"});
  EXPECT_EQ(config.defaults(), expected_default);
  const NormalizationRules expected_fp1 = rules_with(std::nullopt, 12, 3);
  EXPECT_EQ(config.for_fingerprint("fp1"), expected_fp1);
  EXPECT_EQ(NormalizationConfig::parse("{}", "inline").defaults(), NormalizationRules{});
}

void expect_config_error(std::string_view json, const std::string& must_mention) {
  try {
    (void)NormalizationConfig::parse(json, "rules.json");
    ADD_FAILURE() << "accepted: " << json;
  } catch (const Failure& failure) {
    const std::string message = failure.what();
    EXPECT_NE(message.find("rules.json"), std::string::npos) << message;
    EXPECT_NE(message.find(must_mention), std::string::npos) << message << " should mention " << must_mention;
  }
}

TEST(NormalizationConfig, BadInputNamesOriginAndKey) {
  expect_config_error("{not json", "not valid JSON");
  expect_config_error("[1, 2]", "top level");
  expect_config_error(R"({"defaults": {}})", "'defaults'");
  expect_config_error(R"({"default": []})", "'default'");
  expect_config_error(R"({"default": {"numeric_scal": 2}})", "'default.numeric_scal'");
  expect_config_error(R"({"default": {"numeric_scale": "2"}})", "'default.numeric_scale'");
  expect_config_error(R"({"default": {"numeric_scale": 2.5}})", "'default.numeric_scale'");
  expect_config_error(R"({"default": {"numeric_scale": -1}})", "'default.numeric_scale'");
  expect_config_error(R"({"default": {"timestamp_precision": -3}})", "'default.timestamp_precision'");
  expect_config_error(R"({"default": {"timestamp_precision": 7}})", "'default.timestamp_precision'");
  expect_config_error(R"({"default": {"float_digits": 0}})", "'default.float_digits'");
  expect_config_error(R"({"default": {"float_digits": 18}})", "'default.float_digits'");
  expect_config_error(R"({"default": {"ignored_columns": "updated_at"}})", "'default.ignored_columns'");
  expect_config_error(R"({"default": {"ignored_columns": ["a", 3]}})", "'default.ignored_columns[1]'");
  expect_config_error(R"({"fingerprints": []})", "'fingerprints'");
  expect_config_error(R"({"fingerprints": {"fp9": {"float_digits": true}}})", "'fingerprints.fp9.float_digits'");
}

TEST(NormalizationConfig, LoadFileReadsAndNamesTheFile) {
  const std::string path = testing::TempDir() + "digest_test_rules.json";
  {
    std::ofstream out(path);
    out << R"({"default": {"numeric_scale": 4}})";
  }
  EXPECT_EQ(NormalizationConfig::load_file(path).defaults().numeric_scale, 4);
  {
    std::ofstream out(path);
    out << R"({"default": {"numeric_scale": -4}})";
  }
  try {
    (void)NormalizationConfig::load_file(path);
    ADD_FAILURE() << "accepted a negative scale";
  } catch (const Failure& failure) {
    EXPECT_NE(std::string(failure.what()).find(path), std::string::npos) << failure.what();
    EXPECT_NE(std::string(failure.what()).find("default.numeric_scale"), std::string::npos) << failure.what();
  }
  std::remove(path.c_str());
  try {
    (void)NormalizationConfig::load_file(path);
    ADD_FAILURE() << "loaded a missing file";
  } catch (const Failure& failure) {
    EXPECT_NE(std::string(failure.what()).find(path), std::string::npos) << failure.what();
  }
}

// --- hex ---------------------------------------------------------------------------

TEST(Hex, RoundTrips) {
  for (uint64_t value : {uint64_t{0}, uint64_t{1}, uint64_t{0x0123456789abcdef}, ~uint64_t{0}}) {
    const std::string text = to_hex(value);
    EXPECT_EQ(text.size(), 16u);
    EXPECT_EQ(from_hex(text), value);
  }
  EXPECT_EQ(to_hex(0x0123456789abcdef), "0123456789abcdef");
  EXPECT_EQ(to_hex(0), "0000000000000000");
  EXPECT_EQ(from_hex("FEDCBA9876543210"), uint64_t{0xfedcba9876543210});
}

TEST(Hex, RejectsBadText) {
  for (std::string_view bad : {"", "0", "0123456789abcde", "0123456789abcdef0", "0123456789abcdeg",
                               " 123456789abcdef", "0x23456789abcdef", "-123456789abcdef"}) {
    EXPECT_FALSE(from_hex(bad).has_value()) << bad;
  }
}


// ---- canonical values, sequences per column, the default float tolerance -----

TEST(CanonicalValues, EqualNumbersRenderedDifferentlyShareTheValueDigestNotTheRenderedOne) {
  const auto with_scale = single(kNumeric, "300.00", exact_floats());
  const auto integer = single(kInt4, "300", exact_floats());
  EXPECT_NE(with_scale.column_digests, integer.column_digests);
  EXPECT_EQ(with_scale.column_values, integer.column_values);
  const std::pair<std::string_view, std::string_view> same[] = {
      {"-0.50", "-0.5"}, {"0.000", "0"}, {"-0", "0"}, {"1e+20", "100000000000000000000"}, {"1.5e-3", "0.0015"},
      {"007", "7"}, {"+3", "3"}};
  for (const auto& [a, b] : same) {
    EXPECT_EQ(single(kNumeric, a, exact_floats()).column_values, single(kNumeric, b, exact_floats()).column_values)
        << a << " vs " << b;
  }
  EXPECT_NE(single(kNumeric, "300.01", exact_floats()).column_values, single(kInt4, "300", exact_floats()).column_values);
  // What is not a number keeps its text (and reads nothing past it).
  for (std::string_view odd : {"1e", "1e+", "-", "+", ".", "-.", "e5", "1.2.3", "1e5x", "--1", "1e-"}) {
    const std::string owned(odd);  // no terminator to lean on beyond the view
    EXPECT_EQ(single(kNumeric, std::string_view(owned.data(), owned.size()), exact_floats()).column_values,
              single(kText, odd, exact_floats()).column_values)
        << odd;
  }
  EXPECT_NE(single(kNumeric, "30", exact_floats()).column_values, single(kInt4, "300", exact_floats()).column_values);
  EXPECT_EQ(single(kNumeric, "NaN", exact_floats()).column_values, single(kFloat8, "NaN", exact_floats()).column_values);
  // Text is never read as a number: '300.00' and '300' are different strings.
  EXPECT_NE(single(kText, "300.00").column_values, single(kText, "300").column_values);
  // char(n) padding is representation.
  EXPECT_EQ(single(1042, "ab   ").column_values, single(kText, "ab").column_values);
}

TEST(ColumnSequences, ASwapChangesTheColumnsSequenceNotItsMultiset) {
  const std::vector<Column> columns = {{"grp", kInt4}, {"id", kInt4}};
  const auto a = digest_of(columns, {{"1", "10"}, {"1", "11"}, {"2", "12"}});
  const auto b = digest_of(columns, {{"1", "11"}, {"1", "10"}, {"2", "12"}});  // a tie reordered
  EXPECT_EQ(a.column_ordered[0], b.column_ordered[0]);  // the sort key's sequence is the same
  EXPECT_NE(a.column_ordered[1], b.column_ordered[1]);
  EXPECT_EQ(a.unordered, b.unordered);
  EXPECT_NE(a.ordered, b.ordered);
  // NULL and '' differ in a sequence too, and the row count is part of it.
  EXPECT_NE(digest_of({{"v", kText}}, {{std::nullopt}}).column_ordered, digest_of({{"v", kText}}, {{""}}).column_ordered);
}

TEST(FloatTolerance, OnByDefaultAtTwelveDigitsForFloat8AndSixForFloat4) {
  const NormalizationRules defaults;
  ASSERT_EQ(defaults.float_digits, kDefaultFloatDigits);
  EXPECT_EQ(single(kFloat8, "0.6000000000000001", defaults), single(kFloat8, "0.6", defaults));
  EXPECT_NE(single(kFloat8, "0.6000001", defaults), single(kFloat8, "0.6", defaults));
  EXPECT_EQ(single(kFloat4, "0.30000001", defaults), single(kFloat4, "0.3", defaults));
  EXPECT_NE(single(kFloat4, "0.30001", defaults), single(kFloat4, "0.3", defaults));
  EXPECT_NE(single(kFloat8, "0.6000000000000001", exact_floats()), single(kFloat8, "0.6", exact_floats()));
  EXPECT_EQ(NormalizationConfig::parse(R"({"default": {"float_digits": null}})", "test").defaults().float_digits,
            std::nullopt);
}

// The tolerance is a rounding to a grid: two values closer than the grid
// step can still fall on either side of a rounding boundary. Measured here
// on sums of the same 1000 random doubles in two orders.
TEST(FloatTolerance, SumsInAnotherOrderAgreeNearlyAlways) {
  std::mt19937_64 random(42);
  std::uniform_real_distribution<double> value(-1000, 1000);
  int differing_bits = 0, differing_digests = 0;
  const NormalizationRules defaults;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<double> values(1000);
    for (auto& v : values) v = value(random);
    double forward = 0, backward = 0;
    for (double v : values) forward += v;
    for (auto it = values.rbegin(); it != values.rend(); ++it) backward += *it;
    if (forward == backward) continue;
    ++differing_bits;
    char a[32], b[32];
    std::snprintf(a, sizeof a, "%.17g", forward);
    std::snprintf(b, sizeof b, "%.17g", backward);
    if (single(kFloat8, a, defaults) != single(kFloat8, b, defaults)) ++differing_digests;
  }
  EXPECT_GT(differing_bits, 1000);                   // the premise: order changes the bits
  EXPECT_LT(differing_digests * 100, differing_bits);  // under 1% still differ after rounding
  std::printf("float8 sums of 1000 values in two orders: %d of 2000 differ in bits, %d after rounding to %d digits\n",
              differing_bits, differing_digests, kDefaultFloatDigits);
}

}  // namespace
}  // namespace shadowpipe::digest

namespace shadowpipe::digest {
namespace {

TEST(DigestBinaryColumn, BinaryBytesAreNeitherNormalizedNorCanonicalized) {
  // A numeric column digested over its binary bytes (format 1): the text
  // rules would read the bytes as text; both sides hash them as they are,
  // whatever they look like (here bytes that also read as a number's text).
  const std::string bytes("1.250");
  const std::vector<std::optional<std::string_view>> row = {std::string_view(bytes)};
  DigestBuilder ruled({{"v", 1700, "numeric", 1}}, NormalizationRules{1, std::nullopt, std::nullopt, {}});
  ruled.add_row(row);
  DigestBuilder plain({{"v", 1700, "numeric", 1}}, NormalizationRules{});
  plain.add_row(row);
  const auto with_rules = std::move(ruled).finish();
  const auto without = std::move(plain).finish();
  EXPECT_EQ(with_rules, without);
  EXPECT_EQ(without.column_values, without.column_digests);  // the canonical form is the bytes
}

}  // namespace
}  // namespace shadowpipe::digest
