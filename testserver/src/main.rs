//! rkube's test server (the role of upstream's agnhost image): one static binary with
//! agnhost's subcommands and flags, so pod specs written for agnhost run unchanged with
//! `image: docker.io/rkube/testserver:1.0`.
//!
//! - `nc`, when called by that name (the image's `/usr/bin/nc`): netcat-openbsd's
//!   `nc [-vztu] [-w SEC] HOST PORT` (module `nc`).
//! - `dig`, `getent` (when called by those names: the image's `/usr/bin/dig`,
//!   `/usr/bin/getent`), `dns-suffix`, `dns-server-list`: module `dnsutil`.
//! - `netexec [--http-port 8080] [--udp-port 8081]`: HTTP `/` (the time), `/hostname`,
//!   `/echo?msg=`, `/clientip`, `/exit?code=N`, `/healthz`, `/header?key=`; UDP answers
//!   `hostname`, `echo X`, `clientip`.
//! - `serve-hostname [--port 9376] [--http] [--tcp] [--udp] [--close]`: the hostname.
//! - `porter [--json-response]`: `SERVE_{PORT,TCP_PORT,TLS_PORT,UDP_PORT}_N` (module
//!   `porter`).
//! - `pause`: prints `Paused`, sleeps until SIGINT or SIGTERM, then exits 0.
//! - `logs-generator [--log-lines-total N] [--run-duration D]`: N lines evenly over D
//!   (Go durations: `20s`, `1m`), as agnhost's: klog-style on stderr,
//!   `<id> <GET|POST|PUT> /api/v1/namespaces/<kube-system|default|ns>/pods/<name> <status>`.
//! - `entrypoint-tester`: prints its whole argv as Go prints a slice (`[/agnhost a b]`).
//! - `etc-hosts`: prints `/etc/hosts`.
//! - `nettest [--port 8080]`: HTTP `/write` (POST `{"Source": S}` counts S in
//!   `Received`), `/read` (the state as JSON), `/status`, `/quit`; agnhost's peer
//!   discovery through the API (`--service`, `--peers`) is not done.
//! - `test-webserver [--port 80]`: the files of `/` over HTTP (a directory: its listing).
//! - `liveness`: HTTP on 8080; `/healthz` is 200 `ok` for 10 s after the start, then 500;
//!   `/started` (time since the start), `/redirect?loc=` (302 to `loc`).
//! - `grpc-health-checking [--port 5000] [--http-port 8080] [--service S]
//!   [--delay-unhealthy-sec -1]`: `grpc.health.v1.Health/Check` over plain-text HTTP/2
//!   (SERVING, NOT_SERVING after the delay or `/make-not-serving`, NOT_FOUND for another
//!   service); HTTP `/make-serving`, `/make-not-serving`. Every call on the gRPC port is
//!   answered as a Check (the request's path is not decoded).
//! - `mounttest [--new_file_0644|0666|0660|0777 P] [--file_mode P] [--file_perm P]
//!   [--file_owner P] [--file_content P] [--file_content_in_loop P --retry_time 180
//!   --break_on_expected_content true] [--fs_type P]`: agnhost's, in its order and words.
//!
//! The image, as agnhost's: `/agnhost` (entrypoint, default args `pause`), `/agnhost-2`
//! (for tests that override the entrypoint) and `/testserver`, all this binary.
//!
//! Std, threads, nix (statfs), hickory-proto (DNS messages) and rustls/rcgen (porter's
//! TLS) only (one thread per connection): it must build fully static.

