//! Controllers: each drives the cluster toward the desired state, talking to it only
//! through the API with `kube`, never through the API server's or the store's types.
//!
//! - [`namespace`]: a deleted namespace loses its contents, then its `kubernetes`
//!   finalizer (and so goes away); every active namespace has a `default` ServiceAccount.
//! - [`leader`]: Lease-based leader election; only the leader's controllers act.

pub mod leader;
pub mod namespace;

use std::time::Duration;

/// The lease the controllers' leader holds (as kube-controller-manager's).
pub const LEASE: &str = "kube-controller-manager";

/// Runs every controller, while this process holds the controllers' lease, until
/// `shutdown` fires; returns the first fatal error. `identity` names this process in the
/// lease (unique per server).
pub async fn run(
    client: kube::Client,
    identity: &str,
    timings: leader::Timings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let elector = leader::Elector::new(client.clone(), LEASE, identity, timings);
    tokio::select! {
        r = elector.run(|| namespace::run(client.clone())) => r,
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
