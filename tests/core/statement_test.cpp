#include "shadowpipe/statement.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace shadowpipe::statement {
namespace {

Analysis analyzed(std::string_view sql) {
  auto result = analyze(sql);
  if (!result.ok()) {
    ADD_FAILURE() << "analyze(" << sql << ") failed: " << result.error().describe();
    return {};
  }
  return std::move(result).value();
}

bool contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// ---- kind --------------------------------------------------------------------

struct KindCase {
  const char* sql;
  Kind kind;
};

class KindTest : public ::testing::TestWithParam<KindCase> {};

TEST_P(KindTest, Classifies) {
  EXPECT_EQ(to_string(analyzed(GetParam().sql).kind), to_string(GetParam().kind)) << GetParam().sql;
}

INSTANTIATE_TEST_SUITE_P(
    Statements, KindTest,
    ::testing::Values(
        KindCase{"SELECT id, name FROM users WHERE id = 42", Kind::read},
        KindCase{"VALUES (1, 'a'), (2, 'b')", Kind::read},
        KindCase{"TABLE users", Kind::read},
        KindCase{"SHOW search_path", Kind::read},
        KindCase{"EXPLAIN SELECT * FROM users", Kind::read},
        KindCase{"EXPLAIN INSERT INTO t VALUES (1)", Kind::read},  // not executed
        KindCase{"EXPLAIN (ANALYZE false) DELETE FROM t", Kind::read},
        KindCase{"EXPLAIN (ANALYZE 0) DELETE FROM t", Kind::read},
        KindCase{"EXPLAIN ANALYZE SELECT 1", Kind::read},
        KindCase{"COPY users TO STDOUT", Kind::read},
        KindCase{"DECLARE c CURSOR FOR SELECT * FROM users", Kind::read},
        KindCase{"FETCH 10 FROM c", Kind::read},
        KindCase{"SELECT * FROM (SELECT * FROM t ORDER BY a) s", Kind::read},
        KindCase{"INSERT INTO users (name) VALUES ('ann')", Kind::write},
        KindCase{"UPDATE users SET name = 'bob' WHERE id = 1", Kind::write},
        KindCase{"DELETE FROM users WHERE id = 1", Kind::write},
        KindCase{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v", Kind::write},
        KindCase{"SELECT * FROM users WHERE id = 1 FOR UPDATE", Kind::write},
        KindCase{"SELECT * FROM (SELECT * FROM users FOR SHARE) s", Kind::write},
        KindCase{"SELECT * INTO archive FROM users", Kind::write},
        KindCase{"WITH moved AS (DELETE FROM a RETURNING *) SELECT count(*) FROM moved", Kind::write},
        KindCase{"SELECT nextval('users_id_seq')", Kind::write},
        KindCase{"EXPLAIN ANALYZE UPDATE t SET a = 1", Kind::write},
        KindCase{"EXPLAIN (ANALYZE on) DELETE FROM t", Kind::write},
        KindCase{"COPY users FROM STDIN", Kind::write},
        KindCase{"COPY (INSERT INTO t VALUES (1) RETURNING id) TO STDOUT", Kind::write},
        KindCase{"CALL refresh_totals()", Kind::write},
        KindCase{"DO $$ BEGIN UPDATE t SET a = 1; END $$", Kind::write},
        KindCase{"REFRESH MATERIALIZED VIEW totals", Kind::write},
        KindCase{"CREATE TABLE t (id bigint PRIMARY KEY)", Kind::ddl},
        KindCase{"ALTER TABLE users ADD COLUMN email text", Kind::ddl},
        KindCase{"DROP INDEX users_name_idx", Kind::ddl},
        KindCase{"TRUNCATE users", Kind::ddl},
        KindCase{"COMMENT ON TABLE users IS 'people'", Kind::ddl},
        KindCase{"GRANT SELECT ON users TO reader", Kind::ddl},
        KindCase{"CREATE INDEX CONCURRENTLY i ON t (a)", Kind::ddl},
        KindCase{"CREATE TABLE copy AS SELECT * FROM users", Kind::ddl},
        KindCase{"ALTER TABLE users RENAME TO people", Kind::ddl},
        KindCase{"BEGIN", Kind::transaction_control},
        KindCase{"START TRANSACTION ISOLATION LEVEL SERIALIZABLE", Kind::transaction_control},
        KindCase{"COMMIT", Kind::transaction_control},
        KindCase{"ROLLBACK TO SAVEPOINT s1", Kind::transaction_control},
        KindCase{"SAVEPOINT s1", Kind::transaction_control},
        KindCase{"SET TRANSACTION READ ONLY", Kind::transaction_control},
        KindCase{"SET CONSTRAINTS ALL DEFERRED", Kind::transaction_control},
        KindCase{"SET statement_timeout = '5s'", Kind::utility},
        KindCase{"RESET ALL", Kind::utility},
        KindCase{"VACUUM ANALYZE users", Kind::utility},
        KindCase{"ANALYZE users", Kind::utility},
        KindCase{"LISTEN jobs", Kind::utility},
        KindCase{"NOTIFY jobs, 'x'", Kind::utility},
        KindCase{"LOCK TABLE users IN SHARE MODE", Kind::utility},
        KindCase{"PREPARE q AS INSERT INTO t VALUES ($1)", Kind::utility},
        KindCase{"DISCARD ALL", Kind::utility}));

TEST(StatementKind, MultipleStatementsTakeTheStrongestKind) {
  EXPECT_EQ(analyzed("BEGIN; SELECT 1; COMMIT").kind, Kind::transaction_control);
  EXPECT_EQ(analyzed("BEGIN; INSERT INTO t VALUES (1); COMMIT").kind, Kind::write);
  EXPECT_EQ(analyzed("SELECT 1; SET search_path = app").kind, Kind::utility);
  EXPECT_EQ(analyzed("INSERT INTO t VALUES (1); ALTER TABLE t ADD c int; SELECT 1").kind, Kind::ddl);
  EXPECT_EQ(analyzed("SELECT 1; SELECT 2").kind, Kind::read);
}

TEST(StatementKind, TransactionControlIsSeenUnderAStrongerKind) {
  EXPECT_TRUE(analyzed("BEGIN; UPDATE t SET a = 1; COMMIT").has_transaction_control);
  EXPECT_TRUE(analyzed("ROLLBACK; INSERT INTO t VALUES (1)").has_transaction_control);
  EXPECT_TRUE(analyzed("COMMIT").has_transaction_control);
  EXPECT_FALSE(analyzed("UPDATE t SET a = 1; SELECT 1").has_transaction_control);
}

TEST(StatementSession, ClientCopyAndSessionStateAreFlagged) {
  EXPECT_TRUE(analyzed("COPY t FROM STDIN").copies_client_data);
  EXPECT_TRUE(analyzed("COPY (SELECT 1) TO STDOUT").copies_client_data);
  EXPECT_FALSE(analyzed("COPY t TO '/tmp/t.csv'").copies_client_data);
  EXPECT_FALSE(analyzed("SELECT 1").copies_client_data);
  EXPECT_TRUE(analyzed("COPY t FROM STDIN (FORMAT binary)").copies_from_client);
  EXPECT_FALSE(analyzed("COPY (SELECT 1) TO STDOUT").copies_from_client);
  EXPECT_FALSE(analyzed("COPY t FROM '/tmp/t.csv'").copies_from_client);
  for (const char* sql : {"SET ROLE app", "RESET ROLE", "SET SESSION AUTHORIZATION app",
                          "RESET SESSION AUTHORIZATION", "SELECT pg_advisory_lock(1)",
                          "SELECT pg_try_advisory_lock_shared(1, 2)", "PREPARE p AS SELECT 1",
                          "DECLARE c CURSOR WITH HOLD FOR SELECT 1", "SELECT set_config($1, 'app', false)",
                          "SELECT set_config('role', 'app', $1)", "LISTEN ch", "CREATE TEMP TABLE s (id int)",
                          "CREATE TEMPORARY TABLE s AS SELECT 1", "SELECT 1 INTO TEMP s", "CREATE TEMP VIEW v AS SELECT 1",
                          "CREATE TEMP SEQUENCE q"}) {
    EXPECT_FALSE(analyzed(sql).session_reasons.empty()) << sql;
  }
  EXPECT_NE(analyzed("SELECT set_config('role', 'admin', false)").session_reasons.at(0).find("like SET ROLE"),
            std::string::npos);
  for (const char* sql : {"SET LOCAL ROLE app", "SELECT pg_advisory_xact_lock(1)", "SET search_path = app",
                          "DECLARE c CURSOR FOR SELECT 1", "SELECT 1", "SELECT set_config('search_path', 'app', true)",
                          "SELECT set_config('role', 'app', 'true')", "CREATE TEMP TABLE s (id int) ON COMMIT DROP",
                          "CREATE TABLE s (id int)", "CREATE UNLOGGED TABLE s (id int)",
                          // A setting past the transaction, not a role: replayed like SET and reset after the unit.
                          "SELECT set_config('search_path', 'app', false)", "SELECT set_config('x.y', '1', $1)",
                          "SELECT set_config('x.y', '1', 'off'::boolean)"}) {
    EXPECT_TRUE(analyzed(sql).session_reasons.empty()) << sql;
  }
  EXPECT_TRUE(analyzed("CREATE TEMP TABLE s (id int)").makes_temporary_objects);
  EXPECT_FALSE(analyzed("CREATE TEMP TABLE s (id int) ON COMMIT DROP").makes_temporary_objects);
  for (const char* sql : {"EXECUTE p(1)", "DEALLOCATE p", "DEALLOCATE ALL", "UNLISTEN *", "SELECT pg_advisory_unlock(1)",
                          "SELECT pg_advisory_unlock_all()"}) {
    EXPECT_FALSE(analyzed(sql).session_uses.empty()) << sql;
  }
  EXPECT_TRUE(analyzed("SELECT pg_advisory_xact_lock(1)").session_uses.empty());
  // What takes a replayer's own prepared statements away, in any text.
  for (const char* sql : {"DEALLOCATE p", "DEALLOCATE ALL", "DEALLOCATE PREPARE ALL", "DISCARD ALL",
                          "SELECT 1; DEALLOCATE ALL; INSERT INTO t VALUES (1)"}) {
    EXPECT_TRUE(analyzed(sql).drops_prepared_statements) << sql;
  }
  for (const char* sql : {"DISCARD TEMP", "DISCARD PLANS", "RESET ALL", "SET search_path = app", "EXECUTE p(1)", "SELECT 1"}) {
    EXPECT_FALSE(analyzed(sql).drops_prepared_statements) << sql;
  }
  // The names it uses, as the server folds them; none for DEALLOCATE ALL.
  using Names = std::vector<std::string>;
  EXPECT_EQ(analyzed("EXECUTE p(1)").prepared_names_used, Names{"p"});
  EXPECT_EQ(analyzed("EXECUTE Shadowpipe_Fence('g', 't', 0, 0)").prepared_names_used, Names{"shadowpipe_fence"});
  EXPECT_EQ(analyzed("DEALLOCATE PREPARE \"Q\"").prepared_names_used, Names{"Q"});
  EXPECT_EQ(analyzed("SELECT 1; DEALLOCATE a; EXECUTE b").prepared_names_used, (Names{"a", "b"}));
  // Inside another statement, which runs it too.
  EXPECT_EQ(analyzed("EXPLAIN ANALYZE EXECUTE shadowpipe_batch_log('g', 't', 0, 1)").prepared_names_used,
            Names{"shadowpipe_batch_log"});
  EXPECT_EQ(analyzed("CREATE TABLE x AS EXECUTE shadowpipe_fence('g', 't', 0, 1)").prepared_names_used,
            Names{"shadowpipe_fence"});
  EXPECT_EQ(analyzed("EXPLAIN EXECUTE p").prepared_names_used, Names{"p"});
  for (const char* sql : {"DEALLOCATE ALL", "DEALLOCATE PREPARE ALL", "DISCARD ALL", "PREPARE p AS SELECT 1", "SELECT 1"}) {
    EXPECT_TRUE(analyzed(sql).prepared_names_used.empty()) << sql;
  }
}

// The settings a statement changes, as a capture that follows a session reads them.
TEST(StatementSession, SettingChangesAreReadFromSetResetSetConfigAndDiscard) {
  using SC = shadowpipe::statement::SettingChange;
  auto only = [](const char* sql) {
    auto changes = analyzed(sql).setting_changes;
    EXPECT_EQ(changes.size(), 1u) << sql;
    return changes.empty() ? SC{} : changes[0];
  };
  SC change = only("SET extra_float_digits = 0");
  EXPECT_EQ(change.kind, SC::Kind::set);
  EXPECT_EQ(change.name, "extra_float_digits");
  EXPECT_EQ(change.value, "0");
  EXPECT_FALSE(change.local);
  EXPECT_TRUE(change.known);
  EXPECT_EQ(only("SET extra_float_digits TO -2").value, "-2");
  EXPECT_EQ(only("set Bytea_Output to 'escape'").name, "bytea_output");
  EXPECT_EQ(only("SET bytea_output = escape").value, "escape");
  EXPECT_EQ(only("SET search_path TO app, \"Mixed\", public").value, "app, \"Mixed\", public");
  EXPECT_EQ(only("SET search_path = '$user', public").value, "\"$user\", public");
  EXPECT_EQ(only("SET SCHEMA 'app'").name, "search_path");
  EXPECT_EQ(only("SET random_page_cost = 1.5").value, "1.5");
  EXPECT_EQ(only("SET myapp.tenant = 'acme'").name, "myapp.tenant");
  EXPECT_TRUE(only("SET LOCAL work_mem = '64MB'").local);
  EXPECT_EQ(only("RESET work_mem").kind, SC::Kind::reset);
  EXPECT_EQ(only("SET work_mem TO DEFAULT").kind, SC::Kind::reset);
  EXPECT_EQ(only("RESET ALL").kind, SC::Kind::reset_all);
  EXPECT_EQ(only("DISCARD ALL").kind, SC::Kind::discard_all);
  EXPECT_EQ(only("DISCARD TEMP").kind, SC::Kind::discard_temp);
  EXPECT_TRUE(analyzed("DISCARD PLANS").setting_changes.empty());
  EXPECT_TRUE(analyzed("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").setting_changes.empty());
  EXPECT_FALSE(only("SET work_mem FROM CURRENT").known);
  EXPECT_EQ(only("SET ROLE app").name, "role");

  change = only("SELECT set_config('Search_Path', 'app', false)");
  EXPECT_EQ(change.name, "search_path");
  EXPECT_EQ(change.value, "app");
  EXPECT_FALSE(change.local);
  EXPECT_TRUE(change.known);
  change = only("SELECT set_config($1, $2::text, false)");
  EXPECT_EQ(change.name_param, 1);
  EXPECT_EQ(change.value_param, 2);
  EXPECT_TRUE(change.known);
  EXPECT_TRUE(only("SELECT set_config('x.y', '1', true)").local);
  EXPECT_FALSE(only("SELECT set_config('x.y', '1', $1)").known);
  EXPECT_FALSE(only("SELECT set_config('x.y', name, false) FROM t").known);
  EXPECT_EQ(analyzed("SET a.b = 1; RESET a.b").setting_changes.size(), 2u);
}

TEST(StatementKind, NamesEveryKind) {
  EXPECT_EQ(to_string(Kind::read), "read");
  EXPECT_EQ(to_string(Kind::write), "write");
  EXPECT_EQ(to_string(Kind::ddl), "ddl");
  EXPECT_EQ(to_string(Kind::transaction_control), "transaction_control");
  EXPECT_EQ(to_string(Kind::utility), "utility");
}

// ---- ORDER BY ----------------------------------------------------------------

TEST(StatementOrder, TopLevelOrderByOrdersTheResult) {
  EXPECT_TRUE(analyzed("SELECT * FROM users ORDER BY id").top_level_order_by);
  EXPECT_TRUE(analyzed("SELECT * FROM users ORDER BY id LIMIT 10").top_level_order_by);
  EXPECT_TRUE(analyzed("SELECT a FROM t UNION SELECT a FROM u ORDER BY 1").top_level_order_by);
  EXPECT_TRUE(analyzed("WITH x AS (SELECT 1 AS a) SELECT a FROM x ORDER BY a").top_level_order_by);
  EXPECT_TRUE(analyzed("COPY (SELECT * FROM t ORDER BY a) TO STDOUT").top_level_order_by);
}

TEST(StatementOrder, NestedOrderByDoesNotOrderTheResult) {
  EXPECT_FALSE(analyzed("SELECT * FROM users").top_level_order_by);
  EXPECT_FALSE(analyzed("SELECT * FROM (SELECT * FROM users ORDER BY id) s").top_level_order_by);
  EXPECT_FALSE(analyzed("WITH x AS (SELECT * FROM t ORDER BY a) SELECT * FROM x").top_level_order_by);
  EXPECT_FALSE(analyzed("(SELECT a FROM t ORDER BY a) UNION SELECT a FROM u").top_level_order_by);
  EXPECT_FALSE(analyzed("SELECT array_agg(a ORDER BY a) FROM t").top_level_order_by);
  EXPECT_FALSE(analyzed("SELECT a, row_number() OVER (ORDER BY a) FROM t").top_level_order_by);
  EXPECT_FALSE(analyzed("INSERT INTO t SELECT * FROM u ORDER BY a RETURNING *").top_level_order_by);
}

TEST(StatementOrder, TheLastStatementDecides) {
  EXPECT_TRUE(analyzed("SET x = 1; SELECT * FROM t ORDER BY a").top_level_order_by);
  EXPECT_FALSE(analyzed("SELECT * FROM t ORDER BY a; SELECT * FROM u").top_level_order_by);
}

// ---- volatile calls ----------------------------------------------------------

TEST(StatementVolatile, FindsCallsAnywhereInTheTree) {
  EXPECT_EQ(analyzed("SELECT now()").volatile_calls, std::vector<std::string>{"now"});
  EXPECT_EQ(analyzed("SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c < now())").volatile_calls,
            std::vector<std::string>{"now"});
  EXPECT_EQ(analyzed("WITH r AS (SELECT random() AS x) SELECT x FROM r").volatile_calls,
            std::vector<std::string>{"random"});
  EXPECT_EQ(analyzed("INSERT INTO t (id, at) VALUES (gen_random_uuid(), clock_timestamp())").volatile_calls,
            (std::vector<std::string>{"gen_random_uuid", "clock_timestamp"}));
  EXPECT_EQ(analyzed("UPDATE t SET a = 1 RETURNING statement_timestamp()").volatile_calls,
            std::vector<std::string>{"statement_timestamp"});
  EXPECT_EQ(analyzed("SELECT pg_catalog.NOW(), public.uuid_generate_v4()").volatile_calls,
            (std::vector<std::string>{"now", "uuid_generate_v4"}));
  EXPECT_EQ(analyzed("SELECT nextval('s'), currval('s'), txid_current(), pg_backend_pid()").volatile_calls,
            (std::vector<std::string>{"nextval", "currval", "txid_current", "pg_backend_pid"}));
}

TEST(StatementVolatile, FindsSqlValueFunctionsAndTimeLiterals) {
  EXPECT_EQ(analyzed("SELECT CURRENT_TIMESTAMP, LOCALTIMESTAMP(3), CURRENT_DATE").volatile_calls,
            (std::vector<std::string>{"current_timestamp", "localtimestamp", "current_date"}));
  EXPECT_EQ(analyzed("SELECT current_user").volatile_calls, std::vector<std::string>{"current_user"});
  EXPECT_EQ(analyzed("SELECT 'now'::timestamptz, date 'today'").volatile_calls,
            (std::vector<std::string>{"'now'", "'today'"}));
  EXPECT_EQ(analyzed("SELECT age(born) FROM people").volatile_calls, std::vector<std::string>{"age"});
}

TEST(StatementVolatile, DeduplicatesNames) {
  const auto analysis = analyzed("SELECT now(), now(), NOW() FROM t WHERE at < now()");
  EXPECT_EQ(analysis.volatile_calls, std::vector<std::string>{"now"});
  EXPECT_TRUE(analysis.calls_volatile());
}

TEST(StatementVolatile, StableDataFunctionsAreNotVolatile) {
  EXPECT_FALSE(analyzed("SELECT lower(name), count(*), coalesce(a, 0) FROM t GROUP BY 1").calls_volatile());
  EXPECT_FALSE(analyzed("SELECT age(a, b), current_schema FROM t").calls_volatile());
  EXPECT_FALSE(analyzed("SELECT 'now' AS word, 'today'::text").calls_volatile());
  EXPECT_FALSE(analyzed("SELECT my_schema.random_name() FROM t").calls_volatile());
}

// ---- reaching outside --------------------------------------------------------

struct OutsideCase {
  const char* sql;
  const char* reason;
};

class OutsideTest : public ::testing::TestWithParam<OutsideCase> {};

TEST_P(OutsideTest, NamesTheReason) {
  const auto analysis = analyzed(GetParam().sql);
  EXPECT_TRUE(analysis.reaches_outside()) << GetParam().sql;
  EXPECT_TRUE(contains(analysis.outside_reasons, GetParam().reason))
      << GetParam().sql << ": " << ::testing::PrintToString(analysis.outside_reasons);
}

INSTANTIATE_TEST_SUITE_P(
    Statements, OutsideTest,
    ::testing::Values(
        OutsideCase{"NOTIFY jobs, 'x'", "NOTIFY"},
        OutsideCase{"LISTEN jobs", "LISTEN"},
        OutsideCase{"UNLISTEN *", "UNLISTEN"},
        OutsideCase{"SELECT pg_notify('jobs', id::text) FROM t", "calls pg_notify"},
        OutsideCase{"COPY t TO PROGRAM 'gzip > /tmp/t.gz'", "COPY TO PROGRAM"},
        OutsideCase{"COPY t FROM PROGRAM 'curl http://x'", "COPY FROM PROGRAM"},
        OutsideCase{"COPY t TO '/tmp/t.csv'", "COPY TO file"},
        OutsideCase{"COPY t FROM '/tmp/t.csv' WITH (FORMAT csv)", "COPY FROM file"},
        OutsideCase{"SELECT * FROM dblink('host=x', 'SELECT 1') AS r(a int)", "calls dblink"},
        OutsideCase{"SELECT dblink_exec('host=x', 'DELETE FROM t')", "calls dblink_exec"},
        OutsideCase{"INSERT INTO t SELECT * FROM (SELECT public.dblink_exec('c', 'x')) s", "calls dblink_exec"},
        OutsideCase{"SELECT lo_import('/etc/passwd')", "calls lo_import"},
        OutsideCase{"SELECT lo_export(16384, '/tmp/x')", "calls lo_export"},
        OutsideCase{"SELECT pg_read_file('/etc/hostname')", "calls pg_read_file"},
        OutsideCase{"SELECT pg_ls_dir('.')", "calls pg_ls_dir"},
        OutsideCase{"SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "calls pg_terminate_backend"},
        OutsideCase{"SELECT pg_reload_conf()", "calls pg_reload_conf"},
        OutsideCase{"ALTER SYSTEM SET work_mem = '64MB'", "ALTER SYSTEM"},
        OutsideCase{"CREATE ROLE app LOGIN", "CREATE ROLE (cluster-wide)"},
        OutsideCase{"DROP ROLE app", "DROP ROLE (cluster-wide)"},
        OutsideCase{"ALTER ROLE app RENAME TO app2", "RENAME ROLE (cluster-wide)"},
        OutsideCase{"CREATE DATABASE other", "CREATE DATABASE (cluster-wide)"},
        OutsideCase{"ALTER DATABASE app OWNER TO bob", "ALTER OWNER of DATABASE (cluster-wide)"},
        OutsideCase{"CREATE TABLESPACE fast LOCATION '/ssd'", "CREATE TABLESPACE (cluster-wide)"},
        OutsideCase{"LOAD 'auto_explain'", "LOAD"},
        OutsideCase{"CREATE EXTENSION IF NOT EXISTS postgres_fdw", "CREATE EXTENSION"},
        OutsideCase{"CREATE SERVER other FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'x')", "CREATE SERVER"},
        OutsideCase{"IMPORT FOREIGN SCHEMA public FROM SERVER other INTO remote", "IMPORT FOREIGN SCHEMA"},
        OutsideCase{"DO LANGUAGE plpython3u $$ import os $$", "DO block in untrusted language plpython3u"},
        OutsideCase{"CREATE FUNCTION f() RETURNS int LANGUAGE plperlu AS 'return 1'",
                    "CREATE FUNCTION in untrusted language plperlu"}));

TEST(StatementOutside, ForeignServerStatementsAreDdlAndOutside) {
  const auto server = analyzed("CREATE SERVER other FOREIGN DATA WRAPPER postgres_fdw");
  EXPECT_EQ(server.kind, Kind::ddl);
  EXPECT_TRUE(server.reaches_outside());
  const auto import = analyzed("IMPORT FOREIGN SCHEMA public FROM SERVER other INTO remote");
  EXPECT_EQ(import.kind, Kind::ddl);
  EXPECT_TRUE(import.reaches_outside());
}

TEST(StatementOutside, ClientSideCopyAndOrdinaryStatementsStayInside) {
  EXPECT_FALSE(analyzed("COPY t TO STDOUT").reaches_outside());
  EXPECT_FALSE(analyzed("COPY t (a, b) FROM STDIN WITH (FORMAT csv)").reaches_outside());
  EXPECT_FALSE(analyzed("COPY (SELECT * FROM t) TO STDOUT").reaches_outside());
  EXPECT_FALSE(analyzed("SELECT * FROM users WHERE id = 1").reaches_outside());
  EXPECT_FALSE(analyzed("INSERT INTO notifications (body) VALUES ('notify')").reaches_outside());
  EXPECT_FALSE(analyzed("ALTER TABLE t RENAME TO u").reaches_outside());
  EXPECT_FALSE(analyzed("COMMENT ON TABLE t IS 'x'").reaches_outside());
  EXPECT_FALSE(analyzed("CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1 + 1").reaches_outside())
      << "a SQL-standard body is in the parse tree and checked";
  EXPECT_EQ(analyzed("CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT pg_notify('c', 'x'); END")
                .outside_reasons,
            std::vector<std::string>{"calls pg_notify"})
      << "and what it calls is seen";
  EXPECT_EQ(analyzed("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('c', 'x'); END $$")
                .outside_reasons,
            std::vector<std::string>{"CREATE FUNCTION in language plpgsql with a string body (its body cannot be checked)"});
  EXPECT_EQ(analyzed("CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'").outside_reasons,
            std::vector<std::string>{"CREATE PROCEDURE in language sql with a string body (its body cannot be checked)"})
      << "a quoted SQL body is a string to the parser too";
  EXPECT_EQ(analyzed("DO $$ BEGIN PERFORM pg_notify('c', 'x'); END $$").outside_reasons,
            std::vector<std::string>{"DO block (its body cannot be checked)"})
      << "PL/pgSQL bodies are not parsed, so every DO block is refused";
  EXPECT_FALSE(analyzed("SELECT my_dblink_wrapper_count FROM t").reaches_outside());  // a column, not a call
}

TEST(StatementOutside, CollectsEveryReasonOnce) {
  const auto analysis = analyzed("NOTIFY a; NOTIFY b; SELECT pg_notify('c', 'x'), pg_notify('d', 'y')");
  EXPECT_EQ(analysis.outside_reasons, (std::vector<std::string>{"NOTIFY", "calls pg_notify"}));
}

// ---- fingerprint and normalized text -----------------------------------------

TEST(StatementFingerprint, SameStatementWithOtherConstantsShareIt) {
  const auto a = analyzed("SELECT * FROM users WHERE id = 42 AND name = 'ann'");
  const auto b = analyzed("select *  from users where id = 7 and name = 'bob'");
  EXPECT_EQ(a.fingerprint.size(), 16u);
  EXPECT_TRUE(std::all_of(a.fingerprint.begin(), a.fingerprint.end(),
                          [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }));
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_EQ(analyzed("SELECT * FROM t WHERE a IN (1, 2, 3)").fingerprint,
            analyzed("SELECT * FROM t WHERE a IN (4)").fingerprint);
}

TEST(StatementFingerprint, DifferentStatementsDiffer) {
  EXPECT_NE(analyzed("SELECT * FROM users WHERE id = 1").fingerprint,
            analyzed("SELECT * FROM accounts WHERE id = 1").fingerprint);
  EXPECT_NE(analyzed("SELECT a FROM t").fingerprint, analyzed("SELECT b FROM t").fingerprint);
  EXPECT_NE(analyzed("DELETE FROM t WHERE a = 1").fingerprint, analyzed("SELECT * FROM t WHERE a = 1").fingerprint);
}

TEST(StatementFingerprint, NormalizedTextReplacesConstants) {
  const auto analysis = analyzed("SELECT * FROM users WHERE id = 42 AND name = 'ann'");
  EXPECT_EQ(analysis.normalized_sql, "SELECT * FROM users WHERE id = $1 AND name = $2");
  EXPECT_EQ(analyzed("INSERT INTO t VALUES (1, 'x')").normalized_sql, "INSERT INTO t VALUES ($1, $2)");
}

// ---- errors --------------------------------------------------------------------

TEST(StatementErrors, SyntaxErrorCarriesMessageAndPosition) {
  const auto result = analyze("SELECT * FORM users");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::sql_syntax);
  EXPECT_EQ(result.error().field, "sql");
  EXPECT_EQ(result.error().message, "syntax error at or near \"FORM\" at position 10");
}

TEST(StatementErrors, ErrorInALaterStatementPointsIntoTheWholeText) {
  const auto result = analyze("SELECT 1; SELEC 2");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::sql_syntax);
  EXPECT_EQ(result.error().message, "syntax error at or near \"SELEC\" at position 11");
}

TEST(StatementErrors, UnterminatedStringIsAnError) {
  const auto result = analyze("SELECT 'open");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::sql_syntax);
  EXPECT_NE(result.error().message.find("unterminated quoted string"), std::string::npos)
      << result.error().message;
}

