// report and verdict read real topics through the broker, and the binary's
// exit codes are what a deploy pipeline sees.
#include "shadowctl/report.hpp"
#include "shadowctl/topics.hpp"
#include "shadowctl/verdict.hpp"
#include "shadowpipe/wire.hpp"
#include "support/stack_env.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sys/wait.h>

namespace shadowctl = shadowpipe::shadowctl;

namespace sp = shadowpipe;
namespace wire = shadowpipe::wire;
using namespace std::chrono_literals;

namespace {

struct Topics {
  shadowctl::TopicNames names;
  sp::kafka::Properties kafka;
};

Topics make_topics() {
  Topics topics;
  const auto prefix = sp::testing::unique_name("report");
  topics.names = {prefix + ".requests", prefix + ".results", prefix + ".mismatches", prefix + ".summary", prefix + ".dlq"};
  topics.kafka = {{"bootstrap.servers", sp::testing::brokers()}};
  shadowctl::TopicsOptions options;
  options.names = topics.names;
  options.partitions = 3;
  shadowctl::create_topics(topics.kafka, options);
  return topics;
}

void publish(const Topics& topics, const std::vector<wire::Mismatch>& mismatches,
             const std::vector<wire::Summary>& summaries) {
  sp::kafka::Producer producer(topics.kafka);
  for (const auto& mismatch : mismatches) {
    ASSERT_EQ(producer.produce(topics.names.mismatches, -1, mismatch.request_id, wire::encode(mismatch)), 0);
  }
  for (const auto& summary : summaries) {
    ASSERT_EQ(producer.produce(topics.names.summary, -1, summary.fingerprint, wire::encode(summary)), 0);
  }
  ASSERT_EQ(producer.flush(20s), 0);
}

wire::Summary summary(const std::string& fingerprint, uint64_t compared) {
  wire::Summary out;
  out.ts_us = wire::now_us();
  out.comparator = "c1";
  out.fingerprint = fingerprint;
  out.normalized_sql = "select $1";
  out.compared = compared;
  out.primary_latency = {compared, 100, 200, 300, 400};
  out.shadow_latency = {compared, 100, 210, 320, 500};
  return out;
}

int run_shadowctl(const std::string& arguments) {
  const std::string command = std::string(SHADOWCTL_BINARY) + " --brokers " + sp::testing::brokers() + " " + arguments +
                              " > /dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string topic_options(const Topics& topics) {
  return "--requests-topic " + topics.names.requests + " --mismatches-topic " + topics.names.mismatches +
         " --summary-topic " + topics.names.summary + " --comparator-group " + topics.names.requests + ".comparators";
}

// Requests on partition 1, and the comparator group's commit on it.
void publish_requests(const Topics& topics, int count) {
  sp::kafka::Producer producer(topics.kafka);
  for (int i = 0; i < count; ++i) ASSERT_EQ(producer.produce(topics.names.requests, 1, "k", "{}"), 0);
  ASSERT_EQ(producer.flush(20s), 0);
}

void commit_comparators(const Topics& topics, int64_t offset) {
  auto properties = topics.kafka;
  properties.emplace_back("group.id", topics.names.requests + ".comparators");
  sp::kafka::Consumer consumer(properties);
  sp::kafka::PartitionList offsets;
  offsets.add(topics.names.requests, 1, offset);
  ASSERT_EQ(consumer.commit(offsets), RD_KAFKA_RESP_ERR_NO_ERROR);
  consumer.close();
}

}  // namespace

TEST(ReportFromTopics, ReadsMismatchesAndSummariesToTheEnd) {
  const auto topics = make_topics();
  std::vector<wire::Mismatch> mismatches;
  for (int i = 0; i < 40; ++i) {
    wire::Mismatch mismatch;
    mismatch.kind = i % 2 ? "value_mismatch" : "shadow_error";
    mismatch.request_id = "request-" + std::to_string(i);
    mismatch.key = "customer-" + std::to_string(i % 5);
    mismatch.fingerprint = i % 2 ? "aaaaaaaaaaaaaaaa" : "bbbbbbbbbbbbbbbb";
    mismatch.normalized_sql = "select $1";
    mismatch.statement_index = 0;
    mismatch.ts_us = wire::now_us();
    if (i % 2) mismatch.columns_differ = {"price"};
    mismatches.push_back(mismatch);
  }
  publish(topics, mismatches, {summary("aaaaaaaaaaaaaaaa", 500), summary("bbbbbbbbbbbbbbbb", 700)});

  shadowctl::ReadOptions options;
  options.names = topics.names;
  const auto report = shadowctl::read_report(topics.kafka, options);
  EXPECT_EQ(report.unreadable_records, 0u);
  EXPECT_EQ(report.compared, 1200u);
  EXPECT_EQ(report.discrepancies(false), 40u);
  ASSERT_EQ(report.fingerprints.size(), 2u);
  for (const auto& fingerprint : report.fingerprints) {
    EXPECT_EQ(fingerprint.discrepancy_total(false), 20u);
  }
}

