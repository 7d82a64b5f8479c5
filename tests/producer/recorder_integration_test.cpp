// The recorder against the real stack: statements run on the primary
// PostgreSQL, records read back from a real Kafka topic and decoded with the
// wire codec the executor uses.
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/pg_result.hpp"
#include "shadowpipe/recorder.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <thread>

namespace shadowpipe::producer {
namespace {

using namespace std::chrono_literals;
using Params = std::vector<std::optional<std::string>>;

constexpr int kPartitions = 6;

class RecorderIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = testing::unique_name("producer-requests");
    kafka::Producer admin({{"bootstrap.servers", testing::brokers()}});
    kafka::create_topics(admin.get(), {{topic_, kPartitions, 1, {}}}, 15s, false);
    admin_ = std::make_unique<pg::Connection>(testing::primary_dsn());
    database_ = testing::unique_name("producer_test");
    for (auto& c : database_) {
      if (c == '-') c = '_';
    }
    admin_->exec_checked("CREATE DATABASE " + database_ + " TEMPLATE template0");
    primary_ = std::make_unique<pg::Connection>(testing::primary_dsn() + " dbname=" + database_);
    primary_->exec_checked("CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12,2))");
  }

  void TearDown() override {
    primary_.reset();
    if (admin_) admin_->exec("DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
  }

  RecorderConfig config() const {
    RecorderConfig out;
    out.kafka = {{"bootstrap.servers", testing::brokers()}};
    out.topic = topic_;
    out.source = "recorder_integration_test";
    return out;
  }

  // Runs on the primary, timing it the way an application would.
  std::pair<pg::Result, int64_t> run(const std::string& sql, const Params& params = {}) const {
    const auto started = std::chrono::steady_clock::now();
    pg::Result result = primary_->exec(sql, params);
    const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    return {std::move(result), latency.count()};
  }

  // A consumed record, copied: a librdkafka message must not outlive its
  // consumer (destroying the consumer waits for every message it handed out).
  struct Record {
    std::string key;
    std::string payload;
    int32_t partition = -1;
  };

  // Reads the topic until `expected` records arrived and then a quiet second
  // passed (so extra records are seen too), or the deadline.
  std::vector<Record> consume(size_t expected, std::chrono::seconds deadline = 30s) const {
    kafka::Consumer consumer({{"bootstrap.servers", testing::brokers()},
                              {"group.id", testing::unique_name("producer-test-group")},
                              {"auto.offset.reset", "earliest"},
                              {"enable.auto.commit", "false"}});
    consumer.subscribe({topic_});
    std::vector<Record> out;
    const auto until = std::chrono::steady_clock::now() + deadline;
    auto quiet_since = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < until) {
      kafka::Message message = consumer.poll(200ms);
      if (!message) {
        if (out.size() >= expected && std::chrono::steady_clock::now() - quiet_since > 1s) break;
        continue;
      }
      if (message.error()) continue;  // partition EOF and the like
      out.push_back({std::string(message.key()), std::string(message.payload()), message.partition()});
      quiet_since = std::chrono::steady_clock::now();
    }
    consumer.close();
    return out;
  }

  std::string topic_;
  std::string database_;
  std::unique_ptr<pg::Connection> admin_;
  std::unique_ptr<pg::Connection> primary_;
};

