// PGresults made in memory (PQmakeEmptyPGresult + PQsetvalue), so unit tests
// record real libpq results without a server.
#pragma once

#include "shadowpipe/pg.hpp"

#include <libpq-fe.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace shadowpipe::testing {

// rows x 3 columns (id int8, name text, price numeric), like an orders page.
inline pg::Result made_result(int rows) {
  pg::Result result(PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
  std::vector<PGresAttDesc> columns(3);
  const char* names[] = {"id", "name", "price"};
  const Oid types[] = {20, 25, 1700};
  for (size_t i = 0; i < columns.size(); ++i) {
    columns[i] = PGresAttDesc{};
    columns[i].name = const_cast<char*>(names[i]);
    columns[i].typid = types[i];
    columns[i].typlen = -1;
    columns[i].atttypmod = -1;
  }
  if (!PQsetResultAttrs(result.get(), static_cast<int>(columns.size()), columns.data())) {
    throw std::runtime_error("PQsetResultAttrs failed");
  }
  for (int row = 0; row < rows; ++row) {
    const std::string values[] = {std::to_string(1000 + row), "product number " + std::to_string(row),
                                  std::to_string(row * 3) + "." + std::to_string(10 + row % 90)};
    for (int column = 0; column < 3; ++column) {
      auto& value = values[column];
      if (!PQsetvalue(result.get(), row, column, const_cast<char*>(value.data()), static_cast<int>(value.size()))) {
        throw std::runtime_error("PQsetvalue failed");
      }
    }
  }
  return result;
}

}  // namespace shadowpipe::testing
