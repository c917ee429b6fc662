//! The GraphQL fast paths (`graphql::fast`) answer exactly as the general path does, for every
//! field the schema has. The queries are written here from the schema's own SDL, so a field
//! added later is asked for without anyone listing it: a fast path that forgets it (or answers
//! it differently) fails this test.
//!
//! Two servers share one database: one as shipped, one with `GRAPHQL_FAST_PATHS=off`. Each
//! query runs cold and warm (read caches filled) on the first, and once on the second, as
//! ADMIN and as VIEWER (who sees no secrets), and the answers must be the same to the byte
//! (field order included).

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashSet},
};

use async_graphql::parser::{
    parse_schema,
    types::{BaseType, Type, TypeKind, TypeSystemDefinition},
};
use futures_util::{StreamExt, stream};
use metric_vault::{
    db::repo::runs,
    domain::TestStatus,
    seed::{self, Figures, Run, ScenarioSeed},
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, client_with_token, fixture, spawn_app_with, spawn_with, test_settings_with};

/// Fields left out, each with its reason: none of them has a fast path.
const LEFT_OUT: &[(&str, &str)] = &[
    ("Query.health", "uptime and the dependencies' state at the moment asked"),
    ("SchedulerJob.elapsedSeconds", "counted to the moment asked"),
    ("TestHistory.reportUrl", "signed, with an expiry counted from the moment asked"),
    (
        "TestHistory.timeseries",
        "asks InfluxDB, not the database (and counts against GRAPHQL_MAX_UPSTREAM_CALLS)",
    ),
];

/// How deep the written queries reach into objects: deep enough for run → scenario →
/// endpoint → parameter and project → spec → tag → endpoint → body.
const MAX_DEPTH: usize = 5;

/// The schema as the server declares it: each object or interface type's fields.
struct Types {
    fields: BTreeMap<String, Vec<FieldShape>>,
    /// `Type field` pairs the focused shapes were written under (see [`Types::focused`]).
    arrivals: RefCell<HashSet<String>>,
}

struct FieldShape {
    name: String,
    /// The named type under lists and non-null.
    type_name: String,
    /// Whether some argument has to be given (no default, non-null).
    needs_arguments: bool,
}

impl Types {
    fn read() -> Self {
        let document = parse_schema(metric_vault::graphql::schema::sdl()).expect("the server's SDL parses");
        let mut fields = BTreeMap::new();
        for definition in document.definitions {
            let TypeSystemDefinition::Type(definition) = definition else { continue };
            let definition = definition.node;
            let object = match &definition.kind {
                TypeKind::Object(object) => &object.fields,
                TypeKind::Interface(interface) => &interface.fields,
                _ => continue,
            };
            let shapes = object
                .iter()
                .map(|field| {
                    let field = &field.node;
                    FieldShape {
                        name: field.name.node.to_string(),
                        type_name: named(&field.ty.node),
                        needs_arguments: field.arguments.iter().any(|argument| {
                            !argument.node.ty.node.nullable && argument.node.default_value.is_none()
                        }),
                    }
                })
                .collect();
            fields.insert(definition.name.node.to_string(), shapes);
        }
        Self { fields, arrivals: RefCell::default() }
    }

    /// The selection set of every field of `type_name` reachable from it, `depth` levels down,
    /// never entering a type already on the way there (`path`). `None` for a leaf type.
    fn selection(&self, type_name: &str, depth: usize, path: &mut Vec<String>) -> Option<String> {
        self.fields.get(type_name)?;
        path.push(type_name.to_owned());
        let mut selected = vec!["__typename".to_owned()];
        for field in self.usable(type_name) {
            if !self.fields.contains_key(&field.type_name) {
                selected.push(field.name.clone());
            } else if depth > 0
                && !path.contains(&field.type_name)
                && let Some(inner) = self.selection(&field.type_name, depth - 1, path)
            {
                selected.push(format!("{} {inner}", field.name));
            }
        }
        path.pop();
        Some(format!("{{ {} }}", selected.join(" ")))
    }
}

