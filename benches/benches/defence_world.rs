//! Inbound mail through the whole simulated ingest path with every defence check on, next
//! to the same world with every check off (issue #10, "Measure and report").
//!
//! One world, generated here: `SENDERS` remote MTAs (one /24, each its own domain with SPF,
//! DKIM and DMARC published in the world's DNS, and a PTR that confirms forward) each send
//! `MESSAGES` DKIM-signed messages of about 2 KiB to three accounts of our MX, in sessions
//! of `PER_SESSION` transactions. Even senders sign with rsa-sha256 (2048 bits), odd ones
//! with ed25519-sha256. The two variants differ only in the server's config:
//!
//! - **on**: `[sender_auth]` (SPF for HELO and MAIL FROM through an `include:` and an `a:`,
//!   DKIM, DMARC p=reject, iprev), `[[dnsbl]]` (a zone the senders are not in, so every
//!   lookup is a real NXDOMAIN round trip), `[greylist]` with `delay_secs = 0` (every new
//!   triplet is still deferred once with 451 4.7.1 — the script retries the RCPT at once —
//!   and then passes and is written to the durable greylist log), `[limits.per_client]`
//!   with every limit on but high, and `[scoring]` with a few user rules;
//! - **off**: none of these sections (and so no first-sight 451: the RCPT is sent once).
//!
//! Before any figure is taken each variant is run and must pass its expectations (every
//! message in its INBOX, none in Junk, every actor done) and its trace must show that the
//! checks did (on) or did not (off) run for every message: a fast world that delivered
//! nothing, or skipped its checks, fails the bench instead of looking good.
//!
//! Criterion measures both worlds (`Throughput::Elements` = messages); then, under
//! `cargo bench` only, a table of messages per wall-second (median of `REPS` runs, the two
//! variants interleaved, every run verified) with the ratio. "Wall" is
//! `WorldResult::wall`: building the world and running it to the end, the senders' DKIM
//! signing included (the same in both variants).
//!
//! The generated scenarios are written to `$CARGO_TARGET_TMPDIR/defence-world/` so a failure
//! can be replayed with `cargo run --release -- run <file>`.
//!
//! `cargo bench -p mailsim-benches --bench defence_world -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use mailsim::runner::{self, Outcome};
use mailsim::scenario::{self, LoadedScenario};

/// Remote MTAs (at most 200: one /24).
const SENDERS: usize = 20;
/// Messages each sends.
const MESSAGES: usize = 25;
/// Transactions per SMTP session: the measured world (5 sessions per sender, 100 actor
/// hosts) and, for the table only, the same mail in one session per sender (20 actor hosts),
/// which shows how much of the figure is the simulator stepping idle hosts.
const PER_SESSION: usize = 5;
const PER_SESSION_FEW_HOSTS: usize = MESSAGES;
/// Our accounts; message `m` of sender `i` goes to `ACCOUNTS[(i + m) % 3]`.
const ACCOUNTS: [&str; 3] = ["bob", "carol", "dave"];
/// Simulated seconds between the starts of a sender's sessions.
const SESSION_GAP_SECS: u64 = 5;
/// Runs per variant for the table (the median is reported).
const REPS: usize = 5;

const TOTAL: usize = SENDERS * MESSAGES;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("defence-world");
    std::fs::create_dir_all(&d).expect("target tmpdir is writable");
    d
}

fn sender_ip(i: usize) -> String {
    format!("203.0.113.{}", 10 + i)
}

fn domain(i: usize) -> String {
    format!("sender{i}.test")
}

fn recipient(i: usize, m: usize) -> String {
    format!("{}@example.org", ACCOUNTS[(i + m) % ACCOUNTS.len()])
}

/// The checks' sections of the server config (the "on" variant).
const CHECKS: &str = r#"
[server.sender_auth]
spf_fail = "reject"
dmarc = "enforce"

[[server.dnsbl]]
zone = "bl.example"
codes = ["127.0.0.2"]

[server.greylist]
enabled = true
delay_secs = 0
auto_allow_after = 0

[server.limits.per_client]
connections = 50
connections_per_minute = 10000
messages_per_minute = 10000
recipients_per_hour = 100000

[server.scoring]
enabled = true
junk = 5.0
reject = 10.0

