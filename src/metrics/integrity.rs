//! How many of a run's request samples InfluxDB holds, per k6 instance: compared with what
//! each instance reported itself ([`crate::k6::counts`]), it tells whether the stored samples
//! (and so every figure computed from them) are complete.

use std::collections::BTreeMap;

use super::influx::{InfluxClient, InfluxError, RunFilter, TimeWindow};

impl InfluxClient {
    /// `http_reqs` points of run `test_id` within `window`, by `instance_id` tag value (the
    /// empty string for samples without one). Instances without any point are absent.
    #[tracing::instrument(skip(self), fields(db = %self.database()))]
    pub async fn stored_requests_by_instance(
        &self,
        test_id: i64,
        window: TimeWindow,
    ) -> Result<BTreeMap<String, i64>, InfluxError> {
        let RunFilter { run, .. } = RunFilter::new(test_id, window, None);
        let statement = format!(
            r#"SELECT count("value") AS "stored" FROM "http_reqs" WHERE {run} GROUP BY "instance_id""#
        );
        let series = self.query(&statement).await?;
        Ok(series
            .iter()
            .filter_map(|series| {
                let instance = series.tags.get("instance_id").cloned().unwrap_or_default();
                Some((instance, series.first_f64("stored")?.round() as i64))
            })
            .collect())
    }
}
