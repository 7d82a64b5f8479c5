// The comparison rules (docs/COMPARISON.md) on real PostgreSQL: each case runs
// one statement on a primary database and on a shadow database whose data or
// schema differs the way a migration or a restore makes it differ, digests
// both results with the one shared digest function, describes the shadow's
// result from its catalog as the executor does, and classifies the pair as the
// comparator does. A false positive here is a verdict that cries wolf.
#include "comparator/classify.hpp"

#include "shadowpipe/catalog.hpp"
#include "shadowpipe/digest.hpp"
#include "shadowpipe/pg_result.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/statement.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

namespace sp = shadowpipe;
namespace cmp = shadowpipe::comparator;
using sp::testing::primary_dsn;
using sp::testing::shadow_dsn;

namespace {

using Kinds = std::vector<std::string>;

// A database of its own on one server, dropped at the end.
class Database {
 public:
  Database(const std::string& server_dsn, const std::string& name) : admin_(server_dsn), name_(name) {
    admin_.exec_checked("CREATE DATABASE " + name_ + " TEMPLATE template0");
    conn_ = std::make_unique<sp::pg::Connection>(server_dsn + " dbname=" + name_);
  }
  ~Database() {
    conn_.reset();
    admin_.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  }
  const sp::pg::Connection& conn() const { return *conn_; }
  void run(const std::string& sql) const { conn_->exec_checked(sql); }

