//! Schedules: a plan launched at the due times of a cron expression in a time zone.
//!
//! Every server runs [`Lifecycle::keep_schedules`]: it sleeps until the nearest due time (at
//! most a second, so schedules another replica adds are seen), then takes each due time with
//! a conditional update ([`repo::schedules::take`]) — of several replicas exactly one wins —
//! and records what it did, one row per due time: LAUNCHED, SKIPPED_OVERLAP (a run of the
//! plan is still active), SKIPPED_MISSED (every server was down at the due time and
//! `SCHEDULE_MISSED_RUNS=skip`) or FAILED (the launch was refused; the error is kept).
//! When every server was down over several due times, the newest one that has come is acted
//! on (launched when it is recent, else as `SCHEDULE_MISSED_RUNS` says) and the earlier ones
//! are recorded together, once, as SKIPPED_MISSED.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};

use super::Lifecycle;
use crate::{
    config::MissedRuns,
    db::{
        entities::test_schedule,
        repo::{
            self,
            schedules::{Firing, ScheduleSettings},
        },
    },
    domain::FiringOutcome,
    error::{AppError, AppResult},
};

/// The longest a server sleeps between two looks at the schedules: how soon it sees a schedule
/// another replica created (whose first due time is at least the next whole minute). A
/// schedule's own due times are slept to exactly, and changes made here wake it at once.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// A parsed cron expression in its time zone.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    /// Parses a five-field cron expression (minute hour day-of-month month day-of-week; names
    /// like `MON` and `JAN`, ranges, lists and steps) and an IANA time zone name. Errors name
    /// the input field: `input.cron`, `input.timeZone`.
    pub fn parse(expression: &str, time_zone: &str) -> AppResult<Self> {
        let expression = expression.trim();
        if expression.len() > 200 {
            return Err(AppError::bad_input("input.cron", "a cron expression is at most 200 characters"));
        }
        let fields = expression.split_whitespace().count();
        if fields != 5 {
            return Err(AppError::bad_input(
                "input.cron",
                format!(
                    "`{expression}` has {fields} fields; a schedule takes five: minute hour day-of-month month day-of-week (e.g. `0 2 * * *`, every day at 02:00)"
                ),
            ));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(expression).map_err(|err| {
            AppError::bad_input("input.cron", format!("`{expression}` is not a valid cron expression: {err}"))
        })?;
        let zone: Tz = time_zone.trim().parse().map_err(|_| {
            AppError::bad_input(
                "input.timeZone",
                format!("`{time_zone}` is not a known time zone; use an IANA name such as `UTC` or `Europe/Berlin`"),
            )
        })?;
        let schedule = Self { cron, zone };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(AppError::bad_input("input.cron", format!("`{expression}` never fires")));
        }
        Ok(schedule)
    }

    /// The first due time strictly after `time`, or None when there is none.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Due times are whole minutes: the search starts from a whole second (the library
        // keeps the fraction it is given).
        let local = time.trunc_subsecs(0).with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc).trunc_subsecs(0))
    }

    /// The time zone's canonical name.
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }
}

/// A schedule as the API gives it, checked and with its first due time.
pub fn settings(cron: &str, time_zone: &str, enabled: bool) -> AppResult<ScheduleSettings> {
    let schedule = CronSchedule::parse(cron, time_zone)?;
    Ok(ScheduleSettings {
        cron: cron.trim().to_owned(),
        time_zone: schedule.zone_name().to_owned(),
        enabled,
        next_run_at: if enabled { schedule.next_after(Utc::now()) } else { None },
    })
}

