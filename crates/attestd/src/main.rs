//! attestd: a self-hostable App Attest verification server and command line.
//!
//! ```text
//! cargo run --release -- serve                 # server on 127.0.0.1:8080, SQLite ./attestd.db
//! cargo run --release -- simulate              # play a simulated iPhone against that server
//! cargo run --release -- simulate --platform android  # or a simulated Android phone
//! cargo run --release -- verify attestation …  # verify one object offline
//! cargo run --release -- inspect FILE          # explain an attestation, assertion or receipt
//! ```
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "attestd",
    version,
    about = "App Attest verification server and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (with no --app: quick-start mode with a simulator CA).
    Serve(Box<attestd::server::ServeArgs>),
    /// Play a simulated device against a running server, end to end.
    Simulate(cli::simulate::SimulateArgs),
    /// Verify an attestation, assertion, receipt or Android Key Attestation chain offline.
    #[command(subcommand)]
    Verify(cli::verify::VerifyCommand),
    /// Decode and explain an attestation, assertion, receipt, authenticator data or Android chain.
    Inspect(cli::inspect::InspectArgs),
    /// Measure verification throughput on embedded real samples (one core).
    Bench(cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => Ok(attestd::server::serve(&args)),
        Command::Simulate(args) => Ok(cli::simulate::run(&args)),
        Command::Verify(command) => cli::verify::run(command),
        Command::Inspect(args) => cli::inspect::run(&args),
        Command::Bench(args) => Ok(cli::bench::run(&args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("attestd: {error}");
            ExitCode::from(2)
        }
    }
}
