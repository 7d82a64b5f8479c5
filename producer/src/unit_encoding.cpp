#include "recorder_state.hpp"

#include "shadowpipe/pg_result.hpp"

namespace shadowpipe::producer::detail {

wire::StatementResult primary_result(const PGresult* result, const PGconn* conn,
                                     const digest::NormalizationRules& rules, int64_t latency_us) {
  wire::StatementResult out;
  if (result == nullptr) {
    out.status = wire::Status::error;
    out.message = conn ? text_or_empty(PQerrorMessage(conn)) : "the primary returned no result";
  } else {
    out = pg::statement_result(result, rules);  // as the executor converts the shadow's
  }
  out.latency_us = latency_us;
  return out;
}

namespace {
constexpr size_t kKeptPayloadCapacity = 1 << 20;
}  // namespace

void finish_unit(UnitState& unit, wire::TxMode mode) {
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
  // One buffer per thread, kept between units: encoding does not allocate
  // (librdkafka copies the bytes at produce). A rare huge record is not kept.
  thread_local std::string payload;
  if (payload.capacity() > kKeptPayloadCapacity) std::string().swap(payload);
  try {
    wire::encode_into(request, payload);
  } catch (const std::exception& error) {
    recorder.drop(DropReason::serialization_error);
    recorder.note_error(std::string("encoding a request failed: ") + error.what());
    return;
  }
  if (payload.size() > recorder.config.max_record_bytes) {
    recorder.drop(DropReason::too_large);
    return;
  }
  const auto err = recorder.producer->produce(recorder.topic.get(), RD_KAFKA_PARTITION_UA, request.key, payload,
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

std::vector<ParamView> views_of(const std::vector<std::optional<std::string>>& params) {
  std::vector<ParamView> views;
  views.reserve(params.size());
  for (const auto& param : params) views.push_back(param ? ParamView(*param) : std::nullopt);
  return views;
}

}  // namespace shadowpipe::producer::detail
