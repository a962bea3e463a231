//! A fault-injecting TCP proxy between the server and one of its stores: every byte passes
//! through it, and the test makes the network slow (latency on every chunk, a bandwidth cap),
//! silent (a blackhole: bytes held, sockets kept open, as a cable pulled or a firewall dropping
//! packets looks from both ends) or broken (every open connection reset). The kernel here has no
//! netem, and a proxy lets each test break only its own server's connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the network does to the bytes now.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Fault {
    /// Bytes pass as they come.
    None,
    /// Each chunk of bytes is held this long, in each direction.
    Latency(Duration),
    /// Nothing passes; the sockets stay open.
    Blackhole,
    /// At most this many bytes a second, in each direction.
    Bandwidth(u64),
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    /// One token per open connection: cancelling it resets the connection.
    connections: Arc<Mutex<Vec<CancellationToken>>>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address");
        let (fault, _) = watch::channel(Fault::None);
        let connections = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (faults, open, stopped) = (fault.clone(), connections.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stopped.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                let reset = CancellationToken::new();
                open.lock().expect("connections").push(reset.clone());
                tokio::spawn(forward(client, target, faults.subscribe(), reset));
            }
        });
        Self {
            addr,
            fault,
            connections,
            stop,
        }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Resets every connection open now (new ones are let through).
    pub fn reset_all(&self) {
        for connection in self.connections.lock().expect("connections").drain(..) {
            connection.cancel();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.reset_all();
    }
}

/// One connection: both directions pumped until both sides close or the test resets it (then
/// both sockets are dropped, which with SO_LINGER 0 sends RST).
async fn forward(
    client: TcpStream,
    target: SocketAddr,
    fault: watch::Receiver<Fault>,
    reset: CancellationToken,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    for socket in [&client, &server] {
        let _ = socket.set_nodelay(true);
        // a close is a reset (RST), as when the test resets the connection
        let _ = socket.set_zero_linger();
    }
    let (client_reads, client_writes) = client.into_split();
    let (server_reads, server_writes) = server.into_split();
    let up = pump(client_reads, server_writes, fault.clone());
    let down = pump(server_reads, client_writes, fault);
    tokio::select! {
        _ = reset.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
}

/// Copies one direction, applying the fault of the moment to each chunk.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut fault: watch::Receiver<Fault>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        // held while the blackhole lasts
        let now = *fault
            .wait_for(|fault| *fault != Fault::Blackhole)
            .await
            .expect("the proxy");
        match now {
            Fault::Latency(delay) => tokio::time::sleep(delay).await,
            Fault::Bandwidth(bytes_per_sec) => {
                let secs = read as f64 / bytes_per_sec.max(1) as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            Fault::None | Fault::Blackhole => {}
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
