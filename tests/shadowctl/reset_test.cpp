// reset against the real servers and broker: the shadow is rebuilt from the
// primary, migrated, stamped, and the executor group starts after the snapshot.
#include "shadowpipe/conninfo.hpp"
#include "shadowctl/reset.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/wire.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace shadowctl = shadowpipe::shadowctl;

namespace sp = shadowpipe;
using namespace std::chrono_literals;

namespace {

std::string make_database(const std::string& server_dsn, const std::string& name) {
  sp::pg::Connection admin(server_dsn);
  admin.exec_checked("drop database if exists " + name + " with (force)");
  admin.exec_checked("create database " + name);
  return shadowpipe::pg::with_database(server_dsn, name);
}

int64_t committed_offset(const sp::kafka::Properties& kafka, const std::string& group, const std::string& topic) {
  auto properties = kafka;
  properties.emplace_back("group.id", group);
  sp::kafka::Consumer consumer(properties);
  sp::kafka::PartitionList list;
  list.add(topic, 0);
  EXPECT_EQ(rd_kafka_committed(consumer.get(), list.get(), 10000), 0);
  return list[0].offset;
}

void produce_at(sp::kafka::Producer& producer, const std::string& topic, const std::string& payload, int64_t ts_ms) {
  const auto err = rd_kafka_producev(producer.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
                                     RD_KAFKA_V_KEY("k", 1),
                                     RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_END);
  ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
}

shadowctl::ResetOptions reset_options(const std::string& primary, const std::string& shadow,
                                      const std::filesystem::path& migration, const std::string& group,
                                      const std::string& topic) {
  shadowctl::ResetOptions options;
  options.primary_dsn = primary;
  options.shadow_dsn = shadow;
  options.migrations = {migration.string()};
  options.group = group;
  options.requests_topic = topic;
  options.pg_bin = "/usr/lib/postgresql/15/bin";
  return options;
}

std::string new_topic(const sp::kafka::Properties& kafka, const std::string& prefix) {
  const auto topic = sp::testing::unique_name(prefix);
  sp::kafka::Producer producer(kafka);
  sp::kafka::create_topics(producer.get(), {{topic, 1, 1, {}}}, 15s);
  return topic;
}

// What reset refused with, or "" when it succeeded.
std::string reset_refusal(const sp::kafka::Properties& kafka, const shadowctl::ResetOptions& options) {
  try {
    shadowctl::reset_shadow(kafka, options);
  } catch (const sp::Failure& failure) {
    return failure.what();
  }
  return "";
}

}  // namespace

TEST(Reset, RebuildsTheShadowAppliesTheMigrationAndMovesTheGroup) {
  const auto database = sp::testing::unique_name("reset").substr(0, 40);
  std::string name = database;
  std::replace(name.begin(), name.end(), '-', '_');
  const auto primary = make_database(sp::testing::primary_dsn(), name);
  const auto shadow = make_database(sp::testing::shadow_dsn(), name);
  {
    sp::pg::Connection connection(primary);
    connection.exec_checked("create table customers (id bigint primary key, email varchar(255))");
    connection.exec_checked("insert into customers select g, 'user' || g || '@example.com' from generate_series(1, 500) g");
  }
  {
    sp::pg::Connection connection(shadow);
    connection.exec_checked("create table stale (id int)");  // must not survive the reset
  }
  const sp::kafka::Properties kafka = {{"bootstrap.servers", sp::testing::brokers()}};
  const auto topic = sp::testing::unique_name("reset.requests");
  sp::kafka::Producer producer(kafka);
  sp::kafka::create_topics(producer.get(), {{topic, 1, 1, {}}}, 15s);
  // Records with explicit create times: 5 well before the snapshot, then 3
  // after it (the broker takes create times up to an hour ahead), so the
  // group's start is found by time (offsets-for-times), not at the end.
  const int64_t now_ms = sp::wire::now_us() / 1000;
  for (int i = 0; i < 5; ++i) produce_at(producer, topic, "before", now_ms - 10 * 60 * 1000 + i);
  for (int i = 0; i < 3; ++i) produce_at(producer, topic, "after", now_ms + 10 * 60 * 1000 + i);
  ASSERT_EQ(producer.flush(10s), 0);
  int64_t low = 0, high = 0;
  ASSERT_EQ(rd_kafka_query_watermark_offsets(producer.get(), topic.c_str(), 0, &low, &high, 10000), 0);
  ASSERT_EQ(high, 8) << "the broker refused some of the records";

  const auto migration = std::filesystem::temp_directory_path() / (name + ".sql");
  std::ofstream(migration) << "alter table customers add column nickname text;\n";
  auto options = reset_options(primary, shadow, migration, sp::testing::unique_name("reset-group"), topic);
  const auto outcome = shadowctl::reset_shadow(kafka, options);
  std::filesystem::remove(migration);

  sp::pg::Connection connection(shadow);
  EXPECT_EQ(connection.exec_checked("select count(*) from customers").value(0, 0), "500");
  EXPECT_EQ(connection.exec_checked("select count(*) from information_schema.columns "
                                    "where table_name = 'customers' and column_name = 'nickname'").value(0, 0), "1");
  EXPECT_EQ(connection.exec_checked("select count(*) from pg_tables where tablename = 'stale'").value(0, 0), "0");
  EXPECT_EQ(connection.exec_checked("select (extract(epoch from taken_at) * 1000)::bigint from shadowpipe.snapshot")
                .value(0, 0), std::to_string(outcome.snapshot_time_ms));
  EXPECT_LT(outcome.snapshot_time_ms, now_ms + 10 * 60 * 1000) << "the records after the snapshot are after it";
  EXPECT_EQ(committed_offset(kafka, options.group, topic), 5)
      << "the group starts at the first request after the snapshot, not at the end (8)";
}

