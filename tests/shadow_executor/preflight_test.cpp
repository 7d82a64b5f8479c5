// The executor's start-up guard against a real shadow server: a shadow whose
// catalog can reach outside it is refused, naming each object, before the
// executor writes anything; an override naming the object lets it start; a
// clean shadow passes. Each case has its own database.
#include "harness.hpp"
#include "support/process.hpp"

#include "shadowpipe/preflight.hpp"
#include "shadowpipe/result.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sp = shadowpipe;
namespace ex = shadowpipe::executor;
using namespace sp::testing;

namespace {

// The Failure the executor throws at start, or "" when it started.
std::string start_refusal(const ex::Options& options) {
  try {
    ex::Executor executor(options);
  } catch (const sp::Failure& failure) {
    return failure.what();
  }
  return "";
}

bool has_bookkeeping(const std::string& dsn) {
  sp::pg::Connection conn(dsn);
  return conn.exec_checked("SELECT count(*) FROM pg_namespace WHERE nspname = 'shadowpipe'").value(0, 0) == "1";
}

std::vector<std::string> names(const std::vector<sp::preflight::OutsideReach>& found) {
  std::vector<std::string> out;
  for (const auto& object : found) out.push_back(object.describe());
  return out;
}

void add_notify_trigger(const std::string& dsn) {
  sp::pg::Connection conn(dsn);
  conn.exec_checked("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)");
  conn.exec_checked(
      "CREATE FUNCTION orders_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "PERFORM pg_notify('orders', NEW.id::text); RETURN NEW; END $$");
  conn.exec_checked("CREATE TRIGGER orders_notify AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION orders_changed()");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST(ExecutorPreflight, RefusesAShadowWithAForeignTableNamingEachObject) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "preflight_fdw");
  {
    sp::pg::Connection conn(shadow.dsn());
    conn.exec_checked("CREATE EXTENSION postgres_fdw");
    conn.exec_checked("CREATE SERVER remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '192.0.2.1', dbname 'shop')");
    conn.exec_checked("CREATE USER MAPPING FOR CURRENT_USER SERVER remote OPTIONS (user 'shop')");
    conn.exec_checked("CREATE FOREIGN TABLE remote_orders (id bigint) SERVER remote");
  }
  auto options = base_options(topics, shadow.dsn(), unique_name("preflight-group"));
  const auto refusal = start_refusal(options);
  EXPECT_NE(refusal.find("foreign table public.remote_orders (on server remote)"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("foreign server remote (through foreign data wrapper postgres_fdw)"), std::string::npos)
      << refusal;
  EXPECT_NE(refusal.find("extension postgres_fdw"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("user mapping for postgres on server remote"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("side effects outside the shadow"), std::string::npos) << refusal;
  EXPECT_FALSE(has_bookkeeping(shadow.dsn())) << "refused before the executor wrote anything";

  // Accepting three of the four still refuses, naming only the fourth.
  options.allow_outside_reach = {"extension postgres_fdw", "foreign server remote",
                                 "user mapping for postgres on server remote"};
  const auto partial = start_refusal(options);
  EXPECT_NE(partial.find("1 object that can reach outside"), std::string::npos) << partial;
  EXPECT_NE(partial.find("foreign table public.remote_orders"), std::string::npos) << partial;

  options.allow_outside_reach.push_back("foreign table public.remote_orders");
  EXPECT_EQ(start_refusal(options), "") << "every object named: the executor starts";
  EXPECT_TRUE(has_bookkeeping(shadow.dsn()));
}

TEST(ExecutorPreflight, RefusesAShadowWithATriggerCallingPgNotifyAndStartsWithTheOverride) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "preflight_notify");
  add_notify_trigger(shadow.dsn());
  const auto log = std::filesystem::temp_directory_path() / (unique_name("preflight-executor") + ".log");
  const std::vector<std::string> common = {"--shadow", shadow.dsn(), "--brokers", brokers(),
                                           "--group", unique_name("preflight-group"),
                                           "--requests-topic", topics.requests(),
                                           "--results-topic", topics.results(), "--dlq-topic", topics.dlq()};

  // Through the binary: cli::run_main prints the Failure, exit status 2.
  const int refused = wait_exit(spawn_process(SHADOW_EXECUTOR_BINARY, common, log.string()), std::chrono::seconds(60));
  const auto refusal = read_text(log.string());
  EXPECT_EQ(refused, 2) << refusal;
  EXPECT_NE(refusal.find("shadow-executor: error: the shadow database"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("trigger orders_notify on public.orders (calls pg_notify)"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("--allow-outside-reach 'trigger orders_notify on public.orders'"), std::string::npos)
      << refusal;
  EXPECT_EQ(refusal.find("function public.orders_changed"), std::string::npos)
      << "a trigger function is named by its trigger, once: " << refusal;

  // A typo in the override allows nothing.
  auto typo = common;
  typo.insert(typo.end(), {"--allow-outside-reach", "trigger order_notify on public.orders"});
  std::filesystem::remove(log);
  EXPECT_EQ(wait_exit(spawn_process(SHADOW_EXECUTOR_BINARY, typo, log.string()), std::chrono::seconds(60)), 2);
  EXPECT_NE(read_text(log.string()).find("that can reach outside it: 'trigger order_notify on public.orders' — name each"),
            std::string::npos)
      << read_text(log.string());

  // With the override it starts, says what it allowed, and stops cleanly.
  auto allowed = common;
  allowed.insert(allowed.end(), {"--allow-outside-reach", "trigger orders_notify on public.orders"});
  std::filesystem::remove(log);
  ChildProcess running(spawn_process(SHADOW_EXECUTOR_BINARY, allowed, log.string()));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!has_bookkeeping(shadow.dsn()) && running.alive() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(running.alive()) << read_text(log.string());
  EXPECT_TRUE(has_bookkeeping(shadow.dsn())) << read_text(log.string());
  EXPECT_EQ(running.terminate(std::chrono::seconds(30)), 0) << read_text(log.string());
  EXPECT_NE(read_text(log.string()).find(
                "allowed by --allow-outside-reach: trigger orders_notify on public.orders (calls pg_notify)"),
            std::string::npos)
      << read_text(log.string());
  std::filesystem::remove(log);
}

TEST(ExecutorPreflight, ACleanShadowPasses) {
  Topics topics(1);
  ScratchDatabase shadow(shadow_dsn(), "preflight_clean");
  {
    sp::pg::Connection conn(shadow.dsn());
    conn.exec_checked("CREATE TABLE orders (id bigint PRIMARY KEY, notify boolean, updated_at timestamptz)");
    conn.exec_checked("CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                      "NEW.updated_at := now(); RETURN NEW; END $$");
    conn.exec_checked("CREATE TRIGGER touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()");
    conn.exec_checked("CREATE FUNCTION to_notify() RETURNS SETOF bigint LANGUAGE sql AS $$ "
                      "SELECT id FROM orders WHERE notify $$");
    conn.exec_checked("CREATE VIEW pending AS SELECT id FROM orders WHERE notify");
    conn.exec_checked("CREATE TABLE lines (order_id bigint REFERENCES orders)");  // internal FK triggers
  }
  sp::pg::Connection conn(shadow.dsn());
  EXPECT_EQ(names(sp::preflight::find_outside_reach(conn)), std::vector<std::string>{});
  EXPECT_EQ(start_refusal(base_options(topics, shadow.dsn(), unique_name("preflight-group"))), "");
}

TEST(ExecutorPreflight, FindsEveryOtherKindByItsExactName) {
  ScratchDatabase shadow(shadow_dsn(), "preflight_kinds");
  sp::pg::Connection conn(shadow.dsn());
  conn.exec_checked("CREATE EXTENSION dblink");
  conn.exec_checked("CREATE TABLE audit (id bigint)");
  conn.exec_checked("CREATE FUNCTION push(bigint) RETURNS text LANGUAGE sql AS $$ "
                    "SELECT dblink_exec('host=192.0.2.1', 'delete from t') $$");
  conn.exec_checked("CREATE FUNCTION ping() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT pg_notify('a', 'b'); END");
  conn.exec_checked("CREATE PROCEDURE run_program() LANGUAGE plpgsql AS $$ BEGIN "
                    "EXECUTE 'COPY audit TO PROGRAM ''curl -d @- https://example.com'''; END $$");
  conn.exec_checked("CREATE RULE audit_notify AS ON INSERT TO audit DO ALSO NOTIFY audit_channel");
  conn.exec_checked("CREATE FUNCTION on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$");
  conn.exec_checked("CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION on_ddl()");
  conn.exec_checked("CREATE FOREIGN DATA WRAPPER handmade");
  EXPECT_EQ(names(sp::preflight::find_outside_reach(conn)),
            (std::vector<std::string>{"extension dblink (connects to other databases)",
                                      "foreign data wrapper handmade (reads and writes outside the database)",
                                      "event trigger log_ddl (runs on_ddl on ddl_command_end)",
                                      "rule audit_notify on public.audit (calls NOTIFY)",
                                      "function public.ping() (calls pg_notify)",
                                      "function public.push(bigint) (calls dblink_exec)",
                                      "procedure public.run_program() (calls COPY ... PROGRAM)"}));
}
