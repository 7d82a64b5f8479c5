#include "shadow_executor/shared.hpp"

#include <chrono>
#include <iostream>

namespace shadowpipe::executor {

using std::chrono::milliseconds;

void log(const std::string& line) { std::cerr << "shadow-executor: " << line << '\n'; }

namespace {

// The progress stamp: `,"published_below":N` spliced before the closing
// brace of an encoded record (readers ignore member order). The logged
// payload is encoded before the stamp is known, and a republished record
// needs a fresh one, so it is added at produce time.
std::string stamp_member(int64_t published_below) {
  return ",\"published_below\":" + std::to_string(published_below);
}

std::string with_stamp(std::string_view payload, const std::string& stamp) {
  std::string out;
  out.reserve(payload.size() + stamp.size());
  out.append(payload.substr(0, payload.size() - 1));
  out.append(stamp);
  out.push_back('}');
  return out;
}

std::string without_stamp(std::string_view payload, size_t stamp_bytes) {
  if (stamp_bytes == 0 || payload.size() < stamp_bytes + 1) return std::string(payload);
  std::string out(payload.substr(0, payload.size() - 1 - stamp_bytes));
  out.push_back('}');
  return out;
}

}  // namespace

std::string with_refusal(const std::string& dead_letter, const std::string& refusal) {
  return refusal.empty() ? dead_letter : dead_letter + '\n' + refusal;
}

void Shared::publish(const std::string& topic, int32_t target_partition, int32_t source_partition,
                     int64_t source_offset, std::string_view key, std::string_view payload) {
  ledger.publishing(source_partition, source_offset);
  auto tag = std::make_unique<DeliveryTag>(DeliveryTag{topic, target_partition, source_partition, source_offset});
  std::string stamped;
  const bool stamp = topic == options.results_topic && payload.size() >= 2 && payload.back() == '}';
  for (;;) {
    if (stamp) {
      // Read again on every attempt: a stamp may only grow meanwhile.
      const std::string member = stamp_member(ledger.committable(source_partition));
      stamped = with_stamp(payload, member);
      tag->stamp_bytes = member.size();
    }
    const auto err = producer->produce(topic, target_partition, key, stamp ? std::string_view(stamped) : payload,
                                       tag.get());
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      tag.release();  // owned by the delivery report now
      return;
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      metrics.delivery_failures.Increment();
      if (produce_streak.failed()) {
        log("cannot produce to " + topic + "[" + std::to_string(target_partition) + "]: " + rd_kafka_err2str(err) +
            " (kept in shadowpipe.results_log, retried; logged once until a record is delivered)");
      }
      std::lock_guard lock(failed_mutex);
      failed.push_back(FailedDelivery{std::move(tag), std::string(key), std::string(payload)});
      return;
    }
    if (shutting_down.load()) {
      log("the producer's queue is full at shutdown: " + topic + "[" + std::to_string(target_partition) +
          "] record of offset " + std::to_string(source_offset) +
          " not sent (kept in shadowpipe.results_log, re-published by the next owner)");
      return;
    }
    producer->poll(milliseconds(5));
  }
}

void Shared::publish_logged(const LoggedRecord& record, int32_t partition) {
  if (record.destination == Destination::results) {
    publish(options.results_topic, partition, partition, record.source_offset, record.key, record.payload);
    return;
  }
  const std::string_view payload = record.payload;
  const size_t split = payload.find('\n');
  publish(options.dlq_topic, RD_KAFKA_PARTITION_UA, partition, record.source_offset, record.key,
          payload.substr(0, split));
  if (split != std::string_view::npos) {
    publish(options.results_topic, partition, partition, record.source_offset, record.key, payload.substr(split + 1));
  }
}

void Shared::on_delivery(const rd_kafka_message_t& message) {
  std::unique_ptr<DeliveryTag> tag(static_cast<DeliveryTag*>(message._private));
  if (!tag) return;
  if (message.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ledger.delivered(tag->source_partition, tag->source_offset);
    produce_streak.recovered("producing");
    return;
  }
  metrics.delivery_failures.Increment();
  const size_t stamp_bytes = tag->stamp_bytes;
  std::lock_guard lock(failed_mutex);
  failed.push_back(FailedDelivery{
      std::move(tag), std::string(static_cast<const char*>(message.key), message.key_len),
      without_stamp({static_cast<const char*>(message.payload), message.len}, stamp_bytes)});
}

void Shared::retry_failed_deliveries() {
  std::vector<FailedDelivery> retry;
  {
    std::lock_guard lock(failed_mutex);
    retry.swap(failed);
  }
  for (auto& entry : retry) {
    // The ledger still counts the first attempt as undelivered; the retry
    // adds a second entry, then the first one is acknowledged away. In
    // that order: the other way round the committable offset (and the
    // progress stamp of a record produced meanwhile) would briefly pass
    // this undelivered record.
    publish(entry.tag->topic, entry.tag->target_partition, entry.tag->source_partition, entry.tag->source_offset,
            entry.key, entry.payload);
    ledger.delivered(entry.tag->source_partition, entry.tag->source_offset);
  }
}

}  // namespace shadowpipe::executor