TEST(StatementErrors, EmptyOrBlankTextIsAnError) {
  for (const char* sql : {"", "   \n\t ", "-- only a comment", ";"}) {
    const auto result = analyze(sql);
    ASSERT_FALSE(result.ok()) << '"' << sql << '"';
    EXPECT_EQ(result.error().code, ErrorCode::sql_syntax);
    EXPECT_EQ(result.error().field, "sql");
  }
}

TEST(StatementErrors, NulByteIsAnError) {
  const auto result = analyze(std::string_view("SELECT 1\0; DROP TABLE t", 23));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message, "SQL contains a NUL byte at position 9");
}

// ---- multiple statements and big trees ---------------------------------------

TEST(StatementMulti, CountsStatementsAndMergesFindings) {
  const auto analysis = analyzed("BEGIN; UPDATE t SET at = now() WHERE id = 1; NOTIFY changed; COMMIT");
  EXPECT_EQ(analysis.statement_count, 4);
  EXPECT_EQ(analysis.kind, Kind::write);
  EXPECT_EQ(analysis.volatile_calls, std::vector<std::string>{"now"});
  EXPECT_EQ(analysis.outside_reasons, std::vector<std::string>{"NOTIFY"});
  EXPECT_EQ(analyzed("SELECT 1").statement_count, 1);
}

