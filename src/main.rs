use anyhow::Context;
use metric_vault::{
    commands, config::Settings, demo_target, graphql::schema, http::ArenaTrimmer, startup::Application,
    telemetry,
};

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // After a crowd of websockets leaves, each worker gives back what its cache keeps.
        .on_thread_park(ArenaTrimmer::on_worker_park)
        .build()
        .context("starting the tokio runtime")?
        .block_on(run())
}

const USAGE: &str =
    "usage: metric-vault                 serve the API (settings from the environment; see README)
       metric-vault run --plan P …   launch a saved test plan and wait for its verdict (CI gate; `run --help`)
       metric-vault token create --name NAME --role VIEWER|OPERATOR|ADMIN
       metric-vault token list
       metric-vault demo-target [--bind 127.0.0.1:8080]
       metric-vault export-schema
";

/// The subcommands, besides serving.
const KNOWN: [&str; 4] = ["run", "token", "demo-target", "export-schema"];

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--help" | "-h" | "help") => {
            print!("{USAGE}");
            return Ok(());
        }
        Some(unknown) if unknown.starts_with('-') || !KNOWN.contains(&unknown) => {
            eprint!("metric-vault: unknown command `{unknown}`\n{USAGE}");
            std::process::exit(2);
        }
        _ => {}
    }
    if args.first().map(String::as_str) == Some("export-schema") {
        print!("{}", schema::sdl());
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("demo-target") {
        // `demo-target [--bind 127.0.0.1:8080]`
        let bind = args.iter().position(|a| a == "--bind").and_then(|i| args.get(i + 1));
        let bind = bind.map_or("127.0.0.1:8080", String::as_str);
        let bind = bind
            .parse()
            .with_context(|| format!("--bind {bind}: expected an address like 127.0.0.1:8080"))?;
        return demo_target::serve(bind).await;
    }
    if args.first().map(String::as_str) == Some("run") {
        // A client of a running server: none of the server's settings apply.
        std::process::exit(commands::run::run(&args[1..]).await);
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("metric-vault: configuration error: {err}");
            std::process::exit(2);
        }
    };
    if args.first().map(String::as_str) == Some("token") {
        if let Err(err) = commands::token(&settings, &args[1..]).await {
            eprintln!("metric-vault token: {err:#}");
            std::process::exit(2);
        }
        return Ok(());
    }
    telemetry::init(&settings.log_level);
    let app = Application::build(settings).await.context("starting Metric Vault")?;
    app.run_until_stopped().await
}
