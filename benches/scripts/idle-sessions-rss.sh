#!/usr/bin/env bash
# idle-sessions-rss.sh - memory cost of idle SMTP sessions on `mailsim serve` (real sockets).
#
# Starts `mailsim serve` on a free loopback port (config binds 127.0.0.1:0, limits.connections
# = N + 1000), reads the server's VmRSS from /proc/<pid>/status, then a small python3 helper
# opens N connections to it, reads each 220 greeting and holds them all open (idle, nothing
# sent). With every session open it reads VmRSS again (after SETTLE seconds), prints both and
# the per-session cost ((with - idle) / N), then closes the sessions, reads VmRSS once more
# and stops the server.
#
# Postfix comparison (POSTFIX=1, default): runs ../shared/bench/postfix-baseline.sh with
# MEM=1 MEASURE=none SESSIONS=$PF_SESSIONS: it holds $PF_SESSIONS slow sessions
# (smtp-source -d -w 1, one message per second each, so *not* idle) and sums Rss/Pss over
# Postfix's smtpd processes (one process per session). Postfix serves at most
# default_process_limit (100) sessions at once, hence PF_SESSIONS=100. For an apples-to-apples
# look the same slow load is also put on mailsim (MAILSIM_SLOW=1, default) and its VmRSS read.
#
# Env: N(1000) SETTLE(2) RCPT_DOMAIN(test.example) POSTFIX(1) PF_SESSIONS(100) MAILSIM_SLOW(1)
#      SKIP_BUILD MAILSIM_BIN BUILD_REV (see lib-build.sh)  BASELINE(<repo>/../shared/bench/postfix-baseline.sh) KEEP(0)
# Stops only what it started (mailsim and the helpers by pid). Only ever talks to 127.0.0.1.
set -euo pipefail

