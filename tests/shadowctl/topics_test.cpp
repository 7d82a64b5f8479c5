#include "shadowctl/topics.hpp"
#include "shadowpipe/result.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace shadowctl = shadowpipe::shadowctl;

namespace sp = shadowpipe;
using namespace std::chrono_literals;

namespace {
shadowctl::TopicNames unique_names() {
  const auto prefix = sp::testing::unique_name("ctl");
  return {prefix + ".requests", prefix + ".results", prefix + ".mismatches", prefix + ".summary", prefix + ".dlq"};
}
}  // namespace

TEST(TopicsCreate, CreatesAllFiveWithCoPartitioningAndIsIdempotent) {
  shadowctl::TopicsOptions options;
  options.names = unique_names();
  options.partitions = 4;
  const sp::kafka::Properties kafka = {{"bootstrap.servers", sp::testing::brokers()}};
  auto lines = shadowctl::create_topics(kafka, options);
  ASSERT_EQ(lines.size(), 5u);
  for (const auto& line : lines) EXPECT_NE(line.find("created"), std::string::npos) << line;

  sp::kafka::Producer client(kafka);
  EXPECT_EQ(sp::kafka::partition_count(client.get(), options.names.requests, 10s), 4);
  EXPECT_EQ(sp::kafka::partition_count(client.get(), options.names.results, 10s), 4);
  EXPECT_EQ(sp::kafka::partition_count(client.get(), options.names.mismatches, 10s), 4);
  EXPECT_EQ(sp::kafka::partition_count(client.get(), options.names.summary, 10s), 1);
  EXPECT_EQ(sp::kafka::partition_count(client.get(), options.names.dlq, 10s), 1);

  for (const auto& line : shadowctl::create_topics(kafka, options)) {
    EXPECT_NE(line.find("exists"), std::string::npos) << line;
  }
}

TEST(TopicsCreate, RefusesDifferentPartitionCountsForRequestsAndResults) {
  shadowctl::TopicsOptions options;
  options.names = unique_names();
  const sp::kafka::Properties kafka = {{"bootstrap.servers", sp::testing::brokers()}};
  sp::kafka::Producer client(kafka);
  sp::kafka::create_topics(client.get(), {{options.names.results, 3, 1, {}}}, 15s);
  for (int i = 0; i < 50 && !sp::kafka::partition_count(client.get(), options.names.results, 10s); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  options.partitions = 6;
  try {
    shadowctl::create_topics(kafka, options);
    FAIL() << "must refuse";
  } catch (const sp::Failure& failure) {
    const std::string message = failure.what();
    EXPECT_NE(message.find(options.names.results + " exists with 3 partitions"), std::string::npos) << message;
    EXPECT_NE(message.find("--partitions 3"), std::string::npos) << message;
  }
  EXPECT_FALSE(sp::kafka::partition_count(client.get(), options.names.requests, 10s).has_value())
      << "nothing is created when the counts disagree";
}
