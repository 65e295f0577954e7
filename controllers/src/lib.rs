//! Controllers: each drives the cluster toward the desired state, talking to it only
//! through the API with `kube`, never through the API server's or the store's types.
//!
//! - [`namespace`]: a deleted namespace loses its contents, then its `kubernetes`
//!   finalizer (and so goes away); every active namespace has a `default` ServiceAccount.

pub mod namespace;

use std::time::Duration;

/// Runs every controller until `shutdown` fires; returns the first fatal error.
pub async fn run(
    client: kube::Client,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    tokio::select! {
        r = namespace::run(client) => r,
        _ = shutdown.changed() => Ok(()),
    }
}

/// How long a reconcile that could not finish waits before trying again.
pub const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}