TEST(VerdictBinary, ExitCodesGateADeploy) {
  const auto topics = make_topics();
  publish(topics, {}, {summary("cccccccccccccccc", 2000)});
  EXPECT_EQ(run_shadowctl("verdict " + topic_options(topics) + " --min-requests 1000"), 0) << "clean traffic passes";
  EXPECT_EQ(run_shadowctl("verdict " + topic_options(topics) + " --min-requests 5000"), 1) << "too little traffic fails";

  wire::Mismatch mismatch;
  mismatch.kind = "shadow_error";
  mismatch.request_id = "r-1";
  mismatch.key = "customer-1";
  mismatch.fingerprint = "cccccccccccccccc";
  mismatch.statement_index = 0;
  publish(topics, {mismatch}, {});
  EXPECT_EQ(run_shadowctl("verdict " + topic_options(topics) + " --min-requests 1000"), 1) << "a discrepancy fails";
  EXPECT_EQ(run_shadowctl("verdict " + topic_options(topics) + " --min-requests 1000 --max-mismatch-rate 0.01"), 0);

  EXPECT_EQ(run_shadowctl("verdict --mismatches-topic no-such-topic-xyz --summary-topic no-such-topic-xyz"), 2)
      << "a missing topic is an error, not a verdict";
  EXPECT_EQ(run_shadowctl("verdict --min-requests lots"), 2) << "a usage error";
  const std::string brokers_after = std::string(SHADOWCTL_BINARY) + " verdict " + topic_options(topics) +
                                    " --min-requests 1000 --max-mismatch-rate 0.01 --brokers " +
                                    sp::testing::brokers() + " > /dev/null 2>&1";
  const int status = std::system(brokers_after.c_str());
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0) << "shared options are accepted after the command";
}

TEST(VerdictFromTopics, NeverPassesWhileAPartitionIsBehindOrStalled) {
  const auto topics = make_topics();
  publish(topics, {}, {summary("", 2000)});  // the whole stream: 2000 requests decided
  publish_requests(topics, 5);
  shadowctl::ReadOptions options;
  options.names = topics.names;
  options.comparator_group = topics.names.requests + ".comparators";
  shadowctl::VerdictOptions gate;
  gate.min_requests = 1000;
  auto verdict = shadowctl::judge(shadowctl::read_report(topics.kafka, options), gate);
  EXPECT_FALSE(verdict.pass);
  ASSERT_EQ(verdict.reasons.size(), 1u);
  EXPECT_NE(verdict.reasons[0].find("partition 1: 5 requests not decided yet"), std::string::npos) << verdict.reasons[0];

  // A comparator reported the partition stalled: the verdict says since when.
  auto stalled = summary("", 0);
  stalled.stalled = {{1, wire::now_us() - 60'000'000, 5}};
  publish(topics, {}, {stalled});
  verdict = shadowctl::judge(shadowctl::read_report(topics.kafka, options), gate);
  ASSERT_FALSE(verdict.pass);
  EXPECT_NE(verdict.reasons[0].find("stalled since"), std::string::npos) << shadowctl::render(verdict);

  commit_comparators(topics, 5);  // everything decided
  verdict = shadowctl::judge(shadowctl::read_report(topics.kafka, options), gate);
  EXPECT_TRUE(verdict.pass) << shadowctl::render(verdict);
  EXPECT_EQ(run_shadowctl("verdict " + topic_options(topics) + " --min-requests 1000"), 0);
}

TEST(VerdictFromTopics, AGapFailsNamingTheWriteUnitsTheShadowNeverApplied) {
  const auto topics = make_topics();
  wire::Mismatch gap;
  gap.kind = "shadow_gap";
  gap.request_id = "gap:" + topics.names.results + ":2:40";
  gap.key = gap.request_id;
  gap.primary = wire::StatementResult{};
  gap.primary->rows = 42;
  gap.detail = "shadow no longer follows the primary: 42 write units never applied (retention on partition 2)";
  publish(topics, {gap, gap}, {summary("cccccccccccccccc", 2000)});
  shadowctl::ReadOptions options;
  options.names = topics.names;
  options.comparator_group = topics.names.requests + ".comparators";
  shadowctl::VerdictOptions gate;
  gate.min_requests = 1000;
  gate.max_mismatch_rate = 1;  // the gap alone must fail it
  const auto verdict = shadowctl::judge(shadowctl::read_report(topics.kafka, options), gate);
  ASSERT_FALSE(verdict.pass);
  EXPECT_EQ(verdict.reasons[0],
            "shadow no longer follows the primary: 42 write units never applied — reset the shadow (shadowctl reset)")
      << "a gap read twice is one gap";
  EXPECT_EQ(run_shadowctl("verdict " + topic_options(topics) + " --min-requests 1000 --max-mismatch-rate 1"), 1);
}
