//! The command line: `omen serve`, `omen demo`, `omen check-config`, `omen replay`,
//! `omen --version`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// omen: a Prometheus remote-write sidecar with per-series anomaly models.
#[derive(Debug, Parser)]
#[command(name = "omen", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive remote-write, keep whitelisted series, forward them downstream.
    Serve {
        /// The omen.yaml configuration file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// See omen work with no setup: synthetic series with injected anomalies go through
    /// omen to an in-process receiver; open the printed URL.
    Demo(crate::demo::DemoArgs),
    /// Validate a configuration file: exit 0, or print `FILE: key: reason` and exit 1.
    CheckConfig {
        /// The omen.yaml configuration file.
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the models over CSV files (timestamp,value) and write scores and forecasts.
    Replay(crate::replay::ReplayArgs),
}
