// The Kafka shell of the comparator: one consumer over both topics (range
// assignor), a PairState per owned partition pair, the Decider, and a
// transactional publisher that commits the decisions with the offsets.
//
// Threads. The consumer loop (the thread of run()) polls and hands each
// record to the RecordWorker that owns its partition pair; a worker decodes,
// joins (its pairs' PairStates are touched by it alone), classifies and
// publishes. With --workers 1 there are no workers: the loop handles each
// record itself, as it always did. What the workers share is locked: the
// Decider (decider_mutex) and the producer's publish (publish_mutex);
// prometheus metrics are thread-safe; counters are per lane. Everything else
// — the pairs map, every PairState, the commit positions, flow control, the
// transaction commit, rebalances, rewinds — is done by the loop only at a
// quiescent point: quiesce() hands over what is staged and waits until every
// worker is idle, so every record polled before it was handled, and no
// worker runs until the loop hands over again. A commit therefore sees
// exactly what the single-threaded loop saw between two records: the
// decisions published in the transaction are those of the records below the
// offsets it commits, and the exactly-once rule of pending.hpp holds as is.
#include "comparator/service.hpp"

#include "comparator/config.hpp"
#include "comparator/decider.hpp"
#include "comparator/flow_control.hpp"
#include "comparator/metrics.hpp"
#include "comparator/pending.hpp"
#include "comparator/publisher.hpp"
#include "comparator/readback.hpp"
#include "comparator/record_worker.hpp"
#include "comparator/topic_layout.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/wire.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

