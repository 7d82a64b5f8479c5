// The shadow executor service: consumes shadow.requests as a consumer group,
// runs each assigned partition in offset order on its own shadow connection
// (partitions concurrently), publishes one shadow.results record per request
// to the same partition number, and dead-letters records it cannot read.
//
// Threads: the caller's thread polls the consumer, dispatches messages to the
// partition workers, handles rebalances, commits offsets; one thread per
// assigned partition executes its units; librdkafka's threads deliver.
#pragma once

#include "shadow_executor/executor_metrics.hpp"
#include "shadow_executor/options.hpp"

#include <prometheus/registry.h>

#include <atomic>
#include <memory>

namespace shadowpipe::executor {

class Executor {
 public:
  // Connects to the shadow, creates the shadowpipe schema when missing, and
  // the Kafka clients; throws Failure when any of that is refused.
  explicit Executor(Options options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Consumes until `stop` becomes true; then finishes the units in flight,
  // publishes and commits what is done, leaves the group. Returns 0, or
  // throws Failure when the shadow refuses the executor's bookkeeping.
  int run(const std::atomic<bool>& stop);

  ExecutorMetrics& metrics();
  prometheus::Registry& registry();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shadowpipe::executor
