// The demo shop's operations: the statements of each, and how one worker picks, paces, runs and records them.
#include "shop_workload.hpp"

#include "shadowpipe/result.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <thread>

namespace shadowpipe::shop::workload {

namespace {

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

}  // namespace

void Worker::run(Clock::time_point start, Clock::time_point end) {
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

int64_t Worker::customer() {
  const int64_t per_worker = kCustomers / shared_.options.concurrency;
  std::uniform_int_distribution<int64_t> draw(0, per_worker - 1);
  return index_ + 1 + draw(random_) * shared_.options.concurrency;
}

Worker::Timed Worker::exec(const std::string& sql, const Params& params) {
  const auto started = Clock::now();
  pg::Result result = connection_.exec(sql, params);
  const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
  shared_.statements.fetch_add(1, std::memory_order_relaxed);
  if (!connection_.healthy()) {
    throw Failure("lost the connection to the primary " + connection_.describe() + ": " + result.error_message());
  }
  return {std::move(result), latency};
}

SampledThreadCpu::SampledThreadCpu() {
  // The mean of many empty intervals, less the highest 2 %: an interrupt
  // that lands in one of them would otherwise count for every sample. About
  // half a millisecond, once per worker.
  std::array<int64_t, 1000> empty{};
  for (auto& interval : empty) {
    const int64_t before = thread_cpu_ns();
    interval = thread_cpu_ns() - before;
  }
  std::sort(empty.begin(), empty.end());
  const size_t kept = empty.size() - empty.size() / 50;
  int64_t sum = 0;
  for (size_t i = 0; i < kept; ++i) sum += empty[i];
  clock_overhead_ns_ = sum / static_cast<int64_t>(kept);
}

int64_t SampledThreadCpu::thread_cpu_ns() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

void Worker::count(Operation operation, bool failed, int64_t latency_us) {
  shared_.units[operation].fetch_add(1, std::memory_order_relaxed);
  if (failed) shared_.errors[operation].fetch_add(1, std::memory_order_relaxed);
  shared_.latency_us[operation].fetch_add(static_cast<uint64_t>(latency_us), std::memory_order_relaxed);
}

void Worker::autocommit(Operation operation, const std::string& key, const std::string& sql, const Params& params) {
  auto [result, latency_us] = exec(sql, params);
  shared_.unit_statements.fetch_add(1, std::memory_order_relaxed);
  if (shared_.recorder) {
    recording([&] { shared_.recorder->record(connection_.get(), key, sql, params, result.get(), latency_us); });
  }
  count(operation, !result.succeeded(), latency_us);
}

void Worker::transaction(Operation operation, const std::string& key,
                 const std::vector<std::pair<const std::string*, Params>>& statements) {
  producer::Unit unit;
  if (shared_.recorder) recording([&] { unit = shared_.recorder->begin(connection_.get(), key); });
  int64_t total_us = 0;
  bool failed = false;
  auto begin = exec("BEGIN", {});
  failed = !begin.result.succeeded();
  for (const auto& [sql, params] : statements) {
    if (failed) break;
    auto [result, latency_us] = exec(*sql, params);
    shared_.unit_statements.fetch_add(1, std::memory_order_relaxed);
    total_us += latency_us;
    if (unit) recording([&] { unit.add(*sql, params, result.get(), latency_us); });
    failed = !result.succeeded();
  }
  auto end = exec(failed ? "ROLLBACK" : "COMMIT", {});
  failed = failed || !end.result.succeeded();
  if (unit) recording([&] { failed ? unit.rollback() : unit.commit(); });
  count(operation, failed, total_us);
}

void Worker::execute(Operation operation) {
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

void Worker::place(int64_t c) {
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

}  // namespace shadowpipe::shop::workload
