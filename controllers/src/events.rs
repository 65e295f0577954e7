//! Events about the objects controllers act on, as upstream's legacy recorder writes them
//! (core/v1 Events with `source.component`), behind its spam filter: per involved object a
//! burst of 25 events, then one per 5 minutes (client-go's `EventSourceObjectSpamFilter`).
//! Writing is fire-and-forget: a controller never waits for, or fails on, its events.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::Client;

const BURST: f64 = 25.0;
const REFILL: Duration = Duration::from_secs(300);
/// Upstream truncates event messages to 1 KiB.
const MAX_MESSAGE: usize = 1024;

pub struct Recorder {
    client: Client,
    component: &'static str,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token if there is one (refilled at one per [`REFILL`] up to [`BURST`]).
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Recorder {
        Recorder {
            client,
            component,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Records a `Normal` or `Warning` event about `object` (unless its budget is spent).
    pub fn record(&self, object: ObjectReference, type_: &str, reason: &str, message: &str) {
        let key = format!(
            "{}/{}/{}/{}",
            object.kind.as_deref().unwrap_or_default(),
            object.namespace.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default(),
            object.uid.as_deref().unwrap_or_default()
        );
        let now = Instant::now();
        {
            let mut buckets = self.buckets.lock().unwrap();
            if buckets.len() > 10_000 {
                buckets.retain(|_, b| now.duration_since(b.at) < REFILL * 25);
            }
            let b = buckets.entry(key).or_insert(Bucket {
                tokens: BURST,
                at: now,
            });
            if !b.take(now) {
                return;
            }
        }
        let ns = object.namespace.clone().unwrap_or_else(|| "default".into());
        let mut message = message.to_string();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let stamp = Time(k8s_openapi::jiff::Timestamp::now());
        let nanos = stamp.0.as_nanosecond();
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{nanos:x}",
                    object.name.as_deref().unwrap_or_default()
                )),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: object,
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(self.component.into()),
                host: None,
            }),
            reporting_component: Some(self.component.into()),
            first_timestamp: Some(stamp.clone()),
            last_timestamp: Some(stamp),
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "could not record an event");
            }
        });
    }
}

/// A reference to `obj` for an event's `involvedObject`.
pub fn reference<K>(obj: &K) -> ObjectReference
where
    K: kube::Resource<DynamicType = ()>,
{
    let m = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: m.namespace.clone(),
        name: m.name.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spam_filter_allows_a_burst_of_25_then_one_per_5_minutes() {
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: BURST,
            at: t0,
        };
        assert_eq!((0..40).filter(|_| b.take(t0)).count(), 25);
        assert!(!b.take(t0 + Duration::from_secs(299)));
        assert!(b.take(t0 + Duration::from_secs(301)));
        assert!(!b.take(t0 + Duration::from_secs(302)));
        // A long quiet period refills the burst, no more.
        let later = t0 + Duration::from_secs(86_400);
        assert_eq!((0..40).filter(|_| b.take(later)).count(), 25);
    }
}
