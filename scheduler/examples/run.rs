//! Runs the scheduler alone against the cluster in `KUBECONFIG` (for trying it out
//! before the `rkube` binary runs it):
//! `cargo run -p rkube-scheduler --example run`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    scheduler::run(kube::Client::try_default().await?).await
}
