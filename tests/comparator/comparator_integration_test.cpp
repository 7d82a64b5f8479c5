// The comparator through the real broker: records built as wire structs,
// encoded, produced to unique topics, decided by the comparator (in-process,
// or the real binary for the crash test), and read back from the topics.
#include "comparator/service.hpp"
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"
#include "support/http.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <utility>

namespace sp = shadowpipe;
namespace cmp = shadowpipe::comparator;
namespace wire = shadowpipe::wire;
using namespace std::chrono_literals;

namespace {

const std::string kSelect = "select id, name from items where id = $1";
const std::string kOrdered = "select id, name from items order by id";
const std::string kCount = "select count(*) from orders where customer = $1";

std::string fingerprint_of(const std::string& sql) {
  auto analysis = sp::statement::analyze(sql);
  if (!analysis) throw std::runtime_error("test SQL does not parse: " + analysis.error().describe());
  return analysis->fingerprint;
}

wire::StatementResult good(int64_t rows = 2, int64_t latency_us = 1000) {
  wire::StatementResult result;
  result.rows = rows;
  result.columns = {{"id", 23}, {"name", 25}};
  result.ordered = 0x1111 + static_cast<uint64_t>(rows);
  result.unordered = 0x2222 + static_cast<uint64_t>(rows);
  result.column_digests = {0xaaaa, 0xbbbb};
  result.latency_us = latency_us;
  return result;
}

wire::StatementResult failed(std::string sqlstate, std::string message) {
  wire::StatementResult result;
  result.status = wire::Status::error;
  result.sqlstate = std::move(sqlstate);
  result.message = std::move(message);
  return result;
}

struct Step {
  std::string sql;
  wire::StatementResult primary;
  wire::StatementResult shadow;
};

wire::Request make_request(const std::string& id, const std::string& key, const std::vector<Step>& steps) {
  wire::Request request;
  request.request_id = id;
  request.ts_us = wire::now_us();
  request.key = key;
  request.source = "comparator-test";
  for (const auto& step : steps) {
    wire::Statement statement;
    statement.sql = step.sql;
    statement.params = {std::string("42")};
    statement.fingerprint = fingerprint_of(step.sql);
    statement.result = step.primary;
    request.statements.push_back(std::move(statement));
  }
  return request;
}

wire::ShadowResult make_result(const std::string& id, const std::string& key, const std::vector<Step>& steps,
                               std::optional<wire::PlanSummary> plan = std::nullopt) {
  wire::ShadowResult result;
  result.request_id = id;
  result.ts_us = wire::now_us();
  result.key = key;
  result.executor = "test-executor";
  for (const auto& step : steps) result.statements.push_back({fingerprint_of(step.sql), step.shadow, plan});
  return result;
}

struct Topics {
  std::string requests, results, mismatches, summary, dlq;
  int partitions = 1;
};

class Broker {
 public:
  Broker() : producer({{"bootstrap.servers", sp::testing::brokers()}, {"enable.idempotence", "true"}, {"linger.ms", "5"}}) {}

  Topics create(int partitions, int result_partitions = 0) {
    const auto base = sp::testing::unique_name("cmp");
    Topics topics{base + ".requests", base + ".results", base + ".mismatches", base + ".summary", base + ".dlq",
                  partitions};
    sp::kafka::create_topics(producer.get(),
                             {{topics.requests, partitions, 1, {}},
                              {topics.results, result_partitions ? result_partitions : partitions, 1, {}},
                              {topics.mismatches, partitions, 1, {}},
                              {topics.summary, 1, 1, {}},
                              {topics.dlq, 1, 1, {}}},
                             20s);
    return topics;
  }

  void send(const std::string& topic, int32_t partition, const std::string& key, const std::string& payload) {
    for (;;) {
      auto err = producer.produce(topic, partition, key, payload);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
      ASSERT_EQ(err, RD_KAFKA_RESP_ERR__QUEUE_FULL) << rd_kafka_err2str(err);
      producer.poll(50ms);
    }
  }
  void request(const Topics& t, int32_t partition, const wire::Request& record) {
    send(t.requests, partition, record.key, wire::encode(record));
  }
  void result(const Topics& t, int32_t partition, const wire::ShadowResult& record) {
    send(t.results, partition, record.key, wire::encode(record));
  }
  void flush() { ASSERT_EQ(producer.flush(30s), 0) << "records were not delivered"; }

  sp::kafka::Producer producer;
};

// Reads a topic from the beginning, keeping every record and its partition.
class Reader {
 public:
  explicit Reader(const std::string& topic)
      : consumer({{"bootstrap.servers", sp::testing::brokers()},
                  {"group.id", sp::testing::unique_name("cmp-reader")},
                  {"auto.offset.reset", "earliest"},
                  {"enable.auto.commit", "false"}}) {
    consumer.subscribe({topic});
  }
  // Polls until done(records) or the timeout; returns done(records).
  // done() may decode every record: by default it is checked a few times a
  // second, not per record; a cheap one may be checked after every poll.
  bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                  std::chrono::milliseconds check_every = 200ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done() && std::chrono::steady_clock::now() < deadline) drain_for(check_every);
    return done();
  }
  // Returns once the group gave this reader its partitions, so what follows is seen promptly.
  bool wait_assigned(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      poll_once();
      rd_kafka_topic_partition_list_t* assignment = nullptr;
      if (rd_kafka_assignment(consumer.get(), &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        sp::kafka::PartitionList owned(assignment);
        if (owned.size() > 0) return true;
      }
    }
    return false;
  }
  void drain_for(std::chrono::milliseconds duration) {
    const auto deadline = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < deadline) poll_once();
  }
  std::vector<std::pair<int32_t, std::string>> records;

 private:
  void poll_once() {
    auto message = consumer.poll(100ms);
    if (message && !message.error()) records.emplace_back(message.partition(), std::string(message.payload()));
  }
  sp::kafka::Consumer consumer;
};

struct Published {
  int32_t partition;
  wire::Mismatch record;
};

// The discrepancies published: notices (wire::is_notice_kind) describe a
// fingerprint once, not a request's decision, and are left out.
std::vector<Published> mismatches_of(const Reader& reader) {
  std::vector<Published> out;
  for (const auto& [partition, payload] : reader.records) {
    auto decoded = wire::decode_mismatch(payload);
    EXPECT_TRUE(decoded.ok()) << (decoded.ok() ? "" : decoded.error().describe());
    if (decoded && !wire::is_notice_kind(decoded->kind)) out.push_back({partition, std::move(decoded.value())});
  }
  return out;
}

std::map<std::string, int> count_by_request(const Reader& reader) {
  std::map<std::string, int> counts;
  for (const auto& published : mismatches_of(reader)) counts[published.record.request_id]++;
  return counts;
}

