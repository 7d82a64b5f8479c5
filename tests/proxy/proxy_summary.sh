# Sourced by the proxy's shell tests: proxy_stop stops the shadow-proxy they
# started ($proxy_pid, its log in $work/proxy.log), fails (the caller's
# `fail`) unless it exits cleanly, and prints its stop summary ($summary);
# `value NAME` reads one figure of it.
proxy_stop() {
  kill -TERM "$proxy_pid"
  wait "$proxy_pid" || fail "shadow-proxy exited with $? when stopped"
  pids=()
  summary=$(grep '^shadow-proxy: connections=' "$work/proxy.log" | tail -n 1)
  echo "$summary"
}

value() { echo "$summary" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
