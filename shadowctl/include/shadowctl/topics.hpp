// `shadowctl topics create`: the pipeline's topics, with request, result and
// mismatch topics kept at one partition count (co-partitioning).
#pragma once

#include "shadowpipe/kafka.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace shadowpipe::shadowctl {

struct TopicNames {
  std::string requests = shadowpipe::wire::default_topics::requests;
  std::string results = shadowpipe::wire::default_topics::results;
  std::string mismatches = shadowpipe::wire::default_topics::mismatches;
  std::string summary = shadowpipe::wire::default_topics::summary;
  std::string dlq = shadowpipe::wire::default_topics::dlq;
};

struct TopicsOptions {
  TopicNames names;
  int partitions = 6;
  int replication_factor = 1;
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;
  int64_t mismatch_retention_ms = 30LL * 24 * 3600 * 1000;  // evidence outlives traffic
};

// Creates the missing topics; refuses (Failure) when an existing request,
// result or mismatch topic has a partition count that differs from the others
// or from --partitions. Returns one line per topic saying what was done.
std::vector<std::string> create_topics(const shadowpipe::kafka::Properties& kafka, const TopicsOptions& options);

}  // namespace shadowpipe::shadowctl
