//! `mailsim`: run scenarios in the simulated world, serve mail on real sockets, or administer
//! a server config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        #[arg(long)]
        seed: Option<u64>,
        /// Write one trace file per scenario here (`<name>.trace`).
        #[arg(long)]
        trace_dir: Option<PathBuf>,
        /// Scenarios run side by side (default: the number of cores).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
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
            trace_dir,
            jobs,
        } => run(paths, seed, trace_dir, jobs),
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

fn run(
    paths: Vec<PathBuf>,
    seed: Option<u64>,
    trace_dir: Option<PathBuf>,
    jobs: Option<usize>,
) -> ExitCode {
    use mailsim::runner;
    let paths = if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths
    };
    let files = match runner::discover(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mailsim: {e}");
            return ExitCode::from(2);
        }
    };
    if files.is_empty() {
        eprintln!("mailsim: no scenario files (*.toml) under {paths:?}");
        return ExitCode::from(2);
    }
    let threads = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // The closing line's wall-clock figure; it never feeds back into a world.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let outcomes = runner::run_all(&files, seed, threads);
    let (mut passed, mut failed) = (0, 0);
    for o in &outcomes {
        println!("{}", o.summary_line());
        if o.passed() {
            passed += 1;
        } else {
            failed += 1;
            print!("{}", o.failure_report());
        }
        if let Some(dir) = &trace_dir {
            let file = dir.join(format!("{}.trace", o.name));
            // Traces are the runner's output, written to the real disk after the world ended.
            #[allow(clippy::disallowed_methods)]
            let written = file
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::write(&file, &o.trace));
            if let Err(e) = written {
                eprintln!("mailsim: writing {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    }
    println!(
        "({} scenarios in {:.2}s wall)",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
