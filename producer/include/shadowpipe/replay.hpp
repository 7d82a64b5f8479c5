// shadow-replay: executes a statement file on a primary and publishes each
// unit of work through the producer library, as an application would.
//
// Input formats:
//  * JSON lines: {"sql": "...", "params": ["1", null, ...], "key": "...", "tx": "<group id>"}
//    Consecutive lines with the same "tx" form one transaction; a line
//    without "tx" is an autocommit unit. params and key are optional.
//  * a .sql file: statements split by PostgreSQL's scanner; BEGIN ... COMMIT
//    (or ROLLBACK) groups the statements between them into one transaction.
// A line or statement that does not parse is reported with its line number,
// skipped and counted.
#pragma once

#include "shadowpipe/recorder.hpp"
#include "shadowpipe/result.hpp"

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace shadowpipe::replay {

struct ReplayStatement {
  std::string sql;
  std::vector<std::optional<std::string>> params;
  int line = 0;
};

struct ReplayUnit {
  std::string key;   // empty: the request id
  bool transaction = false;
  bool ends_in_rollback = false;  // a .sql transaction that ends in ROLLBACK
  std::vector<ReplayStatement> statements;
  int line = 0;      // where the unit starts
};

struct BadInput {
  int line = 0;
  std::string reason;
};

struct ParsedInput {
  std::vector<ReplayUnit> units;
  std::vector<BadInput> bad;
  uint64_t lines = 0;  // JSON lines read (non-empty), or statements found in a .sql file
};

// Parses JSON lines; default_key applies to units that name none.
ParsedInput parse_json_lines(std::string_view text, const std::string& default_key = {});
// Splits a .sql file; every unit gets default_key (order across the file
// holds only when all its units share one key).
ParsedInput parse_sql(std::string_view text, const std::string& default_key);

enum class Format { automatic, jsonl, sql };

struct ReplayOptions {
  std::string input;  // a file path, or "-" for standard input
  Format format = Format::automatic;  // automatic: .sql files are SQL, anything else JSON lines
  std::string primary_dsn;
  std::string key;    // consistency key for units that name none; default below
  double rate = 0;    // units per second; 0: as fast as the primary allows
  int concurrency = 1;
  std::chrono::duration<double> duration{0};  // 0: until the input ends
  bool progress = false;
  producer::RecorderConfig recorder;
};

struct ReplayReport {
  uint64_t lines = 0;
  uint64_t bad_lines = 0;
  uint64_t units = 0;            // executed on the primary
  uint64_t units_not_run = 0;    // left when --duration ended the run
  uint64_t statements = 0;
  uint64_t primary_errors = 0;   // statements the primary refused (recorded as such)
  std::chrono::duration<double> elapsed{0};
  producer::Counters recorder;
};

// Bad input lines are written to `diagnostics` as "<input>:<line>: <reason>".
// Throws Failure when the input cannot be read or the primary reached.
ReplayReport run(const ReplayOptions& options, std::ostream& diagnostics);

void print_report(const ReplayReport& report, std::ostream& out);

}  // namespace shadowpipe::replay
