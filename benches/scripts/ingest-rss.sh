#!/usr/bin/env bash
# ingest-rss.sh - memory of `mailsim serve` while many sessions stream big messages (issue #9).
#
# Starts the server on a free loopback port (own data dir, limits.connections = N + 100,
# limits.message_size = SIZE + 1 MiB), reads its VmRSS when idle, then a python3 asyncio
# helper opens N sessions and has each send EHLO, MAIL, RCPT, DATA and the first half of a
# SIZE-octet message (76-octet lines). With every session half-way it reads VmRSS and VmHWM
# (the peak so far), lets them all finish (250 each, then QUIT), waits SETTLE seconds and
# reads VmRSS again. ROUNDS rounds on one server show whether memory is retained.
#
# Targets (issue #9, reported, not asserted): half-way RSS < 100 MB for N=1000 and SIZE=10 MB;
# after the sessions finish, RSS within 2x of idle.
#
# Env: N(1000) SIZE(10000000) ROUNDS(2) SETTLE(3) MAILSIM_BIN | BUILD_REV | SKIP_BUILD (see
#      lib-build.sh; a mailsim or mailsim-server binary) KEEP(0)
# Needs N*SIZE/2 octets of free disk under /tmp for the spool (5 GB at the defaults) and as
# much again for the stored mail. Only talks to 127.0.0.1; stops only what it started.
set -euo pipefail

N=${N:-1000}
SIZE=${SIZE:-10000000}
ROUNDS=${ROUNDS:-2}
SETTLE=${SETTLE:-3}
KEEP=${KEEP:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
log() { echo "## $*" >&2; }

need=$(( N + 256 ))
if (( $(ulimit -n) < need )); then
  ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
(( $(ulimit -n) >= need )) || { echo "ulimit -n is $(ulimit -n), need $need" >&2; exit 2; }

TMP=$(mktemp -d /tmp/ingest-rss.XXXXXX)
MS_PID="" HELPER_PID=""
cleanup() {
  set +e
  [[ -n $HELPER_PID ]] && kill "$HELPER_PID" 2>/dev/null
  if [[ -n $MS_PID ]]; then
    kill -INT "$MS_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$MS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$MS_PID" 2>/dev/null
  fi
  if [[ $KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=lib-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-build.sh"
get_mailsim "$ROOT" "$TMP/mailsim"

cat > "$TMP/mailsim.toml" <<EOF
hostname = "mx.test.example"
domains = ["test.example"]
accounts = ["user@test.example"]
[limits]
connections = $(( N + 100 ))
message_size = $(( SIZE + 1048576 ))
[listen]
smtp = "127.0.0.1:0"
EOF
"$TMP/mailsim" serve --config "$TMP/mailsim.toml" --data-dir "$TMP/data" 2>"$TMP/mailsim.log" &
MS_PID=$!
line=""
for _ in $(seq 100); do
  line=$(grep -o 'SMTP on 127\.0\.0\.1:[0-9]*' "$TMP/mailsim.log" 2>/dev/null || true)
  [[ -n $line ]] && break
  kill -0 "$MS_PID" 2>/dev/null || { cat "$TMP/mailsim.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $line ]] || { echo "mailsim did not start" >&2; cat "$TMP/mailsim.log" >&2; exit 1; }
PORT=${line##*:}
log "mailsim pid $MS_PID on 127.0.0.1:$PORT"

rss() { awk '/^VmRSS:/{print $2}' "/proc/$MS_PID/status"; }
hwm() { awk '/^VmHWM:/{print $2}' "/proc/$MS_PID/status"; }

cat > "$TMP/stream.py" <<'EOF'
# stream.py PORT N SIZE: N sessions each send half of a SIZE-octet message, print "half",
# wait for a line on stdin, send the rest, read the 250, QUIT; print "done ok=K".
import asyncio, sys
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
line = b"x" * 74 + b"\r\n"
head = b"From: <s@client.test>\r\nSubject: big\r\n\r\n"
lines = max(2, (size - len(head)) // len(line))
first, second = head + line * (lines // 2), line * (lines - lines // 2) + b".\r\n"

async def reply(r):
    while True:
        l = await r.readline()
        if not l:
            raise EOFError("closed")
        if l[3:4] != b"-":
            return l

async def one(go, half):
    r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
    await reply(r)
    for cmd in (b"EHLO c.test", b"MAIL FROM:<s@client.test>", b"RCPT TO:<user@test.example>", b"DATA"):
        w.write(cmd + b"\r\n")
        await reply(r)
    w.write(first)
    await w.drain()
    half.release()
    await go.wait()
    w.write(second)
    await w.drain()
    ok = (await reply(r)).startswith(b"250")
    w.write(b"QUIT\r\n")
    await reply(r)
    w.close()
    return ok

async def main():
    go, half = asyncio.Event(), asyncio.Semaphore(0)
    tasks = [asyncio.create_task(one(go, half)) for _ in range(n)]
    for _ in range(n):
        await half.acquire()
    print("half", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    go.set()
    res = await asyncio.gather(*tasks, return_exceptions=True)
    oks = sum(1 for x in res if x is True)
    errs = [repr(x) for x in res if x is not True][:3]
    print("done ok=%d errors=%r" % (oks, errs), flush=True)
asyncio.run(main())
EOF

sleep 1
RSS_IDLE=$(rss)
log "idle: VmRSS $RSS_IDLE kB"
RESULTS=()
for round in $(seq "$ROUNDS"); do
  rm -f "$TMP/in" && mkfifo "$TMP/in"
  python3 "$TMP/stream.py" "$PORT" "$N" "$SIZE" < "$TMP/in" > "$TMP/out" 2>&1 &
  HELPER_PID=$!
  exec 7>"$TMP/in"
  t0=$(date +%s.%N)
  until grep -q '^half' "$TMP/out"; do
    kill -0 "$HELPER_PID" 2>/dev/null || { cat "$TMP/out" >&2; exit 1; }
    sleep 0.2
  done
  sleep "$SETTLE"
  half_rss=$(rss); half_hwm=$(hwm)
  spool_kb=$(du -sk "$TMP/data/spool" 2>/dev/null | cut -f1 || echo 0)
  log "round $round half-way: VmRSS $half_rss kB, VmHWM $half_hwm kB, spool ${spool_kb} kB"
  echo go >&7; exec 7>&-
  wait "$HELPER_PID" || true; HELPER_PID=""
  t1=$(date +%s.%N)
  sleep "$SETTLE"
  after=$(rss)
  RESULTS+=("round=$round half_rss_kb=$half_rss peak_hwm_kb=$half_hwm after_rss_kb=$after spool_half_kb=$spool_kb $(cat "$TMP/out" | grep '^done') secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')")
  log "${RESULTS[-1]}"
  rm -rf "$TMP/data/mail/user@test.example/new/"*  # keep the disk use of the next round bounded
done
HWM=$(hwm)

echo
echo "=== ingest-rss: mailsim serve, $N sessions each half-way through a $SIZE-octet message; $(nproc) cores; $(date -u +%FT%TZ)"
echo "rss_idle_kb=$RSS_IDLE final_vmhwm_kb=$HWM"
printf '%s\n' "${RESULTS[@]}"
echo "targets: half-way RSS < 100 MB; after <= 2x idle ($(( 2 * RSS_IDLE )) kB)"
