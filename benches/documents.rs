//! Hostile-document benchmark (issue 14): the worst documents we can construct, sent to the
//! release server over HTTP on 127.0.0.1, each timed from request to answer (parse, our limit
//! checks, async-graphql's validation, and execution when it gets that far). Target: every
//! document that is refused answers in < 10 ms; the accepted ones show what a legitimate worst
//! case costs. Also reports the server's RSS before and after, and `/health` latency during a
//! flood of the worst refused documents.
//!
//! Run: `cargo bench --bench documents [-- --iterations N]`.

mod common;

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

/// What modern GraphQL clients accept: refusals answer 400.
const ACCEPT: &str = "application/graphql-response+json, application/json;q=0.9";

fn nested(open: &str, inner: &str, close: &str, levels: usize) -> String {
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

fn doubling(levels: usize, leaf: &str) -> String {
    let mut document = format!("query {{ ...F{levels} }}\nfragment F0 on Query {{ {leaf} }}\n");
    for level in 1..=levels {
        document.push_str(&format!("fragment F{level} on Query {{ ...F{0} ...F{0} }}\n", level - 1));
    }
    document
}

/// (name, document) for every shape we could think of that costs more to check than to send.
fn documents() -> Vec<(&'static str, String)> {
    let aliases = |count: usize, field: &str| -> String {
        format!("{{ {} }}", (0..count).map(|i| format!("a{i}: {field}")).collect::<Vec<_>>().join(" "))
    };
    vec![
        ("list value nested 3,000 deep (the report)", format!("query {{ project(id: {}) {{ id }} }}", nested("[", "1", "]", 3000))),
        ("list value nested 64 deep (the limit)", format!("query {{ project(id: {}) {{ id }} }}", nested("[", "1", "]", 62))),
        ("object value nested 3,000 deep", format!("query {{ project(id: {}) {{ id }} }}", nested("{a: ", "1", "}", 3000))),
        ("selection sets nested 3,000 deep", format!("query {}", nested("{ projects ", "{ id }", "}", 3000))),
        ("inline fragments nested 63 deep", format!("query {}", nested("{ ... on Query ", "{ projects { id } }", "}", 62))),
        ("fragments doubling 31 levels (909 bytes)", doubling(31, "projects { id }")),
        ("fragments doubling 11 levels (largest accepted)", doubling(10, "projects { id }")),
        ("__typename-only fragments doubling 60 levels", doubling(60, "__typename")),
        ("fragment cycle through fields", "query { ...A } fragment A on Query { projects { ...B } } fragment B on Project { specs { project { ...B } } }".to_owned()),
        ("2,100 aliased __typename (over the token limit)", aliases(2_100, "__typename")),
        ("1,990 aliased __typename (accepted)", aliases(1_990, "__typename")),
        ("590 aliased fields with arguments", aliases(590, "project(id: 1) { id }")),
        ("same response name, 590 different arguments", format!("{{ {} }}", (0..590).map(|i| format!("a: project(id: {i}) {{ id }}")).collect::<Vec<_>>().join(" "))),
        ("5,900-item list argument", format!("{{ project(id: [{}]) {{ id }} }}", vec!["1"; 5900].join(","))),
        ("1,490 unused variables", format!("query({}) {{ projects {{ id }} }}", (0..1490).map(|i| format!("$v{i}: Int")).collect::<Vec<_>>().join(" "))),
        ("370 variables, each used", format!("query({}) {{ {} }}",
            (0..370).map(|i| format!("$v{i}: ID!")).collect::<Vec<_>>().join(" "),
            (0..370).map(|i| format!("p{i}: project(id: $v{i}) {{ id }}")).collect::<Vec<_>>().join(" "))),
        ("740 fragments, each spread once", {
            let mut document = format!("query {{ {} }}", (0..740).map(|i| format!("...F{i}")).collect::<Vec<_>>().join(" "));
            for i in 0..740 {
                document.push_str(&format!(" fragment F{i} on Query {{ __typename }}"));
            }
            document
        }),
        ("850 directives on one field", format!("{{ __typename {} }}", vec!["@include(if: true)"; 850].join(" "))),
        ("740 operations in one document", (0..740).map(|i| format!("query Q{i} {{ projects {{ id }} }}")).collect::<Vec<_>>().join("\n")),
        ("a 1 MiB string argument", format!("{{ project(id: \"{}\") {{ id }} }}", "x".repeat(1 << 20))),
        ("a 60 KiB string argument (the longest accepted)", format!("{{ project(id: \"{}\") {{ id }} }}", "x".repeat(60 << 10))),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let iterations: usize = args
        .iter()
        .position(|a| a == "--iterations")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(30);
    let workdir = tempfile::tempdir()?;
    let database_url = format!("sqlite://{}/bench.db?mode=rwc", workdir.path().display());
    let mut server = common::start_server(&common::server_binary()?, &database_url, workdir.path(), &[])?;
    let url = format!("http://{}/graphql", server.address);
    let http = common::http_client()?;
    server.wait_ready(&http).await?;
    println!("machine: {}; load average at start {}", common::machine(), common::load_average());
    let rss_before = common::rss_kib(server.child.id())?;

    println!("\n| document | bytes | HTTP status | code | p50 ms | max ms | < 10 ms |");
    println!("|---|---|---|---|---|---|---|");
    let mut worst_refused = 0.0f64;
    for (name, query) in documents() {
        let mut times = Vec::with_capacity(iterations);
        let mut outcome = (0u16, String::new());
        for _ in 0..iterations {
            let started = Instant::now();
            let response =
                http.post(&url).header("accept", ACCEPT).json(&json!({ "query": query })).send().await?;
            let status = response.status().as_u16();
            let body: Value = response.json().await.context("a JSON answer")?;
            times.push(common::millis(started.elapsed()));
            let code = body["errors"][0]["extensions"]["code"].as_str().unwrap_or("-").to_owned();
            outcome = (status, code);
        }
        let times = common::sorted(times);
        let (p50, max) = (common::percentile(&times, 50.0), *times.last().unwrap());
        if outcome.0 == 400 {
            worst_refused = worst_refused.max(p50);
        }
        println!(
            "| {name} | {} | {} | {} | {p50:.2} | {max:.2} | {} |",
            query.len(),
            outcome.0,
            outcome.1,
            common::verdict(p50 < 10.0)
        );
    }

    // /health while four clients send the report's documents as fast as they can.
    let flood_until = Instant::now() + Duration::from_secs(5);
    let attack = doubling(31, "projects { id }");
    let mut flooders = Vec::new();
    for _ in 0..4 {
        let (http, url, attack) = (http.clone(), url.clone(), attack.clone());
        flooders.push(tokio::spawn(async move {
            let mut sent = 0usize;
            while Instant::now() < flood_until {
                let _ = http.post(&url).json(&json!({ "query": attack })).send().await;
                sent += 1;
            }
            sent
        }));
    }
    let mut health = Vec::new();
    while Instant::now() < flood_until {
        let started = Instant::now();
        http.get(format!("http://{}/health", server.address)).send().await?.error_for_status()?;
        health.push(common::millis(started.elapsed()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut sent = 0;
    for flooder in flooders {
        sent += flooder.await?;
    }
    let health = common::sorted(health);
    let rss_after = common::rss_kib(server.child.id())?;
    println!(
        "\nflood: {sent} refused documents in 5 s from 4 clients; /health p50 {:.2} ms, max {:.2} ms (n={})",
        common::percentile(&health, 50.0),
        health.last().unwrap(),
        health.len()
    );
    println!(
        "server RSS: {:.1} MB before, {:.1} MB after (peak {:.1} MB)",
        common::kib_to_mb(rss_before.rss_kib),
        common::kib_to_mb(rss_after.rss_kib),
        common::kib_to_mb(rss_after.hwm_kib)
    );
    println!(
        "worst refused document: p50 {worst_refused:.2} ms (target < 10 ms: {})",
        common::verdict(worst_refused < 10.0)
    );
    Ok(())
}
