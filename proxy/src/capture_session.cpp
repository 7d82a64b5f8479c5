// The session's settings and state, followed from what the session runs (SET, RESET, set_config, DISCARD) and what
// the server reports (ParameterStatus), through savepoints and rollbacks; each unit is recorded with them.
#include "capture_internal.hpp"

#include "shadowpipe/statement.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace shadowpipe::proxy {

namespace {

using statement::SettingChange;

// Parsed once per statement text, shared by every session (thread-safe).
statement::Analyzer& analyzer() {
  static statement::Analyzer shared(1024);
  return shared;
}

bool contains_folded(std::string_view text, std::string_view word) {
  return std::search(text.begin(), text.end(), word.begin(), word.end(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         }) != text.end();
}

std::string_view first_word(std::string_view sql) {
  size_t at = 0;
  while (at < sql.size() && (std::isspace(static_cast<unsigned char>(sql[at])) || sql[at] == '(')) ++at;
  size_t end = at;
  while (end < sql.size() && std::isalpha(static_cast<unsigned char>(sql[end]))) ++end;
  return sql.substr(at, end - at);
}

bool equal_folded(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Whether a statement that completed with this tag may change or use
// session state, by its tag and a look at its text: most statements are not
// parsed on the relay's thread.
bool may_touch_session(std::string_view sql, std::string_view tag, bool in_transaction) {
  for (std::string_view exact : {"SET", "RESET", "DISCARD ALL", "DISCARD TEMP", "PREPARE", "DEALLOCATE",
                                 "DEALLOCATE ALL", "LISTEN", "UNLISTEN"}) {
    if (tag == exact) return true;
  }
  if (in_transaction && (tag == "SAVEPOINT" || tag == "RELEASE" || tag == "ROLLBACK")) return true;
  if ((tag.starts_with("CREATE ") || tag.starts_with("SELECT")) && contains_folded(sql, "temp")) return true;
  return contains_folded(sql, "set_config") || contains_folded(sql, "advisory") ||
         equal_folded(first_word(sql), "execute");
}

enum class Carried { yes, reported, role, no };

// Which settings a unit carries. Those the server reports come from its
// ParameterStatus; the role is refused; the client encoding is the
// executor's connection's own; the timeouts and transaction modes are the
// executor's (its --statement-timeout, the unit's BEGIN).
Carried carried(std::string_view name) {
  if (name == "role" || name == "session_authorization") return Carried::role;
  for (std::string_view reported : {"timezone", "datestyle", "intervalstyle", "standard_conforming_strings",
                                    "application_name", "is_superuser", "integer_datetimes",
                                    "default_transaction_read_only", "in_hot_standby", "server_version",
                                    "server_encoding"}) {
    if (name == reported) return Carried::reported;
  }
  for (std::string_view own : {"client_encoding", "names", "statement_timeout", "lock_timeout",
                               "idle_in_transaction_session_timeout", "idle_session_timeout", "transaction_isolation",
                               "transaction_read_only", "transaction_deferrable"}) {
    if (name == own) return Carried::no;
  }
  return Carried::yes;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// The settings in a startup `options` value, as the server reads it: words
// split at spaces (a backslash keeps the next character), "-c name=value",
// "-cname=value" or "--name=value" (dashes in the name are underscores).
std::vector<std::pair<std::string, std::string>> options_settings(std::string_view options) {
  std::vector<std::string> words(1);
  for (size_t i = 0; i < options.size(); ++i) {
    if (options[i] == '\\' && i + 1 < options.size()) {
      words.back() += options[++i];
    } else if (std::isspace(static_cast<unsigned char>(options[i]))) {
      if (!words.back().empty()) words.emplace_back();
    } else {
      words.back() += options[i];
    }
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < words.size(); ++i) {
    std::string setting;
    if (words[i] == "-c" && i + 1 < words.size()) {
      setting = words[++i];
    } else if (words[i].starts_with("-c")) {
      setting = words[i].substr(2);
    } else if (words[i].starts_with("--")) {
      setting = words[i].substr(2);
      const auto name_end = setting.begin() + static_cast<std::ptrdiff_t>(std::min(setting.find('='), setting.size()));
      std::replace(setting.begin(), name_end, '-', '_');
    }
    if (const size_t equals = setting.find('='); equals != std::string::npos && equals > 0) {
      out.emplace_back(setting.substr(0, equals), setting.substr(equals + 1));
    }
  }
  return out;
}

}  // namespace

void SessionCapture::startup(std::string_view parameters) {
  capture_text::Reader reader(parameters);
  while (reader.ok()) {
    const std::string_view name = reader.cstring();
    if (name.empty() || !reader.ok()) break;
    const std::string_view value = reader.cstring();
    std::vector<std::pair<std::string, std::string>> settings;
    if (name == "options") {
      settings = options_settings(value);
    } else if (name != "user" && name != "database" && name != "replication") {
      settings.emplace_back(name, value);
    }
    for (auto& [setting, setting_value] : settings) {
      std::string folded = lowercase(setting);
      if (carried(folded) == Carried::yes) startup_settings_[std::move(folded)] = std::move(setting_value);
    }
  }
  refresh_session();
}

void SessionCapture::parameter_status(std::string_view payload) {
  capture_text::Reader reader(payload);
  const auto name = reader.cstring();
  const auto value = reader.cstring();
  if (name == "TimeZone") session_.time_zone.assign(value);
  if (name == "DateStyle") session_.date_style.assign(value);
  if (name == "IntervalStyle") session_.interval_style.assign(value);
  if (name == "search_path") reported_search_path_.assign(value);  // PostgreSQL 18+
  if (name == "standard_conforming_strings") standard_conforming_strings_.assign(value);
  refresh_session();
}

void SessionCapture::follow_statement(const Execution& execution, std::string_view tag) {
  // A session that holds state the shadow cannot: none of its units is
  // recorded until that state is gone.
  if (state_.bound()) problem(UnitDrop::session_state);
  if (!may_touch_session(execution.sql, tag, in_transaction_)) return;
  auto analyzed = analyzer().analyze(execution.sql);
  if (!analyzed.ok()) return;  // the server ran it; nothing the parser can say about it
  const statement::Analysis& analysis = *analyzed;
  if (!analysis.session_reasons.empty() || !analysis.session_uses.empty()) {
    if (kTrace) std::fprintf(stderr, "trace: session state: %s\n", execution.sql.c_str());
    problem(UnitDrop::session_state);
  }
  if (analysis.makes_temporary_objects) state_.temporary_objects = true;
  if (analysis.savepoint_command == "SAVEPOINT") {
    savepoints_.emplace_back(analysis.savepoint_name, state_);
  } else if (!analysis.savepoint_command.empty()) {
    auto found = std::find_if(savepoints_.rbegin(), savepoints_.rend(),
                              [&](const auto& savepoint) { return savepoint.first == analysis.savepoint_name; });
    if (found != savepoints_.rend()) {
      const auto at = static_cast<size_t>(savepoints_.rend() - found) - 1;
      if (analysis.savepoint_command == "ROLLBACK TO SAVEPOINT") {
        state_ = savepoints_[at].second;  // the savepoint stays
        savepoints_.resize(at + 1);
      } else {
        savepoints_.resize(at);  // RELEASE: it and those after it are gone, their changes kept
      }
    }
  }
  auto param = [&](int number) -> std::optional<std::string> {
    if (number < 1 || static_cast<size_t>(number) > execution.params.size()) return std::nullopt;
    return execution.params[static_cast<size_t>(number) - 1];
  };
  for (const SettingChange& change : analysis.setting_changes) {
    switch (change.kind) {
      case SettingChange::Kind::reset_all:
        state_.set_by_sql.clear();
        state_.unknown = false;
        continue;
      case SettingChange::Kind::discard_all:
        // Not replayable: it cannot run in a transaction (the executor runs
        // every unit in one), and its effect is the next units' settings.
        problem(UnitDrop::session_state);
        state_ = SessionState{};
        continue;
      case SettingChange::Kind::discard_temp:
        state_.temporary_objects = false;
        continue;
      case SettingChange::Kind::set:
      case SettingChange::Kind::reset: break;
    }
    if (change.local) continue;  // ends with its transaction; the unit replays it itself
    std::optional<std::string> name = change.name_param > 0 ? param(change.name_param) : change.name;
    if (!name || !change.known) {
      // A role change among them is refused above; another setting is now unknown.
      if (!name || carried(lowercase(*name)) == Carried::yes) state_.unknown = true;
      continue;
    }
    const std::string folded = lowercase(*name);
    const std::optional<std::string> value = change.value_param > 0 ? param(change.value_param) : change.value;
    switch (carried(folded)) {
      case Carried::reported:
      case Carried::no: break;
      case Carried::role:
        // RESET ROLE, SET ROLE NONE, SESSION AUTHORIZATION DEFAULT: back to the session's own.
        state_.role_changed = change.kind == SettingChange::Kind::set && !(value && equal_folded(*value, "none"));
        break;
      case Carried::yes:
        if (change.kind == SettingChange::Kind::reset) {
          state_.set_by_sql.erase(folded);
        } else if (value) {
          state_.set_by_sql[folded] = *value;
        } else {
          state_.unknown = true;
        }
        break;
    }
  }
}

void SessionCapture::settle_session(bool committed) {
  if (committed) {
    committed_state_ = state_;
  } else {
    state_ = committed_state_;
  }
  savepoints_.clear();
  refresh_session();
}

void SessionCapture::refresh_session() {
  // What the session set by SQL over what it started with (RESET returns there).
  std::map<std::string, std::string, std::less<>> settings = startup_settings_;
  for (const auto& [name, value] : committed_state_.set_by_sql) settings[name] = value;
  const auto search_path = settings.find("search_path");
  session_.search_path = search_path != settings.end() ? search_path->second : reported_search_path_;
  session_.extra.clear();
  for (const auto& [name, value] : settings) {
    if (name != "search_path") session_.extra.emplace_back(name, value);
  }
  // On since PostgreSQL 9.1; carried only when a session turned it off,
  // because it changes what a string literal in the unit's SQL means.
  if (standard_conforming_strings_ != "on") {
    session_.extra.emplace_back("standard_conforming_strings", standard_conforming_strings_);
  }
}

}  // namespace shadowpipe::proxy
