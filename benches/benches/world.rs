//! The deterministic simulated world, end to end: turmoil hosts (DNS, server, actors), the
//! runner's idle warps, the checks.
//!
//! Criterion measures (wall time per run):
//! - `world/suite/jobs=N`: `runner::run_all` over the bundled `scenarios/` (load, run, check),
//!   on all cores as `mailsim run` does, and on one thread;
//! - `world/idle_hour`: `benches/scenarios/idle-hour.toml` (EHLO, 3600 s idle, QUIT);
//! - `world/busy_20x20`: 20 actors each delivering 20 messages back to back.
//!
//! Then (only under `cargo bench`) a table measured directly from `WorldResult` (`wall`,
//! `steps`, `sim_elapsed`, `warped`; median of a few runs):
//! - simulated seconds per wall second of an idle world (warped), and of the same idleness
//!   when warps cannot happen (the client sleeps 1 ms at a time, never longer than a tick);
//! - a busy world: sim-s per wall-s and messages stored per wall second;
//! - µs of wall time per step as actor hosts are added (N = 2..50), each actor either busy
//!   (NOOP ping-pong) or idle-but-ticking (1 ms sleeps), over a fixed 5 s simulated span.
//!
//! Every generated scenario is written to `$CARGO_TARGET_TMPDIR/world-bench/` so a failure can
//! be replayed with `cargo run --release -- run <file>`.
//!
//! `cargo bench -p mailsim-benches --bench world`

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use mailsim::scenario::{self, LoadedScenario};
use mailsim::{runner, world};

/// Busy world: actors × messages each.
const BUSY_ACTORS: usize = 20;
const BUSY_MESSAGES: usize = 20;
/// Host-scaling worlds: actor counts and the simulated span each one runs for.
const HOSTS: [usize; 5] = [2, 5, 10, 20, 50];
const SPAN_SECS: u64 = 5;
/// Runs per table row (the median is reported).
const REPS: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("world-bench");
    std::fs::create_dir_all(&d).expect("target tmpdir is writable");
    d
}

/// Parses generated scenario text (and saves it for replay); panics with the loader's message.
fn load_text(name: &str, text: String) -> LoadedScenario {
    let path = out_dir().join(format!("{name}.toml"));
    std::fs::write(&path, &text).expect("write generated scenario");
    scenario::parse(&path, name.to_string(), text)
        .unwrap_or_else(|e| panic!("generated scenario {name} does not load: {e}"))
}

fn load_file(path: &Path, name: &str) -> LoadedScenario {
    scenario::load(path, name.to_string())
        .unwrap_or_else(|e| panic!("scenario {} does not load: {e}", path.display()))
}

/// The world every generated scenario shares: example.org's MX is the server.
fn header(description: &str, duration_secs: u64) -> String {
    format!(
        r#"description = "{description}"

[world]
seed = 1
duration_secs = {duration_secs}

[dns.zones."example.org"]
records = [
  "@ MX 10 mx.example.org.",
  "mx A 192.0.2.1",
]

[server]
hostname = "mx.example.org"
domains = ["example.org"]
accounts = ["alice@example.org"]

[server.limits]
command_timeout_secs = 7200

[server.listen]
smtp = "192.0.2.1:25"
"#
    )
}

fn actor(out: &mut String, i: usize, steps: &[String]) {
    let _ = write!(
        out,
        "\n[[actor]]\nname = \"a{i}\"\naddress = \"198.51.{}.{}\"\ntarget = \"example.org\"\nsteps = [\n",
        100 + i / 200,
        1 + i % 200
    );
    for s in steps {
        let _ = writeln!(out, "  {s},");
    }
    out.push_str("]\n");
}

