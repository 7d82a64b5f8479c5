// The outside-reach guard's Kafka- and server-free parts: what a function
// body calls, and the decision with overrides. The catalog queries are
// tested against real servers in tests/shadow_executor/preflight_test.cpp.
#include "shadowpipe/preflight.hpp"
#include "shadowpipe/result.hpp"

#include <gtest/gtest.h>

namespace sp = shadowpipe;
using sp::preflight::outside_calls;
using Calls = std::vector<std::string>;

TEST(OutsideCalls, FindsNotificationsRemoteCallsAndPrograms) {
  EXPECT_EQ(outside_calls("BEGIN PERFORM pg_notify('orders', NEW.id::text); RETURN NEW; END"), Calls{"pg_notify"});
  EXPECT_EQ(outside_calls("begin notify orders_changed; return new; end"), Calls{"NOTIFY"});
  EXPECT_EQ(outside_calls("EXECUTE 'NOTIFY ' || quote_ident(channel)"), Calls{"NOTIFY"});
  EXPECT_EQ(outside_calls("SELECT public.dblink_exec('remote', 'delete from t')"), Calls{"public.dblink_exec"});
  EXPECT_EQ(outside_calls("select * from dblink ('x', 'y') as t(a int)"), Calls{"dblink"});
  EXPECT_EQ(outside_calls("PERFORM net.http_post(url := 'https://hooks.example.com')"), Calls{"net.http_post"});
  EXPECT_EQ(outside_calls("SELECT content FROM http_get('https://example.com')"), Calls{"http_get"});
  EXPECT_EQ(outside_calls("EXECUTE 'COPY t TO PROGRAM ''curl -d @- https://x''';"), Calls{"COPY ... PROGRAM"});
  EXPECT_EQ(outside_calls("perform pg_notify('a', 'b'); perform pg_notify('c', 'd'); perform dblink('x', 'y');"),
            (Calls{"pg_notify", "dblink"}));
}

TEST(OutsideCalls, LeavesOrdinaryBodiesAlone) {
  EXPECT_TRUE(outside_calls("BEGIN NEW.updated_at := now(); RETURN NEW; END").empty());
  EXPECT_TRUE(outside_calls("SELECT notify FROM preferences WHERE user_id = $1").empty()) << "a column named notify";
  EXPECT_TRUE(outside_calls("UPDATE users SET notify = true").empty());
  EXPECT_TRUE(outside_calls("SELECT 'https://example.com' AS url, my_pg_notify_count(1)").empty());
  EXPECT_TRUE(outside_calls("COPY t FROM STDIN; SELECT program FROM tools").empty()) << "PROGRAM of another statement";
  EXPECT_TRUE(outside_calls("").empty());
}

namespace {
const std::vector<sp::preflight::OutsideReach> kFound = {
    {"foreign table public.remote_orders", "on server remote"},
    {"trigger orders_notify on public.orders", "calls pg_notify"},
};

std::string refusal(const std::vector<std::string>& allowed) {
  try {
    sp::preflight::check_outside_reach(kFound, allowed, "the shadow database db", "e.g. in a migration");
  } catch (const sp::Failure& failure) {
    return failure.what();
  }
  return "";
}
}  // namespace

TEST(CheckOutsideReach, RefusesNamingEveryObjectWhyAndWhatToDo) {
  const auto message = refusal({});
  EXPECT_NE(message.find("foreign table public.remote_orders (on server remote)"), std::string::npos) << message;
  EXPECT_NE(message.find("trigger orders_notify on public.orders (calls pg_notify)"), std::string::npos) << message;
  EXPECT_NE(message.find("side effects outside the shadow"), std::string::npos) << message;
  EXPECT_NE(message.find("--allow-outside-reach 'foreign table public.remote_orders'"), std::string::npos) << message;
  EXPECT_NE(message.find("e.g. in a migration"), std::string::npos) << message;
}

