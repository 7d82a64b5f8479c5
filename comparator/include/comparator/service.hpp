// shadow-comparator as a library: one consumer in one group over the requests
// and results topics (range assignor, so partition N of both lands on the same
// instance), a PairState per partition pair, and a producer for mismatches,
// summaries and dead letters. main.cpp only parses options and calls run().
#pragma once

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/wire.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
}

namespace shadowpipe::comparator {

struct Options {
  kafka::Properties kafka;  // bootstrap.servers, TLS, SASL, ... passed through
  std::string group = "shadow-comparator";
  std::string comparator_id;  // empty: host-pid
  std::string requests_topic = wire::default_topics::requests;
  std::string results_topic = wire::default_topics::results;
  std::string mismatches_topic = wire::default_topics::mismatches;
  std::string summary_topic = wire::default_topics::summary;
  std::string dlq_topic = wire::default_topics::dlq;
  // A partition whose requests wait while the executor shows no progress for
  // this long is reported stalled (summary, log, metric, verdict); nothing
  // is decided by it: a request is shadow_missing only when the executor
  // provably passed it.
  std::chrono::milliseconds window{60'000};
  std::chrono::milliseconds summary_interval{10'000};
  std::chrono::milliseconds commit_interval{1'000};
  // How far back (wall clock) the mismatches already published are read on
  // assignment; zero means from window + 5 minutes before the record time of
  // the first request to be replayed (the committed offset), and at least
  // 2 x window + 5 minutes back.
  std::chrono::milliseconds dedup_lookback{0};
  uint64_t min_samples = 50;
  double latency_ratio = 3;
  double latency_min_difference_ms = 1;
  double latency_median_factor = 2;
  size_t max_pending_bytes = 256u << 20;
  bool include_params = false;
  std::string metrics_bind;  // "host:port", or empty for none
  // Threads that decode, join and classify records (a partition pair belongs
  // to one of them, so its join state stays single-threaded; the consumer
  // loop polls, hands records over and commits). 1 does everything on the
  // consumer's thread; 0 picks min(2, hardware threads). More than the cores
  // left after librdkafka's own threads gains nothing.
  unsigned workers = 0;
};

struct Stats {
  uint64_t pairs = 0;                  // requests joined with their result and classified
  uint64_t shadow_missing = 0;
  uint64_t never_compared = 0;         // passed requests whose results retention may have deleted
  uint64_t duplicates = 0;             // copies of a request or result already seen, dropped
  uint64_t dead_letters = 0;
  uint64_t orphan_results = 0;         // results whose request was decided before or dead-lettered
  uint64_t republish_suppressed = 0;   // discrepancies found again after a restart, already published
  uint64_t mismatches_published = 0;
  std::map<std::string, uint64_t> discrepancies;  // by kind
  size_t pending_requests = 0;
  size_t pending_results = 0;
  size_t pending_bytes = 0;
  size_t pending_bytes_high_water = 0;
  double bytes_per_pending_entry = 0;
  size_t paused_partitions = 0;
  uint64_t pauses = 0;                 // times a partition was paused for memory
  size_t assigned_pairs = 0;
  size_t stalled_partitions = 0;       // requests wait, no executor progress for the window
  uint64_t rewinds = 0;                // aborted transactions redone from the committed offsets
  uint64_t aborted_transactions = 0;
  uint64_t committed_transactions = 0;  // decisions and offsets committed together
};

class Comparator {
 public:
  // Connects and checks the topics: throws Failure when a topic is missing or
  // the requests and results topics have different partition counts.
  explicit Comparator(Options options);
  ~Comparator();
  Comparator(const Comparator&) = delete;
  Comparator& operator=(const Comparator&) = delete;

  // Consumes until stop is set, then publishes, commits and leaves the group.
  void run(const std::atomic<bool>& stop);
  // A snapshot, refreshed every 200 ms while run() works (every second with workers).
  Stats stats() const;
  prometheus::Registry& registry();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shadowpipe::comparator
