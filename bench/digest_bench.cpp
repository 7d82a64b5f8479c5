// Result digest throughput against raw XXH3 over the same value bytes.
//
// BM_DigestBuilder/N and BM_DigestResult/N digest N rows × 8 columns of mixed
// types (the DigestBuilder path, and the digest_result path over a PGresult
// as the producer sees it); BM_RawXXH3/N hashes the same values' bytes
// concatenated in one XXH3_64bits call, the upper bound. At exit the program
// prints each digest's bytes/s as a fraction of raw XXH3 for the same N.
#include "shadowpipe/digest.hpp"
#include "shadowpipe/pg_result.hpp"

#include <benchmark/benchmark.h>
#include <libpq-fe.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdio>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

using shadowpipe::digest::Column;
using shadowpipe::digest::DigestBuilder;
using shadowpipe::digest::NormalizationRules;
using Value = std::optional<std::string_view>;

const std::vector<Column> kColumns = {
    {"id", 23},          {"name", 25},   {"amount", 1700}, {"created_at", 1184},
    {"active", 16},      {"score", 701}, {"email", 1043},  {"counter", 20},
};

// N rows of plausible libpq text values; deterministic so runs compare. Laid
// out flat, as a row source such as a PGresult is, so the benchmark measures
// the digest rather than pointer chasing through the benchmark's own data.
struct Table {
  std::string concatenated;          // every non-NULL value's bytes, for raw XXH3
  std::vector<Value> values;         // rows × kColumns.size(), views into concatenated
  size_t rows = 0;
  std::span<const Value> row(size_t r) const { return {values.data() + r * kColumns.size(), kColumns.size()}; }
};

uint64_t next_random(uint64_t& state) {  // splitmix64
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Table make_table(size_t row_count) {
  static const char* const kNames[] = {"alice", "bob", "carol", "dave", "eve", "mallory", "trent", "peggy"};
  Table table;
  table.rows = row_count;
  // (offset, length) per value, length -1 for NULL; views are made once the
  // concatenated buffer has stopped growing.
  std::vector<std::pair<size_t, long>> spans;
  uint64_t seed = 42;
  char buffer[96];
  for (size_t r = 0; r < row_count; ++r) {
    const uint64_t x = next_random(seed);
    std::vector<std::string> texts;
    texts.push_back(std::to_string(r + 1));
    texts.push_back(std::string(kNames[x % 8]) + " " + kNames[(x >> 3) % 8] + "son");
    std::snprintf(buffer, sizeof buffer, "%llu.%02llu", static_cast<unsigned long long>((x >> 8) % 100000),
                  static_cast<unsigned long long>((x >> 30) % 100));
    texts.emplace_back(buffer);
    std::snprintf(buffer, sizeof buffer, "2024-%02llu-%02llu %02llu:%02llu:%02llu.%06llu+00",
                  static_cast<unsigned long long>(1 + (x >> 5) % 12), static_cast<unsigned long long>(1 + (x >> 9) % 28),
                  static_cast<unsigned long long>((x >> 14) % 24), static_cast<unsigned long long>((x >> 19) % 60),
                  static_cast<unsigned long long>((x >> 25) % 60), static_cast<unsigned long long>((x >> 31) % 1000000));
    texts.emplace_back(buffer);
    texts.emplace_back((x >> 40) & 1 ? "t" : "f");
    std::snprintf(buffer, sizeof buffer, "%.17g", static_cast<double>(x >> 11) / 9007199254740992.0 * 1000.0);
    texts.emplace_back(buffer);
    texts.push_back(std::string(kNames[(x >> 44) % 8]) + "." + std::to_string((x >> 47) % 10000) + "@example.com");
    texts.push_back(std::to_string(static_cast<long long>(x >> 2)));

    for (size_t c = 0; c < texts.size(); ++c) {
      // About 1 in 16 names is NULL, as nullable columns are in practice.
      if (c == 1 && ((x >> 50) & 15) == 0) {
        spans.emplace_back(0, -1);
        continue;
      }
      spans.emplace_back(table.concatenated.size(), static_cast<long>(texts[c].size()));
      table.concatenated += texts[c];
    }
  }
  table.values.reserve(spans.size());
  for (const auto& [offset, length] : spans) {
    if (length < 0) {
      table.values.emplace_back(std::nullopt);
    } else {
      table.values.emplace_back(std::string_view(table.concatenated).substr(offset, static_cast<size_t>(length)));
    }
  }
  return table;
}

const Table& table_for(size_t rows) {
  static std::map<size_t, Table> tables;
  auto found = tables.find(rows);
  if (found == tables.end()) found = tables.emplace(rows, make_table(rows)).first;
  return found->second;
}

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};

