// Which Kafka consumer offset is safe to commit per partition: never past a
// unit that is not applied, nor past a record (result or dead letter) that
// Kafka has not acknowledged. The logged copies below that offset can then be
// deleted from shadowpipe.results_log. Thread-safe: workers add, librdkafka's
// delivery callback acknowledges, the main thread commits.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>

namespace shadowpipe::executor {

class DeliveryLedger {
 public:
  // A partition was assigned; next_to_apply is its shadowpipe.applied offset.
  void track(int32_t partition, int64_t next_to_apply);
  void forget(int32_t partition);
  // A record for source offset `offset` is being published.
  void publishing(int32_t partition, int64_t offset);
  // The unit(s) below next_to_apply are applied (their records already
  // announced with publishing()).
  void applied(int32_t partition, int64_t next_to_apply);
  // Kafka acknowledged the record for `offset`.
  void delivered(int32_t partition, int64_t offset);
  // Per tracked partition: the lowest undelivered offset, else the next
  // offset to apply.
  std::map<int32_t, int64_t> committable() const;
  // The same for one partition; -1 when it is not tracked. Also the progress
  // stamp of a record produced now (every record announced for an offset
  // below it was acknowledged).
  int64_t committable(int32_t partition) const;
  size_t undelivered() const;

 private:
  struct Partition {
    int64_t next_to_apply = 0;
    std::multiset<int64_t> undelivered;  // multiset: a record re-published before its first ack
  };
  mutable std::mutex mutex_;
  std::map<int32_t, Partition> partitions_;
};

}  // namespace shadowpipe::executor
