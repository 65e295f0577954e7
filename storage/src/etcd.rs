//! The etcd backend: the store is an etcd v3 cluster (3.4 or newer), as for kube-apiserver.
//!
//! Mapping: a key's `mod_revision`/`create_revision` are etcd's, so an object's revision is
//! etcd's `mod_revision` and the global counter is etcd's revision. Conditional writes are
//! one transaction each (create: `create_revision == 0`; update and delete:
//! `mod_revision == expected`, or `create_revision > 0` when `expected` is 0). Lists are
//! range reads at one revision; watches are etcd watches from `after + 1` with `prev_kv`.
//! Every key lives under [`EtcdOptions::prefix`].
//!
//! Every unary request is bounded by [`EtcdOptions::request_timeout`]; a watch asks etcd
//! for a progress report after [`EtcdOptions::watch_progress_interval`] of silence and ends
//! with [`StoreError::Unavailable`] when etcd does not answer within the request timeout,
//! so a dead or hung etcd is noticed instead of leaving watchers waiting forever.
//!
//! Compacted revision: etcd 3.4 has no request that returns its compacted revision. The
//! store remembers the highest compaction it has seen (its own, and those reported by
//! etcd in compaction errors and canceled watches) and [`Store::compacted_revision`]
//! checks that value with a range read at it; only when etcd has compacted past it (another
//! server, or `etcdctl compact`) does it learn the new value from a short watch from
//! revision 1, which etcd cancels with its compacted revision. Hence `compacted_revision`
//! is exact but costs a request, plus up to ~100 ms (etcd's watcher sync period) after a
//! compaction made elsewhere (if that watch gets no answer in time, the value is a lower
//! bound: the last one known, or one above the revision just refused). A compaction made
//! after it answered may of course make the value stale immediately.
//!
//! With several endpoints, a request whose connection could not be made (so etcd never saw
//! it) is sent again, as the client's balancer may pick a dead endpoint.
//!
//! Automatic compaction follows kube-apiserver: every `compaction_interval` each server
//! runs a compare-and-swap on the version of the key `<prefix>compact_rev_key` (whose value
//! is the last compacted revision). The server whose swap succeeds compacts etcd to the
//! revision it observed at its previous tick; the others learn the new version and try
//! again at their next tick. So among servers sharing one etcd (and prefix), about one
//! compaction happens per interval, and history of at least one interval is kept. The
//! swap itself is a write, so it takes a revision like any other write.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    KvClient, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient,
    WatchOptions,
};

use crate::{
    Event, EventKind, KeyValue, ListOptions, ListPage, Result, Revision, Store, StoreError,
    WatchStream,
};

/// How to reach etcd and how long to wait for it.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Client URLs (`http://host:port` or `https://host:port`), all of one scheme.
    pub endpoints: Vec<String>,
    /// CA bundle that signed etcd's serving certificate (needed for `https://`).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's client certificate authentication.
    pub cert_file: Option<PathBuf>,
    /// Key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
    /// Prepended to every key (keys already start with `/registry/`); "" by default.
    pub prefix: String,
    /// Bound on establishing a connection, and on the reachability check of `connect`.
    pub connect_timeout: Duration,
    /// Bound on every request; an unanswered request fails with `Unavailable`.
    pub request_timeout: Duration,
    /// Automatic compaction period (kube-apiserver's default: 5 minutes); zero turns it off.
    pub compaction_interval: Duration,
    /// A watch that has heard nothing for this long asks etcd for a progress report.
    pub watch_progress_interval: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            endpoints: Vec::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            compaction_interval: Duration::from_secs(300),
            watch_progress_interval: Duration::from_secs(10),
        }
    }
}

/// Name of the key that coordinates automatic compaction (upstream's name).
const COMPACT_REV_KEY: &str = "compact_rev_key";

/// Largest message accepted from etcd (a big list is one message).
const MAX_MESSAGE: usize = i32::MAX as usize;

struct Inner {
    /// Kept for the life of the store: it owns the balanced channel's endpoint list.
    _client: Client,
    kv: KvClient,
    watch: WatchClient,
    prefix: String,
    /// The endpoints, for messages.
    endpoints: String,
    /// Whether they are https:// (messages then mention the TLS files).
    https: bool,
    endpoint_count: usize,
    request_timeout: Duration,
    progress_interval: Duration,
    /// Highest compacted revision known to this process.
    compacted: AtomicI64,
}

