//! What every benchmark binary does around its phases: find the output folder, record when,
//! where and on what commit it ran, and write its report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;
use serde_json::json;

use super::progress::{elapsed, phase};
use super::report::Report;
use super::usage::loadavg;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// `--output DIR` (default `bench/results`; relative paths are taken from the workspace
/// root). cargo bench also passes `--bench` and any filter: those are ignored.
pub fn output_dir() -> Result<PathBuf> {
    let mut output = PathBuf::from("bench/results");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--output" {
            output = it
                .next()
                .ok_or_else(|| anyhow::anyhow!("--output needs a folder"))?
                .into();
        }
    }
    if output.is_relative() {
        output = workspace_root().join(output);
    }
    Ok(output)
}

/// Records when, where and on what commit the run happened.
pub fn context(report: &mut Report) {
    elapsed();
    let git = |a: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(workspace_root())
            .args(a)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let c = &mut report.context;
    c.insert("started_utc".into(), json!(utc(now)));
    c.insert(
        "commit".into(),
        json!(format!("{commit}{}", if dirty { "+changes" } else { "" })),
    );
    c.insert("cores".into(), json!(cores));
    c.insert("loadavg_1m_at_start".into(), json!(loadavg()));
}

/// A benchmark's `main`: a report titled `title` with the run's context, the output folder
/// from the command line, `run` on a tokio runtime, its figures turned into metrics when it
/// succeeded (a failure is kept in the report), then the files written as `name`.
pub fn main<R>(
    name: &str,
    title: String,
    run: impl AsyncFnOnce(&mut Report) -> Result<R>,
    metrics: impl FnOnce(&mut Report, &R),
) -> ExitCode {
    let mut report = Report {
        title,
        ..Report::default()
    };
    context(&mut report);
    let output = match output_dir() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let r = rt.block_on(run(&mut report));
    if let Some(r) = report.keep(name, r) {
        metrics(&mut report, &r);
    }
    drop(rt);
    finish(&mut report, &output, name)
}

/// Writes `<name>.json` and `<name>.md` into `output`, prints the table; fails the process
/// when a phase failed.
pub fn finish(report: &mut Report, output: &Path, name: &str) -> ExitCode {
    report
        .context
        .insert("duration_s".into(), json!(elapsed().round()));
    phase(&format!("writing {}/{name}.{{json,md}}", output.display()));
    if let Err(e) = report.write(output, name) {
        eprintln!("cannot write the results: {e:#}");
        return ExitCode::FAILURE;
    }
    println!("\n{}", report.markdown());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds (days to civil date, Howard Hinnant's method).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}