[[server.scoring.rule]]
name = "SUBJ_FREE_MONEY"
header = "Subject"
pattern = '(?i)\b(free|winner|cash|prize|lottery)\b'
score = 1.5

[[server.scoring.rule]]
name = "BODY_PILLS"
body = true
pattern = '(?i)cheap\s+(pills|meds|viagra)'
score = 3.5

[[server.scoring.rule]]
name = "HDR_PRECEDENCE_JUNK"
header = "ALL"
pattern = '(?im)^Precedence:\s*(junk|bulk)'
score = 0.3

[[server.scoring.rule]]
name = "RAW_IP_LINK"
rawbody = true
pattern = '(?i)<a\s[^>]*href="?https?://\d{1,3}(\.\d{1,3}){3}'
score = 1.5
"#;

use mailsim_benches::WORDS;

/// About 1.8 KiB of text lines (TOML-escaped `\n` line ends), different per message.
fn body(i: usize, m: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    let mut k = i * 7919 + m * 104_729;
    while out.len() < 1800 {
        let w = WORDS[k % WORDS.len()];
        k = k.wrapping_mul(31).wrapping_add(17);
        out.push_str(w);
        line += w.len() + 1;
        if line > 66 {
            out.push_str("\\n");
            line = 0;
        } else {
            out.push(' ');
        }
    }
    out.push_str("\\n");
    out
}

