//! `schema.graphql` is the schema the code serves.

#[test]
fn committed_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let sdl = metric_vault::graphql::schema::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema.graphql differs from the code's schema; run `UPDATE_SCHEMA=1 cargo test --test api schema` and review the diff"
    );
}
