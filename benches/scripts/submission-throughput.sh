#!/usr/bin/env bash
# submission-throughput.sh - real-socket submission throughput of `mailsim-server serve`:
# STARTTLS + AUTH PLAIN (argon2id, default params) + DKIM signing (rsa-sha256, 2048 bits),
# the measurement issue #8 asks for ("Measure and report": 20 concurrent sessions, 2 KiB).
#
# 1. builds the release binary (cargo build --release -p mailsim-server) unless MAILSIM_BIN
#    names one, and copies it to a temp dir (others may rebuild target/ meanwhile);
# 2. writes a temp config: domain $DOMAIN, accounts sender@ and rcpt@ (both local), the
#    submission listener on a free loopback port (picked here, then bound by the server; the
#    MX listener on 127.0.0.1:0 only so the start-up line says when we are up), a cert/key
#    made with openssl (or, without openssl, no [tls]: the server's self-signed fallback);
#    sender's password hashed by `admin passwd` from stdin with the DEFAULT [auth.argon2]
#    params, and a [[dkim]] rsa-2048 key from `admin dkim-keygen`;
# 3. the recipient is LOCAL (rcpt@$DOMAIN): the message is signed, then written to its
#    mailbox (250 = fsynced). A remote recipient would go to the queue, whose delivery
#    attempts do real DNS and SMTP off the loopback and add noise; the signing and the
#    commit before 250 are the same either way;
# 4. runs two variants with an embedded python3 client (smtplib, one thread per session, TLS
#    verification off: the cert is self-signed):
#      session: SESSIONS sessions, each one TCP connection + STARTTLS + one AUTH, then MSGS
#               messages (MAIL/RCPT/DATA) on it, then QUIT;
#      perconn: SESSIONS threads, each sending PERCONN_MSGS messages, one new connection
#               (TCP + STARTTLS + AUTH = one argon2 verification) per message, as many
#               clients do;
#    and prints msgs/s (wall clock from the first connect to the last 250), the setup time
#    (connect+EHLO+STARTTLS+EHLO, and AUTH, per connection) and the per-message time
#    (MAIL..end of DATA 250), median/p90/max;
# 5. counts the messages stored in rcpt@'s mailbox against those sent, and checks that one
#    carries a DKIM-Signature.
#
# Env: SESSIONS(20) MSGS(100, per session) PERCONN_MSGS(10, per thread) SIZE(2048 body octets)
#      DOMAIN(bench.example) VARIANTS(session,perconn) MAILSIM_BIN(use this binary, no build)
#      SKIP_BUILD(0: 1 = use target/release/mailsim-server as is) KEEP(0: 1 = keep temp dir)
# Only ever talks to 127.0.0.1. Stops only what it started (the server, by pid).
set -euo pipefail

SESSIONS=${SESSIONS:-20}
MSGS=${MSGS:-100}
PERCONN_MSGS=${PERCONN_MSGS:-10}
SIZE=${SIZE:-2048}
DOMAIN=${DOMAIN:-bench.example}
VARIANTS=${VARIANTS:-session,perconn}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SENDER="sender@$DOMAIN"
RCPT="rcpt@$DOMAIN"
# Generated per run, never printed; only its argon2 hash is in the config.
PASSWORD="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

log() { echo "## $*" >&2; }