const PGresult* pg_result_for(size_t rows) {
  static std::map<size_t, std::unique_ptr<PGresult, PgResultDeleter>> results;
  auto found = results.find(rows);
  if (found != results.end()) return found->second.get();
  const Table& table = table_for(rows);
  std::unique_ptr<PGresult, PgResultDeleter> result(PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
  std::vector<PGresAttDesc> attributes;
  for (const Column& column : kColumns) {
    attributes.push_back(PGresAttDesc{const_cast<char*>(column.name.c_str()), 0, 0, 0, column.type_oid, -1, -1});
  }
  PQsetResultAttrs(result.get(), static_cast<int>(attributes.size()), attributes.data());
  for (size_t r = 0; r < table.rows; ++r) {
    for (size_t c = 0; c < kColumns.size(); ++c) {
      const Value& value = table.row(r)[c];
      PQsetvalue(result.get(), static_cast<int>(r), static_cast<int>(c), value ? const_cast<char*>(value->data()) : nullptr,
                 value ? static_cast<int>(value->size()) : -1);
    }
  }
  return results.emplace(rows, std::move(result)).first->second.get();
}

NormalizationRules rules_for(int64_t with_rules) {
  NormalizationRules rules;
  if (with_rules) {
    rules.numeric_scale = 2;
    rules.float_digits = 12;
    rules.timestamp_precision = 3;
  }
  return rules;
}

void set_throughput(benchmark::State& state, const Table& table) {
  const auto iterations = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(table.concatenated.size()));
  state.counters["values_per_second"] =
      benchmark::Counter(iterations * static_cast<double>(table.values.size()), benchmark::Counter::kIsRate);
}

// Args: rows, normalization rules on (1) or off (0).
void BM_DigestBuilder(benchmark::State& state) {
  const Table& table = table_for(static_cast<size_t>(state.range(0)));
  const NormalizationRules rules = rules_for(state.range(1));
  for (auto _ : state) {
    DigestBuilder builder(kColumns, rules);
    for (size_t r = 0; r < table.rows; ++r) builder.add_row(table.row(r));
    auto digest = std::move(builder).finish();
    benchmark::DoNotOptimize(digest.ordered);
  }
  set_throughput(state, table);
}

void BM_DigestResult(benchmark::State& state) {
  const Table& table = table_for(static_cast<size_t>(state.range(0)));
  const PGresult* result = pg_result_for(static_cast<size_t>(state.range(0)));
  const NormalizationRules rules = rules_for(state.range(1));
  for (auto _ : state) {
    auto digest = shadowpipe::digest::digest_result(result, rules);
    benchmark::DoNotOptimize(digest.ordered);
  }
  set_throughput(state, table);
}

void BM_RawXXH3(benchmark::State& state) {
  const Table& table = table_for(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    uint64_t hash = XXH3_64bits(table.concatenated.data(), table.concatenated.size());
    benchmark::DoNotOptimize(hash);
  }
  set_throughput(state, table);
}

BENCHMARK(BM_RawXXH3)->ArgsProduct({{20, 100000}, {0}});
BENCHMARK(BM_DigestBuilder)->ArgsProduct({{20, 100000}, {0, 1}});
BENCHMARK(BM_DigestResult)->ArgsProduct({{20, 100000}, {0, 1}});

// Console output as usual, plus bytes/s kept per run name for the ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      // With repetitions, the median stands for the run; otherwise the single run.
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "median") continue;
      auto bytes = run.counters.find("bytes_per_second");
      if (bytes == run.counters.end()) continue;
      std::string name = run.run_name.str();
      bytes_per_second_[name] = bytes->second.value;
    }
  }

  void PrintRatios() const {
    for (const auto& [name, rate] : bytes_per_second_) {
      if (name.rfind("BM_Digest", 0) != 0) continue;
      // "BM_DigestBuilder/100000/1" → raw "BM_RawXXH3/100000/0".
      const size_t first_slash = name.find('/');
      const size_t last_slash = name.rfind('/');
      const std::string raw_name =
          "BM_RawXXH3" + name.substr(first_slash, last_slash - first_slash) + "/0";
      auto raw = bytes_per_second_.find(raw_name);
      if (raw == bytes_per_second_.end() || raw->second <= 0) continue;
      std::printf("ratio %-32s to %-22s %.3f\n", name.c_str(), raw_name.c_str(), rate / raw->second);
    }
  }

 private:
  std::map<std::string, double> bytes_per_second_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
