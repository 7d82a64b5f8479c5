#include "shadowctl/since.hpp"

#include "shadowpipe/result.hpp"

#include <charconv>
#include <ctime>

namespace shadowpipe::shadowctl {

int64_t parse_since(const std::string& text, int64_t now_ms) {
  const auto bad = [&] {
    return shadowpipe::Failure("--since '" + text +
                               "' is not a duration (90s, 15m, 2h, 1d), a UTC time (2026-11-27T09:00:00Z) "
                               "or milliseconds since the epoch");
  };
  if (text.empty()) throw bad();
  int64_t number = 0;
  const auto* end = text.data() + text.size();
  auto [rest, error] = std::from_chars(text.data(), end, number);
  if (error == std::errc() && rest == end) return number;  // epoch milliseconds
  if (error == std::errc() && rest + 1 == end && number >= 0) {
    switch (*rest) {
      case 's': return now_ms - number * 1000;
      case 'm': return now_ms - number * 60'000;
      case 'h': return now_ms - number * 3'600'000;
      case 'd': return now_ms - number * 86'400'000;
      default: break;
    }
  }
  std::tm parts{};
  const char* parsed = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &parts);
  if (parsed && (*parsed == 'Z' || *parsed == '\0') && (*parsed == '\0' || parsed[1] == '\0')) {
    return static_cast<int64_t>(timegm(&parts)) * 1000;
  }
  throw bad();
}

}  // namespace shadowpipe::shadowctl