TEST(Reset, RefusesWhileExecutorsOfTheGroupRun) {
  const sp::kafka::Properties kafka = {{"bootstrap.servers", sp::testing::brokers()}};
  const auto topic = sp::testing::unique_name("reset.busy");
  const auto group = sp::testing::unique_name("busy-group");
  {
    sp::kafka::Producer producer(kafka);
    sp::kafka::create_topics(producer.get(), {{topic, 1, 1, {}}}, 15s);
  }
  auto properties = kafka;
  properties.emplace_back("group.id", group);
  sp::kafka::Consumer member(properties);
  member.subscribe({topic});
  for (int i = 0; i < 50 && shadowctl::active_members(kafka, group) == 0; ++i) member.poll(200ms);
  ASSERT_GT(shadowctl::active_members(kafka, group), 0);

  shadowctl::ResetOptions options;
  options.primary_dsn = sp::testing::primary_dsn();
  options.shadow_dsn = sp::testing::shadow_dsn();
  options.group = group;
  options.requests_topic = topic;
  try {
    shadowctl::reset_shadow(kafka, options);
    FAIL() << "reset must refuse while the group has members";
  } catch (const sp::Failure& failure) {
    EXPECT_NE(std::string(failure.what()).find("running executors"), std::string::npos) << failure.what();
  }
  member.close();
}

TEST(ResetGuard, RefusesAMigrationThatAddsAPgNotifyTriggerBeforeMovingTheGroup) {
  std::string name = sp::testing::unique_name("reset_guard").substr(0, 40);
  std::replace(name.begin(), name.end(), '-', '_');
  const auto primary = shadowpipe::pg::with_database(sp::testing::primary_dsn(), name);
  const auto shadow = shadowpipe::pg::with_database(sp::testing::shadow_dsn(), name);
  for (const auto& server : {sp::testing::primary_dsn(), sp::testing::shadow_dsn()}) make_database(server, name);
  sp::pg::Connection(primary).exec_checked("CREATE TABLE orders (id bigint PRIMARY KEY)");
  const auto migration = std::filesystem::temp_directory_path() / (name + ".sql");
  std::ofstream(migration) << "CREATE FUNCTION orders_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN\n"
                              "  PERFORM pg_notify('orders', NEW.id::text); RETURN NEW; END $$;\n"
                              "CREATE TRIGGER orders_notify AFTER INSERT ON orders\n"
                              "  FOR EACH ROW EXECUTE FUNCTION orders_changed();\n";
  const sp::kafka::Properties kafka = {{"bootstrap.servers", sp::testing::brokers()}};
  const auto topic = new_topic(kafka, "reset.guard");
  auto options = reset_options(primary, shadow, migration, sp::testing::unique_name("guard-group"), topic);
  const auto message = reset_refusal(kafka, options);
  EXPECT_NE(message.find("trigger orders_notify on public.orders (calls pg_notify)"), std::string::npos) << message;
  EXPECT_NE(message.find("--allow-outside-reach 'trigger orders_notify on public.orders'"), std::string::npos)
      << message;
  EXPECT_NE(message.find("group was not moved"), std::string::npos) << message;
  EXPECT_LT(committed_offset(kafka, options.group, topic), 0) << "the group did not move";

  options.allow_outside_reach = {"trigger orders_notify on public.orders"};
  const auto outcome = shadowctl::reset_shadow(kafka, options);
  EXPECT_NE(std::find(outcome.steps.begin(), outcome.steps.end(),
                      "allowed by --allow-outside-reach: trigger orders_notify on public.orders (calls pg_notify)"),
            outcome.steps.end());
  EXPECT_EQ(committed_offset(kafka, options.group, topic), 0) << "moved once accepted";
  std::filesystem::remove(migration);
}

TEST(ResetGuard, RefusesAMigrationCreatingDblinkBeforeDumpingAnything) {
  std::string name = sp::testing::unique_name("reset_static").substr(0, 40);
  std::replace(name.begin(), name.end(), '-', '_');
  const auto primary = make_database(sp::testing::primary_dsn(), name);
  const auto shadow = make_database(sp::testing::shadow_dsn(), name);
  sp::pg::Connection(primary).exec_checked("CREATE TABLE orders (id bigint PRIMARY KEY)");
  sp::pg::Connection(shadow).exec_checked("CREATE TABLE untouched (id int)");
  const auto migration = std::filesystem::temp_directory_path() / (name + ".sql");
  std::ofstream(migration) << "ALTER TABLE orders ADD COLUMN note text;\nCREATE EXTENSION dblink;\n";
  const sp::kafka::Properties kafka = {{"bootstrap.servers", sp::testing::brokers()}};
  const auto topic = new_topic(kafka, "reset.static");
  auto options = reset_options(primary, shadow, migration, sp::testing::unique_name("static-group"), topic);
  const auto message = reset_refusal(kafka, options);
  EXPECT_NE(message.find("extension dblink (created by the migration)"), std::string::npos) << message;
  EXPECT_NE(message.find("nothing was dumped or restored"), std::string::npos) << message;
  EXPECT_EQ(sp::pg::Connection(shadow).exec_checked("SELECT count(*) FROM pg_tables WHERE tablename = 'untouched'")
                .value(0, 0), "1") << "refused before the shadow was rebuilt";

  options.allow_outside_reach = {"extension dblink"};
  const auto outcome = shadowctl::reset_shadow(kafka, options);
  EXPECT_NE(std::find(outcome.steps.begin(), outcome.steps.end(),
                      "allowed by --allow-outside-reach: extension dblink (connects to other databases)"),
            outcome.steps.end());
  std::filesystem::remove(migration);
}
