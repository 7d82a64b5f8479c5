// The comparator joins partition N of the requests topic with partition N of
// the results topic on one instance; this checks, at start, that the topics
// it reads and writes exist and that their partitions line up.
#pragma once

#include "comparator/service.hpp"

namespace shadowpipe::comparator {

struct TopicLayout {
  int partitions = 0;           // of the requests and of the results topic (equal)
  int mismatch_partitions = 0;  // of the mismatch topic
  bool mismatches_copartitioned = false;
};

// Waits up to 30 s for each topic (one created moments ago may not be known to
// every broker yet); throws Failure naming the topic, the option and the fix.
TopicLayout check_topic_layout(const Options& options);

}  // namespace shadowpipe::comparator