 private:
  sp::pg::Connection admin_;
  std::string name_;
  std::unique_ptr<sp::pg::Connection> conn_;
};

std::string database_name() {
  std::string name = sp::testing::unique_name("cmp");
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// One side's result as its program builds it: the digest of what the server
// returned, types named from that server's catalog.
sp::wire::StatementResult side_result(const sp::pg::Connection& conn, sp::catalog::Catalog& catalog,
                                      const std::string& sql, const sp::digest::NormalizationRules& rules,
                                      const sp::statement::Analysis& analysis, bool describe_from_catalog) {
  sp::pg::Result result = conn.exec(sql);
  EXPECT_TRUE(result.succeeded()) << sql << ": " << result.error_message();
  sp::wire::StatementResult out;
  auto digest = sp::digest::digest_result(result.get(), rules);
  catalog.name_types(digest.columns);
  out.set_digest(digest);
  if (describe_from_catalog) catalog.describe(analysis, result.get(), out);
  return out;
}

class Comparison : public ::testing::Test {
 protected:
  Comparison()
      : name_(database_name()),
        primary_(primary_dsn(), name_),
        shadow_(shadow_dsn(), name_),
        primary_catalog_(primary_.conn()),
        shadow_catalog_(shadow_.conn()) {}

  void both(const std::string& sql) {
    primary_.run(sql);
    shadow_.run(sql);
  }

  std::vector<cmp::Finding> compare(const std::string& sql, const sp::digest::NormalizationRules& rules = {}) {
    auto analysis = sp::statement::analyze(sql);
    EXPECT_TRUE(analysis.ok()) << sql;
    const auto primary = side_result(primary_.conn(), primary_catalog_, sql, rules, *analysis, false);
    const auto shadow = side_result(shadow_.conn(), shadow_catalog_, sql, rules, *analysis, true);
    return cmp::classify_statement(primary, shadow, cmp::traits_of(*analysis), 0);
  }

  // Discrepancies (they count against the verdict), notices apart.
  static Kinds discrepancies(const std::vector<cmp::Finding>& findings) {
    Kinds out;
    for (const auto& finding : findings) {
      if (!sp::wire::is_notice_kind(finding.kind)) out.push_back(finding.kind);
    }
    return out;
  }
  static Kinds notices(const std::vector<cmp::Finding>& findings) {
    Kinds out;
    for (const auto& finding : findings) {
      if (sp::wire::is_notice_kind(finding.kind)) out.push_back(finding.kind);
    }
    return out;
  }
  static const cmp::Finding* find(const std::vector<cmp::Finding>& findings, const std::string& kind) {
    for (const auto& finding : findings) {
      if (finding.kind == kind) return &finding;
    }
    return nullptr;
  }

  std::string name_;
  Database primary_;
  Database shadow_;
  sp::catalog::Catalog primary_catalog_;
  sp::catalog::Catalog shadow_catalog_;
};

// ---- 4. order only where ORDER BY decides it -------------------------------

TEST_F(Comparison, TiesUnderOrderByCompareAsAMultisetAfterThePhysicalOrderChanged) {
  both("CREATE TABLE t (id int PRIMARY KEY, grp int)");
  primary_.run("INSERT INTO t SELECT g, g % 3 FROM generate_series(1, 30) g");
  shadow_.run("INSERT INTO t SELECT g, g % 3 FROM generate_series(30, 1, -1) g");
  const auto found = compare("SELECT id, grp FROM t ORDER BY grp");
  EXPECT_EQ(discrepancies(found), Kinds{});
}

TEST_F(Comparison, AChangedSequenceOfSortKeysIsStillAnOrderMismatch) {
  primary_.run("CREATE TABLE t (id int, name text COLLATE \"C\")");
  shadow_.run("CREATE TABLE t (id int, name text COLLATE \"C\")");
  both("INSERT INTO t VALUES (1, 'b'), (2, 'a'), (3, 'B')");
  // The shadow sorts names case-insensitively: the key sequence changed.
  const auto found = compare("SELECT id, name FROM t ORDER BY name");
  EXPECT_EQ(discrepancies(found), Kinds{});
  shadow_.run("ALTER TABLE t ALTER COLUMN name TYPE text COLLATE \"C\"");
  shadow_.run("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)");
  shadow_.run("ALTER TABLE t ALTER COLUMN name TYPE text COLLATE ci");
  EXPECT_EQ(discrepancies(compare("SELECT id, name FROM t ORDER BY name")), Kinds{"order_mismatch"});
}

TEST_F(Comparison, SortKeysNotInTheOutputCompareAsAMultisetAndSaySo) {
  both("CREATE TABLE t (id int, grp int)");
  primary_.run("INSERT INTO t VALUES (1, 1), (2, 2), (3, 3)");
  shadow_.run("INSERT INTO t VALUES (1, 3), (2, 2), (3, 1)");  // same ids, other order by grp
  const auto found = compare("SELECT id FROM t ORDER BY grp");
  EXPECT_EQ(discrepancies(found), Kinds{});
  EXPECT_EQ(notices(found), Kinds{"order_not_checked"});
}

TEST_F(Comparison, LimitWithoutOrderByComparesRowCountsOnlyAndIsMarkedNonDeterministic) {
  both("CREATE TABLE t (id int, v text)");
  primary_.run("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20) g");
  shadow_.run("INSERT INTO t SELECT g, 'v' || g FROM generate_series(20, 1, -1) g");
  const auto found = compare("SELECT id, v FROM t LIMIT 5");
  EXPECT_EQ(discrepancies(found), Kinds{});
  EXPECT_EQ(notices(found), Kinds{"nondeterministic_result"});
  shadow_.run("DELETE FROM t WHERE id > 3");
  EXPECT_EQ(discrepancies(compare("SELECT id, v FROM t LIMIT 5")), Kinds{"row_count_mismatch"});
}

TEST_F(Comparison, LimitUnderAnOrderByTheCatalogProvesTotalIsComparedInFull) {
  both("CREATE TABLE t (id int PRIMARY KEY, grp int NOT NULL, v text)");
  primary_.run("INSERT INTO t SELECT g, g % 2, 'v' || g FROM generate_series(1, 20) g");
  shadow_.run("INSERT INTO t SELECT g, g % 2, 'v' || g FROM generate_series(20, 1, -1) g");
  // Ties on grp: which rows make the first five is unspecified.
  auto found = compare("SELECT id, v FROM t ORDER BY grp LIMIT 5");
  EXPECT_EQ(discrepancies(found), Kinds{});
  EXPECT_EQ(notices(found), Kinds{"nondeterministic_result"});
  // ORDER BY the primary key is a total order: values count.
  shadow_.run("UPDATE t SET v = 'changed' WHERE id = 2");
  found = compare("SELECT id, v FROM t ORDER BY id LIMIT 5");
  EXPECT_EQ(discrepancies(found), Kinds{"value_mismatch"});
  EXPECT_EQ(notices(found), Kinds{});
  // DISTINCT ON without a total order inside the groups: unspecified rows.
  found = compare("SELECT DISTINCT ON (grp) grp, id FROM t ORDER BY grp");
  EXPECT_EQ(discrepancies(found), Kinds{});
  EXPECT_EQ(notices(found), Kinds{"nondeterministic_result"});
}

// ---- 3. types by name ------------------------------------------------------

TEST_F(Comparison, AWidenedColumnIsOneTypeChangedNoticeWithBothNamesNotASchemaMismatch) {
  primary_.run("CREATE TABLE t (id int)");
  shadow_.run("CREATE TABLE t (id bigint)");
  both("INSERT INTO t VALUES (1), (2)");
  const auto found = compare("SELECT id FROM t ORDER BY id");
  EXPECT_EQ(discrepancies(found), Kinds{});
  ASSERT_EQ(notices(found), Kinds{"type_changed"});
  const auto* notice = find(found, "type_changed");
  EXPECT_EQ(notice->columns_differ, std::vector<std::string>{"id"});
  EXPECT_NE(notice->detail.find("integer"), std::string::npos) << notice->detail;
  EXPECT_NE(notice->detail.find("bigint"), std::string::npos) << notice->detail;
}

TEST_F(Comparison, UnderATypeChangeValuesAndOrderAreStillCompared) {
  primary_.run("CREATE TABLE t (code int)");
  shadow_.run("CREATE TABLE t (code text)");
  both("INSERT INTO t VALUES (9), (10)");
  const auto found = compare("SELECT code FROM t ORDER BY code");  // '10' < '9' as text
  EXPECT_EQ(discrepancies(found), Kinds{"order_mismatch"});
  EXPECT_EQ(notices(found), Kinds{"type_changed"});
}

TEST_F(Comparison, AUserTypeWithAnotherOidAfterRestoreIsTheSameType) {
  shadow_.run("CREATE TYPE filler AS ENUM ('x')");  // moves the shadow's next oid
  both("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
  both("CREATE TABLE t (id int, m mood)");
  both("INSERT INTO t VALUES (1, 'ok'), (2, 'happy')");
  const auto found = compare("SELECT id, m FROM t ORDER BY id");
  EXPECT_EQ(discrepancies(found), Kinds{});
  EXPECT_EQ(notices(found), Kinds{});
}

// ---- 5. volatility per column ------------------------------------------------

TEST_F(Comparison, ATimestampTheDatabaseFilledByDefaultNowIsNotCompared) {
  both("CREATE TABLE ev (id int PRIMARY KEY, name text, created_at timestamptz DEFAULT now())");
  primary_.run("INSERT INTO ev (id, name) VALUES (1, 'a')");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  shadow_.run("INSERT INTO ev (id, name) VALUES (1, 'a')");
  auto found = compare("SELECT id, name, created_at FROM ev WHERE id = 1");
  EXPECT_EQ(discrepancies(found), Kinds{});
  // The other columns still count.
  shadow_.run("UPDATE ev SET name = 'b'");
  found = compare("SELECT id, name, created_at FROM ev WHERE id = 1");
  ASSERT_EQ(discrepancies(found), Kinds{"value_mismatch"});
  EXPECT_EQ(find(found, "value_mismatch")->columns_differ, std::vector<std::string>{"name"});
}

TEST_F(Comparison, IdentityColumnsAreNotCompared) {
  both("CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY, name text)");
  shadow_.run("INSERT INTO t (name) VALUES ('burnt'); DELETE FROM t");  // the shadow's sequence moved on
  both("INSERT INTO t (name) VALUES ('a')");
  EXPECT_EQ(discrepancies(compare("SELECT id, name FROM t")), Kinds{});
}

TEST_F(Comparison, NowInTheSelectListExcludesOnlyItsOwnColumn) {
  both("CREATE TABLE t (id int, name text)");
  primary_.run("INSERT INTO t VALUES (1, 'a')");
  shadow_.run("INSERT INTO t VALUES (1, 'b')");
  const auto found = compare("SELECT id, name, now() AS seen FROM t");
  ASSERT_EQ(discrepancies(found), Kinds{"value_mismatch"});
  EXPECT_EQ(find(found, "value_mismatch")->columns_differ, std::vector<std::string>{"name"});
}

TEST_F(Comparison, AVolatileUserFunctionIsFoundInTheCatalog) {
  both("CREATE TABLE t (id int, name text)");
  both("INSERT INTO t VALUES (1, 'a')");
  both("CREATE FUNCTION stamp() RETURNS text VOLATILE LANGUAGE sql AS $$ SELECT clock_timestamp()::text $$");
  EXPECT_EQ(discrepancies(compare("SELECT id, stamp() AS s FROM t")), Kinds{});
  shadow_.run("UPDATE t SET name = 'b'");
  const auto found = compare("SELECT id, name, stamp() AS s FROM t");
  ASSERT_EQ(discrepancies(found), Kinds{"value_mismatch"});
  EXPECT_EQ(find(found, "value_mismatch")->columns_differ, std::vector<std::string>{"name"});
}

// ---- 6. floats ---------------------------------------------------------------

TEST_F(Comparison, AFloatSumInAnotherOrderIsEqualWithinTheDefaultToleranceAndNotWhenExact) {
  both("CREATE TABLE f (x float8)");
  primary_.run("INSERT INTO f VALUES (0.1), (0.2), (0.3)");
  shadow_.run("INSERT INTO f VALUES (0.3), (0.2), (0.1)");
  const std::string sql = "SELECT sum(x) AS total FROM f";
  // The premise: the two sums render differently (0.6000000000000001 and 0.6).
  ASSERT_NE(primary_.conn().exec(sql).value(0, 0), shadow_.conn().exec(sql).value(0, 0));
  EXPECT_EQ(discrepancies(compare(sql)), Kinds{});
  sp::digest::NormalizationRules exact;
  exact.float_digits.reset();
  EXPECT_EQ(discrepancies(compare(sql, exact)), Kinds{"value_mismatch"});
}

// ---- 7. same value, different representation --------------------------------

TEST_F(Comparison, ANumericScaleChangeIsSameValueDifferentRepresentationApartFromChangedValues) {
  primary_.run("CREATE TABLE t (id int, amount numeric(10,2), price numeric(10,2))");
  shadow_.run("CREATE TABLE t (id int, amount numeric(10,0), price numeric(10,0))");
  both("INSERT INTO t VALUES (1, 300, 300)");
  auto found = compare("SELECT id, amount FROM t");
  ASSERT_EQ(discrepancies(found), Kinds{"representation_mismatch"});
  EXPECT_EQ(find(found, "representation_mismatch")->columns_differ, std::vector<std::string>{"amount"});
  EXPECT_NE(find(found, "representation_mismatch")->detail.find("same value, different representation"),
            std::string::npos);
  primary_.run("UPDATE t SET price = 300.40");
  shadow_.run("UPDATE t SET price = 300.40");  // rounds to 300 on the shadow: a changed value
  found = compare("SELECT id, amount, price FROM t");
  EXPECT_EQ(discrepancies(found), (Kinds{"value_mismatch", "representation_mismatch"}));
  EXPECT_EQ(find(found, "value_mismatch")->columns_differ, std::vector<std::string>{"price"});
}

}  // namespace
