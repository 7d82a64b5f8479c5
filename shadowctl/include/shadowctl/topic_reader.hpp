// Reads whole topics without joining a consumer group (nothing committed,
// nobody's offsets moved): from the beginning or from a point in time, up to
// the end as it was when reading began, then optionally on (--follow).
#pragma once

#include "shadowpipe/kafka.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shadowpipe::shadowctl {

class TopicReader {
 public:
  using Handler = std::function<void(const shadowpipe::kafka::Message&)>;

  // since_ms: record timestamp (ms since the epoch) to start from; nullopt
  // reads from the beginning. Throws Failure when a topic does not exist.
  TopicReader(const shadowpipe::kafka::Properties& properties, const std::vector<std::string>& topics,
              std::optional<int64_t> since_ms);

  // Delivers every record up to the end marks taken at construction; throws
  // Failure if they are not reached within the timeout.
  void read_to_end(const Handler& handler, std::chrono::milliseconds timeout);
  // Delivers whatever arrives within the duration (for --follow).
  void read_for(const Handler& handler, std::chrono::milliseconds duration);

 private:
  shadowpipe::kafka::Consumer consumer_;
  std::map<std::pair<std::string, int32_t>, int64_t> end_;  // next offset to reach
};

}  // namespace shadowpipe::shadowctl
