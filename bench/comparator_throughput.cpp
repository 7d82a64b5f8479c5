// Pairs decided per second by the comparator through the real broker, with
// one and with two workers, against a bare librdkafka consumer reading the
// same two topics in the same run (and one that also decodes every record),
// and the memory a pending request costs. Run through bench/comparator_throughput.sh.
#include "comparator/service.hpp"
#include "comparator_records.hpp"
#include "shadowpipe/cli.hpp"
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/thread_cpu.hpp"
#include "shadowpipe/wire.hpp"

#include <malloc.h>
#include <sys/types.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <thread>

namespace sp = shadowpipe;
namespace cmp = shadowpipe::comparator;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Topics {
  std::string requests, results, mismatches, summary, dlq;
};

Topics create_topics(sp::kafka::Producer& producer, const std::string& base, int partitions) {
  Topics t{base + ".requests", base + ".results", base + ".mismatches", base + ".summary", base + ".dlq"};
  sp::kafka::create_topics(producer.get(),
                           {{t.requests, partitions, 1, {}}, {t.results, partitions, 1, {}},
                            {t.mismatches, partitions, 1, {}}, {t.summary, 1, 1, {}}, {t.dlq, 1, 1, {}}},
                           20s);
  return t;
}

// The request id of pair i: a version 7 UUID in its text, as the recorder
// makes them (producer/src/recorder.cpp), or with --short-ids "bench-<i>"
// (the figures before 2026-11-30 evening: an id a std::string holds inline).
bool short_ids = false;
std::string request_id(int64_t i) {
  if (short_ids) return "bench-" + std::to_string(i);
  char text[40];
  const auto n = static_cast<unsigned long long>(i);
  std::snprintf(text, sizeof text, "0192f3a4-%04llx-7%03llx-8%03llx-%012llx", (n >> 32) & 0xFFFF, (n >> 20) & 0xFFF,
                (n >> 8) & 0xFFF, (n * 0x9E3779B97F4AULL) & 0xFFFFFFFFFFFFULL);
  return text;
}

// A typical read: five columns, one parameter; one request in a hundred differs.
struct Generator {
  std::vector<std::pair<std::string, std::string>> statements;  // sql, fingerprint
  Generator() {
    for (const char* sql : sp::bench::kComparatorSql) {
      statements.emplace_back(sql, sp::statement::analyze(sql)->fingerprint);
    }
  }
  sp::wire::StatementResult result(int64_t i, bool differ) const { return sp::bench::comparator_result(i, differ); }
  std::pair<std::string, std::string> pair(int64_t i) const {
    const auto& [sql, fingerprint] = statements[static_cast<size_t>(i) % statements.size()];
    const std::string id = request_id(i);
    const std::string key = "tenant-" + std::to_string(i % 1000);
    sp::wire::Request request;
    request.request_id = id;
    request.ts_us = sp::wire::now_us();
    request.key = key;
    request.source = "bench";
    request.statements.push_back({sql, {std::to_string(i)}, fingerprint, result(i, false)});
    sp::wire::ShadowResult shadow;
    shadow.request_id = id;
    shadow.ts_us = request.ts_us + 500;
    shadow.key = key;
    shadow.executor = "bench";
    shadow.statements.push_back({fingerprint, result(i, i % 100 == 0), std::nullopt});
    return {sp::wire::encode(request), sp::wire::encode(shadow)};
  }
};

void produce_pairs(sp::kafka::Producer& producer, const Topics& t, int partitions, int64_t from, int64_t to,
                   bool with_results) {
  Generator generator;
  for (int64_t i = from; i < to; ++i) {
    auto [request, result] = generator.pair(i);
    const int32_t partition = static_cast<int32_t>(i % partitions);
    const std::string key = "tenant-" + std::to_string(i % 1000);
    while (producer.produce(t.requests, partition, key, request) == RD_KAFKA_RESP_ERR__QUEUE_FULL) producer.poll(10ms);
    if (with_results) {
      while (producer.produce(t.results, partition, key, result) == RD_KAFKA_RESP_ERR__QUEUE_FULL) producer.poll(10ms);
    }
  }
  if (producer.flush(120s) != 0) throw sp::Failure("benchmark records were not delivered");
}

// CPU seconds of the whole process (every thread, librdkafka's too).
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// This process's threads' CPU by thread id, with whether each is one of
// librdkafka's (named "rdk:…").
struct ThreadSeconds {
  double seconds = 0;
  bool librdkafka = false;
};
std::map<pid_t, ThreadSeconds> threads_by_id() {
  std::map<pid_t, ThreadSeconds> threads;
  for (const auto& thread : sp::threads_cpu()) threads[thread.tid] = {thread.seconds, thread.name.starts_with("rdk:")};
  return threads;
}

