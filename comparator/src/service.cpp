#include "comparator/service.hpp"

#include "comparator/classify.hpp"
#include "comparator/latency.hpp"
#include "comparator/pending.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace shadowpipe::comparator {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string default_comparator_id() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

void log(const std::string& line) { std::cerr << "shadow-comparator: " << line << std::endl; }

std::string reported_tag(std::string_view kind, int32_t statement_index) {
  return std::string(kind) + "#" + std::to_string(statement_index);
}

// Request and result records of the same statement keep only the evidence a
// decision needs; the primary's error message is not kept (its SQLSTATE is).
SideStatement slim(std::string fingerprint, wire::StatementResult result, bool keep_message) {
  if (!keep_message) {
    result.message.clear();
    result.message.shrink_to_fit();
  }
  return SideStatement{std::move(fingerprint), std::move(result)};
}

}  // namespace

struct Comparator::Impl {
  Options options;
  std::string consumer_name;
  metrics::Endpoint endpoint;
  kafka::Producer producer;
  std::unique_ptr<kafka::Consumer> consumer;
  int partitions = 0;
  bool mismatches_copartitioned = false;
  int mismatch_partitions = 0;
  RegressionPolicy policy;

  std::map<int32_t, PairState> pairs;
  std::map<std::string, FingerprintStats> fingerprints;
  // Decoded into again for every request, so the statements, SQL and
  // parameter buffers are reused instead of allocated per record.
  wire::Request decoded_request;
  // The whole request stream since the last summary: published as a summary
  // with an empty fingerprint, so a report counts requests, not statements.
  uint64_t requests_interval = 0;
  std::map<std::string, uint64_t> request_discrepancies_interval;
  std::set<std::pair<std::string, int32_t>> paused;
  std::map<std::pair<std::string, int32_t>, int64_t> last_committed;

  // Discrepancies published before this instance owned the partition (read
  // back from the mismatches topic): request id -> kind#statement tags.
  std::unordered_map<std::string, std::set<std::string>> reported;
  std::deque<std::pair<int64_t, std::string>> reported_order;  // (wall us, id) for eviction
  // Consistency keys that already had a discrepancy: later ones are echoes.
  std::unordered_set<std::string> diverged_keys;
  // Notices (wire::is_notice_kind) already published, by fingerprint, kind
  // and detail: a notice describes a fingerprint, so it is published once.
  std::unordered_set<std::string> notices_published;
  std::deque<std::string> diverged_order;
  static constexpr size_t kDivergedKeysCapacity = 1'000'000;

  // How long read-back entries are kept: twice the longest lookback used.
  int64_t reported_retention_us = 0;

  uint64_t delivery_failures = 0;
  std::string last_delivery_error;
  std::exception_ptr fatal;

  Stats local;
  mutable std::mutex stats_mutex;
  Stats shared;

  // Metrics.
  prometheus::Counter* pairs_total = nullptr;
  prometheus::Counter* duplicates_total = nullptr;
  prometheus::Counter* dead_letters_total = nullptr;
  prometheus::Counter* orphan_results_total = nullptr;
  prometheus::Counter* republish_suppressed_total = nullptr;
  std::map<std::string, prometheus::Counter*, std::less<>> discrepancies_total;
  prometheus::Gauge* pending_requests_gauge = nullptr;
  prometheus::Gauge* pending_results_gauge = nullptr;
  prometheus::Gauge* pending_bytes_gauge = nullptr;
  prometheus::Gauge* bytes_per_entry_gauge = nullptr;
  prometheus::Gauge* oldest_age_gauge = nullptr;
  prometheus::Gauge* paused_gauge = nullptr;

  explicit Impl(Options given)
      : options(std::move(given)),
        endpoint(options.metrics_bind),
        producer(producer_properties(options), [this](const rd_kafka_message_t& message) {
          if (message.err) {
            ++delivery_failures;
            last_delivery_error = rd_kafka_err2str(message.err);
          }
        }) {
    if (options.comparator_id.empty()) options.comparator_id = default_comparator_id();
    consumer_name = "shadow-comparator/" + options.comparator_id;
    policy.min_samples = options.min_samples;
    policy.ratio_factor = options.latency_ratio;
    policy.min_difference_us = options.latency_min_difference_ms * 1000.0;
    policy.median_factor = options.latency_median_factor;
    check_topics();
    register_metrics();
  }

