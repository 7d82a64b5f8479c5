// What one client session did, read from the protocol messages as they pass
// the proxy: statements (simple and extended protocol), their parameters,
// the digest of their rows (built row by row, never holding a result), their
// outcome and latency; grouped into units by the server's own transaction
// status (ReadyForQuery). No sockets here: the relay feeds the messages in,
// and a finished unit goes to a UnitSink, which must never block.
#pragma once

#include "shadowpipe/digest.hpp"
#include "shadowpipe/wire.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::proxy {

// Why a unit was not handed over for recording. Each is counted.
enum class UnitDrop {
  client_gone,          // the client went away inside the unit (or with a request unanswered)
  primary_gone,         // the primary closed the connection inside the unit
  binary_parameters,    // a binary parameter of a user type, or of a type the proxy never learnt (the shadow's OIDs differ)
  binary_results,       // binary results the executor cannot ask for alike: a simple Query's (a binary cursor), or
                        // binary columns without a text rendering beside text columns of such types
  copy_data,            // COPY FROM STDIN over --copy-max-bytes, COPY TO STDOUT, or COPY BOTH
  function_call,        // the FunctionCall message (fast path): not a statement
  oversized,            // a message over the capture bound, or a unit over its statement/byte bound
  row_limited,          // an Execute with a row limit whose portal ended before its last row: the client saw
                        // part of a result the shadow would return whole (asyncpg's fetchrow, for one)
  unmatched,            // the responses did not match what the proxy expected (the capture lost its place)
  queue_full,           // the recording queue was full (the recorder falls behind)
  session_state,        // the unit made or used session state the shadow's shared connection cannot hold (a role,
                        // PREPARE/EXECUTE, LISTEN, a temporary table, a session advisory lock, a setting whose
                        // value the text does not fix), or ran in a session that holds such state
};
inline constexpr std::array<UnitDrop, 11> kUnitDrops = {
    UnitDrop::client_gone, UnitDrop::primary_gone, UnitDrop::binary_parameters, UnitDrop::binary_results, UnitDrop::copy_data,
    UnitDrop::function_call, UnitDrop::oversized, UnitDrop::row_limited, UnitDrop::unmatched, UnitDrop::queue_full,
    UnitDrop::session_state};
std::string_view to_string(UnitDrop drop);

struct CapturedStatement {
  std::string sql;
  std::vector<std::optional<std::string>> params;  // text, or bytes where binding says binary; nullopt is NULL
  wire::StatementResult result;                    // the primary's, digest included
  wire::Binding binding;                           // binary parameters and results (requests v2)
  std::optional<std::string> copy_data;            // COPY FROM STDIN: what the client sent
};

struct CapturedUnit {
  wire::Session session;
  std::string key;       // consistency key; empty: the request id
  std::string database;  // the session's, from its StartupMessage: where its type OIDs mean something
  bool autocommit = false;
  wire::TxMode tx = wire::TxMode::autocommit;
  bool writes = false;   // some statement wrote (by its command tag, or COPY FROM)
  std::vector<CapturedStatement> statements;
};

class UnitSink {
 public:
  virtual ~UnitSink() = default;
  virtual void unit(CapturedUnit&& unit) = 0;  // never blocks
  // wrote_under_key: the unit wrote on the primary and committed; the
  // shadow will miss its writes, which must be announced (a gap) under this key.
  virtual void dropped(UnitDrop why, std::optional<std::string_view> wrote_under_key) = 0;
};

struct CaptureLimits {
  size_t max_statements = wire::Limits{}.max_statements;  // per unit
  size_t max_unit_bytes = 1'000'000;                      // SQL, parameters and COPY data of a unit
  // The data of one COPY FROM STDIN kept for the record (base64 in it, so a
  // third larger); above it the unit is dropped as copy_data.
  size_t max_copy_bytes = 512 * 1024;
};

class SessionCapture {
 public:
  using Clock = std::chrono::steady_clock;

  // key: the consistency key of every unit of this session (empty: each
  // unit's request id). rules: the digest normalization (the recorder's).
  SessionCapture(UnitSink& sink, std::string key, const digest::NormalizationConfig& normalization,
                 CaptureLimits limits = {});
  ~SessionCapture();

  // The database the session connected to (its units carry it).
  void set_database(std::string database) { database_ = std::move(database); }
  // The StartupMessage's parameters (after its length and protocol code):
  // settings given there (options=-c name=value, or a setting's own name)
  // are the session's from the start, and what RESET returns to.
  void startup(std::string_view parameters);

  // A whole message in each direction, in the order the proxy saw them.
  void frontend(char type, std::string_view payload, Clock::time_point now);
  void backend(char type, std::string_view payload, Clock::time_point now);
  // A message too large to hand over whole: its bytes passed uncaptured.
  void frontend_skipped(char type, Clock::time_point now);
  void backend_skipped(char type, Clock::time_point now);
  // The stream in one direction stopped being the protocol: nothing more
  // is captured on this session.
  void lost_sync();
  // The connection ends: an open unit is dropped, counted as `why`
  // (client_gone or primary_gone).
  void closed(UnitDrop why);

  uint64_t statements_captured() const { return statements_captured_; }

