#!/usr/bin/env bash
# serve-vs-postfix.sh - real-socket accept throughput: Postfix vs `mailsim serve`, one sitting.
#
# 1. builds the release binary (cargo build --release -p mailsim; or BUILD_REV=HEAD to build the
#    committed tree apart from uncommitted edits, see lib-build.sh) and copies it to a temp dir
#    (others may rebuild target/ meanwhile);
# 2. runs ../shared/bench/postfix-baseline.sh for Postfix itself (MEASURE=a,b: a = smtp-source
#    straight into smtp-sink, the loopback ceiling; b_accept = Postfix's accept rate);
# 3. starts `mailsim serve` (group commit) on a free loopback port (the config binds
#    127.0.0.1:0 and the port is read back from the server's start-up line), with a config
#    accepting the baseline's recipient (user@$RCPT_DOMAIN), and puts the same smtp-source load
#    on it through the baseline script (TARGET_PORT=<port> MEASURE=b);
# 4. the same against `mailsim serve --no-group-commit`;
# 5. counts the messages each mailsim instance actually stored (files in
#    DATA/mail/user@$RCPT_DOMAIN/new/ not starting with '.') against the messages sent, and
#    prints a summary table: median msgs/s of each and the ratio mailsim/postfix.
# The machine may be shared: before each phase it waits for other processes to go quiet
# (WAIT_QUIET, QUIET_PCT, QUIET_TIMEOUT), probes the disk's fsync latency, and the table shows
# both plus the CPU other ("foreign") processes used during the phase. Compare sittings only
# when those columns are alike; fsync latency on a VM disk drifts and moves every figure.
#
# Env: MSGS(3000) SESSIONS(20) SIZE(2048) REPEAT(3)   [the issue's smtp-source -s 20 -m 3000 -l 2048]
#      RCPT_DOMAIN(test.example, the baseline's default; smtp-source sends to user@RCPT_DOMAIN)
#      POSTFIX_PORT(2525) SINK_PORT(2526)  passed to the baseline script
#      BASELINE(<repo>/../shared/bench/postfix-baseline.sh)
#      SKIP_BUILD(0) MAILSIM_BIN BUILD_REV BUILD_TARGET_DIR: which binary, see lib-build.sh
#      ROUNDS(1) >1: interleave the targets round by round (see below)
#      SKIP_POSTFIX(0) 1: only the two mailsim runs;  KEEP(0) 1: keep the temp dir (data, logs)
#
# Idempotent; stops only what it started (mailsim by pid; Postfix/smtp-sink are stopped by the
# baseline script itself, which only stops what it started). Only ever talks to 127.0.0.1.
set -euo pipefail

export MSGS=${MSGS:-3000}
export SESSIONS=${SESSIONS:-20}
export SIZE=${SIZE:-2048}
export REPEAT=${REPEAT:-3}
export RCPT_DOMAIN=${RCPT_DOMAIN:-test.example}
export POSTFIX_PORT=${POSTFIX_PORT:-2525}
export SINK_PORT=${SINK_PORT:-2526}
SKIP_BUILD=${SKIP_BUILD:-0}
SKIP_POSTFIX=${SKIP_POSTFIX:-0}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASELINE=${BASELINE:-$ROOT/../shared/bench/postfix-baseline.sh}
ACCOUNT="user@$RCPT_DOMAIN"     # smtp-source -t "user@$RCPT_DOMAIN" in the baseline script

log() { echo "## $*" >&2; }

TMP=$(mktemp -d /tmp/serve-vs-postfix.XXXXXX)
MS_PID=""

