#include "shadowpipe/shop_loadgen.hpp"

#include "shadowpipe/pg.hpp"
#include "shadowpipe/result.hpp"

#include <sys/resource.h>

#include <array>
#include <atomic>
#include <cmath>
#include <map>
#include <cstdio>
#include <ctime>
#include <deque>
#include <exception>
#include <iomanip>
#include <mutex>
#include <ostream>
#include <random>
#include <thread>

namespace shadowpipe::shop {

namespace {

using Params = std::vector<std::optional<std::string>>;
using Clock = std::chrono::steady_clock;

// The shapes seed.sql creates; shop-loadgen only touches seeded rows in the
// ways README.md describes.
constexpr int64_t kCustomers = 20'000;
constexpr int64_t kProducts = 2'000;
constexpr int64_t kSeededOrders = 240'000;

// Statements, by operation. Each operation's expected outcome against
// risky.sql is in examples/shop/README.md.
const std::string kProductById =
    "SELECT id, sku, name, category, price, stock FROM products WHERE id = $1";
const std::string kProductsPage =
    "SELECT id, sku, name, price FROM products WHERE id BETWEEN $1 AND $2 ORDER BY id";
const std::string kProductBySku = "SELECT id, name, category, stock FROM products WHERE sku = $1";
const std::string kCategoryReport =
    "SELECT category, count(*) AS products, sum(stock) AS units FROM products GROUP BY category ORDER BY category";
const std::string kCustomerProfile = "SELECT id, name, created_at FROM customers WHERE id = $1";
const std::string kCustomerOrders =
    "SELECT id, status, total, created_at FROM orders WHERE customer_id = $1 "
    "ORDER BY created_at DESC, id DESC LIMIT 20";
const std::string kOrderItems =
    "SELECT line, product_id, quantity, unit_price FROM order_items WHERE order_id = $1 ORDER BY line";
const std::string kStatusReport =
    "SELECT status, count(*) AS orders, sum(total) AS revenue FROM orders WHERE id BETWEEN $1 AND $2 GROUP BY status";
const std::string kInsertOrder =
    "INSERT INTO orders (id, customer_id, status, total, created_at) VALUES ($1, $2, 'new', $3, $4)";
const std::string kInsertItem =
    "INSERT INTO order_items (order_id, line, product_id, quantity, unit_price) VALUES ($1, $2, $3, $4, $5)";
const std::string kLockOrder = "SELECT status FROM orders WHERE id = $1 FOR UPDATE";
const std::string kPayOrder = "UPDATE orders SET status = 'paid' WHERE id = $1 AND status = 'new'";
const std::string kSignup = "INSERT INTO customers (id, email, name, created_at) VALUES ($1, $2, $3, $4)";

enum Operation {
  product_by_id, products_page, product_by_sku, category_report, customer_profile, customer_orders,
  order_items, status_report, place_order, pay_order, signup, kOperationCount
};
constexpr const char* kOperationNames[kOperationCount] = {
    "product_by_id", "products_page", "product_by_sku", "category_report", "customer_profile", "customer_orders",
    "order_items",   "status_report", "place_order",    "pay_order",       "signup"};
// Relative weights of the mix: mostly reads, a fifth writes.
constexpr double kWeights[kOperationCount] = {10, 8, 6, 3, 10, 12, 10, 4, 14, 8, 5};

std::string timestamp_text(std::chrono::system_clock::time_point when) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(us / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<long long>(us % 1'000'000));
  return text;
}

struct Shared {
  Shared(const LoadgenOptions& given, producer::Recorder* recorder_or_null, std::vector<std::string> product_prices,
         uint64_t tag)
      : options(given), recorder(recorder_or_null), prices(std::move(product_prices)), id_tag(tag) {}
  const LoadgenOptions& options;
  producer::Recorder* recorder;             // nullptr when shadowing is off
  std::vector<std::string> prices;          // by product id - 1, as the primary renders them
  uint64_t id_tag;                          // this run's range of new ids
  std::atomic<uint64_t> next_new_id{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::exception_ptr failure;
  std::array<std::atomic<uint64_t>, kOperationCount> units{};
  std::array<std::atomic<uint64_t>, kOperationCount> errors{};
  std::array<std::atomic<uint64_t>, kOperationCount> latency_us{};
  std::atomic<uint64_t> statements{0};

  // New rows get ids no seeded row and no other run has: this run's random
  // tag in the high bits, a counter below. Never a sequence (README.md).
  int64_t new_id() { return static_cast<int64_t>((id_tag << 40) | next_new_id.fetch_add(1)); }
};

class Worker {
 public:
  Worker(Shared& shared, int index, uint64_t seed)
      : shared_(shared), index_(index), random_(seed), connection_(shared.options.primary_dsn) {}

