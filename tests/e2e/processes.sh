# Sourced by tests/e2e/run.sh and tests/gatekeeper-audit/cluster.sh (after W is set): the
# processes a run starts and stops, waits that give up when the watched process exits, and the
# PASS/FAIL counters. STOP_GRACE_S (default 10) is how long `stop` waits after SIGTERM.

declare -A PIDS=()
LOGS=()

start() { # name cmd... (runs in the background, output to $W/logs/name.log)
  local name=$1; shift
  local log="$W/logs/$name.log"
  [[ " ${LOGS[*]} " == *" $log "* ]] || LOGS+=("$log")
  echo "=== start $(date +%T): $*" >>"$log"
  "$@" >>"$log" 2>&1 &
  PIDS[$name]=$!
}

stop() { # name: SIGTERM, then SIGKILL after STOP_GRACE_S seconds
  local name=$1 pid=${PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 $((${STOP_GRACE_S:-10} * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "PIDS[$name]"
}

show_logs() {
  local log
  for log in "${LOGS[@]}"; do
    echo "----- last 40 lines of $log"
    tail -n 40 "$log" | cut -c1-400
  done
}

# description command...: retried every 0.2 s for STEP_TIMEOUT seconds; gives up at once when
# the process named by $WATCH (a name given to start) has exited.
WATCH=""
wait_for() {
  local what=$1 deadline=$((SECONDS + STEP_TIMEOUT)) pid status; shift
  until "$@" >/dev/null 2>&1; do
    pid=""
    [ -z "$WATCH" ] || pid=${PIDS[$WATCH]:-}
    if [ -n "$WATCH" ] && [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"; status=$?
      unset "PIDS[$WATCH]"
      echo "$WATCH exited with status $status while waiting for $what" >&2
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out after ${STEP_TIMEOUT}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
# A component that does not come up ends the run: later steps would only fail in its wake.
fatal() {
  echo "FAIL: $*"
  show_logs
  echo "$PASSED passed, $((FAILED + 1)) failed"
  exit 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