// 100k terms nest 100k levels deep: libpg_query's recursive walkers would
// overflow an 8 MiB thread stack at about 25k.
TEST(StatementMulti, DeeplyNestedExpressionIsAnalyzed) {
  std::string sql = "SELECT 1";
  for (int i = 0; i < 100000; ++i) sql += "+1";
  sql += ", random()";
  const auto analysis = analyzed(sql);
  EXPECT_EQ(analysis.kind, Kind::read);
  EXPECT_EQ(analysis.volatile_calls, std::vector<std::string>{"random"});
}

TEST(StatementMulti, LongFlatStatementIsAnalyzed) {
  std::string sql = "INSERT INTO t (a, b) VALUES (1, 'x')";
  for (int i = 0; i < 5000; ++i) sql += ", (" + std::to_string(i) + ", 'row')";
  sql += " RETURNING now()";
  const auto analysis = analyzed(sql);
  EXPECT_EQ(analysis.kind, Kind::write);
  EXPECT_EQ(analysis.volatile_calls, std::vector<std::string>{"now"});
  EXPECT_EQ(analysis.fingerprint, analyzed("INSERT INTO t (a, b) VALUES (1, 'x') RETURNING now()").fingerprint);
}

TEST(StatementErrors, SyntaxErrorInALongStatementIsReported) {
  std::string sql = "SELECT 1";
  for (int i = 0; i < 5000; ++i) sql += "+1";
  sql += " FORM t";  // FORM reads as a column alias: the error is at "t", the last byte
  const auto result = analyze(sql);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message, "syntax error at or near \"t\" at position " + std::to_string(sql.size()));
}

