//! The data plane: a listener per frontend that relays TCP connections and UDP flows to
//! the endpoints its [`Balancer`] picks. A listener's endpoints change in place; the
//! connections it already relays are never cut by such a change.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt::TcpCongestion};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

use crate::balancer::Balancer;
use crate::splice;

/// Each direction's buffer of a relayed TCP connection when it cannot be spliced.
const RELAY_BUFFER: usize = 64 * 1024;

/// How long a connect to an endpoint may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub type Shared = Arc<Mutex<Balancer>>;

/// The TCP congestion control of the proxy's own sockets (both legs of a relayed
/// connection), `None` for the host's default. See [`congestion`].
pub type Congestion = Option<Arc<OsString>>;

/// `name` if this host lets the proxy use it on its sockets, else why not (the algorithm
/// is not built or loadable, or not allowed to this process).
pub fn congestion(name: &str) -> std::io::Result<Congestion> {
    let probe = TcpSocket::new_v4()?;
    let name = OsString::from(name);
    setsockopt(&probe, TcpCongestion, &name)?;
    Ok(Some(Arc::new(name)))
}

/// Best effort: [`congestion`] checked the name at start, and a socket that still refuses
/// it is relayed on the host's default rather than dropped.
fn set_congestion(s: &impl std::os::fd::AsFd, cc: &Congestion) {
    if let Some(name) = cc {
        if let Err(e) = setsockopt(s, TcpCongestion, name.as_ref()) {
            tracing::debug!(error = %e, algorithm = ?name, "TCP congestion control refused");
        }
    }
}

/// Accepts connections until the task is aborted; each is relayed on its own task (and
/// outlives the listener).
pub async fn serve_tcp(listener: TcpListener, balancer: Shared, service: Arc<str>, cc: Congestion) {
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, %service, "accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let b = balancer.clone();
        let (service, cc) = (service.clone(), cc.clone());
        tokio::spawn(async move {
            if let Err(e) = relay_tcp(conn, peer, &b, &cc).await {
                tracing::debug!(error = %e, %service, %peer, "connection");
            }
        });
    }
}

async fn relay_tcp(
    mut client: TcpStream,
    peer: SocketAddr,
    b: &Shared,
    cc: &Congestion,
) -> std::io::Result<()> {
    // The client's leg: this proxy's answers travel on it.
    set_congestion(&client, cc);
    let candidates = b
        .lock()
        .expect("balancer lock")
        .candidates(peer.ip(), Instant::now());
    for ep in candidates {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(ep, cc)).await {
            Ok(Ok(mut upstream)) => {
                b.lock()
                    .expect("balancer lock")
                    .connected(peer.ip(), ep, Instant::now());
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                // Half-closes travel: EOF one way shuts down writing the other way.
                match splice::Pipes::new() {
                    Ok(pipes) => {
                        splice::relay(client, upstream, pipes).await?;
                    }
                    // Out of descriptors for pipes: copy through user buffers. (64 KiB:
                    // tokio's default 8 KiB makes a bulk transfer syscall-bound.)
                    Err(e) => {
                        tracing::debug!(error = %e, "no pipes for splice, copying");
                        tokio::io::copy_bidirectional_with_sizes(
                            &mut client,
                            &mut upstream,
                            RELAY_BUFFER,
                            RELAY_BUFFER,
                        )
                        .await?;
                    }
                }
                return Ok(());
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, endpoint = %ep, "connect failed, trying the next endpoint")
            }
            Err(_) => {
                tracing::debug!(endpoint = %ep, "connect timed out, trying the next endpoint")
            }
        }
    }
    // No endpoint (or none answers): refuse, as a reset. (A zero linger never blocks
    // the drop, which is what tokio's deprecation is about.)
    #[allow(deprecated)]
    client.set_linger(Some(Duration::ZERO))?;
    Ok(())
}

