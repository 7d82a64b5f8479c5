#include "comparator/record_worker.hpp"

namespace shadowpipe::comparator {

RecordWorker::RecordWorker(Handler handle) : handle_(std::move(handle)), thread_([this] { loop(); }) {}

RecordWorker::~RecordWorker() { stop(); }

void RecordWorker::hand_over(std::vector<kafka::Message> batch) {
  if (batch.empty()) return;
  std::unique_lock lock(mutex_);
  progress_.wait(lock, [&] { return waiting_.size() < kMaxWaitingBatches; });
  waiting_.push_back(std::move(batch));
  lock.unlock();
  work_.notify_one();
}

void RecordWorker::wait_idle() {
  std::unique_lock lock(mutex_);
  progress_.wait(lock, [&] { return waiting_.empty() && !busy_; });
  if (failure_) std::rethrow_exception(failure_);
}

void RecordWorker::stop() {
  std::deque<std::vector<kafka::Message>> dropped;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped.swap(waiting_);
  }
  work_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void RecordWorker::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
    if (stopping_) return;
    auto batch = std::move(waiting_.front());
    waiting_.pop_front();
    busy_ = true;
    lock.unlock();
    progress_.notify_one();  // room in the queue
    if (!failure_) {
      try {
        for (auto& message : batch) handle_(message);
      } catch (...) {
        failure_ = std::current_exception();
      }
    }
    batch.clear();  // the messages go back to librdkafka before the loop may call it quiescent
    lock.lock();
    busy_ = false;
    progress_.notify_one();
  }
}

}  // namespace shadowpipe::comparator