fn named(ty: &Type) -> String {
    match &ty.base {
        BaseType::Named(name) => name.to_string(),
        BaseType::List(inner) => named(inner),
    }
}

/// The queries: per field of `Query` that needs no argument, one asking for everything below
/// it; then, at every object type reached from there (by every way there, `FOCUS_DEPTH` fields
/// deep at most), its plain fields alone, with each relation's plain fields, and with each
/// plain field of each relation alone. The fast paths serve some shapes and not others (a
/// board endpoint answered from the read cache only when its identity is asked for; an
/// endpoint list written by SQLite only without relations): the small shapes reach them.
fn queries(types: &Types) -> Vec<(String, String)> {
    let mut written = Vec::new();
    for field in types.usable("Query") {
        let mut path = vec!["Query".to_owned()];
        let query = match types.selection(&field.type_name, MAX_DEPTH, &mut path) {
            Some(selection) => format!("{{ {} {selection} }}", field.name),
            None => format!("{{ {} }}", field.name),
        };
        written.push((format!("Query.{} (everything)", field.name), query));
        if types.fields.contains_key(&field.type_name) {
            types.focused(&[field], &mut vec!["Query".to_owned()], &mut written);
        }
    }
    written
}

/// How many fields deep the focused shapes reach.
const FOCUS_DEPTH: usize = 5;

impl Types {
    /// The fields of `type_name` a query may select without arguments, less [`LEFT_OUT`].
    fn usable<'a>(&'a self, type_name: &'a str) -> impl Iterator<Item = &'a FieldShape> {
        self.fields[type_name].iter().filter(move |field| {
            !field.needs_arguments
                && !LEFT_OUT.iter().any(|(name, _)| *name == format!("{type_name}.{}", field.name))
        })
    }

    /// `__typename` and the fields of `type_name` whose type is a leaf.
    fn leaves(&self, type_name: &str) -> Vec<String> {
        let mut leaves = vec!["__typename".to_owned()];
        leaves.extend(
            self.usable(type_name)
                .filter(|field| !self.fields.contains_key(&field.type_name))
                .map(|f| f.name.clone()),
        );
        leaves
    }

    /// The focused shapes at the object type `route` ends on (see [`queries`]), then below it.
    fn focused(
        &self,
        route: &[&FieldShape],
        types_on_route: &mut Vec<String>,
        into: &mut Vec<(String, String)>,
    ) {
        let here = &route.last().unwrap().type_name;
        let label = route.iter().map(|field| field.name.as_str()).collect::<Vec<_>>().join(".");
        // A fast path is chosen by the field that lists an object and the one below it:
        // shapes already written under the same last two fields are not written again.
        let arrival = format!("{} {}", types_on_route.last().unwrap(), route.last().unwrap().name);
        if !self.arrivals.borrow_mut().insert(arrival) {
            return;
        }
        let wrap = |inner: String| {
            let nested =
                route.iter().rev().fold(inner, |inner, field| format!("{} {{ {inner} }}", field.name));
            format!("{{ {nested} }}")
        };
        let leaves = self.leaves(here).join(" ");
        into.push((format!("{label} (plain fields)"), wrap(leaves.clone())));
        types_on_route.push(here.clone());
        for relation in self.usable(here) {
            if !self.fields.contains_key(&relation.type_name) || types_on_route.contains(&relation.type_name)
            {
                continue;
            }
            let inner = self.leaves(&relation.type_name);
            into.push((
                format!("{label}.{} (plain fields)", relation.name),
                wrap(format!("{leaves} {} {{ {} }}", relation.name, inner.join(" "))),
            ));
            for leaf in inner.iter().skip(1) {
                into.push((
                    format!("{label}.{}.{leaf}", relation.name),
                    wrap(format!("{leaves} {} {{ {leaf} }}", relation.name)),
                ));
            }
            if route.len() < FOCUS_DEPTH {
                let mut deeper = route.to_vec();
                deeper.push(relation);
                self.focused(&deeper, types_on_route, into);
            }
        }
        types_on_route.pop();
    }
}

