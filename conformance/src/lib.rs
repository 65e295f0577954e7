//! rkube's conformance runner: upstream's conformance tests for rkube's surface, ported
//! test for test (same `testname` and `codename` as upstream's
//! `test/conformance/testdata/conformance.yaml`), run through `kube` against any cluster.
//!
//! - [`Test`]: one ported test; [`all`] is the suite, by area (`tests/<area>.rs`).
//! - [`run`]: a namespace per test (removed afterwards, also when interrupted), parallel
//!   tests up to `parallel` at once, `[Serial]` ones alone after them; progress on stderr.
//! - [`junit`] and [`Summary`]: the JUnit XML (as sonobuoy writes) and the per-area counts.

pub mod junit;
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use rand::Rng;
use regex::Regex;

/// What a test gets: a client and a namespace of its own, and for the tests that run
/// `kubectl` (as upstream's `e2ekubectl` does, with `--kubeconfig` and `--namespace`) the
/// cluster's kubeconfig (none: kubectl's own default).
#[derive(Clone)]
pub struct Ctx {
    pub client: kube::Client,
    pub ns: String,
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// One ported conformance test.
pub struct Test {
    /// Upstream's `testname`.
    pub testname: &'static str,
    /// Upstream's `codename` (the unique key; `--focus`/`--skip` match it).
    pub codename: &'static str,
    /// The area it counts under in the summary.
    pub area: &'static str,
    pub run: fn(Ctx) -> BoxFuture<'static, anyhow::Result<()>>,
    /// Its own time limit when upstream's waits add up to more than [`Options::timeout`].
    pub timeout: Option<Duration>,
}

impl Test {
    /// `[Serial]` tests run alone.
    pub fn serial(&self) -> bool {
        self.codename.contains("[Serial]")
    }
}

/// The whole ported suite.
pub fn all() -> Vec<Test> {
    tests::all()
}

/// How a test ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// One test's result.
#[derive(Clone, Debug)]
pub struct Result {
    pub testname: &'static str,
    pub codename: &'static str,
    pub area: &'static str,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// How to run.
pub struct Options {
    pub focus: Option<Regex>,
    pub skip: Option<Regex>,
    pub parallel: usize,
    /// Each test's time limit.
    pub timeout: Duration,
    /// The kubeconfig `kubectl` is given (upstream's `--kubeconfig`); none: kubectl's
    /// default (`KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            focus: None,
            skip: None,
            parallel: 2,
            timeout: Duration::from_secs(300),
            kubeconfig: None,
        }
    }
}

/// The tests `opts` selects, and the ones it leaves out (with the reason).
pub fn select(tests: Vec<Test>, opts: &Options) -> (Vec<Test>, Vec<Result>) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for t in tests {
        let why = if opts.focus.as_ref().is_some_and(|f| !f.is_match(t.codename)) {
            Some("not matched by --focus")
        } else if opts.skip.as_ref().is_some_and(|s| s.is_match(t.codename)) {
            Some("matched by --skip")
        } else {
            None
        };
        match why {
            Some(w) => skipped.push(Result {
                testname: t.testname,
                codename: t.codename,
                area: t.area,
                outcome: Outcome::Skipped(w.into()),
                duration: Duration::ZERO,
            }),
            None => run.push(t),
        }
    }
    (run, skipped)
}

/// Namespaces the runner created and has not removed yet (removed on interrupt too).
#[derive(Clone, Default)]
pub struct Namespaces(Arc<Mutex<BTreeSet<String>>>);

impl Namespaces {
    /// Deletes every namespace still listed.
    pub async fn delete_all(&self, client: &kube::Client) {
        let names: Vec<String> = self.0.lock().expect("lock").iter().cloned().collect();
        let api: Api<Namespace> = Api::all(client.clone());
        for n in names {
            let _ = api.delete(&n, &DeleteParams::default()).await;
            self.0.lock().expect("lock").remove(&n);
        }
    }
}

