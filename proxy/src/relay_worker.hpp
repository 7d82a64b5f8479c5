// Server::Worker: one relay thread's epoll loop and the state of each connection it serves.
#pragma once

#include "shadowpipe/proxy/protocol.hpp"
#include "shadowpipe/proxy/server.hpp"
#include "outbound_buffer.hpp"
#include "tls.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

namespace shadowpipe::proxy {

inline void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

struct Server::TlsContexts {
  SslContext clients;  // terminating clients' TLS; null: SSLRequest answered 'N'
  SslContext primary;  // TLS to the primary; null: plain
};

struct Server::Worker {
  // startup -> [client_tls -> startup] -> connecting -> [primary_ssl_request
  // -> primary_tls] -> relaying -> draining; or startup -> cancelling.
  enum class Phase {
    startup,
    client_tls,
    connecting,
    primary_ssl_request,
    primary_tls,
    relaying,
    cancelling,
    draining,
  };

  struct Connection;
  struct Endpoint {
    Connection* connection;
    bool client;
  };

  // Feeds one direction's messages to the capture.
  struct FrontendSink : protocol::MessageFramer::Sink {
    SessionCapture* capture = nullptr;
    SessionCapture::Clock::time_point now;
    void message(char type, std::string_view payload) override { capture->frontend(type, payload, now); }
    void skipped(char type, uint64_t) override { capture->frontend_skipped(type, now); }
  };
  struct BackendSink : protocol::MessageFramer::Sink {
    SessionCapture* capture = nullptr;
    SessionCapture::Clock::time_point now;
    void message(char type, std::string_view payload) override { capture->backend(type, payload, now); }
    void skipped(char type, uint64_t) override { capture->backend_skipped(type, now); }
  };

  struct Connection {
    Connection(size_t max_message) : frontend(max_message), backend(max_message) {}
    uint64_t id = 0;
    int client = -1;
    int server = -1;
    TlsStream client_tls;  // plain until the client's SSLRequest is answered 'S'
    TlsStream server_tls;  // plain unless --primary-sslmode and the primary said 'S'
    Phase phase = Phase::startup;
    std::string startup;  // the client's untyped first packet(s), until relaying
    Outbound to_server;
    Outbound to_client;
    protocol::MessageFramer frontend;
    protocol::MessageFramer backend;
    std::unique_ptr<SessionCapture> capture;
    FrontendSink frontend_sink;
    BackendSink backend_sink;
    Endpoint client_end{this, true};
    Endpoint server_end{this, false};
    uint32_t client_events = 0;
    uint32_t server_events = 0;
    bool closing = false;
  };

  Server& server;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::thread thread;
  std::unordered_set<Connection*> connections;
  std::vector<Connection*> closed;

  explicit Worker(Server& owner);
  ~Worker();
  void wake();
  void run();  // the event loop, until stopping

  // relay_worker.cpp: the loop, accepting, closing, epoll interest.
  void accept_all();
  void finish(Connection& connection);
  // Closes the primary's side; the client's side stays to drain.
  void drop_server(Connection& connection);
  // The client gets this error, then the connection closes once it is written.
  void refuse(Connection& connection, std::string_view sqlstate, std::string_view message);
  void protocol_violation(Connection& connection, std::string_view message);
  // Level-triggered interest from the buffers: read a side only while the
  // other side's queue has room; ask to write only what waits.
  void update_interest(Connection& connection);

  // relay_startup.cpp: the client's first packets (SSL/GSS requests,
  // CancelRequest, StartupMessage) and connecting to the primary.
  void on_client(Connection& connection, uint32_t what);
  void read_startup(Connection& connection);
  void connect_primary(Connection& connection);
  void primary_unreachable(Connection& connection, std::string_view why);
  // TLS with the client after its SSLRequest was answered 'S'.
  void continue_client_tls(Connection& connection);
  // TLS with the primary: SSLRequest, its answer, the handshake; then relaying.
  void request_primary_tls(Connection& connection);
  void read_primary_tls_answer(Connection& connection);
  void continue_primary_tls(Connection& connection);
  void primary_ready(Connection& connection);

  // relay_transfer.cpp: bytes in both directions while relaying, through the
  // capture, bounded by the outbound buffers.
  void client_bytes(Connection& connection, std::string_view bytes);
  void read_client(Connection& connection);
  void flush_client(Connection& connection);
  void on_server(Connection& connection, uint32_t what);
  void read_server(Connection& connection);
  void primary_gone(Connection& connection);
  void flush_server(Connection& connection);

  struct NullSink : protocol::MessageFramer::Sink {
    void message(char, std::string_view) override {}
    void skipped(char, uint64_t) override {}
  };
};

}  // namespace shadowpipe::proxy