cmp::Options options_for(const Topics& topics) {
  cmp::Options options;
  options.kafka = {{"bootstrap.servers", sp::testing::brokers()}};
  options.group = sp::testing::unique_name("cmp-group");
  options.comparator_id = sp::testing::unique_name("cmp");
  options.requests_topic = topics.requests;
  options.results_topic = topics.results;
  options.mismatches_topic = topics.mismatches;
  options.summary_topic = topics.summary;
  options.dlq_topic = topics.dlq;
  options.window = 2s;
  options.summary_interval = 1s;
  options.commit_interval = 500ms;
  // The same tests run with the records handled on the consumer's thread
  // (1) and on workers (the default, 2 on a two-core machine); the binary
  // the crash tests start reads the same variable.
  if (const char* workers = std::getenv("SHADOWPIPE_COMPARATOR_WORKERS")) options.workers = std::stoul(workers);
  return options;
}

// A comparator running in-process on its own thread.
class Running {
 public:
  explicit Running(cmp::Options options)
      : comparator_(std::make_unique<cmp::Comparator>(std::move(options))), thread_([this] {
          try {
            comparator_->run(stop_);
          } catch (...) {
            error_ = std::current_exception();
            failed_ = true;
          }
        }) {}
  ~Running() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (error_) ADD_FAILURE() << "the comparator failed: " << describe(error_);
  }
  static std::string describe(const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    }
  }
  void stop() {
    stop_ = true;
    thread_.join();
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }
  cmp::Stats stats() const { return comparator_->stats(); }
  bool wait_for(const std::function<bool(const cmp::Stats&)>& done, std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && !failed_) {
      if (done(stats())) return true;
      std::this_thread::sleep_for(50ms);
    }
    return done(stats());
  }

 private:
  std::unique_ptr<cmp::Comparator> comparator_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::thread thread_;
};

// ---- one test per discrepancy kind -----------------------------------------

struct KindCase {
  std::string kind;
  std::vector<Step> steps;
  std::vector<std::string> columns_differ;
};

// ctest lists the case by its kind, not by its bytes.
void PrintTo(const KindCase& kind_case, std::ostream* out) { *out << kind_case.kind; }

std::vector<KindCase> kind_cases() {
  auto renamed = good();  // a type change is a notice (docs/COMPARISON.md); a renamed column is not
  renamed.columns[1].name = "label";
  auto other_values = good();
  other_values.unordered = 0x9999;
  other_values.column_digests[1] = 0xcccc;
  auto reordered = good();
  reordered.ordered = 0x7777;
  return {
      {"shadow_error", {{kSelect, good(), failed("22001", "value too long for type character varying(5)")}}, {}},
      {"primary_error_only", {{kSelect, failed("23505", "duplicate key"), good()}}, {}},
      {"error_mismatch", {{kSelect, failed("23505", "duplicate key"), failed("42703", "column does not exist")}}, {}},
      {"schema_mismatch", {{kSelect, good(), renamed}}, {"label", "name"}},
      {"row_count_mismatch", {{kSelect, good(2), good(3)}}, {}},
      {"value_mismatch", {{kSelect, good(), other_values}}, {"name"}},
      {"order_mismatch", {{kOrdered, good(), reordered}}, {}},
  };
}

class DiscrepancyKind : public ::testing::TestWithParam<KindCase> {};

TEST_P(DiscrepancyKind, IsPublishedOnceWithItsEvidence) {
  const auto& kind_case = GetParam();
  Broker broker;
  auto topics = broker.create(2);
  // The case on partition 1, a matching request on partition 0, and a volatile
  // statement whose values differ (not a discrepancy) on partition 0.
  auto volatile_shadow = good();
  volatile_shadow.unordered = 0x5555;
  const std::vector<Step> matching = {{kSelect, good(), good()}};
  const std::vector<Step> volatile_steps = {{"select id, now() from items where id = $1", good(), volatile_shadow}};
  broker.request(topics, 1, make_request("case", "tenant-a", kind_case.steps));
  broker.result(topics, 1, make_result("case", "tenant-a", kind_case.steps));
  broker.request(topics, 0, make_request("matching", "tenant-b", matching));
  broker.result(topics, 0, make_result("matching", "tenant-b", matching));
  broker.request(topics, 0, make_request("volatile", "tenant-b", volatile_steps));
  broker.result(topics, 0, make_result("volatile", "tenant-b", volatile_steps));
  broker.flush();

  Running comparator(options_for(topics));
  Reader reader(topics.mismatches);
  ASSERT_TRUE(reader.wait_until([&] { return !reader.records.empty(); }, 30s)) << "no mismatch published";
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.pairs == 3; }, 10s));
  reader.drain_for(1500ms);
  comparator.stop();

  auto published = mismatches_of(reader);
  ASSERT_EQ(published.size(), 1u);
  const auto& record = published[0].record;
  EXPECT_EQ(published[0].partition, 1) << "mismatches of request partition N go to mismatch partition N";
  EXPECT_EQ(record.kind, kind_case.kind);
  EXPECT_EQ(record.request_id, "case");
  EXPECT_EQ(record.key, "tenant-a");
  EXPECT_EQ(record.statement_index, 0);
  EXPECT_EQ(record.fingerprint, fingerprint_of(kind_case.steps[0].sql));
  EXPECT_NE(record.normalized_sql.find("items"), std::string::npos);
  ASSERT_TRUE(record.primary && record.shadow);
  EXPECT_EQ(record.primary->status, kind_case.steps[0].primary.status);
  EXPECT_EQ(record.shadow->sqlstate, kind_case.steps[0].shadow.sqlstate);
  EXPECT_EQ(record.shadow->message, kind_case.steps[0].shadow.message);
  EXPECT_EQ(record.columns_differ, kind_case.columns_differ);
  EXPECT_TRUE(record.first_divergence_on_key);
  EXPECT_FALSE(record.params.has_value()) << "raw parameters are left out unless asked for";
  EXPECT_FALSE(record.detail.empty());
  EXPECT_EQ(comparator.stats().discrepancies.at(kind_case.kind), 1u);
}

INSTANTIATE_TEST_SUITE_P(Kinds, DiscrepancyKind, ::testing::ValuesIn(kind_cases()),
                         [](const auto& info) { return info.param.kind; });

TEST(Comparator, RequestTheExecutorPassedWithoutAResultIsShadowMissing) {
  Broker broker;
  auto topics = broker.create(1);
  const std::vector<Step> steps = {{kSelect, good(), good()}};
  broker.request(topics, 0, make_request("lost", "tenant-a", steps));
  broker.request(topics, 0, make_request("answered", "tenant-a", steps));
  broker.request(topics, 0, make_request("waiting", "tenant-a", steps));
  // The executor's result for offset 1, stamped: every result below offset 1
  // stands before it. There is none for offset 0: the executor passed it.
  auto answered = make_result("answered", "tenant-a", steps);
  answered.source_partition = 0;
  answered.source_offset = 1;
  answered.published_below = 1;
  broker.result(topics, 0, answered);
  broker.flush();

  auto options = options_for(topics);
  options.window = 1s;  // a stall is reported, never decided
  Running comparator(options);
  Reader reader(topics.mismatches);
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.pairs == 1 && s.shadow_missing == 1; }, 20s));
  ASSERT_TRUE(reader.wait_until([&] { return !reader.records.empty(); }, 20s));
  // "waiting" has no result and nothing proves the executor passed it: it
  // stays undecided however long it waits, and the partition is stalled.
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.stalled_partitions == 1; }, 20s));
  EXPECT_EQ(comparator.stats().pending_requests, 1u);
  reader.drain_for(1s);
  comparator.stop();
  auto published = mismatches_of(reader);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].record.kind, "shadow_missing");
  EXPECT_EQ(published[0].record.request_id, "lost");
  EXPECT_EQ(published[0].record.statement_index, -1);
  EXPECT_EQ(published[0].record.fingerprint, fingerprint_of(kSelect));
  EXPECT_EQ(comparator.stats().shadow_missing, 1u);
}