// Where the process's CPU went between two readings: this (the bench's
// main) thread, librdkafka's (the bench's idle producer's among them), and
// the others (the comparator's). A thread that started in between counts
// from nothing; one that ended in between is not seen (the process total
// still has it). Process CPU moves with librdkafka's fetching from run to
// run; the comparator's own threads are what its code changes move.
struct CpuSplit {
  double main = 0;
  double librdkafka = 0;
  double others = 0;
};
CpuSplit cpu_split(const std::map<pid_t, ThreadSeconds>& before, const std::map<pid_t, ThreadSeconds>& after) {
  CpuSplit split;
  for (const auto& [tid, now] : after) {
    const auto was = before.find(tid);
    const double used = std::max(0.0, now.seconds - (was == before.end() ? 0.0 : was->second.seconds));
    (tid == getpid() ? split.main : now.librdkafka ? split.librdkafka : split.others) += used;
  }
  return split;
}

struct Timed {
  double seconds = 0;
  double cpu_seconds = 0;  // process CPU over the same time: cores used = cpu_seconds / seconds
  CpuSplit split;
};

// Seconds from the first record to the last, for a bare consumer of both topics.
// With decode, each record is also decoded as the comparator must: the floor
// for any consumer of these JSON records.
Timed bare_consumer(const sp::kafka::Properties& base, const Topics& t, int64_t records, bool decode) {
  auto properties = base;
  properties.emplace_back("group.id", "bench-bare-" + std::to_string(decode) + std::to_string(getpid()) + "-" + t.requests);
  properties.emplace_back("auto.offset.reset", "earliest");
  properties.emplace_back("enable.auto.commit", "false");
  properties.emplace_back("partition.assignment.strategy", "range");
  sp::kafka::Consumer consumer(properties);
  consumer.subscribe({t.requests, t.results});
  int64_t read = 0;
  Clock::time_point first{};
  double first_cpu = 0;
  std::map<pid_t, ThreadSeconds> first_threads;
  const auto deadline = Clock::now() + 300s;
  while (read < records && Clock::now() < deadline) {
    auto message = consumer.poll(100ms);
    if (!message || message.error()) continue;
    if (read++ == 0) {
      first = Clock::now();
      first_cpu = process_cpu_seconds();
      first_threads = threads_by_id();
    }
    if (decode) {
      const bool ok = message.topic() == t.requests ? sp::wire::decode_request(message.payload()).ok()
                                                    : sp::wire::decode_result(message.payload()).ok();
      if (!ok) throw sp::Failure("benchmark record did not decode");
    }
  }
  const Timed timed{std::chrono::duration<double>(Clock::now() - first).count(), process_cpu_seconds() - first_cpu,
                    cpu_split(first_threads, threads_by_id())};
  consumer.close();
  if (read < records) throw sp::Failure("bare consumer read only " + std::to_string(read) + " records");
  return timed;
}

cmp::Options comparator_options(const sp::kafka::Properties& base, const Topics& t, const std::string& group,
                                unsigned workers = 0) {
  cmp::Options options;
  options.kafka = base;
  options.group = group;
  options.comparator_id = "bench";
  options.requests_topic = t.requests;
  options.results_topic = t.results;
  options.mismatches_topic = t.mismatches;
  options.summary_topic = t.summary;
  options.dlq_topic = t.dlq;
  options.window = 600s;  // nothing expires while the benchmark runs
  options.max_pending_bytes = size_t{4} << 30;
  options.workers = workers;
  return options;
}

struct ComparatorRun {
  double rate = 0;  // pairs per second while every worker had work
  double seconds = 0;
  double cpu_seconds = 0;
  CpuSplit split;
  uint64_t pairs_timed = 0;
  size_t most_waiting = 0;  // requests and results waiting for their other side, the most seen at a stats refresh
  cmp::Stats finished;
};

