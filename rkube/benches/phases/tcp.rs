//! TCP loads over loopback, the same for every path to the backends (directly, through
//! a proxy): the backends (tokio servers in the benchmark process) and the three clients.
//!
//! - bulk: the client sends `bytes` over one connection and half-closes; the sink counts
//!   what arrived and answers the count (8 bytes, big-endian) once it reads EOF. The time
//!   is from connect to that answer, so every byte has crossed the path.
//! - echo: request latency, a [`MSG`]-byte ping-pong over one persistent connection
//!   (TCP_NODELAY on both ends), after a warm-up.
//! - once: connections per second, each a connect, a [`MSG`]-byte request, the
//!   [`MSG`]-byte answer and the server's close (so its TIME_WAIT stays on the server
//!   side, and no client port is held).
//!
//! Not in `phases/mod.rs`: the benchmarks that need it include it with `#[path]`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bytes of a request and of its answer (echo and once).
pub const MSG: usize = 64;
/// The size of the bulk client's writes and of the sink's reads.
const CHUNK: usize = 256 * 1024;
/// How long one connection of the `once` load may take before it counts as an error.
const ONCE_TIMEOUT: Duration = Duration::from_secs(5);

/// The three servers, listening on `ip` at ports of the kernel's choosing.
pub struct Backends {
    pub bulk: SocketAddr,
    pub echo: SocketAddr,
    pub once: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Backends {
    pub async fn start(ip: IpAddr) -> Result<Backends> {
        let listen = || async {
            TcpListener::bind(SocketAddr::new(ip, 0))
                .await
                .with_context(|| format!("binding a backend on {ip}"))
        };
        let (bulk, echo, once) = (listen().await?, listen().await?, listen().await?);
        let addrs = (bulk.local_addr()?, echo.local_addr()?, once.local_addr()?);
        let tasks = vec![
            tokio::spawn(accept_loop(bulk, |c| async move { sink(c).await })),
            tokio::spawn(accept_loop(echo, |c| async move { echo_server(c).await })),
            tokio::spawn(accept_loop(once, |c| async move { reply_once(c).await })),
        ];
        Ok(Backends {
            bulk: addrs.0,
            echo: addrs.1,
            once: addrs.2,
            tasks,
        })
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop<F, Fut>(l: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    loop {
        match l.accept().await {
            Ok((c, _)) => {
                let _ = c.set_nodelay(true);
                tokio::spawn(serve(c));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Reads to EOF, then answers how many bytes came.
async fn sink(mut c: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = c.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    c.write_all(&total.to_be_bytes()).await?;
    c.shutdown().await
}

/// Sends back what it reads, until EOF.
async fn echo_server(mut c: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = c.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        c.write_all(&buf[..n]).await?;
    }
}

/// Reads one request, answers it, closes.
async fn reply_once(mut c: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; MSG];
    c.read_exact(&mut buf).await?;
    c.write_all(&buf).await?;
    Ok(())
}

/// One bulk transfer of `bytes` to the sink at `addr`: the time until the sink confirmed
/// them all.
pub async fn bulk(addr: SocketAddr, bytes: u64) -> Result<Duration> {
    bulk_with(addr, bytes, &None).await
}

/// [`bulk`] from a client socket on congestion control `cc` (`None`: the host's default).
pub async fn bulk_with(
    addr: SocketAddr,
    bytes: u64,
    cc: &proxy::relay::Congestion,
) -> Result<Duration> {
    let data = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut c = proxy::relay::connect(addr, cc)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    c.set_nodelay(true)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        c.write_all(&data[..n]).await?;
        left -= n as u64;
    }
    c.shutdown().await?;
    let mut count = [0u8; 8];
    c.read_exact(&mut count)
        .await
        .context("reading the sink's count")?;
    let elapsed = start.elapsed();
    let got = u64::from_be_bytes(count);
    if got != bytes {
        bail!("the sink behind {addr} received {got} of {bytes} bytes");
    }
    Ok(elapsed)
}

/// One persistent connection to the echo server for request latency.
pub struct PingPong {
    conn: TcpStream,
    addr: SocketAddr,
}

impl PingPong {
    /// Connects (TCP_NODELAY) and makes `warmup` untimed exchanges.
    pub async fn connect(addr: SocketAddr, warmup: usize) -> Result<PingPong> {
        let conn = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        conn.set_nodelay(true)?;
        let mut p = PingPong { conn, addr };
        p.exchange(warmup).await?;
        Ok(p)
    }

    /// `rounds` timed request/answer exchanges of [`MSG`] bytes.
    pub async fn exchange(&mut self, rounds: usize) -> Result<Vec<Duration>> {
        let req = [0x42u8; MSG];
        let mut ans = [0u8; MSG];
        let mut out = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            self.conn.write_all(&req).await?;
            self.conn.read_exact(&mut ans).await?;
            out.push(t.elapsed());
            if ans != req {
                bail!("the echo behind {} answered other bytes", self.addr);
            }
        }
        Ok(out)
    }
}

/// `rounds` timed exchanges with the echo server at `addr` over a new connection.
pub async fn ping_pong(addr: SocketAddr, warmup: usize, rounds: usize) -> Result<Vec<Duration>> {
    PingPong::connect(addr, warmup)
        .await?
        .exchange(rounds)
        .await
}

/// What [`connections`] achieved.
#[derive(Clone, Debug, Default)]
pub struct Conns {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Connect to close of each successful connection.
    pub latencies: Vec<Duration>,
}

/// `clients` concurrent loops of connect, one request, the answer and the close, against
/// the once server at `addr`, for `time`.
pub async fn connections(addr: SocketAddr, clients: usize, time: Duration) -> Result<Conns> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut r = Conns::default();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match tokio::time::timeout(ONCE_TIMEOUT, once(addr)).await {
                        Ok(Ok(())) => {
                            r.ok += 1;
                            r.latencies.push(t.elapsed());
                        }
                        Ok(Err(e)) => {
                            r.errors += 1;
                            r.first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                        Err(_) => {
                            r.errors += 1;
                            r.first_error.get_or_insert_with(|| {
                                format!("no answer within {ONCE_TIMEOUT:?}")
                            });
                        }
                    }
                }
                r
            })
        })
        .collect();
    tokio::time::sleep(time).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Conns::default();
    for w in futures::future::join_all(workers).await {
        let r = w?;
        all.ok += r.ok;
        all.errors += r.errors;
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
        all.latencies.extend(r.latencies);
    }
    all.elapsed = start.elapsed();
    Ok(all)
}

async fn once(addr: SocketAddr) -> Result<()> {
    let mut c = TcpStream::connect(addr).await?;
    c.set_nodelay(true)?;
    let req = [0x17u8; MSG];
    c.write_all(&req).await?;
    let mut ans = Vec::with_capacity(MSG);
    c.read_to_end(&mut ans).await?;
    if ans.len() != MSG {
        bail!("answer of {} bytes, not {MSG}", ans.len());
    }
    Ok(())
}

/// Whether all three servers answer through `bulk`, `echo` and `once` (addresses of one
/// path), each within `timeout`.
pub async fn answers(
    bulk_addr: SocketAddr,
    echo_addr: SocketAddr,
    once_addr: SocketAddr,
    timeout: Duration,
) -> Result<()> {
    let t = |what: &'static str| move |_| anyhow::anyhow!("{what}: no answer within {timeout:?}");
    tokio::time::timeout(timeout, bulk(bulk_addr, 1024))
        .await
        .map_err(t("bulk"))??;
    tokio::time::timeout(timeout, ping_pong(echo_addr, 0, 1))
        .await
        .map_err(t("echo"))??;
    tokio::time::timeout(timeout, once(once_addr))
        .await
        .map_err(t("once"))??;
    Ok(())
}