TEST(Comparator, DuplicateRequestsAndResultsAreDroppedAndCounted) {
  Broker broker;
  auto topics = broker.create(1);
  const std::vector<Step> steps = {{kSelect, good(), failed("22001", "too long")}};
  auto request = make_request("twice", "tenant-a", steps);
  auto result = make_result("twice", "tenant-a", steps);
  broker.request(topics, 0, request);
  broker.request(topics, 0, request);
  broker.result(topics, 0, result);
  broker.result(topics, 0, result);
  broker.request(topics, 0, request);  // a late producer retry, after the decision
  broker.flush();

  Running comparator(options_for(topics));
  Reader reader(topics.mismatches);
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.duplicates == 3; }, 20s))
      << "duplicates counted: " << comparator.stats().duplicates;
  reader.drain_for(3s);  // past the window: a duplicate must not turn into shadow_missing
  comparator.stop();
  EXPECT_EQ(count_by_request(reader), (std::map<std::string, int>{{"twice", 1}}));
  EXPECT_EQ(comparator.stats().pairs, 1u);
  EXPECT_EQ(comparator.stats().shadow_missing, 0u);
}

TEST(Comparator, ResultsArrivingBeforeTheirRequestsStillJoin) {
  Broker broker;
  auto topics = broker.create(2);
  const std::vector<Step> steps = {{kSelect, good(), failed("22001", "too long")}};
  auto options = options_for(topics);
  options.window = 10s;
  options.include_params = true;
  Running comparator(options);
  for (int i = 0; i < 20; ++i) broker.result(topics, i % 2, make_result("r" + std::to_string(i), "k", steps));
  broker.flush();
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.pending_results == 20; }, 30s))
      << "pending results " << comparator.stats().pending_results << ", dead letters "
      << comparator.stats().dead_letters << ", orphans " << comparator.stats().orphan_results;
  for (int i = 0; i < 20; ++i) broker.request(topics, i % 2, make_request("r" + std::to_string(i), "k", steps));
  broker.flush();
  Reader reader(topics.mismatches);
  ASSERT_TRUE(reader.wait_until([&] { return reader.records.size() >= 20; }, 20s));
  reader.drain_for(1s);
  comparator.stop();
  auto published = mismatches_of(reader);
  ASSERT_EQ(published.size(), 20u);
  for (const auto& [partition, record] : published) {
    EXPECT_EQ(record.kind, "shadow_error");
    ASSERT_TRUE(record.params.has_value()) << "--include-params puts the parameters in";
    EXPECT_EQ(*record.params, (std::vector<std::optional<std::string>>{std::string("42")}));
  }
  EXPECT_EQ(comparator.stats().pairs, 20u);
  EXPECT_EQ(comparator.stats().pending_results, 0u);
}

TEST(Comparator, OnlyTheFirstDiscrepancyOnAKeyIsMarkedAsTheCause) {
  Broker broker;
  auto topics = broker.create(1);
  const std::vector<Step> refused = {{kSelect, good(), failed("23502", "null value in column")}};
  const std::vector<Step> echo = {{kSelect, good(1), good(0)}};
  broker.request(topics, 0, make_request("cause", "order-7", refused));
  broker.result(topics, 0, make_result("cause", "order-7", refused));
  broker.request(topics, 0, make_request("echo", "order-7", echo));
  broker.result(topics, 0, make_result("echo", "order-7", echo));
  broker.flush();
  Running comparator(options_for(topics));
  Reader reader(topics.mismatches);
  ASSERT_TRUE(reader.wait_until([&] { return reader.records.size() >= 2; }, 30s));
  comparator.stop();
  auto published = mismatches_of(reader);
  ASSERT_EQ(published.size(), 2u);
  EXPECT_EQ(published[0].record.request_id, "cause");
  EXPECT_TRUE(published[0].record.first_divergence_on_key);
  EXPECT_EQ(published[1].record.request_id, "echo");
  EXPECT_FALSE(published[1].record.first_divergence_on_key);
}

TEST(Comparator, BadRecordsGoToTheDeadLetterTopicAndThePartitionMovesOn) {
  Broker broker;
  auto topics = broker.create(1);
  const std::vector<Step> steps = {{kSelect, good(), failed("22001", "too long")}};
  broker.send(topics.requests, 0, "k", "{not json");
  auto unparsable = make_request("bad-sql", "k", {{kSelect, good(), good()}});
  unparsable.statements[0].sql = "selec id form items";
  unparsable.statements[0].fingerprint = "00000000000000ff";
  broker.request(topics, 0, unparsable);
  broker.request(topics, 0, make_request("after", "k", steps));
  broker.result(topics, 0, make_result("after", "k", steps));
  broker.flush();
  Running comparator(options_for(topics));
  Reader dlq(topics.dlq);
  Reader mismatches(topics.mismatches);
  ASSERT_TRUE(dlq.wait_until([&] { return dlq.records.size() >= 2; }, 30s));
  ASSERT_TRUE(mismatches.wait_until([&] { return !mismatches.records.empty(); }, 20s));
  comparator.stop();
  auto first = wire::decode_dead_letter(dlq.records[0].second);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->source_topic, topics.requests);
  EXPECT_EQ(first->source_offset, 0);
  auto second = wire::decode_dead_letter(dlq.records[1].second);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->error_code, "sql_syntax");
  EXPECT_EQ(second->source_offset, 1);
  EXPECT_EQ(count_by_request(mismatches), (std::map<std::string, int>{{"after", 1}}));
  EXPECT_EQ(comparator.stats().dead_letters, 2u);
}

TEST(Comparator, RefusesToStartWhenPartitionCountsDiffer) {
  Broker broker;
  auto topics = broker.create(2, 3);
  try {
    cmp::Comparator comparator(options_for(topics));
    FAIL() << "the comparator started on topics it cannot join";
  } catch (const sp::Failure& failure) {
    const std::string what = failure.what();
    EXPECT_NE(what.find(topics.requests + " has 2 partitions"), std::string::npos) << what;
    EXPECT_NE(what.find(topics.results + " has 3"), std::string::npos) << what;
  }
}

