//! The measurements, one module per phase.

pub mod compaction;
pub mod list;
pub mod peer;
pub mod pods;
pub mod startup;
pub mod watch;
