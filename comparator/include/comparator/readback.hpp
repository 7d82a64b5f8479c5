// On assignment, the comparator reads back what earlier owners of its
// partitions already published on the mismatch topic, so a request replayed
// after a restart or a rebalance is not reported twice, and the consistency
// keys that already diverged stay marked.
#pragma once

#include "comparator/decider.hpp"
#include "comparator/service.hpp"
#include "shadowpipe/kafka.hpp"

#include <set>

namespace shadowpipe::comparator {

struct ReadBackScope {
  const Options& options;
  bool mismatches_copartitioned = false;
  int mismatch_partitions = 0;
};

// Reads the mismatch records of these request partitions published since the
// record time of the first request a restart replays (minus the window and a
// margin), into the decider. `group_consumer` is the comparator's own consumer
// (for its committed offsets). Returns how many records were read; throws
// Failure when the topic cannot be read (a skipped read-back would repeat
// discrepancies).
size_t read_back_reported(const ReadBackScope& scope, rd_kafka_t* group_consumer,
                          const std::set<int32_t>& request_partitions, Decider& decider);

}  // namespace shadowpipe::comparator
