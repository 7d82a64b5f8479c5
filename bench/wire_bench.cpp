// Wire codec throughput on a typical shadow.requests record (a transaction of
// three statements with parameters, result columns and digests):
//  * decode_request, records/s and bytes/s, and decode_request_into reusing
//    one Request from record to record (as a consumer thread does);
//  * a bare simdjson on-demand walk of the same bytes that reads every value
//    (the floor any decoder on simdjson pays), already padded, so the ratio
//    printed at the end charges the decoder for its padded copy too;
//  * encode(Request).
#include "shadowpipe/wire.hpp"

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdio>
#include <map>

namespace {

using namespace shadowpipe;
using namespace shadowpipe::wire;
namespace od = simdjson::ondemand;

StatementResult result_of(int64_t rows, std::vector<digest::Column> columns, uint64_t seed) {
  StatementResult result;
  result.rows = rows;
  result.columns = std::move(columns);
  result.ordered = 0x9e3779b97f4a7c15ULL * seed;
  result.unordered = 0xc2b2ae3d27d4eb4fULL * seed;
  for (size_t i = 0; i < result.columns.size(); ++i) result.column_digests.push_back(0x165667b19e3779f9ULL * (seed + i));
  result.latency_us = 300 + static_cast<int64_t>(seed) * 97;
  return result;
}

Request typical_request() {
  Request record;
  record.request_id = "01HZX3K9Q7G4V2M8N5P6R1T0WY";
  record.ts_us = 1717171717123456;
  record.key = "tenant:4711";
  record.source = "billing-api@web-7";
  record.session = {"Europe/Berlin", "ISO, DMY", "postgres", "\"$user\", public", {{"extra_float_digits", "1"}}};
  record.tx = TxMode::commit;
  record.statements = {
      {"SELECT id, name, email, balance, created_at FROM accounts WHERE tenant_id = $1 AND status = $2 ORDER BY id LIMIT 50",
       {std::string("4711"), std::string("active")}, "5e6f0a1b2c3d4e5f",
       result_of(12, {{"id", 20}, {"name", 25}, {"email", 25}, {"balance", 1700}, {"created_at", 1184}}, 1)},
      {"UPDATE accounts SET balance = balance - $1, updated_at = now() WHERE id = $2 AND tenant_id = $3",
       {std::string("25.00"), std::string("42"), std::string("4711")}, "a1b2c3d4e5f60718", result_of(1, {}, 2)},
      {"INSERT INTO ledger (account_id, amount, memo, reference) VALUES ($1, $2, $3, $4) RETURNING id",
       {std::string("42"), std::string("-25.00"), std::string("Monthly fee \"basic\" plan"), std::nullopt},
       "0f1e2d3c4b5a6978", result_of(1, {{"id", 20}}, 3)},
  };
  return record;
}

const std::string& typical_json() {
  static const std::string json = encode(typical_request());
  return json;
}

void BM_DecodeRequest(benchmark::State& state) {
  const std::string& json = typical_json();
  for (auto _ : state) {
    auto decoded = decode_request(json);
    if (!decoded) state.SkipWithError(decoded.error().describe().c_str());
    benchmark::DoNotOptimize(decoded);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
}
BENCHMARK(BM_DecodeRequest);

void BM_DecodeRequestInto(benchmark::State& state) {
  const std::string& json = typical_json();
  Request record;
  for (auto _ : state) {
    if (auto decoded = decode_request_into(json, record); !decoded) state.SkipWithError(decoded.error().describe().c_str());
    benchmark::DoNotOptimize(record);
  }
  if (record != typical_request()) state.SkipWithError("decode_request_into gave another record");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
}
BENCHMARK(BM_DecodeRequestInto);

// Reads every value the way a decoder must: strings unescaped, numbers parsed.
bool walk(od::value value, size_t& sink) {
  od::json_type type;
  if (value.type().get(type)) return false;
  switch (type) {
    case od::json_type::object: {
      od::object object;
      if (value.get_object().get(object)) return false;
      for (auto member : object) {
        od::field field;
        if (std::move(member).get(field)) return false;
        sink += static_cast<size_t>(*field.key().raw());
        if (!walk(field.value(), sink)) return false;
      }
      return true;
    }
    case od::json_type::array: {
      od::array array;
      if (value.get_array().get(array)) return false;
      for (auto element : array) {
        od::value item;
        if (std::move(element).get(item) || !walk(item, sink)) return false;
      }
      return true;
    }
    case od::json_type::string: {
      std::string_view text;
      if (value.get_string().get(text)) return false;
      sink += text.size();
      return true;
    }
    case od::json_type::number: {
      od::number number;
      if (value.get_number().get(number)) return false;
      sink += static_cast<size_t>(number.get_number_type());
      return true;
    }
    case od::json_type::boolean: {
      bool flag;
      if (value.get_bool().get(flag)) return false;
      sink += flag;
      return true;
    }
    case od::json_type::null: {
      bool is_null;
      return !value.is_null().get(is_null);
    }
  }
  return false;
}

void BM_BareSimdjsonWalk(benchmark::State& state) {
  const simdjson::padded_string padded(typical_json());
  od::parser parser;
  for (auto _ : state) {
    size_t sink = 0;
    od::document document;
    od::value root;
    if (parser.iterate(padded).get(document) || document.get_value().get(root) || !walk(root, sink)) {
      state.SkipWithError("bare walk failed");
    }
    benchmark::DoNotOptimize(sink);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * padded.size()));
}
BENCHMARK(BM_BareSimdjsonWalk);

void BM_EncodeRequest(benchmark::State& state) {
  const Request record = typical_request();
  size_t bytes = 0;
  for (auto _ : state) {
    std::string json = encode(record);
    bytes += json.size();
    benchmark::DoNotOptimize(json);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_EncodeRequest);

// Prints decode throughput as a fraction of the bare walk's, from this run, by
// CPU time (the machine is shared; wall time there measures the neighbours).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Iteration && !run.error_occurred) {
        seconds_[run.run_name.function_name].push_back(run.GetAdjustedCPUTime());
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    const double bare = best("BM_BareSimdjsonWalk");
    for (const char* name : {"BM_DecodeRequest", "BM_DecodeRequestInto"}) {
      const double decode = best(name);
      if (decode > 0 && bare > 0) {
        std::printf("\nrecord: %zu bytes; %s at %.2f of a bare simdjson on-demand walk (fastest repetition, CPU time; aim: >= 0.70)",
                    typical_json().size(), name, bare / decode);
      }
    }
    std::printf("\n");
    ConsoleReporter::Finalize();
  }

 private:
  double best(const std::string& name) const {
    auto found = seconds_.find(name);
    if (found == seconds_.end() || found->second.empty()) return 0;
    double fastest = found->second.front();
    for (double time : found->second) fastest = std::min(fastest, time);
    return fastest;
  }
  std::map<std::string, std::vector<double>> seconds_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
