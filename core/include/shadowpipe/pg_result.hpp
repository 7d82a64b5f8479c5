// A libpq result as both sides record it: the recorder on the primary's
// result, the executor on the shadow's. One conversion, so the two sides can
// only differ where the databases did.
#pragma once

#include "shadowpipe/digest.hpp"
#include "shadowpipe/wire.hpp"

#include <libpq-fe.h>

namespace shadowpipe::digest {

// The digest of a result in text format (libpq's rendering of each value).
ResultDigest digest_result(const PGresult* result, const NormalizationRules& rules);

}  // namespace shadowpipe::digest

namespace shadowpipe::pg {

// Columns, digest and row count of a result that succeeded; status, SQLSTATE
// and message of one that failed. The latency is the caller's to set.
wire::StatementResult statement_result(const PGresult* result, const digest::NormalizationRules& rules);

}  // namespace shadowpipe::pg