fn scenario_text(checks: bool, per_session: usize) -> String {
    let key_dir = root().join("scenarios/defence/keys");
    let mut t = format!(
        r#"description = "Bench: {SENDERS} DKIM-signed senders x {MESSAGES} messages, defence checks {}."

[world]
seed = 10
duration_secs = 3600

[dns.zones."example.org"]
records = ["@ MX 10 mx.example.org.", "mx A 192.0.2.1"]

[dns.zones."bl.example"]
records = ["99.113.0.203 A 127.0.0.2", "99.113.0.203 TXT \"listed\""]

[dns.zones."113.0.203.in-addr.arpa"]
records = [
"#,
        if checks { "on" } else { "off" }
    );
    for i in 0..SENDERS {
        let _ = writeln!(t, "  \"{} PTR mail.{}.\",", 10 + i, domain(i));
    }
    t.push_str("]\n");
    for i in 0..SENDERS {
        let (d, ip) = (domain(i), sender_ip(i));
        let _ = write!(
            t,
            r#"
[dns.zones."{d}"]
records = [
  "@ MX 10 mail.{d}.",
  "@ TXT \"v=spf1 include:_spf.{d} -all\"",
  "_spf TXT \"v=spf1 a:mail.{d} -all\"",
  "mail A {ip}",
  "mail TXT \"v=spf1 a -all\"",
  "_dmarc TXT \"v=DMARC1; p=reject\"",
]
"#
        );
    }
    let _ = write!(
        t,
        r#"
[server]
hostname = "mx.example.org"
domains = ["example.org"]
accounts = [{}]

[server.listen]
smtp = "192.0.2.1:25"
"#,
        ACCOUNTS
            .iter()
            .map(|a| format!("\"{a}@example.org\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if checks {
        t.push_str(CHECKS);
    }
    // Greylist triplets already seen (client /24 is shared, so the sender tells them apart).
    let mut seen: BTreeSet<(usize, String)> = BTreeSet::new();
    for i in 0..SENDERS {
        let d = domain(i);
        let (alg, key) = if i % 2 == 0 {
            ("rsa-sha256", "rsa2048.pem")
        } else {
            ("ed25519-sha256", "ed25519.pem")
        };
        for m in 0..MESSAGES {
            let k = m / per_session;
            if m % per_session == 0 {
                // A session is an actor (an actor's script is one connection). Session `k`
                // starts `SESSION_GAP_SECS` after session `k - 1` began, long after it ended,
                // so each sender's first session meets every triplet first (idle simulated
                // time is warped over, so the gap costs no wall time).
                let _ = write!(
                    t,
                    "\n[[actor]]\nname = \"s{i}-{k}\"\naddress = \"{}\"\ntarget = \"192.0.2.1:25\"\n\
start_secs = {}\n\
dkim = [{{ domain = \"{d}\", selector = \"s1\", algorithm = \"{alg}\", key = \"{}\" }}]\nsteps = [\n",
                    sender_ip(i),
                    k as u64 * SESSION_GAP_SECS,
                    key_dir.join(key).display()
                );
                let _ = writeln!(t, "  {{ send = \"EHLO mail.{d}\", expect = 250 }},");
            }
            let rcpt = recipient(i, m);
            let from = format!("MAIL FROM:<news@{d}>");
            if checks && seen.insert((i, rcpt.clone())) {
                // A new triplet: deferred once even with no delay, then passed.
                let _ = writeln!(
                    t,
                    "  {{ send = \"{from}\", expect = 250 }},\n  \
{{ send = \"RCPT TO:<{rcpt}>\", expect = \"451 4.7.1\" }},\n  \
{{ pipeline = [\"RCPT TO:<{rcpt}>\", \"DATA\"], expect = [250, 354] }},"
                );
            } else {
                let _ = writeln!(
                    t,
                    "  {{ pipeline = [\"{from}\", \"RCPT TO:<{rcpt}>\", \"DATA\"], expect = [250, 250, 354] }},"
                );
            }
            let _ = writeln!(
                t,
                "  {{ data = \"From: News <news@{d}>\\nTo: <{rcpt}>\\nSubject: Update {m} from {d}\\n\
Date: Thu, 03 Dec 2026 10:00:00 +0000\\nMessage-ID: <{i}.{m}@{d}>\\nMIME-Version: 1.0\\n\
Content-Type: text/plain; charset=utf-8\\n\\n{}\", expect = \"250 2.0.0\" }},",
                body(i, m)
            );
            if m % per_session == per_session - 1 || m == MESSAGES - 1 {
                t.push_str("  { send = \"QUIT\", expect = 221 },\n]\n");
                let _ = write!(t, "\n[[expect]]\nactor = \"s{i}-{k}\"\ncompleted = true\n");
            }
        }
    }
    for a in ACCOUNTS {
        let n = (0..SENDERS)
            .flat_map(|i| (0..MESSAGES).map(move |m| recipient(i, m)))
            .filter(|r| r == &format!("{a}@example.org"))
            .count();
        let _ = write!(
            t,
            "\n[[expect]]\nmailbox = \"{a}@example.org\"\ncount = {n}\n\n\
[[expect]]\nmailbox = \"{a}@example.org\"\nfolder = \"Junk\"\ncount = 0\n"
        );
    }
    t
}

fn load(checks: bool, per_session: usize) -> LoadedScenario {
    let name = format!(
        "defence-checks-{}-{per_session}-per-session",
        if checks { "on" } else { "off" }
    );
    let path = out_dir().join(format!("{name}.toml"));
    std::fs::write(&path, scenario_text(checks, per_session)).expect("write generated scenario");
    // `load`, not `parse`: the actors' key files are read relative to the file.
    scenario::load(&path, name.clone())
        .unwrap_or_else(|e| panic!("generated scenario {name} does not load: {e}"))
}

/// Trace lines of one kind that contain every one of `parts`.
fn count(trace: &str, parts: &[&str]) -> usize {
    trace
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

/// Runs the world once; panics (with the replay command) unless every expectation held and
/// the trace shows each check ran for every message (on) or never (off).
fn run_verified(loaded: &LoadedScenario, checks: bool) -> Outcome {
    let o = runner::run_loaded(loaded, None);
    if !o.passed() {
        panic!(
            "{} FAILED (replay: {})\n{}",
            loaded.name,
            o.replay_command(),
            o.failure_report()
        );
    }
    let triplets = SENDERS * ACCOUNTS.len().min(MESSAGES);
    let counts = [
        (
            "auth verdicts spf=pass dkim=pass dmarc=pass",
            count(
                &o.trace,
                &["auth   [", "spf=pass", "dkim=pass", "dmarc=pass"],
            ),
            TOTAL,
        ),
        (
            "score verdicts -> deliver",
            count(&o.trace, &["score  [", "-> deliver"]),
            TOTAL,
        ),
        (
            "greylist first sights",
            count(&o.trace, &["greylist defer", ": new,"]),
            triplets,
        ),
        (
            "greylist passes",
            count(&o.trace, &["greylist pass"]),
            triplets,
        ),
        (
            "greylist accepts (passed before)",
            count(&o.trace, &["greylist accept"]),
            TOTAL - triplets,
        ),
        (
            // The list is asked at every RCPT (a deferred one too), no answer cached.
            "DNSBL queries",
            count(&o.trace, &[".bl.example A from 192.0.2.1"]),
            TOTAL + triplets,
        ),
    ];
    let mut bad = String::new();
    for (what, found, want_on) in counts {
        let want = if checks { want_on } else { 0 };
        if found != want {
            let _ = writeln!(bad, "  {what}: found {found}, want {want}");
        }
    }
    if !bad.is_empty() {
        panic!(
            "{}: the trace does not show the checks {} for every message (replay: {}):\n{bad}",
            loaded.name,
            if checks { "on" } else { "off" },
            o.replay_command()
        );
    }
    o
}

fn criterion_benches(c: &mut Criterion, on: &LoadedScenario, off: &LoadedScenario) {
    let mut g = c.benchmark_group("defence_world");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(TOTAL as u64));
    for (name, loaded) in [("checks_on", on), ("checks_off", off)] {
        let seed = loaded.scenario.world.seed;
        g.bench_function(name, |b| {
            b.iter(|| black_box(mailsim::world::run(loaded, seed).steps))
        });
    }
    g.finish();
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Median wall time, steps and simulated time of `REPS` verified runs.
struct Row {
    wall: Duration,
    steps: u64,
    sim: Duration,
}

fn table(worlds: &[(usize, LoadedScenario, LoadedScenario)]) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== defence world: {SENDERS} senders x {MESSAGES} msgs ({TOTAL}, ~2 KiB, DKIM-signed), median of {REPS} verified runs, on/off interleaved =="
    );
    let _ = writeln!(
        out,
        "{:<8} {:>12} {:>7} {:>10} {:>12} {:>8} {:>9} {:>8}",
        "checks", "msgs/session", "actors", "wall ms", "msgs/wall-s", "steps", "µs/step", "sim s"
    );
    let rate = |d: Duration| TOTAL as f64 / d.as_secs_f64();
    let mut ratios = Vec::new();
    for (per_session, on, off) in worlds {
        let (mut w_on, mut w_off) = (Vec::new(), Vec::new());
        let (mut r_on, mut r_off) = (None, None);
        for _ in 0..REPS {
            let o = run_verified(on, true);
            w_on.push(o.wall);
            r_on = Some((o.steps, o.sim_elapsed));
            let o = run_verified(off, false);
            w_off.push(o.wall);
            r_off = Some((o.steps, o.sim_elapsed));
        }
        let row = |w: Vec<Duration>, r: Option<(u64, Duration)>| {
            let (steps, sim) = r.expect("REPS >= 1");
            Row {
                wall: median(w),
                steps,
                sim,
            }
        };
        let (a, b) = (row(w_on, r_on), row(w_off, r_off));
        for (name, r) in [("on", &a), ("off", &b)] {
            let _ = writeln!(
                out,
                "{:<8} {:>12} {:>7} {:>10.1} {:>12.0} {:>8} {:>9.1} {:>8.3}",
                name,
                per_session,
                on.scenario.actor.len(),
                r.wall.as_secs_f64() * 1e3,
                rate(r.wall),
                r.steps,
                r.wall.as_secs_f64() * 1e6 / r.steps.max(1) as f64,
                r.sim.as_secs_f64()
            );
        }
        ratios.push((*per_session, a, b));
    }
    for (per_session, a, b) in ratios {
        let _ = writeln!(
            out,
            "{per_session} msgs/session: on / off = {:.2} of the throughput; the checks add {:.0} µs of wall time per message",
            rate(a.wall) / rate(b.wall),
            (a.wall.as_secs_f64() - b.wall.as_secs_f64()) * 1e6 / TOTAL as f64
        );
    }
    let _ = writeln!(out, "generated scenarios: {}", out_dir().display());
    eprintln!("{out}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("defence_world/checks_on: benchmark\ndefence_world/checks_off: benchmark");
        return;
    }
    let on = load(true, PER_SESSION);
    let off = load(false, PER_SESSION);
    // Verified before anything is measured (also under `cargo test --benches`).
    run_verified(&on, true);
    run_verified(&off, false);
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &on, &off);
    c.final_summary();
    if args.iter().any(|a| a == "--bench") {
        let few = PER_SESSION_FEW_HOSTS;
        table(&[
            (PER_SESSION, on, off),
            (few, load(true, few), load(false, few)),
        ]);
    }
}
