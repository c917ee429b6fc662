//! Which plan `--plan` (and `--project`) name: digits are an id, anything else a title matched
//! exactly among live plans; a title that matches none or several is refused with the
//! candidates' ids, so the pipeline's author can name one for sure.

use serde::Deserialize;
use serde_json::json;

use super::{
    GateError,
    args::NameOrId,
    client::{ClientError, ServerClient},
};

/// How many candidates a refusal lists at most.
const LISTED: usize = 20;

/// A plan or project with its id and title.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Named {
    pub id: String,
    #[serde(deserialize_with = "super::printable")]
    pub title: String,
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} \"{}\"", self.id, self.title)
    }
}

/// A test plan as `run` needs it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub id: String,
    #[serde(deserialize_with = "super::printable")]
    pub title: String,
    pub project: Named,
    pub deleted_at: Option<String>,
}

const PLAN_FIELDS: &str = "id title project { id title } deletedAt";

/// The live plan `plan` names, in `project` when given.
pub async fn resolve(
    client: &ServerClient,
    plan: &NameOrId,
    project: Option<&NameOrId>,
) -> Result<Plan, GateError> {
    let project = match project {
        Some(project) => Some(resolve_project(client, project).await?),
        None => None,
    };
    match plan {
        NameOrId::Id(id) => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Data {
                test_plan: Option<Plan>,
            }
            let document = format!("query($id: ID!) {{ testPlan(id: $id) {{ {PLAN_FIELDS} }} }}");
            let data: Data = client
                .query(&document, json!({ "id": id.to_string() }))
                .await
                .map_err(|source| asking(&format!("reading test plan {id}"), source))?;
            let plan =
                data.test_plan.ok_or_else(|| GateError::NotFound(format!("there is no test plan {id}")))?;
            if plan.deleted_at.is_some() {
                return Err(GateError::NotFound(format!(
                    "test plan {} \"{}\" was deleted",
                    plan.id, plan.title
                )));
            }
            if let Some(project) = project.filter(|project| project.id != plan.project.id) {
                return Err(GateError::NotFound(format!(
                    "test plan {} \"{}\" belongs to project {}, not to project {project}",
                    plan.id, plan.title, plan.project
                )));
            }
            Ok(plan)
        }
        NameOrId::Title(title) => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Data {
                test_plans: Vec<Plan>,
            }
            let document =
                format!("query($project: ID) {{ testPlans(projectId: $project) {{ {PLAN_FIELDS} }} }}");
            let data: Data = client
                .query(&document, json!({ "project": project.as_ref().map(|p| p.id.clone()) }))
                .await
                .map_err(|source| asking("listing test plans", source))?;
            match_title(data.test_plans, title, project.as_ref()).map_err(GateError::NotFound)
        }
    }
}

/// The one live plan titled exactly `title` among `plans` (those of `project`, when given).
pub fn match_title(plans: Vec<Plan>, title: &str, project: Option<&Named>) -> Result<Plan, String> {
    let live: Vec<Plan> = plans.into_iter().filter(|plan| plan.deleted_at.is_none()).collect();
    let (mut matching, others): (Vec<Plan>, Vec<Plan>) =
        live.into_iter().partition(|plan| plan.title == title);
    let place = project.map(|project| format!(" in project {project}")).unwrap_or_default();
    let describe = |plans: &[Plan]| -> String {
        let mut listed: Vec<String> = plans
            .iter()
            .take(LISTED)
            .map(|plan| format!("{} (project {})", plan_name(plan), plan.project))
            .collect();
        if plans.len() > LISTED {
            listed.push(format!("and {} more", plans.len() - LISTED));
        }
        listed.join(", ")
    };
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 if others.is_empty() => {
            Err(format!("no live test plan is titled \"{title}\"{place}; there are no live plans"))
        }
        0 => Err(format!(
            "no live test plan is titled \"{title}\"{place} (titles match exactly); the live plans are: {}",
            describe(&others)
        )),
        n => Err(format!(
            "{n} live test plans are titled \"{title}\": {}; name one with --plan <id>, or add --project <id|title>",
            describe(&matching)
        )),
    }
}

fn plan_name(plan: &Plan) -> String {
    format!("{} \"{}\"", plan.id, plan.title)
}

/// The project `project` names.
async fn resolve_project(client: &ServerClient, project: &NameOrId) -> Result<Named, GateError> {
    match project {
        NameOrId::Id(id) => {
            #[derive(Deserialize)]
            struct Data {
                project: Option<Named>,
            }
            let data: Data = client
                .query("query($id: ID!) { project(id: $id) { id title } }", json!({ "id": id.to_string() }))
                .await
                .map_err(|source| asking("reading the project", source))?;
            data.project.ok_or_else(|| GateError::NotFound(format!("there is no project {id}")))
        }
        NameOrId::Title(title) => {
            #[derive(Deserialize)]
            struct Data {
                projects: Vec<Named>,
            }
            let data: Data = client
                .query("{ projects { id title } }", json!({}))
                .await
                .map_err(|source| asking("listing projects", source))?;
            let (mut matching, others): (Vec<Named>, Vec<Named>) =
                data.projects.into_iter().partition(|project| &project.title == title);
            let list = |projects: &[Named]| {
                projects.iter().take(LISTED).map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            match matching.len() {
                1 => Ok(matching.remove(0)),
                0 => Err(GateError::NotFound(format!(
                    "no project is titled \"{title}\"; the projects are: {}",
                    list(&others)
                ))),
                n => Err(GateError::NotFound(format!(
                    "{n} projects are titled \"{title}\": {}; name one with --project <id>",
                    list(&matching)
                ))),
            }
        }
    }
}

fn asking(what: &str, source: ClientError) -> GateError {
    GateError::Server { doing: what.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str, title: &str, project: &str, deleted: bool) -> Plan {
        Plan {
            id: id.into(),
            title: title.into(),
            project: Named { id: project.into(), title: format!("P{project}") },
            deleted_at: deleted.then(|| "2026-12-01T00:00:00Z".into()),
        }
    }

    #[test]
    fn a_title_names_the_one_live_plan_that_has_it_exactly() {
        let plans = vec![
            plan("1", "Checkout", "1", true),
            plan("2", "Checkout", "1", false),
            plan("3", "checkout", "2", false),
        ];
        assert_eq!(
            match_title(plans, "Checkout", None).unwrap().id,
            "2",
            "the deleted one and the other case are not it"
        );
    }

    #[test]
    fn a_title_shared_by_plans_of_two_projects_lists_their_ids() {
        let plans = vec![plan("4", "Checkout", "1", false), plan("9", "Checkout", "2", false)];
        assert_eq!(
            match_title(plans, "Checkout", None).unwrap_err(),
            "2 live test plans are titled \"Checkout\": 4 \"Checkout\" (project 1 \"P1\"), 9 \"Checkout\" (project 2 \"P2\"); \
             name one with --plan <id>, or add --project <id|title>"
        );
    }

    #[test]
    fn a_title_that_matches_nothing_lists_the_live_plans() {
        let plans = vec![plan("4", "Checkout", "1", false), plan("5", "Search", "1", true)];
        let project = Named { id: "1".into(), title: "P1".into() };
        assert_eq!(
            match_title(plans, "Chekout", Some(&project)).unwrap_err(),
            "no live test plan is titled \"Chekout\" in project 1 \"P1\" (titles match exactly); \
             the live plans are: 4 \"Checkout\" (project 1 \"P1\")"
        );
        assert!(match_title(Vec::new(), "x", None).unwrap_err().ends_with("there are no live plans"));
    }
}
