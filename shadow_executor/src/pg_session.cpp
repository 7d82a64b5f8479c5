#include "shadow_executor/runner_errors.hpp"
#include "shadow_executor/shadow_session.hpp"

#include "shadowpipe/result.hpp"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace shadowpipe::executor {

Reply Reply::from(pg::Result result) {
  Reply reply;
  if (!result) {
    reply.kind = Kind::skipped;
    return reply;
  }
  switch (result.status()) {
    case PGRES_PIPELINE_SYNC: reply.kind = Kind::sync; break;
    case PGRES_PIPELINE_ABORTED: reply.kind = Kind::skipped; break;
    default: reply.kind = result.succeeded() ? Kind::ok : Kind::error;
  }
  if (reply.kind == Kind::error) {
    reply.sqlstate = result.sqlstate();
    reply.message = result.error_message();
  }
  if (reply.kind == Kind::ok) {
    reply.tag = PQcmdStatus(result.get());
    reply.affected_rows = result.affected_rows();
  }
  reply.result = std::move(result);
  reply.arrived = Clock::now();
  return reply;
}

void PgSession::throw_if_lost() const {
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    std::string why = PQerrorMessage(conn_.get());
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw Transient(Transient::Cause::connection_lost, "shadow connection lost: " + why);
  }
}

std::string PgSession::literal(std::string_view text) {
  std::unique_ptr<char, decltype(&PQfreemem)> quoted(PQescapeLiteral(conn_.get(), text.data(), text.size()),
                                                     &PQfreemem);
  if (!quoted) {
    throw_if_lost();
    throw Failure(std::string("cannot quote a value for the shadow: ") + PQerrorMessage(conn_.get()));
  }
  return quoted.get();
}

std::vector<Reply> PgSession::script(const std::string& sql) {
  if (!PQsendQuery(conn_.get(), sql.c_str())) {
    throw_if_lost();
    throw Failure(std::string("cannot send to the shadow: ") + PQerrorMessage(conn_.get()));
  }
  std::vector<Reply> replies;
  while (PGresult* raw = PQgetResult(conn_.get())) replies.push_back(Reply::from(pg::Result(raw)));
  throw_if_lost();
  return replies;
}

namespace {

// n values in the object itself up to kInline, on the heap beyond: a
// statement's parameter arrays are built for every statement, and most
// statements have a few parameters.
template <typename T>
class ParamArray {
 public:
  static constexpr size_t kInline = 16;
  explicit ParamArray(size_t n) : size_(n) {
    if (n > kInline) heap_.resize(n);
  }
  T* data() { return size_ > kInline ? heap_.data() : inline_.data(); }
  const T* data() const { return size_ > kInline ? heap_.data() : inline_.data(); }
  T& operator[](size_t i) { return data()[i]; }

 private:
  size_t size_;
  std::array<T, kInline> inline_{};
  std::vector<T> heap_;
};

// A statement's parameters as libpq takes them, with the types and formats
// the primary's client bound them with (requests v2) and its result format.
struct BoundParams {
  size_t params;
  ParamArray<const char*> values;
  ParamArray<int> lengths;
  ParamArray<int> formats;
  size_t type_count;
  ParamArray<Oid> types;
  int result_format = 0;

  explicit BoundParams(const wire::Statement& statement)
      : params(statement.params.size()),
        values(params),
        lengths(params),
        formats(params),
        type_count(statement.binding.param_types.size()),
        types(type_count),
        result_format(statement.binding.result_format) {
    const auto& binding = statement.binding;
    for (size_t i = 0; i < params; ++i) {
      const auto& param = statement.params[i];
      values[i] = param ? param->data() : nullptr;
      lengths[i] = param ? static_cast<int>(param->size()) : 0;
      formats[i] = binding.binary_param(i) ? 1 : 0;
    }
    std::copy(binding.param_types.begin(), binding.param_types.end(), types.data());
  }
  int count() const { return static_cast<int>(params); }
  const char* const* value_array() const { return params == 0 ? nullptr : values.data(); }
  const Oid* type_array() const { return type_count == 0 ? nullptr : types.data(); }
  // Lengths and formats matter to libpq for binary values only; text ones
  // (v1) are NUL-terminated strings, as before.
  const int* length_array() const { return params == 0 ? nullptr : lengths.data(); }
  const int* format_array() const { return params == 0 ? nullptr : formats.data(); }
};

}  // namespace

// A COPY FROM STDIN with the data the record carries: the server asks for
// it (PGRES_COPY_IN), gets all of it, and answers with the COPY's result.
// Any other first answer (an error: the table is gone) is the reply.
pg::Result PgSession::copy_in(const wire::Statement& statement) {
  pg::Result started(PQexec(conn_.get(), statement.sql.c_str()));
  if (!started || started.status() != PGRES_COPY_IN) return started;
  const std::string& data = *statement.copy_data;
  constexpr size_t kChunk = 64 * 1024;
  bool sent = true;
  for (size_t at = 0; sent && at < data.size(); at += kChunk) {
    const size_t length = std::min(kChunk, data.size() - at);
    sent = PQputCopyData(conn_.get(), data.data() + at, static_cast<int>(length)) == 1;
  }
  if (!sent || PQputCopyEnd(conn_.get(), nullptr) != 1) {
    throw_if_lost();
    throw Failure(std::string("cannot send COPY data to the shadow: ") + PQerrorMessage(conn_.get()));
  }
  pg::Result result(PQgetResult(conn_.get()));
  while (PGresult* extra = PQgetResult(conn_.get())) PQclear(extra);
  return result;
}

