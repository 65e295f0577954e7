//! Leader election through a coordination.k8s.io Lease, as client-go's leaderelection does:
//! a candidate takes the lease when it is free or when its record has not changed for a
//! lease duration (measured on the candidate's own clock, so clock skew does not matter),
//! the leader renews it every retry period and steps down when it cannot renew within the
//! renew deadline. Only the leader runs the guarded work.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

/// Timings of an election (upstream's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Debug)]
pub struct Timings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate for the lease `kube-system/<name>`.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    /// The last lease record seen (holder, renew time) and when it was first seen.
    observed: Option<((String, String), Instant)>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    pub fn new(client: Client, name: &str, identity: &str, timings: Timings) -> Elector {
        Elector {
            api: Api::namespaced(client, "kube-system"),
            name: name.to_string(),
            identity: identity.to_string(),
            timings,
            observed: None,
        }
    }

    /// Tries once to take or renew the lease; true when this candidate holds it.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let secs = self.timings.lease_duration.as_secs() as i32;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let record = (
            holder.clone(),
            spec.renew_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
        );
        match &self.observed {
            Some((r, _)) if *r == record => {}
            _ => self.observed = Some((record, Instant::now())),
        }
        let seen_at = self
            .observed
            .as_ref()
            .map(|(_, at)| *at)
            .unwrap_or_else(Instant::now);
        let expired = holder.is_empty() || seen_at.elapsed() > self.timings.lease_duration;
        if holder != self.identity && !expired {
            return Ok(false);
        }
        let mut new_spec = spec.clone();
        if holder != self.identity {
            new_spec.acquire_time = Some(now());
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        new_spec.holder_identity = Some(self.identity.clone());
        new_spec.lease_duration_seconds = Some(secs);
        new_spec.renew_time = Some(now());
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs `work` whenever this candidate leads, until `work` ends (its result is
    /// returned). Losing the lease stops the work and goes back to campaigning.
    pub async fn run<F, Fut>(mut self, mut work: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::time::sleep(self.timings.retry_period).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election: cannot read the lease; retrying");
                    tokio::time::sleep(self.timings.retry_period).await;
                    continue;
                }
            }
            tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            let fut = work();
            tokio::pin!(fut);
            let mut last_renew = Instant::now();
            loop {
                tokio::select! {
                    r = &mut fut => return r,
                    _ = tokio::time::sleep(self.timings.retry_period) => {}
                }
                match self.try_acquire_or_renew().await {
                    Ok(true) => last_renew = Instant::now(),
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "cannot renew the lease");
                        if last_renew.elapsed() > self.timings.renew_deadline {
                            break;
                        }
                    }
                }
            }
            tracing::warn!(lease = %self.name, identity = %self.identity, "lost the lease; stopping");
        }
    }
}