// Decides every pair with a fresh group (from the start of both topics),
// publishing to topics of its own so each run does the same work. Its stats
// are refreshed every 200 ms (every second with workers): the rate is taken
// between the first refresh after its first transaction committed and the
// last refresh before the end. So neither the start-up (joining the group,
// and the first commit of a new group's offsets, which takes about a second
// here once) nor the last partial interval count, and no pair decided before
// the clock started is counted: the steady rate.
ComparatorRun run_comparator(const sp::kafka::Properties& base, sp::kafka::Producer& producer, const Topics& input,
                             const std::string& run, int partitions, unsigned workers, int64_t pairs) {
  Topics topics = input;
  const std::string outputs = run + "-w" + std::to_string(workers);
  topics.mismatches = outputs + ".mismatches";
  topics.summary = outputs + ".summary";
  topics.dlq = outputs + ".dlq";
  sp::kafka::create_topics(producer.get(),
                           {{topics.mismatches, partitions, 1, {}}, {topics.summary, 1, 1, {}}, {topics.dlq, 1, 1, {}}},
                           20s);
  cmp::Comparator comparator(comparator_options(base, topics, outputs + "-comparator", workers));
  std::atomic<bool> stop{false};
  std::thread thread([&] { comparator.run(stop); });
  struct Sample {
    Clock::time_point at;
    uint64_t pairs;
    double cpu_seconds;
    std::map<pid_t, ThreadSeconds> threads;
  };
  std::optional<Sample> first, last_full;
  uint64_t seen = 0;
  size_t most_waiting = 0;
  const auto deadline = Clock::now() + 300s;
  while (Clock::now() < deadline) {
    const auto stats = comparator.stats();
    most_waiting = std::max(most_waiting, stats.pending_requests + stats.pending_results);
    if (stats.pairs >= static_cast<uint64_t>(pairs)) break;
    if (stats.pairs > seen && stats.committed_transactions > 0) {  // a refresh: the counts are those of this moment
      seen = stats.pairs;
      (first ? last_full : first) = Sample{Clock::now(), stats.pairs, process_cpu_seconds(), threads_by_id()};
    }
    std::this_thread::sleep_for(2ms);
  }
  ComparatorRun result;
  result.finished = comparator.stats();
  result.most_waiting = most_waiting;
  stop = true;
  thread.join();
  if (!first || !last_full) {
    throw sp::Failure("the comparator finished before two stats refreshes after its first commit: run with more --pairs");
  }
  result.seconds = std::chrono::duration<double>(last_full->at - first->at).count();
  result.pairs_timed = last_full->pairs - first->pairs;
  result.cpu_seconds = last_full->cpu_seconds - first->cpu_seconds;
  result.split = cpu_split(first->threads, last_full->threads);
  result.rate = static_cast<double>(result.pairs_timed) / result.seconds;
  return result;
}