// ---- Analyzer cache ------------------------------------------------------------

void expect_same(const Analysis& a, const Analysis& b) {
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_EQ(a.normalized_sql, b.normalized_sql);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.statement_count, b.statement_count);
  EXPECT_EQ(a.top_level_order_by, b.top_level_order_by);
  EXPECT_EQ(a.volatile_calls, b.volatile_calls);
  EXPECT_EQ(a.outside_reasons, b.outside_reasons);
}

TEST(StatementAnalyzer, CountsHitsAndMissesAndReturnsTheUncachedResult) {
  Analyzer analyzer(16);
  const std::string sql = "SELECT * FROM t WHERE at < now() ORDER BY id";
  const auto first = analyzer.analyze(sql);
  const auto second = analyzer.analyze(sql);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(analyzer.misses(), 1u);
  EXPECT_EQ(analyzer.hits(), 1u);
  expect_same(*second, analyzed(sql));
  expect_same(*first, *second);

  (void)analyzer.analyze("SELECT * FROM t WHERE at < now() ORDER BY id ");  // different text, not a hit
  EXPECT_EQ(analyzer.misses(), 2u);
  EXPECT_EQ(analyzer.hits(), 1u);
}

TEST(StatementAnalyzer, SharesTheCachedAnalysisInsteadOfCopyingIt) {
  Analyzer analyzer(16);
  const std::string sql = "SELECT * FROM t WHERE at < now() ORDER BY id";
  const auto first = analyzer.analyze_shared(sql);
  const auto second = analyzer.analyze_shared(sql);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  // A hit hands out the cached object itself, not a copy of it.
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ(analyzer.misses(), 1u);
  EXPECT_EQ(analyzer.hits(), 1u);
  expect_same(**second, analyzed(sql));
  // analyze() copies the same cached analysis.
  expect_same(*analyzer.analyze(sql), **first);
  EXPECT_EQ(analyzer.hits(), 2u);

  const auto error = analyzer.analyze_shared("SELECT * FORM t");
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.error().message, analyzer.analyze("SELECT * FORM t").error().message);
}