  static kafka::Properties producer_properties(const Options& options) {
    kafka::Properties properties = {{"enable.idempotence", "true"}, {"linger.ms", "5"}};
    properties.insert(properties.end(), options.kafka.begin(), options.kafka.end());
    return properties;
  }

  kafka::Properties consumer_properties() const {
    kafka::Properties properties = {{"auto.offset.reset", "earliest"},
                                    {"enable.partition.eof", "false"}};
    properties.insert(properties.end(), options.kafka.begin(), options.kafka.end());
    // The join and the lossless commit depend on these; -X cannot override them.
    properties.emplace_back("group.id", options.group);
    properties.emplace_back("partition.assignment.strategy", "range");
    properties.emplace_back("enable.auto.commit", "false");
    properties.emplace_back("enable.auto.offset.store", "false");
    return properties;
  }

  int require_topic(const std::string& topic, const char* option) {
    auto count = kafka::partition_count(producer.get(), topic, 10s);
    if (!count) {
      throw Failure("topic " + topic + " does not exist: create it (shadowctl topics) or name the right one with " +
                    option);
    }
    return *count;
  }

  void check_topics() {
    const int requests = require_topic(options.requests_topic, "--requests-topic");
    const int results = require_topic(options.results_topic, "--results-topic");
    if (requests != results) {
      throw Failure("topic " + options.requests_topic + " has " + std::to_string(requests) + " partitions but " +
                    options.results_topic + " has " + std::to_string(results) +
                    ": the comparator joins partition N of both topics on one instance, so their partition "
                    "counts must be equal — recreate " + options.results_topic + " with " +
                    std::to_string(requests) + " partitions");
    }
    partitions = requests;
    mismatch_partitions = require_topic(options.mismatches_topic, "--mismatches-topic");
    mismatches_copartitioned = mismatch_partitions == partitions;
    if (!mismatches_copartitioned) {
      log("warning: " + options.mismatches_topic + " has " + std::to_string(mismatch_partitions) +
          " partitions, not " + std::to_string(partitions) +
          ": mismatches are partitioned by request id, and every assignment reads back all mismatch partitions");
    }
    require_topic(options.summary_topic, "--summary-topic");
    require_topic(options.dlq_topic, "--dlq-topic");
  }

  void register_metrics() {
    auto& registry = endpoint.registry();
    auto counter = [&](const char* name, const char* help) {
      return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
    };
    auto gauge = [&](const char* name, const char* help) {
      return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
    };
    pairs_total = counter("shadowpipe_comparator_pairs_total", "Requests joined with their shadow result and classified");
    duplicates_total = counter("shadowpipe_comparator_duplicates_total", "Copies of requests or results already seen, dropped");
    dead_letters_total = counter("shadowpipe_comparator_dead_letters_total", "Records sent to the dead-letter topic");
    orphan_results_total =
        counter("shadowpipe_comparator_orphan_results_total", "Shadow results whose request never came within the window");
    republish_suppressed_total = counter("shadowpipe_comparator_republish_suppressed_total",
                                         "Discrepancies found again after a restart or rebalance and not published twice");
    auto& kinds = prometheus::BuildCounter()
                      .Name("shadowpipe_comparator_discrepancies_total")
                      .Help("Discrepancies published, by kind")
                      .Register(registry);
    for (auto kind : wire::kMismatchKinds) discrepancies_total.emplace(std::string(kind), &kinds.Add({{"kind", std::string(kind)}}));
    pending_requests_gauge = gauge("shadowpipe_comparator_pending_requests", "Requests waiting for their shadow result");
    pending_results_gauge = gauge("shadowpipe_comparator_pending_results", "Shadow results waiting for their request");
    pending_bytes_gauge = gauge("shadowpipe_comparator_pending_bytes", "Estimated bytes held by pending entries");
    bytes_per_entry_gauge =
        gauge("shadowpipe_comparator_pending_bytes_per_entry", "Estimated bytes per pending request or result");
    oldest_age_gauge = gauge("shadowpipe_comparator_oldest_pending_age_seconds",
                             "Age of the oldest request waiting for its result, by its primary commit time");
    paused_gauge = gauge("shadowpipe_comparator_paused_partitions", "Partitions paused because pending memory is over the limit");
  }

