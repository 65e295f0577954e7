//! Events about pods, as upstream's kubelet records them (source `kubelet` on this
//! host, `involvedObject.fieldPath` naming the container). A repeat of the same event
//! counts up on the first one instead of adding another (upstream's correlator).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

type Key = (String, String, String, String);

pub struct Recorder {
    client: kube::Client,
    node: String,
    seen: Mutex<HashMap<Key, (String, i32)>>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str) -> Recorder {
        Recorder {
            client,
            node: node.to_string(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event about `pod` (about its container at `field_path`, e.g.
    /// `spec.containers{web}`). Failures are logged, never returned.
    pub async fn pod(
        &self,
        pod: &Pod,
        field_path: Option<&str>,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut message = message.to_string();
        if message.len() > 1024 {
            let mut cut = 1024;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let now = Time(Timestamp::now());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let key: Key = (
            uid.clone(),
            reason.to_string(),
            message.clone(),
            field_path.unwrap_or("").to_string(),
        );
        let repeat = self.seen.lock().expect("lock").get(&key).cloned();
        if let Some((ev_name, count)) = repeat {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            if api
                .patch(&ev_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .is_ok()
            {
                self.seen
                    .lock()
                    .expect("lock")
                    .insert(key, (ev_name, count + 1));
                return;
            }
        }
        let nanos = Timestamp::now().as_nanosecond();
        let ev_name = format!("{name}.{:x}", nanos as u64);
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(ev_name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(ns),
                name: Some(name),
                uid: Some(uid),
                resource_version: pod.metadata.resource_version.clone(),
                field_path: field_path.map(str::to_string),
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            event_time: None::<MicroTime>,
            count: Some(1),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(_) => {
                let mut seen = self.seen.lock().expect("lock");
                if seen.len() > 4096 {
                    seen.clear();
                }
                seen.insert(key, (ev_name, 1));
            }
            Err(e) => tracing::debug!(error = %e, %reason, "cannot record event"),
        }
    }

    /// Forgets the events of a pod that is gone.
    pub fn forget(&self, uid: &str) {
        self.seen.lock().expect("lock").retain(|k, _| k.0 != uid);
    }
}