// An evicted text's analysis stays valid for whoever still holds it.
TEST(StatementAnalyzer, ASharedAnalysisOutlivesItsEviction) {
  Analyzer analyzer(1);
  const auto held = analyzer.analyze_shared("SELECT a FROM t ORDER BY a");
  ASSERT_TRUE(held.ok());
  (void)analyzer.analyze_shared("SELECT 2");  // evicts the first
  expect_same(**held, analyzed("SELECT a FROM t ORDER BY a"));
  const auto again = analyzer.analyze_shared("SELECT a FROM t ORDER BY a");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->get(), held->get());  // parsed anew
  EXPECT_EQ(analyzer.misses(), 3u);
}

TEST(StatementAnalyzer, CachesErrorsToo) {
  Analyzer analyzer;
  const auto first = analyzer.analyze("SELECT * FORM t");
  const auto second = analyzer.analyze("SELECT * FORM t");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message, first.error().message);
  EXPECT_EQ(analyzer.hits(), 1u);
}

TEST(StatementAnalyzer, EvictsTheLeastRecentlyUsedText) {
  Analyzer analyzer(2);
  (void)analyzer.analyze("SELECT 1");
  (void)analyzer.analyze("SELECT 2");
  (void)analyzer.analyze("SELECT 1");  // hit: "SELECT 2" is now the oldest
  (void)analyzer.analyze("SELECT 3");  // evicts "SELECT 2"
  EXPECT_EQ(analyzer.hits(), 1u);
  (void)analyzer.analyze("SELECT 1");
  EXPECT_EQ(analyzer.hits(), 2u);
  (void)analyzer.analyze("SELECT 2");
  EXPECT_EQ(analyzer.hits(), 2u);
  EXPECT_EQ(analyzer.misses(), 4u);
}

