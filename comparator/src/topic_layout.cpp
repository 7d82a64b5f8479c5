#include "comparator/topic_layout.hpp"

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/result.hpp"

#include <iostream>
#include <thread>

namespace shadowpipe::comparator {

using namespace std::chrono_literals;

namespace {

int require_topic(const kafka::Producer& probe, const std::string& topic, const char* option) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    if (auto count = kafka::partition_count(probe.get(), topic, 10s)) return *count;
    if (std::chrono::steady_clock::now() > deadline) {
      throw Failure("topic " + topic + " does not exist: create it (shadowctl topics) or name the right one with " +
                    option);
    }
    std::this_thread::sleep_for(1s);
  }
}

}  // namespace

TopicLayout check_topic_layout(const Options& options) {
  const kafka::Producer probe(options.kafka);  // metadata only; nothing is produced
  const int requests = require_topic(probe, options.requests_topic, "--requests-topic");
  const int results = require_topic(probe, options.results_topic, "--results-topic");
  if (requests != results) {
    throw Failure("topic " + options.requests_topic + " has " + std::to_string(requests) + " partitions but " +
                  options.results_topic + " has " + std::to_string(results) +
                  ": the comparator joins partition N of both topics on one instance, so their partition "
                  "counts must be equal — recreate " + options.results_topic + " with " + std::to_string(requests) +
                  " partitions");
  }
  TopicLayout layout;
  layout.partitions = requests;
  layout.mismatch_partitions = require_topic(probe, options.mismatches_topic, "--mismatches-topic");
  layout.mismatches_copartitioned = layout.mismatch_partitions == layout.partitions;
  if (!layout.mismatches_copartitioned) {
    std::cerr << "shadow-comparator: warning: " << options.mismatches_topic << " has " << layout.mismatch_partitions
              << " partitions, not " << layout.partitions
              << ": mismatches are partitioned by request id, and every assignment reads back all mismatch partitions"
              << std::endl;
  }
  require_topic(probe, options.summary_topic, "--summary-topic");
  require_topic(probe, options.dlq_topic, "--dlq-topic");
  return layout;
}

}  // namespace shadowpipe::comparator
