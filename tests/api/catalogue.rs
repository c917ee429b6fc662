//! The catalogue read side: nested specs, tags and endpoints; the filtered, paged endpoint list.

use metric_vault::seed;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

const PAGE: &str = r#"
query($filter: EndpointFilter, $first: Int, $after: String) {
  endpoints(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id method path } }
    nodes { id }
  }
}"#;

#[tokio::test]
async fn the_catalogue_tree_resolves_every_level() {
    let app = spawn_app().await;
    let project_id = app.create_project("Shop").await;
    let seeded = seed::spec(&app.db, project_id.parse().unwrap(), "http://127.0.0.1:9000/api", 2, 4).await;

    let response = app
        .graphql(
            r#"query($id: ID!) { project(id: $id) {
                title endpointCount
                specs { title version baseUrl specFormat importedAt project { id }
                  tags { name description spec { id }
                    endpoints { method path operationId summary deprecated
                      tags { name }
                      parameters { name location required schemaType example }
                      requestBody { contentType required schema example } } } } } }"#,
            json!({ "id": project_id }),
        )
        .await;

    let project = &response.data()["project"];
    assert_eq!(project["endpointCount"], 4);
    let spec = &project["specs"][0];
    assert_eq!(spec["baseUrl"], "http://127.0.0.1:9000/api");
    assert_eq!(spec["specFormat"], "openapi 3.0.3");
    assert_eq!(spec["project"]["id"], project_id.as_str());
    let tags = spec["tags"].as_array().unwrap();
    assert_eq!(tags.iter().map(|t| t["name"].as_str().unwrap()).collect::<Vec<_>>(), ["tag-0", "tag-1"]);
    assert_eq!(tags[0]["spec"]["id"], seeded.spec_id.to_string());
    let first_tag_endpoints = tags[0]["endpoints"].as_array().unwrap();
    assert_eq!(first_tag_endpoints.len(), 2, "endpoints 0 and 2 carry tag-0");
    assert_eq!(first_tag_endpoints[0]["method"], "GET");
    assert_eq!(first_tag_endpoints[0]["tags"], json!([{"name": "tag-0"}]));
    assert_eq!(
        first_tag_endpoints[0]["parameters"],
        json!([
            {"name": "id", "location": "PATH", "required": true, "schemaType": "integer", "example": 0},
            {"name": "verbose", "location": "QUERY", "required": false, "schemaType": "boolean", "example": false}
        ])
    );
    assert_eq!(first_tag_endpoints[0]["requestBody"], Value::Null, "GET has no body");
    let post = &tags[1]["endpoints"][0];
    assert_eq!(post["method"], "POST");
    assert_eq!(post["requestBody"]["contentType"], "application/json");
    assert_eq!(post["requestBody"]["example"], json!({"name": "example"}));
}

