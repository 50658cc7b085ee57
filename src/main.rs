//! omen's entry point: parse the command line, run the command, print the error chain
//! once and exit with a meaningful code.

use std::process::ExitCode;

use clap::Parser;

use omen::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => omen::run::serve(&config),
        Command::Demo(args) => omen::demo::run(&args),
        Command::CheckConfig { config } => omen::run::check_config(&config),
        Command::Replay(args) => omen::replay::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", omen::run::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