 private:
  struct Execution;
  struct Prepared {
    std::string sql;
    std::vector<uint32_t> param_types;                   // from Parse, then ParameterDescription; 0: unknown
    std::optional<std::vector<digest::Column>> columns;  // known after a Describe
    bool oversized = false;
  };
  struct Portal {
    std::string statement;  // the prepared statement it was bound from
    std::string sql;
    std::vector<std::optional<std::string>> params;  // in text (binary ones rendered), or bytes as binding says
    wire::Binding binding;                           // types and formats when some parameter stays binary
    std::vector<int16_t> result_formats;             // as the Bind gave them
    std::optional<std::vector<digest::Column>> columns;
    std::vector<int16_t> formats;                    // per column: 0 text, 1 binary
    std::optional<UnitDrop> problem;
    std::unique_ptr<Execution> running;  // an Execute with a row limit stopped part way
  };
  enum class OpKind { query, parse, bind, describe_statement, describe_portal, execute, close, sync, function, copy_fail };
  // A request waiting for its response. What it changes (a statement
  // parsed, a portal bound, one closed) applies when the server answers it,
  // not when it passes: with pipelining, later requests pass before earlier
  // ones are answered.
  struct Op {
    Op(OpKind kind_, std::string name_, Clock::time_point arrived_, std::optional<UnitDrop> problem_ = {})
        : kind(kind_), name(std::move(name_)), arrived(arrived_), problem(problem_) {}
    OpKind kind;
    std::string name;  // statement or portal; the SQL of a query
    Clock::time_point arrived;
    std::optional<UnitDrop> problem;  // known at the request already (a message too large)
    std::string text;                 // Parse: the SQL; Bind: the statement's name
    std::vector<std::optional<std::string>> params;  // Bind, as sent
    std::vector<int16_t> param_formats;              // Bind: per parameter
    std::vector<int16_t> result_formats;             // Bind
    std::vector<uint32_t> param_types;               // Parse
    std::optional<std::string> copy_data;            // Query, Execute: COPY data sent before the server asked
    bool copy_refused = false;                       // of which some could not be kept (see copy_from_client)
    char target = 0;                  // Describe, Close: 'S' or 'P'
  };
  Portal bind_portal(Op& op);
  static void choose_result_form(Portal& portal);

  void begin_statement(std::unique_ptr<Execution>& slot, const Portal& portal, Clock::time_point start);
  void begin_statement(std::unique_ptr<Execution>& slot, std::string sql, std::vector<std::optional<std::string>> params,
                       std::optional<std::vector<digest::Column>> columns, Clock::time_point start);
  void finish_statement(std::unique_ptr<Execution> execution, Clock::time_point now);
  void row_description(std::string_view payload, std::vector<digest::Column>& columns, std::vector<int16_t>& formats);
  // How a result in these formats is recorded: in text (every binary column
  // has a text rendering), with the executor asking for binary (some has
  // none, and every text column's type has one, so the executor can render
  // it from binary alike), or not at all (binary_results).
  enum class ResultForm { text, binary, not_recordable };
  static ResultForm result_form(const std::vector<digest::Column>& columns, const std::vector<int16_t>& formats);
  void data_row(std::string_view payload);
  // CopyData ('d') or CopyFail ('f') from the client during a COPY FROM STDIN.
  void copy_from_client(char type, std::string_view data);
  void error(std::string_view payload, Clock::time_point now);
  void complete(std::string_view tag, Clock::time_point now);
  void ready(char status, Clock::time_point now);
  void query_next_piece(Clock::time_point now);
  Execution* current();
  void problem(UnitDrop why);
  Clock::time_point start_of(const Op& op) const;

  // The session's settings and state (capture_session.cpp): what SET, RESET,
  // set_config, DISCARD and ParameterStatus change, followed through
  // savepoints and rollbacks, so each unit is recorded with the settings its
  // session had when it began.
  struct SessionState {
    std::map<std::string, std::string, std::less<>> set_by_sql;  // carried settings, by lowercase name
    bool role_changed = false;       // SET ROLE / SESSION AUTHORIZATION past its transaction
    bool temporary_objects = false;  // a temporary table, view or sequence outlives its transaction
    bool unknown = false;            // a carried setting changed to a value the text does not fix
    bool bound() const { return role_changed || temporary_objects || unknown; }
  };
  void parameter_status(std::string_view payload);
  void follow_statement(const Execution& execution, std::string_view tag);
  void settle_session(bool committed);
  void refresh_session();

  UnitSink& sink_;
  std::string key_;
  std::string database_;
  const digest::NormalizationConfig& normalization_;
  CaptureLimits limits_;
  bool disabled_ = false;

  wire::Session session_;  // what a unit beginning now is recorded with
  SessionState state_;            // as the session's transaction sees it
  SessionState committed_state_;  // as of the last transaction's end
  std::vector<std::pair<std::string, SessionState>> savepoints_;  // the state at each open savepoint
  std::map<std::string, std::string, std::less<>> startup_settings_;  // carried settings from the StartupMessage
  std::string reported_search_path_;                              // ParameterStatus (PostgreSQL 18+)
  std::string standard_conforming_strings_ = "on";               // ParameterStatus
  std::map<std::string, Prepared, std::less<>> prepared_;
  std::map<std::string, Portal, std::less<>> portals_;
  std::deque<Op> ops_;
  bool discarding_ = false;  // after an error in the extended protocol: until Sync
  Clock::time_point last_completion_{};  // when the last statement ended: a pipelined one starts no earlier

  // The simple Query at the head of ops_: its statements, one at a time.
  std::vector<std::string> pieces_;
  size_t next_piece_ = 0;
  bool query_started_ = false;
  bool query_failed_ = false;
  std::unique_ptr<Execution> query_execution_;

  // The unit being built.
  std::vector<CapturedStatement> statements_;
  wire::Session unit_session_;
  size_t unit_bytes_ = 0;
  bool in_transaction_ = false;
  bool unit_failed_ = false;   // a statement of the unit failed
  bool unit_writes_ = false;   // a statement of the unit wrote (see wrote())
  bool copy_out_ = false;      // the running statement is a COPY TO STDOUT
  std::string last_tag_;       // the last CommandComplete tag of the unit
  std::optional<UnitDrop> unit_problem_;
  uint64_t statements_captured_ = 0;
};

}  // namespace shadowpipe::proxy
