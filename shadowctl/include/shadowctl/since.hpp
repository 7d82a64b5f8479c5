#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace shadowpipe::shadowctl {

// --since: a duration back from now ("90s", "15m", "2h", "1d"), a UTC time
// ("2026-11-27T09:00:00Z"), or milliseconds since the epoch. Throws Failure
// with the accepted forms otherwise.
int64_t parse_since(const std::string& text, int64_t now_ms);

}  // namespace shadowpipe::shadowctl
