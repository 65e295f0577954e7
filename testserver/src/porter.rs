//! `porter [--json-response]`, as agnhost's: for every environment variable
//! `SERVE_PORT_N` (or `SERVE_TCP_PORT_N`) an HTTP server on port N answering every request
//! with the variable's value, `SERVE_TLS_PORT_N` the same over TLS, `SERVE_UDP_PORT_N` a
//! UDP server answering every datagram with it. With `--json-response` an HTTP answer is
//! `{"Method":"<method>","Body":"<value>"}` (`application/json`); otherwise its content
//! type is sniffed as Go's `net/http` does (`text/html; charset=utf-8` for an HTML
//! fragment, else `text/plain; charset=utf-8`).
//!
//! TLS uses `CERT_FILE`/`KEY_FILE` when set, else `localhost.crt`/`localhost.key` when
//! present, else a certificate made at start for 127.0.0.1, ::1 and localhost (agnhost
//! ships one with those names).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;

use super::{json_string, udp_loop};

pub fn main(json: bool) -> Result<(), String> {
    let mut tls: Option<Arc<rustls::ServerConfig>> = None;
    let mut servers = Vec::new();
    for (key, value) in std::env::vars() {
        let (kind, port) = if let Some(p) = key
            .strip_prefix("SERVE_PORT_")
            .or_else(|| key.strip_prefix("SERVE_TCP_PORT_"))
        {
            ("tcp", p)
        } else if let Some(p) = key.strip_prefix("SERVE_TLS_PORT_") {
            ("tls", p)
        } else if let Some(p) = key.strip_prefix("SERVE_UDP_PORT_") {
            ("udp", p)
        } else {
            continue;
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{key}: {port:?} is not a port number"))?;
        let addr = format!("0.0.0.0:{port}");
        match kind {
            "udp" => {
                let sock = UdpSocket::bind(&addr).map_err(|e| format!("listen udp {addr}: {e}"))?;
                eprintln!("Started UDP server on port {port}");
                servers.push(std::thread::spawn(move || {
                    udp_loop(sock, |_, _| Some(value.clone()))
                }));
            }
            _ => {
                let l = TcpListener::bind(&addr).map_err(|e| format!("listen tcp {addr}: {e}"))?;
                let tls = if kind == "tls" {
                    if tls.is_none() {
                        tls = Some(server_config()?);
                    }
                    tls.clone()
                } else {
                    None
                };
                let value = Arc::new(value);
                servers.push(std::thread::spawn(move || {
                    for conn in l.incoming() {
                        let Ok(conn) = conn else { continue };
                        let (value, tls) = (value.clone(), tls.clone());
                        std::thread::spawn(move || {
                            let _ = match tls {
                                Some(cfg) => match rustls::ServerConnection::new(cfg) {
                                    Ok(c) => serve(rustls::StreamOwned::new(c, conn), &value, json),
                                    Err(_) => Ok(()),
                                },
                                None => serve(conn, &value, json),
                            };
                        });
                    }
                }));
            }
        }
    }
    for s in servers {
        let _ = s.join();
    }
    // No port to serve: agnhost's porter blocks forever.
    loop {
        std::thread::park();
    }
}

fn server_config() -> Result<Arc<rustls::ServerConfig>, String> {
    let var = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.into());
    let (cert_file, key_file) = (
        var("CERT_FILE", "localhost.crt"),
        var("KEY_FILE", "localhost.key"),
    );
    let (cert_pem, key_pem) = match (std::fs::read(&cert_file), std::fs::read(&key_file)) {
        (Ok(c), Ok(k)) => (c, k),
        _ if std::env::var_os("CERT_FILE").is_some() => {
            return Err(format!("cannot read {cert_file} and {key_file}"));
        }
        _ => {
            let names = ["127.0.0.1", "::1", "localhost"].map(String::from).to_vec();
            let cert = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
            (
                cert.cert.pem().into_bytes(),
                cert.signing_key.serialize_pem().into_bytes(),
            )
        }
    };
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_file}: {e}"))?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("{key_file}: {e}"))?
        .ok_or_else(|| format!("{key_file}: no private key"))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// HTTP/1.x on one connection: every request is answered with `value`.
fn serve<S: Read + Write>(conn: S, value: &str, json: bool) -> std::io::Result<()> {
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, version) = (
            parts.next().unwrap_or_default().to_string(),
            parts.nth(1).unwrap_or_default().to_string(),
        );
        let (mut length, mut chunked, mut close) = (0u64, false, version != "HTTP/1.1");
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((k, v)) = h.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => length = v.parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => close |= v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        // The body is read away (its content does not matter).
        if chunked {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = u64::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                std::io::copy(&mut (&mut r).take(n + 2), &mut std::io::sink())?;
                if n == 0 {
                    break;
                }
            }
        } else {
            std::io::copy(&mut (&mut r).take(length), &mut std::io::sink())?;
        }
        let (ctype, body) = if json {
            (
                "application/json",
                format!(
                    "{{\"Method\":{},\"Body\":{}}}",
                    json_string(&method),
                    json_string(value)
                ),
            )
        } else {
            (sniff(value), value.to_string())
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        let out = r.get_mut();
        out.write_all(head.as_bytes())?;
        if method != "HEAD" {
            out.write_all(body.as_bytes())?;
        }
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// Go's `http.DetectContentType` for the text the porter serves: its HTML signatures
/// (a tag name followed by a space or `>`), else plain text.
fn sniff(body: &str) -> &'static str {
    const TAGS: [&str; 17] = [
        "<!DOCTYPE HTML",
        "<HTML",
        "<HEAD",
        "<SCRIPT",
        "<IFRAME",
        "<H1",
        "<DIV",
        "<FONT",
        "<TABLE",
        "<A",
        "<STYLE",
        "<TITLE",
        "<B",
        "<BODY",
        "<BR",
        "<P",
        "<!--",
    ];
    let s = body.trim_start_matches(['\t', '\n', '\x0c', '\r', ' ']);
    let html = TAGS.iter().any(|t| {
        s.len() > t.len()
            && s.as_bytes()[..t.len()].eq_ignore_ascii_case(t.as_bytes())
            && matches!(s.as_bytes()[t.len()], b' ' | b'>')
    });
    if html {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_sniffed_as_go_does() {
        assert_eq!(
            sniff(r#"<a href="/rewriteme">test</a>"#),
            "text/html; charset=utf-8"
        );
        assert_eq!(sniff("  <HTML><body>x"), "text/html; charset=utf-8");
        assert_eq!(sniff("foo"), "text/plain; charset=utf-8");
        assert_eq!(sniff("tls baz"), "text/plain; charset=utf-8");
        assert_eq!(sniff("<abbr>"), "text/plain; charset=utf-8");
    }

    /// A request with a chunked body, then one with a length, on one connection.
    #[test]
    fn every_request_is_answered_with_the_value() {
        struct Conn(std::io::Cursor<Vec<u8>>, Vec<u8>);
        impl Read for Conn {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(b)
            }
        }
        impl Write for Conn {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.1.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let input = "PATCH /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
                     HEAD / HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
        let mut c = Conn(std::io::Cursor::new(input.as_bytes().to_vec()), Vec::new());
        serve(&mut c, "foo", true).unwrap();
        let out = String::from_utf8(c.1).unwrap();
        let body = r#"{"Method":"PATCH","Body":"foo"}"#;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"));
        assert!(out.contains(&format!(
            "Content-Length: {}\r\n\r\n{body}HTTP/1.1 200",
            body.len()
        )));
        assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");
    }
}
