/* shadowpipe producer — C API of the application-side recorder, for
 * applications in any language that can call C.
 *
 * Handles are opaque. No function blocks on Kafka and none lets an exception
 * escape: failures are returned as shadowpipe_status codes. A NULL recorder
 * or unit is accepted everywhere and ignored, so the application never needs
 * a branch around shadowing: if shadowpipe_recorder_new failed, keep the NULL
 * recorder and every later call does nothing.
 *
 * Typical use, on the thread that ran the statement on the primary:
 *
 *   shadowpipe_record(recorder, conn, "customer:42", sql, nparams, params, res, latency_us);
 *
 *   shadowpipe_unit *unit = shadowpipe_unit_begin(recorder, conn, "customer:42");
 *   shadowpipe_unit_add(unit, sql1, n1, params1, res1, latency1_us);
 *   shadowpipe_unit_add(unit, sql2, n2, params2, res2, latency2_us);
 *   shadowpipe_unit_commit(unit);         (or shadowpipe_unit_rollback; both free the unit)
 *
 * Results are only read during the call; the application still PQclear()s them.
 */
#ifndef SHADOWPIPE_PRODUCER_H
#define SHADOWPIPE_PRODUCER_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shadowpipe_config shadowpipe_config;
typedef struct shadowpipe_recorder shadowpipe_recorder;
typedef struct shadowpipe_unit shadowpipe_unit;

typedef enum shadowpipe_status {
  SHADOWPIPE_OK = 0,
  SHADOWPIPE_INVALID_ARGUMENT = 1, /* NULL where a value is required, unknown option, bad value */
  SHADOWPIPE_CONFIG_REFUSED = 2,   /* the configuration cannot work (Kafka property, port in use); see errbuf */
  SHADOWPIPE_OUT_OF_MEMORY = 3,
  SHADOWPIPE_INTERNAL_ERROR = 4
} shadowpipe_status;

/* A short English name of a status ("ok", "invalid argument", ...). */
const char *shadowpipe_status_text(shadowpipe_status status);

typedef struct shadowpipe_counters {
  /* recorded == published + every dropped_* + pending */
  uint64_t recorded;
  uint64_t published;
  uint64_t pending;
  uint64_t dropped_queue_full;
  uint64_t dropped_too_large;
  uint64_t dropped_sampled_out;
  uint64_t dropped_serialization_error;
  uint64_t dropped_delivery_failed;
  /* Not in recorded: rolled back while publish.rollbacks=false; units freed without commit. */
  uint64_t rollbacks_discarded;
  uint64_t abandoned;
  /* Not acknowledged, yet possibly written (a dropped_* outcome, added last). */
  uint64_t dropped_possibly_delivered;
  /* Gap records announcing dropped write units, the units they announced, and those not announced yet. */
  uint64_t gaps_announced;
  uint64_t gap_units_announced;
  uint64_t gap_units_pending;
} shadowpipe_counters;

shadowpipe_config *shadowpipe_config_new(void); /* NULL when out of memory */
void shadowpipe_config_destroy(shadowpipe_config *config);

/* Sets one option. Names:
 *   topic                  requests topic (default shadow.requests)
 *   source                 application name (default app)
 *   sample.rate            0..1 (default 1)
 *   sample.rate.<fingerprint>  rate for one statement fingerprint
 *   sample.writes          true|false (default false: writes are always published)
 *   sample.seed            unsigned integer, for reproducible sampling
 *   publish.rollbacks      true|false (default true)
 *   search_path            default search_path recorded with each unit
 *   max.record.bytes       larger records are dropped as too_large
 *   flush.timeout.ms       how long shadowpipe_recorder_destroy waits for deliveries
 *   metrics.bind           serve Prometheus /metrics here, e.g. 127.0.0.1:9103
 *   normalization.file     digest normalization rules (JSON), as the executor's
 *   kafka.<property>       any librdkafka property, e.g. kafka.bootstrap.servers
 */
shadowpipe_status shadowpipe_config_set(shadowpipe_config *config, const char *name, const char *value);

/* Creates a recorder. On failure *out is NULL and errbuf (if given) says why. */
shadowpipe_status shadowpipe_recorder_new(const shadowpipe_config *config, shadowpipe_recorder **out, char *errbuf,
                                          size_t errbuf_size);
/* Waits up to flush.timeout.ms for deliveries, then frees the recorder. */
void shadowpipe_recorder_destroy(shadowpipe_recorder *recorder);
/* Waits up to timeout_ms; returns the records still undelivered (-1 for a NULL recorder). */
int shadowpipe_recorder_flush(shadowpipe_recorder *recorder, int timeout_ms);
shadowpipe_status shadowpipe_recorder_counters(const shadowpipe_recorder *recorder, shadowpipe_counters *out);

/* One autocommit statement. params: nparams NUL-terminated text values, NULL
 * entries are SQL NULL. result: what the primary returned (NULL if nothing).
 * conn (may be NULL) is read for TimeZone, DateStyle, IntervalStyle without
 * any query. key: the consistency key (NULL or "": the request id). */
void shadowpipe_record(shadowpipe_recorder *recorder, const PGconn *conn, const char *key, const char *sql,
                       int nparams, const char *const *params, const PGresult *result, int64_t latency_us);

/* A transaction: published at commit as one record, statements in order.
 * Returns NULL when recorder is NULL or memory is short (then every unit call
 * is a no-op). */
shadowpipe_unit *shadowpipe_unit_begin(shadowpipe_recorder *recorder, const PGconn *conn, const char *key);
void shadowpipe_unit_set_search_path(shadowpipe_unit *unit, const char *search_path);
/* For drivers without a PGconn: the session's rendering settings (NULL: unknown). */
void shadowpipe_unit_set_session(shadowpipe_unit *unit, const char *time_zone, const char *date_style,
                                 const char *interval_style, const char *search_path);
void shadowpipe_unit_add(shadowpipe_unit *unit, const char *sql, int nparams, const char *const *params,
                         const PGresult *result, int64_t latency_us);
/* For drivers without a PGresult: a statement the primary refused. */
void shadowpipe_unit_add_error(shadowpipe_unit *unit, const char *sql, int nparams, const char *const *params,
                               const char *sqlstate, const char *message, int64_t latency_us);
void shadowpipe_unit_commit(shadowpipe_unit *unit);   /* publishes and frees the unit */
void shadowpipe_unit_rollback(shadowpipe_unit *unit); /* per publish.rollbacks, and frees the unit */
void shadowpipe_unit_abandon(shadowpipe_unit *unit);  /* frees without publishing; counted as abandoned */

#ifdef __cplusplus
}
#endif

#endif /* SHADOWPIPE_PRODUCER_H */