#[tokio::test]
async fn endpoints_page_forward_with_cursors_to_the_end() {
    let app = spawn_app().await;
    let project_id = app.create_project("Shop").await;
    seed::spec(&app.db, project_id.parse().unwrap(), "http://127.0.0.1:9000", 3, 7).await;

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let response = app.graphql(PAGE, json!({ "first": 3, "after": after })).await;
        let page = &response.data()["endpoints"];
        assert_eq!(page["totalCount"], 7);
        assert_eq!(page["pageInfo"]["hasPreviousPage"], after.is_some());
        assert_eq!(page["nodes"].as_array().unwrap().len(), page["edges"].as_array().unwrap().len());
        for edge in page["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
        pages += 1;
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = Some(page["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "stable id order, no repeats: {seen:?}");
}

#[tokio::test]
async fn endpoint_filters_combine() {
    let app = spawn_app().await;
    let shop = app.create_project("Shop").await;
    let other = app.create_project("Other").await;
    let seeded = seed::spec(&app.db, shop.parse().unwrap(), "http://127.0.0.1:9000", 2, 8).await;
    seed::spec(&app.db, other.parse().unwrap(), "http://127.0.0.1:9001", 2, 8).await;

    let count = |filter: Value| {
        let app = &app;
        async move {
            app.graphql(PAGE, json!({ "filter": filter })).await.data()["endpoints"]["totalCount"].clone()
        }
    };

    assert_eq!(count(json!({})).await, 16);
    assert_eq!(count(json!({"projectId": shop})).await, 8);
    assert_eq!(count(json!({"specId": seeded.spec_id.to_string()})).await, 8);
    assert_eq!(count(json!({"projectId": shop, "method": "POST"})).await, 2);
    assert_eq!(count(json!({"projectId": shop, "tag": "tag-1"})).await, 4);
    assert_eq!(count(json!({"tag": "no-such-tag"})).await, 0);
    assert_eq!(
        count(json!({"projectId": shop, "search": "OPERATION NUMBER 3"})).await,
        1,
        "case-insensitive summary"
    );
    assert_eq!(count(json!({"projectId": shop, "search": "operation5"})).await, 1, "operationId");
    assert_eq!(count(json!({"projectId": shop, "search": "resources-1/"})).await, 4, "path");
    assert_eq!(count(json!({"search": "%"})).await, 0, "wildcards are literal");
}

#[tokio::test]
async fn bad_paging_arguments_are_refused() {
    let app = spawn_app().await;
    let too_many = app.graphql(PAGE, json!({ "first": 100000 })).await;
    assert_eq!(too_many.error_code(), "BAD_USER_INPUT");
    let negative = app.graphql(PAGE, json!({ "first": -1 })).await;
    assert_eq!(negative.error_code(), "BAD_USER_INPUT");
    let forged = app.graphql(PAGE, json!({ "after": "bm90LWEtY3Vyc29y" })).await;
    assert_eq!(forged.error_code(), "BAD_USER_INPUT");
    assert!(forged.error_message().contains("cursor"));
    let bad_id = app.graphql(PAGE, json!({ "filter": {"projectId": "x"} })).await;
    assert_eq!(bad_id.body["errors"][0]["extensions"]["field"], "filter.projectId");
}

#[tokio::test]
async fn specs_are_listed_per_project_and_deleted_with_their_endpoints() {
    let app = spawn_app().await;
    let shop = app.create_project("Shop").await;
    let other = app.create_project("Other").await;
    let kept = seed::spec(&app.db, shop.parse().unwrap(), "http://127.0.0.1:9000", 1, 2).await;
    let doomed = seed::spec(&app.db, shop.parse().unwrap(), "http://127.0.0.1:9002", 1, 3).await;
    seed::spec(&app.db, other.parse().unwrap(), "http://127.0.0.1:9001", 1, 2).await;

    let listed =
        app.graphql("query($p: ID) { openApiSpecs(projectId: $p) { id } }", json!({ "p": shop })).await;
    assert_eq!(listed.data()["openApiSpecs"].as_array().unwrap().len(), 2);
    let all = app.graphql("{ openApiSpecs { id } }", json!({})).await;
    assert_eq!(all.data()["openApiSpecs"].as_array().unwrap().len(), 3);

    let deleted = app
        .graphql(
            "mutation($id: ID!) { deleteOpenApiSpec(id: $id) }",
            json!({ "id": doomed.spec_id.to_string() }),
        )
        .await;
    assert_eq!(deleted.data()["deleteOpenApiSpec"], doomed.spec_id.to_string());

    let after = app
        .graphql(
            "query($id: ID!, $gone: ID!) { project(id: $id) { endpointCount } openApiSpec(id: $gone) { id } endpoint(id: $gone) { id } }",
            json!({ "id": shop, "gone": doomed.spec_id.to_string() }),
        )
        .await;
    assert_eq!(after.data()["project"]["endpointCount"], 2);
    assert_eq!(after.data()["openApiSpec"], Value::Null);
    let kept_spec = app
        .graphql(
            "query($id: ID!) { openApiSpec(id: $id) { endpoints { id } } }",
            json!({ "id": kept.spec_id.to_string() }),
        )
        .await;
    assert_eq!(kept_spec.data()["openApiSpec"]["endpoints"].as_array().unwrap().len(), 2);

    let missing = app.graphql("mutation { deleteOpenApiSpec(id: \"424242\") }", json!({})).await;
    assert_eq!(missing.error_code(), "NOT_FOUND");
}

/// Endpoints, parameters and bodies answered from memory (no `spec`/`tags` selected) must read
/// exactly as when async-graphql resolves every field: aliases, fragments, `__typename`,
/// `@skip`/`@include`, and a response key selected twice.
const EAGER_TREE: &str = r#"
query($id: ID!, $yes: Boolean!, $no: Boolean!) {
  project(id: $id) { specs { endpoints { id method } tags { name endpoints {
    __typename
    verb: method
    path @include(if: $yes)
    summary @skip(if: $yes)
    operationId @include(if: $no)
    ...EndpointBits
    ... on Endpoint { deprecated params: parameters { __typename n: name } }
    ... @include(if: $yes) { id }
    parameters { name }
    parameters { location example }
    requestBody { ...Body contentType }
    bodyWithSchema: requestBody { schema }
    FALLBACK
  } } } }
}
fragment EndpointBits on Endpoint { description parameters { required schemaType ...ParamBits } }
fragment ParamBits on Parameter { description }
fragment Body on RequestBody { __typename required example }
"#;

#[tokio::test]
async fn endpoints_answered_from_memory_read_as_resolved_field_by_field() {
    let app = spawn_app().await;
    let project_id = app.create_project("Shop").await;
    seed::spec(&app.db, project_id.parse().unwrap(), "http://127.0.0.1:9000/api", 2, 8).await;
    let variables = json!({ "id": project_id, "yes": true, "no": false });

    let eager = app.graphql(&EAGER_TREE.replace("FALLBACK", ""), variables.clone()).await;
    // Selecting a relation that is not prefetched sends every endpoint down async-graphql's
    // own field-by-field resolution.
    let resolved = app.graphql(&EAGER_TREE.replace("FALLBACK", "fallback: spec { id }"), variables).await;

    let mut resolved = resolved.data().clone();
    let mut fallbacks = 0;
    for tag in resolved["project"]["specs"][0]["tags"].as_array_mut().unwrap() {
        for endpoint in tag["endpoints"].as_array_mut().unwrap() {
            fallbacks += endpoint.as_object_mut().unwrap().remove("fallback").is_some() as usize;
        }
    }
    assert_eq!(fallbacks, 8);
    assert_eq!(eager.data(), &resolved);

    let tags = eager.data()["project"]["specs"][0]["tags"].as_array().unwrap();
    let endpoints: Vec<&Value> = tags.iter().flat_map(|t| t["endpoints"].as_array().unwrap()).collect();
    assert_eq!(endpoints.len(), 8);
    let post = endpoints.iter().find(|e| e["verb"] == "POST").unwrap();
    assert_eq!(
        **post,
        json!({
            "__typename": "Endpoint",
            "verb": "POST",
            "path": post["path"],
            "description": null,
            "parameters": [
                {"required": true, "schemaType": "integer", "description": null, "name": "id",
                 "location": "PATH", "example": post["parameters"][0]["example"]},
                {"required": false, "schemaType": "boolean", "description": null, "name": "verbose",
                 "location": "QUERY", "example": false}
            ],
            "deprecated": false,
            "params": [{"__typename": "Parameter", "n": "id"}, {"__typename": "Parameter", "n": "verbose"}],
            "id": post["id"],
            "requestBody": {"__typename": "RequestBody", "required": true,
                            "example": {"name": "example"}, "contentType": "application/json"},
            "bodyWithSchema": {"schema": {"type": "object", "properties": {"name": {"type": "string"}}}}
        })
    );
    assert!(post["path"].as_str().unwrap().starts_with("/resources-"));
    let get = endpoints.iter().find(|e| e["verb"] == "GET").unwrap();
    assert_eq!(get["requestBody"], Value::Null);
    assert_eq!(get["bodyWithSchema"], Value::Null);

    // The paged list prefetches the same way.
    let page = app
        .graphql(
            r#"query($id: ID!) { endpoints(filter: {projectId: $id}, first: 4) {
                nodes { id method parameters { name } requestBody { contentType } } } }"#,
            json!({ "id": project_id }),
        )
        .await;
    let nodes = page.data()["endpoints"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    for node in nodes {
        assert_eq!(node["parameters"], json!([{"name": "id"}, {"name": "verbose"}]));
        let body =
            if node["method"] == "POST" { json!({"contentType": "application/json"}) } else { Value::Null };
        assert_eq!(node["requestBody"], body);
    }
}

/// Endpoint lists that SQLite writes as JSON must read byte for byte as the same selection
/// resolved in Rust: wrapping the selection in an inline fragment sends it down that path.
const ENDPOINT_FIELDS: &str = "__typename id verb: method path operationId summary description deprecated
    parameters { __typename name location required schemaType description example }
    body: requestBody { __typename contentType required example }";

#[tokio::test]
async fn endpoint_lists_written_by_the_database_read_as_resolved_ones() {
    use metric_vault::db::entities::{endpoint, endpoint_parameter, request_body, tag};
    use sea_orm::{ActiveModelTrait, DbBackend, EntityTrait, Set};

    // With the read cache on, both selections would be answered from the cached catalogue
    // (tests/api/read_cache.rs compares that with uncached answers).
    let app = crate::helpers::spawn_app_with(&[("READ_CACHE_ROWS", "0")]).await;
    let project_id = app.create_project("Shop").await;
    let seeded = seed::spec(&app.db, project_id.parse().unwrap(), "http://127.0.0.1:9000/api", 3, 12).await;
    // Text that JSON must escape, and examples of every JSON kind.
    let tricky = "quote \" backslash \\ tab \t newline \n soh \u{1} unit \u{1f} del \u{7f} \u{2028} é 🚀 '";
    let first = seeded.endpoint_ids[0];
    endpoint::ActiveModel {
        id: Set(first),
        summary: Set(Some(tricky.to_owned())),
        description: Set(Some("<b>&amp;</b> / slash".to_owned())),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .unwrap();
    let examples = [
        json!({"b": [1, -2.5, 1e300, null, true], "a": {"z": tricky, "y": ""}, "aa": 0}),
        json!(tricky),
        json!(12345678901234_i64),
        json!(0.1),
        json!([]),
    ];
    let parameters = endpoint_parameter::Entity::find().all(&app.db).await.unwrap();
    for (parameter, example) in parameters.into_iter().zip(examples) {
        let mut parameter: endpoint_parameter::ActiveModel = parameter.into();
        parameter.example = Set(Some(example));
        parameter.description = Set(Some(tricky.to_owned()));
        parameter.update(&app.db).await.unwrap();
    }
    let body = request_body::Entity::find().one(&app.db).await.unwrap().unwrap();
    let mut body: request_body::ActiveModel = body.into();
    body.example = Set(Some(json!({"name": tricky, "count": 3})));
    body.update(&app.db).await.unwrap();
    let no_endpoints = tag::ActiveModel {
        spec_id: Set(seeded.spec_id),
        name: Set("unused".into()),
        description: Set(None),
        position: Set(9),
        ..Default::default()
    };
    no_endpoints.insert(&app.db).await.unwrap();

    let variables = json!({ "id": project_id });
    // One field per enclosing object: async-graphql orders the keys of the objects it resolves
    // as their fields finish, so only the endpoint lists have a fixed key order to compare.
    let by_spec = |fields: &str| {
        format!("query($id: ID!) {{ project(id: $id) {{ specs {{ endpoints {{ {fields} }} }} }} }}")
    };
    let by_tag = |fields: &str| {
        format!(
            "query($id: ID!) {{ project(id: $id) {{ specs {{ tags {{ endpoints {{ {fields} }} }} }} }} }}"
        )
    };
    let in_fragment = format!("... on Endpoint {{ {ENDPOINT_FIELDS} }}");
    let mut tags = Value::Null;
    for query in [by_spec, by_tag] {
        let written = answer_text(&app, &query(ENDPOINT_FIELDS), &variables).await;
        let resolved = answer_text(&app, &query(&in_fragment), &variables).await;
        assert_eq!(written, resolved);
        let parsed: Value = serde_json::from_str(&written).unwrap();
        assert!(parsed.get("errors").is_none(), "{parsed}");
        let spec = &parsed["data"]["project"]["specs"][0];
        if spec["tags"].is_array() {
            tags = spec["tags"].clone();
        } else {
            assert_eq!(spec["endpoints"].as_array().unwrap().len(), 12);
            assert_eq!(spec["endpoints"][0]["summary"], tricky);
            assert_eq!(spec["endpoints"][0]["parameters"][0]["example"]["a"]["z"], tricky);
        }
    }
    let tags = tags.as_array().unwrap();
    assert_eq!(tags.len(), 4);
    assert_eq!(tags.iter().map(|tag| tag["endpoints"].as_array().unwrap().len()).sum::<usize>(), 12);
    assert_eq!(tags[3]["endpoints"], json!([]));

    // On SQLite the plain selection is written by the database: parameters and bodies are not
    // loaded in statements of their own.
    let written = app.statements_for(&by_tag(ENDPOINT_FIELDS), variables.clone()).await;
    let resolved = app.statements_for(&by_tag(&in_fragment), variables).await;
    if app.db.get_database_backend() == DbBackend::Sqlite {
        assert_eq!((written, resolved), (4, 6));
    } else {
        assert_eq!(written, resolved);
    }
}

/// The body of a GraphQL answer as the server wrote it.
async fn answer_text(app: &crate::helpers::TestApp, query: &str, variables: &Value) -> String {
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}
