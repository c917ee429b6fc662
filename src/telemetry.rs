//! Tracing subscriber: pretty lines on a terminal, JSON lines otherwise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` wins over `LOG_LEVEL` when both are set.
pub fn init(log_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{log_level},sqlx=warn,sea_orm=warn")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if std::io::stdout().is_terminal() {
        builder.compact().try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    };
    // A second init (tests start many apps in one process) keeps the first subscriber.
    let _ = result;
}
