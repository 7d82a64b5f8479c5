// Statement analysis throughput: analyze() on a mix of typical application
// statements (every call parses three times: tree, fingerprint, normalize),
// and the Analyzer's cache on the same mix (every call after the first round
// a hit). Items/s are statements/s.
#include "shadowpipe/statement.hpp"

#include <benchmark/benchmark.h>

#include <array>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

using shadowpipe::statement::Analyzer;

constexpr std::array<std::string_view, 10> kMix{
    "SELECT id, email, created_at FROM users WHERE id = 42",
    "SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.created_at > now() - interval '1 day' AND o.status IN ('paid', 'shipped') "
    "ORDER BY o.created_at DESC LIMIT 50",
    "INSERT INTO events (id, user_id, kind, payload, at) VALUES (gen_random_uuid(), 17, 'login', "
    "'{\"ip\": \"10.0.0.1\"}', now())",
    "UPDATE accounts SET balance = balance - 100.00, updated_at = now() WHERE id = 9001 AND balance >= 100.00",
    "DELETE FROM sessions WHERE expires_at < now()",
    "SELECT count(*) FROM (SELECT DISTINCT user_id FROM events WHERE kind = 'purchase') s",
    "WITH recent AS (SELECT user_id, max(at) AS last FROM events GROUP BY user_id) "
    "SELECT u.id, r.last FROM users u LEFT JOIN recent r ON r.user_id = u.id WHERE u.active",
    "BEGIN",
    "COMMIT",
    "SELECT * FROM products WHERE sku = 'ABC-123' FOR UPDATE",
};

void BM_AnalyzeUncached(benchmark::State& state) {
  size_t next = 0;
  for (auto _ : state) {
    auto result = shadowpipe::statement::analyze(kMix[next]);
    if (!result.ok()) throw std::logic_error(result.error().describe());
    benchmark::DoNotOptimize(result);
    next = (next + 1) % kMix.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_AnalyzeUncached);

// A bulk INSERT above the inline threshold runs on its own thread and stack:
// this shows what that costs next to parsing the text.
void BM_AnalyzeBulkInsert(benchmark::State& state) {
  std::string sql = "INSERT INTO t (id, name, at) VALUES (1, 'a', now())";
  while (sql.size() < static_cast<size_t>(state.range(0))) sql += ", (1, 'a', now())";
  for (auto _ : state) {
    auto result = shadowpipe::statement::analyze(sql);
    if (!result.ok()) throw std::logic_error(result.error().describe());
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * sql.size()));
}
// Real time: the work above the threshold happens on another thread.
BENCHMARK(BM_AnalyzeBulkInsert)->Arg(2000)->Arg(2100)->Arg(64 * 1024)->UseRealTime();

void BM_AnalyzerCached(benchmark::State& state) {
  Analyzer analyzer(4096);
  size_t next = 0;
  for (auto _ : state) {
    auto result = analyzer.analyze(kMix[next]);
    benchmark::DoNotOptimize(result);
    next = (next + 1) % kMix.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["hit_ratio"] =
      static_cast<double>(analyzer.hits()) / static_cast<double>(analyzer.hits() + analyzer.misses());
}
BENCHMARK(BM_AnalyzerCached);

// Two threads sharing one Analyzer: the cost of the mutex under contention.
Analyzer& shared_analyzer() {
  static Analyzer analyzer(4096);
  return analyzer;
}

void BM_AnalyzerCachedShared(benchmark::State& state) {
  size_t next = static_cast<size_t>(state.thread_index());
  for (auto _ : state) {
    auto result = shared_analyzer().analyze(kMix[next]);
    benchmark::DoNotOptimize(result);
    next = (next + 1) % kMix.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_AnalyzerCachedShared)->Threads(2);

}  // namespace

BENCHMARK_MAIN();