  // ---- publishing -------------------------------------------------------

  void publish(const std::string& topic, int32_t partition, std::string_view key, const std::string& payload) {
    for (;;) {
      auto err = producer.produce(topic, partition, key, payload);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        throw Failure("cannot publish to " + topic + " partition " + std::to_string(partition) + ": " +
                      rd_kafka_err2str(err));
      }
      producer.poll(50ms);  // backpressure: wait for deliveries rather than drop
    }
  }

  void dead_letter(const Error& error, const kafka::Message& message) {
    auto record = wire::make_dead_letter(error, consumer_name, message.topic(), message.partition(), message.offset(),
                                         message.payload());
    publish(options.dlq_topic, -1, message.key(), wire::encode(record));
    ++local.dead_letters;
    dead_letters_total->Increment();
  }

  void publish_findings(int32_t partition, const std::string& request_id, const RequestSide& request,
                        const ResultSide* result, std::vector<Finding> findings) {
    if (findings.empty()) return;
    const auto previously = reported.find(request_id);
    for (auto& finding : findings) {
      if (wire::is_notice_kind(finding.kind)) {
        const size_t at = finding.statement_index >= 0 ? static_cast<size_t>(finding.statement_index) : 0;
        const std::string fingerprint = at < request.statements.size() ? request.statements[at].fingerprint : "";
        if (!notices_published.insert(fingerprint + '\x1f' + finding.kind + '\x1f' + finding.detail).second) continue;
      }
      const auto tag = reported_tag(finding.kind, finding.statement_index);
      if (previously != reported.end() && previously->second.contains(tag)) {
        ++local.republish_suppressed;
        republish_suppressed_total->Increment();
        continue;
      }
      wire::Mismatch record;
      record.kind = finding.kind;
      record.request_id = request_id;
      record.key = request.key;
      record.ts_us = request.ts_us;
      const size_t index = finding.statement_index >= 0 ? static_cast<size_t>(finding.statement_index) : 0;
      if (index < request.statements.size()) {
        const auto& primary = request.statements[index];
        record.fingerprint = primary.fingerprint;
        if (auto it = fingerprints.find(primary.fingerprint); it != fingerprints.end()) {
          record.normalized_sql = it->second.normalized_sql;
          it->second.discrepancies_interval[finding.kind]++;
        }
        if (finding.statement_index >= 0) {
          record.primary = primary.result;
          if (result && index < result->statements.size()) record.shadow = result->statements[index].result;
          if (index < request.params.size()) record.params = request.params[index];
        }
      }
      record.statement_index = finding.statement_index;
      record.columns_differ = std::move(finding.columns_differ);
      record.detail = std::move(finding.detail);
      if (!request.key.empty() && !wire::is_notice_kind(record.kind) && diverged_keys.insert(request.key).second) {
        record.first_divergence_on_key = true;
        diverged_order.push_back(request.key);
        if (diverged_order.size() > kDivergedKeysCapacity) {
          diverged_keys.erase(diverged_order.front());
          diverged_order.pop_front();
        }
      }
      publish(options.mismatches_topic, mismatches_copartitioned ? partition : -1, request_id, wire::encode(record));
      ++local.mismatches_published;
      ++local.discrepancies[record.kind];
      ++request_discrepancies_interval[record.kind];
      discrepancies_total.find(record.kind)->second->Increment();
    }
  }

  // ---- deciding ---------------------------------------------------------

  TraitsLookup traits_lookup() {
    return [this](const std::string& fingerprint) {
      auto it = fingerprints.find(fingerprint);
      return it == fingerprints.end() ? StatementTraits{} : it->second.traits;
    };
  }

  void decide(int32_t partition, Joined& joined) {
    ++local.pairs;
    pairs_total->Increment();
    ++requests_interval;
    const auto& primary = joined.request.statements;
    const auto& shadow = joined.result.statements;
    for (size_t i = 0; i < std::min(primary.size(), shadow.size()); ++i) {
      auto it = fingerprints.find(primary[i].fingerprint);
      if (it == fingerprints.end()) continue;
      auto& stats = it->second;
      ++stats.compared_interval;
      // Latency of a failed statement measures the failure, not the plan.
      if (primary[i].result.status == wire::Status::ok && shadow[i].result.status == wire::Status::ok) {
        stats.primary_latency.add(static_cast<double>(primary[i].result.latency_us));
        stats.shadow_latency.add(static_cast<double>(shadow[i].result.latency_us));
      }
    }
    publish_findings(partition, joined.request_id, joined.request, &joined.result,
                     classify_request(primary, shadow, traits_lookup()));
  }

  void decide_missing(int32_t partition, Missing& missing) {
    ++local.shadow_missing;
    ++requests_interval;
    std::string detail = "no shadow result within the " + std::to_string(options.window.count()) +
                         " ms window (request of " + std::to_string(missing.request.statements.size()) +
                         " statements)";
    publish_findings(partition, missing.request_id, missing.request, nullptr,
                     {Finding{"shadow_missing", -1, {}, std::move(detail)}});
  }

  void expire_all(int64_t wall_us) {
    for (auto& [partition, pair] : pairs) {
      auto expired = pair.expire(wall_us);
      for (auto& missing : expired.missing) decide_missing(partition, missing);
      local.orphan_results += expired.orphan_results;
      orphan_results_total->Increment(static_cast<double>(expired.orphan_results));
    }
  }

  PairState& pair_of(int32_t partition) {
    auto it = pairs.find(partition);
    if (it == pairs.end()) {
      const int64_t window_us = options.window.count() * 1000;
      it = pairs.try_emplace(partition, window_us, 2 * window_us).first;
    }
    return it->second;
  }

  // Registers each new fingerprint with its analysis (parsed once per
  // fingerprint, never kept per request). Returns an error for SQL that does
  // not parse.
  std::optional<Error> register_fingerprints(std::vector<wire::Statement>& statements) {
    for (size_t i = 0; i < statements.size(); ++i) {
      auto& statement = statements[i];
      if (!statement.fingerprint.empty()) {
        auto known = fingerprints.find(statement.fingerprint);
        if (known != fingerprints.end() && known->second.analyzed) continue;
      }
      auto analysis = statement::analyze(statement.sql);
      if (!analysis) {
        Error error = analysis.error();
        error.field = "statements[" + std::to_string(i) + "].sql";
        return error;
      }
      if (statement.fingerprint.empty()) statement.fingerprint = analysis->fingerprint;
      auto& stats = fingerprints[statement.fingerprint];
      if (!stats.analyzed) {
        stats.analyzed = true;
        stats.normalized_sql = std::move(analysis->normalized_sql);
        stats.traits = traits_of(*analysis);
      }
    }
    return std::nullopt;
  }

  void handle_request(const kafka::Message& message, int64_t wall_us) {
    auto& pair = pair_of(message.partition());
    if (auto error = wire::decode_request_into(message.payload(), decoded_request)) {
      dead_letter(*error, message);
      pair.consumed(Side::requests, message.offset(), wall_us);
      return;
    }
    auto& request = decoded_request;
    if (auto error = register_fingerprints(request.statements)) {
      dead_letter(*error, message);
      pair.consumed(Side::requests, message.offset(), wall_us);
      // Its shadow result, when it comes, is for a request decided here.
      pair.mark_decided(request.request_id);
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
      dead_letter(decoded.error(), message);
      pair.consumed(Side::results, message.offset(), wall_us);
      return;
    }
    auto& result = decoded.value();
    ResultSide side;
    side.ts_us = result.ts_us;
    side.offset = message.offset();
    side.statements.reserve(result.statements.size());
    for (auto& statement : result.statements) {
      // Results may come before their requests: the entry is created here and
      // analyzed when the first request of the fingerprint arrives.
      if (statement.plan && !statement.fingerprint.empty()) {
        fingerprints[statement.fingerprint].latest_plan = std::move(statement.plan);
      }
      side.statements.push_back(slim(std::move(statement.fingerprint), std::move(statement.result), true));
    }
    auto added = pair.add_result(std::move(result.request_id), std::move(side), wall_us);
    after_add(message.partition(), added);
  }

  void after_add(int32_t partition, PairState::Added& added) {
    if (added.outcome == PairState::Outcome::duplicate) {
      ++local.duplicates;
      duplicates_total->Increment();
    } else if (added.joined) {
      decide(partition, *added.joined);
    }
  }

  // ---- memory bound -----------------------------------------------------

  size_t total_pending_bytes() const {
    size_t bytes = 0;
    for (const auto& [partition, pair] : pairs) bytes += pair.pending_bytes();
    return bytes;
  }

  void set_paused(const std::string& topic, int32_t partition, bool pause) {
    kafka::PartitionList list(1);
    list.add(topic, partition);
    auto err = pause ? rd_kafka_pause_partitions(consumer->get(), list.get())
                     : rd_kafka_resume_partitions(consumer->get(), list.get());
    if (err) {
      log(std::string("cannot ") + (pause ? "pause " : "resume ") + topic + "[" + std::to_string(partition) +
          "]: " + rd_kafka_err2str(err));
      return;
    }
    if (pause) {
      paused.emplace(topic, partition);
      ++local.pauses;
    } else {
      paused.erase({topic, partition});
    }
  }

  // Makes librdkafka's pauses of a pair match what the pair asks for.
  void sync_paused(int32_t partition, const PairState& pair) {
    for (auto side : {Side::requests, Side::results}) {
      const auto& topic = side == Side::requests ? options.requests_topic : options.results_topic;
      if (pair.paused(side) != paused.contains({topic, partition})) set_paused(topic, partition, pair.paused(side));
    }
  }

  // Above the limit, pause in each pair the side whose entries wait for the
  // other (usually requests, when results lag); the other side is never
  // paused with it, keeps flowing and drains the pending entries (when the
  // roles swap, so do the pauses). Nothing is dropped, and a paused pair's
  // clock stands still.
  void enforce_memory_bound(int64_t wall_us) {
    const size_t bytes = total_pending_bytes();
    local.pending_bytes_high_water = std::max(local.pending_bytes_high_water, bytes);
    if (bytes > options.max_pending_bytes) {
      for (auto& [partition, pair] : pairs) {
        pair.pause_waiting_side(wall_us);
        sync_paused(partition, pair);
      }
    } else if (!paused.empty() && bytes < options.max_pending_bytes / 10 * 8) {
      for (auto& [partition, pair] : pairs) {
        pair.resume(wall_us);
        sync_paused(partition, pair);
      }
    }
  }

  // ---- commit and rebalance ---------------------------------------------

  // Offsets move only after every record decided so far is delivered, so a
  // committed offset never stands for a discrepancy that was not published.
  void flush_and_commit() {
    if (int left = producer.flush(30s); left > 0) {
      throw Failure(std::to_string(left) + " records to " + options.mismatches_topic + "/" + options.summary_topic +
                    "/" + options.dlq_topic +
                    " were not delivered within 30 s; offsets were not committed, so a restart re-decides them — "
                    "check the brokers");
    }
    if (delivery_failures > 0) {
      throw Failure("publishing failed (" + last_delivery_error +
                    "); offsets were not committed, so a restart re-decides them — check the brokers and topics");
    }
    kafka::PartitionList offsets(static_cast<int>(pairs.size() * 2));
    std::vector<std::pair<std::pair<std::string, int32_t>, int64_t>> staged;
    for (const auto& [partition, pair] : pairs) {
      for (auto side : {Side::requests, Side::results}) {
        const auto offset = pair.commit_offset(side);
        if (!offset) continue;
        const auto& topic = side == Side::requests ? options.requests_topic : options.results_topic;
        auto id = std::make_pair(topic, partition);
        if (auto it = last_committed.find(id); it != last_committed.end() && it->second == *offset) continue;
        offsets.add(topic, partition, *offset);
        staged.emplace_back(id, *offset);
      }
    }
    if (offsets.size() == 0) return;
    if (auto err = consumer->commit(offsets); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Not fatal: the records stay uncommitted and are re-decided after a
      // restart; dedup keeps the mismatches topic free of repeats.
      log(std::string("commit failed: ") + rd_kafka_err2str(err));
      return;
    }
    for (auto& [id, offset] : staged) last_committed[id] = offset;
  }

  // Record time (ms) from which the mismatches topic is read back. A restart
  // replays the requests from their committed offsets, and what was decided
  // for them was published after they were written: so the read-back starts a
  // window and a margin before the record time at the committed offset (or at
  // the start of the partition, for a group without commits) of the oldest
  // assigned partition — however long the comparator was down. Never later
  // than now − (2 × window + 5 min). --dedup-lookback, when set, overrides it.
  int64_t read_back_start_ms(const std::set<int32_t>& request_partitions, kafka::Consumer& reader, int64_t now_ms) {
    if (options.dedup_lookback.count() > 0) return now_ms - options.dedup_lookback.count();
    const int64_t margin_ms = (options.window + 5min).count();
    int64_t start_ms = now_ms - options.window.count() - margin_ms;
    if (request_partitions.empty()) return start_ms;
    kafka::PartitionList committed(static_cast<int>(request_partitions.size()));
    for (int32_t partition : request_partitions) committed.add(options.requests_topic, partition);
    if (auto err = rd_kafka_committed(consumer->get(), committed.get(), 10'000)) {
      throw Failure("cannot read the committed offsets of " + options.requests_topic + ": " + rd_kafka_err2str(err) +
                    " — without them a restart could publish discrepancies twice");
    }
    kafka::PartitionList probe(static_cast<int>(request_partitions.size()));
    std::set<int32_t> waiting;
    for (int i = 0; i < committed.size(); ++i) {
      const auto& entry = committed[i];
      int64_t low = 0, high = 0;
      if (auto err = rd_kafka_query_watermark_offsets(reader.get(), options.requests_topic.c_str(), entry.partition,
                                                      &low, &high, 10'000)) {
        throw Failure("cannot read the offsets of " + options.requests_topic + ": " + rd_kafka_err2str(err));
      }
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

  // Reads back what was already published for these request partitions, so a
  // restart or a new owner does not publish a discrepancy twice. Records of
  // request partition N are on mismatch partition N when the counts match;
  // otherwise every mismatch partition is read.
  void read_back_reported(const std::set<int32_t>& request_partitions) {
    std::set<int32_t> wanted;
    if (mismatches_copartitioned) {
      wanted = request_partitions;
    } else {
      for (int32_t p = 0; p < mismatch_partitions; ++p) wanted.insert(p);
    }
    if (wanted.empty()) return;
    kafka::Properties properties = options.kafka;
    properties.emplace_back("group.id", options.group + "-readback-" + options.comparator_id);
    properties.emplace_back("enable.auto.commit", "false");
    properties.emplace_back("enable.partition.eof", "false");
    kafka::Consumer reader(properties);
    const int64_t now_ms = wire::now_us() / 1000;
    const int64_t start_ms = read_back_start_ms(request_partitions, reader, now_ms);
    reported_retention_us = std::max(reported_retention_us, 2 * (now_ms - start_ms) * 1000);
    kafka::PartitionList query(static_cast<int>(wanted.size()));
    // A topic created moments ago may not have a known leader yet: retry the
    // transient errors for a while, since a skipped read-back would repeat
    // discrepancies.
    const auto lookup_deadline = Clock::now() + 20s;
    for (;;) {
      query = kafka::PartitionList(static_cast<int>(wanted.size()));
      for (int32_t partition : wanted) {
        query.add(options.mismatches_topic, partition, start_ms);
      }
      auto err = rd_kafka_offsets_for_times(reader.get(), query.get(), 10'000);
      for (int i = 0; i < query.size() && !err; ++i) err = query[i].err;
      if (!err) break;
      if (Clock::now() > lookup_deadline) {
        throw Failure("cannot look up offsets of " + options.mismatches_topic + " by time: " + rd_kafka_err2str(err) +
                      " — without them a restart could publish discrepancies twice");
      }
      std::this_thread::sleep_for(200ms);
    }
    kafka::PartitionList start(static_cast<int>(wanted.size()));
    std::map<int32_t, int64_t> end;
    for (int i = 0; i < query.size(); ++i) {
      const auto& entry = query[i];
      if (entry.offset < 0) continue;  // nothing published since the lookback
      int64_t low = 0, high = 0;
      if (auto err = rd_kafka_query_watermark_offsets(reader.get(), options.mismatches_topic.c_str(), entry.partition,
                                                      &low, &high, 10'000)) {
        throw Failure("cannot read the end of " + options.mismatches_topic + ": " + rd_kafka_err2str(err));
      }
      if (entry.offset >= high) continue;
      start.add(options.mismatches_topic, entry.partition, entry.offset);
      end[entry.partition] = high;
    }
    if (end.empty()) return;
    rd_kafka_assign(reader.get(), start.get());
    const auto deadline = Clock::now() + 60s;
    size_t read = 0;
    while (!end.empty()) {
      if (Clock::now() > deadline) {
        throw Failure("reading back " + options.mismatches_topic + " took over 60 s; restart to try again");
      }
      auto message = reader.poll(200ms);
      if (!message || message.error()) continue;
      ++read;
      if (auto record = wire::decode_mismatch(message.payload())) {
        if (reported.try_emplace(record->request_id).second) reported_order.emplace_back(wire::now_us(), record->request_id);
        reported[record->request_id].insert(reported_tag(record->kind, record->statement_index));
        if (!record->key.empty() && diverged_keys.insert(record->key).second) diverged_order.push_back(record->key);
      }
      if (auto it = end.find(message.partition()); it != end.end() && message.offset() + 1 >= it->second) end.erase(it);
    }
    rd_kafka_assign(reader.get(), nullptr);
    // Forget what is older than the lookback: it cannot be replayed any more.
    const int64_t horizon = wire::now_us() - reported_retention_us;
    while (!reported_order.empty() && reported_order.front().first < horizon) {
      reported.erase(reported_order.front().second);
      reported_order.pop_front();
    }
    log("read back " + std::to_string(read) + " published mismatches for dedup");
  }

  void on_rebalance(rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* list) {
    try {
      if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        std::set<int32_t> assigned;
        for (int i = 0; i < list->cnt; ++i) assigned.insert(list->elems[i].partition);
        read_back_reported(assigned);
        for (int32_t partition : assigned) pair_of(partition);
        log("assigned partition pairs: " + std::to_string(assigned.size()));
      } else {
        // Decide what the window already closed, publish, commit; what is still
        // pending is dropped here and replayed by the next owner.
        expire_all(wire::now_us());
        flush_and_commit();
        for (int i = 0; i < list->cnt; ++i) {
          pairs.erase(list->elems[i].partition);
          paused.erase({list->elems[i].topic, list->elems[i].partition});
          last_committed.erase({list->elems[i].topic, list->elems[i].partition});
        }
      }
    } catch (...) {
      if (!fatal) fatal = std::current_exception();
    }
    consumer->default_rebalance(event, list);
    if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      // Our pause bookkeeping starts empty for a new assignment; make sure no
      // pause from an earlier one survives in librdkafka.
      rd_kafka_resume_partitions(consumer->get(), list);
    }
  }

  // ---- periodic work ----------------------------------------------------

  void publish_summaries(int64_t wall_us) {
    if (requests_interval > 0 || !request_discrepancies_interval.empty()) {
      wire::Summary all_requests;
      all_requests.ts_us = wall_us;
      all_requests.comparator = options.comparator_id;
      all_requests.compared = requests_interval;  // fingerprint stays empty: the whole stream
      all_requests.discrepancies = std::move(request_discrepancies_interval);
      publish(options.summary_topic, -1, "", wire::encode(all_requests));
      requests_interval = 0;
      request_discrepancies_interval.clear();
    }
    for (auto& [fingerprint, stats] : fingerprints) {
      if (stats.compared_interval == 0 && stats.discrepancies_interval.empty()) continue;
      wire::Summary summary;
      summary.ts_us = wall_us;
      summary.comparator = options.comparator_id;
      summary.fingerprint = fingerprint;
      summary.normalized_sql = stats.normalized_sql;
      summary.compared = stats.compared_interval;
      summary.discrepancies = std::move(stats.discrepancies_interval);
      // Counts are this interval's; percentiles are since this instance
      // started, so the newest summary describes the whole distribution
      // (percentiles of separate intervals cannot be added up).
      summary.primary_latency = summarize(stats.primary_latency);
      summary.shadow_latency = summarize(stats.shadow_latency);
      publish(options.summary_topic, -1, fingerprint, wire::encode(summary));
      stats.compared_interval = 0;
      stats.discrepancies_interval.clear();
    }
    for (auto& regression : find_regressions(fingerprints, policy)) {
      auto& stats = fingerprints.at(regression.fingerprint);
      wire::Mismatch record;
      record.kind = "latency_regression";
      record.request_id = "latency_regression:" + regression.fingerprint;
      record.key = regression.fingerprint;  // not a request: the fingerprint is its consistency key
      record.ts_us = wall_us;
      record.fingerprint = regression.fingerprint;
      record.normalized_sql = stats.normalized_sql;
      record.latency_ratio = regression.ratio;
      record.plan = stats.latest_plan;
      record.primary = wire::StatementResult{};
      record.primary->latency_us = static_cast<int64_t>(regression.primary.p95_us);
      record.shadow = wire::StatementResult{};
      record.shadow->latency_us = static_cast<int64_t>(regression.shadow.p95_us);
      char ratio_text[96];
      std::snprintf(ratio_text, sizeof ratio_text, "p95 ratio %.2f vs baseline %.2f over %zu fingerprints",
                    regression.ratio, regression.baseline, regression.fingerprints_compared);
      record.detail = std::string(ratio_text) + "; primary " + describe(regression.primary) + "; shadow " +
                      describe(regression.shadow);
      publish(options.mismatches_topic, -1, record.request_id, wire::encode(record));
      ++local.mismatches_published;
      ++local.discrepancies[record.kind];
      ++request_discrepancies_interval[record.kind];
      discrepancies_total.find(record.kind)->second->Increment();
    }
  }

  void refresh_gauges(int64_t wall_us) {
    local.pending_requests = local.pending_results = 0;
    std::optional<int64_t> oldest;
    for (const auto& [partition, pair] : pairs) {
      local.pending_requests += pair.pending_requests();
      local.pending_results += pair.pending_results();
      if (auto ts = pair.oldest_pending_ts()) oldest = std::min(oldest.value_or(*ts), *ts);
    }
    local.pending_bytes = total_pending_bytes();
    const size_t entries = local.pending_requests + local.pending_results;
    local.bytes_per_pending_entry = entries ? static_cast<double>(local.pending_bytes) / static_cast<double>(entries) : 0;
    local.paused_partitions = paused.size();
    local.assigned_pairs = pairs.size();
    pending_requests_gauge->Set(static_cast<double>(local.pending_requests));
    pending_results_gauge->Set(static_cast<double>(local.pending_results));
    pending_bytes_gauge->Set(static_cast<double>(local.pending_bytes));
    bytes_per_entry_gauge->Set(local.bytes_per_pending_entry);
    oldest_age_gauge->Set(oldest ? static_cast<double>(wall_us - *oldest) / 1e6 : 0);
    paused_gauge->Set(static_cast<double>(paused.size()));
    std::lock_guard lock(stats_mutex);
    shared = local;
  }

  void rethrow_fatal() {
    if (fatal) std::rethrow_exception(fatal);
  }

  void run(const std::atomic<bool>& stop) {
    consumer = std::make_unique<kafka::Consumer>(
        consumer_properties(), [this](rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* list) {
          on_rebalance(event, list);
        });
    consumer->subscribe({options.requests_topic, options.results_topic});
    auto next_tick = Clock::now();
    auto next_commit = Clock::now() + options.commit_interval;
    auto next_summary = Clock::now() + options.summary_interval;
    int records_since_poll = 0;
    while (!stop.load()) {
      auto message = consumer->poll(100ms);
      rethrow_fatal();
      if (message) {
        if (message.error()) {
          if (message.error() != RD_KAFKA_RESP_ERR__PARTITION_EOF) log("consumer: " + message.error_text());
        } else {
          const int64_t wall_us = wire::now_us();
          if (message.topic() == options.requests_topic) {
            handle_request(message, wall_us);
          } else {
            handle_result(message, wall_us);
          }
          enforce_memory_bound(wall_us);
        }
      }
      // Delivery reports are served in batches: a poll per record costs more than the join.
      if (++records_since_poll >= 256) {
        producer.poll(0ms);
        records_since_poll = 0;
      }
      const auto now = Clock::now();
      if (now >= next_tick) {
        const int64_t wall_us = wire::now_us();
        expire_all(wall_us);
        enforce_memory_bound(wall_us);
        refresh_gauges(wall_us);
        next_tick = now + 200ms;
      }
      if (now >= next_summary) {
        publish_summaries(wire::now_us());
        next_summary = now + options.summary_interval;
      }
      if (now >= next_commit) {
        flush_and_commit();
        next_commit = now + options.commit_interval;
      }
    }
    publish_summaries(wire::now_us());
    consumer->close();  // the revoke decides, publishes and commits
    rethrow_fatal();
    producer.flush(30s);
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
