//! Shared pieces of the benchmark: the server process, statistics, progress, resource
//! usage, the report.

pub mod cli;
pub mod progress;
pub mod report;
pub mod server;
pub mod stats;
pub mod usage;
