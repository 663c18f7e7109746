//! `mailsim`: run scenarios in the simulated world, or serve mail on real sockets.

use std::path::PathBuf;
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
    Serve {
        /// Server config (TOML; see serve.example.toml).
        #[arg(long)]
        config: PathBuf,
        /// Where mailboxes live (default: ./mailsim-data).
        #[arg(long, default_value = "mailsim-data")]
        data_dir: PathBuf,
        /// Log every protocol line and commit to stderr.
        #[arg(long, short)]
        verbose: bool,
        /// Commit every message on its own instead of batching fsyncs (for comparison).
        #[arg(long)]
        no_group_commit: bool,
    },
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
        Command::Serve {
            config,
            data_dir,
            verbose,
            no_group_commit,
        } => serve(config, data_dir, verbose, no_group_commit),
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

fn serve(config: PathBuf, data_dir: PathBuf, verbose: bool, no_group_commit: bool) -> ExitCode {
    use mailsim_server::config::ServerConfig;
    use mailsim_server::env::real::{RealEnv, RealOptions};
    use mailsim_server::server::{RunOptions, Server};
    use mailsim_server::store::CommitMode;

    let text = match std::fs::read_to_string(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mailsim: {}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    let cfg: ServerConfig = match toml::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let (line, col) = mailsim::scenario::line_col(&text, span.start);
            eprintln!(
                "mailsim: {}:{line}:{col}: {}",
                config.display(),
                e.message().trim()
            );
            return ExitCode::from(2);
        }
    };
    let env = match RealEnv::new(
        data_dir.clone(),
        RealOptions {
            verbose,
            ..Default::default()
        },
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("mailsim: data dir {}: {e}", data_dir.display());
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions {
        commit: if no_group_commit {
            CommitMode::Single
        } else {
            CommitMode::Group
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let server = match Server::start(env, &cfg, opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mailsim: {}: {e}", config.display());
                return ExitCode::from(2);
            }
        };
        match server.local_addr() {
            Ok(a) => eprintln!("mailsim: SMTP on {a}, mailboxes in {}", data_dir.display()),
            Err(e) => eprintln!("mailsim: listening (address unknown: {e})"),
        }
        tokio::select! {
            r = server.run() => {
                if let Err(e) = r {
                    eprintln!("mailsim: accept failed: {e}");
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("mailsim: interrupted, shutting down");
                ExitCode::SUCCESS
            }
        }
    })
}
