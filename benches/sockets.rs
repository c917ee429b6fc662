//! Hostile websockets benchmark (issue 14): the server's memory when 1,000 unauthenticated
//! websockets each send the most they may before `connection_init` (WS_MAX_BYTES_BEFORE_INIT,
//! 64 KiB by default), with the server's default settings.
//!
//! Two rounds, each of 1,000 sockets opened from 127.0.0.2–127.0.0.5 (250 each, within the
//! default WS_MAX_SOCKETS_PER_ADDRESS) and held open together:
//!
//! - **whole**: each sends one message of exactly the budget (frame header included), a
//!   `ping` padded with spaces, which the server reads, parses and answers;
//! - **held**: each sends a frame announcing that size and all of it but its last byte, so
//!   the server keeps the partial frame buffered until the socket's init timeout (5 s).
//!
//! The server's RSS is read when every socket of a round has sent (and, for whole messages,
//! been answered), with `/health`'s latency meanwhile; then once they have closed.
//!
//! Run: `cargo bench --bench sockets [-- --sockets N]`. Everything runs on 127.0.0.0/8: the
//! release `metric-vault` binary as a child process (so its RSS is its own) and the clients
//! in this process.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Server, http_client, kib_to_mb, load_average, machine, rss_kib, server_binary, start_server};
use futures_util::{SinkExt, StreamExt, stream};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpSocket, TcpStream},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

/// The server's default WS_MAX_BYTES_BEFORE_INIT.
const BUDGET: usize = 64 * 1024;
/// A masked client frame with a 16-bit length: 2 header bytes, 2 length bytes, 4 mask bytes.
const FRAME_HEADER: usize = 8;
/// Source addresses, each under the default cap of 256 sockets per address.
const SOURCES: [&str; 4] = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
const CONNECT_CONCURRENCY: usize = 50;

#[derive(Clone, Copy)]
enum Round {
    Whole,
    Held,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let sockets = parse_sockets()?;
    ensure!(
        sockets <= SOURCES.len() * 256,
        "at most {} sockets within the per-address cap",
        SOURCES.len() * 256
    );
    let load_before = load_average();
    let workdir = tempfile::tempdir()?;
    let database_url = format!("sqlite://{}/sockets.db?mode=rwc", workdir.path().display());
    let mut server = start_server(&server_binary()?, &database_url, workdir.path(), &[])?;
    let http = http_client()?;
    server.wait_ready(&http).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss_kib(server.pid())?;
    println!("machine: {}; load before: {load_before}", machine());
    println!("server RSS at rest: {:.1} MB", baseline.rss_mb());

    for round in [Round::Whole, Round::Held] {
        let name = match round {
            Round::Whole => "whole 64 KiB messages, each answered",
            Round::Held => "64 KiB frames held one byte short",
        };
        let started = Instant::now();
        let open = open_round(&server, sockets, round).await?;
        let sent_in = started.elapsed();
        let health = Instant::now();
        let answer = http.get(server.url("/health")).send().await?;
        ensure!(answer.status() == 200, "/health answered {}", answer.status());
        let health_ms = health.elapsed().as_secs_f64() * 1000.0;
        let memory = rss_kib(server.pid())?;
        ensure!(
            sent_in < Duration::from_secs(4),
            "the round took {sent_in:?}: its first sockets may have met the 5 s init timeout"
        );
        println!(
            "{sockets} sockets, {name}: sent in {:.2} s; server RSS {:.1} MB (+{:.1} MB, {:.0} KB per socket); \
             /health in {health_ms:.1} ms",
            sent_in.as_secs_f64(),
            memory.rss_mb(),
            kib_to_mb(memory.rss_kib.saturating_sub(baseline.rss_kib)),
            (memory.rss_kib.saturating_sub(baseline.rss_kib)) as f64 * 1.024 / sockets as f64,
        );
        drop(open);
        tokio::time::sleep(Duration::from_secs(6)).await;
        println!("  after they closed: server RSS {:.1} MB", rss_kib(server.pid())?.rss_mb());
    }
    let end = rss_kib(server.pid())?;
    println!("server peak RSS (VmHWM): {:.1} MB", end.hwm_mb());
    server.stop();
    Ok(())
}

fn parse_sockets() -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let mut sockets = 1000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sockets" => sockets = args.next().context("--sockets N")?.parse()?,
            other => bail!("unknown option {other}: use --sockets N"),
        }
    }
    Ok(sockets)
}

/// Opens `count` sockets and has each send its round's bytes; returns them, still open.
async fn open_round(
    server: &Server,
    count: usize,
    round: Round,
) -> anyhow::Result<Vec<WebSocketStream<TcpStream>>> {
    let address = server.address;
    stream::iter(0..count)
        .map(|n| async move {
            let source = SOURCES[n % SOURCES.len()];
            let socket = TcpSocket::new_v4()?;
            socket.bind(format!("{source}:0").parse()?)?;
            let tcp = socket.connect(address).await?;
            let mut request = format!("ws://{address}/graphql").into_client_request()?;
            request
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
            let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.context("handshake")?;
            send(&mut ws, round).await?;
            Ok::<_, anyhow::Error>(ws)
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn send(ws: &mut WebSocketStream<TcpStream>, round: Round) -> anyhow::Result<()> {
    let payload = padded_ping(BUDGET - FRAME_HEADER);
    match round {
        Round::Whole => {
            ws.send(Message::text(payload)).await?;
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
                Some(Ok(Message::Text(text))) if text.contains("pong") => Ok(()),
                other => bail!("expected a pong, got {other:?}"),
            }
        }
        Round::Held => {
            // FIN + text, masked with a zero key (the payload goes as it is), 16-bit length.
            let length = u16::try_from(payload.len())?.to_be_bytes();
            let mut frame = vec![0x81, 0x80 | 126, length[0], length[1], 0, 0, 0, 0];
            frame.extend_from_slice(&payload.as_bytes()[..payload.len() - 1]);
            let tcp = ws.get_mut();
            tcp.write_all(&frame).await?;
            tcp.flush().await?;
            Ok(())
        }
    }
}

/// A `ping` of exactly `size` bytes.
fn padded_ping(size: usize) -> String {
    let empty = r#"{"type":"ping","payload":{"pad":""}}"#;
    format!(r#"{{"type":"ping","payload":{{"pad":"{}"}}}}"#, " ".repeat(size - empty.len()))
}
