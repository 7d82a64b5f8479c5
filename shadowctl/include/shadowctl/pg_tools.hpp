// How `shadowctl reset` runs pg_dump, pg_restore and psql without leaking
// what it handles: the dump of production data and the servers' passwords.
//  * The dump, the password files and the tools' error output live in a
//    private directory (0700, files 0600) under TMPDIR, removed on every exit
//    path: success, error, exception, and SIGINT/SIGTERM while a tool runs.
//  * A password never reaches a command line (visible to every user in `ps`)
//    or an error message: the tool gets the DSN without it and the password
//    in a private PGPASSFILE.
#pragma once

#include "shadowpipe/conninfo.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::shadowctl {

using pg::Conninfo;

// mkdtemp under TMPDIR (std::filesystem::temp_directory_path), mode 0700;
// removed with everything in it by the destructor.
class PrivateWorkdir {
 public:
  explicit PrivateWorkdir(std::string_view prefix);
  ~PrivateWorkdir();
  PrivateWorkdir(const PrivateWorkdir&) = delete;
  PrivateWorkdir& operator=(const PrivateWorkdir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Creates (or truncates) `name` in the directory with mode 0600 and
  // writes `content`; returns its path.
  std::filesystem::path private_file(const std::string& name, std::string_view content = {}) const;

 private:
  std::filesystem::path path_;
};

// While alive, SIGINT and SIGTERM do not end the process at once: the signal
// is forwarded to the tool running (which stops), and run_tool or
// check_interrupted then throw Failure, so the stack unwinds and the private
// directory is removed. The previous handlers come back on destruction.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  // Throws Failure when a signal arrived (`after`: the step just finished).
  void check_interrupted(std::string_view after) const;
};

// Runs `program` `arguments` --dbname=<target without its password> (no
// shell), the password in a PGPASSFILE in `workdir`, stderr in `workdir`.
// Throws Failure, with the step, the exit status and the tool's stderr, when
// it fails or a signal interrupted it. `pg_bin`: the tools' folder, empty
// for PATH.
void run_tool(const PrivateWorkdir& workdir, const std::string& pg_bin, const std::string& program,
              const std::vector<std::string>& arguments, const Conninfo& target, const std::string& step);

}  // namespace shadowpipe::shadowctl
