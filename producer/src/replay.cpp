// shadow-replay's run: units dispatched by key to worker connections on the primary, recorded, paced and reported.
#include "shadowpipe/replay.hpp"

#include "shadowpipe/pg.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>

namespace shadowpipe::replay {

namespace {

using Clock = std::chrono::steady_clock;

// One worker's inbox: units of the keys that hash to it, in input order.
class Inbox {
 public:
  explicit Inbox(size_t capacity) : capacity_(capacity) {}
  void push(const ReplayUnit* unit) {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return units_.size() < capacity_; });
    units_.push_back(unit);
    ready_.notify_one();
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    ready_.notify_all();
  }
  // nullptr when closed and empty.
  const ReplayUnit* pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !units_.empty() || closed_; });
    if (units_.empty()) return nullptr;
    const ReplayUnit* unit = units_.front();
    units_.pop_front();
    space_.notify_one();
    return unit;
  }
  size_t drop_all() {
    std::lock_guard lock(mutex_);
    const size_t count = units_.size();
    units_.clear();
    space_.notify_all();
    return count;
  }

 private:
  size_t capacity_;
  std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::deque<const ReplayUnit*> units_;
  bool closed_ = false;
};

struct Totals {
  std::atomic<uint64_t> units{0}, statements{0}, primary_errors{0};
};

void execute(const pg::Connection& connection, producer::Recorder& recorder, const ReplayUnit& unit, Totals& totals) {
  auto timed = [&](const std::string& sql, const std::vector<std::optional<std::string>>& params) {
    const auto started = Clock::now();
    pg::Result result = connection.exec(sql, params);
    const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
    if (!connection.healthy()) {
      throw Failure("lost the connection to the primary " + connection.describe() + " at input line " +
                    std::to_string(unit.line));
    }
    return std::pair{std::move(result), static_cast<int64_t>(latency)};
  };
  if (!unit.transaction) {
    const auto& statement = unit.statements.front();
    auto [result, latency_us] = timed(statement.sql, statement.params);
    recorder.record(connection.get(), unit.key, statement.sql, statement.params, result.get(), latency_us);
    totals.statements += 1;
    if (!result.succeeded()) totals.primary_errors += 1;
  } else {
    producer::Unit recorded = recorder.begin(connection.get(), unit.key);
    bool failed = !connection.exec("BEGIN").succeeded();
    for (const auto& statement : unit.statements) {
      if (failed) break;  // the primary aborted the transaction: the rest would not run either
      auto [result, latency_us] = timed(statement.sql, statement.params);
      recorded.add(statement.sql, statement.params, result.get(), latency_us);
      totals.statements += 1;
      if (!result.succeeded()) {
        totals.primary_errors += 1;
        failed = true;
      }
    }
    const bool roll_back = failed || unit.ends_in_rollback;
    const bool ended = connection.exec(roll_back ? "ROLLBACK" : "COMMIT").succeeded();
    if (roll_back || !ended) {
      recorded.rollback();
    } else {
      recorded.commit();
    }
  }
  totals.units += 1;
}

std::string read_input(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure("cannot read the input file " + path + ": check the path");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return std::move(buffer).str();
}

}  // namespace