TEST(StatementAnalyzer, ZeroCapacityNeverCaches) {
  Analyzer analyzer(0);
  (void)analyzer.analyze("SELECT 1");
  (void)analyzer.analyze("SELECT 1");
  EXPECT_EQ(analyzer.hits(), 0u);
  EXPECT_EQ(analyzer.misses(), 2u);
}

TEST(StatementAnalyzer, IsSafeToShareBetweenThreads) {
  Analyzer analyzer(8);
  const std::vector<std::string> texts{"SELECT 1", "SELECT now()", "INSERT INTO t VALUES (1)",
                                       "NOTIFY x", "SELECT * FROM t ORDER BY a", "BEGIN"};
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string& sql = texts[(i + t) % texts.size()];
        const auto cached = analyzer.analyze(sql);
        if (!cached.ok() || cached->fingerprint != analyze(sql)->fingerprint) ++failures[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(kThreads, 0));
  EXPECT_EQ(analyzer.hits() + analyzer.misses(), static_cast<size_t>(kThreads * kRounds));
  EXPECT_GE(analyzer.hits(), static_cast<size_t>(kThreads * kRounds) - kThreads * texts.size());
}


// ---- the rows of the last statement: sort keys, limits, outputs ---------------

TEST(StatementRows, SortKeysArePlacedByPositionNameOrQualifiedColumn) {
  auto a = analyzed("SELECT id, name AS n FROM t ORDER BY 2, id DESC, t.created, lower(name)");
  ASSERT_EQ(a.sort_keys.size(), 4u);
  EXPECT_EQ(a.sort_keys[0].position, 2);
  EXPECT_EQ(a.sort_keys[1].output_name, "id");
  EXPECT_EQ(a.sort_keys[1].column, "id");
  EXPECT_EQ(a.sort_keys[2].output_name, "");  // t.created is not in the select list
  EXPECT_EQ(a.sort_keys[2].column, "created");
  EXPECT_EQ(a.sort_keys[2].qualifier, "t");
  EXPECT_EQ(a.sort_keys[3].output_name, "");  // an expression
  EXPECT_EQ(analyzed("SELECT * FROM t ORDER BY t.id").sort_keys[0].output_name, "id");
  EXPECT_EQ(analyzed("SELECT t.id AS key FROM t ORDER BY t.id").sort_keys[0].output_name, "key");
  // An alias that takes a table column's name is not that column.
  EXPECT_EQ(analyzed("SELECT v AS id FROM t ORDER BY id").sort_keys[0].column, "");
}

