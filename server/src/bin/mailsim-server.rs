//! `mailsim-server`: the production mail server, built without the simulator (no turmoil
//! in its dependency tree; `.ci/run` checks). Subcommands: `serve`, `admin`; `queue`
//! will join them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mailsim_server::cli::{self, AdminArgs, ServeArgs};

#[derive(Parser)]
#[command(name = "mailsim-server", version, about = "A mail server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve SMTP on real sockets (loopback unless the config says otherwise). SIGTERM or
    /// ctrl-c stop accepting, let open sessions finish, and exit 0.
    Serve(ServeArgs),
    /// Edit and inspect the config: domains, accounts, passwords, aliases, lists, quotas,
    /// DKIM keys, the DNS records to publish, and a check of them (`check --scenario` is
    /// the simulator's, `mailsim admin`).
    Admin(AdminArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => cli::serve(&args, "mailsim-server"),
        Command::Admin(args) => cli::admin(&args, "mailsim-server", None),
    }
}