double load_average() {
  double load[1] = {0};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

// Bytes malloc has handed out and not taken back (librdkafka's included).
double heap_in_use() { return static_cast<double>(mallinfo2().uordblks); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"comparator throughput against a bare librdkafka consumer", "comparator_throughput"};
  sp::cli::KafkaOptions kafka;
  sp::cli::add_kafka_options(app, kafka);
  int64_t pairs = 400'000;  // a few seconds of steady deciding: with workers the stats refresh once a second
  int64_t pending = 50'000;
  int partitions = 6;
  app.add_option("--pairs", pairs, "request/result pairs to decide")->capture_default_str();
  app.add_option("--pending", pending, "requests held pending to measure memory")->capture_default_str();
  app.add_option("--partitions", partitions)->capture_default_str();
  app.add_flag("--short-ids", short_ids, "ids of at most 15 characters instead of the recorder's UUIDs");
  return sp::cli::run_main(app, argc, argv, [&] {
    const auto base = kafka.to_properties();
    sp::kafka::Producer producer(base);
    const std::string run = "bench-cmp-" + std::to_string(getpid()) + "-" + std::to_string(sp::wire::now_us());
    auto topics = create_topics(producer, run, partitions);
    produce_pairs(producer, topics, partitions, 0, pairs, true);
    std::printf("produced %lld pairs on %d partitions (load average %.1f)\n", static_cast<long long>(pairs), partitions,
                load_average());

    // The split names where the work ran: the bare consumers poll (and
    // decode) on the main thread; the comparator runs on threads of its own
    // while the main thread samples its stats.
    auto report = [&](const char* what, double pairs_timed, double seconds, double cpu_seconds, const CpuSplit& split,
                      bool comparator) {
      const auto per_pair = [&](double cpu) { return cpu / pairs_timed * 1e6; };
      std::printf("%s: %.0f pairs in %.2f s = %.0f pairs/s; %.1f us CPU per pair, %.2f cores busy\n", what, pairs_timed,
                  seconds, pairs_timed / seconds, per_pair(cpu_seconds), cpu_seconds / seconds);
      const double unseen = cpu_seconds - split.main - split.librdkafka - split.others;
      if (comparator) {
        std::printf("  of it, per pair: %.2f us in the comparator's threads, %.2f us in librdkafka's, %.2f us in this "
                    "bench's sampling, %.2f us unattributed (threads that ended meanwhile, accounting skew)\n",
                    per_pair(split.others), per_pair(split.librdkafka), per_pair(split.main), per_pair(unseen));
      } else {
        std::printf("  of it, per pair: %.2f us in the polling thread, %.2f us in librdkafka's\n",
                    per_pair(split.main + split.others), per_pair(split.librdkafka));
      }
      return pairs_timed / seconds;
    };
    const auto bare = bare_consumer(base, topics, 2 * pairs, false);
    const double bare_rate = report("bare consumer", static_cast<double>(pairs), bare.seconds, bare.cpu_seconds, bare.split, false);
    const auto decoding = bare_consumer(base, topics, 2 * pairs, true);
    const double decoding_rate =
        report("bare consumer that decodes each record", static_cast<double>(pairs), decoding.seconds,
               decoding.cpu_seconds, decoding.split, false);

    std::vector<std::pair<unsigned, ComparatorRun>> runs;
    for (unsigned workers : {1u, 2u}) {
      auto measured = run_comparator(base, producer, topics, run, partitions, workers, pairs);
      const std::string what = "comparator, " + std::to_string(workers) +
                               (workers == 1 ? " worker (on the consumer's thread)" : " workers") + ", " +
                               std::to_string(measured.finished.pairs) + " decided (" +
                               std::to_string(measured.finished.mismatches_published) + " mismatches, at most " +
                               std::to_string(measured.most_waiting) +
                               " records waiting for their other side at a stats refresh), steady";
      report(what.c_str(), static_cast<double>(measured.pairs_timed), measured.seconds, measured.cpu_seconds,
             measured.split, true);
      runs.emplace_back(workers, measured);
    }
    std::printf("\nratios (pairs/s over pairs/s, same topics, same run; load average %.1f on %ld cores):\n",
                load_average(), sysconf(_SC_NPROCESSORS_ONLN));
    for (const auto& [workers, measured] : runs) {
      std::printf("  comparator with %u worker%s / bare consumer:     %.2f\n", workers, workers == 1 ? " " : "s",
                  measured.rate / bare_rate);
      std::printf("  comparator with %u worker%s / decoding consumer: %.2f   (issue 14 aims: %s)\n", workers,
                  workers == 1 ? " " : "s", measured.rate / decoding_rate, workers == 1 ? ">= 0.9" : ">= 1.6");
    }
    // Rates follow the share of the cores each phase got; CPU per pair does
    // not, so its ratio says what a machine with the cores free would show.
    const double decoding_cpu_per_pair = decoding.cpu_seconds / static_cast<double>(pairs);
    for (const auto& [workers, measured] : runs) {
      const double cpu_ratio = decoding_cpu_per_pair / (measured.cpu_seconds / static_cast<double>(measured.pairs_timed));
      std::printf("  CPU per pair, decoding consumer / comparator with %u worker%s: %.2f, so with %u core%s free\n"
                  "    for it the comparator would reach roughly %.2f of the decoding consumer\n",
                  workers, workers == 1 ? " " : "s", cpu_ratio, workers, workers == 1 ? "" : "s", cpu_ratio * workers);
    }
    std::printf("  (the decoding consumer is one thread doing nothing but poll and decode; the bare one only polls.\n"
                "   'cores busy' is the process's CPU time over the wall time, librdkafka's threads included: two\n"
                "   workers gain only while a second core is free, and 'us CPU per pair' compares runs across loads)\n\n");

    // Memory: requests whose results never come stay pending.
    auto held = create_topics(producer, run + "-pending", partitions);
    produce_pairs(producer, held, partitions, 0, pending, false);
    {
      const double before = heap_in_use();
      cmp::Comparator comparator(comparator_options(base, held, run + "-pending"));
      std::atomic<bool> stop{false};
      std::thread worker([&] { comparator.run(stop); });
      const auto deadline = Clock::now() + 120s;
      while (comparator.stats().pending_requests < static_cast<size_t>(pending) && Clock::now() < deadline) {
        std::this_thread::sleep_for(50ms);
      }
      std::this_thread::sleep_for(1s);  // let librdkafka's fetch queue drain
      const auto stats = comparator.stats();
      const double after = heap_in_use();
      std::printf("pending: %zu requests, estimated %zu bytes = %.0f bytes per pending request; "
                  "heap in use grew %.0f bytes per pending request (measured with mallinfo2, whole process)\n",
                  stats.pending_requests, stats.pending_bytes, stats.bytes_per_pending_entry,
                  stats.pending_requests ? (after - before) / static_cast<double>(stats.pending_requests) : 0.0);
      stop = true;
      worker.join();
    }
    return 0;
  });
}