TEST(Comparator, LatencyRegressionCarriesBothDistributionsAndTheShadowPlan) {
  Broker broker;
  auto topics = broker.create(1);
  const wire::PlanSummary plan{{"Seq Scan"}, {"items"}, 1234.5, 1};
  for (int i = 0; i < 20; ++i) {
    const std::vector<Step> slow = {{kSelect, good(2, 1000 + i), good(2, 20000 + 10 * i)}};
    const std::vector<Step> steady = {{kCount, good(1, 2000 + i), good(1, 2100 + i)}};
    broker.request(topics, 0, make_request("slow" + std::to_string(i), "k", slow));
    broker.result(topics, 0, make_result("slow" + std::to_string(i), "k", slow, plan));
    broker.request(topics, 0, make_request("steady" + std::to_string(i), "k", steady));
    broker.result(topics, 0, make_result("steady" + std::to_string(i), "k", steady));
  }
  broker.flush();
  auto options = options_for(topics);
  options.min_samples = 10;
  options.summary_interval = 500ms;
  Running comparator(options);
  Reader mismatches(topics.mismatches);
  Reader summaries(topics.summary);
  ASSERT_TRUE(mismatches.wait_until([&] { return !mismatches.records.empty(); }, 30s));
  ASSERT_TRUE(summaries.wait_until([&] { return summaries.records.size() >= 2; }, 10s));
  mismatches.drain_for(1500ms);  // evaluated again: published once
  comparator.stop();

  auto published = mismatches_of(mismatches);
  ASSERT_EQ(published.size(), 1u);
  const auto& record = published[0].record;
  EXPECT_EQ(record.kind, "latency_regression");
  EXPECT_EQ(record.fingerprint, fingerprint_of(kSelect));
  EXPECT_NEAR(record.latency_ratio, 20, 1.5);
  ASSERT_TRUE(record.plan.has_value());
  EXPECT_EQ(*record.plan, plan);
  EXPECT_NE(record.detail.find("p99"), std::string::npos);
  EXPECT_NE(record.detail.find("p50"), std::string::npos);

  std::map<std::string, uint64_t> compared;
  for (const auto& [partition, payload] : summaries.records) {
    auto summary = wire::decode_summary(payload);
    ASSERT_TRUE(summary.ok()) << summary.error().describe();
    compared[summary->fingerprint] += summary->compared;
    if (summary->fingerprint == fingerprint_of(kSelect) && summary->compared > 0) {
      EXPECT_NEAR(summary->shadow_latency.p95_us, 20000, 600);
      EXPECT_NEAR(summary->primary_latency.p50_us, 1010, 25);
    }
  }
  EXPECT_EQ(compared[fingerprint_of(kSelect)], 20u);
  EXPECT_EQ(compared[fingerprint_of(kCount)], 20u);
  EXPECT_EQ(compared[""], 40u) << "the whole-stream summary counts requests";
}

TEST(Comparator, MetricsAreServedOnTheMetricsPort) {
  Broker broker;
  auto topics = broker.create(1);
  const std::vector<Step> steps = {{kSelect, good(), failed("22001", "too long")}};
  // Committed on the primary 3 s ago: its decision lag falls between 2 s and 5 s.
  auto committed_earlier = make_request("m1", "k", steps);
  committed_earlier.ts_us -= 3'000'000;
  broker.request(topics, 0, committed_earlier);
  broker.request(topics, 0, committed_earlier);
  broker.result(topics, 0, make_result("m1", "k", steps));
  broker.request(topics, 0, make_request("waiting", "k", steps));
  broker.flush();
  auto options = options_for(topics);
  options.window = 30s;
  const int port = shadowpipe::testing::free_port();
  options.metrics_bind = "127.0.0.1:" + std::to_string(port);
  Running comparator(options);
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.pairs == 1 && s.pending_requests == 1; }, 30s));
  std::this_thread::sleep_for(300ms);  // gauges refresh a few times a second
  const std::string page = shadowpipe::testing::http_get(port, "/metrics");
  comparator.stop();
  EXPECT_NE(page.find("shadowpipe_comparator_pairs_total 1"), std::string::npos) << page;
  EXPECT_NE(page.find("shadowpipe_comparator_discrepancies_total{kind=\"shadow_error\"} 1"), std::string::npos);
  EXPECT_NE(page.find("shadowpipe_comparator_duplicates_total 1"), std::string::npos);
  EXPECT_NE(page.find("shadowpipe_comparator_pending_requests 1"), std::string::npos);
  EXPECT_NE(page.find("shadowpipe_comparator_paused_partitions 0"), std::string::npos);
  EXPECT_NE(page.find("shadowpipe_comparator_oldest_pending_age_seconds"), std::string::npos);
  EXPECT_EQ(page.find("shadowpipe_comparator_pending_bytes 0\n"), std::string::npos) << "one request is pending";
  // One decision, the copy is not one; it came more than 2 s and less than 5 s after the primary's commit.
  EXPECT_NE(page.find("shadowpipe_comparator_decision_lag_seconds_count 1\n"), std::string::npos) << page;
  EXPECT_NE(page.find("shadowpipe_comparator_decision_lag_seconds_bucket{le=\"2\"} 0\n"), std::string::npos) << page;
  EXPECT_NE(page.find("shadowpipe_comparator_decision_lag_seconds_bucket{le=\"5\"} 1\n"), std::string::npos) << page;
}

// ---- crash, rebalance, memory ----------------------------------------------

std::vector<Step> failing_steps() { return {{kSelect, good(), failed("22001", "too long")}}; }

enum class Sides { both, requests, results };

void publish_pairs(Broker& broker, const Topics& topics, int from, int to, const std::string& prefix,
                   Sides sides = Sides::both) {
  const auto steps = failing_steps();
  for (int i = from; i < to; ++i) {
    const auto id = prefix + std::to_string(i);
    const auto key = "key-" + std::to_string(i % 97);
    const int32_t partition = i % topics.partitions;
    if (sides != Sides::results) broker.request(topics, partition, make_request(id, key, steps));
    if (sides != Sides::requests) broker.result(topics, partition, make_result(id, key, steps));
  }
  broker.flush();
}

std::string comparator_binary() {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "shadow-comparator").string();
}