TEST(StatementRows, LimitsDistinctOnAndTheSingleTableAreSeen) {
  EXPECT_TRUE(analyzed("SELECT id FROM t LIMIT 5").limited);
  EXPECT_TRUE(analyzed("SELECT id FROM t ORDER BY id FETCH FIRST 3 ROWS ONLY").limited);
  EXPECT_TRUE(analyzed("SELECT id FROM t OFFSET 2").limited);
  EXPECT_FALSE(analyzed("SELECT id FROM t WHERE id IN (SELECT id FROM u LIMIT 1)").limited);
  EXPECT_TRUE(analyzed("SELECT DISTINCT ON (a) a, b FROM t ORDER BY a").distinct_on);
  EXPECT_FALSE(analyzed("SELECT DISTINCT a FROM t").distinct_on);
  auto a = analyzed("SELECT id FROM s.t AS x ORDER BY x.id LIMIT 1");
  EXPECT_EQ(a.single_relation, "s.t");
  EXPECT_EQ(a.single_relation_alias, "x");
  EXPECT_EQ(analyzed("SELECT id FROM t JOIN u USING (id)").single_relation, "");
  EXPECT_TRUE(analyzed("SELECT grp, count(*) FROM t GROUP BY grp ORDER BY grp LIMIT 3").order_total_by_grouping);
  EXPECT_FALSE(analyzed("SELECT grp, count(*) FROM t GROUP BY grp ORDER BY 2 LIMIT 3").order_total_by_grouping);
}