/// Limits wide enough for queries that ask for everything (the same on both servers).
const WIDE: &[(&str, &str)] = &[
    ("GRAPHQL_MAX_COMPLEXITY", "1000000"),
    ("GRAPHQL_MAX_TOKENS", "100000"),
    ("GRAPHQL_MAX_DOCUMENT_BYTES", "1000000"),
    ("GRAPHQL_MAX_RESPONSE_VALUES", "10000000"),
];

/// Another server on `app`'s database, with `settings` besides the wide limits.
async fn replica(app: &TestApp, settings: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let extra: Vec<_> = WIDE.iter().chain(settings).copied().collect();
    let mut settings = test_settings_with(dir.path(), &extra).await;
    settings.database_url = app.database_url.clone();
    spawn_with(settings, dir).await
}

/// Projects with imported and seeded catalogues and runs in every state, some with results,
/// some without, with scenarios, stages and endpoints.
async fn seed_everything(app: &TestApp) {
    for (title, document) in [
        ("Pets", "oai-v2.0-petstore.json"),
        ("Uber", "oai-v2.0-uber.yaml"),
        ("Patents", "oai-v3.0-uspto.json"),
    ] {
        let project = app.create_project(title).await;
        let imported = app
            .graphql(
                "mutation($input: AnalyzeOpenApiInput!) { analyzeOpenApi(input: $input) { spec { id } } }",
                json!({ "input": { "projectId": project, "document": fixture(document) } }),
            )
            .await;
        imported.data();
    }
    let project = app.create_project("Shop").await;
    let project_id: i64 = project.parse().unwrap();
    let spec = seed::spec(&app.db, project_id, "http://127.0.0.1:9000", 3, 12).await;
    seed::board_history(&app.db, project_id, &spec.endpoint_ids, 6).await;
    let figures = Figures { p95: 150.0, error_rate: 0.2, avg_tps: 40.0 };
    // No active run: the server would take an ownerless one over and end it mid-test.
    for (index, status) in
        [TestStatus::Failed, TestStatus::Cancelled, TestStatus::Completed].into_iter().enumerate()
    {
        let mut run = Run::new(project_id).status(status).target_tps(30.0).started_minutes_ago(5);
        if status == TestStatus::Completed {
            run = run.summary(figures);
        }
        for s in 0..3 {
            run = run.scenario(ScenarioSeed {
                endpoint_id: spec.endpoint_ids[(index + s) % spec.endpoint_ids.len()],
                response_time_target: (s != 1).then_some(200.0),
                error_rate_target: (s != 2).then_some(1.0),
                summary: (status == TestStatus::Completed && s != 2).then_some(figures),
            });
        }
        let id = run.insert(&app.db).await;
        if status == TestStatus::Failed {
            // Results that came in late, written as the lifecycle writes them.
            let summary = figures.summary();
            let scenarios: Vec<(String, _)> =
                (0..3).map(|s| (format!("scenario_{s}"), summary.clone())).collect();
            runs::store_late_summary(&app.db, id, &summary, &scenarios).await.unwrap();
        }
    }
}

async fn viewer(app: &TestApp) -> reqwest::Client {
    let created = app
        .graphql("mutation { createApiToken(input: {name: \"wall\", role: VIEWER}) { token } }", json!({}))
        .await;
    client_with_token(created.data()["createApiToken"]["token"].as_str().unwrap())
}

