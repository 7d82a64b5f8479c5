// shop-loadgen's run: the workers started and paced over the duration, progress, and the report.
#include "shadowpipe/shop_loadgen.hpp"

#include "shadowpipe/pg.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/thread_cpu.hpp"

#include "shop_workload.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <map>
#include <iomanip>
#include <ostream>
#include <thread>

namespace shadowpipe::shop {

namespace {

constexpr const char* kWorkerThreadName = "loadgen-worker";

using workload::Clock;
using workload::kOperationCount;
using workload::kOperationNames;
using workload::kProducts;
using workload::Shared;
using workload::Worker;

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Which group a thread's name puts it in: librdkafka names its threads
// rdk:main, rdk:broker<id> (and rdk:broker-1 for its internal one), the
// recorder names its poller. (The workers have ended by then; each adds up
// its own CPU time.)
std::string thread_group(std::string_view name) {
  if (name == producer::kPollerThreadName) return "recorder-poller";
  if (name == "rdk:main") return "rdk:main";
  if (name.starts_with("rdk:broker")) return "rdk:broker";
  if (name.starts_with("rdk:")) return "rdk:other";
  return "other";
}

// CPU seconds (user + system) of each live thread of this process, summed by
// thread_group().
std::map<std::string, double> cpu_seconds_by_thread_group() {
  std::map<std::string, double> out;
  for (const auto& thread : threads_cpu()) out[thread_group(thread.name)] += thread.seconds;
  return out;
}

std::vector<std::string> load_prices(const std::string& dsn) {
  pg::Connection connection(dsn);
  auto result = connection.exec("SELECT id, price::text FROM products ORDER BY id");
  if (!result.succeeded() || result.rows() != kProducts) {
    throw Failure("the shop is not prepared on " + connection.describe() + " (expected " + std::to_string(kProducts) +
                  " products" + (result.succeeded() ? "" : ": " + result.error_message()) +
                  "): run scripts/shop-prepare --migration safe|risky first");
  }
  std::vector<std::string> prices;
  prices.reserve(kProducts);
  for (int row = 0; row < result.rows(); ++row) prices.emplace_back(result.value(row, 1));
  return prices;
}

}  // namespace

LoadgenReport run(const LoadgenOptions& options) {
  if (options.concurrency < 1) throw Failure("--concurrency must be at least 1");
  if (options.rate < 0) throw Failure("--rate must not be negative");
  const uint64_t seed = options.seed != 0 ? options.seed : std::random_device{}();
  std::unique_ptr<producer::Recorder> recorder;
  if (options.shadowing && options.create_topic_partitions > 0) {
    kafka::Producer admin(options.recorder.kafka);
    kafka::create_topics(admin.get(), {{options.recorder.topic, options.create_topic_partitions, 1, {}}},
                         std::chrono::seconds(15));
  }
  if (options.shadowing) recorder = std::make_unique<producer::Recorder>(options.recorder);
  Shared shared(options, recorder.get(), load_prices(options.primary_dsn),
                1 + std::mt19937_64(seed ^ 0x5eed)() % ((uint64_t{1} << 22) - 1));

  // Connect every worker before the clock starts.
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < options.concurrency; ++i) {
    workers.push_back(std::make_unique<Worker>(shared, i, seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL));
  }
  const auto threads_at_start = cpu_seconds_by_thread_group();
  const double cpu_at_start = process_cpu_seconds();
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(options.duration);
  std::vector<std::thread> threads;
  double workers_cpu_seconds = 0;    // under shared.mutex
  double recording_cpu_seconds = 0;  // the part of it inside the recorder's calls
  for (auto& worker : workers) {
    threads.emplace_back([&shared, &worker, &workers_cpu_seconds, &recording_cpu_seconds, start, end] {
      pthread_setname_np(pthread_self(), kWorkerThreadName);
      try {
        worker->run(start, end);
      } catch (...) {
        std::lock_guard lock(shared.mutex);
        if (!shared.failure) shared.failure = std::current_exception();
        shared.stop = true;
      }
      // The thread is gone before the report reads /proc: it tells its own.
      timespec used{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used);
      std::lock_guard lock(shared.mutex);
      workers_cpu_seconds += static_cast<double>(used.tv_sec) + static_cast<double>(used.tv_nsec) / 1e9;
      recording_cpu_seconds += worker->recording_cpu_seconds();
    });
  }
  auto total_units = [&shared] {
    uint64_t total = 0;
    for (const auto& units : shared.units) total += units.load(std::memory_order_relaxed);
    return total;
  };
  if (options.progress) {
    while (Clock::now() < end && !shared.stop) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      std::fprintf(stderr, "\rshop-loadgen: %5.0f s  %8llu units  %7.0f units/s", elapsed,
                   static_cast<unsigned long long>(total_units()), static_cast<double>(total_units()) / elapsed);
      if (recorder) {
        const auto counters = recorder->counters();
        std::fprintf(stderr, "  published %llu  dropped %llu", static_cast<unsigned long long>(counters.published),
                     static_cast<unsigned long long>(counters.dropped()));
      }
      std::fflush(stderr);
    }
    std::fputc('\n', stderr);
  }
  for (auto& thread : threads) thread.join();
  const auto elapsed = Clock::now() - start;
  const double cpu_seconds = process_cpu_seconds() - cpu_at_start;
  const auto threads_at_end = cpu_seconds_by_thread_group();
  if (shared.failure) std::rethrow_exception(shared.failure);

  LoadgenReport report;
  report.elapsed = elapsed;
  report.cpu_seconds = cpu_seconds;
  report.cpu_by_thread_group.push_back({"workers-recording", recording_cpu_seconds});
  report.cpu_by_thread_group.push_back({"workers-other", workers_cpu_seconds - recording_cpu_seconds});
  for (const auto& [group, seconds] : threads_at_end) {
    auto before = threads_at_start.find(group);
    report.cpu_by_thread_group.push_back(
        {group, seconds - (before != threads_at_start.end() ? before->second : 0.0)});
  }
  for (int i = 0; i < kOperationCount; ++i) {
    OperationStats stats;
    stats.name = kOperationNames[i];
    stats.units = shared.units[i];
    stats.primary_errors = shared.errors[i];
    stats.latency_us_total = static_cast<double>(shared.latency_us[i]);
    report.units += stats.units;
    report.primary_errors += stats.primary_errors;
    report.operations.push_back(std::move(stats));
  }
  report.statements = shared.statements;
  report.unit_statements = shared.unit_statements;
  if (recorder) {
    recorder->flush(options.recorder.flush_timeout);
    report.recorder = recorder->counters();
  }
  return report;
}

