// The comparator's consumer properties, as librdkafka applies them (the last
// entry of a key wins): the live-stream fetch settings by default, an
// operator's -X over them, and the settings the join and the lossless commit
// depend on over any -X.
#include "comparator/config.hpp"

#include "shadowpipe/kafka.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace sp = shadowpipe;

namespace {

std::optional<std::string> effective(const sp::kafka::Properties& properties, const std::string& key) {
  std::optional<std::string> value;
  for (const auto& [name, given] : properties) {
    if (name == key) value = given;
  }
  return value;
}

}  // namespace

TEST(ComparatorConfig, TheConsumerFetchesAsALiveStreamUnlessTheOperatorSaysOtherwise) {
  sp::comparator::Options options;
  options.group = "g";
  const auto defaults = sp::comparator::consumer_properties(options);
  for (const auto& [key, value] : sp::kafka::live_stream_fetch()) {
    EXPECT_EQ(effective(defaults, key), value) << key;
  }

  options.kafka = {{"fetch.min.bytes", "1"}, {"fetch.wait.max.ms", "500"}};
  const auto given = sp::comparator::consumer_properties(options);
  EXPECT_EQ(effective(given, "fetch.min.bytes"), "1");
  EXPECT_EQ(effective(given, "fetch.wait.max.ms"), "500");
}

TEST(ComparatorConfig, TheJoinsSettingsStayWhateverTheOperatorGives) {
  sp::comparator::Options options;
  options.group = "g";
  options.kafka = {{"isolation.level", "read_uncommitted"},
                   {"enable.auto.commit", "true"},
                   {"partition.assignment.strategy", "roundrobin"},
                   {"auto.offset.reset", "latest"}};
  const auto properties = sp::comparator::consumer_properties(options);
  EXPECT_EQ(effective(properties, "auto.offset.reset"), "earliest") << "latest would skip requests uncompared";
  EXPECT_EQ(effective(properties, "isolation.level"), "read_committed");
  EXPECT_EQ(effective(properties, "enable.auto.commit"), "false");
  EXPECT_EQ(effective(properties, "partition.assignment.strategy"), "range");
  EXPECT_EQ(effective(properties, "group.id"), "g");
}