// log_path: where the program's stdout and stderr go (empty: the test's own).
pid_t start_binary(const Topics& topics, const std::string& group, const std::string& window_ms = "3000",
                   const std::string& log_path = "") {
  const std::vector<std::string> args = {comparator_binary(), "--brokers", sp::testing::brokers(), "--group", group,
                                         "--requests-topic", topics.requests, "--results-topic", topics.results,
                                         "--mismatches-topic", topics.mismatches, "--summary-topic", topics.summary,
                                         "--dlq-topic", topics.dlq, "--window", window_ms, "--commit-interval", "1000",
                                         // A killed member holds its partitions until its session times out.
                                         "-X", "session.timeout.ms=6000"};
  const pid_t pid = fork();
  if (pid == 0) {
    if (!log_path.empty()) {
      const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (log < 0) _exit(127);
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      close(log);
    }
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

TEST(Comparator, KilledMidStreamAndRestartedDecidesEveryRequestExactlyOnce) {
  ASSERT_TRUE(std::filesystem::exists(comparator_binary())) << comparator_binary();
  Broker broker;
  auto topics = broker.create(3);
  const std::string group = sp::testing::unique_name("cmp-crash");
  constexpr int kFirst = 20000, kTotal = 25000, kAnswered = 12000;
  // Results for the first 12,000 only: the first instance cannot decide the
  // rest, so the kill lands mid-stream however fast it decides (its
  // decisions become visible only when its first transaction commits).
  publish_pairs(broker, topics, 0, kAnswered, "a");
  publish_pairs(broker, topics, kAnswered, kFirst, "a", Sides::requests);
  Reader reader(topics.mismatches);
  ASSERT_TRUE(reader.wait_assigned(20s));

  const pid_t first = start_binary(topics, group);
  ASSERT_GT(first, 0);
  // Killed at its first published record: checked after every poll, so the kill lands early in the stream.
  ASSERT_TRUE(reader.wait_until([&] { return !reader.records.empty(); }, 30s, 1ms))
      << "first instance published nothing";
  ASSERT_EQ(kill(first, SIGKILL), 0);
  int status = 0;
  waitpid(first, &status, 0);
  // What the killed instance committed is readable now; its open transaction
  // never will be (aborted when the broker times it out), and its records,
  // like the transaction markers, count in the topic's end but not here.
  reader.drain_for(3s);
  const int64_t published_by_first = static_cast<int64_t>(reader.records.size());
  const size_t decided_by_first = count_by_request(reader).size();
  std::cout << "decided before the kill: " << decided_by_first << " of " << kFirst << "\n";
  // The kill must land mid-stream, or the restart has nothing to finish and nothing to replay.
  ASSERT_GT(decided_by_first, 0u);
  ASSERT_LT(decided_by_first, static_cast<size_t>(kFirst)) << "the first instance decided everything before the kill";
  publish_pairs(broker, topics, kAnswered, kFirst, "a", Sides::results);
  publish_pairs(broker, topics, kFirst, kTotal, "a");

  const pid_t second = start_binary(topics, group);
  ASSERT_GT(second, 0);
  // Generous for a loaded machine: the restarted member first waits out the killed one's session.
  const bool complete = reader.wait_until([&] { return count_by_request(reader).size() >= kTotal; }, 120s);
  reader.drain_for(2s);
  kill(second, SIGTERM);
  waitpid(second, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  ASSERT_TRUE(complete) << "decided " << count_by_request(reader).size() << " of " << kTotal;

  // Every request once, and decided as what it is: its shadow failed with
  // 22001 (a request replayed without its result would be shadow_missing).
  std::map<std::string, std::vector<std::string>> kinds;
  for (const auto& published : mismatches_of(reader)) kinds[published.record.request_id].push_back(published.record.kind);
  EXPECT_EQ(kinds.size(), static_cast<size_t>(kTotal));
  int repeated = 0, other_kind = 0;
  for (const auto& [id, decided] : kinds) {
    repeated += decided.size() > 1;
    for (const auto& kind : decided) {
      if (kind != "shadow_error" && other_kind++ < 5) ADD_FAILURE() << id << " was decided " << kind;
    }
  }
  EXPECT_EQ(repeated, 0) << "records before the kill: " << published_by_first << ", total " << reader.records.size();
  EXPECT_EQ(other_kind, 0) << "requests decided as another kind than shadow_error";
}

void send_at(Broker& broker, const std::string& topic, const std::string& key, const std::string& payload,
             int64_t ts_ms) {
  const auto err = rd_kafka_producev(broker.producer.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
                                     RD_KAFKA_V_KEY(key.data(), key.size()),
                                     RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_END);
  ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
}

// The comparator was down for two hours: the request it replays was decided,
// and its discrepancy published, long before now − (2 × window + 5 min).
TEST(Comparator, ReplayAfterALongOutageDoesNotRepublishWhatWasDecidedBeforeIt) {
  Broker broker;
  auto topics = broker.create(1);
  const auto steps = failing_steps();
  const int64_t then_ms = wire::now_us() / 1000 - 2 * 3600 * 1000;
  auto request = make_request("old-1", "k", steps);
  request.ts_us = then_ms * 1000;
  auto result = make_result("old-1", "k", steps);
  result.ts_us = (then_ms + 1000) * 1000;
  send_at(broker, topics.requests, "k", wire::encode(request), then_ms);
  send_at(broker, topics.results, "k", wire::encode(result), then_ms + 1000);
  wire::Mismatch earlier;  // what the run before the outage published for it
  earlier.kind = "shadow_error";
  earlier.request_id = "old-1";
  earlier.key = "k";
  earlier.ts_us = request.ts_us;
  earlier.statement_index = 0;
  send_at(broker, topics.mismatches, "old-1", wire::encode(earlier), then_ms + 2000);
  broker.flush();

  auto options = options_for(topics);
  options.window = 10s;
  Running comparator(options);
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.pairs == 1; }, 30s));
  Reader reader(topics.mismatches);
  reader.wait_until([&] { return !reader.records.empty(); }, 20s);
  reader.drain_for(2s);
  comparator.stop();
  EXPECT_EQ(count_by_request(reader)["old-1"], 1) << "the replayed decision was published again";
  EXPECT_EQ(comparator.stats().republish_suppressed, 1u);
}

