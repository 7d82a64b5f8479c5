#include "shadow_executor/savepoint_engine.hpp"

#include "shadow_executor/runner_errors.hpp"

#include "shadowpipe/result.hpp"

#include <algorithm>
#include <chrono>

namespace shadowpipe::executor {

namespace {

using Clock = std::chrono::steady_clock;

int64_t micros(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

Command savepoint_command(Command::Type type, std::string name) {
  Command command;
  command.type = type;
  command.text = std::move(name);
  return command;
}

Command statement_command(size_t unit, size_t step_index, const Step& step, const wire::Statement& recorded) {
  Command command;
  command.type = Command::Type::statement;
  command.unit = unit;
  command.step = step_index;
  command.statement = step.replayed ? &*step.replayed : &recorded;
  command.statement_count = step.statement_count;
  command.restores = step.restores;
  return command;
}

}  // namespace

std::string Command::sql() const {
  switch (type) {
    case Type::savepoint: return "SAVEPOINT " + text;
    case Type::rollback_to: return "ROLLBACK TO SAVEPOINT " + text;
    case Type::release: return "RELEASE SAVEPOINT " + text;
    case Type::statement: return statement->sql;
    case Type::bookkeeping: return text;
  }
  return text;
}

std::vector<Segment> plan_segments(const std::vector<PlannedUnit>& units) {
  using T = Command::Type;
  std::vector<Segment> segments;
  for (size_t u = 0; u < units.size(); ++u) {
    const auto& unit = units[u];
    std::vector<size_t> executed;
    for (size_t i = 0; i < unit.steps.size(); ++i) {
      if (unit.steps[i].execute) executed.push_back(i);
    }
    if (executed.empty()) continue;
    if (unit.per_statement) {
      // One segment per statement, so a failure skips nothing else.
      const std::string level = unit.undo ? "v" : "sp";
      for (size_t n = 0; n < executed.size(); ++n) {
        Segment segment;
        if (unit.undo && n == 0) {
          segment.push_back(savepoint_command(T::rollback_to, "sp"));
          segment.push_back(savepoint_command(T::savepoint, "v"));
        } else {
          segment.push_back(savepoint_command(T::rollback_to, level));
        }
        const size_t i = executed[n];
        segment.push_back(statement_command(u, i, unit.steps[i], unit.request->statements[i]));
        segment.push_back(savepoint_command(T::release, level));
        segment.push_back(savepoint_command(T::savepoint, level));
        segments.push_back(std::move(segment));
      }
    } else {
      // One segment: after a failure the rest of the unit is skipped, as the
      // primary's aborted transaction did; the next segment undoes it.
      Segment segment{savepoint_command(T::rollback_to, "sp")};
      for (size_t i : executed) segment.push_back(statement_command(u, i, unit.steps[i], unit.request->statements[i]));
      if (!unit.undo) {  // a unit to undo leaves sp before it: the next segment rolls it back
        segment.push_back(savepoint_command(T::release, "sp"));
        segment.push_back(savepoint_command(T::savepoint, "sp"));
      }
      segments.push_back(std::move(segment));
    }
  }
  return segments;
}

bool may_run_direct(const PlannedUnit& unit) {
  if (unit.undo) return false;
  return std::none_of(unit.steps.begin(), unit.steps.end(), [](const Step& step) { return step.restores; });
}

std::vector<Segment> plan_direct_segment(const std::vector<PlannedUnit>& units) {
  Segment segment;
  for (size_t u = 0; u < units.size(); ++u) {
    for (size_t i = 0; i < units[u].steps.size(); ++i) {
      if (units[u].steps[i].execute) {
        segment.push_back(statement_command(u, i, units[u].steps[i], units[u].request->statements[i]));
      }
    }
  }
  if (segment.empty()) return {};
  return {std::move(segment)};
}

void throw_refused(const std::string& what, const Reply* reply) {
  const std::string sqlstate = reply ? reply->sqlstate : "";
  const std::string why = what + (reply ? reply->message : std::string("no result"));
  if (transient_sqlstate(sqlstate)) throw Transient(Transient::Cause::refused_for_now, why + " (" + sqlstate + ")");
  throw Failure(why);
}

namespace {

[[noreturn]] void refused(ShadowSession& session, const Reply& reply) {
  session.script("ROLLBACK");
  throw_refused("savepoint bookkeeping failed on the shadow: ", &reply);
}

class PlainTransport final : public Transport {
 public:
  PlainTransport(ShadowSession& session, bool savepoints) : session_(session), savepoints_used_(savepoints) {}

  void run(const Segment& start, const std::vector<Segment>& segments, EngineSink& sink) override {
    std::string sql;
    for (const auto& command : start) sql += (sql.empty() ? "" : "; ") + command.sql();
    auto replies = session_.script(sql);
    while (replies.size() < start.size()) replies.emplace_back().kind = Reply::Kind::skipped;
    if (!sink.started(replies)) return;
    savepoints_ = {{"sp", false}};
    for (const auto& segment : segments) {
      bool failed = false;
      for (const auto& command : segment) {
        if (!command.is_statement()) {
          if (!failed) queue(command);
          continue;
        }
        if (failed && !command.restores) {
          sink.statement_skipped(command);
          continue;
        }
        send_queued();
        const auto begin = Clock::now();
        Reply reply = session_.statement(*command.statement, command.statement_count);
        const int64_t latency = micros(Clock::now() - begin);
        for (auto& savepoint : savepoints_) savepoint.touched = true;
        failed = !reply.ok();
        if (!sink.statement_done(command, reply, latency)) return;
      }
    }
  }