/// `actors` senders, each delivering `messages` messages to alice in one session
/// (pipelined MAIL/RCPT/DATA, then the content), then QUIT.
fn busy_text(actors: usize, messages: usize) -> String {
    let mut t = header(
        &format!("Bench: {actors} actors each deliver {messages} messages back to back."),
        3600,
    );
    for i in 0..actors {
        let mut steps = vec![format!("{{ send = \"EHLO a{i}.test\", expect = 250 }}")];
        for m in 0..messages {
            steps.push(format!(
                "{{ pipeline = [\"MAIL FROM:<a{i}@a{i}.test>\", \"RCPT TO:<alice@example.org>\", \"DATA\"], expect = [250, 250, 354] }}"
            ));
            steps.push(format!(
                "{{ data = \"From: a{i}@a{i}.test\\nSubject: m{i}-{m}\\n\\nMessage {m} from actor {i}.\\nThe quick brown fox jumps over the lazy dog.\\n\", expect = \"250 2.0.0\" }}"
            ));
        }
        steps.push("{ send = \"QUIT\", expect = \"221 2.0.0\" }".into());
        actor(&mut t, i, &steps);
    }
    let _ = write!(
        t,
        "\n[[expect]]\nmailbox = \"alice@example.org\"\ncount = {}\n",
        actors * messages
    );
    for i in 0..actors {
        let _ = write!(t, "\n[[expect]]\nactor = \"a{i}\"\ncompleted = true\n");
    }
    t
}

/// `hosts` actors that stay connected for the whole simulated span without ever letting the
/// world go quiet: `busy` ones ping-pong NOOPs, the others sleep 1 ms (one tick) at a time,
/// which the runner never warps over. The span ends by `duration_secs`, mid-script.
fn scaling_text(hosts: usize, busy: bool, span_secs: u64) -> String {
    let kind = if busy {
        "NOOP ping-pong"
    } else {
        "1 ms sleeps"
    };
    let mut t = header(
        &format!("Bench: {hosts} actor hosts, {kind}, for {span_secs} simulated seconds."),
        span_secs,
    );
    // More steps than fit in the span (a NOOP round trip is at least 2 ms, a sleep 1 ms).
    let n = span_secs as usize * 1000 + 100;
    let step = if busy {
        "{ send = \"NOOP\", expect = 250 }"
    } else {
        "{ wait_secs = 0.001 }"
    };
    for i in 0..hosts {
        let mut steps = vec![format!("{{ send = \"EHLO a{i}.test\", expect = 250 }}")];
        steps.extend(std::iter::repeat_n(step.to_string(), n));
        actor(&mut t, i, &steps);
    }
    t.push_str("\n[[expect]]\ntrace_contains = \"duration of\"\n");
    t.push_str("\n[[expect]]\ntrace_lacks = \"warp +\"\n");
    for i in 0..hosts {
        cut_short(&mut t, i);
    }
    t
}

/// The idle hour, but the client sleeps 1 ms at a time (never longer than a tick), so the
/// runner never finds a deadline worth warping to. Cut at `span_secs` by `duration_secs`.
fn idle_unwarped_text(span_secs: u64) -> String {
    let mut t = header(
        &format!("Bench: one connected client idle for {span_secs} s in 1 ms sleeps (no warps)."),
        span_secs,
    );
    let mut steps = vec!["{ send = \"EHLO idler.test\", expect = 250 }".to_string()];
    steps.extend(std::iter::repeat_n(
        "{ wait_secs = 0.001 }".to_string(),
        span_secs as usize * 1000 + 100,
    ));
    actor(&mut t, 0, &steps);
    t.push_str("\n[[expect]]\ntrace_contains = \"duration of\"\n");
    t.push_str("\n[[expect]]\ntrace_lacks = \"warp +\"\n");
    cut_short(&mut t, 0);
    t
}

/// Actor `a{i}` is stopped mid-script by `duration_secs` (so `completed = false`, which also
/// excuses its inline expectations): check its replies instead — never a 4xx or 5xx.
fn cut_short(t: &mut String, i: usize) {
    let _ = write!(
        t,
        "\n[[expect]]\nactor = \"a{i}\"\ncompleted = false\nsaw_reply = \"250\"\nnever_saw_reply = \"4\"\n\n[[expect]]\nactor = \"a{i}\"\nnever_saw_reply = \"5\"\n"
    );
}

/// Runs once and reports every failed expectation (with the replay command) to stderr.
fn verify(loaded: &LoadedScenario) -> bool {
    let outcome = runner::run_loaded(loaded, None);
    if !outcome.passed() {
        eprintln!(
            "!! {} FAILED (expectations below; replay: {})\n{}",
            loaded.name,
            outcome.replay_command(),
            outcome.failure_report()
        );
    }
    outcome.passed()
}

fn suite_files() -> Vec<(PathBuf, String)> {
    runner::discover(&[root().join("scenarios")]).expect("scenarios/ is readable")
}

