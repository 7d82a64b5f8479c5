// The Kafka shell of the comparator: one consumer over both topics (range
// assignor), a PairState per owned partition pair, the Decider, and a
// transactional publisher that commits the decisions with the offsets.
#include "comparator/service.hpp"

#include "comparator/decider.hpp"
#include "comparator/metrics.hpp"
#include "comparator/pending.hpp"
#include "comparator/publisher.hpp"
#include "comparator/readback.hpp"
#include "shadowpipe/instance.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/wire.hpp"

#include <algorithm>
#include <exception>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

namespace shadowpipe::comparator {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

void log(const std::string& line) { std::cerr << "shadow-comparator: " << line << std::endl; }

// Request and result records of the same statement keep only the evidence a
// decision needs; the primary's error message is not kept (its SQLSTATE is).
SideStatement slim(std::string fingerprint, wire::StatementResult result, bool keep_message) {
  if (!keep_message) {
    result.message.clear();
    result.message.shrink_to_fit();
  }
  return SideStatement{std::move(fingerprint), std::move(result)};
}

DeciderOptions decider_options(const Options& options) {
  DeciderOptions decider;
  decider.include_params = options.include_params;
  decider.comparator_id = options.comparator_id;
  decider.regression.min_samples = options.min_samples;
  decider.regression.ratio_factor = options.latency_ratio;
  decider.regression.min_difference_us = options.latency_min_difference_ms * 1000.0;
  decider.regression.median_factor = options.latency_median_factor;
  return decider;
}

Options with_id(Options options) {
  if (options.comparator_id.empty()) options.comparator_id = host_pid_id();
  return options;
}

}  // namespace

struct Comparator::Impl {
  Options options;
  std::string consumer_name;
  std::atomic<bool> never_stop{false};
  const std::atomic<bool>* stop = &never_stop;
  metrics::Endpoint endpoint;
  ComparatorMetrics metrics;
  TransactionalPublisher publisher;
  std::unique_ptr<kafka::Consumer> consumer;
  int partitions = 0;
  bool mismatches_copartitioned = false;
  int mismatch_partitions = 0;
  Decider decider;
  std::map<int32_t, PairState> pairs;
  std::set<int32_t> stalled;  // pairs reported stalled, for logging once per streak
  // Decoded into again for every request, so the statements, SQL and
  // parameter buffers are reused instead of allocated per record.
  wire::Request decoded_request;
  std::set<std::pair<std::string, int32_t>> paused;
  std::exception_ptr fatal;
  bool rewind_needed = false;

  Stats local;
  mutable std::mutex stats_mutex;
  Stats shared;

  explicit Impl(Options given)
      : options(with_id(std::move(given))),
        consumer_name("shadow-comparator/" + options.comparator_id),
        endpoint(options.metrics_bind),
        metrics(endpoint.registry()),
        publisher(producer_properties(options), "shadowpipe-comparator-" + options.group + "-" + options.comparator_id),
        decider(decider_options(options)) {
    check_topics();
  }

  static kafka::Properties producer_properties(const Options& options) {
    // Long enough for a broker pause inside one cycle, short enough that a
    // crashed instance's open transaction does not hold readers for long.
    kafka::Properties properties = {{"linger.ms", "5"}, {"transaction.timeout.ms", "30000"}};
    properties.insert(properties.end(), options.kafka.begin(), options.kafka.end());
    return properties;
  }

  kafka::Properties consumer_properties() const {
    kafka::Properties properties = {{"auto.offset.reset", "earliest"},
                                    {"enable.partition.eof", "false"},
                                    // A crashed instance's partitions move within seconds, not 45 s.
                                    {"session.timeout.ms", "6000"},
                                    {"heartbeat.interval.ms", "1500"}};
    properties.insert(properties.end(), options.kafka.begin(), options.kafka.end());
    // The join and the lossless commit depend on these; -X cannot override them.
    properties.emplace_back("group.id", options.group);
    properties.emplace_back("partition.assignment.strategy", "range");
    properties.emplace_back("enable.auto.commit", "false");
    properties.emplace_back("enable.auto.offset.store", "false");
    properties.emplace_back("isolation.level", "read_committed");
    return properties;
  }

