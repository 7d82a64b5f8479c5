// shop-loadgen: the demo shop's workload (examples/shop), run on the primary
// and recorded through the producer library. The mix is designed so that,
// against migrations/risky.sql, the only discrepancies are the intended ones
// (examples/shop/README.md explains each operation's expected outcome).
#pragma once

#include "shadowpipe/recorder.hpp"

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace shadowpipe::shop {

struct LoadgenOptions {
  std::string primary_dsn;
  double rate = 0;        // units of work per second over all workers; 0: as fast as the primary allows
  int concurrency = 4;    // workers, one connection each
  std::chrono::duration<double> duration{60};
  bool shadowing = true;  // false: the same load, nothing recorded (the overhead baseline)
  uint64_t seed = 0;      // 0: random
  double long_email_share = 0.3;  // of signups; longer than 64 characters
  int create_topic_partitions = 0;  // > 0: create the requests topic first if it is missing
  bool progress = false;  // a progress line every second on stderr
  producer::RecorderConfig recorder;
};

struct OperationStats {
  std::string name;
  uint64_t units = 0;
  uint64_t primary_errors = 0;
  double latency_us_total = 0;
};

struct LoadgenReport {
  std::chrono::duration<double> elapsed{0};
  uint64_t units = 0;
  uint64_t statements = 0;       // executed on the primary
  uint64_t unit_statements = 0;  // of those, the ones in units (BEGIN, COMMIT, ROLLBACK are not)
  uint64_t primary_errors = 0;
  std::vector<OperationStats> operations;
  producer::Counters recorder;  // zero when shadowing is off
  // CPU time of this process (all its threads, librdkafka's included) while
  // the workers ran: the application-side cost, free of the broker's.
  double cpu_seconds = 0;
  // The same window's CPU time by thread group (/proc/self/task), so the cost
  // of recording splits into the application's threads (workers: libpq,
  // digest, encoding, the hand-off to librdkafka), the recorder's poller
  // (delivery reports) and librdkafka's own threads.
  struct ThreadGroupCpu {
    // "workers-recording" (the workers' time inside the recorder's calls),
    // "workers-other" (the rest of the workers': libpq, the mix), then by
    // thread name: "recorder-poller", "rdk:main", "rdk:broker", "rdk:other", "other".
    std::string group;
    double seconds = 0;
  };
  std::vector<ThreadGroupCpu> cpu_by_thread_group;
  double units_per_second() const { return elapsed.count() > 0 ? static_cast<double>(units) / elapsed.count() : 0; }
  double cpu_us_per_unit() const { return per_unit_us(cpu_seconds); }
  double per_unit_us(double seconds) const { return units > 0 ? seconds * 1e6 / static_cast<double>(units) : 0; }
};

// Runs the workload; throws Failure when the primary cannot be reached or the
// shop is not prepared (run scripts/shop-prepare).
LoadgenReport run(const LoadgenOptions& options);

void print_report(const LoadgenReport& report, bool shadowing, std::ostream& out);

}  // namespace shadowpipe::shop