/// A store in etcd.
pub struct EtcdStore {
    inner: Arc<Inner>,
    compactor: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(task) = self.compactor.take() {
            task.abort();
        }
    }
}

/// How a failed etcd request is classified.
enum Failure {
    Compacted,
    Future,
    Other(StoreError),
}

impl Inner {
    fn full(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn strip(&self, key: &[u8]) -> String {
        let key = key.strip_prefix(self.prefix.as_bytes()).unwrap_or(key);
        String::from_utf8_lossy(key).into_owned()
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> KeyValue {
        KeyValue {
            key: self.strip(kv.key()),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        }
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!(
            "etcd at {} is unreachable: {why}; the server retries; check that etcd is running \
             and reachable from this host{}",
            self.endpoints,
            if self.https {
                ", and that the CA file signed etcd's serving certificate and the client \
                 certificate and key are ones etcd accepts"
            } else {
                ""
            }
        ))
    }

    fn timed_out(&self) -> StoreError {
        self.unreachable(format_args!("no answer within {:?}", self.request_timeout))
    }

    fn classify(&self, e: etcd_client::Error) -> Failure {
        match e {
            etcd_client::Error::GRpcStatus(status) => {
                let code: i32 = status.code().into();
                let mut detail = status.message().to_string();
                let mut source = std::error::Error::source(&status);
                while let Some(e) = source {
                    let text = e.to_string();
                    if !detail.contains(&text) {
                        detail.push_str(": ");
                        detail.push_str(&text);
                    }
                    source = e.source();
                }
                let msg = detail.as_str();
                if msg.contains("required revision has been compacted") {
                    return Failure::Compacted;
                }
                if msg.contains("required revision is a future revision") {
                    return Failure::Future;
                }
                Failure::Other(match code {
                    // Cancelled, Unknown (transport), DeadlineExceeded, Unavailable.
                    1 | 2 | 4 | 14 => self.unreachable(msg),
                    7 | 16 => StoreError::Unavailable(format!(
                        "etcd at {} refused the request: {msg}; check the client certificate \
                         and etcd's authentication settings",
                        self.endpoints
                    )),
                    8 if msg.contains("database space exceeded") => {
                        StoreError::Unavailable(format!(
                            "etcd at {} is out of space ({msg}): compact and defragment it, \
                             then disarm the NOSPACE alarm",
                            self.endpoints
                        ))
                    }
                    _ => StoreError::Internal(format!("etcd: {msg}")),
                })
            }
            etcd_client::Error::TransportError(e) => Failure::Other(self.unreachable(e)),
            etcd_client::Error::IoError(e) => Failure::Other(self.unreachable(e)),
            etcd_client::Error::WatchError(e) => Failure::Other(self.unreachable(e)),
            other => Failure::Other(StoreError::Internal(format!("etcd client: {other}"))),
        }
    }

    /// A failure of a request that does not read at a revision.
    fn error(&self, f: Failure) -> StoreError {
        match f {
            Failure::Other(e) => e,
            Failure::Compacted | Failure::Future => {
                StoreError::Internal("etcd: unexpected revision error".into())
            }
        }
    }

    /// Runs one request, bounded by the request timeout. With several endpoints, a request
    /// that could not be sent (its endpoint refused the connection) is sent again, to
    /// another endpoint if the balancer picks one: it was never seen by etcd.
    async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let tries = if self.endpoint_count > 1 {
            self.endpoint_count * 4
        } else {
            1
        };
        let run = async {
            let mut n = 0;
            loop {
                n += 1;
                match attempt().await {
                    Ok(v) => return Ok(v),
                    Err(e) if n < tries && not_sent(&e) => continue,
                    Err(e) => return Err(self.classify(e)),
                }
            }
        };
        match tokio::time::timeout(self.request_timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Other(self.timed_out())),
        }
    }

    async fn get_raw(
        &self,
        key: Vec<u8>,
        opts: GetOptions,
    ) -> Result<etcd_client::GetResponse, Failure> {
        self.call(|| {
            let mut kv = self.kv.clone();
            let (key, opts) = (key.clone(), opts.clone());
            async move { kv.get(key, Some(opts)).await }
        })
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.call(|| {
            let mut kv = self.kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
        .map_err(|e| self.error(e))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .get_raw(
                self.full(COMPACT_REV_KEY),
                GetOptions::new().with_count_only(),
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(header_revision(resp.header()))
    }

    fn note_compacted(&self, rev: Revision) -> Revision {
        self.compacted.fetch_max(rev, Ordering::AcqRel).max(rev)
    }

    /// Whether reading at `rev` is refused because etcd compacted past it.
    async fn is_compacted(&self, rev: Revision) -> Result<bool> {
        let opts = GetOptions::new()
            .with_revision(rev.max(1))
            .with_count_only();
        match self.get_raw(self.full(COMPACT_REV_KEY), opts).await {
            Ok(_) => Ok(false),
            Err(f) => match f {
                Failure::Compacted => Ok(true),
                Failure::Future => Ok(false),
                Failure::Other(e) => Err(e),
            },
        }
    }

    /// etcd's compacted revision, known to be greater than `below`.
    async fn learn_compacted(&self, below: Revision) -> Revision {
        let floor = self.note_compacted(0).max(below + 1);
        let learned = async {
            let mut client = self.watch.clone();
            let opts = WatchOptions::new().with_start_revision(1);
            let mut stream = client.watch(self.full(COMPACT_REV_KEY), Some(opts)).await?;
            while let Some(resp) = stream.message().await? {
                if resp.compact_revision() > 0 {
                    return Ok(resp.compact_revision());
                }
                if resp.canceled() {
                    break;
                }
            }
            Ok::<_, etcd_client::Error>(0)
        };
        match tokio::time::timeout(self.request_timeout, learned).await {
            Ok(Ok(rev)) if rev > 0 => self.note_compacted(rev),
            _ => floor,
        }
    }

    async fn compacted_error(&self, requested: Revision) -> StoreError {
        StoreError::Compacted {
            requested,
            compacted: self.learn_compacted(requested).await,
        }
    }

    async fn future_error(&self, requested: Revision) -> StoreError {
        match self.current_revision().await {
            Ok(current) => StoreError::FutureRevision { requested, current },
            Err(e) => e,
        }
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        if revision <= self.compacted.load(Ordering::Acquire) {
            return Ok(());
        }
        let compact = || {
            let mut kv = self.kv.clone();
            async move { kv.compact(revision, None).await }
        };
        match self.call(compact).await {
            Ok(_) => {
                self.note_compacted(revision);
                Ok(())
            }
            Err(f) => match f {
                Failure::Compacted => {
                    self.note_compacted(revision);
                    Ok(())
                }
                Failure::Future => Err(self.future_error(revision).await),
                Failure::Other(e) => Err(e),
            },
        }
    }

    /// One tick of automatic compaction, as kube-apiserver's `compact`: `version` is the
    /// version of the coordination key seen at the previous tick, `rev` the revision then.
    /// Returns the version and revision to remember for the next tick.
    async fn compact_tick(&self, version: i64, rev: Revision) -> (i64, Revision, Result<()>) {
        let key = self.full(COMPACT_REV_KEY);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, version)])
            .and_then([TxnOp::put(key.clone(), rev.to_string(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = match self.txn(txn).await {
            Ok(r) => r,
            Err(e) => return (version, rev, Err(e)),
        };
        let current = header_revision(resp.header());
        if !resp.succeeded() {
            let seen = resp
                .op_responses()
                .into_iter()
                .find_map(|r| match r {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.version()),
                    _ => None,
                })
                .unwrap_or(0);
            return (seen, current, Ok(()));
        }
        if rev == 0 {
            // The first tick only records where history starts.
            return (version + 1, current, Ok(()));
        }
        (version + 1, current, self.compact(rev).await)
    }
}

/// Whether a failed request never reached etcd (the connection could not be made).
fn not_sent(e: &etcd_client::Error) -> bool {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    if let etcd_client::Error::GRpcStatus(status) = e {
        source = std::error::Error::source(status);
    }
    while let Some(inner) = source {
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text.contains("tcp connect error") || text.contains("Connection refused")
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map(|h| h.revision()).unwrap_or(0)
}

/// The smallest key greater than every key starting with `prefix` ("\0": no end).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn read_pem(what: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot read the etcd {what} {}: {e}",
            path.display()
        ))
    })
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers (within `connect_timeout`).
    pub async fn connect(opts: EtcdOptions) -> Result<EtcdStore> {
        let endpoints: Vec<String> = opts
            .endpoints
            .iter()
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        let desc = endpoints.join(",");
        if endpoints.is_empty() {
            return Err(StoreError::Unavailable(
                "no etcd endpoint given (expected http://host:port or https://host:port)".into(),
            ));
        }
        let https = endpoints[0].starts_with("https://");
        for e in &endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(StoreError::Unavailable(format!(
                    "etcd endpoint {e:?} must start with http:// or https://"
                )));
            }
            if e.starts_with("https://") != https {
                return Err(StoreError::Unavailable(format!(
                    "etcd endpoints {desc} mix http:// and https://: use one scheme"
                )));
            }
        }
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(opts.connect_timeout)
            .with_tcp_keepalive(Duration::from_secs(30))
            .with_require_leader(true);
        let has_tls_files =
            opts.ca_file.is_some() || opts.cert_file.is_some() || opts.key_file.is_some();
        if https {
            let mut tls = TlsOptions::new()
                .assume_http2(true)
                .timeout(opts.connect_timeout);
            match &opts.ca_file {
                Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read_pem("CA", ca)?)),
                None => {
                    return Err(StoreError::Unavailable(format!(
                        "etcd endpoints {desc} use https:// but no CA file was given: give the \
                         CA that signed etcd's serving certificate"
                    )))
                }
            }
            match (&opts.cert_file, &opts.key_file) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(Identity::from_pem(
                        read_pem("client certificate", cert)?,
                        read_pem("client key", key)?,
                    ))
                }
                (None, None) => {}
                _ => {
                    return Err(StoreError::Unavailable(
                        "the etcd client certificate and key must be given together".into(),
                    ))
                }
            }
            connect = connect.with_tls(tls);
        } else if has_tls_files {
            return Err(StoreError::Unavailable(format!(
                "etcd TLS files were given but the endpoints {desc} are http://: use https:// \
                 endpoints"
            )));
        }
        let client = Client::connect(&endpoints, Some(connect))
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot set up the etcd client for {desc}: {e}"))
            })?;
        let inner = Arc::new(Inner {
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            prefix: opts.prefix.clone(),
            endpoints: desc.clone(),
            https,
            endpoint_count: endpoints.len(),
            request_timeout: opts.request_timeout,
            progress_interval: opts.watch_progress_interval,
            compacted: AtomicI64::new(0),
            _client: client,
        });

        // Reachability check, bounded: the client connects lazily and would wait forever.
        let probe = inner.get_raw(
            inner.full(COMPACT_REV_KEY),
            GetOptions::new().with_count_only(),
        );
        match tokio::time::timeout(opts.connect_timeout, probe).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(match e {
                    // At start nothing retries: the caller gives up.
                    Failure::Other(StoreError::Unavailable(m)) => {
                        StoreError::Unavailable(m.replacen("; the server retries", "", 1))
                    }
                    Failure::Other(e) => StoreError::Unavailable(format!(
                        "etcd at {desc} answered with an error: {e}"
                    )),
                    Failure::Compacted | Failure::Future => StoreError::Unavailable(format!(
                        "etcd at {desc} answered a read of the current revision with a \
                         revision error"
                    )),
                });
            }
            Err(_) => {
                let why = diagnose(&endpoints, opts.connect_timeout).await;
                return Err(StoreError::Unavailable(format!(
                    "etcd at {desc} did not answer within {:?} ({why}); check that etcd is \
                     running and listening on that address{}",
                    opts.connect_timeout,
                    if https {
                        ", that the CA file signed its serving certificate and, if it requires \
                         client certificates, that the client certificate and key are given"
                    } else {
                        ", and that it serves plain http (use https:// for a TLS etcd)"
                    }
                )));
            }
        }

        let compactor = (!opts.compaction_interval.is_zero()).then(|| {
            let inner = inner.clone();
            let every = opts.compaction_interval;
            tokio::spawn(async move {
                let (mut version, mut rev) = (0, 0);
                loop {
                    tokio::time::sleep(every).await;
                    let (v, r, res) = inner.compact_tick(version, rev).await;
                    (version, rev) = (v, r);
                    if let Err(e) = res {
                        tracing::warn!(error = %e, "etcd: automatic compaction failed");
                    }
                }
            })
        });
        Ok(EtcdStore { inner, compactor })
    }
}

