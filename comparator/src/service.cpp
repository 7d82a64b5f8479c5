// The Kafka shell of the comparator: one consumer over both topics (range
// assignor), a PairState per owned partition pair, the Decider, and a
// transactional publisher that commits the decisions with the offsets.
#include "comparator/service.hpp"

#include "comparator/config.hpp"
#include "comparator/decider.hpp"
#include "comparator/flow_control.hpp"
#include "comparator/metrics.hpp"
#include "comparator/pending.hpp"
#include "comparator/publisher.hpp"
#include "comparator/readback.hpp"
#include "comparator/topic_layout.hpp"
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
  TopicLayout layout;
  FlowControl flow;
  Decider decider;
  std::map<int32_t, PairState> pairs;
  StallWatch stall_watch;
  // Decoded into again for every request, so the statements, SQL and
  // parameter buffers are reused instead of allocated per record.
  wire::Request decoded_request;
  std::exception_ptr fatal;
  bool rewind_needed = false;
  bool abandoned = false;

  Stats local;
  mutable std::mutex stats_mutex;
  Stats shared;

  explicit Impl(Options given)
      : options(with_instance_id(std::move(given))),
        consumer_name("shadow-comparator/" + options.comparator_id),
        endpoint(options.metrics_bind),
        metrics(endpoint.registry()),
        publisher(producer_properties(options), "shadowpipe-comparator-" + options.group + "-" + options.comparator_id),
        layout(check_topic_layout(options)),
        flow(options.max_pending_bytes, options.requests_topic, options.results_topic),
        decider(decider_options(options)),
        stall_watch(options.window) {}

  // An exception left run() with the consumer open: closing it must not
  // commit anything, and must not reach members already destroyed.
  ~Impl() {
    abandoned = true;
    consumer.reset();
  }

  // ---- publishing -------------------------------------------------------

  void publish_decision(int32_t partition, int64_t request_offset, Decision decision) {
    for (auto& record : decision.publish) {
      publisher.publish(options.mismatches_topic, layout.mismatches_copartitioned ? partition : -1, record.request_id,
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
      metrics.decided(wire::now_us() - added.joined->request.ts_us);
      publish_decision(partition, added.joined->request.offset, decider.decide(*added.joined));
    }
    for (auto& missing : added.missing) {
      ++local.shadow_missing;
      metrics.decided(wire::now_us() - missing.request.ts_us);
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
    if (auto decoded = wire::decode_request_into(message.payload(), decoded_request); !decoded) {
      if (handle_gap(message, Side::requests, wall_us)) return;
      dead_letter(decoded.error(), message);
      pair.consumed(Side::requests, message.offset(), wall_us);
      return;
    }
    auto& request = decoded_request;
    if (auto registered = decider.register_fingerprints(request.statements); !registered) {
      dead_letter(registered.error(), message);
      pair.consumed(Side::requests, message.offset(), wall_us);
      // Its shadow result, when it comes, is for a request decided here.
      pair.mark_decided(request.request_id, wall_us);
      return;
    }
    auto added = pair.add_request(std::move(request.request_id), request_side(request, message.offset(), options.include_params), wall_us);
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
    for (auto& statement : result.statements) {
      if (statement.plan && !statement.fingerprint.empty()) decider.note_plan(statement.fingerprint, std::move(*statement.plan));
    }
    auto added = pair.add_result(std::move(result.request_id), result_side(result, message.offset(), message.partition()), wall_us);
    after_add(message.partition(), added);
  }

  // ---- memory bound -----------------------------------------------------

  void enforce_memory_bound() {
    local.pending_bytes_high_water = std::max(local.pending_bytes_high_water, flow.enforce(pairs, consumer->get()));
  }

  // ---- commit and rebalance ---------------------------------------------

  // Counts what the commit position passed, publishes the counts and commits
  // them with the offsets in one transaction.
  void commit_cycle(int64_t wall_us) {
    for (auto& [partition, pair] : pairs) decider.count(pair.take_passed_tallies());
    for (auto& summary : decider.take_summaries(wall_us, stall_watch.check(pairs, wall_us))) {
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
    kafka::read_committed(consumer->get(), owned, 30s);  // to redo an aborted transaction
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
    if (abandoned) {
      consumer->default_rebalance(event, list);
      return;
    }
    try {
      if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        std::set<int32_t> assigned;
        for (int i = 0; i < list->cnt; ++i) assigned.insert(list->elems[i].partition);
        read_back_reported({options, layout.mismatches_copartitioned, layout.mismatch_partitions}, consumer->get(), assigned, decider);
        for (int32_t partition : assigned) pair_of(partition);
        log("assigned partition pairs: " + std::to_string(assigned.size()));
      } else {
        // Count, publish and commit what was decided; what is still pending is
        // replayed by the next owner.
        commit_cycle(wire::now_us());
        for (int i = 0; i < list->cnt; ++i) {
          pairs.erase(list->elems[i].partition);
          stall_watch.forget(list->elems[i].partition);
          flow.forget(list->elems[i].topic, list->elems[i].partition);
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
    local.pending_bytes = total_pending_bytes(pairs);
    const size_t entries = local.pending_requests + local.pending_results;
    local.bytes_per_pending_entry = entries ? static_cast<double>(local.pending_bytes) / static_cast<double>(entries) : 0;
    local.paused_partitions = flow.paused_partitions();
    local.pauses = flow.pauses();
    local.assigned_pairs = pairs.size();
    local.stalled_partitions = stall_watch.stalled_partitions();
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
        consumer_properties(options), [this](rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* list) {
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
    publisher.close();
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
