//! The served resources: one static description per resource, the single source of
//! discovery, routing, storage keys and per-kind behaviour.

use k8s_openapi::api::{coordination, core::v1 as core, discovery};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// A subresource served under a resource, as discovery lists it.
#[derive(Debug)]
pub struct Subresource {
    pub name: &'static str,
    pub kind: &'static str,
    /// The kind's group/version when it differs from the parent's (e.g. autoscaling/v1 Scale).
    pub group_version: Option<(&'static str, &'static str)>,
    pub verbs: &'static [&'static str],
}

pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Decodes into the typed object and encodes back: drops unknown fields, checks types.
    pub normalize: fn(Value) -> Result<Value, serde_json::Error>,
    /// Whether spec changes bump `metadata.generation`.
    pub generation: bool,
    /// Whether `/status` is a separate subresource (the main resource then ignores status).
    pub has_status: bool,
    /// For a resource stored as another (events.k8s.io Events as core Events): the stored
    /// resource's plural and the conversions to and from it.
    pub stored_as: Option<StoredAs>,
}

/// How a resource maps onto the storage of another.
pub struct StoredAs {
    pub plural: &'static str,
    pub kind: &'static str,
    pub to_storage: fn(Value) -> Value,
    pub from_storage: fn(Value) -> Value,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {}", self.group, self.version, self.plural)
    }
}

fn norm<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, serde_json::Error> {
    let t: T = serde_json::from_value(v)?;
    serde_json::to_value(t)
}

const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS: Subresource = Subresource {
    name: "status",
    kind: "",
    group_version: None,
    verbs: &["get", "patch", "update"],
};

macro_rules! sub {
    ($name:expr, $kind:expr, $verbs:expr) => {
        Subresource {
            name: $name,
            kind: $kind,
            group_version: None,
            verbs: $verbs,
        }
    };
}

pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: ALL,
        subresources: &[
            sub!("attach", "PodAttachOptions", &["create", "get"]),
            sub!("binding", "Binding", &["create"]),
            sub!("ephemeralcontainers", "Pod", &["get", "patch", "update"]),
            Subresource {
                name: "eviction",
                kind: "Eviction",
                group_version: Some(("policy", "v1")),
                verbs: &["create"],
            },
            sub!("exec", "PodExecOptions", &["create", "get"]),
            sub!("log", "Pod", &["get"]),
            sub!("portforward", "PodPortForwardOptions", &["create", "get"]),
            sub!(
                "proxy",
                "PodProxyOptions",
                &["create", "delete", "get", "patch", "update"]
            ),
            sub!("resize", "Pod", &["get", "patch", "update"]),
            STATUS,
        ],
        normalize: norm::<core::Pod>,
        // Upstream ≥ 1.33: 1 on create, + 1 on any spec change (ephemeralcontainers too).
        generation: true,
        has_status: true,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        kind: "ReplicationController",
        namespaced: true,
        short_names: &["rc"],
        categories: &["all"],
        verbs: ALL,
        subresources: &[
            Subresource {
                name: "scale",
                kind: "Scale",
                group_version: Some(("autoscaling", "v1")),
                verbs: &["get", "patch", "update"],
            },
            STATUS,
        ],
        normalize: norm::<core::ReplicationController>,
        generation: true,
        has_status: true,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        verbs: &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        subresources: &[
            sub!(
                "proxy",
                "ServiceProxyOptions",
                &["create", "delete", "get", "patch", "update"]
            ),
            STATUS,
        ],
        normalize: norm::<core::Service>,
        generation: false,
        has_status: true,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        verbs: ALL,
        subresources: &[],
        normalize: norm::<core::Endpoints>,
        generation: false,
        has_status: false,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[sub!("finalize", "Namespace", &["update"]), STATUS],
        normalize: norm::<core::Namespace>,
        generation: false,
        has_status: true,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        verbs: ALL,
        subresources: &[
            sub!(
                "proxy",
                "NodeProxyOptions",
                &["create", "delete", "get", "patch", "update"]
            ),
            STATUS,
        ],
        normalize: norm::<core::Node>,
        generation: false,
        has_status: true,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: ALL,
        subresources: &[],
        normalize: norm::<core::Event>,
        generation: false,
        has_status: false,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: ALL,
        subresources: &[],
        normalize: norm::<core::ConfigMap>,
        generation: false,
        has_status: false,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "podtemplates",
        singular: "podtemplate",
        kind: "PodTemplate",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL,
        subresources: &[],
        normalize: norm::<core::PodTemplate>,
        generation: false,
        has_status: false,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL,
        subresources: &[],
        normalize: norm::<core::Secret>,
        generation: false,
        has_status: false,
        stored_as: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        verbs: ALL,
        subresources: &[sub!("token", "TokenRequest", &["create"])],
        normalize: norm::<core::ServiceAccount>,
        generation: false,
        has_status: false,
        stored_as: None,
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL,
        subresources: &[],
        normalize: norm::<coordination::v1::Lease>,
        generation: false,
        has_status: false,
        stored_as: None,
    },
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL,
        subresources: &[],
        normalize: norm::<discovery::v1::EndpointSlice>,
        generation: false,
        has_status: false,
        stored_as: None,
    },
    Resource {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: ALL,
        subresources: &[],
        normalize: norm::<k8s_openapi::api::events::v1::Event>,
        generation: false,
        has_status: false,
        stored_as: Some(StoredAs {
            plural: "events",
            kind: "Event",
            to_storage: crate::events::to_core,
            from_storage: crate::events::from_core,
        }),
    },
];

/// The resource named `plural` in `group`/`version`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The distinct API groups (other than core), in serving order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key prefix of this resource in `namespace` (all namespaces: `None`).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        let plural = self.stored_as.as_ref().map_or(self.plural, |s| s.plural);
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{plural}/{ns}/"),
            _ => format!("/registry/{plural}/"),
        }
    }

    /// An object as served, from its stored bytes at revision `rev`.
    pub fn decode(&self, bytes: &[u8], rev: i64) -> Value {
        let v = crate::object::decode_stored(bytes, rev);
        match &self.stored_as {
            Some(s) => (s.from_storage)(v),
            None => v,
        }
    }

    /// The stored bytes of an object as served.
    pub fn encode(&self, obj: &Value) -> Vec<u8> {
        match &self.stored_as {
            Some(s) => crate::object::encode_stored(&(s.to_storage)(obj.clone())),
            None => crate::object::encode_stored(obj),
        }
    }

    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.prefix(namespace))
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }
}
