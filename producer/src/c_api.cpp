// The C API over shadowpipe::producer::Recorder. Every function catches
// everything: no exception crosses into C.
#include "shadowpipe/producer.h"

#include "shadowpipe/recorder.hpp"
#include "shadowpipe/result.hpp"

#include <charconv>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

struct shadowpipe_config {
  shadowpipe::producer::RecorderConfig config;
};

struct shadowpipe_recorder {
  explicit shadowpipe_recorder(shadowpipe::producer::RecorderConfig config) : recorder(std::move(config)) {}
  shadowpipe::producer::Recorder recorder;
};

struct shadowpipe_unit {
  shadowpipe::producer::Unit unit;
};

namespace {

using shadowpipe::producer::ParamView;

std::vector<ParamView> param_views(int nparams, const char* const* params) {
  std::vector<ParamView> views;
  if (nparams <= 0 || params == nullptr) return views;
  views.reserve(static_cast<size_t>(nparams));
  for (int i = 0; i < nparams; ++i) views.push_back(params[i] ? ParamView(params[i]) : std::nullopt);
  return views;
}

std::string_view view_or_empty(const char* text) { return text ? std::string_view(text) : std::string_view(); }

bool parse_bool(std::string_view text, bool& out) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return out = true, true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return out = false, true;
  return false;
}

bool parse_rate(std::string_view text, double& out) {
  try {
    size_t used = 0;
    const double value = std::stod(std::string(text), &used);
    if (used != text.size() || !(value >= 0.0 && value <= 1.0)) return false;
    out = value;
    return true;
  } catch (...) {
    return false;
  }
}

template <class Number>
bool parse_number(std::string_view text, Number& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

shadowpipe_status set_option(shadowpipe::producer::RecorderConfig& config, std::string_view name,
                             std::string_view value) {
  constexpr std::string_view kKafka = "kafka.";
  constexpr std::string_view kFingerprintRate = "sample.rate.";
  if (name.starts_with(kKafka) && name.size() > kKafka.size()) {
    config.kafka.emplace_back(std::string(name.substr(kKafka.size())), std::string(value));
    return SHADOWPIPE_OK;
  }
  if (name.starts_with(kFingerprintRate) && name.size() > kFingerprintRate.size()) {
    double rate = 0;
    if (!parse_rate(value, rate)) return SHADOWPIPE_INVALID_ARGUMENT;
    config.sampling.by_fingerprint[std::string(name.substr(kFingerprintRate.size()))] = rate;
    return SHADOWPIPE_OK;
  }
  bool ok = true;
  if (name == "topic") {
    ok = !value.empty();
    config.topic = value;
  } else if (name == "source") {
    config.source = value;
  } else if (name == "sample.rate") {
    ok = parse_rate(value, config.sampling.rate);
  } else if (name == "sample.writes") {
    ok = parse_bool(value, config.sampling.sample_writes);
  } else if (name == "sample.seed") {
    ok = parse_number(value, config.sampling.seed);
  } else if (name == "publish.rollbacks") {
    ok = parse_bool(value, config.publish_rollbacks);
  } else if (name == "search_path") {
    config.default_search_path = value;
  } else if (name == "max.record.bytes") {
    ok = parse_number(value, config.max_record_bytes) && config.max_record_bytes > 0;
  } else if (name == "flush.timeout.ms") {
    int64_t ms = 0;
    ok = parse_number(value, ms) && ms >= 0;
    config.flush_timeout = std::chrono::milliseconds(ms);
  } else if (name == "metrics.bind") {
    config.metrics_bind = value;
  } else if (name == "normalization.file") {
    config.normalization = shadowpipe::digest::NormalizationConfig::load_file(std::string(value));
  } else {
    return SHADOWPIPE_INVALID_ARGUMENT;
  }
  return ok ? SHADOWPIPE_OK : SHADOWPIPE_INVALID_ARGUMENT;
}

void write_error(char* errbuf, size_t size, std::string_view text) {
  if (errbuf == nullptr || size == 0) return;
  const size_t length = std::min(size - 1, text.size());
  std::memcpy(errbuf, text.data(), length);
  errbuf[length] = '\0';
}

}  // namespace

extern "C" {

const char* shadowpipe_status_text(shadowpipe_status status) {
  switch (status) {
    case SHADOWPIPE_OK: return "ok";
    case SHADOWPIPE_INVALID_ARGUMENT: return "invalid argument";
    case SHADOWPIPE_CONFIG_REFUSED: return "configuration refused";
    case SHADOWPIPE_OUT_OF_MEMORY: return "out of memory";
    case SHADOWPIPE_INTERNAL_ERROR: return "internal error";
  }
  return "unknown status";
}

shadowpipe_config* shadowpipe_config_new(void) { return new (std::nothrow) shadowpipe_config(); }

void shadowpipe_config_destroy(shadowpipe_config* config) { delete config; }

shadowpipe_status shadowpipe_config_set(shadowpipe_config* config, const char* name, const char* value) {
  if (config == nullptr || name == nullptr || value == nullptr) return SHADOWPIPE_INVALID_ARGUMENT;
  try {
    return set_option(config->config, name, value);
  } catch (const std::bad_alloc&) {
    return SHADOWPIPE_OUT_OF_MEMORY;
  } catch (const shadowpipe::Failure&) {
    return SHADOWPIPE_INVALID_ARGUMENT;  // e.g. an unreadable normalization file
  } catch (...) {
    return SHADOWPIPE_INTERNAL_ERROR;
  }
}

shadowpipe_status shadowpipe_recorder_new(const shadowpipe_config* config, shadowpipe_recorder** out, char* errbuf,
                                          size_t errbuf_size) {
  if (out == nullptr) return SHADOWPIPE_INVALID_ARGUMENT;
  *out = nullptr;
  if (config == nullptr) {
    write_error(errbuf, errbuf_size, "no configuration given");
    return SHADOWPIPE_INVALID_ARGUMENT;
  }
  try {
    *out = new shadowpipe_recorder(config->config);
    write_error(errbuf, errbuf_size, "");
    return SHADOWPIPE_OK;
  } catch (const std::bad_alloc&) {
    write_error(errbuf, errbuf_size, "out of memory");
    return SHADOWPIPE_OUT_OF_MEMORY;
  } catch (const shadowpipe::Failure& failure) {
    write_error(errbuf, errbuf_size, failure.what());
    return SHADOWPIPE_CONFIG_REFUSED;
  } catch (const std::exception& error) {
    write_error(errbuf, errbuf_size, error.what());
    return SHADOWPIPE_INTERNAL_ERROR;
  } catch (...) {
    write_error(errbuf, errbuf_size, "unknown error");
    return SHADOWPIPE_INTERNAL_ERROR;
  }
}

void shadowpipe_recorder_destroy(shadowpipe_recorder* recorder) { delete recorder; }  // ~Recorder is noexcept

int shadowpipe_recorder_flush(shadowpipe_recorder* recorder, int timeout_ms) {
  if (recorder == nullptr) return -1;
  return recorder->recorder.flush(std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms));
}