TEST_F(RecorderIntegrationTest, AutocommitRecordCarriesStatementDigestSessionAndKey) {
  primary_->exec_checked("SET TimeZone = 'Europe/Vienna'");
  primary_->exec_checked("SET IntervalStyle = 'iso_8601'");
  const std::string sql =
      "SELECT g AS id, 'item ' || g AS name, (g * 1.25)::numeric(10,2) AS price FROM generate_series(1, $1::int) g "
      "ORDER BY g";
  const Params params = {std::string("20")};
  Counters counters;
  {
    Recorder recorder(config());
    auto [result, latency_us] = run(sql, params);
    ASSERT_TRUE(result.succeeded()) << result.error_message();
    recorder.record(primary_->get(), "customer:42", sql, params, result.get(), latency_us);
    EXPECT_EQ(recorder.flush(10s), 0);
    counters = recorder.counters();
  }
  EXPECT_EQ(counters.recorded, 1u);
  EXPECT_EQ(counters.published, 1u);

  auto messages = consume(1);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].key, "customer:42");
  EXPECT_EQ(messages[0].partition, partition_of("customer:42", kPartitions));

  auto decoded = wire::decode_request(messages[0].payload);
  ASSERT_TRUE(decoded.ok()) << decoded.error().describe();
  const wire::Request& request = *decoded;
  EXPECT_EQ(request.request_id.size(), 36u);
  EXPECT_EQ(request.key, "customer:42");
  EXPECT_EQ(request.tx, wire::TxMode::autocommit);
  EXPECT_EQ(request.source.rfind("recorder_integration_test@", 0), 0u) << request.source;
  EXPECT_NEAR(static_cast<double>(request.ts_us), static_cast<double>(wire::now_us()), 60e6);
  EXPECT_EQ(request.session.time_zone, "Europe/Vienna");
  EXPECT_EQ(request.session.interval_style, "iso_8601");
  EXPECT_EQ(request.session.date_style, primary_->parameter_status("DateStyle"));
  ASSERT_EQ(request.statements.size(), 1u);
  const wire::Statement& statement = request.statements[0];
  EXPECT_EQ(statement.sql, sql);
  EXPECT_EQ(statement.params, params);
  EXPECT_EQ(statement.fingerprint, statement::analyze(sql)->fingerprint);
  EXPECT_EQ(statement.result.status, wire::Status::ok);
  EXPECT_EQ(statement.result.rows, 20);
  ASSERT_EQ(statement.result.columns.size(), 3u);
  EXPECT_EQ(statement.result.columns[2].name, "price");
  EXPECT_EQ(statement.result.columns[2].type_oid, 1700u);
  // The executor computes the same digest over the same rows.
  auto again = primary_->exec(sql, params);
  const auto expected = digest::digest_result(again.get(), {});
  EXPECT_EQ(statement.result.ordered, expected.ordered);
  EXPECT_EQ(statement.result.unordered, expected.unordered);
  EXPECT_EQ(statement.result.column_digests, expected.column_digests);
  EXPECT_GT(statement.result.latency_us, 0);
}

TEST_F(RecorderIntegrationTest, TransactionArrivesAsOneRecordWithItsStatementsInOrder) {
  const std::vector<std::pair<std::string, Params>> statements = {
      {"INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)", {"1", "ada", "10.50"}},
      {"INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)", {"2", "bob", std::nullopt}},
      {"UPDATE accounts SET balance = coalesce(balance, 0) + $1 WHERE id IN (1, 2)", {"5.25"}},
      {"SELECT id, owner, balance FROM accounts ORDER BY id", {}},
  };
  {
    Recorder recorder(config());
    primary_->exec_checked("BEGIN");
    Unit unit = recorder.begin(primary_->get(), "tenant:7");
    unit.set_search_path("public");
    for (const auto& [sql, params] : statements) {
      auto [result, latency_us] = run(sql, params);
      ASSERT_TRUE(result.succeeded()) << result.error_message();
      unit.add(sql, params, result.get(), latency_us);
    }
    primary_->exec_checked("COMMIT");
    unit.commit();
    EXPECT_EQ(recorder.flush(10s), 0);
    EXPECT_EQ(recorder.counters().published, 1u);
  }
  auto messages = consume(1);
  ASSERT_EQ(messages.size(), 1u);
  auto request = wire::decode_request(messages[0].payload);
  ASSERT_TRUE(request.ok()) << request.error().describe();
  EXPECT_EQ(request->tx, wire::TxMode::commit);
  EXPECT_EQ(request->key, "tenant:7");
  EXPECT_EQ(request->session.search_path, "public");
  ASSERT_EQ(request->statements.size(), statements.size());
  for (size_t i = 0; i < statements.size(); ++i) {
    EXPECT_EQ(request->statements[i].sql, statements[i].first) << i;
    EXPECT_EQ(request->statements[i].params, statements[i].second) << i;
  }
  EXPECT_EQ(request->statements[0].result.rows, 1);  // affected
  EXPECT_EQ(request->statements[2].result.rows, 2);
  EXPECT_EQ(request->statements[3].result.rows, 2);  // returned
  EXPECT_EQ(request->statements[3].result.columns.size(), 3u);
}

