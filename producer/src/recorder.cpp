#include "shadowpipe/recorder.hpp"

#include "shadowpipe/instance.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/statement.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace shadowpipe::producer {

std::string_view to_string(DropReason reason) {
  switch (reason) {
    case DropReason::queue_full: return "queue_full";
    case DropReason::too_large: return "too_large";
    case DropReason::sampled_out: return "sampled_out";
    case DropReason::serialization_error: return "serialization_error";
    case DropReason::delivery_failed: return "delivery_failed";
    case DropReason::possibly_delivered: return "possibly_delivered";
  }
  return "unknown";
}

uint64_t Counters::dropped() const {
  uint64_t total = 0;
  for (auto count : dropped_by_reason) total += count;
  return total;
}

uint64_t Counters::pending() const {
  const uint64_t settled = published + dropped();
  return recorded > settled ? recorded - settled : 0;
}

kafka::Properties default_kafka_properties() {
  return {
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"compression.type", "lz4"},
      // The Java client's default partitioner: any producer of a key, in any
      // language, lands on the same partition, so per-key order holds.
      {"partitioner", "murmur2_random"},
      {"linger.ms", "5"},
      // The bounded queue: past either limit, produce() returns QUEUE_FULL
      // at once and the unit is dropped and counted.
      {"queue.buffering.max.messages", "100000"},
      {"queue.buffering.max.kbytes", "65536"},
      {"message.timeout.ms", "30000"},
  };
}

namespace {

uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

uint64_t random_seed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

double unit_interval(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

std::string text_or_empty(const char* text) { return text ? std::string(text) : std::string(); }

bool is_write(statement::Kind kind) { return kind == statement::Kind::write || kind == statement::Kind::ddl; }

// The Java client's murmur2 (org.apache.kafka.common.utils.Utils.murmur2),
// which librdkafka's murmur2_random partitioner reproduces.
uint32_t murmur2(std::string_view data) {
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  uint32_t h = 0x9747b28c ^ static_cast<uint32_t>(data.size());
  const size_t blocks = data.size() / 4;
  auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(data[i])); };
  for (size_t i = 0; i < blocks; ++i) {
    uint32_t k = byte(4 * i) | (byte(4 * i + 1) << 8) | (byte(4 * i + 2) << 16) | (byte(4 * i + 3) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const size_t tail = blocks * 4;
  switch (data.size() % 4) {
    case 3: h ^= byte(tail + 2) << 16; [[fallthrough]];
    case 2: h ^= byte(tail + 1) << 8; [[fallthrough]];
    case 1: h ^= byte(tail); h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

// The delivery-report opaque of a write unit's record (a read's is null; a
// gap record's is its GapTag).
char kWriteUnitTag;

}  // namespace

int32_t partition_of(std::string_view key, int partitions) {
  return partitions <= 0 ? -1 : static_cast<int32_t>((murmur2(key) & 0x7fffffff) % static_cast<uint32_t>(partitions));
}

std::string new_request_id() {
  // Per-thread generator: no lock on the application thread. Seeded once per
  // thread from the OS, so threads and processes draw different sequences.
  thread_local uint64_t state = random_seed();
  const uint64_t a = mix64(state += kGolden);
  const uint64_t b = mix64(state += kGolden);
  const uint64_t ms = static_cast<uint64_t>(wire::now_us() / 1000);
  std::array<uint8_t, 16> bytes{};
  for (int i = 0; i < 6; ++i) bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  bytes[6] = static_cast<uint8_t>(0x70 | ((a >> 8) & 0x0F));  // version 7
  bytes[7] = static_cast<uint8_t>(a);
  bytes[8] = static_cast<uint8_t>(0x80 | ((a >> 16) & 0x3F));  // RFC 9562 variant
  for (int i = 9; i < 16; ++i) bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(b >> (8 * (i - 9)));
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0xF]);
  }
  return out;
}