shadowpipe_status shadowpipe_recorder_counters(const shadowpipe_recorder* recorder, shadowpipe_counters* out) {
  if (recorder == nullptr || out == nullptr) return SHADOWPIPE_INVALID_ARGUMENT;
  using shadowpipe::producer::DropReason;
  const auto counters = recorder->recorder.counters();
  out->recorded = counters.recorded;
  out->published = counters.published;
  out->pending = counters.pending();
  out->dropped_queue_full = counters.dropped(DropReason::queue_full);
  out->dropped_too_large = counters.dropped(DropReason::too_large);
  out->dropped_sampled_out = counters.dropped(DropReason::sampled_out);
  out->dropped_serialization_error = counters.dropped(DropReason::serialization_error);
  out->dropped_delivery_failed = counters.dropped(DropReason::delivery_failed);
  out->rollbacks_discarded = counters.rollbacks_discarded;
  out->abandoned = counters.abandoned;
  out->dropped_possibly_delivered = counters.dropped(DropReason::possibly_delivered);
  out->gaps_announced = counters.gaps_announced;
  out->gap_units_announced = counters.gap_units_announced;
  out->gap_units_pending = counters.gap_units_pending;
  return SHADOWPIPE_OK;
}

void shadowpipe_record(shadowpipe_recorder* recorder, const PGconn* conn, const char* key, const char* sql,
                       int nparams, const char* const* params, const PGresult* result, int64_t latency_us) {
  if (recorder == nullptr || sql == nullptr) return;
  try {
    const auto views = param_views(nparams, params);
    recorder->recorder.record(conn, view_or_empty(key), sql, views, result, latency_us);
  } catch (...) {
    // Only the parameter copy can fail here (out of memory): the unit is lost
    // before the recorder saw it, and the application must go on regardless.
  }
}

shadowpipe_unit* shadowpipe_unit_begin(shadowpipe_recorder* recorder, const PGconn* conn, const char* key) {
  if (recorder == nullptr) return nullptr;
  auto* unit = new (std::nothrow) shadowpipe_unit();
  if (unit == nullptr) return nullptr;
  unit->unit = recorder->recorder.begin(conn, view_or_empty(key));
  return unit;
}

void shadowpipe_unit_set_search_path(shadowpipe_unit* unit, const char* search_path) {
  if (unit == nullptr || search_path == nullptr) return;
  unit->unit.set_search_path(search_path);
}

void shadowpipe_unit_set_session(shadowpipe_unit* unit, const char* time_zone, const char* date_style,
                                 const char* interval_style, const char* search_path) {
  if (unit == nullptr) return;
  try {
    shadowpipe::wire::Session session;
    session.time_zone = view_or_empty(time_zone);
    session.date_style = view_or_empty(date_style);
    session.interval_style = view_or_empty(interval_style);
    session.search_path = view_or_empty(search_path);
    unit->unit.set_session(session);
  } catch (...) {
  }
}

void shadowpipe_unit_add(shadowpipe_unit* unit, const char* sql, int nparams, const char* const* params,
                         const PGresult* result, int64_t latency_us) {
  if (unit == nullptr || sql == nullptr) return;
  try {
    unit->unit.add(sql, param_views(nparams, params), result, latency_us);
  } catch (...) {
    // The parameter copy failed (out of memory): a unit missing a statement
    // must not be published, so it is given up and counted as abandoned.
    unit->unit = shadowpipe::producer::Unit();
  }
}

void shadowpipe_unit_add_error(shadowpipe_unit* unit, const char* sql, int nparams, const char* const* params,
                               const char* sqlstate, const char* message, int64_t latency_us) {
  if (unit == nullptr || sql == nullptr) return;
  try {
    unit->unit.add_error(sql, param_views(nparams, params), view_or_empty(sqlstate), view_or_empty(message),
                         latency_us);
  } catch (...) {
    unit->unit = shadowpipe::producer::Unit();  // as in shadowpipe_unit_add
  }
}

void shadowpipe_unit_commit(shadowpipe_unit* unit) {
  if (unit == nullptr) return;
  unit->unit.commit();
  delete unit;
}

void shadowpipe_unit_rollback(shadowpipe_unit* unit) {
  if (unit == nullptr) return;
  unit->unit.rollback();
  delete unit;
}

void shadowpipe_unit_abandon(shadowpipe_unit* unit) { delete unit; }

}  // extern "C"
