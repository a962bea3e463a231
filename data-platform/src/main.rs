//! `data-platform [ADDR]`: runs the mock data platform on ADDR (default 127.0.0.1:9000); the
//! commerce server delivers to it with `DATA_PLATFORM_URL=http://ADDR/events`.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr.parse().map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("usage: data-platform [ADDR] (e.g. 0.0.0.0:9000): {err}"),
            )
        })?,
        None => SocketAddr::from(([127, 0, 0, 1], 9000)),
    };
    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!(
        "mock data platform: http://{}/events",
        listener.local_addr()?
    );
    data_platform::serve(listener).await
}