  // A topic created moments ago may not be known to every broker yet: wait a
  // while before calling it missing.
  int require_topic(const kafka::Producer& probe, const std::string& topic, const char* option) {
    const auto deadline = Clock::now() + 30s;
    for (;;) {
      if (auto count = kafka::partition_count(probe.get(), topic, 10s)) return *count;
      if (Clock::now() > deadline) {
        throw Failure("topic " + topic + " does not exist: create it (shadowctl topics) or name the right one with " +
                      option);
      }
      std::this_thread::sleep_for(1s);
    }
  }

  void check_topics() {
    const kafka::Producer probe(options.kafka);  // metadata only; nothing is produced
    const int requests = require_topic(probe, options.requests_topic, "--requests-topic");
    const int results = require_topic(probe, options.results_topic, "--results-topic");
    if (requests != results) {
      throw Failure("topic " + options.requests_topic + " has " + std::to_string(requests) + " partitions but " +
                    options.results_topic + " has " + std::to_string(results) +
                    ": the comparator joins partition N of both topics on one instance, so their partition "
                    "counts must be equal — recreate " + options.results_topic + " with " +
                    std::to_string(requests) + " partitions");
    }
    partitions = requests;
    mismatch_partitions = require_topic(probe, options.mismatches_topic, "--mismatches-topic");
    mismatches_copartitioned = mismatch_partitions == partitions;
    if (!mismatches_copartitioned) {
      log("warning: " + options.mismatches_topic + " has " + std::to_string(mismatch_partitions) +
          " partitions, not " + std::to_string(partitions) +
          ": mismatches are partitioned by request id, and every assignment reads back all mismatch partitions");
    }
    require_topic(probe, options.summary_topic, "--summary-topic");
    require_topic(probe, options.dlq_topic, "--dlq-topic");
  }

  // ---- publishing -------------------------------------------------------

  void publish_decision(int32_t partition, int64_t request_offset, Decision decision) {
    for (auto& record : decision.publish) {
      publisher.publish(options.mismatches_topic, mismatches_copartitioned ? partition : -1, record.request_id,
                        wire::encode(record));
      ++local.mismatches_published;
      ++local.discrepancies[record.kind];
      metrics.discrepancy(record.kind);
    }
    local.republish_suppressed += decision.suppressed;
    metrics.republish_suppressed_total->Increment(static_cast<double>(decision.suppressed));
    if (decision.tally.request) pair_of(partition).hold(request_offset, std::move(decision.tally));
  }

  void dead_letter(const Error& error, const kafka::Message& message) {
    auto record = wire::make_dead_letter(error, consumer_name, message.topic(), message.partition(), message.offset(),
                                         message.payload());
    publisher.publish(options.dlq_topic, -1, message.key(), wire::encode(record));
    ++local.dead_letters;
    metrics.dead_letters_total->Increment();
  }

  // ---- deciding ---------------------------------------------------------

  PairState& pair_of(int32_t partition) {
    auto it = pairs.find(partition);
    if (it == pairs.end()) {
      const int64_t window_us = options.window.count() * 1000;
      it = pairs.try_emplace(partition, window_us, std::max<int64_t>(2 * window_us, 600'000'000)).first;
    }
    return it->second;
  }

  void after_add(int32_t partition, PairState::Added& added) {
    if (added.outcome == PairState::Outcome::duplicate) {
      ++local.duplicates;
      metrics.duplicates_total->Increment();
    } else if (added.joined) {
      ++local.pairs;
      metrics.pairs_total->Increment();
      publish_decision(partition, added.joined->request.offset, decider.decide(*added.joined));
    }
    for (auto& missing : added.missing) {
      ++local.shadow_missing;
      publish_decision(partition, missing.request.offset, decider.decide_missing(missing));
    }
    local.orphan_results += added.orphan_results;
    metrics.orphan_results_total->Increment(static_cast<double>(added.orphan_results));
  }

  // A gap record (on either topic) is decided on arrival.
  bool handle_gap(const kafka::Message& message, Side side, int64_t wall_us) {
    if (!wire::is_gap_record(message.payload())) return false;
    auto gap = wire::decode_gap(message.payload());
    if (!gap) return false;
    auto& pair = pair_of(message.partition());
    PairState::Added added;
    if (side == Side::requests) {
      pair.consumed(side, message.offset(), wall_us);
    } else {
      // The executor passed the lost offsets: requests waiting on them are missing.
      added = pair.progress(gap->to_offset, message.offset(), wall_us);
    }
    log("gap on " + std::string(message.topic()) + "[" + std::to_string(message.partition()) + "]: " +
        std::to_string(gap->write_units) + " write units never applied (" + gap->reason + ")");
    publish_decision(message.partition(), message.offset(), decider.decide_gap(*gap, message.topic(), message.offset()));
    after_add(message.partition(), added);
    return true;
  }

