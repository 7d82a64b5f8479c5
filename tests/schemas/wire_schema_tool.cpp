// Helper of check_schemas.py, so the schemas are checked against what the
// codec really writes and reads:
//   wire_schema_tool write DIR   encodes sample records of every type into DIR/<topic>/<name>.json
//   wire_schema_tool check       reads "topic<TAB>json" lines from stdin and prints, per line,
//                                "ok" or "error <code> <field>"
#include "shadowpipe/wire.hpp"

#include "schemas/wire_samples.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

namespace {

using namespace shadowpipe;
using namespace shadowpipe::wire;

void write_file(const std::filesystem::path& dir, const std::string& topic, const std::string& name, const std::string& json) {
  std::filesystem::create_directories(dir / topic);
  std::ofstream out(dir / topic / (name + ".json"), std::ios::binary);
  out << json;
  if (!out) throw std::runtime_error("cannot write " + (dir / topic / name).string());
}

void write_samples(const std::filesystem::path& dir) {
  write_file(dir, "requests", "sample", encode(samples::request()));
  Request invalid_text = samples::request();
  invalid_text.statements[0].sql = "SELECT '\xff\xfe caf\xe9'";
  invalid_text.statements[0].params[0] = std::string("\xc3");
  invalid_text.session.extra.emplace_back("odd\x80name", "\xed\xa0\x80");
  write_file(dir, "requests", "invalid_utf8_repaired", encode(invalid_text));
  Request rollback = samples::request();
  rollback.tx = TxMode::rollback;
  rollback.statements.resize(1);
  rollback.statements[0].result = samples::error_result("40P01", "deadlock detected", 1500);
  rollback.statements[0].result.status = Status::refused;
  rollback.session = Session{};
  write_file(dir, "requests", "rollback_refused", encode(rollback));
  write_file(dir, "requests", "binary_and_copy_v2", encode(samples::binary_request()));

  write_file(dir, "results", "sample", encode(samples::shadow_result()));
  ShadowResult stamped = samples::shadow_result();
  stamped.published_below = stamped.source_offset;
  write_file(dir, "results", "stamped", encode(stamped));
  ShadowResult empty_result = samples::shadow_result();
  empty_result.statements.clear();
  empty_result.source_partition = -1;
  empty_result.source_offset = -1;
  write_file(dir, "results", "no_statements", encode(empty_result));

  write_file(dir, "mismatches", "sample", encode(samples::mismatch()));
  Mismatch bare;
  bare.kind = "shadow_missing";
  bare.request_id = "r-1";
  bare.key = "r-1";
  write_file(dir, "mismatches", "no_optional_members", encode(bare));
  Mismatch non_finite = samples::mismatch();
  non_finite.latency_ratio = std::numeric_limits<double>::infinity();
  write_file(dir, "mismatches", "non_finite_ratio", encode(non_finite));

  write_file(dir, "summary", "sample", encode(samples::summary()));
  write_file(dir, "summary", "empty", encode(Summary{}));
  Summary stalled = samples::summary();
  stalled.fingerprint.clear();
  stalled.stalled = {{3, 1717171700000000, 412}, {5, 1717171710000000, 9}};
  write_file(dir, "summary", "stalled", encode(stalled));

  write_file(dir, "gaps", "retention", encode(samples::gap()));
  Gap dropped = samples::gap();
  dropped.reason = "producer_dropped";
  dropped.from_offset = dropped.to_offset = -1;
  dropped.detail.clear();
  write_file(dir, "gaps", "producer_dropped", encode(dropped));

  write_file(dir, "dlq", "sample", encode(samples::dead_letter()));
  const Error error{ErrorCode::malformed, "", "not valid JSON: The input is not valid UTF-8"};
  write_file(dir, "dlq", "made_from_binary",
             encode(make_dead_letter(error, "shadow-executor-0", "shadow.requests", 2, 9,
                                              std::string_view("{\"v\":1,\xff\xfe\x00\x01", 11), 8)));
}

std::string check(const std::string& topic, std::string_view json) {
  auto verdict = [](const auto& result) -> std::string {
    if (result) return "ok";
    return "error " + std::string(to_string(result.error().code)) + " " + result.error().field;
  };
  if (topic == "requests") return verdict(decode_request(json));
  if (topic == "results") return verdict(decode_result(json));
  if (topic == "mismatches") return verdict(decode_mismatch(json));
  if (topic == "summary") return verdict(decode_summary(json));
  if (topic == "dlq") return verdict(decode_dead_letter(json));
  if (topic == "gaps") return verdict(decode_gap(json));
  throw std::runtime_error("unknown topic " + topic);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "write" && argc == 3) {
      write_samples(argv[2]);
      return 0;
    }
    if (mode == "check" && argc == 2) {
      std::string line;
      while (std::getline(std::cin, line)) {
        const size_t tab = line.find('\t');
        if (tab == std::string::npos) throw std::runtime_error("expected topic<TAB>json, got: " + line.substr(0, 80));
        std::cout << check(line.substr(0, tab), std::string_view(line).substr(tab + 1)) << '\n';
      }
      return 0;
    }
    std::cerr << "usage: wire_schema_tool write DIR | wire_schema_tool check < lines\n";
    return 2;
  } catch (const std::exception& failure) {
    std::cerr << "wire_schema_tool: " << failure.what() << '\n';
    return 1;
  }
}
