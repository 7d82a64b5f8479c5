// A ShadowSession without a server, for the runner's unit tests: a small
// model of one PostgreSQL session that understands what the runner sends —
// BEGIN, COMMIT, ROLLBACK, savepoints and the aborted state they end, the
// shadowpipe.applied / results_log bookkeeping — and a toy traffic table
// ("INSERT INTO t VALUES (n)", "SELECT ..."). Tests make statements fail by
// their text (always or once) and COMMIT fail once, and read what was sent.
#pragma once

#include "shadow_executor/bookkeeping.hpp"
#include "shadow_executor/runner_errors.hpp"
#include "shadow_executor/shadow_session.hpp"

#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace shadowpipe::testing {

class FakeSession final : public executor::ShadowSession {
 public:
  using Reply = executor::Reply;

  // What commits: the toy table, the partition's next offset, the log.
  struct Data {
    std::set<int> rows;
    int64_t next_offset = 0;
    int64_t logged = 0;  // rows inserted into results_log
  };

  Data committed;
  std::vector<std::string> sent;          // every command, in order ("SYNC" for a pipeline sync)
  std::map<std::string, std::string> fail_always;  // statement text -> SQLSTATE
  std::map<std::string, std::string> fail_once;    // statement text -> SQLSTATE, then it succeeds
  std::string commit_fails_once;          // SQLSTATE of the next COMMIT; "08006" loses the connection
  int begins = 0;
  std::set<std::string> prepared;         // names PREPAREd in the session (a test may take them away)
  bool refuse_prepare = false;            // PREPARE fails, as through a pooler that cannot keep them
  std::string lose_prepared_at;           // this statement's text takes the prepared ones away as it runs

  std::string literal(std::string_view text) override {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  }

  std::vector<Reply> script(const std::string& sql) override {
    std::vector<Reply> replies;
    for (const auto& command : split(sql)) {
      replies.push_back(run(command));
      if (!replies.back().ok()) break;  // the simple protocol stops at an error
    }
    return replies;
  }

  Reply statement(const wire::Statement& statement, int) override { return run(statement.sql); }

  void pipeline_enter() override {
    piped_.clear();
    piped_params_.clear();
  }
  void pipeline_send(const std::string& sql, const wire::Statement* statement) override {
    piped_.push_back(sql);
    piped_params_.push_back(statement ? statement->params : executor::Params{});
  }
  void pipeline_send_prepared(const std::string& name, const wire::Statement& statement) override {
    piped_.push_back("EXECUTE " + name);
    piped_params_.push_back(statement.params);
  }
  void pipeline_flush_request() override {}
  void pipeline_sync() override {
    piped_.push_back(kSync);
    piped_params_.emplace_back();
  }
  std::vector<Reply> pipeline_collect() override {
    std::vector<Reply> replies;
    bool skipping = false;  // the rest of a segment after an error
    for (size_t i = 0; i < piped_.size(); ++i) {
      const std::string& command = piped_[i];
      if (command == kSync) {
        sent.push_back("SYNC");
        skipping = false;
        replies.emplace_back().kind = Reply::Kind::sync;
        continue;
      }
      if (skipping) {
        replies.emplace_back().kind = Reply::Kind::skipped;
        continue;
      }
      replies.push_back(run(command, piped_params_[i]));
      skipping = !replies.back().ok();
    }
    pipeline_leave();
    return replies;
  }
  void pipeline_leave() override {}
  std::unique_ptr<pg::Connection> open_sibling() override { return nullptr; }

