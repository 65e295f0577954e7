//! Host ports without iptables: every container port of this node's pods that has a
//! `hostPort` (pods not on the host network) gets a listener on `hostIP:hostPort`
//! (`0.0.0.0` when no hostIP) for its protocol, relaying to `podIP:containerPort` — the
//! userspace counterpart of CNI's portmap plugin, as the service proxy is of kube-proxy.
//!
//! - TCP: each accepted connection is connected to the pod (5 s) and copied both ways.
//! - UDP: a flow per client address with its own socket to the pod; answers go back
//!   from the listening address; a flow idle for 30 s ends.
//!
//! [`desired`] (pure) says which listeners the pods want; [`run`] keeps them so as the
//! kubelet's pod registry changes (a bind that fails is retried every 10 s).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::pods::Registry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A listener: protocol, host address and host port.
pub type Key = (Proto, IpAddr, u16);

/// The listeners this node's pods want and where each relays to. Pods on the host
/// network, without an IP yet, or finished, want none; SCTP is not relayed.
pub fn desired<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> BTreeMap<Key, SocketAddr> {
    let mut out = BTreeMap::new();
    for p in pods {
        let Some(spec) = &p.spec else { continue };
        if spec.host_network == Some(true) || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let st = p.status.as_ref();
        if matches!(
            st.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let Some(pod_ip) = st
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
        else {
            continue;
        };
        for c in spec.containers.iter() {
            for port in c.ports.iter().flatten() {
                let Some(hp) = port.host_port.filter(|p| *p > 0 && *p < 65536) else {
                    continue;
                };
                let proto = match port.protocol.as_deref().unwrap_or("TCP") {
                    "TCP" => Proto::Tcp,
                    "UDP" => Proto::Udp,
                    _ => continue,
                };
                let host_ip = port
                    .host_ip
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                let target = SocketAddr::new(pod_ip, port.container_port as u16);
                out.entry((proto, host_ip, hp as u16)).or_insert(target);
            }
        }
    }
    out
}

/// Keeps the listeners of this node's pods (those of `registry`) until `shutdown`.
pub async fn run(
    registry: Registry,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), crate::Error> {
    let mut changes = registry.changes();
    let mut listeners: HashMap<Key, (SocketAddr, JoinHandle<()>)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {}
            r = changes.changed() => {
                if r.is_err() {
                    break;
                }
            }
        }
        let want = registry.read(|pods| desired(pods));
        listeners.retain(|k, (target, task)| {
            let keep = want.get(k) == Some(target) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (k, target) in want {
            if listeners.contains_key(&k) {
                continue;
            }
            let (proto, ip, port) = k;
            let addr = SocketAddr::new(ip, port);
            let task = match proto {
                Proto::Tcp => match TcpListener::bind(addr).await {
                    Ok(l) => tokio::spawn(relay_tcp(l, target)),
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "host port: cannot listen (tcp)");
                        continue;
                    }
                },
                Proto::Udp => match UdpSocket::bind(addr).await {
                    Ok(s) => tokio::spawn(relay_udp(Arc::new(s), target)),
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "host port: cannot listen (udp)");
                        continue;
                    }
                },
            };
            tracing::info!(%addr, ?proto, %target, "host port");
            listeners.insert(k, (target, task));
        }
    }
    for (_, (_, t)) in listeners {
        t.abort();
    }
    Ok(())
}

async fn relay_tcp(l: TcpListener, target: SocketAddr) {
    loop {
        let Ok((mut c, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let up = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await;
            if let Ok(Ok(mut up)) = up {
                let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
            }
        });
    }
}

/// How long a UDP flow lives without traffic.
const UDP_IDLE: Duration = Duration::from_secs(30);

async fn relay_udp(s: Arc<UdpSocket>, target: SocketAddr) {
    let flows: Arc<tokio::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = s.recv_from(&mut buf).await else {
            continue;
        };
        let up = {
            let mut f = flows.lock().await;
            match f.get(&client) {
                Some(u) => u.clone(),
                None => {
                    let local = if target.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let Ok(u) = UdpSocket::bind(local).await else {
                        continue;
                    };
                    if u.connect(target).await.is_err() {
                        continue;
                    }
                    let u = Arc::new(u);
                    f.insert(client, u.clone());
                    let (u2, s2, flows2) = (u.clone(), s.clone(), flows.clone());
                    tokio::spawn(async move {
                        let mut b = vec![0u8; 65536];
                        // Until idle, or the pod refused (ICMP): then the flow ends.
                        while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, u2.recv(&mut b)).await
                        {
                            let _ = s2.send_to(&b[..n], client).await;
                        }
                        flows2.lock().await.remove(&client);
                    });
                    u
                }
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn listeners_from_host_ports() {
        let ports = serde_json::json!([
            {"containerPort": 8080, "hostPort": 54323, "hostIP": "127.0.0.1"},
            {"containerPort": 8080, "hostPort": 54323, "protocol": "UDP", "hostIP": "10.0.0.5"},
            {"containerPort": 9090, "hostPort": 8000},
            {"containerPort": 7000},
            {"containerPort": 5060, "hostPort": 5060, "protocol": "SCTP"},
        ]);
        let running = pod(serde_json::json!({
            "metadata": {"name": "a", "uid": "1"},
            "spec": {"containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": "10.42.0.7"},
        }));
        let want = desired([&running]);
        let t = |p| SocketAddr::new("10.42.0.7".parse().unwrap(), p);
        assert_eq!(
            want,
            BTreeMap::from([
                ((Proto::Tcp, "0.0.0.0".parse().unwrap(), 8000), t(9090)),
                ((Proto::Tcp, "127.0.0.1".parse().unwrap(), 54323), t(8080)),
                ((Proto::Udp, "10.0.0.5".parse().unwrap(), 54323), t(8080)),
            ])
        );
        // No IP yet, host network, finished: nothing.
        let mut no_ip = running.clone();
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let mut host = running.clone();
        host.spec.as_mut().unwrap().host_network = Some(true);
        let mut done = running.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(desired([&no_ip, &host, &done]).is_empty());
    }

    #[tokio::test]
    async fn relays_tcp_and_udp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A TCP echo "pod".
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = backend.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut c, _) = backend.accept().await.unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).await.unwrap();
            c.write_all(&b).await.unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let faddr = front.local_addr().unwrap();
        let relay = tokio::spawn(relay_tcp(front, target));
        let mut c = TcpStream::connect(faddr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hello");
        relay.abort();

        // A UDP "pod" answering upper-case.
        let ub = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let utarget = ub.local_addr().unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            let (n, from) = ub.recv_from(&mut b).await.unwrap();
            ub.send_to(&b[..n].to_ascii_uppercase(), from)
                .await
                .unwrap();
        });
        let ufront = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let uaddr = ufront.local_addr().unwrap();
        let urelay = tokio::spawn(relay_udp(ufront, utarget));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", uaddr).await.unwrap();
        let mut b = [0u8; 64];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b[..n], b"PING");
        assert_eq!(from, uaddr);
        urelay.abort();
    }
}
