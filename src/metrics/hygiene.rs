//! Samples that should not outlive their run, or their usefulness.
//!
//! - **A deleted run's samples** are dropped with `DROP SERIES WHERE "testid" = '<id>'`:
//!   InfluxDB 1.x removes every series of the run, in every measurement, with all their points
//!   and their index entries, which also gives the series back to `max-series-per-database`.
//!   (`DELETE WHERE …` would remove the points but, in 1.x, can leave series in the index.)
//! - **Orphans**: samples whose `testid` names no run of this server (the run was deleted while
//!   InfluxDB was down, or with its project). [`InfluxClient::run_ids_with_samples`] lists the
//!   run ids InfluxDB holds samples for; the lifecycle drops those the database no longer has.
//!   Only numeric `testid`s are considered — they are the ids this server gives its runs — so
//!   samples other tools tag with other values are left alone. The InfluxDB database is this
//!   server's: two servers sharing one InfluxDB database would delete each other's samples.
//! - **Retention** (`INFLUXDB_RAW_RETENTION`): the database's default retention policy (the
//!   one k6 writes to) gets the configured duration; InfluxDB then drops whole shard groups
//!   once they are older. A run's summary is stored in the database and stays; its time series
//!   is read from the samples and comes back empty once they are gone.

use std::collections::BTreeSet;

use super::influx::{InfluxClient, InfluxError, quote_identifier, quote_string};
use crate::config::RawRetention;

impl InfluxClient {
    /// Drops every sample of run `test_id` (all measurements). Dropping a run that has no
    /// samples is not an error.
    #[tracing::instrument(skip(self), fields(db = %self.database()))]
    pub async fn drop_run_samples(&self, test_id: i64) -> Result<(), InfluxError> {
        self.drop_runs_samples(&[test_id]).await
    }