  // The commands sent that start with `prefix`, in order.
  std::vector<std::string> sent_starting(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& command : sent) {
      if (command.rfind(prefix, 0) == 0) out.push_back(command);
    }
    return out;
  }

 private:
  static constexpr const char* kSync = "\x01sync";

  // ';'-separated commands, outside quotes.
  static std::vector<std::string> split(const std::string& sql) {
    std::vector<std::string> out;
    std::string current;
    bool quoted = false;
    for (char c : sql) {
      if (c == '\'') quoted = !quoted;
      if (c == ';' && !quoted) {
        out.push_back(trim(current));
        current.clear();
      } else {
        current += c;
      }
    }
    if (!trim(current).empty()) out.push_back(trim(current));
    return out;
  }
  static std::string trim(const std::string& text) {
    const auto begin = text.find_first_not_of(' ');
    const auto end = text.find_last_not_of(' ');
    return begin == std::string::npos ? "" : text.substr(begin, end - begin + 1);
  }

  static Reply ok(const std::string& tag, ExecStatusType status = PGRES_COMMAND_OK, long rows = 0) {
    Reply reply;
    reply.tag = tag;
    reply.affected_rows = rows;
    reply.result = pg::Result(PQmakeEmptyPGresult(nullptr, status));
    return reply;
  }
  static Reply error(const std::string& sqlstate, const std::string& message) {
    Reply reply;
    reply.kind = Reply::Kind::error;
    reply.sqlstate = sqlstate;
    reply.message = message;
    return reply;
  }
  // One row of one text column.
  static Reply value(const std::string& text) {
    Reply reply = ok("SELECT 1", PGRES_TUPLES_OK, 1);
    PGresAttDesc column{};
    column.name = const_cast<char*>("next_offset");
    column.typid = 20;
    column.typlen = 8;
    column.atttypmod = -1;
    PQsetResultAttrs(reply.result.get(), 1, &column);
    PQsetvalue(reply.result.get(), 0, 0, const_cast<char*>(text.c_str()), static_cast<int>(text.size()));
    return reply;
  }

  // BatchLog's statement: offset and log.
  Reply batch_log(const executor::Params& params) {
    work_.next_offset = std::stoll(params.at(3).value());
    const int64_t rows = array_length(params.at(4));
    work_.logged += rows;
    return ok("INSERT 0 " + std::to_string(rows), PGRES_COMMAND_OK, rows);
  }

  // The element count of a binary array parameter (array_recv's format).
  static int64_t array_length(const std::optional<std::string>& array) {
    if (!array || array->size() < 16) return 0;
    int64_t length = 0;
    for (size_t i = 12; i < 16; ++i) length = (length << 8) | static_cast<unsigned char>((*array)[i]);
    return length;
  }

  Reply run(const std::string& command, const executor::Params& params = {}) {
    static const std::regex insert(R"(INSERT INTO t VALUES \((\d+)\))");
    static const std::regex fence(R"(next_offset <= (\d+) FOR UPDATE)");
    static const std::regex prepared_fence(R"(^EXECUTE shadowpipe_fence\('.*', '.*', \d+, (\d+)\)$)");
    static const std::regex advance(R"(UPDATE shadowpipe\.applied SET next_offset = (\d+).*?(?:next_offset <= (\d+))?$)");
    sent.push_back(command);
    if (!lose_prepared_at.empty() && command == lose_prepared_at) prepared.clear();
    if (!in_tx_) work_ = committed;  // outside a transaction each command commits alone
    std::smatch match;
    if (command.rfind("BEGIN", 0) == 0) {
      ++begins;
      in_tx_ = true;
      aborted_ = false;
      work_ = committed;
      savepoints_.clear();
      return ok("BEGIN");
    }
    if (command == "ROLLBACK") {
      in_tx_ = aborted_ = false;
      return ok("ROLLBACK");
    }
    if (command.rfind("ROLLBACK TO SAVEPOINT ", 0) == 0) {
      const std::string name = command.substr(22);
      for (size_t i = savepoints_.size(); i-- > 0;) {
        if (savepoints_[i].first == name) {
          savepoints_.resize(i + 1);
          work_ = savepoints_[i].second;
          aborted_ = false;
          return ok("ROLLBACK");
        }
      }
      return fail("3B001", "savepoint \"" + name + "\" does not exist");
    }
    if (command == "COMMIT") {
      in_tx_ = false;
      if (std::exchange(aborted_, false)) return ok("ROLLBACK");  // as the server answers an aborted one
      if (!commit_fails_once.empty()) {
        const std::string sqlstate = std::exchange(commit_fails_once, "");
        if (sqlstate == "08006") throw Transient(Transient::Cause::connection_lost, "shadow connection lost: at COMMIT");
        return error(sqlstate, "commit refused");
      }
      committed = work_;
      return ok("COMMIT");
    }
    if (aborted_) return error("25P02", "current transaction is aborted");
    if (command.rfind("SAVEPOINT ", 0) == 0) {
      savepoints_.emplace_back(command.substr(10), work_);
      return ok("SAVEPOINT");
    }
    if (command.rfind("RELEASE SAVEPOINT ", 0) == 0) {
      const std::string name = command.substr(18);
      for (size_t i = savepoints_.size(); i-- > 0;) {
        if (savepoints_[i].first == name) {
          savepoints_.resize(i);
          return ok("RELEASE");
        }
      }
      return fail("3B001", "savepoint \"" + name + "\" does not exist");
    }
    if (command.find("DEALLOCATE ALL") != std::string::npos) prepared.clear();  // not transactional
    if (command == "DEALLOCATE ALL") return ok("DEALLOCATE ALL");
    if (command.rfind("PREPARE ", 0) == 0) {
      if (refuse_prepare) return fail("08P01", "prepared statements are not supported");
      const std::string name = command.substr(8, command.find(' ', 8) - 8);
      if (!prepared.insert(name).second) return fail("42P05", "prepared statement \"" + name + "\" already exists");
      return ok("PREPARE");
    }
    if (command.rfind("EXECUTE shadowpipe_", 0) == 0) {
      const std::string name = command.substr(8, command.find_first_of("( ", 8) - 8);
      if (!prepared.contains(name)) return fail("26000", "prepared statement \"" + name + "\" does not exist");
      if (std::regex_match(command, match, prepared_fence)) {
        if (work_.next_offset > std::stoll(match[1])) return fail("22P02", "shadowpipe fence: applied before");
        return value(std::to_string(work_.next_offset));
      }
      if (name == executor::bookkeeping_sql::kBatchLogStatement) return batch_log(params);
      return fail("42601", "the fake does not know " + command);
    }
    if (auto found = fail_always.find(command); found != fail_always.end()) return fail(found->second, "fails");
    if (auto found = fail_once.find(command); found != fail_once.end()) {
      const std::string sqlstate = found->second;
      fail_once.erase(found);
      return fail(sqlstate, "fails once");
    }
    if (std::regex_search(command, match, fence)) {
      if (work_.next_offset > std::stoll(match[1])) return fail("22P02", "shadowpipe fence: applied before");
      return value(std::to_string(work_.next_offset));
    }
    if (command.rfind("WITH fence AS (", 0) == 0) {  // fence_and_log, one statement
      const std::string update = command.substr(15, command.find(" RETURNING") - 15);
      auto moved = run(update);
      sent.pop_back();
      work_.logged += moved.affected_rows;
      if (!in_tx_) committed = work_;
      return ok("INSERT 0 " + std::to_string(moved.affected_rows), PGRES_COMMAND_OK, moved.affected_rows);
    }
    if (command.rfind("WITH advanced AS (UPDATE shadowpipe.applied", 0) == 0) return batch_log(params);
    if (std::regex_search(command, match, advance)) {
      if (match[2].matched && work_.next_offset > std::stoll(match[2])) return ok("UPDATE 0");
      work_.next_offset = std::stoll(match[1]);
      if (!in_tx_) committed = work_;
      return ok("UPDATE 1", PGRES_COMMAND_OK, 1);
    }
    if (command.rfind("SELECT next_offset FROM shadowpipe.applied", 0) == 0) {
      return value(std::to_string(committed.next_offset));
    }
    if (std::regex_match(command, match, insert)) {
      if (!work_.rows.insert(std::stoi(match[1])).second) return fail("23505", "duplicate key");
      if (!in_tx_) committed = work_;
      return ok("INSERT 0 1", PGRES_COMMAND_OK, 1);
    }
    if (command.rfind("SELECT", 0) == 0) return ok("SELECT 0", PGRES_TUPLES_OK);
    return ok("SET");  // SET LOCAL, RESET ALL, SET TRANSACTION ..., SET CONSTRAINTS ...
  }

  Reply fail(const std::string& sqlstate, const std::string& message) {
    if (in_tx_) aborted_ = true;
    return error(sqlstate, message);
  }

  bool in_tx_ = false;
  bool aborted_ = false;
  Data work_;
  std::vector<std::pair<std::string, Data>> savepoints_;
  std::vector<std::string> piped_;
  std::vector<executor::Params> piped_params_;  // parallel to piped_
};

}  // namespace shadowpipe::testing
