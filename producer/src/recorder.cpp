#include "recorder_state.hpp"

#include "shadowpipe/instance.hpp"

#include <random>

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
      // Each batch costs a wake-up of librdkafka's broker thread, a
      // ProduceRequest per partition and the broker's handling of it; at
      // 5 ms that was about 12 us of the broker thread's and 20-40 us of the
      // broker's CPU per unit (bench/loadgen_overhead.sh, docs/BENCHMARKS.md).
      // 20 ms cuts both to about a third for at most 15 ms more from commit
      // to the shadow; the application never waits for it.
      {"linger.ms", "20"},
      // The bounded queue: past either limit, produce() returns QUEUE_FULL
      // at once and the unit is dropped and counted.
      {"queue.buffering.max.messages", "100000"},
      {"queue.buffering.max.kbytes", "65536"},
      {"message.timeout.ms", "30000"},
  };
}

namespace detail {

uint64_t random_seed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

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

}  // namespace detail

using detail::kGolden;
using detail::mix64;
using detail::murmur2;
using detail::random_seed;
using detail::RecorderState;
using detail::text_or_empty;
using detail::UnitState;

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
    detail::add_statement(*state_, sql, params, [&](const digest::NormalizationRules& rules) {
      return detail::primary_result(result, nullptr, rules, latency_us);
    });
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::add(std::string_view sql, const std::vector<std::optional<std::string>>& params, const PGresult* result,
               int64_t latency_us) noexcept {
  if (!state_) return;
  try {
    add(sql, detail::views_of(params), result, latency_us);
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::add_error(std::string_view sql, std::span<const ParamView> params, std::string_view sqlstate,
                     std::string_view message, int64_t latency_us) noexcept {
  if (!state_) return;
  try {
    detail::add_statement(*state_, sql, params, [&](const digest::NormalizationRules&) {
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

void Unit::add_result(std::string_view sql, std::span<const ParamView> params, wire::StatementResult result) noexcept {
  if (!state_) return;
  try {
    detail::add_statement(*state_, sql, params, [&](const digest::NormalizationRules&) { return std::move(result); });
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::add_result(std::string_view sql, std::span<const ParamView> params, wire::StatementResult result,
                      wire::Binding binding, std::optional<std::string> copy_data) noexcept {
  if (!state_) return;
  try {
    auto& statements = state_->request.statements;
    const size_t before = statements.size();
    detail::add_statement(*state_, sql, params, [&](const digest::NormalizationRules&) { return std::move(result); });
    if (statements.size() > before) {  // not sampled out
      statements.back().binding = std::move(binding);
      statements.back().copy_data = std::move(copy_data);
    }
  } catch (...) {
    state_->unpublishable = true;
  }
}

void Unit::commit() noexcept {
  if (!state_) return;
  auto state = std::move(state_);
  try {
    detail::finish_unit(*state, state->autocommit ? wire::TxMode::autocommit : wire::TxMode::commit);
  } catch (...) {
    state->recorder->drop(DropReason::serialization_error);
  }
}

void Unit::rollback() noexcept {
  if (!state_) return;
  auto state = std::move(state_);
  try {
    detail::finish_unit(*state, wire::TxMode::rollback);
  } catch (...) {
    state->recorder->drop(DropReason::serialization_error);
  }
}

// ---- Recorder ---------------------------------------------------------------

Recorder::Recorder(RecorderConfig config) : state_(std::make_shared<RecorderState>(std::move(config))) {
  state_->start_polling();
}

Recorder::~Recorder() {
  state_->finish_polling();
  state_->closed.store(true, std::memory_order_relaxed);
  state_->producer->flush(state_->config.flush_timeout);
  // Units still open in other threads keep the state alive; whatever they
  // publish from now on is counted as delivery_failed (see finish_unit()).
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

Unit Recorder::begin(const wire::Session& session, std::string_view key, bool autocommit) noexcept {
  Unit unit = begin(nullptr, key);
  if (!unit) return unit;
  unit.set_session(session);
  unit.state_->autocommit = autocommit;
  return unit;
}

void Recorder::record(const PGconn* conn, std::string_view key, std::string_view sql,
                      std::span<const ParamView> params, const PGresult* result, int64_t latency_us) noexcept {
  Unit unit = begin(conn, key);
  if (!unit) return;
  unit.state_->autocommit = true;
  try {
    detail::add_statement(*unit.state_, sql, params, [&](const digest::NormalizationRules& rules) {
      return detail::primary_result(result, conn, rules, latency_us);
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
    record(conn, key, sql, detail::views_of(params), result, latency_us);
  } catch (...) {
    state_->recorded.fetch_add(1, std::memory_order_relaxed);
    state_->drop(DropReason::serialization_error);
  }
}

void Recorder::announce_dropped_write(std::string_view key) noexcept {
  try {
    state_->drop_write(key, -1);
  } catch (...) {
    state_->note_error("a dropped write unit could not be noted for its gap record (out of memory)");
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
