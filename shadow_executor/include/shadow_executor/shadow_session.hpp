// What the unit runner needs of its shadow connection, and nothing more: a
// simple-query script, one statement of the traffic, libpq's pipeline mode,
// quoting, and a second connection for catalog lookups. PgSession is the
// real one over pg::Connection; the runner's unit tests give it a fake, so
// its policy and retry logic run without a server (tests/shadow_executor/).
#pragma once

#include "shadowpipe/pg.hpp"
#include "shadowpipe/wire.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::executor {

using Params = std::vector<std::optional<std::string>>;

// The shadow's answer to one command.
struct Reply {
  using Clock = std::chrono::steady_clock;
  enum class Kind {
    ok,       // COMMAND_OK or TUPLES_OK
    error,    // the command failed: sqlstate, message
    skipped,  // not run: an earlier command of its pipeline segment (or script) failed
    sync,     // the end of a pipeline segment
  };
  Kind kind = Kind::ok;
  std::string sqlstate;
  std::string message;
  std::string tag;        // the command tag: "COMMIT", "ROLLBACK", "UPDATE 1"...
  long affected_rows = 0; // rows written (INSERT/UPDATE/DELETE) or returned (SELECT)
  // The server's result of a successful command, for digests, the catalog
  // and values; a fake builds one with libpq's PQmakeEmptyPGresult family.
  pg::Result result;
  Clock::time_point sent{};     // pipeline: when its segment was flushed
  Clock::time_point arrived{};  // when the reply arrived

  bool ok() const { return kind == Kind::ok; }
  bool returns_rows() const { return ok() && result && result.status() == PGRES_TUPLES_OK; }
  static Reply from(pg::Result result);
};

class ShadowSession {
 public:
  virtual ~ShadowSession() = default;

  // `text` as an SQL literal for this server.
  virtual std::string literal(std::string_view text) = 0;
  // Runs a script of ';'-separated commands in one round trip (the simple
  // protocol): one reply per command the server ran, none after an error.
  virtual std::vector<Reply> script(const std::string& sql) = 0;
  // Runs one statement of the traffic with its parameters (the extended
  // protocol, which refuses a smuggled second statement); a text of several
  // statements (statement_count > 1, no parameters) goes as a script whose
  // last result is the reply.
  virtual Reply statement(const wire::Statement& statement, int statement_count) = 0;

  // Pipeline mode: commands are sent without waiting; a sync ends a
  // segment (after an error the server skips the rest of its segment);
  // pipeline_collect returns one reply per command and per sync, in order,
  // and leaves pipeline mode (as does pipeline_leave, for an early exit).
  virtual void pipeline_enter() = 0;
  // statement: the traffic's statement whose parameters, types and result
  // format go with sql; null for the runner's own commands.
  virtual void pipeline_send(const std::string& sql, const wire::Statement* statement) = 0;
  // The runner's own statement `name`, PREPAREd on this connection before,
  // with the parameters of `statement` (its text is not sent).
  virtual void pipeline_send_prepared(const std::string& name, const wire::Statement& statement) = 0;
  // Asks the server to send the replies so far at once, not at the next
  // sync, so each statement's arrival time is its own.
  virtual void pipeline_flush_request() = 0;
  virtual void pipeline_sync() = 0;
  virtual std::vector<Reply> pipeline_collect() = 0;
  virtual void pipeline_leave() = 0;

  // A connection of its own to the same server as the same role, for the
  // catalog lookups that must never run inside a unit; null when there is none.
  virtual std::unique_ptr<pg::Connection> open_sibling() = 0;
};

// The real session. Throws Transient (connection_lost) when the connection breaks,
// Failure when libpq refuses a call on a working connection.
class PgSession final : public ShadowSession {
 public:
  explicit PgSession(const pg::Connection& conn) : conn_(conn) {}

  std::string literal(std::string_view text) override;
  std::vector<Reply> script(const std::string& sql) override;
  Reply statement(const wire::Statement& statement, int statement_count) override;
  void pipeline_enter() override;
  void pipeline_send(const std::string& sql, const wire::Statement* statement) override;
  void pipeline_send_prepared(const std::string& name, const wire::Statement& statement) override;
  void pipeline_flush_request() override;
  void pipeline_sync() override;
  std::vector<Reply> pipeline_collect() override;
  void pipeline_leave() override;
  std::unique_ptr<pg::Connection> open_sibling() override;

 private:
  void flush();
  void throw_if_lost() const;
  // After a pipeline send (libpq's result: 0 when it failed): one more reply to collect.
  void queued(int sent);
  pg::Result copy_in(const wire::Statement& statement);

  const pg::Connection& conn_;
  std::vector<bool> sent_is_sync_;        // per pipeline command: a sync?
  std::vector<Reply::Clock::time_point> sent_at_;
  size_t segment_start_ = 0;
};

}  // namespace shadowpipe::executor
