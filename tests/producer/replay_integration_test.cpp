// shadow-replay end to end: a JSON lines file run on a real primary, its units
// read back from a real topic.
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/replay.hpp"
#include "shadowpipe/wire.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace shadowpipe::replay {
namespace {

using namespace std::chrono_literals;

TEST(ReplayIntegrationTest, JsonLinesRunOnThePrimaryAndArriveAsUnitsInKeyOrder) {
  const std::string topic = testing::unique_name("replay-requests");
  {
    kafka::Producer admin(kafka::Properties{{"bootstrap.servers", testing::brokers()}});
    kafka::create_topics(admin.get(), {{topic, 3, 1, {}}}, 15s, false);
  }
  pg::Connection admin(testing::primary_dsn());
  std::string database = testing::unique_name("replay_test");
  for (auto& c : database) {
    if (c == '-') c = '_';
  }
  admin.exec_checked("CREATE DATABASE " + database + " TEMPLATE template0");
  const std::string dsn = testing::primary_dsn() + " dbname=" + database;
  pg::Connection(dsn).exec_checked("CREATE TABLE notes (id int PRIMARY KEY, body text)");

  const std::string path = "/tmp/" + testing::unique_name("replay") + ".jsonl";
  {
    std::ofstream file(path);
    file << R"j({"sql": "INSERT INTO notes VALUES ($1, $2)", "params": [1, "one"], "key": "k1", "tx": "a"})j" "\n"
         << R"j({"sql": "UPDATE notes SET body = $2 WHERE id = $1", "params": [1, "uno"], "tx": "a"})j" "\n"
         << R"j({"sql": "SELECT id, body FROM notes WHERE id = $1", "params": [1], "key": "k1"})j" "\n"
         << "{\"sql\": \"INSERT INTO notes VALUES (2, 'two')\"\n"  // not JSON: reported, skipped
         << R"j({"sql": "INSERT INTO notes VALUES ($1, $2)", "params": [1, "dup"], "key": "k1"})j" "\n"
         << R"j({"sql": "SELECT count(*) FROM notes", "key": "k2"})j" "\n";
  }
  ReplayOptions options;
  options.input = path;
  options.primary_dsn = dsn;
  options.concurrency = 2;
  options.recorder.kafka = {{"bootstrap.servers", testing::brokers()}};
  options.recorder.topic = topic;
  std::ostringstream diagnostics;
  const ReplayReport report = run(options, diagnostics);
  std::remove(path.c_str());

  EXPECT_EQ(report.lines, 6u);
  EXPECT_EQ(report.bad_lines, 1u);
  EXPECT_NE(diagnostics.str().find(path + ":4: malformed"), std::string::npos) << diagnostics.str();
  EXPECT_EQ(report.units, 4u);
  EXPECT_EQ(report.statements, 5u);
  EXPECT_EQ(report.primary_errors, 1u);  // the duplicate key
  EXPECT_EQ(report.recorder.published, 4u);
  EXPECT_EQ(pg::Connection(dsn).exec_checked("SELECT body FROM notes WHERE id = 1").value(0, 0), "uno");

  kafka::Consumer consumer({{"bootstrap.servers", testing::brokers()},
                            {"group.id", testing::unique_name("replay-test-group")},
                            {"auto.offset.reset", "earliest"}});
  consumer.subscribe({topic});
  std::map<std::string, std::vector<wire::Request>> by_key;
  size_t received = 0;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (received < 4 && std::chrono::steady_clock::now() < until) {
    kafka::Message message = consumer.poll(200ms);
    if (!message || message.error()) continue;
    auto request = wire::decode_request(message.payload());
    ASSERT_TRUE(request.ok()) << request.error().describe();
    by_key[request->key].push_back(std::move(request).value());
    ++received;
  }
  consumer.close();
  ASSERT_EQ(by_key["k1"].size(), 3u);
  const auto& k1 = by_key["k1"];
  EXPECT_EQ(k1[0].tx, wire::TxMode::commit);
  ASSERT_EQ(k1[0].statements.size(), 2u);
  EXPECT_EQ(k1[0].statements[1].params[1], "uno");
  EXPECT_EQ(k1[1].statements[0].result.rows, 1);
  EXPECT_EQ(k1[2].statements[0].result.sqlstate, "23505");
  ASSERT_EQ(by_key["k2"].size(), 1u);
  admin.exec("DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
}

}  // namespace
}  // namespace shadowpipe::replay
