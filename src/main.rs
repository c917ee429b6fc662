use anyhow::Context;
use metric_vault::{config::Settings, graphql::schema, startup::Application, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("export-schema") {
        print!("{}", schema::sdl());
        return Ok(());
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("metric-vault: configuration error: {err}");
            std::process::exit(2);
        }
    };
    telemetry::init(&settings.log_level);
    let app = Application::build(settings).await.context("starting Metric Vault")?;
    app.run_until_stopped().await
}
