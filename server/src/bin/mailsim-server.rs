//! `mailsim-server`: the production mail server, built without the simulator (no turmoil
//! in its dependency tree; `.ci/run` checks). Subcommands: `serve`; `admin` and `queue`
//! will join it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mailsim_server::cli::{self, ServeArgs};

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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => cli::serve(&args, "mailsim-server"),
    }
}
