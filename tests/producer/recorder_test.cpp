// Recorder behaviour that needs no server: with no broker reachable, calls
// return promptly and every unit is accounted for by reason; sampling,
// rollback policy, size limits, request ids, Prometheus export.
#include "shadowpipe/recorder.hpp"

#include "shadowpipe/statement.hpp"

#include "producer/made_result.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <regex>
#include <set>
#include <thread>

namespace shadowpipe::producer {
namespace {

using namespace std::chrono_literals;

// Nothing listens on port 1: every record stays queued until message.timeout.ms.
RecorderConfig unreachable_broker(int queue_messages = 100000, int message_timeout_ms = 1000) {
  RecorderConfig config;
  config.kafka = {{"bootstrap.servers", "127.0.0.1:1"},
                  {"queue.buffering.max.messages", std::to_string(queue_messages)},
                  {"message.timeout.ms", std::to_string(message_timeout_ms)},
                  {"log_level", "0"}};  // the connection-refused lines are expected here
  config.flush_timeout = 0ms;
  config.source = "recorder_test";
  return config;
}

const std::vector<std::optional<std::string>> kParams = {std::string("42"), std::nullopt};
const std::vector<std::optional<std::string>> kNoParams;
const std::string kRead = "SELECT id, name, price FROM products WHERE category = $1 AND x = $2 ORDER BY id";
const std::string kWrite = "UPDATE orders SET status = 'paid' WHERE id = $1 AND x = $2";

Counters wait_until_settled(const Recorder& recorder, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  Counters counters = recorder.counters();
  while (counters.pending() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
    counters = recorder.counters();
  }
  return counters;
}

// A call never waits for queue space: with the queue full it drops the unit
// as queue_full and returns. A call that waited would wait until queued
// records expire (message.timeout.ms, ten minutes here, far past the test's
// time limit), so the split below holds only for a recorder that never
// blocks, on any machine and under any sanitizer. How long a call takes is
// measured by bench/recorder_bench (BM_Record20Rows_BrokerDownTail).
TEST(RecorderTest, BrokerDownTenThousandRecordingsNeverWaitForQueueSpaceAndAddUp) {
  constexpr int kQueue = 1000;
  constexpr int kUnits = 10'000;
  auto registry = std::make_shared<prometheus::Registry>();
  {
    auto config = unreachable_broker(kQueue, 10 * 60 * 1000);
    config.registry = registry;
    Recorder recorder(config);
    const auto result = testing::made_result(20);
    for (int i = 0; i < kUnits; ++i) {
      recorder.record(nullptr, "customer:" + std::to_string(i % 50), kRead, kParams, result.get(), 120);
    }
    const Counters counters = recorder.counters();
    EXPECT_EQ(counters.recorded, static_cast<uint64_t>(kUnits));
    EXPECT_EQ(counters.dropped(DropReason::queue_full), static_cast<uint64_t>(kUnits - kQueue));
    EXPECT_EQ(counters.dropped(DropReason::delivery_failed), 0u) << "no queued record expired: no call waited";
    EXPECT_EQ(counters.pending(), static_cast<uint64_t>(kQueue));
    EXPECT_EQ(counters.published + counters.dropped() + counters.pending(), counters.recorded);
    EXPECT_EQ(counters.dropped(DropReason::sampled_out), 0u);
    EXPECT_EQ(counters.dropped(DropReason::serialization_error), 0u);
    EXPECT_EQ(counters.dropped(DropReason::too_large), 0u);
  }
  // Destroyed with the queue still full: the final account adds up.
  const std::string text = prometheus::TextSerializer().Serialize(registry->Collect());
  EXPECT_NE(text.find("shadowpipe_producer_dropped_total{reason=\"queue_full\"} 9000"), std::string::npos) << text;
  EXPECT_NE(text.find("shadowpipe_producer_dropped_total{reason=\"delivery_failed\"} 1000"), std::string::npos)
      << text;
  EXPECT_NE(text.find("shadowpipe_producer_pending 0"), std::string::npos) << text;
}

TEST(RecorderTest, QueuedRecordsThatExpireAreCountedAsDeliveryFailed) {
  constexpr int kUnits = 100;
  Recorder recorder(unreachable_broker(100000, 300));
  const auto result = testing::made_result(3);
  for (int i = 0; i < kUnits; ++i) recorder.record(nullptr, "k", kRead, kParams, result.get(), 5);
  const Counters counters = wait_until_settled(recorder, 30s);
  EXPECT_EQ(counters.pending(), 0u);
  EXPECT_EQ(counters.published, 0u);
  EXPECT_EQ(counters.dropped(DropReason::delivery_failed), static_cast<uint64_t>(kUnits));
  EXPECT_EQ(counters.dropped(DropReason::queue_full), 0u);
  EXPECT_NE(recorder.last_error().find("timed out"), std::string::npos) << recorder.last_error();
}

TEST(RecorderTest, DestructionCountsWhatIsStillQueuedAsDeliveryFailed) {
  auto registry = std::make_shared<prometheus::Registry>();
  {
    auto config = unreachable_broker(100000, 60'000);
    config.registry = registry;
    Recorder recorder(config);
    const auto result = testing::made_result(3);
    for (int i = 0; i < 100; ++i) recorder.record(nullptr, "k", kRead, kParams, result.get(), 5);
    EXPECT_EQ(recorder.counters().pending(), 100u);
  }
  // The recorder is gone; its exported counters hold the final account.
  const std::string text = prometheus::TextSerializer().Serialize(registry->Collect());
  EXPECT_NE(text.find("shadowpipe_producer_units_total{outcome=\"recorded\"} 100"), std::string::npos) << text;
  EXPECT_NE(text.find("shadowpipe_producer_dropped_total{reason=\"delivery_failed\"} 100"), std::string::npos)
      << text;
  EXPECT_NE(text.find("shadowpipe_producer_pending 0"), std::string::npos) << text;
}

TEST(RecorderTest, SamplingAtTenPercentKeepsAboutTenPercentOfReads) {
  constexpr int kUnits = 20'000;
  for (uint64_t seed : {uint64_t{7}, uint64_t{0}}) {  // a fixed seed and an OS-random one
    auto config = unreachable_broker();
    config.sampling.rate = 0.10;
    config.sampling.seed = seed;
    Recorder recorder(config);
    const auto result = testing::made_result(2);
    for (int i = 0; i < kUnits; ++i) recorder.record(nullptr, "", kRead, kParams, result.get(), 5);
    const auto counters = recorder.counters();
    const double kept = static_cast<double>(counters.recorded - counters.dropped(DropReason::sampled_out));
    // Binomial(20000, 0.1): mean 2000, standard deviation 42.4; six of them.
    EXPECT_NEAR(kept, 2000.0, 6 * std::sqrt(kUnits * 0.1 * 0.9)) << "seed " << seed;
    EXPECT_EQ(counters.recorded, static_cast<uint64_t>(kUnits));
  }
}

TEST(RecorderTest, WritesAreNotSampledOutUnlessConfigured) {
  const auto result = testing::made_result(0);
  for (bool sample_writes : {false, true}) {
    auto config = unreachable_broker();
    config.sampling.rate = 0.0;
    config.sampling.sample_writes = sample_writes;
    Recorder recorder(config);
    for (int i = 0; i < 200; ++i) recorder.record(nullptr, "", kWrite, kParams, result.get(), 5);
    // A transaction holding one write is kept whole, reads included.
    Unit unit = recorder.begin(nullptr, "customer:1");
    unit.add(kRead, kParams, result.get(), 5);
    unit.add(kWrite, kParams, result.get(), 5);
    unit.commit();
    EXPECT_EQ(recorder.counters().dropped(DropReason::sampled_out), sample_writes ? 201u : 0u);
  }
}

TEST(RecorderTest, FingerprintRateOverridesTheGlobalRate) {
  auto analysis = statement::Analyzer().analyze(kRead);
  ASSERT_TRUE(analysis.ok());
  auto config = unreachable_broker();
  config.sampling.rate = 0.0;
  config.sampling.by_fingerprint[analysis->fingerprint] = 1.0;
  Recorder recorder(config);
  const auto result = testing::made_result(1);
  for (int i = 0; i < 100; ++i) recorder.record(nullptr, "", kRead, kParams, result.get(), 5);
  for (int i = 0; i < 100; ++i) recorder.record(nullptr, "", "SELECT 1 AS other", kNoParams, result.get(), 5);
  EXPECT_EQ(recorder.counters().dropped(DropReason::sampled_out), 100u);
}

TEST(RecorderTest, RollbackPolicyDecidesWhetherARolledBackUnitIsRecorded) {
  const auto result = testing::made_result(1);
  for (bool publish_rollbacks : {true, false}) {
    auto config = unreachable_broker();
    config.publish_rollbacks = publish_rollbacks;
    Recorder recorder(config);
    Unit unit = recorder.begin(nullptr, "customer:7");
    unit.add(kWrite, kParams, result.get(), 5);
    unit.rollback();
    const auto counters = recorder.counters();
    EXPECT_EQ(counters.recorded, publish_rollbacks ? 1u : 0u);
    EXPECT_EQ(counters.rollbacks_discarded, publish_rollbacks ? 0u : 1u);
    EXPECT_EQ(counters.pending(), publish_rollbacks ? 1u : 0u);
  }
}

TEST(RecorderTest, UnparsableStatementIsCountedAsSerializationError) {
  Recorder recorder(unreachable_broker());
  const auto result = testing::made_result(1);
  recorder.record(nullptr, "", "SELEC id FORM t", kNoParams, result.get(), 5);
  const auto counters = recorder.counters();
  EXPECT_EQ(counters.recorded, 1u);
  EXPECT_EQ(counters.dropped(DropReason::serialization_error), 1u);
  EXPECT_NE(recorder.last_error().find("sql_syntax"), std::string::npos) << recorder.last_error();
}

TEST(RecorderTest, RecordOverTheSizeLimitIsCountedAsTooLarge) {
  auto config = unreachable_broker();
  config.max_record_bytes = 2000;
  Recorder recorder(config);
  const auto result = testing::made_result(1);
  recorder.record(nullptr, "", kRead, {std::string(1500, 'x'), std::nullopt}, result.get(), 5);
  recorder.record(nullptr, "", kRead, {std::string(10, 'x'), std::nullopt}, result.get(), 5);
  const auto counters = recorder.counters();
  EXPECT_EQ(counters.dropped(DropReason::too_large), 1u);
  EXPECT_EQ(counters.pending(), 1u);
}

TEST(RecorderTest, AnOversizedTextIsDroppedBeforeItIsParsed) {
  auto config = unreachable_broker();
  config.max_record_bytes = 2000;
  Recorder recorder(config);
  const auto result = testing::made_result(1);
  // Not even valid SQL: had it been parsed, it would count as serialization_error.
  std::string huge = "SELEC ";
  while (huge.size() < 5000) huge += "x + ";
  recorder.record(nullptr, "", huge, kNoParams, result.get(), 5);
  Unit unit = recorder.begin(nullptr, "k");
  unit.add(kRead, kParams, result.get(), 1);
  unit.add(huge, kNoParams, result.get(), 1);
  unit.commit();
  const auto counters = recorder.counters();
  EXPECT_EQ(counters.recorded, 2u);
  EXPECT_EQ(counters.dropped(DropReason::too_large), 2u);
  EXPECT_EQ(counters.dropped(DropReason::serialization_error), 0u);
}

TEST(RecorderTest, TransactionControlStatementsAreNotPartOfTheUnit) {
  Recorder recorder(unreachable_broker());
  const auto result = testing::made_result(0);
  recorder.record(nullptr, "", "BEGIN", kNoParams, result.get(), 1);  // nothing to publish
  Unit unit = recorder.begin(nullptr, "k");
  unit.add("BEGIN", kNoParams, result.get(), 1);
  unit.add("COMMIT", kNoParams, result.get(), 1);
  unit.commit();  // an empty transaction publishes nothing
  EXPECT_EQ(recorder.counters().recorded, 0u);
}

TEST(RecorderTest, UnitsEndedNeitherWayAreCountedAsAbandoned) {
  Recorder recorder(unreachable_broker());
  const auto result = testing::made_result(1);
  {
    Unit unit = recorder.begin(nullptr, "k");
    unit.add(kRead, kParams, result.get(), 5);
  }
  Unit inert;
  inert.add(kRead, kParams, result.get(), 5);  // a no-op, never a crash
  inert.commit();
  const auto counters = recorder.counters();
  EXPECT_EQ(counters.abandoned, 1u);
  EXPECT_EQ(counters.recorded, 0u);
}

TEST(RecorderTest, RequestIdsAreUniqueVersionSevenUuids) {
  const std::regex uuid7("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 100'000; ++i) {
    auto id = new_request_id();
    if (i < 100) {
      EXPECT_TRUE(std::regex_match(id, uuid7)) << id;
    }
    seen.insert(std::move(id));
  }
  EXPECT_EQ(seen.size(), 100'000u);
}

TEST(RecorderTest, RefusedKafkaPropertyFailsAtConstruction) {
  auto config = unreachable_broker();
  config.kafka.emplace_back("no.such.property", "1");
  EXPECT_THROW(Recorder{config}, Failure);
  config = unreachable_broker();
  config.sampling.rate = 1.5;
  EXPECT_THROW(Recorder{config}, Failure);
}

}  // namespace
}  // namespace shadowpipe::producer