fn jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn criterion_benches(c: &mut Criterion) {
    let files = suite_files();
    let passed = runner::run_all(&files, None, jobs())
        .iter()
        .filter(|o| o.passed())
        .count();
    eprintln!(
        "bundled suite: {} scenarios ({passed} pass), {} jobs",
        files.len(),
        jobs()
    );
    let idle = load_file(
        &root().join("benches/scenarios/idle-hour.toml"),
        "idle-hour",
    );
    let busy = load_text(
        &format!("busy-{BUSY_ACTORS}x{BUSY_MESSAGES}"),
        busy_text(BUSY_ACTORS, BUSY_MESSAGES),
    );

    let mut g = c.benchmark_group("world");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    g.bench_function(format!("suite/jobs={}", jobs()), |b| {
        b.iter(|| black_box(runner::run_all(&files, None, jobs())))
    });
    if jobs() != 1 {
        g.bench_function("suite/jobs=1", |b| {
            b.iter(|| black_box(runner::run_all(&files, None, 1)))
        });
    }
    g.bench_function("idle_hour", |b| {
        b.iter(|| black_box(world::run(&idle, 1).steps))
    });
    g.bench_function(format!("busy_{BUSY_ACTORS}x{BUSY_MESSAGES}"), |b| {
        b.iter(|| black_box(world::run(&busy, 1).steps))
    });
    g.finish();
}

/// Median-of-`REPS` figures of one world.
struct Row {
    wall: Duration,
    steps: u64,
    sim: Duration,
    warped: Duration,
    trace_lines: usize,
    /// Replies the actors read, in total.
    replies: usize,
    deterministic: bool,
}

fn measure(loaded: &LoadedScenario, reps: usize) -> Row {
    let seed = loaded.scenario.world.seed;
    let mut walls = Vec::new();
    let mut first: Option<(u64, Duration, Duration, usize, usize)> = None;
    let mut deterministic = true;
    for _ in 0..reps {
        let r = world::run(loaded, seed);
        walls.push(r.wall);
        let replies = r
            .logs
            .lock()
            .unwrap()
            .values()
            .map(|l| l.replies.len())
            .sum();
        let key = (r.steps, r.sim_elapsed, r.warped, r.trace.len(), replies);
        match &first {
            None => first = Some(key),
            Some(f) => deterministic &= *f == key,
        }
    }
    walls.sort();
    let (steps, sim, warped, trace_lines, replies) = first.expect("reps >= 1");
    Row {
        wall: walls[walls.len() / 2],
        steps,
        sim,
        warped,
        trace_lines,
        replies,
        deterministic,
    }
}

fn us_per_step(r: &Row) -> f64 {
    r.wall.as_secs_f64() * 1e6 / r.steps.max(1) as f64
}

fn sim_per_wall(r: &Row) -> f64 {
    r.sim.as_secs_f64() / r.wall.as_secs_f64()
}