    /// Drops every sample of the runs `test_ids`, in statements of at most 100 runs each.
    #[tracing::instrument(skip(self), fields(db = %self.database(), runs = test_ids.len()))]
    pub async fn drop_runs_samples(&self, test_ids: &[i64]) -> Result<(), InfluxError> {
        for chunk in test_ids.chunks(100) {
            let condition = chunk
                .iter()
                .map(|id| format!(r#""testid" = {}"#, quote_string(&id.to_string())))
                .collect::<Vec<_>>()
                .join(" OR ");
            match self.execute(&format!("DROP SERIES WHERE {condition}")).await {
                // Nothing was ever written: there is nothing to drop.
                Err(InfluxError::Query(message)) if message.contains("database not found") => return Ok(()),
                result => result.map(|_| ())?,
            }
        }
        Ok(())
    }

    /// The run ids (numeric `testid` tag values) InfluxDB holds samples for.
    #[tracing::instrument(skip(self), fields(db = %self.database()))]
    pub async fn run_ids_with_samples(&self) -> Result<BTreeSet<i64>, InfluxError> {
        let answer = match self.query(r#"SHOW TAG VALUES WITH KEY = "testid""#).await {
            Err(InfluxError::Query(message)) if message.contains("database not found") => Vec::new(),
            answer => answer?,
        };
        // One series per measurement, with `key` and `value` columns.
        let mut ids = BTreeSet::new();
        for series in &answer {
            let Some(column) = series.column_index("value") else { continue };
            ids.extend(series.values.iter().filter_map(|row| row.get(column)?.as_str()?.parse::<i64>().ok()));
        }
        Ok(ids)
    }

    /// Makes the database's default retention policy keep samples as `retention` says
    /// (nothing to do when untouched). Creates the database first, so the policy holds from
    /// the first sample on.
    #[tracing::instrument(skip(self), fields(db = %self.database()))]
    pub async fn apply_raw_retention(&self, retention: RawRetention) -> Result<(), InfluxError> {
        let Some(durations) = retention.influxql_durations() else {
            return Ok(());
        };
        self.create_database().await?;
        let policies =
            self.query(&format!("SHOW RETENTION POLICIES ON {}", quote_identifier(self.database()))).await?;
        let default_policy = policies.first().and_then(|series| {
            let (name, default) = (series.column_index("name")?, series.column_index("default")?);
            series
                .values
                .iter()
                .find(|row| row.get(default).and_then(serde_json::Value::as_bool) == Some(true))?
                .get(name)?
                .as_str()
                .map(str::to_owned)
        });
        let policy = default_policy.unwrap_or_else(|| "autogen".to_owned());
        self.execute(&format!(
            "ALTER RETENTION POLICY {} ON {} {durations}",
            quote_identifier(&policy),
            quote_identifier(self.database())
        ))
        .await?;
        tracing::info!(policy, %durations, "raw-sample retention applied");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::test_influxd::InfluxServer;

    async fn series_of(client: &InfluxClient, test_id: i64) -> usize {
        let statement = format!(r#"SHOW SERIES WHERE "testid" = '{test_id}'"#);
        client.query(&statement).await.unwrap().iter().map(|series| series.values.len()).sum()
    }

    #[tokio::test]
    async fn dropping_a_run_removes_its_series_in_every_measurement_and_nothing_else() {
        let server = InfluxServer::start().await;
        let client = server.client("drop");
        client.create_database().await.unwrap();
        let lines = "http_reqs,testid=1,instance_id=0 value=1 1700000000000\n\
                     http_req_duration,testid=1,instance_id=1 value=3 1700000000000\n\
                     vus,testid=1 value=3 1700000000000\n\
                     http_reqs,testid=2,instance_id=0 value=1 1700000000000\n\
                     http_reqs,testid=mine value=1 1700000000000";
        server.write("drop", lines).await;
        assert_eq!(series_of(&client, 1).await, 3);
        assert_eq!(client.run_ids_with_samples().await.unwrap(), BTreeSet::from([1, 2]));

        client.drop_run_samples(1).await.unwrap();

        assert_eq!(series_of(&client, 1).await, 0);
        assert_eq!(series_of(&client, 2).await, 1);
        assert_eq!(client.run_ids_with_samples().await.unwrap(), BTreeSet::from([2]));
        let count = client.query(r#"SELECT count("value") FROM "http_reqs" WHERE time >= 0"#).await.unwrap();
        assert_eq!(count[0].first_f64("count"), Some(2.0), "run 2's and the foreign sample remain");
        // Again, and on a database nobody wrote to: nothing to do, no error.
        client.drop_run_samples(1).await.unwrap();
        server.client("never_written").drop_run_samples(1).await.unwrap();
        assert!(server.client("never_written").run_ids_with_samples().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_retention_setting_becomes_the_default_policys_duration() {
        let server = InfluxServer::start().await;
        let client = server.client("kept");
        let policy = |client: InfluxClient| async move {
            let answer = client.query(r#"SHOW RETENTION POLICIES ON "kept""#).await.unwrap();
            let row = answer[0].values.iter().find(|row| row[4] == true).unwrap().clone();
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().to_owned(),
                row[2].as_str().unwrap().to_owned(),
            )
        };

        client.apply_raw_retention(RawRetention::Untouched).await.unwrap();
        let databases = client.query("SHOW DATABASES").await.unwrap();
        assert!(!format!("{databases:?}").contains("kept"), "untouched: not even created");

        client.apply_raw_retention(RawRetention::Hours(720)).await.unwrap();
        assert_eq!(
            policy(client.clone()).await,
            ("autogen".to_owned(), "720h0m0s".to_owned(), "24h0m0s".to_owned())
        );

        client.apply_raw_retention(RawRetention::Forever).await.unwrap();
        assert_eq!(
            policy(client.clone()).await,
            ("autogen".to_owned(), "0s".to_owned(), "168h0m0s".to_owned())
        );
    }
}
