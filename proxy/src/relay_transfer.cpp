// The relay of a session: bytes in both directions, fed to the capture as they pass, written on as the other side takes them.
#include "relay_worker.hpp"

#include "shadowpipe/result.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>

namespace shadowpipe::proxy {

namespace {
// How much one read may take: the room left, but over TLS a whole record
// (up to 16 KiB) even past it. A record read in part leaves plaintext inside
// OpenSSL that no socket readiness announces; taken whole, what OpenSSL
// holds is only a record still arriving, whose rest wakes epoll. The bound
// per direction is the buffer plus one record.
size_t read_size(const TlsStream& tls, size_t room) {
  return tls.active() ? std::max(room, kTlsRecordPlaintext) : room;
}
}  // namespace

// Bytes from the client while relaying: captured, then queued for the primary.
void Server::Worker::client_bytes(Connection& connection, std::string_view bytes) {
  if (connection.capture) connection.frontend_sink.now = SessionCapture::Clock::now();
  protocol::MessageFramer::Sink* sink = connection.capture ? &connection.frontend_sink : nullptr;
  NullSink none;
  if (!connection.frontend.feed(bytes, sink ? *sink : none)) {
    if (connection.capture) connection.capture->lost_sync();
    // The error may only go between two of the server's messages.
    if (connection.backend.at_boundary()) {
      protocol_violation(connection, "invalid message length");
    } else {
      if (server.metrics_) server.metrics_->protocol_errors->Increment();
      finish(connection);
    }
    return;
  }
  connection.to_server.append(bytes);
}

void Server::Worker::read_client(Connection& connection) {
  char buffer[64 * 1024];
  while (connection.to_server.size() < server.options_.buffer_bytes) {
    const size_t room = server.options_.buffer_bytes - connection.to_server.size();
    const size_t want = std::min(sizeof buffer, read_size(connection.client_tls, room));
    const ssize_t got = connection.client_tls.receive(connection.client, buffer, want);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
      // The client went away: what it sent last (a Terminate) goes on,
      // then the primary's connection closes with it (session mode).
      flush_server(connection);
      finish(connection);
      return;
    }
    if (got < 0) break;
    client_bytes(connection, std::string_view(buffer, static_cast<size_t>(got)));
    if (connection.closing || connection.phase != Phase::relaying) return;
    // A short read empties a plain socket; TLS hands over a record at a time.
    if (!connection.client_tls.active() && static_cast<size_t>(got) < want) break;
  }
  flush_server(connection);
}

void Server::Worker::flush_client(Connection& connection) {
  while (!connection.to_client.empty()) {
    const auto pending = connection.to_client.pending();
    const ssize_t sent = connection.client_tls.transmit(connection.client, pending.data(), pending.size());
    if (sent < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      finish(connection);
      return;
    }
    connection.to_client.consume(static_cast<size_t>(sent));
  }
  if (connection.phase == Phase::draining) finish(connection);
}

void Server::Worker::on_server(Connection& connection, uint32_t what) {
  if (connection.phase == Phase::connecting || connection.phase == Phase::cancelling) {
    if (!(what & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(connection.server, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      drop_server(connection);
      primary_unreachable(connection, std::strerror(error));
      return;
    }
    if (connection.phase == Phase::cancelling) {
      // The server closes a cancel connection without an answer.
      const auto pending = connection.to_server.pending();
      [[maybe_unused]] auto sent = send(connection.server, pending.data(), pending.size(), MSG_NOSIGNAL);
      finish(connection);
      return;
    }
    if (server.options_.primary_tls != PrimaryTls::disable) {
      request_primary_tls(connection);
    } else {
      primary_ready(connection);
    }
    return;
  }
  if (connection.phase == Phase::primary_ssl_request) {
    if (what & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_primary_tls_answer(connection);
    return;
  }
  if (connection.phase == Phase::primary_tls) {
    continue_primary_tls(connection);
    return;
  }
  if (connection.phase != Phase::relaying) return;
  const TlsStream& tls = connection.server_tls;
  if ((what & EPOLLOUT) || ((what & EPOLLIN) && tls.transmit_waits_on_read())) {
    flush_server(connection);
    if (connection.closing) return;
  }
  if ((what & (EPOLLIN | EPOLLHUP | EPOLLERR)) || ((what & EPOLLOUT) && tls.receive_waits_on_write())) {
    read_server(connection);
  }
}

void Server::Worker::read_server(Connection& connection) {
  char buffer[64 * 1024];
  while (connection.to_client.size() < server.options_.buffer_bytes) {
    const size_t room = server.options_.buffer_bytes - connection.to_client.size();
    const size_t want = std::min(sizeof buffer, read_size(connection.server_tls, room));
    const ssize_t got = connection.server_tls.receive(connection.server, buffer, want);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
      primary_gone(connection);
      return;
    }
    if (got < 0) break;
    const std::string_view bytes(buffer, static_cast<size_t>(got));
    if (connection.capture) {
      connection.backend_sink.now = SessionCapture::Clock::now();
      if (!connection.backend.feed(bytes, connection.backend_sink)) connection.capture->lost_sync();
    } else {
      NullSink none;
      connection.backend.feed(bytes, none);
    }
    connection.to_client.append(bytes);
    if (!connection.server_tls.active() && static_cast<size_t>(got) < want) break;
  }
  flush_client(connection);
}

void Server::Worker::primary_gone(Connection& connection) {
  if (connection.frontend.last_type() == 'X') {
    // The client said Terminate: the primary closing is the answer, and
    // the client closes too; an error now would reach a client that
    // already said goodbye (node-postgres raises it as unhandled).
    if (connection.capture) connection.capture->closed(UnitDrop::client_gone);
    drop_server(connection);
    connection.phase = Phase::draining;
    flush_client(connection);
    return;
  }
  // Whatever the primary said last (its FATAL, when it shut down in
  // order or ended the session) reaches the client; a primary that
  // vanished without a word gets one from the proxy, if it fits between
  // two messages.
  if (connection.capture) connection.capture->closed(UnitDrop::primary_gone);
  if (!connection.backend.failed() && connection.backend.at_boundary() && connection.backend.last_type() != 'E') {
    connection.to_client.append(protocol::error_response(
        "FATAL", "08006", "shadow-proxy: the primary closed the connection"));
  }
  drop_server(connection);
  connection.phase = Phase::draining;
  flush_client(connection);
}

void Server::Worker::flush_server(Connection& connection) {
  if (connection.server < 0 || connection.phase != Phase::relaying) return;
  while (!connection.to_server.empty()) {
    const auto pending = connection.to_server.pending();
    const ssize_t sent = connection.server_tls.transmit(connection.server, pending.data(), pending.size());
    if (sent < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      primary_gone(connection);
      return;
    }
    connection.to_server.consume(static_cast<size_t>(sent));
  }
}

}  // namespace shadowpipe::proxy
