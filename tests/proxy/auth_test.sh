#!/usr/bin/env bash
# auth_test.sh BIN_DIR INDEX — authentication through shadow-proxy, which
# holds no passwords and relays every authentication message unchanged. A
# PostgreSQL 15 cluster of the test's own demands md5 of one user (its
# password stored as an MD5 hash, so the server really asks for md5) and
# SCRAM-SHA-256 of another (pg_hba.conf, nothing trusted over TCP but the
# superuser that sets it up). Through the proxy:
#  * psql (libpq) and node-postgres (its own protocol code) log in as each
#    user and run a statement; the server's log names the method it used;
#  * a wrong password is refused with the server's own error (28P01,
#    'password authentication failed for user ...'), for both clients and
#    both methods, and the proxy keeps serving;
#  * the proxy records the statements as for any session (capture on).
# INDEX picks the proxy's ports (16700+INDEX, metrics 16750+INDEX; moved by
# SHADOWPIPE_PROXY_METRICS_BASE); the cluster takes SHADOWPIPE_PRIVATE_PG_PORT
# or a free port.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/private_primary.sh"
private_primary_setup auth "$1" "$2"
# First match wins: each user's method, the superuser trusted for the setup.
private_primary_start "host all md5_user   127.0.0.1/32 md5
host all scram_user 127.0.0.1/32 scram-sha-256
host all postgres   127.0.0.1/32 trust" "log_connections = on"
psql "$direct" -XAtq -v ON_ERROR_STOP=1 >"$work/setup.log" 2>&1 <<'SQL' \
  || fail "roles"
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret';
SET password_encryption = 'scram-sha-256';
CREATE ROLE scram_user LOGIN PASSWORD 'scram-secret';
SQL
stored=$(psql "$direct" -XAtqc \
  "SELECT string_agg(rolname || ':' || left(rolpassword, 14), ' ' ORDER BY rolname) FROM pg_authid WHERE rolname LIKE '%\\_user'")
[[ $stored == "md5_user:md5"*" scram_user:SCRAM-SHA-256\$" ]] || fail "stored passwords: $stored"

proxy_start

# psql (libpq): the right password logs in; a wrong one gets the server's FATAL.
for login in md5_user:md5-secret scram_user:scram-secret; do
  user=${login%%:*} password=${login#*:}
  out=$(PGPASSWORD=$password psql "host=127.0.0.1 port=$port user=$user dbname=postgres sslmode=prefer" -XAtqc \
        "SELECT current_user || ' ' || 6 * 7" 2>&1) || fail "psql as $user through the proxy: $out"
  [ "$out" = "$user 42" ] || fail "psql as $user: '$out'"
  if out=$(PGPASSWORD=wrong psql "host=127.0.0.1 port=$port user=$user dbname=postgres" -XAtqc "SELECT 1" 2>&1); then
    fail "psql as $user logged in with a wrong password"
  fi
  echo "$out" | grep -q "FATAL:  password authentication failed for user \"$user\"" \
    || fail "psql as $user with a wrong password did not get the server's error: $out"
  echo "psql: $user logs in; a wrong password: ${out##*FATAL:  }"
done

# node-postgres: its own protocol code (md5 hash, SCRAM exchange), no libpq.
NODE_PATH=$root/.cache/clients/node/node_modules node - "$port" <<'JS' || fail "node-postgres logins"
const { Client } = require('pg');
const port = Number(process.argv[2]);
async function login(user, password) {
  const client = new Client({ host: '127.0.0.1', port, user, password, database: 'postgres' });
  try {
    await client.connect();
    const result = await client.query('SELECT current_user AS who, $1::int * 7 AS answer', [6]);
    return `${result.rows[0].who} ${result.rows[0].answer}`;
  } catch (error) {
    return `error ${error.code}: ${error.message}`;
  } finally {
    await client.end().catch(() => {});
  }
}
(async () => {
  let failed = false;
  for (const [user, password] of [['md5_user', 'md5-secret'], ['scram_user', 'scram-secret']]) {
    const good = await login(user, password);
    const bad = await login(user, 'wrong');
    console.log(`node-postgres: ${user}: '${good}'; a wrong password: '${bad}'`);
    if (good !== `${user} 42`) failed = true;
    if (bad !== `error 28P01: password authentication failed for user "${user}"`) failed = true;
  }
  process.exit(failed ? 1 : 0);
})();
JS

# The server asked each user for its method (the log names it), and the
# proxy is still serving.
for method in md5_user:md5 scram_user:scram-sha-256; do
  grep -q "connection authenticated: identity=\"${method%%:*}\" method=${method#*:} " "$work/server.log" \
    || fail "the server's log shows no ${method#*:} authentication of ${method%%:*}"
done
[ "$(PGPASSWORD=scram-secret psql "host=127.0.0.1 port=$port user=scram_user dbname=postgres" -XAtqc 'SELECT 1')" = 1 ] \
  || fail "the proxy stopped serving after the refused logins"
proxy_stop
[ "$(value protocol_errors)" = 0 ] || fail "protocol errors: $(value protocol_errors)"
[ "$(value dropped_unmatched)" = 0 ] || fail "the capture lost its place in an authentication"
[ "$(value units)" -ge 5 ] || fail "the statements of the authenticated sessions were not recorded ($(value units) units)"
echo "PASS: md5 and SCRAM through shadow-proxy with psql and node-postgres; wrong passwords refused by the server"