void print_report(const LoadgenReport& report, bool shadowing, std::ostream& out) {
  out << std::fixed << std::setprecision(1);
  out << "shop-loadgen: " << report.units << " units (" << report.statements << " statements, " << report.unit_statements
      << " in units) in "
      << report.elapsed.count() << " s: " << report.units_per_second() << " units/s, shadowing "
      << (shadowing ? "on" : "off") << ", " << report.cpu_us_per_unit() << " us CPU per unit\n";
  if (!report.cpu_by_thread_group.empty()) {
    // One line, key=value, so bench/loadgen_overhead.sh can take it apart.
    out << "cpu_us_per_unit_by_thread:";
    for (const auto& [group, seconds] : report.cpu_by_thread_group) out << " " << group << "=" << report.per_unit_us(seconds);
    out << "\n";
  }
  for (const auto& operation : report.operations) {
    out << "  " << std::left << std::setw(18) << operation.name << std::right << std::setw(9) << operation.units
        << " units  " << std::setw(8)
        << (operation.units ? operation.latency_us_total / static_cast<double>(operation.units) : 0.0)
        << " us mean  " << operation.primary_errors << " primary errors\n";
  }
  if (shadowing) {
    const auto& counters = report.recorder;
    out << "recorder: recorded=" << counters.recorded << " published=" << counters.published
        << " pending=" << counters.pending();
    for (auto reason : producer::kDropReasons) {
      out << " " << producer::to_string(reason) << "=" << counters.dropped(reason);
    }
    out << " rollbacks_discarded=" << counters.rollbacks_discarded << "\n";
  }
}

}  // namespace shadowpipe::shop
