//! rkube's test server (the role of upstream's agnhost image): one static binary with
//! agnhost's subcommands and flags, so pod specs written for agnhost run unchanged with
//! `image: docker.io/rkube/testserver:1.0`.
//!
//! - `netexec [--http-port 8080] [--udp-port 8081]`: HTTP `/` (the time), `/hostname`,
//!   `/echo?msg=`, `/clientip`, `/exit?code=N`, `/healthz`, `/header?key=`; UDP answers
//!   `hostname`, `echo X`, `clientip`.
//! - `serve-hostname [--port 9376] [--http] [--tcp] [--udp] [--close]`: the hostname.
//! - `pause`: prints `Paused`, sleeps until SIGINT or SIGTERM, then exits 0.
//! - `entrypoint-tester`: prints its whole argv as Go prints a slice (`[/agnhost a b]`).
//! - `etc-hosts`: prints `/etc/hosts`.
//! - `mounttest [--new_file_0644|0666|0660|0777 P] [--file_mode P] [--file_perm P]
//!   [--file_owner P] [--file_content P] [--file_content_in_loop P --retry_time 180
//!   --break_on_expected_content true]`: agnhost's, in its order and words (no
//!   `--fs_type`).
//!
//! The image, as agnhost's: `/agnhost` (entrypoint, default args `pause`), `/agnhost-2`
//! (for tests that override the entrypoint) and `/testserver`, all this binary.
//!
//! Std and threads only (one thread per connection): it must build fully static.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::exit;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        usage()
    };
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
        "etc-hosts" => etc_hosts(),
        "mounttest" => mounttest(&flags),
        _ => usage(),
    };
    if let Err(e) = r {
        eprintln!("testserver {cmd}: {e}");
        exit(1)
    }
}

fn usage() -> ! {
    eprintln!("usage: testserver netexec|serve-hostname|pause|entrypoint-tester|etc-hosts [flags]");
    exit(2)
}

/// `--name value`, `--name=value` and bare `--name` (true).
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
            } else if it.peek().is_some_and(|n| !n.starts_with('-')) {
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
    let udp_port = flags.port("udp-port", 8081)?;
    if udp_port != 0 {
        let udp = listen_udp(udp_port)?;
        std::thread::spawn(move || udp_loop(udp, netexec_udp));
    }
    eprintln!("testserver netexec: serving");
    http_loop(http, false, netexec_http)
}

fn netexec_udp(msg: &str, peer: SocketAddr) -> Option<String> {
    let msg = msg.trim();
    let (cmd, arg) = msg.split_once(' ').unwrap_or((msg, ""));
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
        "/hostname" => Response::ok(hostname()),
        "/echo" => Response::ok(q("msg")),
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
                },
            }
        }
        _ => Response {
            status: 404,
            body: "404 page not found\n".into(),
        },
    }
}

/// agnhost's `/dial?request=R&protocol=http|udp&host=H&port=P&tries=N`: asks another
/// server `tries` times (HTTP `GET /R`, or a UDP datagram `R`) and answers
/// `{"responses": [...], "errors": [...]}`. What the networking conformance tests use to
/// make one pod talk to another.
fn dial(q: &dyn Fn(&str) -> String) -> Response {
    let bad = |body: String| Response { status: 400, body };
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
    path: String,
    query: BTreeMap<String, String>,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    peer: SocketAddr,
}

struct Response {
    status: u16,
    body: String,
}

impl Response {
    fn ok(body: String) -> Response {
        Response { status: 200, body }
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
            parts.next().unwrap_or("HTTP/1.0"),
        );
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
        std::io::copy(&mut (&mut r).take(len), &mut std::io::sink())?;
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
            path: unescape(path),
            query,
            headers,
            peer,
        };
        let resp = handler(&req);
        let reason = match resp.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            _ => "",
        };
        write!(
            out,
            "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{}",
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