mod dnsutil;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::exit;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod nc;
mod porter;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The image's `nc` is a link to this binary (agnhost's image has netcat-openbsd).
    let argv0 = std::env::args().next().unwrap_or_default();
    if argv0.rsplit('/').next() == Some("nc") {
        exit(nc::main(&args))
    }
    // The DNS tools (module `dnsutil`): linked as `dig`/`getent`, or subcommands.
    if let Some(code) = dnsutil::run(argv0.rsplit('/').next().unwrap_or_default(), &args) {
        exit(code)
    }
    let Some((cmd, rest)) = args.split_first() else {
        usage()
    };
    if let Some(code) = dnsutil::run(cmd, rest) {
        exit(code)
    }
    if cmd == "entrypoint-tester" {
        // Before flag parsing: its arguments are anything.
        let argv: Vec<String> = std::env::args().collect();
        println!("[{}]", argv.join(" "));
        exit(0)
    }
    exit_on_signals();
    let flags = match Flags::parse(rest) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("testserver {cmd}: {e}");
            exit(2)
        }
    };
    let r = match cmd.as_str() {
        "netexec" => netexec(&flags),
        "serve-hostname" => serve_hostname(&flags),
        "pause" => pause(),
        "logs-generator" => logs_generator(&flags),
        "etc-hosts" => etc_hosts(),
        "mounttest" => mounttest(&flags),
        "nettest" => nettest(&flags),
        "test-webserver" => test_webserver(&flags),
        "liveness" => liveness(),
        "grpc-health-checking" => grpc_health_checking(&flags),
        "porter" => porter::main(flags.0.contains_key("json-response")),
        _ => usage(),
    };
    if let Err(e) = r {
        eprintln!("testserver {cmd}: {e}");
        exit(1)
    }
}

fn usage() -> ! {
    eprintln!("usage: testserver netexec|serve-hostname|pause|logs-generator|entrypoint-tester|etc-hosts|mounttest|test-webserver|liveness|grpc-health-checking|porter [flags]");
    exit(2)
}

/// `--name value` (a value may be a negative number), `--name=value` and bare `--name`
/// (true).
struct Flags(BTreeMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut m = BTreeMap::new();
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .or_else(|| a.strip_prefix('-'))
                .ok_or_else(|| format!("unexpected argument {a:?}"))?;
            if let Some((k, v)) = name.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            } else if it
                .peek()
                .is_some_and(|n| !n.starts_with('-') || n.parse::<i64>().is_ok())
            {
                m.insert(name.to_string(), it.next().cloned().unwrap_or_default());
            } else {
                m.insert(name.to_string(), "true".to_string());
            }
        }
        Ok(Flags(m))
    }

    fn port(&self, name: &str, default: u16) -> Result<u16, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: {v:?} is not a port")),
        }
    }

    fn bool(&self, name: &str, default: bool) -> bool {
        self.0
            .get(name)
            .map_or(default, |v| matches!(v.as_str(), "true" | "1" | "t"))
    }
}

/// As agnhost (a Go binary): SIGINT/SIGTERM end the process, also as PID 1.
fn exit_on_signals() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("testserver: signals: {e}");
            return;
        }
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("testserver: signal {sig}, exiting");
            exit(0)
        }
    });
}

