// Plan capture: which executions get an EXPLAIN, and how the EXPLAIN (FORMAT
// JSON) output is summarized into the result record.
#pragma once

#include "shadowpipe/result.hpp"
#include "shadowpipe/wire.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace shadowpipe::executor {

// Node types outermost first (pre-order, each once), the relations read by a
// Seq Scan, and the root's Total Cost and Plan Rows.
Result<wire::PlanSummary> summarize_plan(std::string_view explain_json);

// Decides per execution whether to capture a plan: a fingerprint's first
// execution, and any execution slower than `latency_factor` times the
// fingerprint's running median; never more than `per_minute` captures a
// minute across all partitions. Shared by the partition workers.
class PlanPolicy {
 public:
  using Clock = std::chrono::steady_clock;
  PlanPolicy(int per_minute, double latency_factor);

  // Records the latency and answers whether to capture now. A first
  // execution refused by the rate limit is tried again on the next one.
  bool should_capture(const std::string& fingerprint, int64_t latency_us, Clock::time_point now = Clock::now());

 private:
  struct History {
    bool planned = false;
    std::deque<int64_t> recent;   // the last kWindow latencies, oldest first
    std::vector<int64_t> sorted;  // the same, in order: the median without a copy and a sort per statement
  };
  static constexpr size_t kWindow = 64;
  static constexpr size_t kMinSamplesForMedian = 8;
  static constexpr size_t kMaxFingerprints = 100'000;  // bounds memory under fingerprint churn
  bool take_token(Clock::time_point now);

  std::mutex mutex_;
  int per_minute_;
  double latency_factor_;
  double tokens_;
  Clock::time_point refilled_;
  std::unordered_map<std::string, History> history_;
};

}  // namespace shadowpipe::executor
