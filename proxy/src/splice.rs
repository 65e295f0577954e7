//! Zero-copy TCP relay: each direction moves bytes socket → pipe → socket with
//! `splice(2)`, so the payload never enters the proxy's memory (two page moves instead
//! of two copies through a user buffer). Half-closes travel as with
//! `copy_bidirectional`: EOF one way shuts down writing the other way.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Each direction's pipe capacity: at most this much is in flight inside the kernel per
/// direction (the kernel rounds to pages; 1 MiB is its unprivileged maximum).
const PIPE_SIZE: i32 = 1 << 20;

/// How many empty pipes wait for the next connection (each is two descriptors; a pipe
/// holds no memory while empty).
const POOL_SIZE: usize = 64;

/// Empty pipes of finished connections: a new connection takes two instead of making
/// them (4 system calls fewer per connection, and 4 closes).
static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// The two pipes of one relayed connection.
pub struct Pipes(Pipe, Pipe);

impl Pipes {
    /// From the pool or new; fails when the process is out of file descriptors (the
    /// caller then copies).
    pub fn new() -> io::Result<Pipes> {
        let (a, b) = {
            let mut pool = POOL.lock().expect("pipe pool lock");
            (pool.pop(), pool.pop())
        };
        Ok(Pipes(
            a.map_or_else(Pipe::new, Ok)?,
            b.map_or_else(Pipe::new, Ok)?,
        ))
    }
}

/// A non-blocking pipe of `PIPE_SIZE` (or the system default when that is refused).
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// Back to the pool: only a pipe known to be empty (a direction that ended cleanly).
    fn recycle(self) {
        let mut pool = POOL.lock().expect("pipe pool lock");
        if pool.len() < POOL_SIZE {
            pool.push(self);
        }
    }

    fn new() -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let capacity = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE))
            .or_else(|_| fcntl(&write, FcntlArg::F_GETPIPE_SZ))?;
        Ok(Pipe {
            read,
            write,
            capacity: usize::try_from(capacity).unwrap_or(65_536),
        })
    }
}

/// Relays `a` ⇄ `b` until both directions have ended. Returns the bytes moved each way,
/// like `tokio::io::copy_bidirectional`.
pub async fn relay(a: TcpStream, b: TcpStream, Pipes(pa, pb): Pipes) -> io::Result<(u64, u64)> {
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::try_join!(one_way(ar, bw, pa), one_way(br, aw, pb))
}

/// Moves `from` → `to` through `pipe` until EOF, then shuts down writing on `to`. Reads
/// go on while the other side is slow to take bytes, as long as the pipe has room, and
/// writes while the first side is quiet: the task waits only when neither can move.
async fn one_way(from: OwnedReadHalf, mut to: OwnedWriteHalf, pipe: Pipe) -> io::Result<u64> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let (src, dst) = (from.as_ref(), to.as_ref());
    let (mut in_pipe, mut total, mut eof) = (0usize, 0u64, false);
    loop {
        let mut moved = false;
        // Whether the socket had nothing to give: when the pipe holds bytes already, a
        // refusal may mean the pipe is full instead (it counts pages, not bytes), so only
        // a refusal into an empty pipe may clear the socket's readiness.
        let mut src_dry = false;
        if !eof && in_pipe < pipe.capacity {
            let fill = || {
                let room = pipe.capacity - in_pipe;
                splice(src, None, &pipe.write, None, room, flags).map_err(io::Error::from)
            };
            let r = if in_pipe == 0 {
                src.try_io(Interest::READABLE, fill)
            } else {
                fill()
            };
            match r {
                Ok(0) => eof = true,
                Ok(n) => {
                    in_pipe += n;
                    total += n as u64;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => src_dry = in_pipe == 0,
                Err(e) => return Err(e),
            }
        }
        if in_pipe > 0 {
            match dst.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, dst, None, in_pipe, flags).map_err(io::Error::from)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    in_pipe -= n;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if eof && in_pipe == 0 {
            pipe.recycle();
            to.shutdown().await?;
            return Ok(total);
        }
        if !moved {
            // Nothing moved: the pipe is empty and the socket dry, or the other socket
            // is full (and the pipe may be too).
            tokio::select! {
                r = src.readable(), if src_dry => r?,
                r = dst.writable(), if in_pipe > 0 => r?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// Two connected sockets over loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    #[tokio::test]
    async fn bytes_arrive_intact_both_ways_and_half_closes_travel() {
        // A half-close that does not travel hangs the reads: fail instead.
        tokio::time::timeout(std::time::Duration::from_secs(60), both_ways())
            .await
            .expect("the relay stalled");
    }

    async fn both_ways() {
        let (mut client, proxy_front) = pair().await;
        let (proxy_back, mut server) = pair().await;
        let relay = tokio::spawn(relay(proxy_front, proxy_back, Pipes::new().unwrap()));

        // More than a pipe's capacity, in a pattern a lost or reordered chunk breaks.
        let sent: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&to_send).await.unwrap();
            client.shutdown().await.unwrap(); // half-close: the server must see EOF
            client
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "the relayed bytes differ from the sent ones");

        // The other way still works after the half-close.
        server.write_all(b"done").await.unwrap();
        server.shutdown().await.unwrap();
        let mut client = writer.await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "done");
        assert_eq!(relay.await.unwrap().unwrap(), (sent.len() as u64, 4));
    }
}
