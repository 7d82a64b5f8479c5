#include "shadowctl/topics.hpp"

#include "shadowpipe/result.hpp"

#include <chrono>
#include <optional>
#include <thread>

namespace shadowpipe::shadowctl {

using namespace std::chrono_literals;
namespace kafka = shadowpipe::kafka;

std::vector<std::string> create_topics(const kafka::Properties& properties, const TopicsOptions& options) {
  if (options.partitions < 1) throw shadowpipe::Failure("--partitions must be at least 1");
  kafka::Producer admin(properties);

  // Co-partitioned topics: an existing one fixes the count for all three.
  const std::vector<std::string> co_partitioned = {options.names.requests, options.names.results,
                                                   options.names.mismatches};
  for (const auto& name : co_partitioned) {
    auto existing = kafka::partition_count(admin.get(), name, 10s);
    if (existing && *existing != options.partitions) {
      throw shadowpipe::Failure(
          "topic " + name + " exists with " + std::to_string(*existing) + " partitions but --partitions is " +
          std::to_string(options.partitions) +
          "; requests, results and mismatches must have equal counts — use --partitions " +
          std::to_string(*existing) + " or delete the topics first");
    }
  }

  const auto retention = std::to_string(options.retention_ms);
  const auto mismatch_retention = std::to_string(options.mismatch_retention_ms);
  std::vector<kafka::TopicSpec> specs = {
      {options.names.requests, options.partitions, options.replication_factor, {{"retention.ms", retention}}},
      {options.names.results, options.partitions, options.replication_factor, {{"retention.ms", retention}}},
      {options.names.mismatches, options.partitions, options.replication_factor,
       {{"retention.ms", mismatch_retention}}},
      {options.names.summary, 1, options.replication_factor, {{"retention.ms", mismatch_retention}}},
      {options.names.dlq, 1, options.replication_factor, {{"retention.ms", mismatch_retention}}},
  };
  std::vector<std::string> lines;
  std::vector<kafka::TopicSpec> missing;
  for (auto& spec : specs) {
    if (auto existing = kafka::partition_count(admin.get(), spec.name, 10s)) {
      lines.push_back(spec.name + ": exists (" + std::to_string(*existing) + " partitions)");
    } else {
      lines.push_back(spec.name + ": created (" + std::to_string(spec.partitions) + " partitions, replication " +
                      std::to_string(spec.replication_factor) + ")");
      missing.push_back(std::move(spec));
    }
  }
  if (!missing.empty()) kafka::create_topics(admin.get(), missing, 30s);

  // A topic made by someone else a moment ago may not have been in the
  // metadata read above; check the co-partitioned three once they all show.
  for (const auto& name : co_partitioned) {
    std::optional<int> count;
    for (int attempt = 0; attempt < 50 && !count; ++attempt) {
      count = kafka::partition_count(admin.get(), name, 10s);
      if (!count) std::this_thread::sleep_for(100ms);
    }
    if (!count) throw shadowpipe::Failure("topic " + name + " did not appear after creation — check the broker log");
    if (*count != options.partitions) {
      throw shadowpipe::Failure("topic " + name + " exists with " + std::to_string(*count) +
                                " partitions but --partitions is " + std::to_string(options.partitions) +
                                "; requests, results and mismatches must have equal counts");
    }
  }
  return lines;
}

}  // namespace shadowpipe::shadowctl
