// kafka::live_stream_fetch() on the real broker: a consumer following
// records that trickle in (one every 2 ms, as lingering producers of many
// partitions deliver them) fetches at most about 50 times a second with it
// (fetch.min.bytes), and not the handful of a long wait (fetch.wait.max.ms:
// the 20 ms a resumed partition may wait), and gets every record; a consumer with librdkafka's
// fetch defaults, beside it on the same trickle, is the witness that the
// trickle makes fetches frequent, so the bound is the setting's doing. The
// counts and their times are librdkafka's own (its statistics). It runs
// alone (SERIAL): the rates are the machine's as much as the settings'.
#include "shadowpipe/kafka.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

namespace sp = shadowpipe;
using namespace std::chrono_literals;

namespace {

constexpr int kPartitions = 4;

// Fetch requests sent so far, at librdkafka's time (µs, monotonic).
struct FetchCount {
  int64_t fetches = 0;
  int64_t at_us = 0;
};

// A group-less consumer of every partition of `topic` from its start, whose
// statistics callback keeps the number of Fetch requests it sent.
class CountingConsumer {
 public:
  CountingConsumer(sp::kafka::Properties properties, const std::string& topic) {
    properties.emplace_back("statistics.interval.ms", "200");
    // librdkafka's consumer wants a group even to assign; nothing is committed to it.
    properties.emplace_back("group.id", sp::testing::unique_name("live-fetch"));
    properties.emplace_back("enable.auto.commit", "false");
    auto conf = sp::kafka::make_conf(properties);
    rd_kafka_conf_set_stats_cb(conf.get(), &CountingConsumer::on_stats);
    rd_kafka_conf_set_opaque(conf.get(), this);
    char errstr[512];
    handle_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), errstr, sizeof errstr));
    if (!handle_) throw std::runtime_error(std::string("consumer: ") + errstr);
    conf.release();  // rd_kafka_new owns it now
    rd_kafka_poll_set_consumer(handle_.get());
    // The topic is new: from offset 0, so no record lands before the
    // consumer knows where it starts.
    sp::kafka::PartitionList partitions(kPartitions);
    for (int32_t p = 0; p < kPartitions; ++p) partitions.add(topic, p, 0);
    if (rd_kafka_assign(handle_.get(), partitions.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("consumer: assign refused");
    }
  }
  ~CountingConsumer() {
    if (handle_) rd_kafka_consumer_close(handle_.get());
  }

  // Polls for `duration`, keeping every payload received.
  void poll_for(std::chrono::milliseconds duration) {
    const auto until = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < until) {
      sp::kafka::Message message(rd_kafka_consumer_poll(handle_.get(), 10));
      if (message && message.error() == RD_KAFKA_RESP_ERR_NO_ERROR) received.insert(std::string(message.payload()));
    }
  }

  FetchCount fetches() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  std::set<std::string> received;

 private:
  // librdkafka's statistics JSON: ts (µs) and brokers.<name>.req.Fetch, cumulative.
  static int on_stats(rd_kafka_t*, char* json, size_t length, void* opaque) {
    simdjson::ondemand::parser parser;
    simdjson::padded_string copy(json, length);
    FetchCount count;
    auto document = parser.iterate(copy);
    if (document["ts"].get_int64().get(count.at_us) != simdjson::SUCCESS) return 0;
    for (auto broker : document["brokers"].get_object()) {
      int64_t fetch = 0;
      if (broker.value()["req"]["Fetch"].get_int64().get(fetch) == simdjson::SUCCESS) count.fetches += fetch;
    }
    auto* self = static_cast<CountingConsumer*>(opaque);
    std::lock_guard lock(self->mutex_);
    self->count_ = count;
    return 0;  // librdkafka frees the JSON
  }

  // Before the handle: its callback writes here until the handle is gone.
  mutable std::mutex mutex_;
  FetchCount count_;
  sp::kafka::HandlePtr handle_;
};

double rate_between(const FetchCount& from, const FetchCount& to) {
  const double seconds = static_cast<double>(to.at_us - from.at_us) / 1e6;
  return seconds > 0 ? static_cast<double>(to.fetches - from.fetches) / seconds : 0;
}

}  // namespace

TEST(LiveStreamFetch, AConsumerOfATrickleFetchesAtMostFiftyTimesASecondAndGetsEveryRecord) {
  const std::string brokers = sp::testing::brokers();
  const std::string topic = sp::testing::unique_name("live-fetch");
  sp::kafka::Producer producer({{"bootstrap.servers", brokers}, {"linger.ms", "0"}});
  sp::kafka::create_topics(producer.get(), {{topic, kPartitions, 1, {}}}, 15s);

  sp::kafka::Properties live{{"bootstrap.servers", brokers}};
  for (const auto& property : sp::kafka::live_stream_fetch()) live.push_back(property);
  CountingConsumer batched(live, topic);
  CountingConsumer witness({{"bootstrap.servers", brokers}}, topic);
  // Both connected and fetching before the trickle starts.
  std::thread settle([&] { witness.poll_for(2s); });
  batched.poll_for(2s);
  settle.join();
  const FetchCount batched_before = batched.fetches();
  const FetchCount witness_before = witness.fetches();

  constexpr auto kTrickle = 4s;
  std::set<std::string> sent;
  int undelivered = 0;
  std::thread trickle([&] {
    int i = 0;
    auto next = std::chrono::steady_clock::now();
    const auto until = next + kTrickle;
    while (next < until) {
      std::string payload = "record-" + std::to_string(i);
      if (producer.produce(topic, i % kPartitions, "", payload) == RD_KAFKA_RESP_ERR_NO_ERROR) sent.insert(payload);
      producer.poll(0ms);
      ++i;
      next += 2ms;  // on schedule, however long a produce took
      std::this_thread::sleep_until(next);
    }
    undelivered = producer.flush(10s);
  });
  std::thread witness_poll([&] { witness.poll_for(kTrickle); });
  batched.poll_for(kTrickle);
  witness_poll.join();
  trickle.join();
  const FetchCount batched_after = batched.fetches();
  const FetchCount witness_after = witness.fetches();
  // Whatever is still on its way.
  std::thread last([&] { witness.poll_for(1s); });
  batched.poll_for(1s);
  last.join();

  const double batched_rate = rate_between(batched_before, batched_after);
  const double witness_rate = rate_between(witness_before, witness_after);
  std::cout << "fetches a second: " << batched_rate << " with live_stream_fetch(), " << witness_rate
            << " with librdkafka's defaults; " << sent.size() << " records\n";
  ASSERT_EQ(undelivered, 0) << "records the broker did not acknowledge";
  ASSERT_GT(sent.size(), 1000u) << "the trickle produced too little to judge";
  EXPECT_EQ(batched.received, sent) << "the batched consumer lost records";
  // 20 ms a fetch when little is there: 50 a second at most, with room for
  // a statistics interval's rounding and a fetch that ended early. Fewer on
  // a starved machine (20 a second once in a loaded suite: each fetch also
  // waits its turn for a core), but not the 2 to 8 of a wait of 125-500 ms.
  EXPECT_LE(batched_rate, 65.0) << "fetches a second with live_stream_fetch(): fetch.min.bytes not in effect?";
  EXPECT_GE(batched_rate, 10.0) << "fetches a second with live_stream_fetch(): a wait far above 20 ms (500 ms gives 2)?";
  EXPECT_GE(witness_rate, 2 * batched_rate)
      << "the default consumer fetched " << witness_rate << " times a second on the same trickle: it did not "
      << "make fetches frequent, so the bound above proves nothing";
}
