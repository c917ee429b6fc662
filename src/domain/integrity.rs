//! Whether a run's stored samples are complete: per k6 instance, the requests k6 reported at
//! its end ([`crate::k6::counts`]) against the `http_reqs` samples InfluxDB holds for it.
//!
//! A run is **complete** only when every instance reported and InfluxDB holds exactly what it
//! reported. Anything else — an instance that wrote no counts (killed, crashed, a pod gone),
//! InfluxDB unreadable, fewer samples stored (a refused batch, same-instant samples collapsed
//! into one point), or more than reported — is incomplete, with the figures that say why: the
//! time-based figures (TPS per second, percentiles) were computed from what InfluxDB holds.

use serde::{Deserialize, Serialize};

/// One k6 instance's figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSamples {
    /// The instance's index (its `instance_id` tag, its execution segment).
    pub instance: u32,
    /// Requests k6 counted (`http_reqs`); None when the instance wrote no end-of-test counts.
    pub reported: Option<i64>,
    /// `http_reqs` samples InfluxDB holds for it; None while InfluxDB could not be read.
    pub stored: Option<i64>,
}

impl InstanceSamples {
    /// Samples k6 reported that InfluxDB does not hold (0 when it holds as many or more).
    pub fn missing(&self) -> Option<i64> {
        Some((self.reported? - self.stored?).max(0))
    }

    pub fn complete(&self) -> bool {
        self.reported.is_some() && self.reported == self.stored
    }
}

/// A run's integrity: every instance's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    pub instances: Vec<InstanceSamples>,
}

impl Integrity {
    /// From what each instance (by index) reported and what InfluxDB holds by `instance_id` tag
    /// value (None: InfluxDB could not be read). `parallelism` instances are always listed.
    pub fn new(
        parallelism: u32,
        reported: &[Option<i64>],
        stored: Option<&std::collections::BTreeMap<String, i64>>,
    ) -> Self {
        let instances = (0..parallelism.max(1))
            .map(|instance| InstanceSamples {
                instance,
                reported: reported.get(instance as usize).copied().flatten(),
                stored: stored.map(|stored| stored.get(&instance.to_string()).copied().unwrap_or(0)),
            })
            .collect();
        Self { instances }
    }

    /// The same instances with what InfluxDB holds now.
    pub fn with_stored(&self, stored: &std::collections::BTreeMap<String, i64>) -> Self {
        let reported: Vec<Option<i64>> = self.instances.iter().map(|i| i.reported).collect();
        Self::new(self.instances.len() as u32, &reported, Some(stored))
    }

    /// Requests k6 reported over all instances; None when one did not report.
    pub fn reported(&self) -> Option<i64> {
        self.instances.iter().map(|i| i.reported).sum()
    }

    /// Samples InfluxDB holds over all instances; None when it could not be read.
    pub fn stored(&self) -> Option<i64> {
        self.instances.iter().map(|i| i.stored).sum()
    }

    /// Reported samples InfluxDB does not hold, over all instances; None when either side is
    /// unknown for an instance.
    pub fn missing(&self) -> Option<i64> {
        self.instances.iter().map(InstanceSamples::missing).sum()
    }

    /// Every instance reported, and InfluxDB holds exactly what each reported.
    pub fn complete(&self) -> bool {
        !self.instances.is_empty() && self.instances.iter().all(InstanceSamples::complete)
    }

    /// Why the run is not complete, in words; None when it is.
    pub fn shortfall(&self) -> Option<String> {
        if self.complete() {
            return None;
        }
        let mut reasons = Vec::new();
        let unreported: Vec<String> =
            self.instances.iter().filter(|i| i.reported.is_none()).map(|i| i.instance.to_string()).collect();
        if !unreported.is_empty() {
            reasons.push(format!(
                "k6 instance(s) {} wrote no end-of-test counts, so the stored samples cannot be checked",
                unreported.join(", ")
            ));
        }
        if self.instances.iter().any(|i| i.stored.is_none()) {
            reasons.push("InfluxDB could not be read".to_owned());
        }
        for instance in &self.instances {
            if let (Some(reported), Some(stored)) = (instance.reported, instance.stored)
                && reported != stored
            {
                reasons.push(format!(
                    "instance {}: k6 reported {reported} requests, InfluxDB holds {stored} samples{}",
                    instance.instance,
                    if stored < reported {
                        format!(" ({} missing)", reported - stored)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        Some(reasons.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn stored(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn complete_only_when_every_instance_matches() {
        let exact = Integrity::new(2, &[Some(10), Some(12)], Some(&stored(&[("0", 10), ("1", 12)])));
        assert!(exact.complete());
        assert_eq!((exact.reported(), exact.stored(), exact.missing()), (Some(22), Some(22), Some(0)));
        assert_eq!(exact.shortfall(), None);

        let short = Integrity::new(2, &[Some(10), Some(12)], Some(&stored(&[("0", 10), ("1", 9)])));
        assert!(!short.complete());
        assert_eq!(short.missing(), Some(3));
        assert_eq!(short.instances[1].missing(), Some(3));
        assert!(short.shortfall().unwrap().contains("instance 1: k6 reported 12 requests, InfluxDB holds 9"));

        // An instance InfluxDB holds nothing of is missing all it reported.
        let silent = Integrity::new(2, &[Some(10), Some(12)], Some(&stored(&[("0", 10)])));
        assert_eq!(silent.missing(), Some(12));
    }

    #[test]
    fn unknown_sides_are_never_complete() {
        let unreported = Integrity::new(2, &[Some(10), None], Some(&stored(&[("0", 10), ("1", 12)])));
        assert!(!unreported.complete());
        assert_eq!((unreported.reported(), unreported.missing()), (None, None));
        assert!(unreported.shortfall().unwrap().contains("instance(s) 1 wrote no end-of-test counts"));

        let unread = Integrity::new(1, &[Some(10)], None);
        assert!(!unread.complete());
        assert_eq!(unread.stored(), None);
        let read = unread.with_stored(&stored(&[("0", 10)]));
        assert!(read.complete());

        let excess = Integrity::new(1, &[Some(10)], Some(&stored(&[("0", 11)])));
        assert!(!excess.complete(), "more samples than requests is not exact either");
        assert_eq!(excess.missing(), Some(0));
    }
}
