#include "shadowctl/topic_reader.hpp"

#include "shadowpipe/result.hpp"

namespace shadowpipe::shadowctl {

namespace kafka = shadowpipe::kafka;
using namespace std::chrono_literals;

namespace {
kafka::Properties reader_properties(kafka::Properties properties) {
  // librdkafka's assign() wants a group id; assigning never joins the group
  // and nothing is committed, so no one's offsets move.
  properties.emplace_back("group.id", "shadowctl-reader");
  properties.emplace_back("enable.auto.commit", "false");
  properties.emplace_back("enable.auto.offset.store", "false");
  return properties;
}
}  // namespace

TopicReader::TopicReader(const kafka::Properties& properties, const std::vector<std::string>& topics,
                         std::optional<int64_t> since_ms)
    : consumer_(reader_properties(properties)) {
  kafka::PartitionList assignment;
  kafka::PartitionList by_time;
  for (const auto& topic : topics) {
    auto partitions = kafka::partition_count(consumer_.get(), topic, 10s);
    if (!partitions) {
      throw shadowpipe::Failure("topic " + topic + " does not exist — create the topics with `shadowctl topics create`, "
                                "or name the right ones with the topic options");
    }
    for (int32_t partition = 0; partition < *partitions; ++partition) {
      const auto [low, high] = kafka::watermarks(consumer_.get(), topic, partition);
      if (high > low) end_[{topic, partition}] = high;
      if (since_ms) {
        by_time.add(topic, partition, *since_ms);
      } else {
        assignment.add(topic, partition, RD_KAFKA_OFFSET_BEGINNING);
      }
    }
  }
  if (since_ms && by_time.size() > 0) {
    if (auto err = rd_kafka_offsets_for_times(consumer_.get(), by_time.get(), 10000)) {
      throw shadowpipe::Failure(std::string("cannot find offsets by time: ") + rd_kafka_err2str(err));
    }
    for (int i = 0; i < by_time.size(); ++i) {
      const auto& entry = by_time[i];
      // -1: no record at or after that time, so start at the end.
      const int64_t start = entry.offset < 0 ? RD_KAFKA_OFFSET_END : entry.offset;
      assignment.add(entry.topic, entry.partition, start);
      if (entry.offset < 0) end_.erase({entry.topic, entry.partition});
    }
  }
  if (auto err = rd_kafka_assign(consumer_.get(), assignment.get())) {
    throw shadowpipe::Failure(std::string("cannot assign the topics: ") + rd_kafka_err2str(err));
  }
}

void TopicReader::read_to_end(const Handler& handler, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!end_.empty()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw shadowpipe::Failure("reading the topics did not reach their end within " +
                                std::to_string(timeout.count() / 1000) + " s — is the broker healthy?");
    }
    auto message = consumer_.poll(200ms);
    if (message && !message.error()) handler(message);
    // Transaction markers take offsets but never arrive as messages: the end
    // is reached when the position (not the last message) gets there.
    kafka::PartitionList positions(static_cast<int>(end_.size()));
    for (const auto& [where, end] : end_) positions.add(where.first, where.second);
    rd_kafka_position(consumer_.get(), positions.get());
    for (int i = 0; i < positions.size(); ++i) {
      const std::pair<std::string, int32_t> where{positions[i].topic, positions[i].partition};
      if (positions[i].offset >= 0 && positions[i].offset >= end_[where]) end_.erase(where);
    }
  }
}

void TopicReader::read_for(const Handler& handler, std::chrono::milliseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < deadline) {
    auto message = consumer_.poll(100ms);
    if (message && !message.error()) handler(message);
  }
}

}  // namespace shadowpipe::shadowctl
