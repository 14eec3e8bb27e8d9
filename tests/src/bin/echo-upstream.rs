//! Standalone echo upstream for benchmarks (`bench/proxy-vs-direct`): serves the test echo
//! server (HTTP/1.1 + HTTP/2 prior knowledge) on the address given as the first argument
//! (default 127.0.0.1:18080) until killed.

use std::net::SocketAddr;

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".to_string())
        .parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let upstream = baton_tests::EchoUpstream::start_on("bench", addr).await?;
        println!("echo upstream listening on {}", upstream.addr());
        tokio::signal::ctrl_c().await?;
        anyhow::Ok(())
    })
}