Reply PgSession::statement(const wire::Statement& statement, int statement_count) {
  pg::Result result;
  if (statement.copy_data) {
    result = copy_in(statement);
  } else if (statement_count > 1) {
    result = conn_.exec(statement.sql);
  } else {
    const BoundParams bound(statement);
    result = pg::Result(PQexecParams(conn_.get(), statement.sql.c_str(), bound.count(), bound.type_array(),
                                     bound.value_array(), bound.length_array(), bound.format_array(),
                                     bound.result_format));
  }
  throw_if_lost();
  if (!result) throw Transient(Transient::Cause::connection_lost, "shadow connection lost: no result");
  return Reply::from(std::move(result));
}

// Non-blocking, so that sending a long batch while the server answers
// cannot deadlock with both socket buffers full: while the output is not
// flushed, input is read into libpq's buffer.
void PgSession::pipeline_enter() {
  sent_is_sync_.clear();
  sent_at_.clear();
  segment_start_ = 0;
  if (PQsetnonblocking(conn_.get(), 1) != 0 || PQenterPipelineMode(conn_.get()) != 1) {
    throw_if_lost();
    throw Failure(std::string("cannot enter libpq pipeline mode: ") + PQerrorMessage(conn_.get()));
  }
}

void PgSession::pipeline_send(const std::string& sql, const wire::Statement* statement) {
  const BoundParams bound = statement ? BoundParams(*statement) : BoundParams(wire::Statement{});
  queued(PQsendQueryParams(conn_.get(), sql.c_str(), bound.count(), bound.type_array(), bound.value_array(),
                           bound.length_array(), bound.format_array(), bound.result_format));
}

void PgSession::pipeline_send_prepared(const std::string& name, const wire::Statement& statement) {
  const BoundParams bound(statement);
  queued(PQsendQueryPrepared(conn_.get(), name.c_str(), bound.count(), bound.value_array(), bound.length_array(),
                             bound.format_array(), bound.result_format));
}

void PgSession::queued(int sent) {
  if (!sent) {
    throw_if_lost();
    throw Failure(std::string("cannot send to the shadow: ") + PQerrorMessage(conn_.get()));
  }
  sent_is_sync_.push_back(false);
  sent_at_.emplace_back();
}

void PgSession::pipeline_flush_request() {
  if (!PQsendFlushRequest(conn_.get())) throw_if_lost();
}

void PgSession::pipeline_sync() {
  if (PQpipelineSync(conn_.get()) != 1) {
    throw_if_lost();
    throw Failure(std::string("cannot sync the pipeline: ") + PQerrorMessage(conn_.get()));
  }
  sent_is_sync_.push_back(true);
  sent_at_.emplace_back();
  flush();
  const auto now = Reply::Clock::now();
  for (size_t i = segment_start_; i < sent_at_.size(); ++i) sent_at_[i] = now;
  segment_start_ = sent_at_.size();
}

std::vector<Reply> PgSession::pipeline_collect() {
  std::vector<Reply> replies;
  replies.reserve(sent_is_sync_.size());
  for (size_t i = 0; i < sent_is_sync_.size(); ++i) {
    pg::Result result(PQgetResult(conn_.get()));
    if (!result) {
      throw_if_lost();
      throw Transient(Transient::Cause::connection_lost, "shadow connection lost: a pipeline result is missing");
    }
    const bool is_sync = result.status() == PGRES_PIPELINE_SYNC;
    if (is_sync != sent_is_sync_[i]) {
      throw_if_lost();
      throw Failure("the shadow's pipeline answered out of step (" + std::string(PQresStatus(result.status())) +
                    ": " + result.error_message() + ")");
    }
    if (!is_sync) {
      // Each command's results end with a null.
      if (PGresult* extra = PQgetResult(conn_.get())) {
        PQclear(extra);
        throw Failure("a statement returned more than one result in pipeline mode (COPY?)");
      }
    }
    replies.push_back(Reply::from(std::move(result)));
    replies.back().sent = sent_at_[i];
  }
  pipeline_leave();
  return replies;
}

void PgSession::pipeline_leave() {
  if (PQpipelineStatus(conn_.get()) != PQ_PIPELINE_OFF) PQexitPipelineMode(conn_.get());
  PQsetnonblocking(conn_.get(), 0);
}

void PgSession::flush() {
  for (;;) {
    const int flushed = PQflush(conn_.get());
    if (flushed == 0) return;
    if (flushed < 0) {
      throw_if_lost();
      throw Transient(Transient::Cause::connection_lost, std::string("shadow connection lost: ") + PQerrorMessage(conn_.get()));
    }
    pollfd fd{PQsocket(conn_.get()), POLLIN | POLLOUT, 0};
    if (poll(&fd, 1, 1000) < 0 && errno != EINTR) throw Transient(Transient::Cause::connection_lost, "shadow connection lost: poll failed");
    if ((fd.revents & (POLLIN | POLLHUP | POLLERR)) && !PQconsumeInput(conn_.get())) {
      throw_if_lost();
      throw Transient(Transient::Cause::connection_lost, std::string("shadow connection lost: ") + PQerrorMessage(conn_.get()));
    }
  }
}

// The connection string of the open connection, from what libpq used for it
// (PQconninfo), so the second connection reaches the same server and
// database as the same role.
std::unique_ptr<pg::Connection> PgSession::open_sibling() {
  std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> options(PQconninfo(conn_.get()), PQconninfoFree);
  std::string dsn;
  for (const PQconninfoOption* option = options.get(); option && option->keyword; ++option) {
    if (option->val == nullptr || *option->val == '\0') continue;
    dsn += std::string(option->keyword) + "='";
    for (const char* c = option->val; *c; ++c) {
      if (*c == '\'' || *c == '\\') dsn += '\\';
      dsn += *c;
    }
    dsn += "' ";
  }
  return std::make_unique<pg::Connection>(dsn + "application_name='shadow-executor catalog'");
}

}  // namespace shadowpipe::executor