/// Why the endpoints do not answer, as far as a TCP connection tells.
async fn diagnose(endpoints: &[String], timeout: Duration) -> String {
    let mut out = Vec::new();
    for e in endpoints {
        let hostport = e
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let res = tokio::time::timeout(
            timeout.min(Duration::from_secs(2)),
            tokio::net::TcpStream::connect(hostport.as_str()),
        )
        .await;
        out.push(match res {
            Ok(Ok(_)) => format!("{hostport}: TCP connection accepted, but no etcd answer"),
            Ok(Err(err)) => format!("{hostport}: {err}"),
            Err(_) => format!("{hostport}: TCP connection timed out"),
        });
    }
    out.join("; ")
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let s = &self.inner;
        let resp = s
            .get_raw(s.full(key), GetOptions::new())
            .await
            .map_err(|e| s.error(e))?;
        Ok(resp.kvs().first().map(|kv| s.kv(kv)))
    }

    async fn list(&self, opts: ListOptions<'_>) -> Result<ListPage> {
        let s = &self.inner;
        let prefix = s.full(opts.prefix);
        let end = range_end(&prefix);
        let start = match opts.start_after {
            Some(after) => {
                let mut k = s.full(after);
                k.push(0);
                k.max(prefix)
            }
            None => prefix,
        };
        let mut get = GetOptions::new().with_range(end);
        if opts.revision > 0 {
            get = get.with_revision(opts.revision);
        }
        if opts.limit > 0 {
            get = get.with_limit(opts.limit as i64);
        }
        let resp = match s.get_raw(start, get).await {
            Ok(r) => r,
            Err(e) => {
                return Err(match e {
                    Failure::Compacted => s.compacted_error(opts.revision).await,
                    Failure::Future => s.future_error(opts.revision).await,
                    Failure::Other(e) => e,
                })
            }
        };
        let revision = if opts.revision > 0 {
            opts.revision
        } else {
            header_revision(resp.header())
        };
        let items: Vec<KeyValue> = resp.kvs().iter().map(|kv| s.kv(kv)).collect();
        let remaining = if resp.more() {
            (resp.count().max(0) as u64).saturating_sub(items.len() as u64)
        } else {
            0
        };
        Ok(ListPage {
            items,
            revision,
            more: resp.more(),
            remaining,
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let s = &self.inner;
        let key = s.full(prefix);
        let end = range_end(&key);
        let resp = s
            .get_raw(key, GetOptions::new().with_range(end).with_count_only())
            .await
            .map_err(|e| s.error(e))?;
        Ok(resp.count().max(0) as u64)
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let s = &self.inner;
        let k = s.full(key);
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value.clone(), None)]);
        let resp = s.txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let rev = header_revision(resp.header());
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: rev,
            mod_revision: rev,
        })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        let s = &self.inner;
        let k = s.full(key);
        let put = TxnOp::put(
            k.clone(),
            value.clone(),
            Some(PutOptions::new().with_prev_key()),
        );
        let resp = s.txn(conditional(&k, expected, put)).await?;
        let ops = resp.op_responses();
        if !resp.succeeded() {
            return Err(refusal(key, expected, &ops));
        }
        let create_revision = ops
            .iter()
            .find_map(|r| match r {
                TxnOpResponse::Put(p) => p.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            })
            .ok_or_else(|| StoreError::Internal("etcd: update answered without prev_kv".into()))?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision,
            mod_revision: header_revision(resp.header()),
        })
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<KeyValue> {
        let s = &self.inner;
        let k = s.full(key);
        let del = TxnOp::delete(k.clone(), Some(DeleteOptions::new().with_prev_key()));
        let resp = s.txn(conditional(&k, expected, del)).await?;
        let ops = resp.op_responses();
        if !resp.succeeded() {
            return Err(refusal(key, expected, &ops));
        }
        let prev = ops
            .iter()
            .find_map(|r| match r {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(|kv| s.kv(kv)),
                _ => None,
            })
            .ok_or_else(|| StoreError::Internal("etcd: delete answered without prev_kv".into()))?;
        Ok(KeyValue {
            mod_revision: header_revision(resp.header()),
            ..prev
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let s = self.inner.clone();
        // As the SQLite store: a start older than the compacted revision fails right here.
        if s.is_compacted(after).await? {
            return Err(s.compacted_error(after).await);
        }
        let key = s.full(prefix);
        let opts = WatchOptions::new()
            .with_range(range_end(&key))
            .with_start_revision(after + 1)
            .with_prev_key()
            .with_progress_notify();
        let client = s.watch.clone();
        let mut stream = s
            .call(|| {
                let mut client = client.clone();
                let (key, opts) = (key.clone(), opts.clone());
                async move {
                    let mut stream = client.watch(key, Some(opts)).await?;
                    // The first answer acknowledges the creation (or refuses it).
                    let created = stream.message().await?;
                    Ok((stream, created))
                }
            })
            .await
            .map_err(|e| s.error(e))
            .and_then(|(stream, created)| match created {
                Some(r) if r.created() && !r.canceled() => Ok(stream),
                Some(r) if r.compact_revision() > 0 => Err(StoreError::Compacted {
                    requested: after,
                    compacted: s.note_compacted(r.compact_revision()),
                }),
                Some(r) => Err(StoreError::Internal(format!(
                    "etcd refused the watch: {}",
                    r.cancel_reason()
                ))),
                None => Err(s.unreachable("the watch stream closed")),
            })?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event>>(256);
        tokio::spawn(async move {
            let mut last = after;
            let mut asked = false;
            loop {
                let wait = if asked {
                    s.request_timeout
                } else {
                    s.progress_interval
                };
                let msg = tokio::select! {
                    _ = tx.closed() => return,
                    m = tokio::time::timeout(wait, stream.message()) => m,
                };
                let resp = match msg {
                    Err(_) if !asked => {
                        // Silence: ask for a progress report, which etcd answers at once.
                        asked = true;
                        if let Err(e) = stream.request_progress().await {
                            let _ = tx.send(Err(s.error(s.classify(e)))).await;
                            return;
                        }
                        continue;
                    }
                    Err(_) => {
                        let err = s.unreachable(format!(
                            "the watch got no answer within {:?}",
                            s.request_timeout
                        ));
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(s.error(s.classify(e)))).await;
                        return;
                    }
                    Ok(Ok(None)) => {
                        let _ = tx.send(Err(s.unreachable("etcd closed the watch"))).await;
                        return;
                    }
                    Ok(Ok(Some(r))) => r,
                };
                asked = false;
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let prev = ev.prev_kv().map(|p| s.kv(p));
                    let event = match ev.event_type() {
                        etcd_client::EventType::Put => Event {
                            kind: EventKind::Put,
                            kv: s.kv(kv),
                            prev,
                        },
                        etcd_client::EventType::Delete => Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key: s.strip(kv.key()),
                                value: prev.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                                create_revision: prev.as_ref().map_or(0, |p| p.create_revision),
                                mod_revision: kv.mod_revision(),
                            },
                            prev,
                        },
                    };
                    if event.revision() <= last {
                        continue;
                    }
                    last = event.revision();
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if resp.canceled() {
                    let err = if resp.compact_revision() > 0 {
                        StoreError::Compacted {
                            requested: last,
                            compacted: s.note_compacted(resp.compact_revision()),
                        }
                    } else {
                        s.unreachable(format!(
                            "etcd canceled the watch ({})",
                            resp.cancel_reason()
                        ))
                    };
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            }
        });
        let mut rx = rx;
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let s = &self.inner;
        let known = s.compacted.load(Ordering::Acquire);
        if s.is_compacted(known).await? {
            return Ok(s.learn_compacted(known).await);
        }
        Ok(known)
    }
}

/// A transaction that runs `op` if `key` is at `expected` (any revision when 0, but present),
/// and otherwise reads the key to tell why not.
fn conditional(key: &[u8], expected: Revision, op: TxnOp) -> Txn {
    let cmp = if expected == 0 {
        Compare::create_revision(key.to_vec(), CompareOp::Greater, 0)
    } else {
        Compare::mod_revision(key.to_vec(), CompareOp::Equal, expected)
    };
    Txn::new().when([cmp]).and_then([op]).or_else([TxnOp::get(
        key.to_vec(),
        Some(GetOptions::new().with_keys_only()),
    )])
}

/// The error of a refused conditional write: absent key, or another revision.
fn refusal(key: &str, expected: Revision, ops: &[TxnOpResponse]) -> StoreError {
    let current = ops.iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
        _ => None,
    });
    match current {
        None => StoreError::NotFound(key.to_string()),
        Some(current) => StoreError::Conflict {
            key: key.to_string(),
            expected,
            current,
        },
    }
}
