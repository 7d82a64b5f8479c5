// A PostgreSQL 15 cluster of a test's own, for tests that stop and restart
// a server: the stack's servers are shared by the tests running beside it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace shadowpipe::testing {

inline std::string shell_quote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

inline bool port_is_free(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  close(fd);
  return free;
}

// A PostgreSQL 15 cluster of the test's own, in a fresh folder under /tmp, on
// a loopback port below the ephemeral range chosen at run time. initdb
// refuses root: as root it runs as the postgres user, as scripts/stack does.
// Stopped (immediate) and removed on every path.
class PrivateCluster {
 public:
  // With a password, TCP connections must authenticate with it (SCRAM), as
  // on a real server; the stack's servers trust every local connection.
  explicit PrivateCluster(const std::string& superuser_password = {}) {
    char tmpl[] = "/tmp/shadowpipe-exec-pg-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);
    if (geteuid() == 0) {
      const passwd* pg = getpwnam("postgres");
      if (!pg || chown(dir_.c_str(), pg->pw_uid, pg->pw_gid) != 0) {
        std::filesystem::remove_all(dir_);
        throw std::runtime_error("running as root needs a postgres user to own " + dir_);
      }
      as_pg_ = "runuser -u postgres -- ";
    }
    try {
      std::string auth = "--auth=trust";
      if (!superuser_password.empty()) {
        std::ofstream(dir_ + "/pwfile") << superuser_password << '\n';
        auth = "--auth-local=trust --auth-host=scram-sha-256 --pwfile=" + shell_quote(dir_ + "/pwfile");
      }
      run("initdb -D " + shell_quote(data()) + " -U postgres " + auth + " -E UTF8 --no-locale", "initdb");
      std::filesystem::remove(dir_ + "/pwfile");
      std::ofstream conf(data() + "/postgresql.conf", std::ios::app);
      conf << "listen_addresses = '127.0.0.1'\n"
              "unix_socket_directories = ''\n"
              "max_connections = 40\n"
              "shared_buffers = 32MB\n"
              "fsync = off\n"
              "synchronous_commit = off\n"
              "full_page_writes = off\n";
      conf.close();
      // Another process may take a free port between the check and the
      // start: try a few.
      std::mt19937 random(std::random_device{}());
      std::uniform_int_distribution<int> ports(20000, 32000);
      for (int attempt = 0; attempt < 8 && !running_; ++attempt) {
        port_ = ports(random);
        if (!port_is_free(port_)) continue;
        running_ = pg_ctl("-o " + shell_quote("-p " + std::to_string(port_)) + " -l " + shell_quote(dir_ + "/server.log") +
                          " -w -t 60 start") == 0;
      }
      if (!running_) throw std::runtime_error("the private cluster did not start; see " + dir_ + "/server.log");
    } catch (...) {
      remove();
      throw;
    }
  }
  ~PrivateCluster() { remove(); }

  std::string dsn() const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=postgres connect_timeout=5";
  }
  const std::string& dir() const { return dir_; }

  // Fast shutdown: the server terminates every backend and closes their sockets.
  bool stop() {
    running_ = pg_ctl("-m fast -w -t 60 stop") != 0;
    return !running_;
  }
  // Immediate shutdown, as a crash: no checkpoint, WAL not yet written is lost.
  bool crash() {
    running_ = pg_ctl("-m immediate -w -t 60 stop") != 0;
    return !running_;
  }
  bool start() {
    running_ = pg_ctl("-o " + shell_quote("-p " + std::to_string(port_)) + " -l " + shell_quote(dir_ + "/server.log") +
                      " -w -t 60 start") == 0;
    return running_;
  }

 private:
  std::string data() const { return dir_ + "/data"; }
  int pg_ctl(const std::string& arguments) {
    return shell("pg_ctl -D " + shell_quote(data()) + " " + arguments, dir_ + "/pg_ctl.log");
  }
  void run(const std::string& command, const std::string& what) {
    if (shell(command, dir_ + "/" + what + ".log") != 0) throw std::runtime_error(what + " failed in " + dir_);
  }
  int shell(const std::string& command, const std::string& log) {
    // From the cluster's folder: the postgres user may not reach the caller's.
    const std::string line = "cd " + shell_quote(dir_) + " && " + as_pg_ + "/usr/lib/postgresql/15/bin/" + command + " >>" + shell_quote(log) + " 2>&1";
    const int status = std::system(line.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void remove() {
    if (dir_.empty()) return;
    if (running_) pg_ctl("-m immediate -w -t 30 stop");
    running_ = false;
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    dir_.clear();
  }

  std::string dir_;
  std::string as_pg_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace shadowpipe::testing
