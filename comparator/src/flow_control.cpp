#include "comparator/flow_control.hpp"

#include "shadowpipe/kafka.hpp"

#include <iostream>

namespace shadowpipe::comparator {

size_t total_pending_bytes(const std::map<int32_t, PairState>& pairs) {
  size_t bytes = 0;
  for (const auto& [partition, pair] : pairs) bytes += pair.pending_bytes();
  return bytes;
}

// Fairness: past two thirds of --max-pending-bytes, a pair holding more than
// half its share of that is paused, on the side whose entries wait for the
// other (the other side keeps flowing and drains them); a pair resumes below
// a quarter of its share, or when the total fell. Pairs within their share
// are never held back by one that runs ahead, and the total stays under the
// limit: the paused pairs hold at most two thirds of it, the running ones at
// most half their share each. Nothing is dropped, nothing expires: a pair
// whose results stopped coming stays paused and is reported stalled.
size_t FlowControl::enforce(std::map<int32_t, PairState>& pairs, rd_kafka_t* consumer) {
  const size_t bytes = total_pending_bytes(pairs);
  high_water_ = std::max(high_water_, bytes);
  const size_t soft_limit = pausing_above();
  const size_t share = soft_limit / std::max<size_t>(1, pairs.size());
  for (auto& [partition, pair] : pairs) {
    if (bytes > soft_limit && pair.pending_bytes() > share / 2) {
      pair.pause_waiting_side();
    } else if (bytes < soft_limit / 10 * 8 || pair.pending_bytes() < share / 4) {
      pair.resume();
    }
    sync(partition, pair, consumer);
  }
  return bytes;
}

void FlowControl::sync(int32_t partition, const PairState& pair, rd_kafka_t* consumer) {
  for (auto side : {Side::requests, Side::results}) {
    const auto& topic = side == Side::requests ? requests_topic_ : results_topic_;
    const bool want = pair.paused(side);
    if (want == paused_.contains({side, partition})) continue;
    if (auto err = kafka::set_paused(consumer, topic, partition, want)) {
      std::cerr << "shadow-comparator: cannot " << (want ? "pause " : "resume ") << topic << "[" << partition
                << "]: " << rd_kafka_err2str(err) << std::endl;
      continue;
    }
    if (want) {
      paused_.emplace(side, partition);
      ++pauses_;
    } else {
      paused_.erase({side, partition});
    }
  }
}

void FlowControl::forget(const std::string& topic, int32_t partition) {
  if (topic == requests_topic_) paused_.erase({Side::requests, partition});
  if (topic == results_topic_) paused_.erase({Side::results, partition});
}

std::vector<wire::Summary::Stall> StallWatch::check(const std::map<int32_t, PairState>& pairs, int64_t wall_us) {
  std::vector<wire::Summary::Stall> out;
  for (const auto& [partition, pair] : pairs) {
    const auto since = pair.stalled_since(wall_us);
    if (since) {
      out.push_back({partition, *since, pair.pending_requests()});
      if (stalled_.insert(partition).second) {
        std::cerr << "shadow-comparator: partition " << partition << " stalled: " << pair.pending_requests()
                  << " requests wait for shadow results and the executor has shown no progress for "
                  << window_.count() / 1000 << " s" << std::endl;
      }
    } else if (stalled_.erase(partition)) {
      std::cerr << "shadow-comparator: partition " << partition << " progresses again" << std::endl;
    }
  }
  return out;
}

}  // namespace shadowpipe::comparator
