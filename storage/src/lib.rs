//! The storage contract of the rkube API server.
//!
//! A store is a revisioned key-value map: every successful write takes the next value of
//! one global revision counter, and a key's `mod_revision` is the revision of its last
//! write. The API server exposes that revision as an object's `resourceVersion`.
//!
//! The trait holds only what the API server needs: point reads, consistent paged lists
//! at a revision, conditional writes, watches from a revision, and compaction. Backends
//! are chosen by the `--datastore-endpoint` URL scheme (see [`open`]).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

pub mod etcd;
pub mod sqlite;

/// A global, monotonically increasing write counter. Zero means "no revision".
pub type Revision = i64;

/// One key as stored at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated; `kv` is the new value.
    Put,
    /// The key was deleted; `kv.value` is the last value, `kv.mod_revision` the deletion's revision.
    Delete,
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The value before this change, if the key existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A page of a list, consistent at `revision`.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub items: Vec<KeyValue>,
    /// The revision the whole list (all its pages) is read at.
    pub revision: Revision,
    /// Whether keys remain after the last item of this page.
    pub more: bool,
    /// How many keys remain after the last item of this page, at `revision` (etcd's range
    /// count less the page; kube-apiserver's `remainingItemCount`). 0 when `more` is false.
    pub remaining: u64,
}

#[derive(Clone, Debug, Default)]
pub struct ListOptions<'a> {
    /// Keys starting with this prefix.
    pub prefix: &'a str,
    /// Only keys strictly greater than this one (for continuing a paged list).
    pub start_after: Option<&'a str>,
    /// Read at this revision (0: the current one).
    pub revision: Revision,
    /// At most this many items (0: no limit).
    pub limit: usize,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {0} not found")]
    NotFound(String),
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {key} was modified: expected revision {expected}, current revision {current}")]
    Conflict {
        key: String,
        expected: Revision,
        current: Revision,
    },
    #[error("revision {requested} has been compacted (oldest available: {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    #[error("datastore error: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The events of a watch, in revision order, with no gap and no duplicate. The stream
/// ends with an error item (e.g. [`StoreError::Compacted`]) when it cannot go on.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys under a prefix in key order, consistent at one revision.
    async fn list(&self, opts: ListOptions<'_>) -> Result<ListPage>;

    /// Number of live keys under `prefix`, at the current revision.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Creates `key` if absent; returns the new key-value.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;

    /// Replaces `key` if its `mod_revision` is `expected`.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue>;

    /// Deletes `key` if its `mod_revision` is `expected`; returns the deleted key-value
    /// with `mod_revision` set to the deletion's revision.
    async fn delete(&self, key: &str, expected: Revision) -> Result<KeyValue>;

    /// Changes under `prefix` with a revision greater than `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Forgets history at and below `revision`; reads and watches of it answer `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision of the last write.
    async fn current_revision(&self) -> Result<Revision>;

    /// The oldest revision that can still be read or watched from.
    async fn compacted_revision(&self) -> Result<Revision>;
}

/// TLS files for an `https://` etcd endpoint.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// CA that signed etcd's serving certificate.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate, when etcd authenticates clients by certificate.
    pub cert_file: Option<std::path::PathBuf>,
    /// Key of the client certificate.
    pub key_file: Option<std::path::PathBuf>,
}

/// Opens the store named by a `--datastore-endpoint` value: `None` (or "") means the
/// embedded SQLite database under `data_dir`, `sqlite:///path` a SQLite database at that
/// path, and `http://host:port` or `https://host:port` (several comma-separated) an etcd
/// cluster, reached with the TLS files `tls` for `https://`. Fails with
/// [`StoreError::Unavailable`] and a message naming what to check when etcd does not answer.
pub async fn open(
    endpoint: Option<&str>,
    tls: &TlsFiles,
    data_dir: &std::path::Path,
) -> Result<Arc<dyn Store>> {
    open_with(endpoint, tls, data_dir, None).await
}

/// [`open`] with the automatic compaction period (kube-apiserver's
/// `--etcd-compaction-interval`): on etcd how often it compacts, on SQLite how much history
/// it keeps at least. `None`: each backend's default (5 minutes on etcd, 1 on SQLite).
pub async fn open_with(
    endpoint: Option<&str>,
    tls: &TlsFiles,
    data_dir: &std::path::Path,
    compaction: Option<std::time::Duration>,
) -> Result<Arc<dyn Store>> {
    let sqlite_opts = || {
        let mut o = sqlite::Options::default();
        if let Some(c) = compaction {
            o.history = c;
        }
        o
    };
    match endpoint.map(str::trim) {
        None | Some("") => {
            let path = data_dir.join("server").join("db").join("state.db");
            let store = sqlite::SqliteStore::open(&path, sqlite_opts())?;
            Ok(Arc::new(store))
        }
        Some(ep) if ep.starts_with("sqlite://") => {
            let path = std::path::PathBuf::from(ep.trim_start_matches("sqlite://"));
            let store = sqlite::SqliteStore::open(&path, sqlite_opts())?;
            Ok(Arc::new(store))
        }
        Some(ep) if ep.starts_with("http://") || ep.starts_with("https://") => {
            let opts = etcd::EtcdOptions {
                endpoints: ep
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect(),
                ca_file: tls.ca_file.clone(),
                cert_file: tls.cert_file.clone(),
                key_file: tls.key_file.clone(),
                ..Default::default()
            };
            let opts = match compaction {
                Some(c) => etcd::EtcdOptions {
                    compaction_interval: c,
                    ..opts
                },
                None => opts,
            };
            Ok(Arc::new(etcd::EtcdStore::connect(opts).await?))
        }
        Some(ep) => Err(StoreError::Unavailable(format!(
            "unsupported --datastore-endpoint {ep:?}: use no endpoint (the embedded SQLite \
             store), sqlite:///path/to/state.db, or etcd's client URLs (http://host:2379 or \
             https://host:2379, several separated by commas)"
        ))),
    }
}

/// The smallest string greater than every string with `prefix` as a prefix, for range scans.
pub fn prefix_end(prefix: &str) -> String {
    match prefix.chars().last() {
        Some(c) if (c as u32) < 0x7f => {
            let mut s = prefix[..prefix.len() - 1].to_string();
            s.push(char::from(c as u8 + 1));
            s
        }
        _ => {
            let mut s = prefix.to_string();
            s.push(char::MAX);
            s
        }
    }
}
