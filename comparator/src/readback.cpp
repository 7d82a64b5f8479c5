#include "comparator/readback.hpp"

#include "shadowpipe/result.hpp"
#include "shadowpipe/wire.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

namespace shadowpipe::comparator {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

void log(const std::string& line) { std::cerr << "shadow-comparator: " << line << std::endl; }

// Record time (ms) from which the mismatches topic is read back. A restart
// replays the requests from their committed offsets, and what was decided for
// them was published after they were written: so the read-back starts a
// window and a margin before the record time at the committed offset (or at
// the start of the partition, for a group without commits) of the oldest
// assigned partition — however long the comparator was down. Never later than
// now − (2 × window + 5 min). --dedup-lookback, when set, overrides it.
int64_t read_back_start_ms(const Options& options, rd_kafka_t* group_consumer,
                           const std::set<int32_t>& request_partitions, kafka::Consumer& reader, int64_t now_ms) {
  if (options.dedup_lookback.count() > 0) return now_ms - options.dedup_lookback.count();
  const int64_t margin_ms = (options.window + 5min).count();
  int64_t start_ms = now_ms - options.window.count() - margin_ms;
  if (request_partitions.empty()) return start_ms;
  kafka::PartitionList committed(static_cast<int>(request_partitions.size()));
  for (int32_t partition : request_partitions) committed.add(options.requests_topic, partition);
  kafka::read_committed(group_consumer, committed);  // without them a restart could publish discrepancies twice
  kafka::PartitionList probe(static_cast<int>(request_partitions.size()));
  std::set<int32_t> waiting;
  for (int i = 0; i < committed.size(); ++i) {
    const auto& entry = committed[i];
    const auto [low, high] = kafka::watermarks(reader.get(), options.requests_topic, entry.partition);
    const int64_t position = entry.offset >= 0 ? std::max(entry.offset, low) : low;
    if (position >= high) continue;  // nothing to replay on this partition
    probe.add(options.requests_topic, entry.partition, position);
    waiting.insert(entry.partition);
  }
  if (waiting.empty()) return start_ms;
  // The first record to be replayed on each partition gives the record time.
  rd_kafka_assign(reader.get(), probe.get());
  const auto deadline = Clock::now() + 20s;
  while (!waiting.empty() && Clock::now() < deadline) {
    auto message = reader.poll(200ms);
    if (!message || message.error() || !waiting.contains(message.partition())) continue;
    int64_t ts_ms = message.timestamp_ms();
    if (auto request = wire::decode_request(message.payload()); request && request->ts_us > 0) {
      ts_ms = ts_ms >= 0 ? std::min(ts_ms, request->ts_us / 1000) : request->ts_us / 1000;
    }
    if (ts_ms >= 0) start_ms = std::min(start_ms, ts_ms - margin_ms);
    waiting.erase(message.partition());
  }
  rd_kafka_assign(reader.get(), nullptr);
  if (!waiting.empty()) {
    log("warning: could not read the first replayed request of " + std::to_string(waiting.size()) +
        " partitions within 20 s; the read-back starts at now - (2 x window + 5 min)");
  }
  return start_ms;
}

// Where each partition's start offset is, by record time; transient errors
// (a topic created moments ago has no leader yet) are retried for a while.
kafka::PartitionList offsets_at(kafka::Consumer& reader, const std::string& topic, const std::set<int32_t>& partitions,
                                int64_t start_ms) {
  const auto deadline = Clock::now() + 20s;
  for (;;) {
    kafka::PartitionList query(static_cast<int>(partitions.size()));
    for (int32_t partition : partitions) query.add(topic, partition, start_ms);
    auto err = rd_kafka_offsets_for_times(reader.get(), query.get(), 10'000);
    for (int i = 0; i < query.size() && !err; ++i) err = query[i].err;
    if (!err) return query;
    if (Clock::now() > deadline) {
      throw Failure("cannot look up offsets of " + topic + " by time: " + rd_kafka_err2str(err) +
                    " — without them a restart could publish discrepancies twice");
    }
    std::this_thread::sleep_for(200ms);
  }
}

}  // namespace

size_t read_back_reported(const ReadBackScope& scope, rd_kafka_t* group_consumer,
                          const std::set<int32_t>& request_partitions, Decider& decider) {
  const Options& options = scope.options;
  std::set<int32_t> wanted;
  if (scope.mismatches_copartitioned) {
    wanted = request_partitions;
  } else {
    for (int32_t p = 0; p < scope.mismatch_partitions; ++p) wanted.insert(p);
  }
  if (wanted.empty()) return 0;
  kafka::Properties properties = options.kafka;
  properties.emplace_back("group.id", options.group + "-readback-" + options.comparator_id);
  properties.emplace_back("enable.auto.commit", "false");
  properties.emplace_back("enable.partition.eof", "false");
  properties.emplace_back("isolation.level", "read_committed");  // aborted decisions were never made
  kafka::Consumer reader(properties);
  const int64_t now_ms = wire::now_us() / 1000;
  const int64_t start_ms = read_back_start_ms(options, group_consumer, request_partitions, reader, now_ms);
  auto query = offsets_at(reader, options.mismatches_topic, wanted, start_ms);
  kafka::PartitionList start(static_cast<int>(wanted.size()));
  std::map<int32_t, int64_t> end;
  for (int i = 0; i < query.size(); ++i) {
    const auto& entry = query[i];
    if (entry.offset < 0) continue;  // nothing published since the lookback
    const int64_t high = kafka::watermarks(reader.get(), options.mismatches_topic, entry.partition).high;
    if (entry.offset >= high) continue;
    start.add(options.mismatches_topic, entry.partition, entry.offset);
    end[entry.partition] = high;
  }
  if (end.empty()) return 0;
  rd_kafka_assign(reader.get(), start.get());
  // Transaction markers take offsets but are never delivered as messages, so
  // the end is reached when the consumer's position (not the last message)
  // gets there. An open transaction of a crashed instance holds the position
  // back until the broker aborts it (transaction.timeout.ms).
  const auto deadline = Clock::now() + 90s;
  size_t read = 0;
  while (!end.empty()) {
    if (Clock::now() > deadline) {
      throw Failure("reading back " + options.mismatches_topic + " took over 90 s; restart to try again");
    }
    auto message = reader.poll(100ms);
    if (message && !message.error()) {
      ++read;
      if (auto record = wire::decode_mismatch(message.payload())) decider.add_reported(*record, wire::now_us());
    }
    kafka::PartitionList positions(static_cast<int>(end.size()));
    for (const auto& [partition, high] : end) positions.add(options.mismatches_topic, partition);
    rd_kafka_position(reader.get(), positions.get());
    for (int i = 0; i < positions.size(); ++i) {
      if (positions[i].offset >= 0 && positions[i].offset >= end[positions[i].partition]) end.erase(positions[i].partition);
    }
  }
  rd_kafka_assign(reader.get(), nullptr);
  // Forget what is older than twice the lookback: it cannot be replayed any more.
  decider.forget_reported_before(wire::now_us() - 2 * (now_ms - start_ms) * 1000);
  log("read back " + std::to_string(read) + " published mismatches for dedup");
  return read;
}

}  // namespace shadowpipe::comparator
