//! `mailsim`: run scenarios in the simulated world, serve mail on real sockets, or administer
//! a server config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "mailsim",
    version,
    about = "A mail server and the deterministic world to test it in"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (or every *.toml under folders) in the simulated network.
    ///
    /// Prints one line per scenario and closes with `N passed, M failed`; exits 0 only if
    /// every scenario passed.
    Run {
        /// Scenario files or folders (default: scenarios/).
        paths: Vec<PathBuf>,
        /// Use this seed instead of each scenario's `world.seed`.
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// A seed sweep: run every scenario under every seed of this range (`1..10000`,
        /// both ends included). Prints only failures (each with its replay command) and a
        /// line per scenario; the closing line counts (scenario, seed) pairs.
        #[arg(long, value_parser = mailsim::runner::parse_seeds)]
        seeds: Option<std::ops::RangeInclusive<u64>>,
        /// With --seeds: run every pair even after a failure (default: stop at the first).
        #[arg(long, requires = "seeds")]
        keep_going: bool,
        /// Write one trace file per scenario here (`<name>.trace`).
        #[arg(long)]
        trace_dir: Option<PathBuf>,
        /// Scenarios run side by side (default: the number of cores).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Also write the results as JUnit XML here, for CI: one test case per scenario
        /// (per scenario and seed with --seeds), failures with the violated expectation or
        /// invariant, the trace excerpt and the replay command.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Shrink a failing scenario: the smallest file that still fails the same way under the
    /// seed (the same violated invariant or expectation), for a bug report.
    ///
    /// Removes faults, actors, steps, expectations and remotes, pins seed-picked ranges and
    /// shrinks durations while the failure persists; writes the result (with the seed in
    /// `[world] seed`) and prints one line per removal and the replay command. Exit 0 when
    /// a shrunk file was written, 2 when the scenario passes under the seed or does not load.
    Shrink {
        /// The scenario file.
        file: PathBuf,
        /// The seed it fails under.
        #[arg(long)]
        seed: u64,
        /// Where to write the result (default: `<stem>.shrunk-seed<N>.toml` beside FILE).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Candidates run side by side (default: the number of cores); the result does not
        /// depend on it.
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Stop after this many candidate runs, keeping the smallest file found so far.
        #[arg(long, default_value_t = 5000)]
        max_runs: usize,
    },
    /// Check scenario files (or every *.toml under folders) without running them: prints
    /// each error as `file:line:col: message`; exit 1 if any file is invalid.
    Check {
        /// Scenario files or folders (default: scenarios/).
        paths: Vec<PathBuf>,
    },
    /// Pretty-print a trace written by `run --trace-dir`: simulated time as a clock, gaps
    /// marked, client/server lines as arrows; narrowed by host, source, message id, time
    /// window or regex. Exit 1 if no line matches, 2 if the file cannot be read.
    Trace {
        /// The trace file.
        file: PathBuf,
        #[command(flatten)]
        filter: cmd::trace::Filter,
    },
    /// Serve SMTP on real sockets (loopback unless the config says otherwise).
    ///
    /// The same command as `mailsim-server serve` (one implementation, in the server crate):
    /// SIGTERM or ctrl-c stop accepting, let open sessions finish, and exit 0.
    Serve(mailsim_server::cli::ServeArgs),
    /// Edit and inspect a server config: domains, accounts, passwords, aliases, lists,
    /// quotas, DKIM keys, DNS records, and `check` (against the real DNS, or with
    /// --scenario against a scenario's zones).
    ///
    /// The same command as `mailsim-server admin`; exit 0 ok, 1 `check` found problems,
    /// 2 usage or config error.
    Admin(mailsim_server::cli::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            paths,
            seed,
            seeds,
            keep_going,
            trace_dir,
            jobs,
            junit,
        } => {
            let out = Output { trace_dir, junit };
            match seeds {
                Some(seeds) => sweep(paths, seeds, keep_going, &out, jobs),
                None => run(paths, seed, &out, jobs),
            }
        }
        Command::Shrink {
            file,
            seed,
            output,
            jobs,
            max_runs,
        } => cmd::shrink::main(&file, seed, output, threads(jobs), max_runs),
        Command::Check { paths } => cmd::check::main(paths),
        Command::Trace { file, filter } => cmd::trace::main(&file, filter),
        Command::Serve(args) => mailsim_server::cli::serve(&args, "mailsim"),
        Command::Admin(args) => mailsim_server::cli::admin(&args, "mailsim", Some(&scenario_world)),
    }
}

/// `admin check --scenario FILE`: the scenario's [server] as the config, its server host's
/// address as ours, and its [dns] zones as the DNS.
fn scenario_world(path: &Path) -> Result<mailsim_server::admin::CheckWorld, String> {
    let loaded =
        mailsim::scenario::load(path, path.display().to_string()).map_err(|e| e.to_string())?;
    let zones = mailsim::dns::build_zones(&loaded.scenario.dns.zones).map_err(|e| e.to_string())?;
    Ok(mailsim_server::admin::CheckWorld {
        config: loaded.scenario.server.get_ref().config.clone(),
        addresses: vec![loaded.scenario.server_ip()],
        lookup: Box::new(ZoneLookup(zones)),
        source: format!("the zones of {}", path.display()),
    })
}

struct ZoneLookup(mailsim::dns::Zones);