  void run(Clock::time_point start, Clock::time_point end) {
    const auto& options = shared_.options;
    const double per_worker_rate = options.rate > 0 ? options.rate / options.concurrency : 0;
    std::discrete_distribution<int> pick(std::begin(kWeights), std::end(kWeights));
    uint64_t done = 0;
    while (!shared_.stop.load(std::memory_order_relaxed)) {
      const auto now = Clock::now();
      if (now >= end) break;
      if (per_worker_rate > 0) {
        const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(done) / per_worker_rate));
        if (due > now) std::this_thread::sleep_until(std::min(due, end));
        if (Clock::now() >= end) break;
      }
      execute(static_cast<Operation>(pick(random_)));
      ++done;
    }
  }

 private:
  // Customers are split between workers, so every unit of one customer (one
  // consistency key) is run and recorded by one thread, in commit order.
  int64_t customer() {
    const int64_t per_worker = kCustomers / shared_.options.concurrency;
    std::uniform_int_distribution<int64_t> draw(0, per_worker - 1);
    return index_ + 1 + draw(random_) * shared_.options.concurrency;
  }
  int64_t product() { return std::uniform_int_distribution<int64_t>(1, kProducts)(random_); }
  static std::string key_of(int64_t customer) { return "customer:" + std::to_string(customer); }

  struct Timed {
    pg::Result result;
    int64_t latency_us;
  };
  Timed exec(const std::string& sql, const Params& params) {
    const auto started = Clock::now();
    pg::Result result = connection_.exec(sql, params);
    const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
    shared_.statements.fetch_add(1, std::memory_order_relaxed);
    if (!connection_.healthy()) {
      throw Failure("lost the connection to the primary " + connection_.describe() + ": " + result.error_message());
    }
    return {std::move(result), latency};
  }

  void count(Operation operation, bool failed, int64_t latency_us) {
    shared_.units[operation].fetch_add(1, std::memory_order_relaxed);
    if (failed) shared_.errors[operation].fetch_add(1, std::memory_order_relaxed);
    shared_.latency_us[operation].fetch_add(static_cast<uint64_t>(latency_us), std::memory_order_relaxed);
  }

  void autocommit(Operation operation, const std::string& key, const std::string& sql, const Params& params) {
    auto [result, latency_us] = exec(sql, params);
    if (shared_.recorder) shared_.recorder->record(connection_.get(), key, sql, params, result.get(), latency_us);
    count(operation, !result.succeeded(), latency_us);
  }

  // BEGIN, the statements in order (stopping at the first error), then COMMIT
  // or ROLLBACK; recorded as one unit.
  void transaction(Operation operation, const std::string& key,
                   const std::vector<std::pair<const std::string*, Params>>& statements) {
    producer::Unit unit;
    if (shared_.recorder) unit = shared_.recorder->begin(connection_.get(), key);
    int64_t total_us = 0;
    bool failed = false;
    auto begin = exec("BEGIN", {});
    failed = !begin.result.succeeded();
    for (const auto& [sql, params] : statements) {
      if (failed) break;
      auto [result, latency_us] = exec(*sql, params);
      total_us += latency_us;
      unit.add(*sql, params, result.get(), latency_us);
      failed = !result.succeeded();
    }
    auto end = exec(failed ? "ROLLBACK" : "COMMIT", {});
    failed = failed || !end.result.succeeded();
    if (failed) {
      unit.rollback();
    } else {
      unit.commit();
    }
    count(operation, failed, total_us);
  }