/// A connection to `ep` using `cc` from its first segment.
pub async fn connect(ep: SocketAddr, cc: &Congestion) -> std::io::Result<TcpStream> {
    let s = if ep.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    set_congestion(&s, cc);
    s.connect(ep).await
}

/// One client's UDP flow: a socket connected to its endpoint, and when it was last used.
struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
}

/// Relays datagrams until the task is aborted. Each client address is a flow with a
/// socket of its own towards the endpoint picked for it; answers go back from the
/// frontend's address. A flow idle for `idle` ends.
pub async fn serve_udp(sock: UdpSocket, balancer: Shared, service: Arc<str>, idle: Duration) {
    let sock = Arc::new(sock);
    let flows: Arc<Mutex<HashMap<SocketAddr, Flow>>> = Arc::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, %service, "udp receive");
                continue;
            }
        };
        let existing = flows.lock().expect("flows lock").get(&peer).map(|f| {
            *f.last.lock().expect("flow lock") = Instant::now();
            f.upstream.clone()
        });
        let upstream = match existing {
            Some(u) => u,
            None => match open_flow(&sock, &flows, peer, &balancer, idle).await {
                Some(u) => u,
                None => continue,
            },
        };
        if let Err(e) = upstream.send(&buf[..n]).await {
            tracing::debug!(error = %e, %service, %peer, "udp send");
        }
    }
}

async fn open_flow(
    front: &Arc<UdpSocket>,
    flows: &Arc<Mutex<HashMap<SocketAddr, Flow>>>,
    peer: SocketAddr,
    b: &Shared,
    idle: Duration,
) -> Option<Arc<UdpSocket>> {
    let ep = *b
        .lock()
        .expect("balancer lock")
        .candidates(peer.ip(), Instant::now())
        .first()?;
    let local: SocketAddr = if ep.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let upstream = Arc::new(UdpSocket::bind(local).await.ok()?);
    upstream.connect(ep).await.ok()?;
    b.lock()
        .expect("balancer lock")
        .connected(peer.ip(), ep, Instant::now());
    let last = Arc::new(Mutex::new(Instant::now()));
    flows.lock().expect("flows lock").insert(
        peer,
        Flow {
            upstream: upstream.clone(),
            last: last.clone(),
        },
    );
    // Answers back to the client until the flow has been idle for `idle`.
    let (front, flows, up) = (front.clone(), flows.clone(), upstream.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let since = last.lock().expect("flow lock").elapsed();
            let Some(left) = idle.checked_sub(since).filter(|d| !d.is_zero()) else {
                break;
            };
            match tokio::time::timeout(left, up.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    *last.lock().expect("flow lock") = Instant::now();
                    let _ = front.send_to(&buf[..n], peer).await;
                }
                // Refused (ICMP) or other errors: the next datagram opens a new flow.
                Ok(Err(_)) => break,
                Err(_) => {}
            }
        }
        flows.lock().expect("flows lock").remove(&peer);
    });
    Some(upstream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::getsockopt;

    fn algorithm(s: &impl std::os::fd::AsFd) -> String {
        getsockopt(s, TcpCongestion)
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('\0')
            .to_string()
    }

    #[tokio::test]
    async fn the_proxys_connections_use_the_congestion_control_it_was_given() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = l.local_addr().unwrap();
        // reno: always built in, and allowed to unprivileged processes.
        let reno = congestion("reno").expect("reno is always available");
        let c = connect(ep, &reno).await.unwrap();
        assert_eq!(algorithm(&c), "reno");

        // The host's default when given none (whatever it is, the same as a plain socket's).
        let plain = TcpStream::connect(ep).await.unwrap();
        let c = connect(ep, &None).await.unwrap();
        assert_eq!(algorithm(&c), algorithm(&plain));
    }

    #[test]
    fn an_unknown_congestion_control_is_refused_with_the_reason() {
        let e = congestion("no-such-algorithm").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ENOENT), "{e}");
    }
}
