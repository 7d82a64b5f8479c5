// What the executor asks the broker about a partition of the requests topic
// when it starts it: the group's committed offset and the earliest offset
// retention left. Right after a broker starts or a topic is created, and
// while all brokers are down, such requests fail (unknown topic or
// partition, not leader, coordinator loading, timed out) for a while: that
// is waited out with backoff, logged once per streak. Errors a retry cannot
// cure (authorization) are fatal.
#pragma once

#include "shadowpipe/kafka.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace shadowpipe::executor {

// Thrown out of a wait for the broker when the executor stops meanwhile.
struct StopRequested {};

// Kafka errors that a retry will not cure (credentials, ACLs): fatal.
bool permanent_kafka_error(rd_kafka_resp_err_t err);

class BrokerQueries {
 public:
  BrokerQueries(const kafka::Consumer& consumer, std::string topic, std::function<bool()> stopping)
      : consumer_(consumer), topic_(std::move(topic)), stopping_(std::move(stopping)) {}

  // The group's committed offset, or RD_KAFKA_OFFSET_INVALID when it has none.
  int64_t committed(int32_t partition) const;
  // The earliest offset the broker still holds.
  int64_t low_watermark(int32_t partition) const;

 private:
  // Repeats `attempt` until it is answered; throws Failure for a permanent
  // error, StopRequested when stopping.
  void until_answered(const std::string& what, const std::function<rd_kafka_resp_err_t()>& attempt) const;
  std::string where(int32_t partition) const { return topic_ + "[" + std::to_string(partition) + "]"; }

  const kafka::Consumer& consumer_;
  std::string topic_;
  std::function<bool()> stopping_;
};

}  // namespace shadowpipe::executor
