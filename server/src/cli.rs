//! The production commands, shared by the `mailsim-server` binary and `mailsim serve`: one
//! implementation, so the documented `mailsim serve` and the simulator-free binary cannot
//! drift: `serve`, and `admin` (the logic in `admin/`, the arguments here); `queue` will
//! sit next to them.
//!
//! This is process plumbing — reading the config file, OS signals, the tokio runtime, stderr
//! — and the one place of the crate outside `env/real.rs` allowed to touch the OS for it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{ConfigFileError, ServerConfig};

mod admin;
mod heap;
use crate::env::real::{RealEnv, RealOptions};
use crate::server::{RunOptions, Server, DEFAULT_SHUTDOWN_GRACE};
use crate::store::CommitMode;
pub use admin::{admin, AdminArgs, AdminCommand};

/// `serve`: SMTP on real sockets (loopback unless the config says otherwise).
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Server config (TOML; see serve.example.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Where mailboxes live (default: ./mailsim-data).
    #[arg(long, default_value = "mailsim-data")]
    pub data_dir: PathBuf,
    /// Log every protocol line and commit to stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// Commit every message on its own instead of batching fsyncs (for comparison).
    #[arg(long)]
    pub no_group_commit: bool,
    /// On SIGTERM or ctrl-c, how long open sessions may finish before they are cut off
    /// (a second signal cuts them off at once).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE.as_secs())]
    pub shutdown_grace: u64,
}

/// Reads and validates a config file; errors name `path:line:col` and the key. The key
/// and certificate files it names are read too (relative to it).
pub fn load_config(path: &Path) -> Result<ServerConfig, ConfigFileError> {
    crate::admin::files::load_config(path)
}

/// Runs `serve` to its end: exit 0 after a graceful shutdown, 2 for a config or start-up
/// error. `prog` prefixes every line on stderr.
pub fn serve(args: &ServeArgs, prog: &str) -> ExitCode {
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return ExitCode::from(2);
        }
    };
    let env = match RealEnv::new(
        args.data_dir.clone(),
        RealOptions {
            verbose: args.verbose,
            ..Default::default()
        },
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{prog}: data dir {}: {e}", args.data_dir.display());
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions {
        commit: if args.no_group_commit {
            CommitMode::Single
        } else {
            CommitMode::Group
        },
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    // File work runs on the blocking pool (`env/real.rs`); tokio's default of 512 threads
    // lets a thousand sessions spooling at once start hundreds, each with its own malloc
    // arena that keeps its high-water mark. 64 is plenty for a disk.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{prog}: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    heap::start_trimming();
    rt.block_on(async move {
        let server = match Server::start(env, &cfg, opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{prog}: {}: {e}", args.config.display());
                return ExitCode::from(2);
            }
        };
        // Watch signals before saying we are up: a SIGTERM right after that line must find
        // the handler, not the default action (which would kill us mid-commit).
        let signals = Signals::new().map_err(|e| {
            // Without handlers there is no graceful shutdown; serving on is still better
            // than refusing mail.
            eprintln!("{prog}: cannot watch signals: {e}");
        });
        match server.local_addr() {
            Ok(a) => eprintln!(
                "{prog}: SMTP on {a}, mailboxes in {}",
                args.data_dir.display()
            ),
            Err(e) => eprintln!("{prog}: listening (address unknown: {e})"),
        }
        for (name, what) in [
            ("submission", "submission (STARTTLS, AUTH)"),
            ("submissions", "submissions (implicit TLS, AUTH)"),
            ("pop3", "POP3 (STLS)"),
            ("pop3s", "POP3S (implicit TLS)"),
            ("imap", "IMAP (STARTTLS)"),
            ("imaps", "IMAPS (implicit TLS)"),
        ] {
            if let Some(a) = server.local_addr_of(name) {
                eprintln!("{prog}: {what} on {a}");
            }
        }
        let shutdown = server.shutdown_handle();
        let signals = async move {
            if let Ok(mut signals) = signals {
                signals.next().await;
                eprintln!("{prog}: interrupted, shutting down");
                shutdown.begin();
                signals.next().await;
                eprintln!("{prog}: interrupted again, cutting sessions off");
                shutdown.force();
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            r = server.run() => match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{prog}: {e}");
                    ExitCode::FAILURE
                }
            },
            // The watcher never completes: `run` ends the process once shutdown is done.
            () = signals => ExitCode::SUCCESS,
        }
    })
}

/// SIGTERM (service managers) and SIGINT (ctrl-c).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

// The process's signals are this module's alone (clippy.toml keeps them out of the server).
#[allow(clippy::disallowed_methods)]
impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Completes on the next signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
