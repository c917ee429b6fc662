//! Who runs a run: leases renewed, released and taken over, where its local k6 processes are,
//! and cancels asked of its owner.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};

use crate::{
    db::entities::test_history,
    domain::{RunnerKind, TestStatus},
    error::AppResult,
};

/// Renews the lease of every active run `owner` runs, to `until`: one statement whatever the
/// number of runs. Returns how many it renewed.
pub async fn renew_leases(db: &DatabaseConnection, owner: &str, until: DateTime<Utc>) -> AppResult<u64> {
    let renewed = test_history::Entity::update_many()
        .col_expr(test_history::Column::LeaseExpiresAt, Expr::value(until))
        .filter(test_history::Column::OwnerInstance.eq(owner))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .exec(db)
        .await?;
    Ok(renewed.rows_affected)
}

/// Lets the leases of `owner`'s active runs expire now (it is shutting down), so another
/// instance takes them over at once instead of a lease later.
pub async fn release_leases(db: &DatabaseConnection, owner: &str, now: DateTime<Utc>) -> AppResult<u64> {
    let released = test_history::Entity::update_many()
        .col_expr(test_history::Column::LeaseExpiresAt, Expr::value(now - chrono::Duration::seconds(1)))
        .filter(test_history::Column::OwnerInstance.eq(owner))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .exec(db)
        .await?;
    Ok(released.rows_affected)
}

/// Active runs that are not `owner`'s: the candidates for a take-over (the caller checks their
/// leases, and whether their owners are still alive).
pub async fn owned_by_others(db: &DatabaseConnection, owner: &str) -> AppResult<Vec<test_history::Model>> {
    Ok(test_history::Entity::find()
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .filter(
            sea_orm::Condition::any()
                .add(test_history::Column::OwnerInstance.is_null())
                .add(test_history::Column::OwnerInstance.ne(owner)),
        )
        .all(db)
        .await?)
}

/// Makes `owner` the owner of active run `id` until `until` — if its lease expired before `now`,
/// or it still belongs to `dead_owner` (an instance known to be gone), or `owner` holds it
/// already. Conditional, so of several instances taking over one orphan, exactly one wins.
pub async fn take_over(
    db: &DatabaseConnection,
    id: i64,
    owner: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
    dead_owner: Option<&str>,
) -> AppResult<bool> {
    let mut takeable = sea_orm::Condition::any()
        .add(test_history::Column::LeaseExpiresAt.is_null())
        .add(test_history::Column::LeaseExpiresAt.lt(now))
        .add(test_history::Column::OwnerInstance.eq(owner));
    if let Some(dead) = dead_owner {
        takeable = takeable.add(test_history::Column::OwnerInstance.eq(dead));
    }
    let taken = test_history::Entity::update_many()
        .col_expr(test_history::Column::OwnerInstance, Expr::value(owner))
        .col_expr(test_history::Column::LeaseExpiresAt, Expr::value(until))
        .filter(test_history::Column::Id.eq(id))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .filter(takeable)
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// Runs that ended after `since` with where their k6 ran recorded: (id, runner, the record).
pub async fn ended_with_k6_processes(
    db: &DatabaseConnection,
    since: DateTime<Utc>,
) -> AppResult<Vec<(i64, RunnerKind, String)>> {
    use sea_orm::QuerySelect;
    Ok(test_history::Entity::find()
        .select_only()
        .columns([test_history::Column::Id, test_history::Column::Runner, test_history::Column::K6Processes])
        .filter(test_history::Column::Status.is_not_in(TestStatus::ACTIVE))
        .filter(test_history::Column::K6Processes.is_not_null())
        .filter(test_history::Column::CompletedAt.gt(since))
        .into_tuple()
        .all(db)
        .await?)
}

/// Records where active run `id`'s local k6 processes are (JSON); false when the run is no
/// longer active (a cancel ended it while k6 started).
pub async fn set_k6_processes(db: &DatabaseConnection, id: i64, processes: &str) -> AppResult<bool> {
    let recorded = test_history::Entity::update_many()
        .col_expr(test_history::Column::K6Processes, Expr::value(processes))
        .filter(test_history::Column::Id.eq(id))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .exec(db)
        .await?;
    Ok(recorded.rows_affected == 1)
}

/// Asks the owner of active run `id` to cancel it; false when the run is no longer active.
pub async fn request_cancel(db: &DatabaseConnection, id: i64, at: DateTime<Utc>) -> AppResult<bool> {
    let asked = test_history::Entity::update_many()
        .col_expr(test_history::Column::CancelRequestedAt, Expr::value(at))
        .filter(test_history::Column::Id.eq(id))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .exec(db)
        .await?;
    Ok(asked.rows_affected == 1)
}

/// Active runs of `owner` that another instance asked it to cancel.
pub async fn cancel_requests(db: &DatabaseConnection, owner: &str) -> AppResult<Vec<i64>> {
    use sea_orm::QuerySelect;
    Ok(test_history::Entity::find()
        .select_only()
        .column(test_history::Column::Id)
        .filter(test_history::Column::OwnerInstance.eq(owner))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .filter(test_history::Column::CancelRequestedAt.is_not_null())
        .into_tuple()
        .all(db)
        .await?)
}
