// The relay before a session relays: the client's start-up packets (SSLRequest: TLS or 'N', GSS refused, CancelRequest forwarding, StartupMessage), connecting to the primary, TLS with either.
#include "relay_worker.hpp"

#include "shadowpipe/result.hpp"

#include <arpa/inet.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>

namespace shadowpipe::proxy {

void Server::Worker::on_client(Connection& connection, uint32_t what) {
  if (connection.phase == Phase::client_tls) {
    continue_client_tls(connection);
    return;
  }
  const TlsStream& tls = connection.client_tls;
  if ((what & EPOLLOUT) || ((what & EPOLLIN) && tls.transmit_waits_on_read())) {
    flush_client(connection);
    if (connection.closing) return;
  }
  if (!(what & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !((what & EPOLLOUT) && tls.receive_waits_on_write())) return;
  switch (connection.phase) {
    case Phase::startup: read_startup(connection); break;
    case Phase::relaying: read_client(connection); break;
    case Phase::client_tls: break;
    case Phase::draining:
    case Phase::connecting:
    case Phase::primary_ssl_request:
    case Phase::primary_tls:
    case Phase::cancelling: {
      // Not reading now; a hang-up still ends the connection.
      if (what & (EPOLLHUP | EPOLLERR)) finish(connection);
      break;
    }
  }
}

void Server::Worker::read_startup(Connection& connection) {
  char buffer[kTlsRecordPlaintext];
  // Over TLS a whole record, so OpenSSL holds no plaintext (relay_transfer.cpp).
  const size_t want = connection.client_tls.active() ? sizeof buffer
                                                      : protocol::kMaxStartupLength + 8 - connection.startup.size();
  const ssize_t got = connection.client_tls.receive(connection.client, buffer, std::min(sizeof buffer, want));
  if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
    finish(connection);
    return;
  }
  if (got < 0) return;
  connection.startup.append(buffer, static_cast<size_t>(got));
  while (connection.phase == Phase::startup && connection.startup.size() >= 8) {
    const uint32_t length = protocol::read_u32(connection.startup.data());
    const uint32_t code = protocol::read_u32(connection.startup.data() + 4);
    if (length < 8 || length > protocol::kMaxStartupLength) {
      protocol_violation(connection, "invalid length of startup packet");
      return;
    }
    if (connection.startup.size() < length) return;
    if (code == protocol::kSslRequest || code == protocol::kGssEncRequest) {
      if (length != 8) {
        protocol_violation(connection, "invalid length of startup packet");
        return;
      }
      if (code == protocol::kSslRequest && server.tls_ && server.tls_->clients) {
        if (connection.client_tls.active()) {
          protocol_violation(connection, "SSLRequest inside TLS");
          return;
        }
        // Bytes sent before the handshake would be taken as if they came
        // through TLS (PostgreSQL's CVE-2021-23214): refused, as it does.
        if (connection.startup.size() > 8) {
          protocol_violation(connection, "received unencrypted data after SSL request");
          return;
        }
        connection.startup.clear();
        connection.to_client.append("S");
        connection.phase = Phase::client_tls;
        continue_client_tls(connection);
        return;
      }
      // As a server without TLS (or GSSAPI encryption) answers: the client
      // goes on in plain text or gives up, as it is configured to.
      connection.startup.erase(0, 8);
      connection.to_client.append("N");
      flush_client(connection);
      continue;
    }
    if (code == protocol::kCancelRequest) {
      if (length != 16) {
        protocol_violation(connection, "invalid length of cancel request");
        return;
      }
      // The BackendKeyData passed through unchanged, so the same 16 bytes
      // sent to the primary reach the backend they name.
      connection.to_server.append(std::string_view(connection.startup).substr(0, 16));
      connection.startup.clear();
      connection.phase = Phase::cancelling;
      if (server.metrics_) {
        server.metrics_->cancels->Increment();
        server.metrics_->active->Decrement();  // not a session
      }
      connect_primary(connection);
      return;
    }
    if ((code >> 16) != 3) {
      protocol_violation(connection, "unsupported frontend protocol " + std::to_string(code >> 16) + "." +
                                         std::to_string(code & 0xFFFF) + ": server supports 3.0 to 3.0");
      return;
    }
    // A StartupMessage: the primary answers it (authentication included).
    const std::string_view message = std::string_view(connection.startup).substr(0, length);
    std::string database = protocol::startup_parameter(message, "database");
    if (database.empty()) database = protocol::startup_parameter(message, "user");  // PostgreSQL's default
    connection.to_server.append(message);
    const std::string parameters(message.substr(8));  // the session's first settings
    const std::string rest = connection.startup.substr(length);
    connection.startup.clear();
    connection.startup.shrink_to_fit();
    if (server.sink_) {
      std::string key;
      if (server.options_.key_by == KeyBy::single) key = server.options_.single_key;
      if (server.options_.key_by == KeyBy::connection) key = "connection-" + std::to_string(connection.id);
      CaptureLimits limits;
      limits.max_copy_bytes = server.options_.copy_max_bytes;
      connection.capture = std::make_unique<SessionCapture>(*server.sink_, std::move(key), server.normalization_, limits);
      connection.capture->set_database(std::move(database));
      connection.capture->startup(parameters);
      connection.frontend_sink.capture = connection.capture.get();
      connection.backend_sink.capture = connection.capture.get();
    }
    connection.phase = Phase::connecting;
    if (!rest.empty()) client_bytes(connection, rest);
    if (!connection.closing && connection.phase != Phase::draining) connect_primary(connection);
    return;
  }
}

void Server::Worker::connect_primary(Connection& connection) {
  const int fd = socket(reinterpret_cast<sockaddr*>(server.primary_address_.data())->sa_family,
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    primary_unreachable(connection, std::strerror(errno));
    return;
  }
  set_nodelay(fd);
  const int status = connect(fd, reinterpret_cast<sockaddr*>(server.primary_address_.data()),
                             server.primary_address_length_);
  if (status != 0 && errno != EINPROGRESS) {
    const int error = errno;
    close(fd);
    primary_unreachable(connection, std::strerror(error));
    return;
  }
  connection.server = fd;
  epoll_event event{};
  event.events = EPOLLOUT;
  event.data.ptr = &connection.server_end;
  connection.server_events = EPOLLOUT;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
}

void Server::Worker::continue_client_tls(Connection& connection) {
  if (!connection.to_client.empty()) {
    flush_client(connection);  // the 'S', in plain text
    if (connection.closing || !connection.to_client.empty()) return;
  }
  if (!connection.client_tls.active() &&
      !connection.client_tls.start(server.tls_->clients.get(), connection.client, true, {})) {
    if (server.metrics_) server.metrics_->client_tls_failures->Increment();
    finish(connection);
    return;
  }
  switch (connection.client_tls.handshake()) {
    case TlsStream::Handshake::blocked: return;
    case TlsStream::Handshake::failed:
      // Nothing can be said to a client whose TLS failed; the count says it.
      if (server.metrics_) server.metrics_->client_tls_failures->Increment();
      finish(connection);
      return;
    case TlsStream::Handshake::done:
      if (server.metrics_) server.metrics_->client_tls->Increment();
      connection.phase = Phase::startup;  // the StartupMessage comes through TLS
      return;
  }
}

void Server::Worker::request_primary_tls(Connection& connection) {
  // Eight bytes into a socket just connected: its buffer is empty.
  char request[8];
  const uint32_t words[2] = {htonl(8), htonl(protocol::kSslRequest)};
  std::memcpy(request, words, sizeof request);
  if (send(connection.server, request, sizeof request, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof request)) {
    const int error = errno;
    drop_server(connection);
    primary_unreachable(connection, std::string("sending SSLRequest: ") + std::strerror(error));
    return;
  }
  connection.phase = Phase::primary_ssl_request;
}

void Server::Worker::read_primary_tls_answer(Connection& connection) {
  // One byte only: what follows an 'S' belongs to the handshake (bytes
  // before it would be refused by OpenSSL, not taken as data).
  char answer = 0;
  const ssize_t got = recv(connection.server, &answer, 1, 0);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
  const std::string primary = server.options_.primary_host + ":" + std::to_string(server.options_.primary_port);
  if (got <= 0) {
    const std::string why = got == 0 ? "closed the connection" : std::strerror(errno);
    drop_server(connection);
    primary_unreachable(connection, "answering SSLRequest: " + why);
    return;
  }
  if (answer == 'S') {
    if (!connection.server_tls.start(server.tls_->primary.get(), connection.server, false,
                                     server.options_.primary_host)) {
      if (server.metrics_) server.metrics_->primary_tls_failures->Increment();
      drop_server(connection);
      refuse(connection, "08006", "shadow-proxy: TLS with the primary at " + primary + ": " +
                                      connection.server_tls.error());
      return;
    }
    connection.phase = Phase::primary_tls;
    continue_primary_tls(connection);
    return;
  }
  if (answer == 'N' && server.options_.primary_tls == PrimaryTls::prefer) {
    primary_ready(connection);
    return;
  }
  if (server.metrics_) server.metrics_->primary_tls_failures->Increment();
  drop_server(connection);
  refuse(connection, "08006",
         answer == 'N' ? "shadow-proxy: the primary at " + primary +
                             " does not accept TLS, which --primary-sslmode require asks for"
                       : "shadow-proxy: the primary at " + primary + " answered SSLRequest with neither S nor N");
}

void Server::Worker::continue_primary_tls(Connection& connection) {
  switch (connection.server_tls.handshake()) {
    case TlsStream::Handshake::blocked: return;
    case TlsStream::Handshake::failed: {
      if (server.metrics_) server.metrics_->primary_tls_failures->Increment();
      const std::string why = connection.server_tls.error();
      drop_server(connection);
      refuse(connection, "08006",
             "shadow-proxy: TLS with the primary at " + server.options_.primary_host + ":" +
                 std::to_string(server.options_.primary_port) + " failed: " + why);
      return;
    }
    case TlsStream::Handshake::done:
      if (server.metrics_) server.metrics_->primary_tls->Increment();
      primary_ready(connection);
      return;
  }
}

void Server::Worker::primary_ready(Connection& connection) {
  connection.phase = Phase::relaying;
  flush_server(connection);  // the StartupMessage, and what the client sent after it
}

void Server::Worker::primary_unreachable(Connection& connection, std::string_view why) {
  if (server.metrics_) server.metrics_->primary_unreachable->Increment();
  if (connection.phase == Phase::cancelling) {
    finish(connection);
    return;
  }
  refuse(connection, "08006",
         "shadow-proxy: cannot reach the primary at " + server.options_.primary_host + ":" +
             std::to_string(server.options_.primary_port) + ": " + std::string(why));
}

}  // namespace shadowpipe::proxy