  void handle_request(const kafka::Message& message, int64_t wall_us) {
    auto& pair = pair_of(message.partition());
    if (auto error = wire::decode_request_into(message.payload(), decoded_request)) {
      if (handle_gap(message, Side::requests, wall_us)) return;
      dead_letter(*error, message);
      pair.consumed(Side::requests, message.offset(), wall_us);
      return;
    }
    auto& request = decoded_request;
    if (auto error = decider.register_fingerprints(request.statements)) {
      dead_letter(*error, message);
      pair.consumed(Side::requests, message.offset(), wall_us);
      // Its shadow result, when it comes, is for a request decided here.
      pair.mark_decided(request.request_id, wall_us);
      return;
    }
    RequestSide side;
    side.key = std::move(request.key);
    side.ts_us = request.ts_us;
    side.offset = message.offset();
    side.statements.reserve(request.statements.size());
    for (auto& statement : request.statements) {
      side.statements.push_back(slim(std::move(statement.fingerprint), std::move(statement.result), false));
      if (options.include_params) side.params.push_back(std::move(statement.params));
    }
    auto added = pair.add_request(std::move(request.request_id), std::move(side), wall_us);
    after_add(message.partition(), added);
  }

  void handle_result(const kafka::Message& message, int64_t wall_us) {
    auto& pair = pair_of(message.partition());
    auto decoded = wire::decode_result(message.payload());
    if (!decoded) {
      if (handle_gap(message, Side::results, wall_us)) return;
      dead_letter(decoded.error(), message);
      pair.consumed(Side::results, message.offset(), wall_us);
      return;
    }
    auto& result = decoded.value();
    ResultSide side;
    side.ts_us = result.ts_us;
    side.offset = message.offset();
    // A result published to another partition than its request's says
    // nothing about this partition's offsets.
    const bool placed = result.source_partition == message.partition();
    side.source_offset = placed ? result.source_offset : -1;
    side.published_below = placed ? result.published_below : -1;
    side.statements.reserve(result.statements.size());
    for (auto& statement : result.statements) {
      if (statement.plan && !statement.fingerprint.empty()) decider.note_plan(statement.fingerprint, std::move(*statement.plan));
      side.statements.push_back(slim(std::move(statement.fingerprint), std::move(statement.result), true));
    }
    auto added = pair.add_result(std::move(result.request_id), std::move(side), wall_us);
    after_add(message.partition(), added);
  }

  // ---- memory bound -----------------------------------------------------

  size_t total_pending_bytes() const {
    size_t bytes = 0;
    for (const auto& [partition, pair] : pairs) bytes += pair.pending_bytes();
    return bytes;
  }

  void sync_paused(int32_t partition, const PairState& pair) {
    for (auto side : {Side::requests, Side::results}) {
      const auto& topic = side == Side::requests ? options.requests_topic : options.results_topic;
      const bool want = pair.paused(side);
      if (want == paused.contains({topic, partition})) continue;
      kafka::PartitionList list(1);
      list.add(topic, partition);
      auto err = want ? rd_kafka_pause_partitions(consumer->get(), list.get())
                      : rd_kafka_resume_partitions(consumer->get(), list.get());
      if (err) {
        log(std::string("cannot ") + (want ? "pause " : "resume ") + topic + "[" + std::to_string(partition) +
            "]: " + rd_kafka_err2str(err));
        continue;
      }
      if (want) {
        paused.emplace(topic, partition);
        ++local.pauses;
      } else {
        paused.erase({topic, partition});
      }
    }
  }

  // Memory bound with fairness: past two thirds of --max-pending-bytes, a
  // pair holding more than half its share of that is paused, on the side
  // whose entries wait for the other (the other side keeps flowing and drains
  // them); a pair resumes below a quarter of its share, or when the total
  // fell. Pairs within their share are never held back by one that runs
  // ahead, and the total stays under the limit: the paused pairs hold at most
  // two thirds of it, the running ones at most half their share each.
  // Nothing is dropped, nothing expires: a pair whose results stopped coming
  // stays paused and is reported stalled.
  void enforce_memory_bound() {
    const size_t bytes = total_pending_bytes();
    local.pending_bytes_high_water = std::max(local.pending_bytes_high_water, bytes);
    const size_t soft_limit = options.max_pending_bytes / 3 * 2;
    const size_t share = soft_limit / std::max<size_t>(1, pairs.size());
    for (auto& [partition, pair] : pairs) {
      if (bytes > soft_limit && pair.pending_bytes() > share / 2) {
        pair.pause_waiting_side();
      } else if (bytes < soft_limit / 10 * 8 || pair.pending_bytes() < share / 4) {
        pair.resume();
      }
      sync_paused(partition, pair);
    }
  }

