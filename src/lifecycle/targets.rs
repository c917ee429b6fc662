//! The last check before load leaves the server: every scenario's host must be one the
//! configuration lets load go to (see [`crate::access::targets`]).

use sea_orm::DatabaseConnection;

use super::launch::{LaunchEndpoint, ValidatedLaunch};
use crate::{
    access::targets::{Host, TargetPolicy, resolve},
    db::repo::catalogue::spec_base_urls,
    error::{AppError, AppResult},
};

/// Refuses (FORBIDDEN, naming the scenario) a launch that would send load where it may not go.
pub async fn check_launch_targets(
    db: &DatabaseConnection,
    policy: &TargetPolicy,
    launch: &ValidatedLaunch,
    endpoints: &[LaunchEndpoint],
) -> AppResult<()> {
    let imported: Vec<String> =
        spec_base_urls(db, launch.project_id).await?.iter().filter_map(|base| host_of(base)).collect();
    for (index, scenario) in launch.scenarios.iter().enumerate() {
        let Some(endpoint) = endpoints.iter().find(|e| e.endpoint.id == scenario.endpoint_id) else {
            continue;
        };
        let name = host_of(&endpoint.base_url).ok_or_else(|| {
            AppError::bad_input(
                format!("scenarios[{index}].endpointId"),
                format!("the base URL `{}` of this endpoint's spec has no host", endpoint.base_url),
            )
        })?;
        let host = Host::new(&name, resolve(&name).await);
        policy.check_load(&host, &imported).map_err(|refusal| {
            AppError::Forbidden(format!("scenario `{}`: {refusal}", scenario.plan.display_name))
        })?;
    }
    Ok(())
}

/// The host of a URL, lower case (IPv6 without brackets); None when it has none.
fn host_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    Some(parsed.host_str()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
}