ReplayReport run(const ReplayOptions& options, std::ostream& diagnostics) {
  if (options.concurrency < 1) throw Failure("--concurrency must be at least 1");
  if (options.rate < 0) throw Failure("--rate must not be negative");
  const std::string text = read_input(options.input);
  const bool is_sql = options.format == Format::sql ||
                      (options.format == Format::automatic && options.input.size() > 4 &&
                       options.input.compare(options.input.size() - 4, 4, ".sql") == 0);
  // A .sql file's statements are only ordered among themselves when they
  // share a key; JSON lines name their keys (or get the request id).
  const std::string default_key = !options.key.empty() ? options.key : (is_sql ? "replay:" + options.input : "");
  ParsedInput input = is_sql ? parse_sql(text, default_key) : parse_json_lines(text, default_key);
  for (const auto& bad : input.bad) {
    diagnostics << options.input << ":" << bad.line << ": " << bad.reason << "\n";
  }

  producer::Recorder recorder(options.recorder);
  std::vector<std::unique_ptr<pg::Connection>> connections;
  for (int i = 0; i < options.concurrency; ++i) connections.push_back(std::make_unique<pg::Connection>(options.primary_dsn));
  std::vector<std::unique_ptr<Inbox>> inboxes;
  for (int i = 0; i < options.concurrency; ++i) inboxes.push_back(std::make_unique<Inbox>(64));

  Totals totals;
  std::atomic<bool> stop{false};
  std::mutex failure_mutex;
  std::exception_ptr failure;
  std::vector<std::thread> workers;
  for (int i = 0; i < options.concurrency; ++i) {
    workers.emplace_back([&, i] {
      try {
        while (const ReplayUnit* unit = inboxes[static_cast<size_t>(i)]->pop()) {
          if (stop) continue;  // drain without running
          execute(*connections[static_cast<size_t>(i)], recorder, *unit, totals);
        }
      } catch (...) {
        std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        stop = true;
        for (auto& inbox : inboxes) inbox->drop_all();
      }
    });
  }

  const auto start = Clock::now();
  const bool bounded = options.duration.count() > 0;
  const auto end = start + std::chrono::duration_cast<Clock::duration>(options.duration);
  auto last_progress = start;
  auto progress = [&](bool final_line) {
    const auto counters = recorder.counters();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "\rshadow-replay: %6.1f s  units %llu/%zu  errors %llu  bad lines %zu  published %llu  dropped %llu",
                 elapsed, static_cast<unsigned long long>(totals.units.load()), input.units.size(),
                 static_cast<unsigned long long>(totals.primary_errors.load()), input.bad.size(),
                 static_cast<unsigned long long>(counters.published), static_cast<unsigned long long>(counters.dropped()));
    if (final_line) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
  uint64_t dispatched = 0;
  size_t round_robin = 0;
  for (const auto& unit : input.units) {
    if (stop) break;
    const auto now = Clock::now();
    if (bounded && now >= end) break;
    if (options.rate > 0) {
      const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(dispatched) / options.rate));
      if (due > now) std::this_thread::sleep_until(bounded ? std::min(due, end) : due);
      if (bounded && Clock::now() >= end) break;
    }
    // One key always goes to one worker, so its units run in input order.
    const size_t worker = unit.key.empty() ? round_robin++ % inboxes.size()
                                           : std::hash<std::string>{}(unit.key) % inboxes.size();
    inboxes[worker]->push(&unit);
    ++dispatched;
    if (options.progress && Clock::now() - last_progress >= std::chrono::seconds(1)) {
      last_progress = Clock::now();
      progress(false);
    }
  }
  for (auto& inbox : inboxes) inbox->close();
  for (auto& worker : workers) worker.join();
  if (failure) std::rethrow_exception(failure);
  recorder.flush(options.recorder.flush_timeout);
  if (options.progress) progress(true);

  ReplayReport report;
  report.lines = input.lines;
  report.bad_lines = input.bad.size();
  report.units = totals.units;
  report.units_not_run = input.units.size() - totals.units;
  report.statements = totals.statements;
  report.primary_errors = totals.primary_errors;
  report.elapsed = Clock::now() - start;
  report.recorder = recorder.counters();
  return report;
}

void print_report(const ReplayReport& report, std::ostream& out) {
  const auto& counters = report.recorder;
  out << std::fixed << std::setprecision(1);
  out << "shadow-replay: " << report.lines << " lines, " << report.bad_lines << " bad (skipped); " << report.units
      << " units run (" << report.statements << " statements, " << report.primary_errors << " primary errors), "
      << report.units_not_run << " not run, in " << report.elapsed.count() << " s\n";
  out << "recorder: recorded=" << counters.recorded << " published=" << counters.published
      << " pending=" << counters.pending();
  for (auto reason : producer::kDropReasons) out << " " << producer::to_string(reason) << "=" << counters.dropped(reason);
  out << " rollbacks_discarded=" << counters.rollbacks_discarded << " gaps_announced=" << counters.gaps_announced
      << " gap_units_announced=" << counters.gap_units_announced << " gap_units_pending=" << counters.gap_units_pending
      << "\n";
}

}  // namespace shadowpipe::replay