  // ---- commit and rebalance ---------------------------------------------

  std::vector<wire::Summary::Stall> stalls(int64_t wall_us) {
    std::vector<wire::Summary::Stall> out;
    for (const auto& [partition, pair] : pairs) {
      const auto since = pair.stalled_since(wall_us);
      if (since) {
        out.push_back({partition, *since, pair.pending_requests()});
        if (stalled.insert(partition).second) {
          log("partition " + std::to_string(partition) + " stalled: " + std::to_string(pair.pending_requests()) +
              " requests wait for shadow results and the executor has shown no progress for " +
              std::to_string(options.window.count() / 1000) + " s");
        }
      } else if (stalled.erase(partition)) {
        log("partition " + std::to_string(partition) + " progresses again");
      }
    }
    return out;
  }

  // Counts what the commit position passed, publishes the counts and commits
  // them with the offsets in one transaction.
  void commit_cycle(int64_t wall_us) {
    for (auto& [partition, pair] : pairs) decider.count(pair.take_passed_tallies());
    for (auto& summary : decider.take_summaries(wall_us, stalls(wall_us))) {
      publisher.publish(options.summary_topic, -1, summary.fingerprint, wire::encode(summary));
    }
    kafka::PartitionList offsets(static_cast<int>(pairs.size() * 2));
    for (const auto& [partition, pair] : pairs) {
      for (auto side : {Side::requests, Side::results}) {
        if (auto offset = pair.commit_offset(side)) {
          offsets.add(side == Side::requests ? options.requests_topic : options.results_topic, partition, *offset);
        }
      }
    }
    if (publisher.commit(offsets, consumer->get()) == TransactionalPublisher::Outcome::aborted) rewind_needed = true;
  }