fn table() {
    let mut out = String::new();
    let mut ok = true;
    let _ = writeln!(
        out,
        "\n== world figures (median of {REPS} runs; wall = WorldResult.wall, build + run) =="
    );

    // 1. the suite, scenario by scenario summed (one thread's worth of work).
    let files = suite_files();
    let outcomes = runner::run_all(&files, None, 1);
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    let steps: u64 = outcomes.iter().map(|o| o.steps).sum();
    let sim: Duration = outcomes.iter().map(|o| o.sim_elapsed).sum();
    let wall: Duration = outcomes.iter().map(|o| o.wall).sum();
    let _ = writeln!(
        out,
        "suite: {} scenarios, {passed} pass; {steps} steps, {:.3} sim-s, world wall {:.2} ms total ({:.2} µs/step)",
        files.len(),
        sim.as_secs_f64(),
        wall.as_secs_f64() * 1e3,
        wall.as_secs_f64() * 1e6 / steps.max(1) as f64
    );
    if let Some(slow) = outcomes.iter().max_by_key(|o| o.wall) {
        let _ = writeln!(
            out,
            "suite: slowest world {} ({:.2} ms, {} steps, {:.3} sim-s)",
            slow.name,
            slow.wall.as_secs_f64() * 1e3,
            slow.steps,
            slow.sim_elapsed.as_secs_f64()
        );
    }

    let _ = writeln!(
        out,
        "\n{:<34} {:>9} {:>8} {:>10} {:>10} {:>12} {:>9} {:>8}",
        "world", "wall ms", "steps", "µs/step", "sim s", "sim-s/wall-s", "warped s", "trace"
    );
    let line = |out: &mut String, name: &str, r: &Row| {
        let _ = writeln!(
            out,
            "{:<34} {:>9.2} {:>8} {:>10.2} {:>10.3} {:>12.0} {:>9.3} {:>8}{}",
            name,
            r.wall.as_secs_f64() * 1e3,
            r.steps,
            us_per_step(r),
            r.sim.as_secs_f64(),
            sim_per_wall(r),
            r.warped.as_secs_f64(),
            r.trace_lines,
            if r.deterministic {
                ""
            } else {
                "  NOT DETERMINISTIC"
            }
        );
    };

    // 2. idle world, warped and not.
    let idle = load_file(
        &root().join("benches/scenarios/idle-hour.toml"),
        "idle-hour",
    );
    ok &= verify(&idle);
    let r = measure(&idle, 21);
    line(&mut out, "idle 3600 s (warps)", &r);
    let unwarped = load_text("idle-unwarped-60s", idle_unwarped_text(60));
    ok &= verify(&unwarped);
    let r = measure(&unwarped, REPS);
    line(&mut out, "idle 60 s in 1 ms sleeps (no warp)", &r);

    // 3. busy world.
    let busy = load_text(
        &format!("busy-{BUSY_ACTORS}x{BUSY_MESSAGES}"),
        busy_text(BUSY_ACTORS, BUSY_MESSAGES),
    );
    ok &= verify(&busy);
    let r = measure(&busy, REPS);
    line(
        &mut out,
        &format!("busy {BUSY_ACTORS} actors x {BUSY_MESSAGES} msgs"),
        &r,
    );
    let busy_msgs_per_s = (BUSY_ACTORS * BUSY_MESSAGES) as f64 / r.wall.as_secs_f64();
    let busy_msgs_per_sim_s = (BUSY_ACTORS * BUSY_MESSAGES) as f64 / r.sim.as_secs_f64();

    // 4. per-step cost as hosts are added.
    let mut scaling = Vec::new();
    for &n in &HOSTS {
        for busy in [true, false] {
            let kind = if busy { "noop" } else { "tick" };
            let loaded = load_text(
                &format!("hosts-{n}-{kind}"),
                scaling_text(n, busy, SPAN_SECS),
            );
            ok &= verify(&loaded);
            let r = measure(&loaded, REPS);
            line(
                &mut out,
                &format!("{n} hosts, {kind}, {SPAN_SECS} s span"),
                &r,
            );
            scaling.push((n, busy, r));
        }
    }

    let _ = writeln!(
        out,
        "\nbusy world: {} messages stored, {busy_msgs_per_s:.0} msgs per wall-s, {busy_msgs_per_sim_s:.0} msgs per sim-s",
        BUSY_ACTORS * BUSY_MESSAGES
    );
    let _ = writeln!(
        out,
        "\nµs per step by actor hosts ({SPAN_SECS} s simulated, 1 ms tick, never warped; +2 hosts: DNS, server)"
    );
    let _ = writeln!(
        out,
        "{:>6} {:>14} {:>14} {:>16} {:>14} {:>16}",
        "hosts",
        "noop µs/step",
        "tick µs/step",
        "noop µs/host·st",
        "NOOP replies",
        "noop replies/s"
    );
    for &n in &HOSTS {
        let noop = &scaling.iter().find(|(h, b, _)| *h == n && *b).unwrap().2;
        let tick = &scaling.iter().find(|(h, b, _)| *h == n && !*b).unwrap().2;
        let _ = writeln!(
            out,
            "{:>6} {:>14.2} {:>14.2} {:>16.3} {:>14} {:>16.0}",
            n,
            us_per_step(noop),
            us_per_step(tick),
            us_per_step(noop) / n as f64,
            noop.replies,
            noop.replies as f64 / noop.wall.as_secs_f64()
        );
    }
    let _ = writeln!(
        out,
        "generated scenarios: {}{}",
        out_dir().display(),
        if ok {
            ""
        } else {
            "  (SOME FAILED their expectations, see above)"
        }
    );
    eprintln!("{out}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    // The table is measured, not a test: only under `cargo bench`, not `cargo test --benches`.
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        table();
    }
}
