// The recorder's shared state and the helpers its parts share (private to
// producer/src). The parts: recorder.cpp (the C++ API: Recorder, Unit,
// request ids), unit_encoding.cpp (a unit's statements into a request
// record, and its hand-over to Kafka), publisher.cpp (the queue's delivery
// reports, gap records, the poller thread, the Prometheus mirrors).
#pragma once

#include "shadowpipe/recorder.hpp"

#include "shadowpipe/metrics.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/statement.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

namespace shadowpipe::producer::detail {

inline uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
inline constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

uint64_t random_seed();

inline double unit_interval(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

inline std::string text_or_empty(const char* text) { return text ? std::string(text) : std::string(); }

inline bool is_write(statement::Kind kind) {
  return kind == statement::Kind::write || kind == statement::Kind::ddl;
}

// The Java client's murmur2 (org.apache.kafka.common.utils.Utils.murmur2),
// which librdkafka's murmur2_random partitioner reproduces.
uint32_t murmur2(std::string_view data);

// The delivery-report opaque of a write unit's record (a read's is null; a
// gap record's is its GapTag).
inline char kWriteUnitTag;

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

  std::unique_ptr<kafka::Producer> producer;  // destroyed before the rest, after its topic handle
  kafka::TopicPtr topic;                      // config.topic's handle: units are produced through it

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

// The primary's result of one statement, from its PGresult (null: the
// statement failed without one; `conn` then says why).
wire::StatementResult primary_result(const PGresult* result, const PGconn* conn,
                                     const digest::NormalizationRules& rules, int64_t latency_us);

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
  // Shared, not copied: the cached analysis is read in place.
  const auto analyzed = recorder.analyzer.analyze_shared(sql);
  if (!analyzed.ok()) {
    unit.unpublishable = true;
    recorder.note_error("a statement could not be fingerprinted: " + analyzed.error().describe());
    return;
  }
  const statement::Analysis& analysis = **analyzed;
  // The executor runs every unit in its own transaction: the application's
  // BEGIN / COMMIT are not statements of the unit. Savepoints and SET
  // CONSTRAINTS inside a transaction are: the executor replays them in order;
  // so is BEGIN or SET TRANSACTION with an isolation level, READ ONLY or DEFERRABLE.
  if (analysis.kind == statement::Kind::transaction_control &&
      (unit.autocommit ||
       (analysis.savepoint_command.empty() && !analysis.sets_constraints && !analysis.sets_transaction_mode()))) {
    return;
  }
  if (is_write(analysis.kind)) unit.writes = true;
  const double rate = recorder.statement_rate(analysis.fingerprint, analysis.kind);
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
  statement.fingerprint = analysis.fingerprint;
  statement.result = result_of(recorder.config.normalization.for_fingerprint(analysis.fingerprint));
}

// Ends the unit: counts it, samples it, encodes it and hands it to Kafka, or
// counts why not (DropReason).
void finish_unit(UnitState& unit, wire::TxMode mode);

// Converts owned parameters to views without allocating per parameter.
std::vector<ParamView> views_of(const std::vector<std::optional<std::string>>& params);

}  // namespace shadowpipe::producer::detail
