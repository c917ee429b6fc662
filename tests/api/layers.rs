//! The crate's layers point down only: a module may use the modules of the layers below its
//! own and nothing above (README, "Layout"). Read from the source, so a `use` that points up
//! fails here before it becomes a habit.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// From the bottom. A module may use what is in a lower layer; two modules of one layer may
/// not use each other.
const LAYERS: &[&[&str]] = &[
    // Vocabulary and value types, the error type, logging, the fuzzing helpers of the tests.
    &["domain", "error", "telemetry", "memory", "tls", "fuzzing", "demo_target"],
    // Entities and every SQL statement.
    &["db"],
    // Fixture data for tests and benchmarks, written through `db`.
    &["seed"],
    // Capabilities over the database and the outside world.
    &["access"],
    &["openapi"],
    &["config"],
    &["metrics"],
    &["k6"],
    // Webhooks: enqueued with a run's end, sent by a background task.
    &["notify"],
    // A run's life: launch, status, results, cancellation, recovery.
    &["lifecycle"],
    &["graphql"],
    &["http"],
    &["commands", "startup"],
    &["lib", "main"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The top-level modules a source text names through `crate::` (plain paths, `use crate::{…}`
/// groups, `$crate::` in macros), comments left out.
fn modules_named(text: &str) -> BTreeSet<String> {
    let code: String =
        text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let identifier = |rest: &str| -> String {
        rest.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    let mut named = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each item at the group's top level.
            let mut depth = 0usize;
            let mut item_start = true;
            for c in group.chars().enumerate() {
                let (index, c) = c;
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        named.insert(identifier(&group[index..]));
                    }
                    _ => {}
                }
            }
        } else {
            named.insert(identifier(rest));
        }
    }
    named.remove("");
    named
}

#[test]
fn no_module_uses_a_module_of_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let module = module.trim_end_matches(".rs");
        let Some(own) = layer_of(module) else {
            wrong.push(format!(
                "{}: module `{module}` has no layer in tests/api/layers.rs",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in modules_named(&text) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                Some(layer) => wrong.push(format!(
                    "{}: `{module}` (layer {own}) uses `{used}` (layer {layer}, {})",
                    relative.display(),
                    if layer == own { "the same layer" } else { "above" }
                )),
                None => wrong
                    .push(format!("{}: `{module}` uses `{used}`, which has no layer", relative.display())),
            }
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    assert!(wrong.is_empty(), "imports that point up:\n{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_groups_paths_and_macros_and_skips_comments() {
    let text = "use crate::{\n    db::{entities::x, repo},\n    domain::Role,\n};\n\
                fn f() { crate::k6::run(); $crate::metrics::m!(); }\n\
                // crate::graphql is only mentioned here\n";
    let named: Vec<String> = modules_named(text).into_iter().collect();
    assert_eq!(named, ["db", "domain", "k6", "metrics"]);
}

/// What builds, writes or sends a statement: SeaORM's and sea-query's builders, raw SQL,
/// sqlx's queries, the traits that add filters and columns to a select, and the SQL text of
/// hand-written statements.
const SQL_BUILDING: &[&str] = &[
    // SeaORM selects and their decoding.
    "::find()",
    "::find_by_id(",
    "find_by_statement",
    "find_related",
    "find_also_related",
    "find_with_related",
    "into_tuple",
    "into_model",
    "select_only",
    "QueryFilter",
    "QuerySelect",
    "QueryOrder",
    "PaginatorTrait",
    // Writes.
    "ActiveModelTrait",
    "ActiveValue",
    "::insert(",
    "::insert_many(",
    "::update_many(",
    "::delete_many(",
    "::delete_by_id(",
    // sea-query.
    "sea_query",
    "Query::select",
    "Query::insert",
    "Query::update",
    "Query::delete",
    "Expr::cust",
    "Expr::col",
    // Raw statements.
    "Statement::from",
    "from_sql_and_values",
    "query_all",
    "query_one",
    "execute_unprepared",
    "execute_raw",
    "sqlx::query",
    // SQL text.
    "SELECT ",
    " FROM ",
    "GROUP BY",
    "json_group_array",
];

/// Files of the layers above `db` that may hold some of [`SQL_BUILDING`], with why.
const SQL_ALLOWED: &[(&str, &[&str], &str)] = &[(
    "http/report/series.rs",
    &["SELECT ", " FROM ", "GROUP BY"],
    "InfluxQL sent to InfluxDB (the metrics store), not a statement of the metadata database",
)];

/// The layers above the capabilities that talk to the metadata database only through `db`.
const NO_SQL_IN: &[&str] = &["graphql", "http", "lifecycle"];

#[test]
fn every_statement_of_the_metadata_database_is_written_in_db() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut checked = 0;
    let mut found = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.components().next().unwrap().as_os_str().to_string_lossy();
        if !NO_SQL_IN.contains(&module.trim_end_matches(".rs")) {
            continue;
        }
        checked += 1;
        let shown = relative.display().to_string().replace('\\', "/");
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for pattern in SQL_BUILDING {
                let allowed =
                    SQL_ALLOWED.iter().any(|(path, what, _)| *path == shown && what.contains(pattern));
                if code.contains(pattern) && !allowed {
                    found.push(format!("{shown}:{}: `{pattern}` in `{}`", number + 1, line.trim()));
                }
            }
        }
    }
    assert!(checked > 30, "checked only {checked} files of {NO_SQL_IN:?}");
    assert!(
        found.is_empty(),
        "statements built above `db` (move them to src/db/repo/, or allow them in SQL_ALLOWED with a reason):\n{}",
        found.join("\n")
    );
}
