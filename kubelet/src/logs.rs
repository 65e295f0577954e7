//! The CRI log format and the `/containerLogs` options, pure (upstream's
//! `pkg/kubelet/kuberuntime/logs`). A CRI log line is
//! `<RFC3339Nano time> <stdout|stderr> <F|P> <message>`: `F` ends a line, `P` is a part
//! of a longer one continued by the next entry.

use k8s_openapi::jiff::Timestamp;

/// One entry of a CRI log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// As written (RFC3339Nano).
    pub timestamp: &'a str,
    pub stream: &'a str,
    /// `P`: continued by the next entry (no newline after it).
    pub partial: bool,
    pub message: &'a [u8],
}

/// Parses one line of a CRI log file (without its newline).
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let message = parts.next().unwrap_or(b"");
    if !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    // Tags are ':'-separated; the first says full or partial.
    let partial = tag.split(|b| *b == b':').next() == Some(b"P");
    Some(Entry {
        timestamp,
        stream,
        partial,
        message,
    })
}

/// The query of `GET /containerLogs/...` (upstream's `PodLogOptions`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// Only entries at or after this time (sinceSeconds or sinceTime).
    pub since: Option<Timestamp>,
}

fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "" | "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" => Ok(false),
        _ => Err(format!("invalid boolean value {v:?}")),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Options {
    /// From a URL query; `now` resolves sinceSeconds.
    pub fn from_query(query: &str, now: Timestamp) -> Result<Options, String> {
        let mut o = Options::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            let num = |what: &str| -> Result<u64, String> {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .map(|n| n as u64)
                    .ok_or_else(|| format!("{what}: {v:?} must be a non-negative integer"))
            };
            match k {
                "follow" => o.follow = boolean(&v)?,
                "previous" => o.previous = boolean(&v)?,
                "timestamps" => o.timestamps = boolean(&v)?,
                "tailLines" => o.tail_lines = Some(num("tailLines")?),
                "limitBytes" => {
                    let n = num("limitBytes")?;
                    if n == 0 {
                        return Err("limitBytes: must be greater than 0".into());
                    }
                    o.limit_bytes = Some(n)
                }
                "sinceSeconds" => {
                    let n = num("sinceSeconds")?;
                    if n == 0 {
                        return Err("sinceSeconds: must be greater than 0".into());
                    }
                    let secs = i64::try_from(n).unwrap_or(i64::MAX / 2);
                    o.since = Some(
                        now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(secs))
                            .unwrap_or(Timestamp::MIN),
                    );
                }
                "sinceTime" => {
                    o.since = Some(
                        v.parse::<Timestamp>()
                            .map_err(|e| format!("sinceTime: {v:?}: {e}"))?,
                    )
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// Where output starts so that it holds the last `n` lines of `data`.
pub fn tail_start(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    let mut seen = 0;
    // A final line without its newline counts as a line.
    let end = if data.ends_with(b"\n") {
        data.len() - 1
    } else {
        data.len()
    };
    for i in (0..end).rev() {
        if data[i] == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// Upstream's `MaxContainerTerminationMessageLogLines` and `...LogLength`.
pub const TERMINATION_LOG_LINES: u64 = 80;
pub const TERMINATION_LOG_BYTES: usize = 2048;

/// A `FallbackToLogsOnError` termination message from a CRI log file's contents
/// (upstream's `readLastStringFromContainerLogs`): the last 80 lines rendered as the
/// logs endpoint renders them (a partial last line keeps no newline), of which the last
/// 2048 bytes.
pub fn last_string(data: &[u8]) -> String {
    let data = &data[tail_start(data, TERMINATION_LOG_LINES)..];
    let mut out = Vec::new();
    let mut r = Renderer::new(Options::default());
    let used = r.chunk(data, &mut out);
    if used < data.len() {
        // A last line without its newline (still being written).
        r.line(&data[used..], &mut out);
    }
    let from = out.len().saturating_sub(TERMINATION_LOG_BYTES);
    String::from_utf8_lossy(&out[from..]).into_owned()
}

/// Turns CRI log entries into what the client reads, within the options' limits.
#[derive(Debug)]
pub struct Renderer {
    opts: Options,
    written: u64,
}

impl Renderer {
    pub fn new(opts: Options) -> Renderer {
        Renderer { opts, written: 0 }
    }

    /// Whether limitBytes has been reached: nothing more is to be written.
    pub fn done(&self) -> bool {
        self.opts.limit_bytes.is_some_and(|l| self.written >= l)
    }

    /// Appends the output for one file line to `out`.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if self.done() {
            return;
        }
        let Some(e) = parse(line) else {
            return;
        };
        if let Some(since) = self.opts.since {
            match e.timestamp.parse::<Timestamp>() {
                Ok(t) if t < since => return,
                _ => {}
            }
        }
        let start = out.len();
        if self.opts.timestamps {
            out.extend_from_slice(e.timestamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(e.message);
        if !e.partial {
            out.push(b'\n');
        }
        let mut n = (out.len() - start) as u64;
        if let Some(limit) = self.opts.limit_bytes {
            let room = limit.saturating_sub(self.written);
            if n > room {
                out.truncate(start + room as usize);
                n = room;
            }
        }
        self.written += n;
    }

    /// All complete lines of `data` (a trailing incomplete one is left; returns how much
    /// was consumed).
    pub fn chunk(&mut self, data: &[u8], out: &mut Vec<u8>) -> usize {
        let mut consumed = 0;
        while let Some(nl) = data[consumed..].iter().position(|b| *b == b'\n') {
            self.line(&data[consumed..consumed + nl], out);
            consumed += nl + 1;
        }
        consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-01-02T03:04:05.000000001Z stdout F hello from p\n\
2026-01-02T03:04:06.5Z stderr F oops\n\
2026-01-02T03:04:07Z stdout P part one \n\
2026-01-02T03:04:07.1Z stdout F and two\n\
2026-01-02T03:04:08Z stdout F last\n";

    fn render(opts: Options) -> String {
        let data = match opts.tail_lines {
            Some(n) => &LOG[tail_start(LOG, n)..],
            None => LOG,
        };
        let mut r = Renderer::new(opts);
        let mut out = Vec::new();
        assert_eq!(r.chunk(data, &mut out), data.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn termination_message_from_logs() {
        // `echo -n DONE; false`: containerd writes the unterminated line as partial.
        assert_eq!(last_string(b"2026-01-02T03:04:05Z stdout P DONE\n"), "DONE");
        assert_eq!(
            last_string(b"2026-01-02T03:04:05Z stdout F a\n2026-01-02T03:04:06Z stderr F b\n"),
            "a\nb\n"
        );
        assert_eq!(last_string(b""), "");
        // The last 80 lines, then the last 2048 bytes of them.
        let many: String = (0..100)
            .map(|i| format!("2026-01-02T03:04:05Z stdout F line{i}\n"))
            .collect();
        let got = last_string(many.as_bytes());
        assert!(
            got.starts_with("line20\n") && got.ends_with("line99\n"),
            "{got}"
        );
        let long = format!("2026-01-02T03:04:05Z stdout F {}\n", "x".repeat(5000));
        assert_eq!(last_string(long.as_bytes()).len(), TERMINATION_LOG_BYTES);
    }

    #[test]
    fn parsing() {
        let e = parse(b"2026-01-02T03:04:05Z stdout P abc def").unwrap();
        assert_eq!(
            e,
            Entry {
                timestamp: "2026-01-02T03:04:05Z",
                stream: "stdout",
                partial: true,
                message: b"abc def"
            }
        );
        assert_eq!(
            parse(b"2026-01-02T03:04:05Z stdout F").unwrap().message,
            b""
        );
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"t other F x").is_none());
    }

    #[test]
    fn options_and_output() {
        let now: Timestamp = "2026-01-02T03:04:10Z".parse().unwrap();
        let q = |s: &str| Options::from_query(s, now).unwrap();
        let cases: Vec<(Options, &str)> = vec![
            (
                Options::default(),
                "hello from p\noops\npart one and two\nlast\n",
            ),
            (q("tailLines=1"), "last\n"),
            (q("tailLines=3"), "part one and two\nlast\n"),
            (q("tailLines=0"), ""),
            (
                q("tailLines=100"),
                "hello from p\noops\npart one and two\nlast\n",
            ),
            (q("limitBytes=8"), "hello fr"),
            (q("sinceSeconds=3"), "part one and two\nlast\n"),
            (
                q("sinceTime=2026-01-02T03%3A04%3A06Z"),
                "oops\npart one and two\nlast\n",
            ),
            (
                q("timestamps=true&tailLines=1"),
                "2026-01-02T03:04:08Z last\n",
            ),
        ];
        for (opts, want) in cases {
            assert_eq!(render(opts.clone()), want, "{opts:?}");
        }
        let o = q("follow=true&previous=1&timestamps");
        assert!(o.follow && o.previous && o.timestamps);
        for bad in [
            "tailLines=-1",
            "limitBytes=0",
            "follow=maybe",
            "sinceTime=yesterday",
        ] {
            assert!(Options::from_query(bad, now).is_err(), "{bad}");
        }
        assert_eq!(tail_start(b"a\nb", 1), 2);
        assert_eq!(tail_start(b"", 3), 0);
    }
}
