//! Report links (`TestHistory.reportUrl`): how long one stays valid
//! (`REPORT_LINK_LIFETIME_HOURS`, 24 by default), and the key they are signed with.
//!
//! The key is not a setting: the first instance that needs it makes a random one and keeps it
//! in the database (`server_secret`), so links open on every replica and after a restart with
//! nothing to configure or rotate by hand. Deleting that row (then restarting the servers)
//! makes a new key and voids every link made before.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio::sync::OnceCell;

use super::{ConfigError, Env};
use crate::{
    access::{
        Role,
        report_link::{LinkKey, LinkRefusal, ReportLink},
    },
    db::repo,
    error::AppResult,
};

/// The name of the key's row in `server_secret`.
const KEY_NAME: &str = "report_link_key";

/// `REPORT_LINK_LIFETIME_HOURS`, and the key once read.
#[derive(Clone, Debug)]
pub struct ReportSettings {
    /// How long a report link opens the page.
    pub link_lifetime: Duration,
    /// Read from (or made in) the database at its first use, then kept.
    key: Arc<OnceCell<LinkKey>>,
}

impl ReportSettings {
    /// The longest lifetime a link may be given: a year.
    const MAX_LIFETIME_HOURS: f64 = 24.0 * 366.0;

    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let hours = env.number(
            "REPORT_LINK_LIFETIME_HOURS",
            24.0,
            |hours| hours > 0.0 && hours <= Self::MAX_LIFETIME_HOURS,
            "a positive number of hours, at most 8784 (a year)",
        )?;
        Ok(Self { link_lifetime: Duration::from_secs_f64(hours * 3600.0), key: Arc::default() })
    }

    async fn key(&self, db: &DatabaseConnection) -> AppResult<&LinkKey> {
        self.key
            .get_or_try_init(|| async {
                let secret = repo::secrets::get_or_create(db, KEY_NAME, LinkKey::generate_secret()).await?;
                Ok(LinkKey::from_secret(&secret))
            })
            .await
    }

    /// A link to run `run_id`'s report as `role` sees it, valid for [`Self::link_lifetime`] from `now`.
    pub async fn link(
        &self,
        db: &DatabaseConnection,
        run_id: i64,
        role: Role,
        now: DateTime<Utc>,
    ) -> AppResult<String> {
        let lifetime = chrono::Duration::from_std(self.link_lifetime).unwrap_or(chrono::Duration::days(366));
        let link = ReportLink { run_id, role, expires: (now + lifetime).timestamp() };
        Ok(link.path(self.key(db).await?))
    }

    /// The role a link's `role`, `expires` and `sig` grant on run `run_id` at `now`, or why none.
    pub async fn verify(
        &self,
        db: &DatabaseConnection,
        run_id: i64,
        (role, expires, sig): (Option<&str>, Option<&str>, Option<&str>),
        now: DateTime<Utc>,
    ) -> AppResult<Result<Role, LinkRefusal>> {
        let key = self.key(db).await?;
        Ok(ReportLink::verify(key, run_id, role, expires, sig, now.timestamp()).map(|link| link.role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings_from_pairs;

    #[test]
    fn links_live_a_day_unless_told_otherwise_and_at_most_a_year() {
        let lifetime = |pairs: &[(&str, &str)]| settings_from_pairs(pairs).map(|s| s.report.link_lifetime);
        assert_eq!(lifetime(&[]).unwrap(), Duration::from_secs(24 * 3600));
        assert_eq!(lifetime(&[("REPORT_LINK_LIFETIME_HOURS", "0.5")]).unwrap(), Duration::from_secs(1800));
        for bad in ["0", "-1", "8785", "soon"] {
            let error = lifetime(&[("REPORT_LINK_LIFETIME_HOURS", bad)]).unwrap_err();
            assert_eq!(error.variable, "REPORT_LINK_LIFETIME_HOURS", "{bad}");
        }
    }
}