#[tokio::test]
async fn every_field_answers_the_same_on_the_fast_and_the_general_path() {
    let fast = spawn_app_with(WIDE).await;
    let general = replica(&fast, &[("GRAPHQL_FAST_PATHS", "off")]).await;
    // With the read caches off, the fast paths that do not keep copies answer instead
    // (SQLite's JSON endpoint lists, the board's relations loaded for a page).
    let uncached = replica(&fast, &[("READ_CACHE_ROWS", "0")]).await;
    seed_everything(&fast).await;
    let types = Types::read();
    let queries = queries(&types);
    assert!(queries.len() > 100, "{} queries written from the schema", queries.len());

    let viewer = viewer(&fast).await;
    let answered: Vec<HashSet<String>> = stream::iter(&queries)
        .map(|(label, query)| compare([&fast, &uncached], &general, &viewer, label, query))
        .buffer_unordered(4)
        .collect()
        .await;
    let asked: HashSet<String> = answered.into_iter().flatten().collect();
    // The seeded data reaches the types the fast paths serve, with values in them.
    for field in
        ["Endpoint.parameters", "Endpoint.requestBody", "TestHistory.scenarios", "ScenarioHistory.stages"]
    {
        let (_, name) = field.split_once('.').unwrap();
        assert!(asked.contains(name), "{field} was never answered with data");
    }
}

/// `query` asked of the general path, then twice of each fast one (cold, then warm); the
/// fields answered with data.
async fn compare(
    fast: [&TestApp; 2],
    general: &TestApp,
    viewer: &reqwest::Client,
    label: &str,
    query: &str,
) -> HashSet<String> {
    // Secrets differ by role; the small shapes ask as ADMIN only.
    let mut clients = vec![("ADMIN", &general.client)];
    if label.ends_with("(everything)") {
        clients.push(("VIEWER", viewer));
    }
    let mut answered = HashSet::new();
    for (role, client) in clients {
        let (status, expected_text) = general.graphql_text(client, query, json!({})).await;
        let expected: Value = serde_json::from_str(&expected_text).unwrap();
        assert_eq!(status, 200, "{label} as {role}: {expected}");
        // A VIEWER is refused some roots (tokens): the refusal must then be the same too.
        if role == "ADMIN" {
            assert!(expected.get("errors").is_none(), "{label}: {expected}");
        }
        for (server, warmth) in [(0, "cold"), (0, "warm"), (1, "without read caches")] {
            let (_, text) = fast[server].graphql_text(client, query, json!({})).await;
            if text == expected_text {
                continue;
            }
            // The same bytes, or where they part: a value, or the order of the fields.
            let answer: Value = serde_json::from_str(&text).unwrap();
            let difference = first_difference(&answer, &expected, "").unwrap_or_else(|| {
                let at = text.bytes().zip(expected_text.bytes()).take_while(|(a, b)| a == b).count();
                format!(
                    "byte {at} (field order): fast …{}…",
                    &text[at.saturating_sub(60)..(at + 60).min(text.len())]
                )
            });
            panic!("{label} as {role}, {warmth}: fast and general differ at {difference}\n{query}");
        }
        collect_fields(&expected["data"], &mut answered);
    }
    answered
}

/// Every key of every object in `value`, to show the seeded data reached deep enough.
fn collect_fields(value: &Value, into: &mut HashSet<String>) {
    match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                if !value.is_null() && value != &json!([]) {
                    into.insert(key.clone());
                }
                collect_fields(value, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_fields(item, into)),
        _ => {}
    }
}

/// Where `fast` and `general` first differ, as a path with both values; `None` when equal.
fn first_difference(fast: &Value, general: &Value, path: &str) -> Option<String> {
    match (fast, general) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: Vec<_> = a.keys().chain(b.keys().filter(|key| !a.contains_key(*key))).collect();
            keys.into_iter().find_map(|key| {
                let (x, y) = (a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null));
                if !a.contains_key(key) || !b.contains_key(key) {
                    return Some(format!("{path}.{key}: present on one path only (fast {x}, general {y})"));
                }
                first_difference(x, y, &format!("{path}.{key}"))
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]"))),
        _ if fast == general => None,
        _ => Some(format!("{path}: fast {fast}, general {general}")),
    }
}
