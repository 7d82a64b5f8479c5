// The comparator's per-pair work without Kafka: a partition pair's join state
// (PairState) and the Decider, fed the records comparator_throughput produces
// (one statement of three kinds, five columns, one pair in a hundred
// differing), already decoded. Requests run `lag` records ahead of their
// results, as two topics consumed side by side do, so that many wait.
//
// BM_Join: add_request + add_result per pair (the joined pair dropped).
// BM_JoinAndDecide: the same, decided and its tally held and counted, as the
// service does for a pair on one worker (no publishing).
// CPU per pair here is the part of comparator_throughput's CPU per pair that
// issue 14's join-state and expand work can cut, measured without the noise
// of a broker and other engineers on the machine.
#include "comparator/decider.hpp"
#include "comparator/pending.hpp"
#include "comparator_records.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace sp = shadowpipe;
namespace cmp = shadowpipe::comparator;

namespace {

constexpr int64_t kWall = 1'800'000'000'000'000;
using sp::bench::comparator_result;
using sp::bench::kComparatorSql;

// Decoded records, built once; each pair copies one (as decoding makes one).
struct Records {
  static constexpr int64_t kDistinct = 3'000;
  std::vector<std::string> fingerprints;
  std::vector<cmp::RequestSide> requests;
  std::vector<cmp::ResultSide> results;
  Records() {
    for (const char* sql : kComparatorSql) fingerprints.push_back(sp::statement::analyze(sql)->fingerprint);
    for (int64_t i = 0; i < kDistinct; ++i) {
      const auto& fingerprint = fingerprints[static_cast<size_t>(i) % fingerprints.size()];
      cmp::RequestSide request;
      request.key = "tenant-" + std::to_string(i % 1000);
      request.ts_us = kWall;
      request.statements.push_back({fingerprint, comparator_result(i, false)});
      requests.push_back(std::move(request));
      cmp::ResultSide result;
      result.ts_us = kWall + 500;
      result.statements.push_back({fingerprint, comparator_result(i, i % 100 == 0)});
      results.push_back(std::move(result));
    }
  }
};

const Records& records() {
  static const Records built;
  return built;
}

cmp::Decider make_decider() {
  cmp::Decider decider(cmp::DeciderOptions{});
  std::vector<sp::wire::Statement> statements;
  for (const char* sql : kComparatorSql) statements.push_back({sql, {}, "", {}});
  if (!decider.register_fingerprints(statements)) throw std::runtime_error("bench SQL does not parse");
  return decider;
}

void run_pairs(benchmark::State& state, bool decide) {
  const auto& input = records();
  const int64_t lag = state.range(0);
  cmp::PairState pair(60'000'000, 600'000'000);
  cmp::Decider decider = make_decider();
  std::vector<std::string> ids;
  for (int64_t i = 0; i < Records::kDistinct; ++i) ids.push_back("bench-" + std::to_string(i));
  int64_t next = 0;
  auto add_request = [&](int64_t i) {
    const auto slot = static_cast<size_t>(i % Records::kDistinct);
    cmp::RequestSide request = input.requests[slot];
    request.offset = i;
    return pair.add_request(ids[slot] + "-" + std::to_string(i / Records::kDistinct), std::move(request), kWall);
  };
  for (; next < lag; ++next) benchmark::DoNotOptimize(add_request(next));
  int64_t decided = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(add_request(next));
    const int64_t joined_index = next - lag;
    const auto slot = static_cast<size_t>(joined_index % Records::kDistinct);
    cmp::ResultSide result = input.results[slot];
    result.offset = joined_index;
    auto added = pair.add_result(ids[slot] + "-" + std::to_string(joined_index / Records::kDistinct), std::move(result), kWall);
    if (!added.joined) state.SkipWithError("a pair did not join");
    if (decide) {
      auto decision = decider.decide(*added.joined);
      if (decision.tally.request) pair.hold(added.joined->request.offset, std::move(decision.tally));
      benchmark::DoNotOptimize(decision.publish.data());
      if (++decided % 1'000 == 0) decider.count(pair.take_passed_tallies());
    }
    benchmark::DoNotOptimize(added);
    ++next;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["pending_bytes_per_request"] =
      pair.pending_requests() ? static_cast<double>(pair.pending_bytes()) / static_cast<double>(pair.pending_requests()) : 0;
}

void BM_Join(benchmark::State& state) { run_pairs(state, false); }
void BM_JoinAndDecide(benchmark::State& state) { run_pairs(state, true); }

}  // namespace

BENCHMARK(BM_Join)->Arg(1)->Arg(1000)->Arg(20000);
BENCHMARK(BM_JoinAndDecide)->Arg(1)->Arg(1000)->Arg(20000);
BENCHMARK_MAIN();
