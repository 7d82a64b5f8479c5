// A thread that handles, in the order they were handed over, the records of
// the partition pairs the comparator's consumer loop gave it. The loop hands
// records over in batches and, before it reads or changes anything the
// workers touch (the pairs, the counters, the transaction), waits until
// every worker is idle: wait_idle() returning is that quiescent point.
#pragma once

#include "shadowpipe/kafka.hpp"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace shadowpipe::comparator {

class RecordWorker {
 public:
  using Handler = std::function<void(kafka::Message&)>;
  // Batches waiting beyond the one being handled before hand_over() blocks,
  // so the consumer loop never runs far ahead of a slow worker. Deep enough
  // to hold a fetch's worth of one partition (librdkafka hands records over
  // partition by partition, up to max.partition.fetch.bytes, 1 MB, at a
  // time): with a shallow queue the loop waits on the worker of the current
  // partition while the other worker has nothing to do.
  static constexpr size_t kMaxWaitingBatches = 32;

  explicit RecordWorker(Handler handle);
  ~RecordWorker();  // stop()
  RecordWorker(const RecordWorker&) = delete;
  RecordWorker& operator=(const RecordWorker&) = delete;

  // Queues a batch; waits while kMaxWaitingBatches wait already.
  void hand_over(std::vector<kafka::Message> batch);
  // Returns once every record handed over was handled (and its message
  // destroyed). Everything the handler wrote happens-before the return.
  // Rethrows what the handler threw; after a throw the worker handles
  // nothing more (its records are dropped) so this still returns.
  void wait_idle();
  // Drops what waits, lets the record in hand finish and joins the thread.
  void stop();

 private:
  void loop();

  Handler handle_;
  std::mutex mutex_;
  std::condition_variable work_;      // a batch or the stop: to the worker
  std::condition_variable progress_;  // room in the queue, or idle: to the loop
  std::deque<std::vector<kafka::Message>> waiting_;
  bool busy_ = false;
  bool stopping_ = false;
  std::exception_ptr failure_;  // written by the worker only, read after wait_idle's lock
  std::thread thread_;          // last: starts once the members above exist
};

}  // namespace shadowpipe::comparator