/// agnhost's `logs-generator`.
fn logs_generator(flags: &Flags) -> Result<(), String> {
    let total: u64 = match flags.0.get("log-lines-total") {
        None => 0,
        Some(v) => v.parse().map_err(|_| format!("--log-lines-total: {v:?}"))?,
    };
    let duration = match flags.0.get("run-duration") {
        None => Duration::ZERO,
        Some(v) => go_duration(v).ok_or_else(|| format!("--run-duration: {v:?}"))?,
    };
    if total == 0 {
        return Err("--log-lines-total must be positive".into());
    }
    let delay = duration / total as u32;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let start = std::time::Instant::now();
    for id in 0..total {
        let method = ["GET", "POST", "PUT"][rand(3) as usize];
        let ns = ["kube-system", "default", "ns"][rand(3) as usize];
        let pod: String = (0..3 + rand(2))
            .map(|_| (b'a' + rand(26) as u8) as char)
            .collect();
        let status = 200 + rand(400);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() % 86400;
        let (month, day) = month_day(now.as_secs() / 86400);
        eprintln!(
            "I{month:02}{day:02} {:02}:{:02}:{:02}.{:06} {:>7} logs_generator.go:67] {id} {method} /api/v1/namespaces/{ns}/pods/{pod} {status}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            now.subsec_micros(),
            std::process::id()
        );
        let next = delay * (id as u32 + 1);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// The (month, day) of a day since 1970-01-01 (Howard Hinnant's civil_from_days).
fn month_day(days: u64) -> (u64, u64) {
    let z = days + 719_468;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (month, day)
}

/// A Go duration of one unit (`20s`, `500ms`, `2m`, `1h`).
fn go_duration(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn pause() -> Result<(), String> {
    println!("Paused");
    loop {
        std::thread::park();
    }
}

/// Go's `os.FileMode.String()`: the type letters (`dalTLDpSugct?`), `-` when none, then
/// `rwxrwxrwx` with `-` for unset bits.
fn go_file_mode(meta: &std::fs::Metadata, perm_only: bool) -> String {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mode = meta.permissions().mode();
    let ft = meta.file_type();
    let mut s = String::new();
    if !perm_only {
        for (set, c) in [
            (ft.is_dir(), 'd'),
            (ft.is_symlink(), 'L'),
            (ft.is_block_device() || ft.is_char_device(), 'D'),
            (ft.is_fifo(), 'p'),
            (ft.is_socket(), 'S'),
            (mode & 0o4000 != 0, 'u'),
            (mode & 0o2000 != 0, 'g'),
            (ft.is_char_device(), 'c'),
            (mode & 0o1000 != 0, 't'),
        ] {
            if set {
                s.push(c);
            }
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

/// agnhost's `mounttest`: each given check in agnhost's order, exit 1 if any failed.
fn mounttest(flags: &Flags) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    const INITIAL: &str = "mount-tester new file\n";
    let path = |k: &str| flags.0.get(k).filter(|p| !p.is_empty()).cloned();
    let mut failed = false;
    if let Some(p) = path("fs_type") {
        failed |= !fs_type(&p);
    }
    let read = |p: &str| match std::fs::read(p) {
        Ok(b) => {
            println!("content of file {p:?}: {}", String::from_utf8_lossy(&b));
            true
        }
        Err(e) => {
            println!("error reading file content for {p:?}: {e}");
            false
        }
    };
    for (flag, perm) in [
        ("new_file_0644", 0o644),
        ("new_file_0666", 0o666),
        ("new_file_0660", 0o660),
        ("new_file_0777", 0o777),
    ] {
        if let Some(p) = path(flag) {
            let w = std::fs::write(&p, INITIAL)
                .and_then(|_| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(perm)));
            match w {
                Ok(()) => failed |= !read(&p),
                Err(e) => {
                    println!("error writing new file {p:?}: {e}");
                    failed = true
                }
            }
        }
    }
    for (flag, what) in [("file_mode", "mode"), ("file_perm", "perms")] {
        if let Some(p) = path(flag) {
            match std::fs::metadata(&p) {
                Ok(m) => println!(
                    "{what} of file {p:?}: {}",
                    go_file_mode(&m, flag == "file_perm")
                ),
                Err(e) => {
                    println!("error reading file {what} for {p:?}: {e}");
                    failed = true
                }
            }
        }
    }
    if let Some(p) = path("file_owner") {
        match std::fs::metadata(&p) {
            Ok(m) => {
                println!("owner UID of {p:?}: {}", m.uid());
                println!("owner GID of {p:?}: {}", m.gid());
            }
            Err(e) => {
                println!("error getting owner for {p:?}: {e}");
                failed = true
            }
        }
    }
    if let Some(p) = path("file_content") {
        failed |= !read(&p);
    }
    if let Some(p) = path("file_content_in_loop") {
        let retry = flags
            .0
            .get("retry_time")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(180);
        let break_on = flags.bool("break_on_expected_content", true);
        let start = std::time::Instant::now();
        let mut ok = false;
        while start.elapsed() < Duration::from_secs(retry) {
            match std::fs::read(&p) {
                Err(e) => {
                    println!("Error reading file {p}: {e}, retrying");
                    ok = false;
                }
                Ok(b) => {
                    ok = true;
                    let text = String::from_utf8_lossy(&b);
                    println!("content of file {p:?}: {text}");
                    if break_on {
                        if text != INITIAL {
                            print!("Unexpected content. Expected: {INITIAL}. Retrying");
                        } else {
                            break;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        failed |= !ok;
    }
    if failed {
        exit(1)
    }
    Ok(())
}

/// agnhost's mounttest `fsType`: statfs(2) of `path`; "tmpfs" for tmpfs's magic, else
/// the filesystem type's number.
fn fs_type(path: &str) -> bool {
    use nix::sys::statfs::{statfs, TMPFS_MAGIC};
    match statfs(path) {
        Ok(s) if s.filesystem_type() == TMPFS_MAGIC => println!("mount type of {path:?}: tmpfs"),
        Ok(s) => println!("mount type of {path:?}: {}", s.filesystem_type().0),
        Err(e) => {
            println!("error from statfs({path:?}): {e}");
            return false;
        }
    }
    true
}

/// agnhost's `etc-hosts`: the file and a newline (Go's `Println`).
fn etc_hosts() -> Result<(), String> {
    let hosts =
        std::fs::read_to_string("/etc/hosts").map_err(|e| format!("read /etc/hosts: {e}"))?;
    println!("{hosts}");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn listen_tcp(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind(("::", port))
        .or_else(|_| TcpListener::bind(("0.0.0.0", port)))
        .map_err(|e| format!("listen on tcp port {port}: {e}"))
}

fn listen_udp(port: u16) -> Result<UdpSocket, String> {
    UdpSocket::bind(("::", port))
        .or_else(|_| UdpSocket::bind(("0.0.0.0", port)))
        .map_err(|e| format!("listen on udp port {port}: {e}"))
}

/// A peer's address as Go prints `RemoteAddr` (v4-mapped v6 shown as v4).
fn show(peer: SocketAddr) -> String {
    match peer {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", a.port()),
            None => format!("[{}]:{}", a.ip(), a.port()),
        },
        SocketAddr::V4(a) => a.to_string(),
    }
}

// --- netexec ---------------------------------------------------------------------------

fn netexec(flags: &Flags) -> Result<(), String> {
    let http = listen_tcp(flags.port("http-port", 8080)?)?;
    // agnhost: `--udp-port -1` serves no UDP.
    let udp_port = match flags.0.get("udp-port").map(String::as_str) {
        Some("-1") => 0,
        _ => flags.port("udp-port", 8081)?,
    };
    if udp_port != 0 {
        let udp = listen_udp(udp_port)?;
        std::thread::spawn(move || udp_loop(udp, netexec_udp));
    }
    eprintln!("testserver netexec: serving");
    http_loop(http, false, netexec_http)
}

fn netexec_udp(msg: &str, peer: SocketAddr) -> Option<String> {
    // As agnhost: the request lower-cased (`hostName` is `hostname`).
    let msg = msg.trim().to_lowercase();
    let (cmd, arg) = msg.split_once(' ').unwrap_or((msg.as_str(), ""));
    match cmd {
        "hostname" => Some(hostname()),
        "echo" => Some(arg.to_string()),
        "clientip" => Some(show(peer)),
        _ => None,
    }
}

fn netexec_http(req: &Request) -> Response {
    let q = |k: &str| req.query.get(k).cloned().unwrap_or_default();
    match req.path.as_str() {
        "/" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Response::ok(format!("NOW: {}.{:09}", now.as_secs(), now.subsec_nanos()))
        }
        "/hostname" | "/hostName" => Response::ok(hostname()),
        "/echo" => {
            // As agnhost's echoHandler logs it (tests read it from the log).
            eprintln!("GET /echo?msg={}&code={}", q("msg"), q("code"));
            Response::ok(q("msg"))
        }
        "/clientip" => Response::ok(show(req.peer)),
        "/healthz" => Response::ok(String::new()),
        "/dial" => dial(&q),
        "/header" => Response::ok(
            req.headers
                .get(&q("key").to_lowercase())
                .cloned()
                .unwrap_or_default(),
        ),
        "/exit" => {
            let code = q("code");
            match code.parse::<i32>() {
                Ok(n) if (0..=127).contains(&n) => exit(n),
                _ if code.is_empty() => exit(0),
                _ => Response {
                    status: 400,
                    body: format!(
                        "argument 'code' must be an integer [0-127] or empty, got {code:?}\n"
                    ),
                    location: None,
                },
            }
        }
        _ => not_found(),
    }
}

fn not_found() -> Response {
    Response {
        status: 404,
        body: "404 page not found\n".into(),
        location: None,
    }
}

/// agnhost's `/dial?request=R&protocol=http|udp&host=H&port=P&tries=N`: asks another
/// server `tries` times (HTTP `GET /R`, or a UDP datagram `R`) and answers
/// `{"responses": [...], "errors": [...]}`. What the networking conformance tests use to
/// make one pod talk to another.
fn dial(q: &dyn Fn(&str) -> String) -> Response {
    let bad = |body: String| Response {
        status: 400,
        body,
        location: None,
    };
    let (request, protocol, host, port) = (q("request"), q("protocol"), q("host"), q("port"));
    let Ok(port) = port.parse::<u16>() else {
        return bad(format!("port {port:?} is not a valid port\n"));
    };
    let tries = match q("tries").as_str() {
        "" => 1,
        t => match t.parse::<u32>() {
            Ok(n) => n,
            Err(_) => return bad(format!("tries {t:?} is not a number\n")),
        },
    };
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let (mut responses, mut errors) = (Vec::new(), Vec::new());
    for _ in 0..tries {
        let r = match protocol.as_str() {
            "" | "http" => dial_http(&addr, &request),
            "udp" => dial_udp(&addr, &request),
            p => return bad(format!("unsupported protocol {p:?}\n")),
        };
        match r {
            Ok(resp) => responses.push(resp),
            Err(e) => errors.push(e),
        }
    }
    let list = |v: &[String]| {
        v.iter()
            .map(|s| json_string(s))
            .collect::<Vec<_>>()
            .join(",")
    };
    Response::ok(format!(
        "{{\"errors\":[{}],\"responses\":[{}]}}",
        list(&errors),
        list(&responses)
    ))
}

const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| format!("resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {addr}: no address"))
}

fn dial_http(addr: &str, request: &str) -> Result<String, String> {
    let sa = resolve(addr)?;
    let mut c = TcpStream::connect_timeout(&sa, DIAL_TIMEOUT)
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    c.set_read_timeout(Some(DIAL_TIMEOUT)).ok();
    let path = request.trim_start_matches('/');
    write!(
        c,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut all = Vec::new();
    c.read_to_end(&mut all)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&all);
    match text.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_string()),
        None => Err(format!("{addr} answered no HTTP response")),
    }
}

fn dial_udp(addr: &str, request: &str) -> Result<String, String> {
    let sa = resolve(addr)?;
    let local = if sa.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = UdpSocket::bind(local).map_err(|e| format!("udp socket: {e}"))?;
    s.set_read_timeout(Some(DIAL_TIMEOUT)).ok();
    s.send_to(request.as_bytes(), sa)
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut buf = [0u8; 2048];
    let n = s
        .recv(&mut buf)
        .map_err(|e| format!("reading from udp connection failed. err:'{e}'"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// --- nettest --------------------------------------------------------------------------

/// agnhost's `nettest` state, as `/read` gives it.
#[derive(Default)]
struct NettestState {
    received: BTreeMap<String, u64>,
    errors: Vec<String>,
}

/// The string value of `"key"` in a flat JSON object (what `/write` posts).
fn json_field(body: &str, key: &str) -> Option<String> {
    let at = body.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

/// agnhost's `nettest` web server (without contacting peers).
fn nettest(flags: &Flags) -> Result<(), String> {
    let l = listen_tcp(flags.port("port", 8080)?)?;
    let host = hostname();
    let state = std::sync::Mutex::new(NettestState::default());
    http_loop(l, false, move |req: &Request| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match req.path.as_str() {
            "/quit" => exit(0),
            "/write" => {
                match json_field(&req.body, "Source").filter(|v| !v.is_empty()) {
                    Some(src) => *s.received.entry(src).or_default() += 1,
                    None => s.errors.push(format!("{host}: Got request with no source")),
                }
                Response::ok(format!("{{\"Hostname\":{}}}\n", json_string(&host)))
            }
            "/read" => {
                let received: Vec<String> = s
                    .received
                    .iter()
                    .map(|(k, v)| format!("{}: {v}", json_string(k)))
                    .collect();
                let errors: Vec<String> = s.errors.iter().map(|e| json_string(e)).collect();
                Response::ok(format!(
                    "{{\n\t\"Hostname\": {},\n\t\"Sent\": null,\n\t\"Received\": {},\n\t\"Errors\": {},\n\t\"Log\": null,\n\t\"StillContactingPeers\": false\n}}",
                    json_string(&host),
                    if received.is_empty() { "null".to_string() } else { format!("{{{}}}", received.join(", ")) },
                    if errors.is_empty() { "null".to_string() } else { format!("[{}]", errors.join(", ")) },
                ))
            }
            "/status" => Response::ok("fail".into()),
            _ => not_found(),
        }
    })
}

// --- test-webserver, liveness ----------------------------------------------------------

/// agnhost's `test-webserver`: a file server of `/` on `--port` (80).
fn test_webserver(flags: &Flags) -> Result<(), String> {
    let l = listen_tcp(flags.port("port", 80)?)?;
    http_loop(l, false, |req: &Request| {
        let path = std::path::Path::new("/").join(req.path.trim_start_matches('/'));
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                let mut names: Vec<String> = std::fs::read_dir(&path)
                    .map(|d| {
                        d.flatten()
                            .map(|e| {
                                let n = e.file_name().to_string_lossy().into_owned();
                                if e.path().is_dir() {
                                    n + "/"
                                } else {
                                    n
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                let mut body = "<pre>\n".to_string();
                for n in names {
                    body += &format!("<a href=\"{n}\">{n}</a>\n");
                }
                Response::ok(body + "</pre>\n")
            }
            Ok(_) => match std::fs::read(&path) {
                Ok(b) => Response::ok(String::from_utf8_lossy(&b).into_owned()),
                Err(_) => not_found(),
            },
            Err(_) => not_found(),
        }
    })
}

/// agnhost's `liveness`: healthy for 10 seconds, then not (HTTP on 8080).
fn liveness() -> Result<(), String> {
    let started = std::time::Instant::now();
    let l = listen_tcp(8080)?;
    http_loop(l, false, move |req: &Request| {
        let since = started.elapsed();
        match req.path.as_str() {
            "/started" => Response::ok(format!("{since:?}")),
            "/healthz" if since.as_secs_f64() > 10.0 => Response {
                status: 500,
                body: format!("error: {}", since.as_secs_f64()),
                location: None,
            },
            "/healthz" => Response::ok("ok".into()),
            "/redirect" => {
                let loc = req.query.get("loc").cloned().unwrap_or_default();
                Response {
                    status: 302,
                    body: format!("<a href=\"{loc}\">Found</a>.\n\n"),
                    location: Some(loc),
                }
            }
            _ => not_found(),
        }
    })
}

// --- grpc-health-checking -------------------------------------------------------------

/// agnhost's `grpc-health-checking`.
fn grpc_health_checking(flags: &Flags) -> Result<(), String> {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;
    let started = std::time::Instant::now();
    // 0: not forced, 1: forced unhealthy, 2: forced healthy.
    let force = Arc::new(AtomicU8::new(0));
    let delay: i64 = flags
        .0
        .get("delay-unhealthy-sec")
        .map(|v| {
            v.parse()
                .map_err(|_| format!("--delay-unhealthy-sec: {v:?}"))
        })
        .transpose()?
        .unwrap_or(-1);
    let service = flags.0.get("service").cloned().unwrap_or_default();
    let http = listen_tcp(flags.port("http-port", 8080)?)?;
    let f = force.clone();
    std::thread::spawn(move || {
        http_loop(http, false, move |req: &Request| match req.path.as_str() {
            "/make-not-serving" => {
                eprintln!("Mark as unhealthy");
                f.store(1, Ordering::SeqCst);
                Response::ok(format!("{:?}", started.elapsed()))
            }
            "/make-serving" => {
                eprintln!("Mark as healthy");
                f.store(2, Ordering::SeqCst);
                Response::ok(format!("{:?}", started.elapsed()))
            }
            _ => not_found(),
        })
    });
    let port = flags.port("port", 5000)?;
    let l = listen_tcp(port)?;
    eprintln!("gRPC server starting to listen on :{port}");
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        let (force, service) = (force.clone(), service.clone());
        std::thread::spawn(move || {
            let check = |asked: &str| -> Result<u8, (u8, &'static str)> {
                eprintln!("Serving the Check request for health check");
                if asked != service {
                    return Err((5, "unknown service"));
                }
                let unhealthy = match force.load(Ordering::SeqCst) {
                    1 => true,
                    2 => false,
                    _ => delay >= 0 && started.elapsed().as_secs_f64() >= delay as f64,
                };
                Ok(if unhealthy { 2 } else { 1 })
            };
            let _ = serve_h2(conn, &check);
        });
    }
    Ok(())
}

/// An HTTP/2 frame header and payload.
fn h2_frame(
    out: &mut impl Write,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> std::io::Result<()> {
    let len = payload.len() as u32;
    let mut h = [0u8; 9];
    h[..3].copy_from_slice(&len.to_be_bytes()[1..]);
    h[3] = kind;
    h[4] = flags;
    h[5..].copy_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.write_all(&h)?;
    out.write_all(payload)
}

/// An HPACK "literal header field without indexing, new name" (no Huffman).
fn hpack_literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

/// A health check of a service name: a serving status, or a gRPC error code and message.
type HealthCheck<'a> = dyn Fn(&str) -> Result<u8, (u8, &'static str)> + 'a;

/// A minimal plain-text HTTP/2 server of unary gRPC health checks: each stream's request
/// message (`HealthCheckRequest`, its `service`) is answered by `check`: a serving status
/// (1 SERVING, 2 NOT_SERVING) or a gRPC error code and message.
fn serve_h2(conn: TcpStream, check: &HealthCheck<'_>) -> std::io::Result<()> {
    const DATA: u8 = 0;
    const HEADERS: u8 = 1;
    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    const GOAWAY: u8 = 7;
    const WINDOW_UPDATE: u8 = 8;
    const END_STREAM: u8 = 1;
    const END_HEADERS: u8 = 4;
    const ACK: u8 = 1;
    let mut out = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    let mut preface = [0u8; 24];
    r.read_exact(&mut preface)?;
    if &preface != b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
        return Ok(());
    }
    h2_frame(&mut out, SETTINGS, 0, 0, &[])?;
    let mut bodies: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    loop {
        let mut h = [0u8; 9];
        r.read_exact(&mut h)?;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload)?;
        let mut ended = false;
        match kind {
            SETTINGS if flags & ACK == 0 => h2_frame(&mut out, SETTINGS, ACK, 0, &[])?,
            PING if flags & ACK == 0 => h2_frame(&mut out, PING, ACK, 0, &payload)?,
            GOAWAY => return Ok(()),
            HEADERS => {
                bodies.entry(stream).or_default();
                ended = flags & END_STREAM != 0;
            }
            DATA => {
                let mut data = &payload[..];
                if flags & 0x8 != 0 {
                    // PADDED
                    let pad = *data.first().unwrap_or(&0) as usize;
                    data = &data[1..data.len().saturating_sub(pad)];
                }
                bodies.entry(stream).or_default().extend_from_slice(data);
                if len > 0 {
                    let inc = (len as u32).to_be_bytes();
                    h2_frame(&mut out, WINDOW_UPDATE, 0, 0, &inc)?;
                    h2_frame(&mut out, WINDOW_UPDATE, 0, stream, &inc)?;
                }
                ended = flags & END_STREAM != 0;
            }
            _ => {}
        }
        if !ended {
            continue;
        }
        let body = bodies.remove(&stream).unwrap_or_default();
        // gRPC framing: flag, 4-byte length, then HealthCheckRequest { string service = 1 }.
        let msg = body.get(5..).unwrap_or(&[]);
        let mut service = String::new();
        let mut i = 0;
        while i < msg.len() {
            let tag = msg[i];
            i += 1;
            let mut n = 0usize;
            let mut shift = 0;
            while i < msg.len() {
                let b = msg[i];
                i += 1;
                n |= ((b & 0x7f) as usize) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            if tag & 7 != 2 {
                continue;
            }
            let end = (i + n).min(msg.len());
            if tag >> 3 == 1 {
                service = String::from_utf8_lossy(&msg[i..end]).into_owned();
            }
            i = end;
        }
        let mut head = vec![0x88]; // :status 200
        hpack_literal(&mut head, "content-type", "application/grpc");
        match check(&service) {
            Ok(status) => {
                h2_frame(&mut out, HEADERS, END_HEADERS, stream, &head)?;
                h2_frame(&mut out, DATA, 0, stream, &[0, 0, 0, 0, 2, 0x08, status])?;
                let mut trailers = Vec::new();
                hpack_literal(&mut trailers, "grpc-status", "0");
                h2_frame(
                    &mut out,
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    stream,
                    &trailers,
                )?;
            }
            Err((code, message)) => {
                hpack_literal(&mut head, "grpc-status", &code.to_string());
                hpack_literal(&mut head, "grpc-message", message);
                h2_frame(&mut out, HEADERS, END_HEADERS | END_STREAM, stream, &head)?;
            }
        }
        out.flush()?;
    }
}

// --- serve-hostname --------------------------------------------------------------------

fn serve_hostname(flags: &Flags) -> Result<(), String> {
    let port = flags.port("port", 9376)?;
    let (tcp, udp) = (flags.bool("tcp", false), flags.bool("udp", false));
    let http = flags.bool("http", !(tcp || udp));
    if http && (tcp || udp) {
        return Err("--http cannot be given with --tcp or --udp".into());
    }
    if !(http || tcp || udp) {
        return Err("nothing to serve: give --http, --tcp or --udp".into());
    }
    let name = hostname();
    eprintln!("testserver serve-hostname: serving on port {port}");
    if udp {
        let sock = listen_udp(port)?;
        let n = name.clone();
        std::thread::spawn(move || udp_loop(sock, move |_, _| Some(n.clone())));
    }
    if tcp {
        let l = listen_tcp(port)?;
        for conn in l.incoming().flatten() {
            let mut c = conn;
            let _ = c.write_all(name.as_bytes());
        }
        return Ok(());
    }
    if http {
        let close = flags.bool("close", false);
        return http_loop(listen_tcp(port)?, close, move |_| {
            Response::ok(name.clone())
        });
    }
    pause()
}

// --- plumbing --------------------------------------------------------------------------

fn udp_loop(sock: UdpSocket, answer: impl Fn(&str, SocketAddr) -> Option<String>) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]);
        if let Some(reply) = answer(&msg, peer) {
            let _ = sock.send_to(reply.as_bytes(), peer);
        }
    }
}

struct Request {
    /// The body (of a POST).
    body: String,
    path: String,
    query: BTreeMap<String, String>,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    peer: SocketAddr,
}

struct Response {
    status: u16,
    body: String,
    /// A `Location` header (redirects).
    location: Option<String>,
}

impl Response {
    fn ok(body: String) -> Response {
        Response {
            status: 200,
            body,
            location: None,
        }
    }
}

fn http_loop<H>(l: TcpListener, close: bool, handler: H) -> Result<(), String>
where
    H: Fn(&Request) -> Response + Send + Sync + 'static,
{
    let handler = std::sync::Arc::new(handler);
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        let h = handler.clone();
        std::thread::spawn(move || {
            let _ = serve_conn(conn, close, &*h);
        });
    }
    Ok(())
}

fn serve_conn(
    conn: TcpStream,
    close: bool,
    handler: &dyn Fn(&Request) -> Response,
) -> std::io::Result<()> {
    let peer = conn.peer_addr()?;
    let mut out = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (_method, target, version) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
            parts.next().unwrap_or(""),
        );
        // As Go's net/http: a line that is no request line (`hostName` from
        // `echo hostName | nc HOST PORT`) is answered 400 at once, and the connection closed.
        if !version.starts_with("HTTP/") {
            out.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request",
            )?;
            return Ok(());
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
        // A body (ignored) is read away so the next request parses.
        let len: u64 = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = Vec::new();
        (&mut r).take(len).read_to_end(&mut body)?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (unescape(k), unescape(v))
            })
            .collect();
        let keep = !close
            && version == "HTTP/1.1"
            && !headers
                .get("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let req = Request {
            body: String::from_utf8_lossy(&body).into_owned(),
            path: unescape(path),
            query,
            headers,
            peer,
        };
        let resp = handler(&req);
        let reason = match resp.status {
            200 => "OK",
            302 => "Found",
            400 => "Bad Request",
            404 => "Not Found",
            500 => "Internal Server Error",
            _ => "",
        };
        let location = resp
            .location
            .as_ref()
            .map(|l| format!("Location: {l}\r\n"))
            .unwrap_or_default();
        write!(
            out,
            "HTTP/1.1 {} {reason}\r\n{location}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{}",
            resp.status,
            resp.body.len(),
            if keep { "keep-alive" } else { "close" },
            resp.body
        )?;
        out.flush()?;
        if !keep {
            return Ok(());
        }
    }
}

fn unescape(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_generator_helpers() {
        assert_eq!(go_duration("20s"), Some(Duration::from_secs(20)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(go_duration("20"), None);
        assert_eq!(go_duration("3x"), None);
        assert_eq!(month_day(0), (1, 1));
        // 2026-11-22
        assert_eq!(month_day(20_779), (11, 22));
        assert_eq!(month_day(19_782), (2, 29)); // 2024-02-29
    }
}
