//! The JUnit XML of a run, in the shape sonobuoy's e2e plugin reports (one testsuite,
//! a testcase per conformance test named by its codename).

use crate::{Outcome, Result};

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The XML document.
pub fn render(results: &[Result]) -> String {
    let failures = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .count();
    let skipped = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skipped(_)))
        .count();
    let time: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s += &format!(
        "<testsuites tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
        results.len()
    );
    s += &format!(
        "  <testsuite name=\"Kubernetes e2e suite (rkube conformance)\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
        results.len()
    );
    for r in results {
        s += &format!(
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
            escape(r.codename),
            escape(r.area),
            r.duration.as_secs_f64()
        );
        match &r.outcome {
            Outcome::Passed => {}
            Outcome::Failed(m) => {
                let first = m.lines().next().unwrap_or_default();
                s += &format!(
                    "\n      <failure type=\"Failure\" message=\"{}\">{}</failure>\n    ",
                    escape(first),
                    escape(m)
                );
            }
            Outcome::Skipped(m) => {
                s += &format!(
                    "\n      <skipped message=\"{}\"></skipped>\n    ",
                    escape(m)
                );
            }
        }
        s += "</testcase>\n";
    }
    s += "  </testsuite>\n</testsuites>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_testcase_per_result_with_failures_and_skips() {
        let r = |codename, outcome| Result {
            testname: "t",
            codename,
            area: "ConfigMaps",
            outcome,
            duration: Duration::from_millis(1500),
        };
        let xml = render(&[
            r("[sig-node] a <b> [Conformance]", Outcome::Passed),
            r("c", Outcome::Failed("expected 1\ngot \"2\"".into())),
            r("d", Outcome::Skipped("matched by --skip".into())),
        ]);
        assert!(
            xml.contains("<testsuites tests=\"3\" failures=\"1\" skipped=\"1\" time=\"4.500\">"),
            "{xml}"
        );
        assert!(xml.contains("<testcase name=\"[sig-node] a &lt;b&gt; [Conformance]\" classname=\"ConfigMaps\" time=\"1.500\"></testcase>"), "{xml}");
        assert!(xml.contains("<failure type=\"Failure\" message=\"expected 1\">expected 1\ngot &quot;2&quot;</failure>"), "{xml}");
        assert!(
            xml.contains("<skipped message=\"matched by --skip\"></skipped>"),
            "{xml}"
        );
    }
}