impl Lifecycle {
    /// Fires due schedules until the process ends.
    pub(super) async fn keep_schedules(self: Arc<Self>) {
        loop {
            let now = Utc::now();
            // One statement a look: the due schedules and the nearest one to come.
            let nearest = match repo::schedules::upcoming(&self.db, now).await {
                Ok((due, nearest)) => {
                    for schedule in due {
                        let lifecycle = self.clone();
                        // Launches run side by side: a slow one does not delay the others.
                        tokio::spawn(async move { lifecycle.fire(schedule).await });
                    }
                    nearest
                }
                Err(err) => {
                    tracing::warn!(error = ?err, "could not read the due schedules; trying again");
                    None
                }
            };
            let wait = nearest
                .and_then(|due| (due - Utc::now()).to_std().ok())
                .map_or(LOOK_EVERY, |until| until.min(LOOK_EVERY));
            // A schedule changed through this server is looked at at once.
            let _ =
                tokio::time::timeout(wait.max(Duration::from_millis(5)), self.schedules_changed.notified())
                    .await;
        }
    }

    /// Looks at the schedules now (one was created or changed through this server).
    pub fn schedules_changed(&self) {
        self.schedules_changed.notify_one();
    }

    /// Takes one due time of `schedule` and does what it says, unless another server took it.
    #[tracing::instrument(skip_all, fields(schedule_id = schedule.id))]
    async fn fire(&self, schedule: test_schedule::Model) {
        let Some(due_at) = schedule.next_run_at else { return };
        let now = Utc::now();
        let parsed = CronSchedule::parse(&schedule.cron, &schedule.time_zone);
        // The due times that have come since `due_at` (all servers were down for them): the
        // newest is acted on, the earlier ones are recorded once, as missed.
        let mut latest = due_at;
        let mut passed_over = 0u32;
        if let Ok(cron) = &parsed {
            while let Some(later) = cron.next_after(latest).filter(|later| *later <= now) {
                latest = later;
                passed_over += 1;
                if passed_over >= 100_000 {
                    break;
                }
            }
        }
        let next = parsed.as_ref().ok().and_then(|cron| cron.next_after(now.max(latest)));
        match repo::schedules::take(&self.db, schedule.id, due_at, next).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(error = ?err, "could not take a due schedule");
                return;
            }
        }
        if passed_over > 0 {
            let message = format!(
                "{passed_over} due time(s) from {due_at} to before {latest} passed while no server was running; the latest is the one acted on"
            );
            self.record(&schedule, due_at, (FiringOutcome::SkippedMissed, None, Some(message))).await;
        }
        let outcome = match parsed {
            Err(err) => {
                (FiringOutcome::Failed, None, Some(format!("the schedule no longer parses: {err:?}")))
            }
            Ok(_) => self.fire_plan(schedule.plan_id, latest).await,
        };
        self.record(&schedule, latest, outcome).await;
    }

    async fn record(
        &self,
        schedule: &test_schedule::Model,
        due_at: DateTime<Utc>,
        (outcome, run, message): (FiringOutcome, Option<i64>, Option<String>),
    ) {
        tracing::info!(plan_id = schedule.plan_id, %due_at, ?outcome, run_id = run, "schedule fired");
        let firing = Firing {
            schedule_id: schedule.id,
            due_at,
            outcome,
            test_history_id: run,
            message,
            fired_by: self.instance.clone(),
        };
        if let Err(err) = repo::schedules::record_firing(&self.db, firing).await {
            tracing::warn!(error = ?err, "could not record a schedule's firing");
        }
    }

    /// Launches the plan for a due time, or says why not.
    async fn fire_plan(
        &self,
        plan_id: i64,
        due_at: DateTime<Utc>,
    ) -> (FiringOutcome, Option<i64>, Option<String>) {
        let late = Utc::now() - due_at;
        if late
            > chrono::Duration::from_std(self.settings.schedule_missed_after)
                .unwrap_or(chrono::TimeDelta::MAX)
            && self.settings.schedule_missed_runs == MissedRuns::Skip
        {
            let message = format!(
                "no server was running at the due time ({}s late); SCHEDULE_MISSED_RUNS=skip",
                late.num_seconds()
            );
            return (FiringOutcome::SkippedMissed, None, Some(message));
        }
        match repo::plans::active_run(&self.db, plan_id).await {
            Ok(Some(run)) => {
                let message = format!("run {run} of this plan was still active");
                return (FiringOutcome::SkippedOverlap, Some(run), Some(message));
            }
            Ok(None) => {}
            Err(err) => return (FiringOutcome::Failed, None, Some(format!("{err:?}"))),
        }
        match self.launch_plan_exclusively(plan_id).await {
            Ok(run) => (FiringOutcome::Launched, Some(run.id), None),
            // Another launch of the plan (a second schedule, a replica) got in first.
            Err(err @ AppError::Conflict(_)) => {
                let active = repo::plans::active_run(&self.db, plan_id).await.ok().flatten();
                (FiringOutcome::SkippedOverlap, active, Some(err.message()))
            }
            Err(err) => (FiringOutcome::Failed, None, Some(err.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn due_times_follow_the_time_zone_through_daylight_saving() {
        let nightly = CronSchedule::parse("0 2 * * *", "Europe/Berlin").unwrap();
        // Winter: 02:00 CET is 01:00 UTC; summer: 02:00 CEST is 00:00 UTC.
        assert_eq!(nightly.next_after(at("2026-01-10T12:00:00Z")), Some(at("2026-01-11T01:00:00Z")));
        assert_eq!(nightly.next_after(at("2026-07-10T12:00:00Z")), Some(at("2026-07-11T00:00:00Z")));
        // 2026-03-29 has no 02:00 in Berlin (02:00 → 03:00): at most one due time that day, none twice.
        let spring = nightly.next_after(at("2026-03-28T12:00:00Z")).unwrap();
        let after = nightly.next_after(spring).unwrap();
        assert!(after - spring >= chrono::Duration::hours(20), "{spring} then {after}");
        // 2026-10-25 has 02:00 twice (03:00 → 02:00): the schedule fires once.
        let autumn = nightly.next_after(at("2026-10-24T12:00:00Z")).unwrap();
        let after = nightly.next_after(autumn).unwrap();
        assert!(after - autumn >= chrono::Duration::hours(20), "{autumn} then {after}");
    }

    #[test]
    fn weekdays_steps_and_names_read_as_cron_reads_them() {
        let weekdays = CronSchedule::parse("30 6 * * MON-FRI", "UTC").unwrap();
        // 2026-12-05 is a Saturday: the next is Monday the 7th.
        assert_eq!(weekdays.next_after(at("2026-12-05T00:00:00Z")), Some(at("2026-12-07T06:30:00Z")));
        let quarter = CronSchedule::parse("*/15 * * * *", "UTC").unwrap();
        // From any instant, due times fall on whole minutes.
        assert_eq!(quarter.next_after(at("2026-12-05T10:07:41.830594Z")), Some(at("2026-12-05T10:15:00Z")));
        assert_eq!(quarter.next_after(at("2026-12-05T10:07:00Z")), Some(at("2026-12-05T10:15:00Z")));
        // Strictly after: a due time is never its own successor.
        assert_eq!(quarter.next_after(at("2026-12-05T10:15:00Z")), Some(at("2026-12-05T10:30:00Z")));
    }

    #[test]
    fn bad_expressions_and_zones_name_their_field() {
        for (cron, zone, field) in [
            ("", "UTC", "input.cron"),
            ("* * * * * *", "UTC", "input.cron"),
            ("0 25 * * *", "UTC", "input.cron"),
            ("0 0 31 2 *", "UTC", "input.cron"),
            ("0 2 * * *", "Europe/Atlantis", "input.timeZone"),
            ("0 2 * * *", "", "input.timeZone"),
        ] {
            match CronSchedule::parse(cron, zone) {
                Err(AppError::BadUserInput { field: Some(f), .. }) => {
                    assert_eq!(f, field, "{cron:?} {zone:?}")
                }
                other => panic!("{cron:?} {zone:?}: {other:?}"),
            }
        }
    }
}