namespace detail {

// Prometheus mirrors of the atomic counters. The application thread touches
// only the atomics; the poller thread adds the deltas here.
struct Exported {
  prometheus::Counter* recorded = nullptr;
  prometheus::Counter* published = nullptr;
  std::array<prometheus::Counter*, kDropReasons.size()> dropped{};
  prometheus::Counter* rollbacks_discarded = nullptr;
  prometheus::Counter* abandoned = nullptr;
  prometheus::Gauge* pending = nullptr;
  prometheus::Counter* gaps_announced = nullptr;
  prometheus::Counter* gap_units_announced = nullptr;
  prometheus::Gauge* gap_units_pending = nullptr;
  Counters last;
};

struct RecorderState {
  explicit RecorderState(RecorderConfig given);
  ~RecorderState();

  RecorderConfig config;
  std::string source;
  statement::Analyzer analyzer;
  uint64_t seed;
  double max_rate;  // the highest rate any unit can get
  std::atomic<uint64_t> draws{0};

  std::atomic<uint64_t> recorded{0};
  std::atomic<uint64_t> published{0};
  std::array<std::atomic<uint64_t>, kDropReasons.size()> dropped{};
  std::atomic<uint64_t> rollbacks_discarded{0};
  std::atomic<uint64_t> abandoned{0};

  mutable std::mutex error_mutex;
  std::string last_error;

  std::unique_ptr<metrics::Endpoint> endpoint;
  std::mutex export_mutex;
  std::optional<Exported> exported;

  // Write units dropped (queue full, broker down) per partition of the
  // topic, announced downstream as one gap record per partition once Kafka
  // accepts records again (see announce_gaps).
  std::atomic<int> partitions{0};  // of config.topic, learned by the poller; 0: not known yet
  std::mutex gap_mutex;
  std::map<int32_t, uint64_t> dropped_writes;
  std::vector<uint32_t> unplaced_writes;  // key hashes of drops while the partition count was unknown
  std::atomic<uint64_t> gap_units_pending{0};
  std::atomic<bool> delivered_since_drop{false};
  std::atomic<uint64_t> gaps_announced{0};
  std::atomic<uint64_t> gap_units_announced{0};
  struct GapTag {
    int32_t partition;
    uint64_t units;
  };
  void drop_write(std::string_view key, int32_t partition);
  void place_unplaced();  // with gap_mutex held
  void announce_gaps();
  void refresh_partitions();
  std::chrono::steady_clock::time_point partitions_read{};

  std::atomic<bool> closed{false};
  std::atomic<bool> stop_polling{false};
  std::thread poller;  // serves delivery reports, refreshes the Prometheus mirrors
  void start_polling();
  void finish_polling();

  std::unique_ptr<kafka::Producer> producer;  // last member: destroyed first

