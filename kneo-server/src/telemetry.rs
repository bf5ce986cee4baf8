//! JSON logs: one object per line on stderr, fields flattened, targets `kneo_serv.service`,
//! `kneo_serv.platform` and `kneo_serv.audit`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Installs the global JSON logger at `level` (dependencies stay at `warn` unless asked).
///
/// `KNEO_LOG` (an `EnvFilter` directive) overrides the filter for debugging sessions.
pub fn init(level: &str) {
    let filter = std::env::var("KNEO_LOG")
        .ok()
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "warn,kneo_serv={level},kneo_server={level},kneo={level}"
            ))
        });
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_span_events(FmtSpan::NONE)
        .with_target(true)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}