namespace shadowpipe::comparator {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// One write per line: workers log too.
void log(const std::string& line) { std::cerr << ("shadow-comparator: " + line + "\n") << std::flush; }

unsigned resolve_workers(unsigned asked) {
  if (asked > 0) return asked;
  return std::clamp(std::thread::hardware_concurrency(), 1u, 2u);
}

// Records handed to a worker at once: large enough that the hand-over costs
// little per record, small enough that a quiescent point comes soon.
constexpr size_t kBatchRecords = 256;
// Bytes assumed for a pending entry before any was measured (see dispatch()).
constexpr size_t kFirstEntryBytesGuess = 64 * 1024;

// The counters of Stats that handling records adds to (the rest are gauges
// the loop sets).
void add_counters(Stats& into, const Stats& from) {
  into.pairs += from.pairs;
  into.shadow_missing += from.shadow_missing;
  into.never_compared += from.never_compared;
  into.duplicates += from.duplicates;
  into.dead_letters += from.dead_letters;
  into.orphan_results += from.orphan_results;
  into.republish_suppressed += from.republish_suppressed;
  into.mismatches_published += from.mismatches_published;
  for (const auto& [kind, count] : from.discrepancies) into.discrepancies[kind] += count;
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
  TopicLayout layout;
  FlowControl flow;
  Decider decider;
  std::map<int32_t, PairState> pairs;
  StallWatch stall_watch;
  // What handling records needs of its own: one lane per worker (or one for
  // the loop with --workers 1).
  struct Lane {
    // Decoded into again for every request, so the statements, SQL and
    // parameter buffers are reused instead of allocated per record.
    wire::Request decoded_request;
    wire::ShadowResult decoded_result;  // the same, for results
    Stats counts;  // only the counters (add_counters); summed into stats() at quiescent points
  };
  std::vector<std::unique_ptr<Lane>> lanes;
  std::vector<std::unique_ptr<RecordWorker>> workers;  // empty with --workers 1
  std::vector<std::vector<kafka::Message>> staged;     // per worker, polled and not handed over yet
  std::map<int32_t, size_t> worker_of;                 // partition pair -> worker (and lane); set when quiescent
  std::mutex decider_mutex;
  std::mutex publish_mutex;
  // For the memory bound between quiescent points (dispatch()): the pending
  // bytes as the workers left them, the largest growth one record caused,
  // and the records handed out and not handled yet.
  std::atomic<int64_t> pending_bytes_now{0};
  std::atomic<size_t> largest_entry_bytes{0};  // 0: none measured yet
  std::atomic<size_t> unhandled_records{0};
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
  // commit anything, and must not reach members already destroyed. It is
  // closed before it is released: close() hands the revoke of what it still
  // holds to on_rebalance, which applies it through `consumer`, and
  // unique_ptr::reset() empties the pointer before it deletes — a close left
  // to the destructor called through null (SIGSEGV in place of the error).
  ~Impl() {
    abandoned = true;
    for (auto& worker : workers) worker->stop();  // their messages go before the consumer
    staged.clear();
    if (consumer) consumer->close();
    consumer.reset();
  }

  // ---- publishing -------------------------------------------------------

  void publish(const std::string& topic, int32_t partition, std::string_view key, const std::string& payload) {
    std::lock_guard lock(publish_mutex);
    publisher.publish(topic, partition, key, payload);
  }

  void publish_decision(Lane& lane, int32_t partition, int64_t request_offset, Decision decision) {
    for (auto& record : decision.publish) {
      publish(options.mismatches_topic, layout.mismatches_copartitioned ? partition : -1, record.request_id,
              wire::encode(record));
      ++lane.counts.mismatches_published;
      ++lane.counts.discrepancies[record.kind];
      metrics.discrepancy(record.kind);
    }
    lane.counts.republish_suppressed += decision.suppressed;
    // Not by zero: the counter is shared by the workers, and a write bounces its cache line.
    if (decision.suppressed) metrics.republish_suppressed_total->Increment(static_cast<double>(decision.suppressed));
    if (decision.tally.request) pairs.at(partition).hold(request_offset, std::move(decision.tally));
  }

  void dead_letter(Lane& lane, const Error& error, const kafka::Message& message) {
    auto record = wire::make_dead_letter(error, consumer_name, message.topic(), message.partition(), message.offset(),
                                         message.payload());
    publish(options.dlq_topic, -1, message.key(), wire::encode(record));
    ++lane.counts.dead_letters;
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

  // Created only by the loop when quiescent (dispatch(), rebalance, rewind):
  // the map's shape never changes while a worker reads it.
  PairState& pair_at(int32_t partition) { return pairs.at(partition); }

  // wall_us: when the record that decided these was taken up (a clock read
  // per record, not one more per decision).
  void after_add(Lane& lane, int32_t partition, PairState::Added& added, int64_t wall_us) {
    if (added.outcome == PairState::Outcome::duplicate) {
      ++lane.counts.duplicates;
      metrics.duplicates_total->Increment();
    } else if (added.joined) {
      ++lane.counts.pairs;
      metrics.pairs_total->Increment();
      metrics.decided(wall_us - added.joined->request.ts_us);
      Decision decision;
      {
        std::lock_guard lock(decider_mutex);
        decision = decider.decide(*added.joined);
      }
      publish_decision(lane, partition, added.joined->request.offset, std::move(decision));
    }
    for (auto& missing : added.missing) {
      ++(missing.results_lost ? lane.counts.never_compared : lane.counts.shadow_missing);
      metrics.decided(wall_us - missing.request.ts_us);
      Decision decision;
      {
        std::lock_guard lock(decider_mutex);
        decision = missing.results_lost ? decider.decide_never_compared(missing, options.results_topic, partition)
                                        : decider.decide_missing(missing);
      }
      publish_decision(lane, partition, missing.request.offset, std::move(decision));
    }
    lane.counts.orphan_results += added.orphan_results;
    if (added.orphan_results) metrics.orphan_results_total->Increment(static_cast<double>(added.orphan_results));
  }

  // A gap record (on either topic) is decided on arrival.
  bool handle_gap(Lane& lane, const kafka::Message& message, Side side, int64_t wall_us) {
    if (!wire::is_gap_record(message.payload())) return false;
    auto gap = wire::decode_gap(message.payload());
    if (!gap) return false;
    auto& pair = pair_at(message.partition());
    PairState::Added added;
    if (side == Side::requests) {
      pair.consumed(side, message.offset(), wall_us);
    } else {
      // The executor passed the lost offsets: requests waiting on them are missing.
      added = pair.progress(gap->to_offset, message.offset(), wall_us, gap->from_offset);
    }
    log("gap on " + std::string(message.topic()) + "[" + std::to_string(message.partition()) + "]: " +
        std::to_string(gap->write_units) + " write units never applied (" + gap->reason + ")");
    Decision decision;
    {
      std::lock_guard lock(decider_mutex);
      decision = decider.decide_gap(*gap, message.topic(), message.offset());
    }
    publish_decision(lane, message.partition(), message.offset(), std::move(decision));
    after_add(lane, message.partition(), added, wall_us);
    return true;
  }

  void handle_request(Lane& lane, const kafka::Message& message, int64_t wall_us) {
    auto& pair = pair_at(message.partition());
    decide_requests_lost_before(lane, pair, message, wall_us);
    if (auto decoded = wire::decode_request_into(message.payload(), lane.decoded_request); !decoded) {
      if (handle_gap(lane, message, Side::requests, wall_us)) return;
      dead_letter(lane, decoded.error(), message);
      pair.consumed(Side::requests, message.offset(), wall_us);
      return;
    }
    auto& request = lane.decoded_request;
    Result<void> registered;
    {
      std::lock_guard lock(decider_mutex);
      registered = decider.register_fingerprints(request.statements);
    }
    if (!registered) {
      dead_letter(lane, registered.error(), message);
      pair.consumed(Side::requests, message.offset(), wall_us);
      // Its shadow result, when it comes, is for a request decided here.
      pair.mark_decided(request.request_id, wall_us);
      return;
    }
    const auto take = pair.joins_on_arrival(Side::requests, request.request_id) ? Take::move : Take::copy;
    auto added = pair.add_request(std::move(request.request_id),
                                  request_side(request, message.offset(), options.include_params, take), wall_us);
    after_add(lane, message.partition(), added, wall_us);
    if (take == Take::move && added.joined) give_back(std::move(added.joined->request.statements), request);
  }

  void handle_result(Lane& lane, const kafka::Message& message, int64_t wall_us) {
    auto& pair = pair_at(message.partition());
    note_results_lost_before(pair, message);
    auto decoded = wire::decode_result_into(message.payload(), lane.decoded_result);
    if (!decoded) {
      if (handle_gap(lane, message, Side::results, wall_us)) return;
      dead_letter(lane, decoded.error(), message);
      pair.consumed(Side::results, message.offset(), wall_us);
      return;
    }
    auto& result = lane.decoded_result;
    for (auto& statement : result.statements) {
      if (statement.plan && !statement.fingerprint.empty()) {
        std::lock_guard lock(decider_mutex);
        decider.note_plan(statement.fingerprint, std::move(*statement.plan));
      }
    }
    const auto take = pair.joins_on_arrival(Side::results, result.request_id) ? Take::move : Take::copy;
    auto added = pair.add_result(std::move(result.request_id),
                                 result_side(result, message.offset(), message.partition(), take), wall_us);
    after_add(lane, message.partition(), added, wall_us);
    if (take == Take::move && added.joined) give_back(std::move(added.joined->result.statements), result);
  }

  // Offsets of `side`'s partition that retention deleted before this group
  // decided them: a jump past the offset the partition should continue from
  // (the one after the last record read, else the group's committed offset)
  // to where Kafka's data now starts. Offsets skipped that Kafka still keeps
  // are transaction markers or aborted records, not lost ones.
  std::optional<LostOffsets> lost_before(const PairState& pair, Side side, const kafka::Message& message) {
    const auto expected = pair.expected_offset(side);
    if (!expected || message.offset() <= *expected) return std::nullopt;
    // A broker that does not answer is waited out for a minute (the record
    // waits with it); past that the comparator stops with the reason and
    // its successor finds the same jump from the committed offsets.
    const int64_t kept_from = kafka::log_start_offset(consumer->get(), std::string(message.topic()), message.partition(), 60s);
    if (kept_from <= *expected) return std::nullopt;
    return LostOffsets{*expected, std::min(kept_from, message.offset())};
  }

  // Requests that retention deleted before this group decided them were
  // never compared: one comparison_gap (the verdict fails on it).
  void decide_requests_lost_before(Lane& lane, const PairState& pair, const kafka::Message& message, int64_t wall_us) {
    const auto lost = lost_before(pair, Side::requests, message);
    if (!lost) return;
    const int32_t partition = message.partition();
    log("requests " + std::to_string(lost->from) + ".." + std::to_string(lost->to - 1) + " of " +
        options.requests_topic + "[" + std::to_string(partition) +
        "] were deleted by retention before a comparator decided them: never compared");
    Decision decision;
    {
      std::lock_guard lock(decider_mutex);
      decision = decider.decide_lost_requests(options.requests_topic, partition, lost->from, lost->to, wall_us);
    }
    publish_decision(lane, partition, message.offset(), std::move(decision));
  }

  // Results that retention deleted before this group decided them leave
  // their requests uncompared: the pair reports each such request, once the
  // executor is shown to have passed it, as a comparison_gap rather than
  // blaming the executor with shadow_missing.
  void note_results_lost_before(PairState& pair, const kafka::Message& message) {
    const auto lost = lost_before(pair, Side::results, message);
    if (!lost) return;
    log("shadow results " + std::to_string(lost->from) + ".." + std::to_string(lost->to - 1) + " of " +
        options.results_topic + "[" + std::to_string(message.partition()) +
        "] were deleted by retention before this group finished with them: requests still waiting for them are "
        "never compared");
    pair.results_lost(lost->from, lost->to);
  }

  void handle(Lane& lane, const kafka::Message& message) {
    const int64_t wall_us = wire::now_us();
    if (message.topic() == options.requests_topic) {
      handle_request(lane, message, wall_us);
    } else {
      handle_result(lane, message, wall_us);
    }
  }

  // On a worker's thread: also tells the loop how the pending bytes moved.
  void handle_on_worker(Lane& lane, const kafka::Message& message) {
    const auto& pair = pair_at(message.partition());
    const size_t before = pair.pending_bytes();
    handle(lane, message);
    const size_t after = pair.pending_bytes();
    pending_bytes_now.fetch_add(static_cast<int64_t>(after) - static_cast<int64_t>(before));
    if (after > before) {
      size_t largest = largest_entry_bytes.load();
      while (after - before > largest && !largest_entry_bytes.compare_exchange_weak(largest, after - before)) {
      }
    }
    unhandled_records.fetch_sub(1);
  }

  // ---- handing records to the workers -----------------------------------

  void start_workers(unsigned count) {
    for (unsigned i = 0; i < count; ++i) lanes.push_back(std::make_unique<Lane>());
    if (count < 2) {
      log("records are handled on the consumer's thread (--workers 1)");
      return;
    }
    log("records are handled by " + std::to_string(count) + " workers, each owning its partition pairs");
    staged.resize(count);
    for (unsigned i = 0; i < count; ++i) {
      workers.push_back(std::make_unique<RecordWorker>(
          [this, lane = lanes[i].get()](kafka::Message& message) { handle_on_worker(*lane, message); }));
    }
  }

  void hand_over(size_t worker) {
    if (staged[worker].empty()) return;
    workers[worker]->hand_over(std::exchange(staged[worker], {}));
  }

  // Every record polled so far is handled and no worker runs until the next
  // hand-over: the loop may read and change the pairs, commit, rebalance.
  void quiesce() {
    for (size_t i = 0; i < workers.size(); ++i) hand_over(i);
    for (auto& worker : workers) worker->wait_idle();
    pending_bytes_now = static_cast<int64_t>(total_pending_bytes(pairs));
  }

  // Pairs go to workers in turn by partition number, so each worker has its
  // share of whatever this instance was assigned. Only when quiescent.
  void assign_workers() {
    worker_of.clear();
    size_t next = 0;
    for (const auto& [partition, pair] : pairs) worker_of[partition] = next++ % lanes.size();
  }

  void dispatch(kafka::Message message) {
    auto owner = worker_of.find(message.partition());
    if (owner == worker_of.end()) {  // a pair not assigned yet: created while no worker runs
      quiesce();
      pair_of(message.partition());
      assign_workers();
      owner = worker_of.find(message.partition());
    }
    if (workers.empty()) {
      handle(*lanes.front(), message);
      enforce_memory_bound();
      return;
    }
    // The memory bound checks after every record, as the single-threaded
    // loop does, once the records in flight could take the pending bytes
    // past the point where flow control pauses: then each record waits for
    // the one before it to be handled and judged.
    const int64_t now = pending_bytes_now.load();
    local.pending_bytes_high_water = std::max(local.pending_bytes_high_water, static_cast<size_t>(std::max<int64_t>(now, 0)));
    const size_t in_flight = unhandled_records.load() + 1;
    const size_t largest = largest_entry_bytes.load();
    const size_t per_record = largest > 0 ? largest : kFirstEntryBytesGuess;
    if (static_cast<size_t>(std::max<int64_t>(now, 0)) + in_flight * per_record > flow.pausing_above()) {
      quiesce();
      enforce_memory_bound();
    }
    auto& batch = staged[owner->second];
    batch.push_back(std::move(message));
    unhandled_records.fetch_add(1);
    if (batch.size() >= kBatchRecords) hand_over(owner->second);
  }

  bool anything_staged() const {
    return std::any_of(staged.begin(), staged.end(), [](const auto& batch) { return !batch.empty(); });
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
      publish(options.summary_topic, -1, summary.fingerprint, wire::encode(summary));
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
  // and read again from the committed offsets. Stopping, nothing is read
  // again, but the decisions are forgotten all the same: the pairs' commit
  // positions cover requests whose decision records were aborted, and the
  // last commits (after the loop, and the revoke's in close()) run in a new,
  // healthy transaction that would commit those offsets without the records.
  // The next owner decides them from the committed offsets.
  void rewind() {
    rewind_needed = false;
    if (stop->load()) {
      pairs.clear();
      assign_workers();
      return;
    }
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
    note_starts(owned);  // the committed offsets (BEGINNING, negative, where there were none)
    assign_workers();
    log("transaction aborted: decisions since the last commit are redone from the committed offsets");
  }

  // Each partition continues from the group's committed offset: a record
  // past it reveals requests or results deleted before anyone decided them.
  void note_starts(const kafka::PartitionList& committed) {
    for (int i = 0; i < committed.size(); ++i) {
      const auto& entry = committed[i];
      if (entry.offset < 0) continue;
      pairs.at(entry.partition).starts_at(entry.topic == options.requests_topic ? Side::requests : Side::results,
                                          entry.offset);
    }
  }

  void on_rebalance(rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* list) {
    if (abandoned) {
      consumer->default_rebalance(event, list);
      return;
    }
    try {
      quiesce();  // what was polled before the rebalance is handled first, as the loop alone did
      if (event == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        std::set<int32_t> assigned;
        for (int i = 0; i < list->cnt; ++i) assigned.insert(list->elems[i].partition);
        read_back_reported({options, layout.mismatches_copartitioned, layout.mismatch_partitions}, consumer->get(), assigned, decider);
        kafka::PartitionList committed(static_cast<int>(assigned.size() * 2));
        for (int32_t partition : assigned) {
          pair_of(partition);
          committed.add(options.requests_topic, partition);
          committed.add(options.results_topic, partition);
        }
        kafka::read_committed(consumer->get(), committed, 30s);
        note_starts(committed);
        assign_workers();
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
        assign_workers();
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
    local.committed_transactions = publisher.committed_transactions();
    metrics.refresh(local, oldest ? static_cast<double>(wall_us - *oldest) / 1e6 : 0);
    Stats snapshot = local;
    for (const auto& lane : lanes) add_counters(snapshot, lane->counts);
    std::lock_guard lock(stats_mutex);
    shared = std::move(snapshot);
  }

  void publish_regressions() {
    for (auto& record : decider.regressions(wire::now_us())) {
      publish(options.mismatches_topic, -1, record.request_id, wire::encode(record));
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
    start_workers(resolve_workers(options.workers));
    consumer = std::make_unique<kafka::Consumer>(
        consumer_properties(options), [this](rd_kafka_resp_err_t event, rd_kafka_topic_partition_list_t* list) {
          on_rebalance(event, list);
        });
    consumer->subscribe({options.requests_topic, options.results_topic});
    // Flow control and the gauges, at a quiescent point. With workers, a
    // quiescent point leaves a worker idle while the other drains its queue,
    // so it comes once a second, with the commit's; pauses need no tick then
    // (dispatch() judges the bound before each record near it), only resumes
    // wait for it.
    const auto tick_interval = workers.empty() ? 200ms : 1000ms;
    auto next_tick = Clock::now();
    auto next_commit = Clock::now() + options.commit_interval;
    auto next_regression_check = Clock::now() + options.summary_interval;
    std::string last_consumer_error;
    while (!stop->load()) {
      // While records wait to be handed over, only what is already fetched
      // is taken; when none is, the workers get what waits.
      auto message = consumer->poll(anything_staged() ? 0ms : 100ms);
      rethrow_fatal();
      if (!message) {
        for (size_t i = 0; i < workers.size(); ++i) hand_over(i);
      } else {
        if (message.error()) {
          // Transient (a broker away, a leader moving): logged once per streak, never fatal.
          if (message.error() != RD_KAFKA_RESP_ERR__PARTITION_EOF && message.error_text() != last_consumer_error) {
            last_consumer_error = message.error_text();
            log("consumer: " + last_consumer_error);
          }
        } else {
          last_consumer_error.clear();
          dispatch(std::move(message));
        }
      }
      const auto now = Clock::now();
      const bool commit_due = now >= next_commit;
      const bool regression_check_due = now >= next_regression_check;
      // With workers the tick's work rides on the commit's quiescent point
      // rather than draining the workers once more.
      if (now >= next_tick || (!workers.empty() && (commit_due || regression_check_due))) {
        quiesce();
        enforce_memory_bound();
        refresh_gauges(wire::now_us());
        next_tick = now + tick_interval;
      }
      if (regression_check_due) {
        quiesce();
        publish_regressions();
        next_regression_check = now + options.summary_interval;
      }
      if (commit_due) {
        quiesce();
        commit_cycle(wire::now_us());
        if (rewind_needed) rewind();
        next_commit = Clock::now() + options.commit_interval;
      }
    }
    quiesce();
    publish_regressions();  // judged over every request decided, before the last commit
    commit_cycle(wire::now_us());
    consumer->close();  // the revoke commits what is left
    for (auto& worker : workers) worker->stop();
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