  // After an aborted transaction: forget every decision since the last commit
  // and read again from the committed offsets.
  void rewind() {
    rewind_needed = false;
    if (stop->load()) return;
    ++local.rewinds;
    kafka::PartitionList owned(static_cast<int>(pairs.size() * 2));
    for (const auto& [partition, pair] : pairs) {
      owned.add(options.requests_topic, partition);
      owned.add(options.results_topic, partition);
    }
    if (owned.size() == 0) return;
    if (auto err = rd_kafka_committed(consumer->get(), owned.get(), 30'000)) {
      throw Failure(std::string("cannot read the committed offsets to redo an aborted transaction: ") +
                    rd_kafka_err2str(err));
    }
    for (int i = 0; i < owned.size(); ++i) {
      if (owned[i].offset < 0) owned[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (auto* error = rd_kafka_seek_partitions(consumer->get(), owned.get(), 30'000)) {
      const std::string text = rd_kafka_error_string(error);
      rd_kafka_error_destroy(error);
      throw Failure("cannot rewind to the committed offsets after an aborted transaction: " + text);
    }
    std::vector<int32_t> owned_pairs;
    for (const auto& [partition, pair] : pairs) owned_pairs.push_back(partition);
    pairs.clear();
    for (int32_t partition : owned_pairs) pair_of(partition);
    log("transaction aborted: decisions since the last commit are redone from the committed offsets");
  }

  void on_rebalance(rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* list) {
    try {
      if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        std::set<int32_t> assigned;
        for (int i = 0; i < list->cnt; ++i) assigned.insert(list->elems[i].partition);
        read_back_reported({options, mismatches_copartitioned, mismatch_partitions}, consumer->get(), assigned, decider);
        for (int32_t partition : assigned) pair_of(partition);
        log("assigned partition pairs: " + std::to_string(assigned.size()));
      } else {
        // Count, publish and commit what was decided; what is still pending is
        // replayed by the next owner.
        commit_cycle(wire::now_us());
        for (int i = 0; i < list->cnt; ++i) {
          pairs.erase(list->elems[i].partition);
          stalled.erase(list->elems[i].partition);
          paused.erase({list->elems[i].topic, list->elems[i].partition});
        }
        rewind_needed = false;  // what was aborted is replayed by the next owner
      }
    } catch (...) {
      if (!fatal) fatal = std::current_exception();
    }
    consumer->default_rebalance(event, list);
    if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      // Pause bookkeeping starts empty for a new assignment; no pause from an
      // earlier one may survive in librdkafka.
      rd_kafka_resume_partitions(consumer->get(), list);
    }
  }

  // ---- periodic work ----------------------------------------------------

  void refresh_gauges(int64_t wall_us) {
    local.pending_requests = local.pending_results = 0;
    std::optional<int64_t> oldest;
    for (auto& [partition, pair] : pairs) {
      const size_t dropped = pair.expire_unplaced_results(wall_us);
      local.orphan_results += dropped;
      metrics.orphan_results_total->Increment(static_cast<double>(dropped));
      local.pending_requests += pair.pending_requests();
      local.pending_results += pair.pending_results();
      if (auto ts = pair.oldest_pending_ts()) oldest = std::min(oldest.value_or(*ts), *ts);
    }
    local.pending_bytes = total_pending_bytes();
    const size_t entries = local.pending_requests + local.pending_results;
    local.bytes_per_pending_entry = entries ? static_cast<double>(local.pending_bytes) / static_cast<double>(entries) : 0;
    local.paused_partitions = paused.size();
    local.assigned_pairs = pairs.size();
    local.stalled_partitions = stalled.size();
    local.aborted_transactions = publisher.aborted_transactions();
    metrics.refresh(local, oldest ? static_cast<double>(wall_us - *oldest) / 1e6 : 0);
    std::lock_guard lock(stats_mutex);
    shared = local;
  }

  void publish_regressions() {
    for (auto& record : decider.regressions(wire::now_us())) {
      publisher.publish(options.mismatches_topic, -1, record.request_id, wire::encode(record));
      ++local.mismatches_published;
      ++local.discrepancies[record.kind];
      metrics.discrepancy(record.kind);
    }
  }

  void rethrow_fatal() {
    if (fatal) std::rethrow_exception(fatal);
  }

  void run(const std::atomic<bool>& stop_flag) {
    stop = &stop_flag;
    publisher.follow_stop(stop_flag);
    publisher.start();
    consumer = std::make_unique<kafka::Consumer>(
        consumer_properties(), [this](rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* list) {
          on_rebalance(event, list);
        });
    consumer->subscribe({options.requests_topic, options.results_topic});
    auto next_tick = Clock::now();
    auto next_commit = Clock::now() + options.commit_interval;
    auto next_regression_check = Clock::now() + options.summary_interval;
    std::string last_consumer_error;
    while (!stop->load()) {
      auto message = consumer->poll(100ms);
      rethrow_fatal();
      if (message) {
        if (message.error()) {
          // Transient (a broker away, a leader moving): logged once per streak, never fatal.
          if (message.error() != RD_KAFKA_RESP_ERR__PARTITION_EOF && message.error_text() != last_consumer_error) {
            last_consumer_error = message.error_text();
            log("consumer: " + last_consumer_error);
          }
        } else {
          last_consumer_error.clear();
          const int64_t wall_us = wire::now_us();
          if (message.topic() == options.requests_topic) {
            handle_request(message, wall_us);
          } else {
            handle_result(message, wall_us);
          }
          enforce_memory_bound();
        }
      }
      const auto now = Clock::now();
      if (now >= next_tick) {
        enforce_memory_bound();
        refresh_gauges(wire::now_us());
        next_tick = now + 200ms;
      }
      if (now >= next_regression_check) {
        publish_regressions();
        next_regression_check = now + options.summary_interval;
      }
      if (now >= next_commit) {
        commit_cycle(wire::now_us());
        if (rewind_needed) rewind();
        next_commit = Clock::now() + options.commit_interval;
      }
    }
    publish_regressions();  // judged over every request decided, before the last commit
    commit_cycle(wire::now_us());
    consumer->close();  // the revoke commits what is left
    rethrow_fatal();
    pairs.clear();
    refresh_gauges(wire::now_us());
  }
};

Comparator::Comparator(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Comparator::~Comparator() = default;

void Comparator::run(const std::atomic<bool>& stop) { impl_->run(stop); }

Stats Comparator::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->shared;
}

prometheus::Registry& Comparator::registry() { return impl_->endpoint.registry(); }

}  // namespace shadowpipe::comparator
