#include "shadowpipe/thread_cpu.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>

namespace shadowpipe {

// The name is between the first '(' and the last ')' (it may hold either);
// utime and stime are fields 14 and 15.
std::vector<ThreadCpu> threads_cpu() {
  std::vector<ThreadCpu> out;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::unique_ptr<DIR, int (*)(DIR*)> tasks(opendir("/proc/self/task"), &closedir);
  if (!tasks) return out;
  while (const dirent* entry = readdir(tasks.get())) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream file(std::string("/proc/self/task/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(file, line)) continue;  // the thread ended meanwhile
    const auto open = line.find('(');
    const auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    std::istringstream fields(line.substr(close + 2));  // from field 3 (state) on
    std::string field;
    double ticks = 0;
    for (int index = 3; index <= 15 && fields >> field; ++index) {
      if (index >= 14) ticks += std::stod(field);
    }
    out.push_back({static_cast<pid_t>(std::stol(entry->d_name)), line.substr(open + 1, close - open - 1), ticks / tick});
  }
  return out;
}

}  // namespace shadowpipe