  std::vector<std::string> closing() override {
    if (savepoints_used_) queue(savepoint_command(Command::Type::rollback_to, "sp"));
    std::vector<std::string> commands;
    const std::string queued = std::exchange(queued_, {});
    for (size_t at = 0; at < queued.size();) {  // queue() wrote "command; command; "
      const size_t end = queued.find("; ", at);
      commands.push_back(queued.substr(at, end - at));
      at = end == std::string::npos ? queued.size() : end + 2;
    }
    return commands;
  }

 private:
  struct Savepoint {
    std::string name;
    bool touched;  // a statement ran since it was set or rolled back to
  };

  // Tracks the savepoints as the server will have them, to leave out a
  // rollback to the newest savepoint when nothing touched it since.
  void queue(const Command& command) {
    using T = Command::Type;
    auto newest_named = [&] {
      return std::find_if(savepoints_.rbegin(), savepoints_.rend(),
                          [&](const Savepoint& savepoint) { return savepoint.name == command.text; });
    };
    if (command.type == T::rollback_to) {
      if (!savepoints_.empty() && savepoints_.back().name == command.text && !savepoints_.back().touched) return;
      auto found = newest_named();
      if (found != savepoints_.rend()) {
        savepoints_.erase(found.base(), savepoints_.end());  // the ones set after it are gone
        savepoints_.back().touched = false;
      }
    } else if (command.type == T::release) {
      auto found = newest_named();
      if (found != savepoints_.rend()) savepoints_.erase(std::prev(found.base()), savepoints_.end());
    } else if (command.type == T::savepoint) {
      savepoints_.push_back({command.text, false});
    }
    queued_ += command.sql() + "; ";
  }

  void send_queued() {
    if (queued_.empty()) return;
    for (const auto& reply : session_.script(std::exchange(queued_, {}))) {
      if (!reply.ok()) refused(session_, reply);
    }
  }

  ShadowSession& session_;
  bool savepoints_used_;
  std::vector<Savepoint> savepoints_;
  std::string queued_;
};

class PipelinedTransport final : public Transport {
 public:
  PipelinedTransport(ShadowSession& session, bool savepoints) : session_(session), savepoints_(savepoints) {}

  // The start segment: when the fence refuses it fails, and the missing
  // savepoint sp then fails every later segment: nothing runs.
  void run(const Segment& start, const std::vector<Segment>& segments, EngineSink& sink) override {
    std::vector<Reply> replies;
    session_.pipeline_enter();
    try {
      send(start);
      for (const auto& segment : segments) send(segment);
      replies = session_.pipeline_collect();
    } catch (...) {
      session_.pipeline_leave();
      throw;
    }
    std::vector<Reply> started(std::make_move_iterator(replies.begin()),
                               std::make_move_iterator(replies.begin() + static_cast<long>(start.size())));
    if (!sink.started(started)) return;
    // latency_us: from the later of the statement's sending and the arrival
    // of the previous reply (or sync) to the arrival of its own: the
    // server's time for it, without the round trip the pipeline saves.
    size_t r = start.size();
    Clock::time_point previous = replies[r++].arrived;  // the start's sync
    for (const auto& segment : segments) {
      for (const auto& command : segment) {
        const Reply& reply = replies[r++];
        if (!command.is_statement()) {
          if (reply.kind == Reply::Kind::error) refused(session_, reply);
          continue;
        }
        if (reply.kind == Reply::Kind::skipped) {
          sink.statement_skipped(command);
          continue;
        }
        const int64_t latency = micros(reply.arrived - std::max(reply.sent, previous));
        previous = reply.arrived;
        sink.statement_done(command, reply, latency);  // everything arrived: the replies are all recorded
      }
      previous = replies[r++].arrived;  // the segment's sync
    }
  }

  std::vector<std::string> closing() override {
    if (!savepoints_) return {};
    return {"ROLLBACK TO SAVEPOINT sp"};
  }

 private:
  void send(const Segment& segment) {
    for (size_t i = 0; i < segment.size(); ++i) {
      const auto& command = segment[i];
      if (!command.is_statement()) {
        session_.pipeline_send(command.sql(), nullptr);
        continue;
      }
      session_.pipeline_send(command.statement->sql, command.statement);
      const bool more = std::any_of(segment.begin() + static_cast<long>(i) + 1, segment.end(),
                                    [](const Command& later) { return later.is_statement(); });
      if (more) session_.pipeline_flush_request();
    }
    session_.pipeline_sync();
  }

  ShadowSession& session_;
  bool savepoints_;
};

}  // namespace

std::unique_ptr<Transport> make_transport(bool pipelined, ShadowSession& session, bool savepoints) {
  if (pipelined) return std::make_unique<PipelinedTransport>(session, savepoints);
  return std::make_unique<PlainTransport>(session, savepoints);
}

}  // namespace shadowpipe::executor
