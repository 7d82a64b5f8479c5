// The comparator's partition health. FlowControl is the memory bound: which partitions to pause in librdkafka so
// the pending entries stay under --max-pending-bytes without starving the
// partitions that stay within their share.
#pragma once

#include "comparator/pending.hpp"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <set>
#include <string>

namespace shadowpipe::comparator {

class FlowControl {
 public:
  FlowControl(size_t max_pending_bytes, std::string requests_topic, std::string results_topic)
      : max_pending_bytes_(max_pending_bytes),
        requests_topic_(std::move(requests_topic)),
        results_topic_(std::move(results_topic)) {}

  // Decides per pair, then pauses or resumes the pairs' partitions on the
  // consumer to match. Returns the total pending bytes it judged.
  size_t enforce(std::map<int32_t, PairState>& pairs, rd_kafka_t* consumer);
  // Below this total nothing is paused (two thirds of --max-pending-bytes).
  size_t pausing_above() const { return max_pending_bytes_ / 3 * 2; }

  // A revoked partition, or a new assignment: no pause survives it.
  void forget(const std::string& topic, int32_t partition);

  size_t paused_partitions() const { return paused_.size(); }
  uint64_t pauses() const { return pauses_; }
  size_t high_water() const { return high_water_; }

 private:
  void sync(int32_t partition, const PairState& pair, rd_kafka_t* consumer);

  size_t max_pending_bytes_;
  std::string requests_topic_;
  std::string results_topic_;
  // What librdkafka was told, by side rather than topic name: enforce() looks
  // every pair up after each record, and a key holding the topic's name cost
  // a string allocation per lookup.
  std::set<std::pair<Side, int32_t>> paused_;
  uint64_t pauses_ = 0;
  size_t high_water_ = 0;
};

// Partitions whose requests wait with no executor progress for the window:
// listed in every summary, logged once per streak.
class StallWatch {
 public:
  explicit StallWatch(std::chrono::milliseconds window) : window_(window) {}
  std::vector<wire::Summary::Stall> check(const std::map<int32_t, PairState>& pairs, int64_t wall_us);
  void forget(int32_t partition) { stalled_.erase(partition); }
  size_t stalled_partitions() const { return stalled_.size(); }

 private:
  std::chrono::milliseconds window_;
  std::set<int32_t> stalled_;
};

size_t total_pending_bytes(const std::map<int32_t, PairState>& pairs);

}  // namespace shadowpipe::comparator
