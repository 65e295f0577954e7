//! `conformance`: runs rkube's ported conformance suite against the cluster of
//! `--kubeconfig` (else `KUBECONFIG`, else `~/.kube/config`), writes a JUnit XML and
//! prints a summary. Exits non-zero when a test failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use conformance::{Namespaces, Options, Outcome, Summary};
use regex::Regex;

#[derive(Parser, Debug)]
#[command(about = "Upstream's conformance tests for rkube's surface, against any cluster")]
struct Args {
    /// Kubeconfig of the cluster under test.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Run only tests whose codename matches (ginkgo's --focus).
    #[arg(long)]
    focus: Option<Regex>,
    /// Leave out tests whose codename matches (ginkgo's --skip).
    #[arg(long)]
    skip: Option<Regex>,
    /// Tests run at once (the [Serial] ones always alone).
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// Where to write the JUnit XML.
    #[arg(long, default_value = "conformance/results/junit.xml")]
    junit: PathBuf,
    /// List the selected tests and run nothing.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        focus: args.focus.clone(),
        skip: args.skip.clone(),
        parallel: args.parallel,
        kubeconfig: args.kubeconfig.clone(),
        ..Options::default()
    };
    let (tests, skipped) = conformance::select(conformance::all(), &opts);
    if args.list {
        for t in &tests {
            println!("{}\t{}", t.area, t.codename);
        }
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async move {
        let client = match client(args.kubeconfig.as_ref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("conformance: cannot reach the cluster: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "conformance: {} tests selected ({} left out)",
            tests.len(),
            skipped.len()
        );
        let namespaces = Namespaces::default();
        // Ctrl-C: remove the test namespaces before leaving.
        let (nss, c2) = (namespaces.clone(), client.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("conformance: interrupted, removing the test namespaces");
                nss.delete_all(&c2).await;
                std::process::exit(130);
            }
        });
        let mut results = conformance::run(client, tests, &opts, &namespaces).await;
        results.extend(skipped);
        if let Some(dir) = args.junit.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&args.junit, conformance::junit::render(&results)) {
            eprintln!("conformance: cannot write {}: {e}", args.junit.display());
        }
        for r in &results {
            if let Outcome::Failed(m) = &r.outcome {
                eprintln!("\nFAILED {}\n  {}", r.codename, m.replace('\n', "\n  "));
            }
        }
        let summary = Summary::of(&results);
        eprintln!("\n{}", summary.render());
        eprintln!("JUnit: {}", args.junit.display());
        if summary.failed() > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let cfg = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(cfg)?)
}