impl mailsim_server::admin::Lookup for ZoneLookup {
    fn lookup(
        &mut self,
        name: &str,
        kind: mailsim_server::env::RecordKind,
    ) -> Result<Vec<mailsim_server::env::Record>, mailsim_server::env::DnsError> {
        self.0.lookup(name, kind)
    }
}

/// The scenario files under `paths` (default `scenarios/`), or the exit code of the error.
fn scenario_files(paths: Vec<PathBuf>) -> Result<Vec<(PathBuf, String)>, ExitCode> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths
    };
    let files = match mailsim::runner::discover(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mailsim: {e}");
            return Err(ExitCode::from(2));
        }
    };
    if files.is_empty() {
        eprintln!("mailsim: no scenario files (*.toml) under {paths:?}");
        return Err(ExitCode::from(2));
    }
    Ok(files)
}

/// `-j`, by default the machine's cores.
fn threads(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Writes a run's trace as `<dir>/<name>.trace` (`<name>.seed-<n>.trace` in a sweep).
fn write_trace(dir: &Path, name: &str, trace: &str) -> Result<(), ExitCode> {
    let file = dir.join(format!("{name}.trace"));
    // Traces are the runner's output, written to the real disk after the world ended.
    #[allow(clippy::disallowed_methods)]
    let written = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::write(&file, trace));
    written.map_err(|e| {
        eprintln!("mailsim: writing {}: {e}", file.display());
        ExitCode::from(2)
    })
}

/// Where a run writes besides the terminal.
struct Output {
    trace_dir: Option<PathBuf>,
    junit: Option<PathBuf>,
}

/// Writes the JUnit report, if one was asked for.
fn write_junit(out: &Output, report: impl FnOnce() -> quick_junit::Report) -> Result<(), ExitCode> {
    let Some(file) = &out.junit else {
        return Ok(());
    };
    let xml = report().to_string().map_err(|e| {
        eprintln!("mailsim: JUnit report: {e}");
        ExitCode::from(2)
    })?;
    // The report is the runner's output, written to the real disk after the worlds ended.
    #[allow(clippy::disallowed_methods)]
    let written = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::write(file, xml));
    written.map_err(|e| {
        eprintln!("mailsim: writing {}: {e}", file.display());
        ExitCode::from(2)
    })
}

fn sweep(
    paths: Vec<PathBuf>,
    seeds: std::ops::RangeInclusive<u64>,
    keep_going: bool,
    out: &Output,
    jobs: Option<usize>,
) -> ExitCode {
    let trace_dir = &out.trace_dir;
    let files = match scenario_files(paths) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let bar = cmd::output::Progress::new("runs", true);
    let colour = cmd::output::colour();
    // The closing line's wall-clock figure; it never feeds back into a world.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let result = mailsim::runner::run_sweep(
        &files,
        seeds.clone(),
        threads(jobs),
        keep_going,
        &|done, total| bar.update(done, total),
    );
    bar.finish();
    for (path, _, e) in &result.load_errors {
        println!("FAIL  {}", path.display());
        println!("  error: {e}");
    }
    for (name, passed, failed) in &result.per_scenario {
        let verdict = if *failed == 0 { "PASS" } else { "FAIL" };
        let line = format!(
            "{verdict}  {name:<40} seeds {}..{}: {passed} passed, {failed} failed",
            seeds.start(),
            seeds.end()
        );
        println!("{}", cmd::output::verdict(&line, colour));
    }
    for o in &result.failures {
        println!("{}", cmd::output::verdict(&o.summary_line(), colour));
        print!("{}", o.failure_report());
        if let Some(dir) = &trace_dir {
            if let Err(code) = write_trace(dir, &format!("{}.seed-{}", o.name, o.seed), &o.trace) {
                return code;
            }
        }
    }
    if result.stopped {
        println!("(stopped at the first failure; --keep-going runs every seed)");
    }
    if let Err(code) = write_junit(out, || mailsim::runner::junit::sweep_report(&result)) {
        return code;
    }
    println!(
        "({} runs in {:.2}s wall)",
        result.passed + result.failures.len() as u64,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{}",
        cmd::output::summary(result.passed, result.failed(), colour)
    );
    if result.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(paths: Vec<PathBuf>, seed: Option<u64>, out: &Output, jobs: Option<usize>) -> ExitCode {
    let trace_dir = &out.trace_dir;
    use mailsim::runner;
    let files = match scenario_files(paths) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let threads = threads(jobs);
    // The closing line's wall-clock figure; it never feeds back into a world.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let bar = cmd::output::Progress::new("scenarios", false);
    let colour = cmd::output::colour();
    let outcomes = runner::run_all_with(&files, seed, threads, &|done, total| {
        bar.update(done, total)
    });
    bar.finish();
    let (mut passed, mut failed) = (0, 0);
    for o in &outcomes {
        println!("{}", cmd::output::verdict(&o.summary_line(), colour));
        if o.passed() {
            passed += 1;
        } else {
            failed += 1;
            print!("{}", o.failure_report());
        }
        if let Some(dir) = &trace_dir {
            if let Err(code) = write_trace(dir, &o.name, &o.trace) {
                return code;
            }
        }
    }
    if let Err(code) = write_junit(out, || runner::junit::run_report(&outcomes)) {
        return code;
    }
    println!(
        "({} scenarios in {:.2}s wall)",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", cmd::output::summary(passed, failed, colour));
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