  void drop(DropReason reason) { dropped[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed); }
  void note_error(std::string text) {
    std::lock_guard lock(error_mutex);
    last_error = std::move(text);
  }
  double draw() { return unit_interval(mix64(seed + kGolden * draws.fetch_add(1, std::memory_order_relaxed))); }
  double statement_rate(std::string_view fingerprint, statement::Kind kind) const {
    if (is_write(kind) && !config.sampling.sample_writes) return 1.0;
    auto found = config.sampling.by_fingerprint.find(fingerprint);
    return found != config.sampling.by_fingerprint.end() ? found->second : config.sampling.rate;
  }
  void on_delivery(const rd_kafka_message_t& message);
  Counters snapshot() const;
  void export_metrics();
  void settle_undelivered();
};

RecorderState::RecorderState(RecorderConfig given)
    : config(std::move(given)),
      source(config.source + "@" + host_name()),
      analyzer(config.analyzer_cache),
      seed(config.sampling.seed != 0 ? config.sampling.seed : random_seed()) {
  auto check_rate = [](double rate, const std::string& what) {
    if (!(rate >= 0.0 && rate <= 1.0)) {
      throw Failure("sampling rate " + std::to_string(rate) + " for " + what + " is outside 0..1");
    }
  };
  check_rate(config.sampling.rate, "all statements");
  max_rate = config.sampling.rate;
  for (const auto& [fingerprint, rate] : config.sampling.by_fingerprint) {
    check_rate(rate, "fingerprint " + fingerprint);
    max_rate = std::max(max_rate, rate);
  }
  if (!config.sampling.sample_writes) max_rate = 1.0;
  if (config.topic.empty()) throw Failure("the requests topic name is empty: give one with --topic");

  std::shared_ptr<prometheus::Registry> registry = config.registry;
  if (!registry && !config.metrics_bind.empty()) {
    endpoint = std::make_unique<metrics::Endpoint>(config.metrics_bind);
    registry = endpoint->shared_registry();
  }
  if (registry) {
    Exported out;
    auto& units = prometheus::BuildCounter()
                      .Name("shadowpipe_producer_units_total")
                      .Help("Units of work by outcome: recorded, then published or dropped by reason")
                      .Register(*registry);
    out.recorded = &units.Add({{"outcome", "recorded"}});
    out.published = &units.Add({{"outcome", "published"}});
    auto& dropped_family = prometheus::BuildCounter()
                               .Name("shadowpipe_producer_dropped_total")
                               .Help("Recorded units not published, by reason")
                               .Register(*registry);
    for (auto reason : kDropReasons) {
      out.dropped[static_cast<size_t>(reason)] = &dropped_family.Add({{"reason", std::string(to_string(reason))}});
    }
    auto& left_out = prometheus::BuildCounter()
                         .Name("shadowpipe_producer_units_left_out_total")
                         .Help("Units never handed over for publishing: rolled back (by policy) or abandoned")
                         .Register(*registry);
    out.rollbacks_discarded = &left_out.Add({{"why", "rollback_policy"}});
    out.abandoned = &left_out.Add({{"why", "abandoned"}});
    out.pending = &prometheus::BuildGauge()
                       .Name("shadowpipe_producer_pending")
                       .Help("Units enqueued whose delivery is not yet reported")
                       .Register(*registry)
                       .Add({});
    out.gaps_announced = &prometheus::BuildCounter()
                              .Name("shadowpipe_producer_gaps_announced_total")
                              .Help("Gap records published for dropped write units (one per partition and recovery)")
                              .Register(*registry)
                              .Add({});
    out.gap_units_announced = &prometheus::BuildCounter()
                                   .Name("shadowpipe_producer_gap_units_announced_total")
                                   .Help("Dropped write units announced by gap records")
                                   .Register(*registry)
                                   .Add({});
    out.gap_units_pending = &prometheus::BuildGauge()
                                 .Name("shadowpipe_producer_gap_units_pending")
                                 .Help("Dropped write units waiting for Kafka to accept their gap record")
                                 .Register(*registry)
                                 .Add({});
    exported = std::move(out);
  }

  kafka::Properties properties = default_kafka_properties();
  properties.insert(properties.end(), config.kafka.begin(), config.kafka.end());
  producer = std::make_unique<kafka::Producer>(
      properties, [this](const rd_kafka_message_t& message) { on_delivery(message); });
}

RecorderState::~RecorderState() {
  settle_undelivered();
  export_metrics();
}

void RecorderState::on_delivery(const rd_kafka_message_t& message) {
  const bool write = message._private == &kWriteUnitTag;
  if (message._private != nullptr && !write) {  // a gap record
    std::unique_ptr<GapTag> gap(static_cast<GapTag*>(message._private));
    if (message.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      gaps_announced.fetch_add(1, std::memory_order_relaxed);
      gap_units_announced.fetch_add(gap->units, std::memory_order_relaxed);
    } else {  // announced again later
      std::lock_guard lock(gap_mutex);
      dropped_writes[gap->partition] += gap->units;
      gap_units_pending.fetch_add(gap->units, std::memory_order_relaxed);
      delivered_since_drop.store(false, std::memory_order_relaxed);
    }
    return;
  }
  if (message.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    published.fetch_add(1, std::memory_order_relaxed);
    delivered_since_drop.store(true, std::memory_order_relaxed);
    return;
  }
  if (message.err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
    drop(DropReason::too_large);
  } else {
    // A record sent whose acknowledgement was lost may be in the topic all
    // the same: counted apart, so "failed" means not written.
    const bool maybe = rd_kafka_message_status(&message) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    drop(maybe ? DropReason::possibly_delivered : DropReason::delivery_failed);
    if (write) drop_write({static_cast<const char*>(message.key), message.key_len}, message.partition);
  }
  note_error(std::string("delivery to ") + config.topic + " failed: " + rd_kafka_err2str(message.err));
}

void RecorderState::drop_write(std::string_view key, int32_t partition) {
  constexpr size_t kMaxUnplaced = 1 << 20;
  const int count = partitions.load(std::memory_order_relaxed);
  if (partition < 0 && count > 0) partition = partition_of(key, count);
  std::lock_guard lock(gap_mutex);
  delivered_since_drop.store(false, std::memory_order_relaxed);
  if (partition >= 0) {
    ++dropped_writes[partition];
  } else if (unplaced_writes.size() < kMaxUnplaced) {
    unplaced_writes.push_back(murmur2(key) & 0x7fffffff);
  } else {
    // Never talked to the broker and a million write units dropped: the
    // rest cannot be placed; say so rather than announce a wrong partition.
    note_error("write units dropped before the topic's partition count was known: too many to place");
    return;
  }
  gap_units_pending.fetch_add(1, std::memory_order_relaxed);
}

void RecorderState::place_unplaced() {
  const int count = partitions.load(std::memory_order_relaxed);
  if (count <= 0) return;
  for (uint32_t hash : unplaced_writes) ++dropped_writes[static_cast<int32_t>(hash % static_cast<uint32_t>(count))];
  unplaced_writes.clear();
}

void RecorderState::refresh_partitions() {
  const auto now = std::chrono::steady_clock::now();
  const bool known = partitions.load(std::memory_order_relaxed) > 0;
  if (now - partitions_read < (known ? std::chrono::seconds(10) : std::chrono::seconds(1))) return;
  partitions_read = now;
  try {
    if (auto count = kafka::partition_count(producer->get(), config.topic, std::chrono::milliseconds(2000))) {
      partitions.store(*count, std::memory_order_relaxed);
    }
  } catch (const Failure&) {
    // The broker is not reachable: keep what was known, try again later.
  }
}

// Once Kafka accepts records again, one gap record per partition that lost
// write units, on that partition, announcing how many; the counts restart.
// A gap record that fails is added back and announced again later.
void RecorderState::announce_gaps() {
  if (gap_units_pending.load(std::memory_order_relaxed) == 0) return;
  if (!delivered_since_drop.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(gap_mutex);
  place_unplaced();
  for (auto it = dropped_writes.begin(); it != dropped_writes.end();) {
    const auto [partition, units] = *it;
    if (units == 0) {
      it = dropped_writes.erase(it);
      continue;
    }
    const wire::Gap gap = wire::producer_dropped_gap(source, partition, units);
    auto tag = std::make_unique<GapTag>(GapTag{partition, units});
    if (producer->produce(config.topic, partition, {}, wire::encode(gap), tag.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++it;  // kept: tried again at the next poll
      continue;
    }
    tag.release();  // owned by the delivery report
    gap_units_pending.fetch_sub(units, std::memory_order_relaxed);
    it = dropped_writes.erase(it);
  }
}

// What is still queued when the recorder goes away is purged; librdkafka then
// reports each purged record as failed, so the counters still add up.
void RecorderState::settle_undelivered() {
  if (!producer) return;
  rd_kafka_purge(producer->get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  producer->poll(std::chrono::milliseconds(0));
  // In-flight purges are reported once their requests return; bound the wait.
  for (int attempt = 0; attempt < 50 && producer->outstanding() > 0; ++attempt) {
    producer->poll(std::chrono::milliseconds(10));
  }
}

Counters RecorderState::snapshot() const {
  Counters out;
  // Settled outcomes first, recorded last: a concurrent recording can then
  // only make pending look larger, never negative.
  out.published = published.load(std::memory_order_relaxed);
  for (size_t i = 0; i < dropped.size(); ++i) out.dropped_by_reason[i] = dropped[i].load(std::memory_order_relaxed);
  out.rollbacks_discarded = rollbacks_discarded.load(std::memory_order_relaxed);
  out.abandoned = abandoned.load(std::memory_order_relaxed);
  out.gaps_announced = gaps_announced.load(std::memory_order_relaxed);
  out.gap_units_announced = gap_units_announced.load(std::memory_order_relaxed);
  out.gap_units_pending = gap_units_pending.load(std::memory_order_relaxed);
  out.recorded = recorded.load(std::memory_order_relaxed);
  return out;
}

void RecorderState::export_metrics() {
  std::lock_guard lock(export_mutex);
  if (!exported) return;
  const Counters now = snapshot();
  auto add = [](prometheus::Counter* counter, uint64_t current, uint64_t& last) {
    if (current > last) counter->Increment(static_cast<double>(current - last));
    last = current;
  };
  auto& last = exported->last;
  add(exported->recorded, now.recorded, last.recorded);
  add(exported->published, now.published, last.published);
  for (size_t i = 0; i < kDropReasons.size(); ++i) {
    add(exported->dropped[i], now.dropped_by_reason[i], last.dropped_by_reason[i]);
  }
  add(exported->rollbacks_discarded, now.rollbacks_discarded, last.rollbacks_discarded);
  add(exported->abandoned, now.abandoned, last.abandoned);
  exported->pending->Set(static_cast<double>(now.pending()));
  add(exported->gaps_announced, now.gaps_announced, last.gaps_announced);
  add(exported->gap_units_announced, now.gap_units_announced, last.gap_units_announced);
  exported->gap_units_pending->Set(static_cast<double>(now.gap_units_pending));
}

struct UnitState {
  std::shared_ptr<RecorderState> recorder;
  wire::Request request;
  double draw = 0;
  double rate = 0;              // the highest statement rate so far
  bool autocommit = false;      // one statement; its sampling is decided at add()
  bool unpublishable = false;   // a statement could not be fingerprinted
  bool oversized = false;       // a statement's text alone is over max_record_bytes
  bool sampled_out_early = false;
  bool search_path_given = false;
  bool writes = false;          // a statement writes (kind write or ddl): a drop is announced as a gap
};

}  // namespace detail

using detail::RecorderState;
using detail::UnitState;

namespace {

wire::StatementResult primary_result(const PGresult* result, const PGconn* conn,
                                     const digest::NormalizationRules& rules, int64_t latency_us) {
  wire::StatementResult out;
  out.latency_us = latency_us;
  if (result == nullptr) {
    out.status = wire::Status::error;
    out.message = conn ? text_or_empty(PQerrorMessage(conn)) : "the primary returned no result";
    return out;
  }
  switch (PQresultStatus(result)) {
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
      out.set_digest(digest::digest_result(result, rules));
      break;
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
    case PGRES_PIPELINE_SYNC: {
      out.set_digest(digest::digest_result(result, rules));
      const char* affected = PQcmdTuples(const_cast<PGresult*>(result));
      out.rows = (affected && *affected) ? std::strtoll(affected, nullptr, 10) : 0;
      break;
    }
    default:
      out.status = wire::Status::error;
      out.sqlstate = text_or_empty(PQresultErrorField(result, PG_DIAG_SQLSTATE));
      out.message = text_or_empty(PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY));
      break;
  }
  return out;
}

// Adds one statement; `result_of` builds the primary's result only when the
// unit may still be published, so a sampled-out read costs no digest.
template <class MakeResult>
void add_statement(UnitState& unit, std::string_view sql, std::span<const ParamView> params,
                   MakeResult&& result_of) {
  RecorderState& recorder = *unit.recorder;
  // A text that cannot fit in a record is dropped before it costs the
  // application a parse, a digest and an encoding.
  if (unit.oversized || sql.size() > recorder.config.max_record_bytes) {
    unit.oversized = true;
    return;
  }
  auto analysis = recorder.analyzer.analyze(sql);
  if (!analysis.ok()) {
    unit.unpublishable = true;
    recorder.note_error("a statement could not be fingerprinted: " + analysis.error().describe());
    return;
  }
  // The executor runs every unit in its own transaction: the application's
  // BEGIN / COMMIT are not statements of the unit. Savepoints and SET
  // CONSTRAINTS inside a transaction are: the executor replays them in order;
  // so is BEGIN or SET TRANSACTION with an isolation level, READ ONLY or DEFERRABLE.
  if (analysis->kind == statement::Kind::transaction_control &&
      (unit.autocommit ||
       (analysis->savepoint_command.empty() && !analysis->sets_constraints && !analysis->sets_transaction_mode()))) {
    return;
  }
  if (is_write(analysis->kind)) unit.writes = true;
  const double rate = recorder.statement_rate(analysis->fingerprint, analysis->kind);
  unit.rate = std::max(unit.rate, rate);
  // An autocommit unit's rate is final here; a transaction's can still rise
  // (a later write or fingerprint), but never above max_rate.
  if (unit.draw >= (unit.autocommit ? unit.rate : recorder.max_rate)) {
    unit.sampled_out_early = true;
    return;
  }
  if (unit.unpublishable) return;
  wire::Statement& statement = unit.request.statements.emplace_back();
  statement.sql.assign(sql);
  statement.params.reserve(params.size());
  for (const auto& param : params) {
    statement.params.push_back(param ? std::optional<std::string>(std::in_place, *param) : std::nullopt);
  }
  statement.fingerprint = analysis->fingerprint;
  statement.result = result_of(recorder.config.normalization.for_fingerprint(analysis->fingerprint));
}

void finish(UnitState& unit, wire::TxMode mode) {
  RecorderState& recorder = *unit.recorder;
  if (unit.request.statements.empty() && !unit.sampled_out_early && !unit.unpublishable && !unit.oversized) {
    return;  // nothing ran
  }
  if (mode == wire::TxMode::rollback && !recorder.config.publish_rollbacks) {
    recorder.rollbacks_discarded.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  recorder.recorded.fetch_add(1, std::memory_order_relaxed);
  if (unit.oversized) {
    recorder.drop(DropReason::too_large);
    return;
  }
  // Before sampling: an unanalyzable statement has no rate to sample by.
  if (unit.unpublishable) {
    recorder.drop(DropReason::serialization_error);
    return;
  }
  if (unit.draw >= unit.rate) {
    recorder.drop(DropReason::sampled_out);
    return;
  }
  if (unit.request.statements.size() > recorder.config.max_statements) {
    recorder.drop(DropReason::too_large);
    return;
  }
  if (recorder.closed.load(std::memory_order_relaxed)) {
    recorder.drop(DropReason::delivery_failed);  // the recorder is shutting down
    return;
  }
  wire::Request& request = unit.request;
  request.tx = mode;
  request.ts_us = wire::now_us();
  if (request.key.empty()) request.key = request.request_id;
  if (!unit.search_path_given && request.session.search_path.empty()) {
    request.session.search_path = recorder.config.default_search_path;
  }
  std::string payload;
  try {
    payload = wire::encode(request);
  } catch (const std::exception& error) {
    recorder.drop(DropReason::serialization_error);
    recorder.note_error(std::string("encoding a request failed: ") + error.what());
    return;
  }
  if (payload.size() > recorder.config.max_record_bytes) {
    recorder.drop(DropReason::too_large);
    return;
  }
  const auto err = recorder.producer->produce(recorder.config.topic, RD_KAFKA_PARTITION_UA, request.key, payload,
                                              unit.writes ? &kWriteUnitTag : nullptr);
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      recorder.drop(DropReason::queue_full);
      if (unit.writes) recorder.drop_write(request.key, -1);
      return;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: recorder.drop(DropReason::too_large); return;
    default:
      // Unknown topic, a fatal idempotence error: the record cannot be delivered.
      recorder.drop(DropReason::delivery_failed);
      if (unit.writes) recorder.drop_write(request.key, -1);
      recorder.note_error(std::string("enqueueing to ") + recorder.config.topic + " failed: " + rd_kafka_err2str(err));
      return;
  }
}

// Converts owned parameters to views without allocating per parameter.
std::vector<ParamView> views_of(const std::vector<std::optional<std::string>>& params) {
  std::vector<ParamView> views;
  views.reserve(params.size());
  for (const auto& param : params) views.push_back(param ? ParamView(*param) : std::nullopt);
  return views;
}

}  // namespace

// ---- Unit -------------------------------------------------------------------

Unit::Unit() noexcept = default;
Unit::Unit(std::unique_ptr<UnitState> state) noexcept : state_(std::move(state)) {}
Unit::Unit(Unit&&) noexcept = default;
Unit& Unit::operator=(Unit&& other) noexcept {
  if (this != &other) {
    if (state_) state_->recorder->abandoned.fetch_add(1, std::memory_order_relaxed);
    state_ = std::move(other.state_);
  }
  return *this;
}
Unit::~Unit() {
  if (state_) state_->recorder->abandoned.fetch_add(1, std::memory_order_relaxed);
}

void Unit::set_key(std::string_view key) noexcept {
  if (!state_) return;
  try {
    state_->request.key.assign(key);
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::set_search_path(std::string_view search_path) noexcept {
  if (!state_) return;
  try {
    state_->request.session.search_path.assign(search_path);
    state_->search_path_given = true;
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::set_session(const wire::Session& session) noexcept {
  if (!state_) return;
  try {
    state_->request.session = session;
    state_->search_path_given = !session.search_path.empty();
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::add(std::string_view sql, std::span<const ParamView> params, const PGresult* result,
               int64_t latency_us) noexcept {
  if (!state_) return;
  try {
    add_statement(*state_, sql, params, [&](const digest::NormalizationRules& rules) {
      return primary_result(result, nullptr, rules, latency_us);
    });
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::add(std::string_view sql, const std::vector<std::optional<std::string>>& params, const PGresult* result,
               int64_t latency_us) noexcept {
  if (!state_) return;
  try {
    add(sql, views_of(params), result, latency_us);
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::add_error(std::string_view sql, std::span<const ParamView> params, std::string_view sqlstate,
                     std::string_view message, int64_t latency_us) noexcept {
  if (!state_) return;
  try {
    add_statement(*state_, sql, params, [&](const digest::NormalizationRules&) {
      wire::StatementResult out;
      out.status = wire::Status::error;
      out.sqlstate.assign(sqlstate);
      out.message.assign(message);
      out.latency_us = latency_us;
      return out;
    });
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::commit() noexcept {
  if (!state_) return;
  auto state = std::move(state_);
  try {
    finish(*state, state->autocommit ? wire::TxMode::autocommit : wire::TxMode::commit);
  } catch (...) {
    state->recorder->drop(DropReason::serialization_error);
  }
}

void Unit::rollback() noexcept {
  if (!state_) return;
  auto state = std::move(state_);
  try {
    finish(*state, wire::TxMode::rollback);
  } catch (...) {
    state->recorder->drop(DropReason::serialization_error);
  }
}

// ---- Recorder ---------------------------------------------------------------

void detail::RecorderState::start_polling() {
  poller = std::thread([this] {
    while (!stop_polling.load(std::memory_order_relaxed)) {
      producer->poll(std::chrono::milliseconds(100));
      refresh_partitions();
      announce_gaps();
      export_metrics();
    }
  });
}

void detail::RecorderState::finish_polling() {
  stop_polling.store(true, std::memory_order_relaxed);
  rd_kafka_yield(producer->get());  // wakes a poll() that is waiting
  if (poller.joinable()) poller.join();
}

Recorder::Recorder(RecorderConfig config) : state_(std::make_shared<RecorderState>(std::move(config))) {
  state_->start_polling();
}

Recorder::~Recorder() {
  state_->finish_polling();
  state_->closed.store(true, std::memory_order_relaxed);
  state_->producer->flush(state_->config.flush_timeout);
  // Units still open in other threads keep the state alive; whatever they
  // publish from now on is counted as delivery_failed (see finish()).
  state_->settle_undelivered();
  state_->export_metrics();
}

Unit Recorder::begin(const PGconn* conn, std::string_view key) noexcept {
  try {
    auto unit = std::make_unique<UnitState>();
    unit->recorder = state_;
    unit->draw = state_->draw();
    unit->rate = 0;
    wire::Request& request = unit->request;
    request.request_id = new_request_id();
    request.source = state_->source;
    request.key.assign(key);
    if (conn != nullptr) {
      // Reported by the server at connect and on every change; reading them
      // never sends a query.
      request.session.time_zone = text_or_empty(PQparameterStatus(conn, "TimeZone"));
      request.session.date_style = text_or_empty(PQparameterStatus(conn, "DateStyle"));
      request.session.interval_style = text_or_empty(PQparameterStatus(conn, "IntervalStyle"));
      request.session.search_path = text_or_empty(PQparameterStatus(conn, "search_path"));  // PostgreSQL 18+
    }
    return Unit(std::move(unit));
  } catch (...) {
    // Out of memory: the application goes on; this unit is not recorded.
    state_->recorded.fetch_add(1, std::memory_order_relaxed);
    state_->drop(DropReason::serialization_error);
    return Unit();
  }
}

void Recorder::record(const PGconn* conn, std::string_view key, std::string_view sql,
                      std::span<const ParamView> params, const PGresult* result, int64_t latency_us) noexcept {
  Unit unit = begin(conn, key);
  if (!unit) return;
  unit.state_->autocommit = true;
  try {
    add_statement(*unit.state_, sql, params, [&](const digest::NormalizationRules& rules) {
      return primary_result(result, conn, rules, latency_us);
    });
  } catch (...) {
    unit.state_->unpublishable = true;
  }
  unit.commit();
}

void Recorder::record(const PGconn* conn, std::string_view key, std::string_view sql,
                      const std::vector<std::optional<std::string>>& params, const PGresult* result,
                      int64_t latency_us) noexcept {
  try {
    record(conn, key, sql, views_of(params), result, latency_us);
  } catch (...) {
    state_->recorded.fetch_add(1, std::memory_order_relaxed);
    state_->drop(DropReason::serialization_error);
  }
}

Counters Recorder::counters() const noexcept { return state_->snapshot(); }

int Recorder::flush(std::chrono::milliseconds deadline) noexcept { return state_->producer->flush(deadline); }

std::string Recorder::last_error() const noexcept {
  try {
    std::lock_guard lock(state_->error_mutex);
    return state_->last_error;
  } catch (...) {
    return {};
  }
}

}  // namespace shadowpipe::producer