// Committed offsets of a group for a partition of a topic (negative: none).
int64_t committed_offset(const std::string& group, const std::string& topic, int32_t partition = 0) {
  sp::kafka::Consumer probe({{"bootstrap.servers", sp::testing::brokers()}, {"group.id", group}});
  sp::kafka::PartitionList list(1);
  list.add(topic, partition);
  if (rd_kafka_committed(probe.get(), list.get(), 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
  return list[0].offset;
}

// r0's result comes after the results of later requests: the instance is
// killed while r0 waits and r1..rN are joined and committed. The restarted
// instance replays r0..rN and must find every result again.
TEST(Comparator, KilledWhileAnOldRequestWaitsAndRestartedPublishesNoShadowMissing) {
  ASSERT_TRUE(std::filesystem::exists(comparator_binary())) << comparator_binary();
  Broker broker;
  auto topics = broker.create(1);
  const std::string group = sp::testing::unique_name("cmp-delayed");
  const auto steps = failing_steps();
  constexpr int kLater = 50;
  for (int i = 0; i <= kLater; ++i) broker.request(topics, 0, make_request("d" + std::to_string(i), "k", steps));
  for (int i = 1; i <= kLater; ++i) broker.result(topics, 0, make_result("d" + std::to_string(i), "k", steps));
  broker.flush();
  Reader reader(topics.mismatches);
  ASSERT_TRUE(reader.wait_assigned(20s));

  constexpr auto kWindowMs = "20000";  // the wait for d0 outlives the kill and restart
  const pid_t first = start_binary(topics, group, kWindowMs);
  ASSERT_GT(first, 0);
  ASSERT_TRUE(reader.wait_until([&] { return count_by_request(reader).size() >= kLater; }, 30s));
  // Both positions committed while d0 is pending.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while ((committed_offset(group, topics.requests) < 0 || committed_offset(group, topics.results) < 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(committed_offset(group, topics.requests), 0) << "d0 is still pending";
  ASSERT_GE(committed_offset(group, topics.results), 0);
  ASSERT_EQ(kill(first, SIGKILL), 0);
  int status = 0;
  waitpid(first, &status, 0);
  broker.result(topics, 0, make_result("d0", "k", steps));
  broker.flush();

  const pid_t second = start_binary(topics, group, kWindowMs);
  ASSERT_GT(second, 0);
  const bool decided = reader.wait_until([&] { return count_by_request(reader).contains("d0"); }, 60s);
  // Past the window: a replayed request without its result would now be shadow_missing.
  reader.drain_for(25s);
  kill(second, SIGTERM);
  waitpid(second, &status, 0);
  ASSERT_TRUE(decided) << "d0 was not decided after the restart";
  int missing = 0;
  for (const auto& published : mismatches_of(reader)) missing += published.record.kind == "shadow_missing";
  EXPECT_EQ(missing, 0) << "replayed requests whose results were committed past";
  auto counts = count_by_request(reader);
  EXPECT_EQ(counts.size(), static_cast<size_t>(kLater + 1));
  for (const auto& [id, count] : counts) EXPECT_EQ(count, 1) << id;
}

// The end of a program's log, for a failure message.
std::string log_tail(const std::string& path, size_t bytes = 3000) {
  std::ifstream file(path);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return path + " ends with:\n" + (text.size() > bytes ? text.substr(text.size() - bytes) : text);
}

bool log_contains(const std::string& path, const std::string& text) {
  std::ifstream file(path);
  const std::string content((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return content.find(text) != std::string::npos;
}

// Kills and reaps a child the test did not see end (an ASSERT returned
// early), so no test leaves a comparator behind.
struct ChildGuard {
  pid_t pid;
  ~ChildGuard() {
    if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// The wait status of a child once it ended, or nothing if it still ran at
// the deadline (it is killed then).
std::optional<int> wait_exit(pid_t pid, std::chrono::seconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(100ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return std::nullopt;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  return "status " + std::to_string(status);
}

void delete_topic(const std::string& topic) {
  sp::kafka::Producer admin({{"bootstrap.servers", sp::testing::brokers()}});
  rd_kafka_DeleteTopic_t* request = rd_kafka_DeleteTopic_new(topic.c_str());
  auto event = sp::kafka::admin_request(
      admin.get(), [&](rd_kafka_queue_t* queue) { rd_kafka_DeleteTopics(admin.get(), &request, 1, nullptr, queue); },
      30s, "deleting topic " + topic);
  rd_kafka_DeleteTopic_destroy(request);
  const auto* result = rd_kafka_event_DeleteTopics_result(event.get());
  ASSERT_NE(result, nullptr);
  size_t count = 0;
  const rd_kafka_topic_result_t** deleted = rd_kafka_DeleteTopics_result_topics(result, &count);
  ASSERT_EQ(count, 1u);
  ASSERT_EQ(rd_kafka_topic_result_error(deleted[0]), RD_KAFKA_RESP_ERR_NO_ERROR)
      << rd_kafka_topic_result_error_string(deleted[0]);
}

// A plain member of a comparator group, with the comparator's assignor:
// joining takes partition pairs from the comparators, as another instance
// starting does, and it decides and commits nothing itself.
class GroupMember {
 public:
  GroupMember(const std::string& group, const Topics& topics)
      : consumer_({{"bootstrap.servers", sp::testing::brokers()},
                   {"group.id", group},
                   {"partition.assignment.strategy", "range"},
                   {"enable.auto.commit", "false"},
                   {"session.timeout.ms", "6000"},
                   {"heartbeat.interval.ms", "1500"}}) {
    consumer_.subscribe({topics.requests, topics.results});
    thread_ = std::thread([this] {
      while (!stop_) {
        consumer_.poll(100ms);
        rd_kafka_topic_partition_list_t* assignment = nullptr;
        if (rd_kafka_assignment(consumer_.get(), &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          assigned_ = sp::kafka::PartitionList(assignment).size();
        }
      }
    });
  }
  ~GroupMember() {
    stop_ = true;
    thread_.join();
  }
  // Partitions (of both topics) this member holds.
  int assigned() const { return assigned_; }

 private:
  sp::kafka::Consumer consumer_;
  std::atomic<bool> stop_{false};
  std::atomic<int> assigned_{0};
  std::thread thread_;
};

// A Failure raised while the comparator holds partition pairs — here the
// mismatches topic is deleted under it, so the read-back at its next
// assignment cannot find it — ends the process as every Failure does: the
// reason and exit status 2. It ended in SIGSEGV: the comparator's destructor
// closed its consumer through unique_ptr::reset(), which empties the pointer
// before it deletes, and close() delivers the revoke to the rebalance
// callback, which called the consumer through that empty pointer.
TEST(Comparator, AFailureWhileItHoldsPartitionsEndsInTheReasonAndExitTwoNotACrash) {
  ASSERT_TRUE(std::filesystem::exists(comparator_binary())) << comparator_binary();
  Broker broker;
  auto topics = broker.create(2);
  const std::string group = sp::testing::unique_name("cmp-failure");
  publish_pairs(broker, topics, 0, 20, "f");
  const std::string log = "/tmp/" + group + ".log";
  const pid_t comparator = start_binary(topics, group, "3000", log);
  ASSERT_GT(comparator, 0);
  ChildGuard guard{comparator};
  // Both pairs decided and committed: it holds the group's whole assignment.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while ((committed_offset(group, topics.requests, 0) < 10 || committed_offset(group, topics.requests, 1) < 10) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(committed_offset(group, topics.requests, 0), 10) << log_tail(log);
  ASSERT_EQ(committed_offset(group, topics.requests, 1), 10) << log_tail(log);
  delete_topic(topics.mismatches);
  GroupMember other(group, topics);  // the rebalance gives the comparator one pair, which it reads back for
  const auto status = wait_exit(comparator, 120s);
  ASSERT_TRUE(status.has_value()) << "still running 120 s after its read-back could not succeed; " << log_tail(log);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << describe_status(*status) << "; " << log_tail(log);
  EXPECT_TRUE(log_contains(log, "error: cannot look up offsets of " + topics.mismatches)) << log_tail(log);
}

// What a scale-out run saw once: comparator-1, which the group coordinator
// no longer counted as a member while comparator-3 joined, had the offsets
// of its transaction refused (UNKNOWN_MEMBER_ID) and was sent SIGTERM. Here
// the membership ends the way a machine too busy for heartbeats ends it: the
// process is frozen (SIGSTOP) past its session timeout while another member
// holds the other pair, then resumed and stopped at once, a moment later,
// and a while later. Every stop must end in a clean exit.
TEST(Comparator, StoppedJustAfterTheGroupDroppedItExitsCleanly) {
  ASSERT_TRUE(std::filesystem::exists(comparator_binary())) << comparator_binary();
  int refused = 0;
  for (const auto after_resume : {0ms, 300ms, 1500ms}) {
    SCOPED_TRACE("SIGTERM " + std::to_string(after_resume.count()) + " ms after SIGCONT");
    Broker broker;
    auto topics = broker.create(2);
    const std::string group = sp::testing::unique_name("cmp-dropped");
    const std::string log = "/tmp/" + group + ".log";
    const pid_t comparator = start_binary(topics, group, "3000", log);
    ASSERT_GT(comparator, 0);
    ChildGuard guard{comparator};
    GroupMember other(group, topics);
    const auto settled = std::chrono::steady_clock::now() + 60s;
    while (other.assigned() != 2 && std::chrono::steady_clock::now() < settled) std::this_thread::sleep_for(100ms);
    ASSERT_EQ(other.assigned(), 2) << "the other member holds one pair of two; " << log_tail(log);
    // The comparator decides its pair's half and commits it: each later
    // cycle sends those offsets again, with the member id it had.
    publish_pairs(broker, topics, 0, 200, "d");
    const auto committed = std::chrono::steady_clock::now() + 60s;
    while (std::max(committed_offset(group, topics.requests, 0), committed_offset(group, topics.requests, 1)) < 100 &&
           std::chrono::steady_clock::now() < committed) {
      std::this_thread::sleep_for(200ms);
    }
    ASSERT_EQ(std::max(committed_offset(group, topics.requests, 0), committed_offset(group, topics.requests, 1)), 100)
        << log_tail(log);
    ASSERT_EQ(kill(comparator, SIGSTOP), 0);
    std::this_thread::sleep_for(10s);  // past session.timeout.ms (6 s): the coordinator drops it
    ASSERT_EQ(kill(comparator, SIGCONT), 0);
    std::this_thread::sleep_for(after_resume);
    ASSERT_EQ(kill(comparator, SIGTERM), 0);
    const auto status = wait_exit(comparator, 90s);
    ASSERT_TRUE(status.has_value()) << "still running 90 s after SIGTERM; " << log_tail(log);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << describe_status(*status) << "; " << log_tail(log);
    // The path under test: the offsets of its transaction were refused.
    EXPECT_TRUE(log_contains(log, "adding the offsets to the transaction failed")) << log_tail(log);
    refused += log_contains(log, "(Broker: Unknown member)");
  }
  std::cout << "stops after offsets refused with UNKNOWN_MEMBER_ID: " << refused << " of 3\n";
}

// What comparator-1 of a scale-out run died of: SIGSEGV in
// kafka::Consumer::default_rebalance under rd_kafka_consumer_close, its log
// ending in its last transaction's offsets refused (UNKNOWN_MEMBER_ID). A
// rebalance began (another instance joined) while the comparator was busy
// with its last commit, so the revoke waited in its queue; close() serves
// it, but librdkafka 2.0 unassigns, leaves the group and terminates the
// group handle by itself meanwhile (rd_kafka_cgrp_terminate0). A revoke
// that takes longer than that — the comparator's commit in it, refused since
// the member had left — then asked rd_kafka_rebalance_protocol(), which
// answers NULL once the group handle is gone, and read its name through
// that null. Here the revoke callback waits until the handle has terminated.
TEST(ConsumerClose, ARevokeWaitingWhenTheConsumerClosesIsReleasedAfterTheGroupHandleEndedWithoutACrash) {
  Broker broker;
  auto topics = broker.create(2);
  const std::string group = sp::testing::unique_name("cmp-close");
  std::vector<rd_kafka_resp_err_t> events;
  bool released_after_the_group_handle_ended = false;
  std::unique_ptr<sp::kafka::Consumer> consumer;
  consumer = std::make_unique<sp::kafka::Consumer>(
      sp::kafka::Properties{{"bootstrap.servers", sp::testing::brokers()},
                            {"group.id", group},
                            {"partition.assignment.strategy", "range"},
                            {"enable.auto.commit", "false"},
                            {"session.timeout.ms", "6000"},
                            {"heartbeat.interval.ms", "500"}},
      [&](rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* list) {
        events.push_back(event);
        if (event == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
          const auto until = std::chrono::steady_clock::now() + 10s;
          while (!rd_kafka_consumer_closed(consumer->get()) && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(10ms);
          }
          released_after_the_group_handle_ended = rd_kafka_consumer_closed(consumer->get());
        }
        consumer->default_rebalance(event, list);
      });
  consumer->subscribe({topics.requests, topics.results});
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  int assigned = 0;
  while (assigned < 4 && std::chrono::steady_clock::now() < deadline) {
    consumer->poll(100ms);
    rd_kafka_topic_partition_list_t* assignment = nullptr;
    if (rd_kafka_assignment(consumer->get(), &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      assigned = sp::kafka::PartitionList(assignment).size();
    }
  }
  ASSERT_EQ(assigned, 4) << "the only member holds both pairs";
  // Another member joins while this one does not poll: the revoke waits in
  // its queue (heartbeats go on, so it stays a member).
  GroupMember other(group, topics);
  std::this_thread::sleep_for(3s);
  consumer->close();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events.back(), RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS);
  EXPECT_TRUE(released_after_the_group_handle_ended)
      << "the revoke was served before librdkafka ended the group handle: the path under test was not taken";
}

// A transaction that fails is aborted and its decisions are made again from
// the committed offsets (the rewind). Fenced by a producer that takes the
// comparator's transactional id, the comparator cannot commit; it recreates
// its producer (fencing the intruder in turn), reads again from what was
// committed, and every request is still decided exactly once: none lost with
// the aborted records, none published twice.
TEST(Comparator, AFencedTransactionIsRedoneFromTheCommittedOffsetsAndEveryRequestDecidedOnce) {
  Broker broker;
  auto topics = broker.create(3);
  auto options = options_for(topics);
  const std::string transactional_id = "shadowpipe-comparator-" + options.group + "-" + options.comparator_id;
  constexpr int kFirst = 3000, kTotal = 6000;
  Reader reader(topics.mismatches);
  ASSERT_TRUE(reader.wait_assigned(20s));
  publish_pairs(broker, topics, 0, kFirst, "fenced-");
  Running running(options);
  ASSERT_TRUE(running.wait_for([](const cmp::Stats& stats) { return stats.committed_transactions >= 1 && stats.pairs > 0; },
                               60s));
  {
    sp::kafka::Producer intruder({{"bootstrap.servers", sp::testing::brokers()}, {"transactional.id", transactional_id}});
    rd_kafka_error_t* error = rd_kafka_init_transactions(intruder.get(), 30'000);
    ASSERT_EQ(error, nullptr) << rd_kafka_error_string(error);
    publish_pairs(broker, topics, kFirst, kTotal, "fenced-");
    ASSERT_TRUE(running.wait_for([](const cmp::Stats& stats) { return stats.rewinds >= 1; }, 60s))
        << "the comparator went on committing with a fenced producer";
  }
  const bool complete = reader.wait_until([&] { return count_by_request(reader).size() >= kTotal; }, 120s);
  reader.drain_for(2s);
  running.stop();
  ASSERT_TRUE(complete) << "decided " << count_by_request(reader).size() << " of " << kTotal;
  int repeated = 0;
  for (const auto& [id, count] : count_by_request(reader)) repeated += count > 1;
  EXPECT_EQ(repeated, 0) << "requests published twice";
  EXPECT_EQ(count_by_request(reader).size(), static_cast<size_t>(kTotal));
  EXPECT_GE(running.stats().aborted_transactions, 1u);
}

TEST(Comparator, TwoInstancesShareSixPartitionsAndTheSurvivorFinishes) {
  Broker broker;
  auto topics = broker.create(6);
  publish_pairs(broker, topics, 0, 3000, "b");
  auto options = options_for(topics);
  auto first_options = options;
  first_options.comparator_id = "first";
  auto second_options = options;
  second_options.comparator_id = "second";
  auto first = std::make_unique<Running>(first_options);
  Running second(second_options);
  ASSERT_TRUE(first->wait_for([](const cmp::Stats& s) { return s.assigned_pairs == 3; }, 30s));
  ASSERT_TRUE(second.wait_for([](const cmp::Stats& s) { return s.assigned_pairs == 3; }, 30s));
  Reader reader(topics.mismatches);
  ASSERT_TRUE(reader.wait_until([&] { return reader.records.size() >= 1000; }, 30s));
  first->stop();
  const uint64_t first_pairs = first->stats().pairs;
  first.reset();
  publish_pairs(broker, topics, 3000, 6000, "b");
  ASSERT_TRUE(second.wait_for([](const cmp::Stats& s) { return s.assigned_pairs == 6; }, 30s));
  ASSERT_TRUE(reader.wait_until([&] { return count_by_request(reader).size() >= 6000; }, 40s))
      << "decided " << count_by_request(reader).size() << " of 6000";
  reader.drain_for(1s);
  second.stop();
  EXPECT_GT(first_pairs, 0u);
  auto counts = count_by_request(reader);
  EXPECT_EQ(counts.size(), 6000u);
  int repeated = 0;
  for (const auto& [id, count] : counts) repeated += count > 1;
  EXPECT_EQ(repeated, 0);
}

TEST(Comparator, PendingMemoryStaysUnderTheLimitWhileResultsLagFarBehind) {
  Broker broker;
  auto topics = broker.create(2);
  const auto steps = failing_steps();
  constexpr int kRequests = 4000;
  for (int i = 0; i < kRequests; ++i) broker.request(topics, i % 2, make_request("m" + std::to_string(i), "k", steps));
  broker.flush();
  auto options = options_for(topics);
  // Far beyond how long a slow machine takes here: only a bug may expire a request.
  options.window = 300s;
  options.max_pending_bytes = 256 * 1024;
  Running comparator(options);
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.paused_partitions > 0; }, 30s))
      << "pending bytes " << comparator.stats().pending_bytes;
  std::this_thread::sleep_for(1s);
  auto paused = comparator.stats();
  std::cout << "bytes per pending request: " << paused.bytes_per_pending_entry << ", pending requests "
            << paused.pending_requests << ", high water " << paused.pending_bytes_high_water << " bytes\n";
  EXPECT_LT(paused.pending_requests, static_cast<size_t>(kRequests)) << "the requests did not stop at the limit";
  EXPECT_GT(paused.bytes_per_pending_entry, 0);

  for (int i = 0; i < kRequests; ++i) broker.result(topics, i % 2, make_result("m" + std::to_string(i), "k", steps));
  broker.flush();
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.pairs == kRequests; }, 40s))
      << "pairs " << comparator.stats().pairs;
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.paused_partitions == 0; }, 5s));
  comparator.stop();
  const auto final_stats = comparator.stats();
  // One entry past the limit is the most a check after each record allows.
  EXPECT_LE(final_stats.pending_bytes_high_water, options.max_pending_bytes + 4096);
  EXPECT_EQ(final_stats.shadow_missing, 0u) << "nothing is dropped to stay under the limit";
  EXPECT_GT(final_stats.pauses, 0u);
}