/// Runs `tests`: the parallel ones `opts.parallel` at a time, then the `[Serial]` ones
/// one by one. Results in the order of `tests`.
pub async fn run(
    client: kube::Client,
    tests: Vec<Test>,
    opts: &Options,
    namespaces: &Namespaces,
) -> Vec<Result> {
    let total = tests.len();
    let done = Arc::new(Mutex::new(0usize));
    let (serial, parallel): (Vec<_>, Vec<_>) =
        tests.into_iter().enumerate().partition(|(_, t)| t.serial());
    let one = |(i, t): (usize, Test)| {
        let (client, ns, done) = (client.clone(), namespaces.clone(), done.clone());
        let timeout = opts.timeout;
        let kubeconfig = opts.kubeconfig.clone();
        async move {
            let r = run_one(client, &t, timeout, kubeconfig, &ns).await;
            let n = {
                let mut d = done.lock().expect("lock");
                *d += 1;
                *d
            };
            let tag = match &r.outcome {
                Outcome::Passed => "PASS".to_string(),
                Outcome::Failed(m) => format!("FAIL: {m}"),
                Outcome::Skipped(m) => format!("SKIP: {m}"),
            };
            eprintln!(
                "[{n}/{total}] {} ({:.1} s) {tag}",
                t.codename,
                r.duration.as_secs_f64()
            );
            (i, r)
        }
    };
    let mut out: Vec<(usize, Result)> = futures::stream::iter(parallel)
        .map(one)
        .buffer_unordered(opts.parallel.max(1))
        .collect()
        .await;
    for t in serial {
        out.push(one(t).await);
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

async fn run_one(
    client: kube::Client,
    t: &Test,
    limit: Duration,
    kubeconfig: Option<std::path::PathBuf>,
    nss: &Namespaces,
) -> Result {
    let start = Instant::now();
    let result = |outcome| Result {
        testname: t.testname,
        codename: t.codename,
        area: t.area,
        outcome,
        duration: start.elapsed(),
    };
    let ns = match create_namespace(&client, t.area, nss).await {
        Ok(ns) => ns,
        Err(e) => {
            return result(Outcome::Failed(format!(
                "creating the test namespace: {e:#}"
            )))
        }
    };
    let ctx = Ctx {
        client: client.clone(),
        ns: ns.clone(),
        kubeconfig,
    };
    let limit = t.timeout.unwrap_or(limit).max(limit);
    let outcome = match tokio::time::timeout(limit, (t.run)(ctx)).await {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(e)) => Outcome::Failed(format!("{e:#}")),
        Err(_) => Outcome::Failed(format!("timed out after {limit:?}")),
    };
    let api: Api<Namespace> = Api::all(client);
    let _ = api.delete(&ns, &DeleteParams::default()).await;
    nss.0.lock().expect("lock").remove(&ns);
    result(outcome)
}

/// `n` random lower-case letters: upstream's `utilrand.String(n)`-like name suffixes.
pub fn random_lowercase(n: usize) -> String {
    (0..n)
        .map(|_| (b'a' + rand::thread_rng().gen_range(0..26)) as char)
        .collect()
}

/// A namespace `e2e-<area>-<5 random>` labelled as upstream's framework labels its own.
async fn create_namespace(
    client: &kube::Client,
    area: &str,
    nss: &Namespaces,
) -> anyhow::Result<String> {
    let slug: String = area
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = format!("e2e-{}-{}", slug.trim_matches('-'), random_lowercase(5));
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"e2e-framework": slug, "e2e-run": "rkube-conformance"}},
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    nss.0.lock().expect("lock").insert(name.clone());
    wait_for_namespace_provisioning(client, &name).await?;
    Ok(name)
}

/// Upstream's framework, after creating a test's namespace: `WaitForDefaultServiceAccountInNamespace`
/// and `WaitForKubeRootCAInNamespace` (`ServiceAccountProvisionTimeout`, 2 minutes each):
/// pods created before the account and the CA bundle exist would be refused.
async fn wait_for_namespace_provisioning(client: &kube::Client, ns: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
    use kube::runtime::wait::await_condition;
    const TIMEOUT: Duration = Duration::from_secs(120);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let exists = |o: Option<&ServiceAccount>| o.is_some();
    tokio::time::timeout(TIMEOUT, await_condition(accounts, "default", exists))
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {TIMEOUT:?} waiting for service account \"default\" in namespace {ns}"))??;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let exists = |o: Option<&ConfigMap>| o.is_some();
    tokio::time::timeout(TIMEOUT, await_condition(maps, "kube-root-ca.crt", exists))
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {TIMEOUT:?} waiting for configmap \"kube-root-ca.crt\" in namespace {ns}"))??;
    Ok(())
}

/// Counts per area: (passed, failed, skipped).
pub struct Summary(pub BTreeMap<&'static str, (usize, usize, usize)>);

impl Summary {
    pub fn of(results: &[Result]) -> Summary {
        let mut m: BTreeMap<&'static str, (usize, usize, usize)> = BTreeMap::new();
        for r in results {
            let e = m.entry(r.area).or_default();
            match r.outcome {
                Outcome::Passed => e.0 += 1,
                Outcome::Failed(_) => e.1 += 1,
                Outcome::Skipped(_) => e.2 += 1,
            }
        }
        Summary(m)
    }

    pub fn failed(&self) -> usize {
        self.0.values().map(|c| c.1).sum()
    }

    /// A table a person reads: per area, then the totals.
    pub fn render(&self) -> String {
        let mut s = String::from("area                         passed  failed  skipped\n");
        let (mut p, mut f, mut k) = (0, 0, 0);
        for (area, (a, b, c)) in &self.0 {
            s += &format!("{area:<28} {a:>6}  {b:>6}  {c:>7}\n");
            p += a;
            f += b;
            k += c;
        }
        s += &format!("{:<28} {p:>6}  {f:>6}  {k:>7}\n", "total");
        s
    }
}
