//! A delaying TCP proxy on loopback, standing in for a network link with a round-trip time: this
//! kernel has no `netem`, so the bench delays the bytes itself. Every chunk read from one side is
//! written to the other side RTT/2 later, in order, in both directions (an unbounded buffer: the
//! link has latency but no bandwidth limit). The TCP handshake with the proxy is not delayed, so a
//! new connection costs no round trip here; a real link adds one per connection (see
//! [`Counts::connections`]).
//!
//! The proxy runs on a thread and a Tokio runtime of its own, so that the store and the writers
//! it carries, busy on the bench's runtime, do not hold its timers back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What the proxy has carried so far; subtract two snapshots to get what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// TCP connections accepted (each costs a real link one more round trip for its handshake).
    pub connections: u64,
    /// Request → answer turn-arounds: on a connection, the first chunk from the server after data
    /// from the client. A client that waits for each answer waits one round trip per turn-around.
    pub round_trips: u64,
    /// Bytes from the client to the server.
    pub bytes_up: u64,
    /// Bytes from the server to the client.
    pub bytes_down: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;

    fn sub(self, earlier: Counts) -> Counts {
        Counts {
            connections: self.connections - earlier.connections,
            round_trips: self.round_trips - earlier.round_trips,
            bytes_up: self.bytes_up - earlier.bytes_up,
            bytes_down: self.bytes_down - earlier.bytes_down,
        }
    }
}

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    round_trips: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// The direction of a chunk, and of the last chunk a connection carried (`NONE` before the first).
const NONE: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// A running proxy from a loopback port to `upstream`; stopped on drop (its connections closed).
pub struct Proxy {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    stats: Arc<Stats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` that holds each chunk for `rtt / 2` in each direction.
    pub fn start(upstream: SocketAddr, rtt: Duration) -> Result<Proxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("the proxy binds a loopback port")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let shared = stats.clone();
        let thread = std::thread::Builder::new().name(format!("proxy-{port}")).spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a listener in this runtime");
                serve(listener, upstream, rtt / 2, shared, stopped).await;
            });
            // Dropping the runtime here cancels every connection's tasks and closes their sockets.
        })?;
        Ok(Proxy { port, stats, stop: Some(stop), thread: Some(thread) })
    }

    /// What the proxy has carried since it started.
    pub fn counts(&self) -> Counts {
        let load = |n: &AtomicU64| n.load(Ordering::SeqCst);
        Counts {
            connections: load(&self.stats.connections),
            round_trips: load(&self.stats.round_trips),
            bytes_up: load(&self.stats.bytes_up),
            bytes_down: load(&self.stats.bytes_down),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    half: Duration,
    stats: Arc<Stats>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(connection(client, upstream, half, stats.clone()));
                }
            }
            _ = &mut stopped => return,
        }
    }
}

/// Carries one connection both ways until both directions have ended.
async fn connection(client: TcpStream, upstream: SocketAddr, half: Duration, stats: Arc<Stats>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    // The delay is the proxy's; Nagle's algorithm would add its own on small writes.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    stats.connections.fetch_add(1, Ordering::SeqCst);
    let last = Arc::new(AtomicU8::new(NONE));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, half, UP, last.clone(), stats.clone()),
        pipe(server_read, client_write, half, DOWN, last, stats),
    );
}

/// One direction: chunks are read as they come and written `half` after they were read, in
/// order; the end of the stream (a half-close) is passed on with the same delay.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    half: Duration,
    direction: u8,
    last: Arc<AtomicU8>,
    stats: Arc<Stats>,
) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Option<Vec<u8>>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            let at = Instant::now() + half;
            if n == 0 {
                let _ = chunks.send((at, None));
                return;
            }
            let previous = last.swap(direction, Ordering::SeqCst);
            if direction == UP {
                stats.bytes_up.fetch_add(n as u64, Ordering::SeqCst);
            } else {
                stats.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
                if previous == UP {
                    stats.round_trips.fetch_add(1, Ordering::SeqCst);
                }
            }
            if chunks.send((at, Some(buf[..n].to_vec()))).is_err() {
                return;
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            match chunk {
                Some(bytes) if to.write_all(&bytes).await.is_ok() => {}
                // The end of the stream, or a peer that is gone: pass the end on and stop.
                _ => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server behind the proxy: each request waits a whole round trip for its answer, the
    /// bytes arrive in order, and every request → answer is counted once.
    #[test]
    fn delays_each_direction_by_half_the_round_trip_and_counts_turn_arounds() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let upstream = echo.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut socket, _) = echo.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                loop {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    socket.write_all(&buf[..n]).await.unwrap();
                }
            });
            let rtt = Duration::from_millis(40);
            let proxy = Proxy::start(upstream, rtt).unwrap();
            let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
            client.set_nodelay(true).unwrap();
            for round in 0..3u8 {
                let started = std::time::Instant::now();
                let request = [round; 100];
                client.write_all(&request).await.unwrap();
                let mut answer = [0u8; 100];
                client.read_exact(&mut answer).await.unwrap();
                assert_eq!(answer, request);
                // At least the round trip; no upper bound is asserted (a busy machine is slow).
                assert!(started.elapsed() >= rtt, "{:?}", started.elapsed());
            }
            drop(client);
            let counts = proxy.counts();
            assert_eq!((counts.connections, counts.round_trips), (1, 3), "{counts:?}");
            assert_eq!((counts.bytes_up, counts.bytes_down), (300, 300));
        });
    }
}