  void execute(Operation operation) {
    switch (operation) {
      case product_by_id: {
        const int64_t c = customer();
        autocommit(operation, key_of(c), kProductById, {std::to_string(product())});
        break;
      }
      case products_page: {
        const int64_t first = std::uniform_int_distribution<int64_t>(1, kProducts - 24)(random_);
        autocommit(operation, key_of(customer()), kProductsPage, {std::to_string(first), std::to_string(first + 24)});
        break;
      }
      case product_by_sku: {
        char sku[16];
        std::snprintf(sku, sizeof sku, "SKU-%06lld", static_cast<long long>(product()));
        autocommit(operation, key_of(customer()), kProductBySku, {std::string(sku)});
        break;
      }
      case category_report:
        autocommit(operation, key_of(customer()), kCategoryReport, {});
        break;
      case customer_profile: {
        const int64_t c = customer();
        autocommit(operation, key_of(c), kCustomerProfile, {std::to_string(c)});
        break;
      }
      case customer_orders: {
        const int64_t c = customer();
        autocommit(operation, key_of(c), kCustomerOrders, {std::to_string(c)});
        break;
      }
      case order_items: {
        // One of the customer's orders: seeded (c, c + 20000, ...) or placed
        // in this run (then read under the same key that wrote it).
        const int64_t c = customer();
        int64_t order = c + kCustomers * std::uniform_int_distribution<int64_t>(0, 11)(random_);
        auto placed = placed_by_customer_.find(c);
        if (placed != placed_by_customer_.end() && !placed->second.empty() && random_() % 2 == 0) {
          order = placed->second.back();
        }
        autocommit(operation, key_of(c), kOrderItems, {std::to_string(order)});
        break;
      }
      case status_report: {
        // Seeded orders only: their status never changes during a run, so
        // primary and shadow agree whenever each runs it.
        const int64_t first = std::uniform_int_distribution<int64_t>(1, kSeededOrders - 999)(random_);
        autocommit(operation, key_of(customer()), kStatusReport, {std::to_string(first), std::to_string(first + 999)});
        break;
      }
      case place_order: place(customer()); break;
      case pay_order: {
        if (unpaid_.empty()) {
          place(customer());
          break;
        }
        const auto [order, c] = unpaid_.front();
        unpaid_.pop_front();
        const std::string id = std::to_string(order);
        transaction(operation, key_of(c), {{&kLockOrder, {id}}, {&kPayOrder, {id}}});
        break;
      }
      case signup: {
        const int64_t id = shared_.new_id();
        const bool long_email = std::uniform_real_distribution<double>(0, 1)(random_) < shared_.options.long_email_share;
        std::string email = long_email ? "new.customer." + std::to_string(id) +
                                             ".signed.up.with.a.very.long.address.indeed@mail.example-shop.com"
                                       : "new" + std::to_string(id) + "@example.com";
        autocommit(operation, "signup:" + std::to_string(id), kSignup,
                   {std::to_string(id), std::move(email), "New customer " + std::to_string(id),
                    timestamp_text(std::chrono::system_clock::now())});
        break;
      }
      case kOperationCount: break;
    }
  }

  void place(int64_t c) {
    const int64_t order = shared_.new_id();
    const std::string id = std::to_string(order);
    const int lines = std::uniform_int_distribution<int>(1, 3)(random_);
    std::vector<std::pair<const std::string*, Params>> statements;
    statements.push_back({&kInsertOrder, {}});
    // Prices travel as the primary rendered them: the items store the same
    // value on both sides, whatever the shadow's products.price became.
    long long total_cents = 0;
    for (int line = 1; line <= lines; ++line) {
      const int64_t p = product();
      const int quantity = std::uniform_int_distribution<int>(1, 4)(random_);
      const std::string& price = shared_.prices[static_cast<size_t>(p - 1)];
      total_cents += quantity * std::llround(std::stod(price) * 100);
      statements.push_back({&kInsertItem,
                            {id, std::to_string(line), std::to_string(p), std::to_string(quantity), price}});
    }
    char total[32];
    std::snprintf(total, sizeof total, "%lld.%02lld", total_cents / 100, total_cents % 100);
    statements[0].second = {id, std::to_string(c), std::string(total),
                            timestamp_text(std::chrono::system_clock::now())};
    transaction(place_order, key_of(c), statements);
    placed_by_customer_[c].push_back(order);
    unpaid_.emplace_back(order, c);
    if (unpaid_.size() > 1000) unpaid_.pop_front();
  }

  Shared& shared_;
  int index_;
  std::mt19937_64 random_;
  pg::Connection connection_;
  std::map<int64_t, std::vector<int64_t>> placed_by_customer_;
  std::deque<std::pair<int64_t, int64_t>> unpaid_;  // (order, customer)
};

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
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
  const double cpu_at_start = process_cpu_seconds();
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(options.duration);
  std::vector<std::thread> threads;
  for (auto& worker : workers) {
    threads.emplace_back([&shared, &worker, start, end] {
      try {
        worker->run(start, end);
      } catch (...) {
        std::lock_guard lock(shared.mutex);
        if (!shared.failure) shared.failure = std::current_exception();
        shared.stop = true;
      }
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
  if (shared.failure) std::rethrow_exception(shared.failure);

  LoadgenReport report;
  report.elapsed = elapsed;
  report.cpu_seconds = cpu_seconds;
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
  if (recorder) {
    recorder->flush(options.recorder.flush_timeout);
    report.recorder = recorder->counters();
  }
  return report;
}

void print_report(const LoadgenReport& report, bool shadowing, std::ostream& out) {
  out << std::fixed << std::setprecision(1);
  out << "shop-loadgen: " << report.units << " units (" << report.statements << " statements) in "
      << report.elapsed.count() << " s: " << report.units_per_second() << " units/s, shadowing "
      << (shadowing ? "on" : "off") << ", " << report.cpu_us_per_unit() << " us CPU per unit\n";
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
