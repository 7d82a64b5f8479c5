#include "shadow_executor/broker_queries.hpp"

#include "shadow_executor/shared.hpp"

#include "shadowpipe/result.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace shadowpipe::executor {

bool permanent_kafka_error(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return true;
    default:
      return false;
  }
}

void BrokerQueries::until_answered(const std::string& what,
                                   const std::function<rd_kafka_resp_err_t()>& attempt) const {
  using std::chrono::milliseconds;
  auto backoff = milliseconds(100);
  Streak streak;
  for (;;) {
    const rd_kafka_resp_err_t err = attempt();
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      streak.recovered(what);
      return;
    }
    if (permanent_kafka_error(err)) throw Failure(what + ": " + rd_kafka_err2str(err));
    if (streak.failed()) {
      log(what + ": " + rd_kafka_err2str(err) + "; retrying with backoff until the broker answers (logged once)");
    }
    if (stopping_()) throw StopRequested{};
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, milliseconds(2000));
  }
}

int64_t BrokerQueries::committed(int32_t partition) const {
  int64_t offset = RD_KAFKA_OFFSET_INVALID;
  until_answered("reading the committed offset of " + where(partition), [&] {
    kafka::PartitionList list(1);
    list.add(topic_, partition);
    auto err = rd_kafka_committed(consumer_.get(), list.get(), 5000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list[0].err;
    offset = list[0].offset;
    return err;
  });
  return offset;
}

int64_t BrokerQueries::low_watermark(int32_t partition) const {
  int64_t low = 0, high = 0;
  until_answered("reading the offsets of " + where(partition), [&] {
    return rd_kafka_query_watermark_offsets(consumer_.get(), topic_.c_str(), partition, &low, &high, 5000);
  });
  return low;
}

}  // namespace shadowpipe::executor
