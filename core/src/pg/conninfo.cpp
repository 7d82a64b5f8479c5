#include "shadowpipe/conninfo.hpp"

#include "shadowpipe/result.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>

namespace shadowpipe::pg {

namespace {

struct ConninfoDeleter {
  void operator()(PQconninfoOption* options) const noexcept { PQconninfoFree(options); }
};

std::string quote_value(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

Conninfo Conninfo::parse(const std::string& dsn, std::string_view what) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoDeleter> options(PQconninfoParse(dsn.c_str(), &error));
  PQfreemem(error);
  if (!options) {
    throw shadowpipe::Failure(std::string(what) +
                              " does not parse as a libpq connection string (keyword=value pairs or a "
                              "postgresql:// URI); check its quoting");
  }
  Conninfo out;
  for (auto* option = options.get(); option->keyword; ++option) {
    if (option->val && *option->val) out.settings_.emplace_back(option->keyword, option->val);
  }
  return out;
}

std::string Conninfo::get(std::string_view keyword) const {
  for (const auto& [key, value] : settings_) {
    if (key == keyword) return value;
  }
  return "";
}

Conninfo Conninfo::with(std::string_view keyword, std::string value) const {
  Conninfo out = *this;
  for (auto& [key, current] : out.settings_) {
    if (key == keyword) {
      current = std::move(value);
      return out;
    }
  }
  out.settings_.emplace_back(keyword, std::move(value));
  return out;
}

Conninfo Conninfo::without(std::string_view keyword) const {
  Conninfo out = *this;
  std::erase_if(out.settings_, [&](const auto& setting) { return setting.first == keyword; });
  return out;
}

std::string Conninfo::str() const {
  std::string out;
  for (const auto& [key, value] : settings_) out += (out.empty() ? "" : " ") + key + "=" + quote_value(value);
  return out;
}

std::string with_database(const std::string& dsn, const std::string& database) {
  return Conninfo::parse(dsn).with("dbname", database).str();
}

}  // namespace shadowpipe::pg
