// kafka::live_stream_fetch() on the real broker: a consumer following
// records that trickle in (one every 2 ms, as lingering producers of many
// partitions deliver them) fetches at most ~50 times a second with it, and
// gets every record; a consumer with librdkafka's fetch defaults, beside it
// on the same trickle, is the witness that the trickle makes fetches
// frequent, so the bound is the setting's doing. The counts are librdkafka's
// own (its statistics: requests sent, by type).
#include "shadowpipe/kafka.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <set>
#include <string>
#include <thread>

namespace sp = shadowpipe;
using namespace std::chrono_literals;

namespace {

constexpr int kPartitions = 4;

// A group-less consumer of every partition of `topic` from its end, whose
// statistics callback keeps the number of Fetch requests it sent.
class CountingConsumer {
 public:
  CountingConsumer(sp::kafka::Properties properties, const std::string& topic) {
    properties.emplace_back("statistics.interval.ms", "200");
    auto conf = sp::kafka::make_conf(properties);
    rd_kafka_conf_set_stats_cb(conf.get(), &CountingConsumer::on_stats);
    rd_kafka_conf_set_opaque(conf.get(), this);
    char errstr[512];
    handle_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), errstr, sizeof errstr));
    if (!handle_) throw std::runtime_error(std::string("consumer: ") + errstr);
    conf.release();  // rd_kafka_new owns it now
    rd_kafka_poll_set_consumer(handle_.get());
    sp::kafka::PartitionList partitions(kPartitions);
    for (int32_t p = 0; p < kPartitions; ++p) partitions.add(topic, p, RD_KAFKA_OFFSET_END);
    if (rd_kafka_assign(handle_.get(), partitions.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("consumer: assign refused");
    }
  }

  // Polls for `duration`, keeping every payload received.
  void poll_for(std::chrono::milliseconds duration) {
    const auto until = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < until) {
      sp::kafka::Message message(rd_kafka_consumer_poll(handle_.get(), 10));
      if (message && message.error() == RD_KAFKA_RESP_ERR_NO_ERROR) received.insert(std::string(message.payload()));
    }
  }

  int64_t fetches() const { return fetches_.load(); }
  std::set<std::string> received;

  ~CountingConsumer() {
    if (handle_) rd_kafka_consumer_close(handle_.get());
  }

 private:
  // librdkafka's statistics JSON: brokers.<name>.req.Fetch, cumulative.
  static int on_stats(rd_kafka_t*, char* json, size_t length, void* opaque) {
    simdjson::ondemand::parser parser;
    simdjson::padded_string copy(json, length);
    int64_t total = 0;
    auto document = parser.iterate(copy);
    for (auto broker : document["brokers"].get_object()) {
      int64_t fetch = 0;
      if (broker.value()["req"]["Fetch"].get_int64().get(fetch) == simdjson::SUCCESS) total += fetch;
    }
    auto* self = static_cast<CountingConsumer*>(opaque);
    self->fetches_.store(total);
    return 0;  // librdkafka frees the JSON
  }

  sp::kafka::HandlePtr handle_;
  std::atomic<int64_t> fetches_{0};
};

}  // namespace

TEST(LiveStreamFetch, AConsumerOfATrickleFetchesAtMostFiftyTimesASecondAndGetsEveryRecord) {
  const std::string brokers = sp::testing::brokers();
  const std::string topic = sp::testing::unique_name("live-fetch");
  sp::kafka::Producer producer({{"bootstrap.servers", brokers}, {"linger.ms", "0"}});
  sp::kafka::create_topics(producer.get(), {{topic, kPartitions, 1, {}}}, 15s);

  sp::kafka::Properties live{{"bootstrap.servers", brokers}, {"group.id", sp::testing::unique_name("live")}};
  for (auto& property : sp::kafka::live_stream_fetch()) live.push_back(property);
  CountingConsumer batched(live, topic);
  CountingConsumer witness({{"bootstrap.servers", brokers}, {"group.id", sp::testing::unique_name("default")}},
                           topic);
  // Both settle at the end of every partition before the trickle starts.
  std::thread settle([&] { witness.poll_for(2s); });
  batched.poll_for(2s);
  settle.join();
  const int64_t batched_before = batched.fetches();
  const int64_t witness_before = witness.fetches();

  constexpr auto kTrickle = 4s;
  std::atomic<bool> trickling{true};
  std::set<std::string> sent;
  std::thread trickle([&] {
    int i = 0;
    const auto until = std::chrono::steady_clock::now() + kTrickle;
    while (std::chrono::steady_clock::now() < until) {
      std::string payload = "record-" + std::to_string(i);
      if (producer.produce(topic, i % kPartitions, "", payload) == RD_KAFKA_RESP_ERR_NO_ERROR) sent.insert(payload);
      producer.poll(0ms);
      ++i;
      std::this_thread::sleep_for(2ms);
    }
    producer.flush(10s);
    trickling = false;
  });
  std::thread witness_poll([&] { witness.poll_for(kTrickle + 1s); });
  batched.poll_for(kTrickle + 1s);
  witness_poll.join();
  trickle.join();
  // One statistics interval more, so the last fetches are counted.
  std::thread last([&] { witness.poll_for(500ms); });
  batched.poll_for(500ms);
  last.join();

  const double seconds = std::chrono::duration<double>(kTrickle + 1500ms).count();
  const double batched_rate = static_cast<double>(batched.fetches() - batched_before) / seconds;
  const double witness_rate = static_cast<double>(witness.fetches() - witness_before) / seconds;
  std::cout << "fetches a second: " << batched_rate << " with live_stream_fetch(), " << witness_rate
            << " with librdkafka's defaults; " << sent.size() << " records\n";
  ASSERT_GT(sent.size(), 500u) << "the trickle produced too little to judge";
  EXPECT_EQ(batched.received, sent) << "the batched consumer lost records";
  // 20 ms a fetch at most when little is there: 50 a second, with room for
  // the fetches that ended early on 256 KiB (none at this rate) or a reconnect.
  EXPECT_LE(batched_rate, 60.0) << "fetches a second with live_stream_fetch()";
  EXPECT_GE(witness_rate, 2 * batched_rate)
      << "the default consumer fetched " << witness_rate << " times a second on the same trickle: it did not "
      << "make fetches frequent, so the bound above proves nothing";
}
