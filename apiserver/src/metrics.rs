//! `/metrics` in Prometheus text format, with upstream's request metric names and labels.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use http::Method;

use crate::request::Route;

/// Labels of one request: verb, group, version, resource, subresource, scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels {
    verb: &'static str,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
}

const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

#[derive(Default)]
struct Series {
    count_by_code: BTreeMap<u16, u64>,
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<Labels, Series>>,
}

/// The labels upstream would give a request.
pub fn labels(method: &Method, route: &Route) -> Labels {
    let (group, version, resource, subresource, scope, has_name, watch) = match route {
        Route::Object(t) => (
            t.res.group.to_string(),
            t.res.version.to_string(),
            t.res.plural.to_string(),
            t.sub.clone().unwrap_or_default(),
            if t.name.is_some() {
                "resource"
            } else if t.namespace.is_some() {
                "namespace"
            } else {
                "cluster"
            },
            t.name.is_some(),
            t.watch_path,
        ),
        _ => (
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            "",
            false,
            false,
        ),
    };
    let verb = match *method {
        Method::GET if watch => "WATCH",
        Method::GET if has_name || resource.is_empty() => "GET",
        Method::GET => "LIST",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE if has_name => "DELETE",
        Method::DELETE => "DELETECOLLECTION",
        _ => "OTHER",
    };
    Labels {
        verb,
        group,
        version,
        resource,
        subresource,
        scope,
    }
}

impl Metrics {
    pub fn observe(&self, l: Labels, code: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut m = self.series.lock().unwrap();
        let s = m.entry(l).or_default();
        if s.buckets.is_empty() {
            s.buckets = vec![0; BUCKETS.len()];
        }
        *s.count_by_code.entry(code).or_default() += 1;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
        s.sum += secs;
        s.count += 1;
    }

    pub fn render(&self) -> String {
        let m = self.series.lock().unwrap();
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        let base = |l: &Labels| {
            format!(
                "component=\"apiserver\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"",
                l.group, l.resource, l.scope, l.subresource, l.verb, l.version
            )
        };
        for (l, s) in m.iter() {
            for (code, n) in &s.count_by_code {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{code=\"{code}\",{},dry_run=\"\"}} {n}",
                    base(l)
                );
            }
        }
        out.push_str("# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for (l, s) in m.iter() {
            let b = base(l);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{b},dry_run=\"\",le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{b},dry_run=\"\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{b},dry_run=\"\"}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{b},dry_run=\"\"}} {}",
                s.count
            );
        }
        out
    }
}
