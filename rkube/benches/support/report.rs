//! The figures of a run, written as JSON and as a Markdown table.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use super::stats::round;

/// What a metric should achieve.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// value < x
    Below(f64),
    /// value ≤ x
    AtMost(f64),
    /// value ≥ x
    AtLeast(f64),
    /// value ÷ peer ≥ x
    RatioAtLeast(f64),
    /// value ÷ peer ≤ x
    RatioAtMost(f64),
}

#[derive(Clone, Debug)]
pub struct Metric {
    pub key: &'static str,
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<Target>,
    pub peer: Option<f64>,
}

impl Metric {
    pub fn new(key: &'static str, name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Metric {
            key,
            name: name.into(),
            value,
            unit,
            target: None,
            peer: None,
        }
    }

    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }

    pub fn peer(mut self, p: f64) -> Self {
        self.peer = Some(p);
        self
    }

    pub fn ratio(&self) -> Option<f64> {
        self.peer.filter(|p| *p != 0.0).map(|p| self.value / p)
    }

    pub fn met(&self) -> Option<bool> {
        let ok = match self.target? {
            Target::Below(x) => self.value < x,
            Target::AtMost(x) => self.value <= x,
            Target::AtLeast(x) => self.value >= x,
            Target::RatioAtLeast(x) => self.ratio()? >= x,
            Target::RatioAtMost(x) => self.ratio()? <= x,
        };
        Some(ok && self.value.is_finite())
    }

    fn target_text(&self) -> String {
        match self.target {
            None => "—".into(),
            Some(Target::Below(x)) => format!("< {} {}", num(x), self.unit),
            Some(Target::AtMost(x)) => format!("≤ {} {}", num(x), self.unit),
            Some(Target::AtLeast(x)) => format!("≥ {} {}", num(x), self.unit),
            Some(Target::RatioAtLeast(x)) => format!("ratio ≥ {}", num(x)),
            Some(Target::RatioAtMost(x)) => format!("ratio ≤ {}", num(x)),
        }
    }

    fn json(&self) -> Value {
        json!({
            "key": self.key,
            "name": self.name,
            "value": round(self.value),
            "unit": self.unit,
            "target": self.target_text(),
            "peer": self.peer.map(round),
            "ratio": self.ratio().map(round),
            "met": self.met(),
        })
    }
}

/// A number for the table: three significant-ish figures.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[derive(Default)]
pub struct Report {
    /// The heading of the Markdown table.
    pub title: String,
    pub metrics: Vec<Metric>,
    pub details: Map<String, Value>,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
    pub context: Map<String, Value>,
}

impl Report {
    pub fn add(&mut self, m: Metric) {
        self.metrics.push(m);
    }

    pub fn detail(&mut self, key: &str, v: Value) {
        self.details.insert(key.to_string(), v);
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    /// Keeps a phase's value, or records its failure so the other phases still run.
    pub fn keep<T>(&mut self, phase: &str, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = format!("{phase}: {e:#}");
                eprintln!("FAILED {msg}");
                self.failures.push(msg);
                None
            }
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "context": self.context,
            "metrics": self.metrics.iter().map(Metric::json).collect::<Vec<_>>(),
            "details": self.details,
            "notes": self.notes,
            "failures": self.failures,
        })
    }

    pub fn markdown(&self) -> String {
        let mut md = format!("# {}\n\n", self.title);
        let ctx = |k: &str| {
            self.context
                .get(k)
                .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()))
                .unwrap_or_default()
        };
        // A benchmark that measures something else than the API says so in `transport`.
        let transport = self
            .context
            .get("transport")
            .and_then(Value::as_str)
            .unwrap_or("loopback HTTPS");
        let _ = writeln!(
            md,
            "Run {} (commit {}), {} cores, release build, {transport}; the measurements took {} s; \
             1-minute load average at the start {} (other work on the machine shares the cores).\n",
            ctx("started_utc"),
            ctx("commit"),
            ctx("cores"),
            ctx("duration_s"),
            ctx("loadavg_1m_at_start"),
        );
        md.push_str("| metric | value | target | peer | ratio | met |\n");
        md.push_str("|---|---|---|---|---|---|\n");
        for m in &self.metrics {
            let _ = writeln!(
                md,
                "| {} | {} {} | {} | {} | {} | {} |",
                m.name,
                num(m.value),
                m.unit,
                m.target_text(),
                m.peer.map(num).unwrap_or_else(|| "—".into()),
                m.ratio().map(num).unwrap_or_else(|| "—".into()),
                match m.met() {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "—",
                },
            );
        }
        if !self.notes.is_empty() {
            md.push_str("\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        if !self.failures.is_empty() {
            md.push_str("\nFailed phases:\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {f}");
            }
        }
        md
    }

    /// Writes `<name>.json` and `<name>.md` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(&self.json())?;
        std::fs::write(dir.join(format!("{name}.json")), json + "\n")?;
        std::fs::write(dir.join(format!("{name}.md")), self.markdown())?;
        Ok(())
    }
}