// Dropped write units are never silent (issue 10): once Kafka accepts
// records again, the recorder publishes one gap record per partition that
// lost write units, on that partition, with the exact count; dropped reads
// are not announced.
TEST_F(RecorderIntegrationTest, DroppedWriteUnitsAreAnnouncedAsAGapOnTheirPartition) {
  constexpr int kUnits = 60;
  auto settings = config();
  // A queue of four records lingering a second: the rest of the burst is
  // dropped as queue_full, then the four are delivered.
  settings.kafka.emplace_back("queue.buffering.max.messages", "4");
  settings.kafka.emplace_back("linger.ms", "1000");
  Counters counters;
  {
    Recorder recorder(settings);
    std::this_thread::sleep_for(1500ms);  // the recorder learns the partition count meanwhile
    for (int i = 0; i < kUnits; ++i) {
      const bool write = i % 3 != 0;
      const std::string sql = write ? "INSERT INTO accounts (id, owner) VALUES ($1, 'x')" : "SELECT $1::int";
      const Params params{std::to_string(i)};
      auto [result, latency_us] = run(sql, params);
      ASSERT_TRUE(result.succeeded()) << result.error_message();
      recorder.record(primary_->get(), (write ? "w-" : "r-") + std::to_string(i), sql, params, result.get(),
                      latency_us);
    }
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until &&
           (recorder.counters().gap_units_pending > 0 || recorder.counters().pending() > 0 ||
            recorder.counters().gaps_announced == 0)) {
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(recorder.flush(10s), 0);
    counters = recorder.counters();
  }
  EXPECT_EQ(counters.published, 4u);
  EXPECT_EQ(counters.dropped(DropReason::queue_full), static_cast<uint64_t>(kUnits - 4));
  EXPECT_EQ(counters.gap_units_pending, 0u);

  std::set<std::string> published;
  std::map<int32_t, uint64_t> announced;
  for (const auto& record : consume(4 + 1)) {
    if (wire::is_gap_record(record.payload)) {
      auto gap = wire::decode_gap(record.payload);
      ASSERT_TRUE(gap.ok()) << gap.error().describe();
      EXPECT_EQ(gap->reason, "producer_dropped");
      EXPECT_EQ(gap->partition, record.partition) << "a gap goes to the partition its units were meant for";
      EXPECT_EQ(gap->units, gap->write_units);
      announced[gap->partition] += gap->units;
    } else {
      published.insert(record.key);
      // partition_of is where librdkafka really put it.
      EXPECT_EQ(record.partition, partition_of(record.key, kPartitions)) << record.key;
    }
  }
  std::map<int32_t, uint64_t> dropped_writes;
  for (int i = 0; i < kUnits; ++i) {
    const std::string key = (i % 3 != 0 ? "w-" : "r-") + std::to_string(i);
    if (i % 3 != 0 && !published.contains(key)) ++dropped_writes[partition_of(key, kPartitions)];
  }
  EXPECT_EQ(published.size(), 4u);
  EXPECT_EQ(announced, dropped_writes);
  uint64_t total = 0;
  for (const auto& [partition, units] : dropped_writes) total += units;
  EXPECT_EQ(counters.gap_units_announced, total);
  EXPECT_EQ(counters.gaps_announced, dropped_writes.size());
}

TEST_F(RecorderIntegrationTest, SavepointsSetConstraintsAndTransactionModesAreRecordedInOrderCommitIsNot) {
  // A get-or-create: the insert fails, the transaction goes on after ROLLBACK TO.
  primary_->exec_checked("INSERT INTO accounts (id, owner, balance) VALUES (9, 'existing', 1)");
  const std::vector<std::string> statements = {
      "BEGIN ISOLATION LEVEL REPEATABLE READ", "SET CONSTRAINTS ALL IMMEDIATE", "SAVEPOINT get_or_create",
      "INSERT INTO accounts (id, owner, balance) VALUES (9, 'dup', 1)", "ROLLBACK TO SAVEPOINT get_or_create",
      "SELECT owner FROM accounts WHERE id = 9", "RELEASE SAVEPOINT get_or_create", "COMMIT"};
  {
    Recorder recorder(config());
    Unit unit = recorder.begin(primary_->get(), "k");
    for (const auto& sql : statements) {
      auto [result, latency_us] = run(sql, {});
      unit.add(sql, Params{}, result.get(), latency_us);
    }
    unit.commit();
    EXPECT_EQ(recorder.flush(10s), 0);
  }
  auto messages = consume(1);
  ASSERT_EQ(messages.size(), 1u);
  auto request = wire::decode_request(messages[0].payload);
  ASSERT_TRUE(request.ok()) << request.error().describe();
  std::vector<std::string> recorded;
  for (const auto& statement : request->statements) recorded.push_back(statement.sql);
  EXPECT_EQ(recorded, std::vector<std::string>(statements.begin(), statements.end() - 1));
  EXPECT_EQ(request->statements[3].result.sqlstate, "23505");
  // A plain BEGIN is still left out: the executor owns the transaction.
  {
    Recorder recorder(config());
    Unit unit = recorder.begin(primary_->get(), "k2");
    for (const std::string sql : {"BEGIN", "SELECT 1", "COMMIT"}) {
      auto [result, latency_us] = run(sql, {});
      unit.add(sql, Params{}, result.get(), latency_us);
    }
    unit.commit();
    EXPECT_EQ(recorder.flush(10s), 0);
  }
  messages = consume(2);
  ASSERT_EQ(messages.size(), 2u);
  auto plain = wire::decode_request(messages[0].payload);
  if (plain.ok() && plain->key != "k2") plain = wire::decode_request(messages[1].payload);
  ASSERT_TRUE(plain.ok());
  ASSERT_EQ(plain->key, "k2");
  ASSERT_EQ(plain->statements.size(), 1u);
  EXPECT_EQ(plain->statements[0].sql, "SELECT 1");
}