TEST(CheckOutsideReach, AnOverrideAllowsExactlyTheObjectItNames) {
  const auto only_trigger = refusal({"foreign table public.remote_orders"});
  EXPECT_NE(only_trigger.find("trigger orders_notify"), std::string::npos) << only_trigger;
  EXPECT_EQ(only_trigger.find("remote_orders"), std::string::npos) << only_trigger;

  const auto allowed = sp::preflight::check_outside_reach(
      kFound, {"trigger orders_notify on public.orders", "foreign table public.remote_orders"}, "db");
  ASSERT_EQ(allowed.size(), 2u);
  EXPECT_EQ(allowed[1].describe(), "trigger orders_notify on public.orders (calls pg_notify)");
  EXPECT_TRUE(sp::preflight::check_outside_reach({}, {}, "db").empty()) << "a clean shadow passes";
}

TEST(CheckOutsideReach, AnOverrideNamingNoObjectIsAnError) {
  const auto typo = refusal({"trigger orders_notify on public.orders", "trigger order_notify on public.orders"});
  EXPECT_NE(typo.find("that can reach outside it: 'trigger order_notify on public.orders' — name each"), std::string::npos)
      << typo;
  EXPECT_NE(typo.find("trigger orders_notify on public.orders (calls pg_notify)"), std::string::npos)
      << "lists what it could have meant: " << typo;
  try {
    sp::preflight::check_outside_reach({}, {"extension dblink"}, "db");
    FAIL() << "an override on a clean shadow names nothing";
  } catch (const sp::Failure& failure) {
    EXPECT_NE(std::string(failure.what()).find("(none were found)"), std::string::npos) << failure.what();
  }
}

TEST(CreatedOutsideReach, ReadsWhatMigrationFilesCreateByTheCatalogsNames) {
  using Names = std::vector<std::string>;
  const auto created = sp::preflight::created_outside_reach(
      {"ALTER TABLE orders ADD COLUMN note text;\n"
       "CREATE EXTENSION IF NOT EXISTS pg_trgm;\n"  // does not reach outside
       "CREATE EXTENSION dblink;\n"
       "CREATE SERVER Remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'x');\n"
       "CREATE FUNCTION f() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;\n"
       "CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION f();",
       "CREATE FOREIGN DATA WRAPPER handmade; CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p "
       "WITH (connect = false);"});
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(*created, (Names{"extension dblink", "foreign server remote", "event trigger log_ddl",
                             "foreign data wrapper handmade", "subscription s"}));
}

TEST(CreatedOutsideReach, LeavesWhatALaterStatementDropsAndWhatItCannotNameToTheCatalog) {
  using Names = std::vector<std::string>;
  const auto dropped = sp::preflight::created_outside_reach(
      {"CREATE EXTENSION dblink; CREATE SERVER remote FOREIGN DATA WRAPPER postgres_fdw;",
       "DROP SERVER remote; DROP EXTENSION IF EXISTS dblink CASCADE;"});
  ASSERT_TRUE(dropped.has_value());
  EXPECT_EQ(*dropped, Names{});
  EXPECT_EQ(sp::preflight::created_outside_reach({"\\set ON_ERROR_STOP on\nCREATE EXTENSION dblink;"}), std::nullopt)
      << "a psql meta-command: the parser cannot read the file";
  EXPECT_EQ(sp::preflight::created_outside_reach({"CREATE SERVER a FOREIGN DATA WRAPPER w; ALTER SERVER a RENAME TO b;"}),
            std::nullopt);
  const auto in_schema = sp::preflight::created_outside_reach(
      {"CREATE FOREIGN TABLE t (id int) SERVER remote; CREATE TRIGGER n AFTER INSERT ON t2 FOR EACH ROW EXECUTE "
       "FUNCTION notify_it();"});
  ASSERT_TRUE(in_schema.has_value());
  EXPECT_EQ(*in_schema, Names{}) << "named by schema: left to the catalog check";
}
