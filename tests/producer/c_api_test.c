/* The C API, compiled as C (proves producer.h is C-clean) and exercised with
 * no broker reachable: options, errors, NULL handles, units, counters. */
#include "shadowpipe/producer.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;
#define CHECK(condition)                                                   \
  do {                                                                     \
    if (!(condition)) {                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      ++failures;                                                          \
    }                                                                      \
  } while (0)

/* A two-row result made in memory, as libpq would return it. */
static PGresult *made_result(void) {
  PGresult *result = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  PGresAttDesc columns[2];
  memset(columns, 0, sizeof columns);
  columns[0].name = "id";
  columns[0].typid = 20;
  columns[0].typlen = 8;
  columns[0].atttypmod = -1;
  columns[1].name = "email";
  columns[1].typid = 1043;
  columns[1].typlen = -1;
  columns[1].atttypmod = -1;
  PQsetResultAttrs(result, 2, columns);
  PQsetvalue(result, 0, 0, "1", 1);
  PQsetvalue(result, 0, 1, "a@example.com", 13);
  PQsetvalue(result, 1, 0, "2", 1);
  PQsetvalue(result, 1, 1, NULL, -1);
  return result;
}

static shadowpipe_config *unreachable_config(void) {
  shadowpipe_config *config = shadowpipe_config_new();
  CHECK(config != NULL);
  CHECK(shadowpipe_config_set(config, "kafka.bootstrap.servers", "127.0.0.1:1") == SHADOWPIPE_OK);
  CHECK(shadowpipe_config_set(config, "kafka.message.timeout.ms", "60000") == SHADOWPIPE_OK);
  CHECK(shadowpipe_config_set(config, "kafka.log_level", "0") == SHADOWPIPE_OK);
  CHECK(shadowpipe_config_set(config, "flush.timeout.ms", "0") == SHADOWPIPE_OK);
  CHECK(shadowpipe_config_set(config, "source", "c_api_test") == SHADOWPIPE_OK);
  return config;
}

static void options_are_checked(void) {
  shadowpipe_config *config = shadowpipe_config_new();
  CHECK(shadowpipe_config_set(config, "sample.rate", "0.25") == SHADOWPIPE_OK);
  CHECK(shadowpipe_config_set(config, "sample.rate", "1.5") == SHADOWPIPE_INVALID_ARGUMENT);
  CHECK(shadowpipe_config_set(config, "sample.rate", "often") == SHADOWPIPE_INVALID_ARGUMENT);
  CHECK(shadowpipe_config_set(config, "sample.rate.0123456789abcdef", "1") == SHADOWPIPE_OK);
  CHECK(shadowpipe_config_set(config, "publish.rollbacks", "maybe") == SHADOWPIPE_INVALID_ARGUMENT);
  CHECK(shadowpipe_config_set(config, "max.record.bytes", "-3") == SHADOWPIPE_INVALID_ARGUMENT);
  CHECK(shadowpipe_config_set(config, "no.such.option", "1") == SHADOWPIPE_INVALID_ARGUMENT);
  CHECK(shadowpipe_config_set(config, "topic", "") == SHADOWPIPE_INVALID_ARGUMENT);
  CHECK(shadowpipe_config_set(NULL, "topic", "x") == SHADOWPIPE_INVALID_ARGUMENT);
  CHECK(shadowpipe_config_set(config, "normalization.file", "/no/such/file.json") == SHADOWPIPE_INVALID_ARGUMENT);
  CHECK(strcmp(shadowpipe_status_text(SHADOWPIPE_CONFIG_REFUSED), "configuration refused") == 0);
  shadowpipe_config_destroy(config);
}