TEST_F(RecorderIntegrationTest, RollbackIsPublishedAsRollbackOrNotAtAllByPolicy) {
  for (bool publish_rollbacks : {true, false}) {
    auto settings = config();
    settings.publish_rollbacks = publish_rollbacks;
    Recorder recorder(settings);
    primary_->exec_checked("BEGIN");
    Unit unit = recorder.begin(primary_->get(), publish_rollbacks ? "rolled-back-published" : "rolled-back-dropped");
    const std::string sql = "DELETE FROM accounts WHERE id = $1";
    auto [result, latency_us] = run(sql, {"1"});
    unit.add(sql, Params{"1"}, result.get(), latency_us);
    primary_->exec_checked("ROLLBACK");
    unit.rollback();
    EXPECT_EQ(recorder.flush(10s), 0);
  }
  auto messages = consume(1);
  ASSERT_EQ(messages.size(), 1u);
  auto request = wire::decode_request(messages[0].payload);
  ASSERT_TRUE(request.ok()) << request.error().describe();
  EXPECT_EQ(request->key, "rolled-back-published");
  EXPECT_EQ(request->tx, wire::TxMode::rollback);
}

TEST_F(RecorderIntegrationTest, PrimaryErrorIsRecordedWithItsSqlstate) {
  {
    Recorder recorder(config());
    const std::string sql = "SELECT 1 / $1::int AS ratio";
    auto [result, latency_us] = run(sql, {"0"});
    ASSERT_FALSE(result.succeeded());
    recorder.record(primary_->get(), "", sql, Params{"0"}, result.get(), latency_us);
    EXPECT_EQ(recorder.flush(10s), 0);
  }
  auto messages = consume(1);
  ASSERT_EQ(messages.size(), 1u);
  auto request = wire::decode_request(messages[0].payload);
  ASSERT_TRUE(request.ok()) << request.error().describe();
  EXPECT_EQ(request->key, request->request_id);  // no key given: the request id
  ASSERT_EQ(request->statements.size(), 1u);
  EXPECT_EQ(request->statements[0].result.status, wire::Status::error);
  EXPECT_EQ(request->statements[0].result.sqlstate, "22012");
  EXPECT_NE(request->statements[0].result.message.find("division by zero"), std::string::npos);
}

TEST_F(RecorderIntegrationTest, SamplingAtTenPercentPublishesAboutTenPercent) {
  constexpr int kUnits = 3000;
  Counters counters;
  {
    auto settings = config();
    settings.sampling.rate = 0.10;
    Recorder recorder(settings);
    const std::string sql = "SELECT id, owner FROM accounts WHERE id = $1";
    auto [result, latency_us] = run(sql, {"1"});
    for (int i = 0; i < kUnits; ++i) {
      recorder.record(primary_->get(), "k" + std::to_string(i), sql, Params{"1"}, result.get(), latency_us);
    }
    EXPECT_EQ(recorder.flush(15s), 0);
    counters = recorder.counters();
  }
  EXPECT_EQ(counters.recorded, static_cast<uint64_t>(kUnits));
  EXPECT_EQ(counters.published + counters.dropped(DropReason::sampled_out), counters.recorded);
  EXPECT_EQ(counters.pending(), 0u);
  // Binomial(3000, 0.1): mean 300, standard deviation 16.4; six of them.
  EXPECT_NEAR(static_cast<double>(counters.published), 300.0, 6 * std::sqrt(kUnits * 0.1 * 0.9));
  auto messages = consume(counters.published);
  EXPECT_EQ(messages.size(), counters.published);
}

}  // namespace
}  // namespace shadowpipe::producer