N=${N:-1000}
SETTLE=${SETTLE:-2}
RCPT_DOMAIN=${RCPT_DOMAIN:-test.example}
POSTFIX=${POSTFIX:-1}
PF_SESSIONS=${PF_SESSIONS:-100}
MAILSIM_SLOW=${MAILSIM_SLOW:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASELINE=${BASELINE:-$ROOT/../shared/bench/postfix-baseline.sh}
ACCOUNT="user@$RCPT_DOMAIN"

log() { echo "## $*" >&2; }

# 1 fd per socket on each side plus slack; the server and the helper inherit this.
need=$(( N + 256 ))
if (( $(ulimit -n) < need )); then
  ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
(( $(ulimit -n) >= need )) || { echo "ulimit -n is $(ulimit -n), need $need" >&2; exit 2; }

TMP=$(mktemp -d /tmp/idle-sessions-rss.XXXXXX)
MS_PID="" HOLD_PID="" SLOW_PID=""
cleanup() {
  set +e
  for p in $HOLD_PID $SLOW_PID; do
    kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  declare -F stop_server >/dev/null && stop_server
  if [[ $KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ build + start
# shellcheck source=lib-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-build.sh"
get_mailsim "$ROOT" "$TMP/mailsim"

cat > "$TMP/mailsim.toml" <<EOF
hostname = "mx.$RCPT_DOMAIN"
domains = ["$RCPT_DOMAIN"]
accounts = ["$ACCOUNT"]
[limits]
connections = $(( N + 1000 ))
[listen]
smtp = "127.0.0.1:0"
EOF

stop_server() {
  [[ -n $MS_PID ]] || return 0
  if kill -0 "$MS_PID" 2>/dev/null; then
    kill -INT "$MS_PID"
    for _ in $(seq 50); do kill -0 "$MS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$MS_PID" 2>/dev/null && kill -KILL "$MS_PID"
  fi
  wait "$MS_PID" 2>/dev/null || true
  MS_PID=""
}
start_server() {  # tag: a fresh server (own data dir and log)
  "$TMP/mailsim" serve --config "$TMP/mailsim.toml" --data-dir "$TMP/data-$1" 2>"$TMP/mailsim-$1.log" &
  MS_PID=$!
  local line=""
  for _ in $(seq 100); do
    line=$(grep -o 'SMTP on 127\.0\.0\.1:[0-9]*' "$TMP/mailsim-$1.log" 2>/dev/null || true)
    [[ -n $line ]] && break
    kill -0 "$MS_PID" 2>/dev/null || { cat "$TMP/mailsim-$1.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -n $line ]] || { echo "mailsim did not start" >&2; cat "$TMP/mailsim-$1.log" >&2; exit 1; }
  PORT=${line##*:}
  log "mailsim ($1) pid $MS_PID on 127.0.0.1:$PORT (ulimit -n $(ulimit -n))"
}
start_server idle

rss() { awk '/^VmRSS:/{print $2}' "/proc/$MS_PID/status"; }
hwm() { awk '/^VmHWM:/{print $2}' "/proc/$MS_PID/status"; }
threads() { awk '/^Threads:/{print $2}' "/proc/$MS_PID/status"; }

# ------------------------------------------------------------------ idle sessions
cat > "$TMP/hold.py" <<'EOF'
# hold.py PORT N: open N SMTP sessions to 127.0.0.1:PORT, read each greeting, print a status
# line, then hold every socket until stdin is closed (or a line arrives).
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks, ok, bad = [], 0, []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    buf = b""
    try:
        while not buf.endswith(b"\r\n"):
            chunk = s.recv(512)
            if not chunk:
                break
            buf += chunk
    except OSError as e:
        buf += (" <%s>" % e).encode()
    if buf.startswith(b"220 "):
        ok += 1
    elif len(bad) < 3:
        bad.append(buf.decode("latin-1").strip())
    socks.append(s)
print("opened=%d greeted_220=%d other=%r" % (len(socks), ok, bad), flush=True)
sys.stdin.readline()
# Close politely-ish: just drop the sockets (the server must cope with that).
for s in socks:
    s.close()
print("closed", flush=True)
EOF

sleep 1
RSS_IDLE=$(rss); THR_IDLE=$(threads)
log "idle: VmRSS ${RSS_IDLE} kB, threads $THR_IDLE"

mkfifo "$TMP/hold.in"
python3 "$TMP/hold.py" "$PORT" "$N" < "$TMP/hold.in" > "$TMP/hold.out" 2>&1 &
HOLD_PID=$!
exec 7>"$TMP/hold.in"            # keep the helper's stdin open
for _ in $(seq 600); do
  grep -q '^opened=' "$TMP/hold.out" && break
  kill -0 "$HOLD_PID" 2>/dev/null || break
  sleep 0.1
done
HOLD_STATUS=$(cat "$TMP/hold.out")
log "helper: $HOLD_STATUS"
sleep "$SETTLE"
RSS_OPEN=$(rss); THR_OPEN=$(threads)
ESTAB=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
log "with sessions: VmRSS ${RSS_OPEN} kB, threads $THR_OPEN, server-side established $ESTAB"

echo close >&7; exec 7>&-
wait "$HOLD_PID" 2>/dev/null || true; HOLD_PID=""
sleep "$SETTLE"
RSS_AFTER=$(rss); HWM=$(hwm)
ALIVE=yes; kill -0 "$MS_PID" 2>/dev/null || ALIVE=NO

PER=$(awk -v a="$RSS_IDLE" -v b="$RSS_OPEN" -v n="$N" 'BEGIN{printf "%.1f", (b-a)/n}')

# ------------------------------------------------------------------ same slow load as baseline MEM=1
MS_SLOW=""
if [[ $MAILSIM_SLOW == 1 ]] && command -v smtp-source >/dev/null; then
  declare -F stop_server >/dev/null && stop_server
  start_server slow
  sleep 1
  before=$(rss)
  smtp-source -d -w 1 -s "$PF_SESSIONS" -m $((PF_SESSIONS * 15)) -l 2048 -f sender@example.com \
    -t "$ACCOUNT" "127.0.0.1:$PORT" >"$TMP/slow.out" 2>&1 &
  SLOW_PID=$!
  sleep 6
  during=$(rss)
  wait "$SLOW_PID" || log "smtp-source (slow) exit $?: $(head -3 "$TMP/slow.out")"
  SLOW_PID=""
  MS_SLOW="mailsim sessions=$PF_SESSIONS rss_before_kb=$before rss_during_kb=$during per_session_kb=$(awk -v a="$before" -v b="$during" -v n="$PF_SESSIONS" 'BEGIN{printf "%.1f", (b-a)/n}')"
fi

echo
echo "=== idle-sessions-rss: mailsim serve, $N idle sessions on loopback; $(nproc) cores; $(date -u +%FT%TZ)"
echo "helper: $HOLD_STATUS; server-side established: $ESTAB; server alive after close: $ALIVE"
echo "rss_idle_kb=$RSS_IDLE rss_with_sessions_kb=$RSS_OPEN per_session_kb=$PER rss_after_close_kb=$RSS_AFTER vmhwm_kb=$HWM threads_idle=$THR_IDLE threads_with_sessions=$THR_OPEN"
[[ -n $MS_SLOW ]] && echo "slow-load (smtp-source -d -w 1, as baseline MEM=1): $MS_SLOW"
for f in "$TMP"/mailsim-*.log; do
  if [[ -n $(grep -v -e '^mailsim: SMTP on' -e 'interrupted, shutting down' "$f" || true) ]]; then
    echo "mailsim stderr ($f):"; grep -v -e '^mailsim: SMTP on' -e 'interrupted, shutting down' "$f" | head -5
  fi
done

# ------------------------------------------------------------------ Postfix comparison
if [[ $POSTFIX == 1 ]]; then
  log "postfix comparison: baseline MEM=1 SESSIONS=$PF_SESSIONS"
  if env WORKDIR="$TMP/pfbench" MEASURE=none MEM=1 MEM_PROC=smtpd SESSIONS="$PF_SESSIONS" REPEAT=1 \
       bash "$BASELINE" > "$TMP/pf.out" 2>&1; then
    PF=$(grep '^mem ' "$TMP/pf.out" || true)
    echo "postfix (baseline MEM=1, $PF_SESSIONS slow sessions, sum over smtpd processes): $PF"
    echo "$PF" | awk '{for(i=1;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]}}
      END{ if (v["procs"]>0) printf "postfix per smtpd process (= per session): rss_kb=%.0f pss_kb=%.0f\n", v["rss_total_kb"]/v["procs"], v["pss_total_kb"]/v["procs"] }'
  else
    echo "postfix comparison failed:"; tail -5 "$TMP/pf.out"
  fi
fi