stop_mailsim() {
  [[ -n $MS_PID ]] || return 0
  if kill -0 "$MS_PID" 2>/dev/null; then
    kill -INT "$MS_PID" 2>/dev/null || true          # ctrl_c handler: clean shutdown
    local i
    for i in $(seq 50); do kill -0 "$MS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$MS_PID" 2>/dev/null && kill -KILL "$MS_PID" 2>/dev/null
  fi
  wait "$MS_PID" 2>/dev/null || true
  MS_PID=""
}
cleanup() {
  set +e
  stop_mailsim
  [[ -n ${TOP_PID:-} ]] && kill "$TOP_PID" 2>/dev/null && wait "$TOP_PID" 2>/dev/null
  if [[ $KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -x $BASELINE || -f $BASELINE ]] || { echo "baseline script not found: $BASELINE" >&2; exit 2; }

# ------------------------------------------------------------------ build
# shellcheck source=lib-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-build.sh"
get_mailsim "$ROOT" "$TMP/mailsim"
BIN=$TMP/mailsim

# ------------------------------------------------------------------ mailsim
cat > "$TMP/mailsim.toml" <<EOF
# written by serve-vs-postfix.sh
hostname = "mx.$RCPT_DOMAIN"
domains = ["$RCPT_DOMAIN"]
accounts = ["$ACCOUNT"]

[limits]
connections = $(( SESSIONS + 1000 ))

[listen]
smtp = "127.0.0.1:0"         # any free loopback port; read back from the start-up line
EOF

MS_PORT=""
start_mailsim() {  # tag extra-args...
  local tag=$1; shift
  local data=$TMP/data-$tag errlog=$TMP/mailsim-$tag.log
  mkdir -p "$data"
  "$BIN" serve --config "$TMP/mailsim.toml" --data-dir "$data" "$@" 2>"$errlog" &
  MS_PID=$!
  local i line
  for i in $(seq 100); do
    line=$(grep -o 'SMTP on 127\.0\.0\.1:[0-9]*' "$errlog" 2>/dev/null || true)
    [[ -n $line ]] && break
    kill -0 "$MS_PID" 2>/dev/null || { echo "mailsim exited at start:" >&2; cat "$errlog" >&2; return 1; }
    sleep 0.1
  done
  [[ -n $line ]] || { echo "mailsim did not report a listening address" >&2; cat "$errlog" >&2; return 1; }
  MS_PORT=${line##*:}
  log "mailsim ($tag) pid $MS_PID on 127.0.0.1:$MS_PORT, data in $data"
}
stored() {  # tag -> messages in the mailbox (temp files excluded)
  local dir=$TMP/data-$1/mail/$ACCOUNT/new
  [[ -d $dir ]] || { echo 0; return; }
  find "$dir" -maxdepth 1 -type f ! -name '.*' | wc -l
}
tempfiles() {
  local dir=$TMP/data-$1/mail/$ACCOUNT/new
  [[ -d $dir ]] || { echo 0; return; }
  find "$dir" -maxdepth 1 -type f -name '.*' | wc -l
}

# ------------------------------------------------------------------ interference watch
# The machine is shared: a `top -b -d 1` sampler records every process; CPU used by anything
# that is not part of the benchmark ("foreign") is summed per phase and shown in the summary.
# WAIT_QUIET=1 (default) waits, before each phase, until foreign CPU has stayed under
# QUIET_PCT for 5 s (at most QUIET_TIMEOUT s, then goes ahead and says so).
WAIT_QUIET=${WAIT_QUIET:-1}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-300}
BENCH_RE='^(mailsim|smtp-source|smtp-sink|master|smtpd|cleanup|qmgr|trivial-rewrite|smtp|bounce|scache|anvil|pickup|postfix|postfix-script|postlogd|postdrop|postqueue|postconf|postsuper|showq|sendmail|swaks|perl|top|bash|awk|sleep|grep|sed|ps|date|bc|cat|tail|tr|cut|tee|env|rm|find|wc|cp|seq|sort|kdamond.*|memfd:.*|process_api|python3|kworker.*|jbd2.*|ksoftirqd.*|rcu_.*|migration.*)$'
foreign_awk='/^top -/{if(t!="")print t, f; t=$3; f=0; next} $1 ~ /^[0-9]+$/ && NF>=12 {c=$12; if (c !~ re) f+=$9} END{if(t!="")print t, f}'
top -b -d 1 -w 512 > "$TMP/top.log" 2>/dev/null &
TOP_PID=$!
foreign_now() {  # foreign CPU% over the last second
  top -b -n 2 -d 1 -w 512 2>/dev/null | awk -v re="$BENCH_RE" "$foreign_awk" | tail -1 | cut -d' ' -f2
}
wait_quiet() {
  [[ $WAIT_QUIET == 1 ]] || return 0
  local start=$SECONDS calm=0 f
  while (( calm < 5 )); do
    f=$(foreign_now); f=${f:-0}
    if awk -v f="$f" -v q="$QUIET_PCT" 'BEGIN{exit !(f < q)}'; then calm=$((calm + 1)); else calm=0; fi
    if (( SECONDS - start > QUIET_TIMEOUT )); then log "WARNING: machine not quiet after ${QUIET_TIMEOUT}s (foreign cpu ${f}%), going ahead"; return 0; fi
  done
  (( SECONDS - start > 6 )) && log "waited $((SECONDS - start))s for a quiet machine"
  return 0
}
declare -A T0 T1 FSYNC
# The disk's commit latency right before a phase (write 2 KiB + fsync file + fsync dir, serially,
# 100 times, in the same filesystem as the mailboxes): on a shared VM it drifts, and it bounds
# a one-commit-at-a-time server (rate <= 1000/ms).
fsync_probe() {
  python3 - "$TMP" <<'PY'
import os, sys, time, tempfile
d = tempfile.mkdtemp(dir=sys.argv[1]); lat = []
for i in range(100):
    p = os.path.join(d, "f%d" % i); t = time.perf_counter()
    fd = os.open(p, os.O_CREAT | os.O_WRONLY); os.write(fd, b"x" * 2200); os.fsync(fd); os.close(fd)
    dfd = os.open(d, os.O_RDONLY); os.fsync(dfd); os.close(dfd)
    lat.append((time.perf_counter() - t) * 1e3)
for i in range(100): os.unlink(os.path.join(d, "f%d" % i))
os.rmdir(d); lat.sort()
print("%.2fms/p90=%.2fms" % (lat[50], lat[90]))
PY
}
foreign_during() {  # tag -> "avg%/max%" of foreign CPU between the phase's start and end
  awk -v re="$BENCH_RE" "$foreign_awk" "$TMP/top.log" |
    awk -v a="${T0[$1]}" -v b="${T1[$1]}" '$1>=a && $1<=b {n++; s+=$2; if($2>m)m=$2}
      END{ if(n) printf "%.0f%%/%.0f%%", s/n, m; else printf "n/a" }'
  # and who it was (top 2 foreign commands by CPU-seconds)
  awk -v re="$BENCH_RE" -v a="${T0[$1]}" -v b="${T1[$1]}" '
    /^top -/{t=$3; next}
    $1 ~ /^[0-9]+$/ && NF>=12 && t>=a && t<=b && $12 !~ re && $9>0 {c[$12]+=$9/100}
    END{for(k in c) printf "%s %.1f\n", k, c[k]}' "$TMP/top.log" | sort -k2 -gr | head -2 |
    awk 'NR==1{printf " ("} {printf "%s%s:%ss", (NR>1?",":""), $1, $2} END{if(NR)printf ")"}'
}

# ------------------------------------------------------------------ runs
# ROUNDS>1 interleaves: postfix, group, single, postfix, group, single, ... (each a fresh
# server and data dir, REPEAT runs each time); medians are then over all ROUNDS*REPEAT runs,
# which keeps a slow stretch of a shared machine from landing on one target only.
ROUNDS=${ROUNDS:-1}
declare -A STATUS NOTE STORED TEMPS
run_baseline() {  # tag  env...   (output tee'd to $TMP/<tag>.out)
  local tag=$1; shift
  local out=$TMP/$tag.out rc=0
  wait_quiet
  FSYNC[$tag]=$(fsync_probe)
  T0[$tag]=$(date +%T)
  log "$(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)  -> $tag"
  env WORKDIR="$TMP/pfbench-$tag" "$@" bash "$BASELINE" 2>&1 | tee "$out" || rc=$?
  STATUS[$tag]=$rc
  T1[$tag]=$(date +%T)
  return 0
}

for round in $(seq "$ROUNDS"); do
  if [[ $SKIP_POSTFIX != 1 ]]; then
    # a: smtp-source straight into smtp-sink (ceiling) only in the first round
    if (( round == 1 )); then m=a,b; else m=b; fi
    run_baseline "postfix-r$round" MEASURE=$m
  fi
  for mode in group single; do
    args=()
    [[ $mode == single ]] && args=(--no-group-commit)
    start_mailsim "$mode-r$round" "${args[@]}"
    run_baseline "$mode-r$round" TARGET_PORT="$MS_PORT" MEASURE=b E2E=0 MEM=0
    alive=yes; kill -0 "$MS_PID" 2>/dev/null || alive=NO
    STORED[$mode]=$(( ${STORED[$mode]:-0} + $(stored "$mode-r$round") ))
    TEMPS[$mode]=$(( ${TEMPS[$mode]:-0} + $(tempfiles "$mode-r$round") ))
    [[ $alive == yes ]] || NOTE[$mode]+=" DIED(round $round)"
    # Anything the server said (it is silent unless something goes wrong).
    if grep -qv '^mailsim: SMTP on' "$TMP/mailsim-$mode-r$round.log"; then
      NOTE[$mode]+=" stderr(r$round): $(grep -v '^mailsim: SMTP on' "$TMP/mailsim-$mode-r$round.log" | head -3 | tr '\n' '|')"
    fi
    stop_mailsim
  done
done

# ------------------------------------------------------------------ summary
secs_of() {  # target test -> every run's secs, all rounds
  cat "$TMP/$1"-r*.out 2>/dev/null | sed -n "s/^run test=$2 .* secs=\([0-9.]*\) .*/\1/p" || true
}
rate_of() {  # target test -> msgs/s at the median secs (as the baseline script computes it)
  secs_of "$1" "$2" | sort -g | awk -v m="$MSGS" '{v[NR]=$1} END{ if (NR) { med = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.0f", m/med } }'
}
spread_of() {  # target test -> "worst..best (n runs)"
  secs_of "$1" "$2" | sort -g | awk -v m="$MSGS" '{v[NR]=$1} END{ if (NR) printf "%.0f..%.0f/%d runs", m/v[NR], m/v[1], NR }'
}
per_round() {  # target -> rc, fsync probe and foreign cpu of each round
  local r out=""
  for r in $(seq "$ROUNDS"); do
    out+=" r$r[exit=${STATUS[$1-r$r]:-?} fsync=${FSYNC[$1-r$r]:-?} foreign=$(foreign_during "$1-r$r")]"
  done
  echo "$out"
}
declare -A RATE
RATE[sink]=$(rate_of postfix a_direct_sink)
RATE[postfix]=$(rate_of postfix b_accept)
RATE[group]=$(rate_of group b_accept)
RATE[single]=$(rate_of single b_accept)
SENT=$((MSGS * REPEAT * ROUNDS))
ratio() { [[ -n ${1:-} && -n ${2:-} && ${2:-0} != 0 ]] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}' || echo "-"; }
row() { printf '%-32s %8s %8s  %s\n' "$@"; }
echo
echo "=== serve-vs-postfix: smtp-source -s $SESSIONS -m $MSGS -l $SIZE; $ROUNDS round(s) x $REPEAT runs each, median; $(nproc) cores; $(date -u +%FT%TZ)"
echo "    (fsync = median/p90 of write+fsync(file)+fsync(dir) right before the phase; foreign = avg/max CPU% of non-benchmark processes during it)"
row target msgs/s "/postfix" "runs worst..best; per round"
if [[ $SKIP_POSTFIX != 1 ]]; then
  row "smtp-sink (loopback ceiling)" "${RATE[sink]:--}" "$(ratio "${RATE[sink]:-}" "${RATE[postfix]:-}")" "$(spread_of postfix a_direct_sink)"
  row "postfix $(postconf -d -h mail_version 2>/dev/null)" "${RATE[postfix]:--}" "1.00" "$(spread_of postfix b_accept);$(per_round postfix)"
fi
row "mailsim serve (group commit)" "${RATE[group]:--}" "$(ratio "${RATE[group]:-}" "${RATE[postfix]:-}")" "$(spread_of group b_accept);$(per_round group)"
row "mailsim serve --no-group-commit" "${RATE[single]:--}" "$(ratio "${RATE[single]:-}" "${RATE[postfix]:-}")" "$(spread_of single b_accept);$(per_round single)"
for mode in group single; do
  echo "mailsim $mode: stored=${STORED[$mode]:-0} sent=$SENT leftover_tempfiles=${TEMPS[$mode]:-0}${NOTE[$mode]:-}"
done
echo "summary postfix_msgs_per_s=${RATE[postfix]:-} mailsim_group_msgs_per_s=${RATE[group]:-} mailsim_single_msgs_per_s=${RATE[single]:-} ratio_group=$(ratio "${RATE[group]:-}" "${RATE[postfix]:-}") ratio_single=$(ratio "${RATE[single]:-}" "${RATE[postfix]:-}") stored_group=${STORED[group]:-0}/$SENT stored_single=${STORED[single]:-0}/$SENT"