TEST(StatementRows, AVolatileCallIsTiedToTheOutputItFeeds) {
  auto a = analyzed("SELECT id, now() AS seen, name FROM t WHERE id = 1");
  ASSERT_EQ(a.outputs.size(), 3u);
  EXPECT_TRUE(a.outputs[0].volatile_calls.empty());
  EXPECT_EQ(a.outputs[1].volatile_calls, std::vector<std::string>{"now"});
  EXPECT_EQ(a.outputs[1].position, 2);
  EXPECT_EQ(a.outputs[1].output_name, "seen");
  EXPECT_FALSE(a.volatile_outside_outputs);
  EXPECT_TRUE(analyzed("SELECT id FROM t WHERE created > now() - interval '1 day'").volatile_outside_outputs);
  EXPECT_TRUE(analyzed("SELECT id FROM t ORDER BY random()").volatile_outside_outputs);
  EXPECT_TRUE(analyzed("INSERT INTO t VALUES (now()) RETURNING id").volatile_outside_outputs);
  // Behind a star the position is unknown, the name is kept.
  auto starred = analyzed("SELECT *, clock_timestamp() FROM t");
  EXPECT_EQ(starred.outputs[1].position, 0);
  EXPECT_EQ(starred.outputs[1].output_name, "clock_timestamp");
  // User functions are listed for the catalog, per output and elsewhere.
  auto user = analyzed("SELECT stamp(id) FROM t WHERE check_it(id) AND pg_catalog.lower(name) = 'a'");
  EXPECT_EQ(user.outputs[0].called_functions, std::vector<std::string>{"stamp"});
  EXPECT_EQ(user.functions_outside_outputs, std::vector<std::string>{"check_it"});
  EXPECT_EQ(output_index(user.outputs[0], {"stamp"}), std::optional<size_t>(0));
  EXPECT_EQ(unique_column("a", {"a", "b", "a"}), std::nullopt);
}

TEST(StatementTransaction, SavepointsAndSetConstraintsAreNamedForReplay) {
  auto a = analyzed("SAVEPOINT Get_Or_Create");
  EXPECT_EQ(a.savepoint_command, "SAVEPOINT");
  EXPECT_EQ(a.savepoint_name, "get_or_create");  // folded as the server folds it
  EXPECT_EQ(analyzed("ROLLBACK TO SAVEPOINT \"Mixed\"").savepoint_name, "Mixed");
  EXPECT_EQ(analyzed("ROLLBACK TO s").savepoint_command, "ROLLBACK TO SAVEPOINT");
  EXPECT_EQ(analyzed("RELEASE s").savepoint_command, "RELEASE SAVEPOINT");
  EXPECT_TRUE(analyzed("SET CONSTRAINTS ALL DEFERRED").sets_constraints);
  EXPECT_EQ(analyzed("COMMIT").savepoint_command, "");
  EXPECT_EQ(analyzed("SAVEPOINT a; SELECT 1").savepoint_command, "");  // only a text of one statement
  auto begin = analyzed("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE");
  EXPECT_EQ(begin.isolation_level, "serializable");
  EXPECT_TRUE(begin.read_only);
  EXPECT_TRUE(begin.deferrable);
  EXPECT_EQ(analyzed("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").isolation_level, "repeatable read");
  EXPECT_FALSE(analyzed("START TRANSACTION READ WRITE").read_only);
  EXPECT_FALSE(analyzed("BEGIN").sets_transaction_mode());
}

}  // namespace
}  // namespace shadowpipe::statement