static void refused_kafka_property_is_reported(void) {
  shadowpipe_config *config = unreachable_config();
  CHECK(shadowpipe_config_set(config, "kafka.no.such.property", "1") == SHADOWPIPE_OK); /* checked at creation */
  shadowpipe_recorder *recorder = (shadowpipe_recorder *)1;
  char errbuf[256];
  CHECK(shadowpipe_recorder_new(config, &recorder, errbuf, sizeof errbuf) == SHADOWPIPE_CONFIG_REFUSED);
  CHECK(recorder == NULL);
  CHECK(strstr(errbuf, "no.such.property") != NULL);
  shadowpipe_config_destroy(config);
}

static void null_handles_are_ignored(void) {
  shadowpipe_counters counters;
  shadowpipe_record(NULL, NULL, "k", "SELECT 1", 0, NULL, NULL, 1);
  shadowpipe_unit *unit = shadowpipe_unit_begin(NULL, NULL, "k");
  CHECK(unit == NULL);
  shadowpipe_unit_add(unit, "SELECT 1", 0, NULL, NULL, 1);
  shadowpipe_unit_commit(unit);
  shadowpipe_unit_rollback(NULL);
  CHECK(shadowpipe_recorder_flush(NULL, 10) == -1);
  CHECK(shadowpipe_recorder_counters(NULL, &counters) == SHADOWPIPE_INVALID_ARGUMENT);
  shadowpipe_recorder_destroy(NULL);
}

static void units_are_recorded_and_counted(void) {
  shadowpipe_config *config = unreachable_config();
  CHECK(shadowpipe_config_set(config, "publish.rollbacks", "false") == SHADOWPIPE_OK);
  shadowpipe_recorder *recorder = NULL;
  char errbuf[256];
  CHECK(shadowpipe_recorder_new(config, &recorder, errbuf, sizeof errbuf) == SHADOWPIPE_OK);
  shadowpipe_config_destroy(config); /* the recorder keeps its own copy */
  CHECK(recorder != NULL);

  PGresult *result = made_result();
  const char *params[2] = {"42", NULL};
  int i;
  for (i = 0; i < 10; ++i) {
    shadowpipe_record(recorder, NULL, "customer:42", "SELECT id, email FROM customers WHERE id = $1 OR $2 IS NULL", 2,
                      params, result, 150);
  }

  shadowpipe_unit *unit = shadowpipe_unit_begin(recorder, NULL, "customer:42");
  CHECK(unit != NULL);
  shadowpipe_unit_set_session(unit, "UTC", "ISO, MDY", "postgres", "public");
  shadowpipe_unit_add(unit, "UPDATE customers SET name = $2 WHERE id = $1", 2, params, result, 90);
  shadowpipe_unit_add_error(unit, "INSERT INTO customers (id) VALUES ($1)", 1, params, "23505",
                            "duplicate key value violates unique constraint", 80);
  shadowpipe_unit_commit(unit);

  unit = shadowpipe_unit_begin(recorder, NULL, "customer:43");
  shadowpipe_unit_add(unit, "DELETE FROM orders WHERE id = $1", 1, params, result, 70);
  shadowpipe_unit_rollback(unit); /* publish.rollbacks=false: left out */

  unit = shadowpipe_unit_begin(recorder, NULL, NULL);
  shadowpipe_unit_add(unit, "SELECT 1", 0, NULL, result, 10);
  shadowpipe_unit_abandon(unit);

  shadowpipe_counters counters;
  CHECK(shadowpipe_recorder_counters(recorder, &counters) == SHADOWPIPE_OK);
  CHECK(counters.recorded == 11);
  CHECK(counters.pending == 11);
  CHECK(counters.published == 0);
  CHECK(counters.rollbacks_discarded == 1);
  CHECK(counters.abandoned == 1);
  CHECK(shadowpipe_recorder_flush(recorder, 0) == 11);
  PQclear(result);
  shadowpipe_recorder_destroy(recorder);
}

int main(void) {
  options_are_checked();
  refused_kafka_property_is_reported();
  null_handles_are_ignored();
  units_are_recorded_and_counted();
  if (failures) {
    fprintf(stderr, "c_api_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
