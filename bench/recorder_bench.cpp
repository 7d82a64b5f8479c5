// Cost of one recording on the application thread: statement analysis
// (cached), the digest of a 20-row result, encoding and the non-blocking
// enqueue into librdkafka. Results are made in memory (no server), so only
// the recorder is measured.
//
//   build/bin/recorder_bench                      broker unreachable (enqueue until the queue is full, then drop)
//   SHADOWPIPE_BROKERS=127.0.0.1:19092 build/bin/recorder_bench   also against a real broker (topic bench.recorder)
#include "producer/made_result.hpp"
#include "shadowpipe/recorder.hpp"

#include <benchmark/benchmark.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace shadowpipe;

// 20 rows like an orders page: id bigint, status text, total numeric, created_at timestamptz.
pg::Result orders_page(int rows) {
  return testing::made_pgresult({{"id", 20}, {"status", 25}, {"total", 1700}, {"created_at", 1184}}, rows,
                                [](int row) {
                                  return std::vector<std::string>{
                                      std::to_string(240000 + row), row % 3 ? "delivered" : "shipped",
                                      std::to_string(10 + row * 7) + ".99",
                                      "2024-03-0" + std::to_string(1 + row % 9) + " 12:34:56.789+00"};
                                });
}

const std::string kCustomerOrders =
    "SELECT id, status, total, created_at FROM orders WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20";

producer::RecorderConfig config_for(const std::string& brokers) {
  producer::RecorderConfig config;
  config.source = "recorder_bench";
  config.topic = "bench.recorder";
  config.flush_timeout = std::chrono::milliseconds(brokers.empty() ? 0 : 10000);
  config.kafka = {{"bootstrap.servers", brokers.empty() ? "127.0.0.1:1" : brokers}, {"log_level", "0"}};
  return config;
}

void record_loop(benchmark::State& state, producer::Recorder& recorder) {
  const auto result = orders_page(20);
  const std::vector<std::optional<std::string>> params = {std::string("4242")};
  int64_t i = 0;
  for (auto _ : state) {
    recorder.record(nullptr, "customer:4242", kCustomerOrders, params, result.get(), 180 + (i++ & 7));
  }
  const auto counters = recorder.counters();
  state.counters["queue_full"] = static_cast<double>(counters.dropped(producer::DropReason::queue_full));
  state.counters["sampled_out"] = static_cast<double>(counters.dropped(producer::DropReason::sampled_out));
  state.SetItemsProcessed(state.iterations());
}

// Broker unreachable: the first 100,000 records are enqueued (copied into
// librdkafka's queue), the rest hit queue_full after the full app-side work.
void BM_Record20Rows_BrokerDown(benchmark::State& state) {
  producer::Recorder recorder(config_for(""));
  record_loop(state, recorder);
}
BENCHMARK(BM_Record20Rows_BrokerDown);

// The same unit sampled out (rate 0, a read): analysis only, no digest.
void BM_Record20Rows_SampledOut(benchmark::State& state) {
  auto config = config_for("");
  config.sampling.rate = 0;
  producer::Recorder recorder(config);
  record_loop(state, recorder);
}
BENCHMARK(BM_Record20Rows_SampledOut);

// The tail the application sees, which a mean hides: each of 10,000 calls
// timed alone with the broker down and a queue of 1,000, so 9,000 calls take
// the drop path. Counters p50_us, p99_us and max_us are per call (moved here
// from recorder_test, where a bound on them failed on a loaded machine or
// under the sanitizers without the recorder being at fault).
void BM_Record20Rows_BrokerDownTail(benchmark::State& state) {
  constexpr int kUnits = 10'000;
  const auto result = orders_page(20);
  const std::vector<std::optional<std::string>> params = {std::string("4242")};
  std::vector<double> call_us;
  call_us.reserve(kUnits);
  for (auto _ : state) {
    state.PauseTiming();
    auto config = config_for("");
    config.kafka.emplace_back("queue.buffering.max.messages", "1000");
    config.kafka.emplace_back("message.timeout.ms", "600000");  // nothing expires and frees space mid-run
    auto recorder = std::make_unique<producer::Recorder>(config);
    call_us.clear();
    state.ResumeTiming();
    for (int i = 0; i < kUnits; ++i) {
      const auto before = std::chrono::steady_clock::now();
      recorder->record(nullptr, "customer:" + std::to_string(i % 50), kCustomerOrders, params, result.get(), 180);
      call_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - before).count());
    }
    state.PauseTiming();
    recorder.reset();
    state.ResumeTiming();
  }
  std::sort(call_us.begin(), call_us.end());
  state.counters["p50_us"] = call_us[call_us.size() / 2];
  state.counters["p99_us"] = call_us[call_us.size() * 99 / 100];
  state.counters["max_us"] = call_us.back();
  state.SetItemsProcessed(state.iterations() * kUnits);
}
BENCHMARK(BM_Record20Rows_BrokerDownTail)->Unit(benchmark::kMillisecond)->Iterations(3);

// A real broker draining the queue, as in production.
void BM_Record20Rows_RealBroker(benchmark::State& state) {
  const char* brokers = std::getenv("SHADOWPIPE_BROKERS");
  if (brokers == nullptr || *brokers == '\0') {
    state.SkipWithError("SHADOWPIPE_BROKERS is not set");
    return;
  }
  auto config = config_for(brokers);
  {
    kafka::Producer admin(kafka::Properties{{"bootstrap.servers", brokers}});
    kafka::create_topics(admin.get(), {{config.topic, 6, 1, {{"retention.ms", "600000"}}}}, std::chrono::seconds(15));
  }
  producer::Recorder recorder(config);
  record_loop(state, recorder);
}
BENCHMARK(BM_Record20Rows_RealBroker);

}  // namespace

BENCHMARK_MAIN();