TMP=$(mktemp -d /tmp/submission-throughput.XXXXXX)
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
  if [[ $KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ binary
if [[ -n ${MAILSIM_BIN:-} ]]; then
  src=$MAILSIM_BIN
  log "using MAILSIM_BIN=$src"
else
  if [[ $SKIP_BUILD != 1 ]]; then
    log "cargo build --release -p mailsim-server (working tree $ROOT)"
    (cd "$ROOT" && cargo build --release -q -p mailsim-server)
  fi
  src=$ROOT/target/release/mailsim-server
  log "using $src ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted edits'))"
fi
BIN=$TMP/mailsim-server
cp "$src" "$BIN"
log "binary md5 $(md5sum < "$BIN" | cut -c1-12)"

# ------------------------------------------------------------------ config
SUB_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
CONF=$TMP/mailsim.toml
TLS_SECTION=""
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mx.$DOMAIN" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
  TLS_SECTION=$'[tls]\ncert = "cert.pem"\nkey = "key.pem"'
  log "certificate: openssl rsa-2048 self-signed"
else
  log "certificate: none configured, the server's self-signed fallback"
fi
cat > "$CONF" <<EOF
# written by submission-throughput.sh
hostname = "mx.$DOMAIN"
domains = ["$DOMAIN"]
accounts = ["$SENDER", "$RCPT"]

[limits]
connections = $(( SESSIONS + 1000 ))

$TLS_SECTION

[listen]
smtp = "127.0.0.1:0"                  # only for the start-up line
submission = "127.0.0.1:$SUB_PORT"    # STARTTLS, then AUTH
EOF
# Default argon2 params: no [auth.argon2] section.
printf '%s\n' "$PASSWORD" | "$BIN" admin --config "$CONF" passwd "$SENDER" >/dev/null
"$BIN" admin --config "$CONF" dkim-keygen "$DOMAIN" bench --algorithm rsa --bits 2048 >/dev/null
grep -q '\$argon2id\$v=19\$m=19456,t=2,p=1\$' "$CONF" \
  || log "WARNING: the hash is not argon2id m=19456,t=2,p=1 (defaults changed?): $(grep -o '\$argon2[^$]*\$[^$]*\$[^$]*' "$CONF" | head -1)"
grep -q '^\[\[dkim\]\]' "$CONF" || { echo "dkim-keygen did not add [[dkim]]" >&2; exit 1; }

# ------------------------------------------------------------------ server
start_mailsim() {  # tag
  local data=$TMP/data-$1 errlog=$TMP/mailsim-$1.log line="" i
  mkdir -p "$data"
  "$BIN" serve --config "$CONF" --data-dir "$data" 2>"$errlog" &
  MS_PID=$!
  for i in $(seq 100); do
    line=$(grep -o 'SMTP on 127\.0\.0\.1:[0-9]*' "$errlog" 2>/dev/null || true)
    [[ -n $line ]] && break
    kill -0 "$MS_PID" 2>/dev/null || { echo "mailsim exited at start:" >&2; cat "$errlog" >&2; return 1; }
    sleep 0.1
  done
  [[ -n $line ]] || { echo "mailsim did not start" >&2; cat "$errlog" >&2; return 1; }
  log "mailsim ($1) pid $MS_PID, submission on 127.0.0.1:$SUB_PORT, data in $data"
}
stored() {  # tag -> messages in rcpt@'s mailbox (temp files excluded)
  local dir=$TMP/data-$1/mail/$RCPT/new
  [[ -d $dir ]] || { echo 0; return; }
  find "$dir" -maxdepth 1 -type f ! -name '.*' | wc -l
}
signed() {  # tag -> yes/no: does a stored message carry a DKIM-Signature?
  local f
  f=$(find "$TMP/data-$1/mail/$RCPT/new" -maxdepth 1 -type f ! -name '.*' 2>/dev/null | head -1)
  [[ -n $f ]] && grep -qi '^DKIM-Signature:.*a=rsa-sha256' "$f" && echo yes || echo no
}

# ------------------------------------------------------------------ client
CLIENT=$TMP/client.py
cat > "$CLIENT" <<'PY'
import smtplib, ssl, sys, threading, time, os, resource

variant, port, sessions, msgs, size, sender, rcpt, domain = sys.argv[1:9]
port, sessions, msgs, size = int(port), int(sessions), int(msgs), int(size)
password = os.environ["BENCH_PASSWORD"]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE            # the server's cert is self-signed

line = ("x" * 76) + "\r\n"
body = (line * (size // len(line) + 1))[:size]

def message(t, i):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: bench %d.%d\r\n\r\n%s" % (sender, rcpt, t, i, body)).encode()

lock = threading.Lock()
setup, auth, per_msg, errors = [], [], [], []
start = threading.Barrier(sessions + 1)

def connect():
    t0 = time.perf_counter()
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client." + domain, timeout=120)
    s.ehlo()
    s.starttls(context=ctx)
    s.ehlo()
    t1 = time.perf_counter()
    s.login(sender, password)           # AUTH PLAIN (smtplib prefers CRAM-MD5, PLAIN, LOGIN)
    t2 = time.perf_counter()
    return s, t1 - t0, t2 - t1

def send(s, t, i):
    t0 = time.perf_counter()
    refused = s.sendmail(sender, [rcpt], message(t, i))
    if refused:
        raise RuntimeError("refused: %r" % refused)
    return time.perf_counter() - t0

def worker(t):
    mine_setup, mine_auth, mine_msg = [], [], []
    start.wait()
    try:
        if variant == "session":
            s, a, b = connect(); mine_setup.append(a); mine_auth.append(b)
            for i in range(msgs):
                mine_msg.append(send(s, t, i))
            s.quit()
        else:
            for i in range(msgs):
                s, a, b = connect(); mine_setup.append(a); mine_auth.append(b)
                mine_msg.append(send(s, t, i))
                s.quit()
    except Exception as e:
        with lock: errors.append("%s: %s" % (type(e).__name__, e))
    with lock:
        setup.extend(mine_setup); auth.extend(mine_auth); per_msg.extend(mine_msg)

threads = [threading.Thread(target=worker, args=(t,)) for t in range(sessions)]
for th in threads: th.start()
start.wait()
t0 = time.perf_counter()
for th in threads: th.join()
wall = time.perf_counter() - t0

def stats(xs):
    if not xs: return "n/a"
    xs = sorted(xs); n = len(xs)
    return "median=%.2fms p90=%.2fms max=%.2fms (n=%d)" % (
        xs[n // 2] * 1e3, xs[min(n - 1, n * 9 // 10)] * 1e3, xs[-1] * 1e3, n)

sent = len(per_msg)
print("variant=%s sessions=%d msgs_per_thread=%d size=%d sent=%d wall=%.2fs msgs_per_s=%.1f" % (
    variant, sessions, msgs, size, sent, wall, sent / wall if wall > 0 else 0))
print("  connect+ehlo+starttls+ehlo: %s" % stats(setup))
print("  auth (argon2 verify):       %s" % stats(auth))
print("  message (MAIL..DATA 250):   %s" % stats(per_msg))
# If the client itself burns most of a core, the figure is the client's, not the server's.
ru = resource.getrusage(resource.RUSAGE_SELF)
print("  client cpu: %.2fs user+sys over %.2fs wall" % (ru.ru_utime + ru.ru_stime, wall))
if errors:
    print("  errors=%d first: %s" % (len(errors), errors[0]))
    sys.exit(1)
PY

# ------------------------------------------------------------------ runs
rc=0
IFS=, read -ra VARS <<< "$VARIANTS"
for v in "${VARS[@]}"; do
  case $v in
    session) per=$MSGS ;;
    perconn) per=$PERCONN_MSGS ;;
    *) echo "unknown variant $v (session, perconn)" >&2; exit 2 ;;
  esac
  start_mailsim "$v"
  log "$(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) -> $v"
  BENCH_PASSWORD=$PASSWORD python3 "$CLIENT" "$v" "$SUB_PORT" "$SESSIONS" "$per" "$SIZE" \
    "$SENDER" "$RCPT" "$DOMAIN" || rc=1
  # The server's CPU (utime+stime, fields 14 and 15 of /proc/PID/stat, in clock ticks),
  # start-up included: next to the client's, it shows which side the figure measures.
  echo "  server cpu: $(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2fs", ($14 + $15) / hz}' "/proc/$MS_PID/stat")"
  stop_mailsim
  n=$(stored "$v"); want=$(( SESSIONS * per ))
  echo "  stored=$n/$want dkim_signed=$(signed "$v")"
  [[ $n == "$want" ]] || { echo "  MISMATCH: stored $n of $want" >&2; rc=1; }
  if grep -q "$PASSWORD" "$TMP/mailsim-$v.log"; then echo "  PASSWORD IN SERVER LOG" >&2; rc=1; fi
done
exit $rc