// Two workers busy at once on eight partition pairs, sharing what is shared:
// the fingerprint table (three thousand fingerprints, each first seen on any
// partition, so one worker registers while the other classifies), the keys
// that already diverged (every key spans all partitions, so both workers mark
// first divergences, on the same keys and while the set grows), the producer
// and the counters. Every request
// is decided once, every count is exact, and each key has exactly one first
// divergence: a race on any of them shows here (or under ThreadSanitizer).
TEST(Comparator, TwoWorkersShareTheDeciderAndTheProducerAndDecideEveryRequestOnceWithExactCounts) {
  Broker broker;
  constexpr int kPartitions = 8, kRequests = 12000, kFingerprints = 3000, kKeys = 1500;
  auto topics = broker.create(kPartitions);
  std::map<std::string, int> differing_by_key;
  int differing = 0;
  for (int i = 0; i < kRequests; ++i) {
    const std::string sql = "select id, name from items_" + std::to_string(i % kFingerprints) + " where id = $1";
    const std::string key = "key-" + std::to_string(i % kKeys);
    const bool differs = i % 3 == 0;
    const std::vector<Step> steps = {{sql, good(), differs ? good(3) : good()}};
    const std::string id = "w" + std::to_string(i);
    const int32_t partition = (i / 3) % kPartitions;  // runs of three per partition, every key on every partition
    broker.request(topics, partition, make_request(id, key, steps));
    broker.result(topics, partition, make_result(id, key, steps));
    if (differs) {
      ++differing;
      ++differing_by_key[key];
    }
  }
  broker.flush();

  auto options = options_for(topics);
  options.workers = 2;  // whatever SHADOWPIPE_COMPARATOR_WORKERS says: this test is about two
  Reader reader(topics.mismatches);
  Reader summaries(topics.summary);
  Running comparator(options);
  ASSERT_TRUE(comparator.wait_for([](const cmp::Stats& s) { return s.pairs >= kRequests; }, 90s))
      << "pairs " << comparator.stats().pairs;
  ASSERT_TRUE(reader.wait_until([&] { return count_by_request(reader).size() >= static_cast<size_t>(differing); }, 30s))
      << "published " << count_by_request(reader).size() << " of " << differing;
  comparator.stop();  // the last commit publishes the last counts
  reader.drain_for(1s);
  uint64_t compared = 0;
  ASSERT_TRUE(summaries.wait_until(
      [&] {
        compared = 0;
        for (const auto& [partition, payload] : summaries.records) {
          auto summary = wire::decode_summary(payload);
          if (summary && summary->fingerprint.empty()) compared += summary->compared;
        }
        return compared >= kRequests;
      },
      20s));
  summaries.drain_for(1s);

  const auto stats = comparator.stats();
  EXPECT_EQ(stats.pairs, static_cast<uint64_t>(kRequests));
  EXPECT_EQ(stats.duplicates, 0u);
  EXPECT_EQ(stats.shadow_missing, 0u);
  EXPECT_EQ(stats.orphan_results, 0u);
  EXPECT_EQ(stats.mismatches_published, static_cast<uint64_t>(differing));
  EXPECT_EQ(stats.discrepancies.at("row_count_mismatch"), static_cast<uint64_t>(differing));
  EXPECT_EQ(compared, static_cast<uint64_t>(kRequests)) << "the summaries count every request once";

  auto published = mismatches_of(reader);
  std::map<std::string, int> per_request;
  std::map<std::string, int> first_divergences;
  for (const auto& [partition, record] : published) {
    ++per_request[record.request_id];
    EXPECT_EQ(record.kind, "row_count_mismatch") << record.request_id;
    EXPECT_FALSE(record.normalized_sql.empty()) << record.request_id << ": its fingerprint was not registered";
    if (record.first_divergence_on_key) ++first_divergences[record.key];
  }
  EXPECT_EQ(per_request.size(), static_cast<size_t>(differing));
  int repeated = 0;
  for (const auto& [id, count] : per_request) repeated += count > 1;
  EXPECT_EQ(repeated, 0);
  EXPECT_EQ(first_divergences.size(), differing_by_key.size());
  for (const auto& [key, count] : first_divergences) EXPECT_EQ(count, 1) << key << " has more than one cause";
}

}  // namespace
