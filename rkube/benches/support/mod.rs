//! Shared pieces of the benchmark: the server process, statistics, progress, the report.

pub mod progress;
pub mod report;
pub mod server;
pub mod stats;
