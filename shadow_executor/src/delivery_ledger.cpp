#include "shadow_executor/delivery_ledger.hpp"

#include <algorithm>

namespace shadowpipe::executor {

void DeliveryLedger::track(int32_t partition, int64_t next_to_apply) {
  std::lock_guard lock(mutex_);
  partitions_[partition] = Partition{next_to_apply, {}};
}

void DeliveryLedger::forget(int32_t partition) {
  std::lock_guard lock(mutex_);
  partitions_.erase(partition);
}

void DeliveryLedger::publishing(int32_t partition, int64_t offset) {
  std::lock_guard lock(mutex_);
  auto found = partitions_.find(partition);
  if (found != partitions_.end()) found->second.undelivered.insert(offset);
}

void DeliveryLedger::applied(int32_t partition, int64_t next_to_apply) {
  std::lock_guard lock(mutex_);
  auto found = partitions_.find(partition);
  if (found != partitions_.end()) found->second.next_to_apply = std::max(found->second.next_to_apply, next_to_apply);
}

void DeliveryLedger::delivered(int32_t partition, int64_t offset) {
  std::lock_guard lock(mutex_);
  auto found = partitions_.find(partition);
  if (found == partitions_.end()) return;
  auto entry = found->second.undelivered.find(offset);
  if (entry != found->second.undelivered.end()) found->second.undelivered.erase(entry);
}

namespace {
int64_t committable_of(int64_t next_to_apply, const std::multiset<int64_t>& undelivered) {
  return undelivered.empty() ? next_to_apply : std::min(next_to_apply, *undelivered.begin());
}
}  // namespace

std::map<int32_t, int64_t> DeliveryLedger::committable() const {
  std::lock_guard lock(mutex_);
  std::map<int32_t, int64_t> out;
  for (const auto& [partition, state] : partitions_) out[partition] = committable_of(state.next_to_apply, state.undelivered);
  return out;
}

int64_t DeliveryLedger::committable(int32_t partition) const {
  std::lock_guard lock(mutex_);
  auto found = partitions_.find(partition);
  return found == partitions_.end() ? -1 : committable_of(found->second.next_to_apply, found->second.undelivered);
}

size_t DeliveryLedger::undelivered() const {
  std::lock_guard lock(mutex_);
  size_t total = 0;
  for (const auto& [partition, state] : partitions_) total += state.undelivered.size();
  return total;
}

}  // namespace shadowpipe::executor
