//! Property tests (fuzzing) for the OpenAPI parser: documents from the corpus, mangled at
//! random, must be answered — imported or refused with a message — never with a panic or a
//! runaway. Two kinds of damage: structural (nodes replaced, removed, turned into `$ref`s to
//! anywhere, including themselves; deep nesting) and textual (truncation, stray characters).
//!
//! CI runs a bounded number of cases; `make fuzz` runs [`fuzz_openapi_parser_for_a_while`]
//! for `FUZZ_SECONDS`. Failures land in `proptest-regressions/` (committed), so every later
//! run replays them.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};
use url::Url;

use super::parse_document;

/// Small documents of each flavour: Swagger 2.0, OpenAPI 3.0, 3.1; JSON and YAML.
const SEEDS: [&str; 4] = [
    include_str!("../../tests/fixtures/openapi/oai-v2.0-petstore.json"),
    include_str!("../../tests/fixtures/openapi/oai-v3.0-link-example.yaml"),
    include_str!("../../tests/fixtures/openapi/oai-v3.1-webhook-example.json"),
    include_str!("../../tests/fixtures/openapi/oai-v2.0-uber.yaml"),
];

/// However mangled, one document must be answered within this.
const PARSE_LIMIT: Duration = Duration::from_secs(5);

/// One structural change, applied at the node reached by walking `path` (indices wrap).
#[derive(Clone, Debug)]
enum Damage {
    Replace(Vec<u16>, Value),
    Remove(Vec<u16>),
    /// Points the node at another node (or an ancestor: a cycle).
    RefTo(Vec<u16>, Vec<u16>),
    /// Wraps the node in `depth` levels of objects and arrays.
    Nest(Vec<u16>, u16),
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        Just(json!({"$ref": "#/"})),
        Just(json!({"$ref": "#/components/schemas/../../x"})),
        Just(json!({"$ref": "other.yaml#/a"})),
        Just(json!({"type": ["string", "null"], "allOf": [{"$ref": "#"}]})),
        Just(json!({"in": "body", "name": "b", "schema": {"$ref": "#/definitions"}})),
    ]
}

fn path() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(any::<u16>(), 0..8)
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (path(), odd_value()).prop_map(|(p, v)| Damage::Replace(p, v)),
        path().prop_map(Damage::Remove),
        (path(), path()).prop_map(|(p, to)| Damage::RefTo(p, to)),
        (path(), 1u16..200).prop_map(|(p, depth)| Damage::Nest(p, depth)),
    ]
}

/// The JSON pointer of the node reached by walking `path` from `root`, children chosen modulo.
fn pointer_of(root: &Value, path: &[u16]) -> String {
    let mut pointer = String::new();
    let mut node = root;
    for step in path {
        node = match node {
            Value::Object(map) if !map.is_empty() => {
                let (key, child) = map.iter().nth(usize::from(*step) % map.len()).expect("a key");
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                child
            }
            Value::Array(items) if !items.is_empty() => {
                let index = usize::from(*step) % items.len();
                pointer.push_str(&format!("/{index}"));
                &items[index]
            }
            _ => break,
        };
    }
    pointer
}

/// The JSON pointer and node reached by walking `path`.
fn walk<'a>(root: &'a mut Value, path: &[u16]) -> (String, &'a mut Value) {
    let pointer = pointer_of(root, path);
    let node = root.pointer_mut(&pointer).expect("the pointer was just walked");
    (pointer, node)
}

fn apply(root: &mut Value, damage: &Damage) {
    match damage {
        Damage::Replace(path, value) => *walk(root, path).1 = value.clone(),
        Damage::Remove(path) => {
            if let Some((last, parent)) = path.split_last() {
                match walk(root, parent).1 {
                    Value::Object(map) if !map.is_empty() => {
                        let key = map.keys().nth(usize::from(*last) % map.len()).cloned().expect("a key");
                        map.remove(&key);
                    }
                    Value::Array(items) if !items.is_empty() => {
                        items.remove(usize::from(*last) % items.len());
                    }
                    _ => {}
                }
            }
        }
        Damage::RefTo(path, to) => {
            let (pointer, _) = walk(root, to);
            *walk(root, path).1 = json!({ "$ref": format!("#{pointer}") });
        }
        Damage::Nest(path, depth) => {
            let node = walk(root, path).1;
            let mut nested = node.take();
            for level in 0..*depth {
                nested = if level % 2 == 0 { json!({ "items": nested }) } else { json!([nested]) };
            }
            *node = nested;
        }
    }
}

/// A seed as a JSON tree (YAML seeds are read through the parser's own YAML reader).
fn tree(seed: &str) -> Value {
    serde_json::from_str(seed)
        .unwrap_or_else(|_| yaml_serde::from_str(seed).expect("the seeds are valid YAML"))
}

fn structurally_damaged() -> impl Strategy<Value = String> {
    (0..SEEDS.len(), prop::collection::vec(damage(), 1..6)).prop_map(|(seed, damages)| {
        let mut root = tree(SEEDS[seed]);
        for damage in &damages {
            apply(&mut root, damage);
        }
        root.to_string()
    })
}

fn textually_damaged() -> impl Strategy<Value = String> {
    (
        0..SEEDS.len(),
        any::<prop::sample::Index>(),
        "\\PC{0,3}|[\\[\\]{}:\"'\\-#&*!|>\n\t ]{1,4}",
        any::<bool>(),
    )
        .prop_map(|(seed, at, insert, truncate)| {
            let text = SEEDS[seed];
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if truncate {
                text[..cut].to_owned()
            } else {
                format!("{}{insert}{}", &text[..cut], &text[cut..])
            }
        })
}

fn check(text: &str) -> Result<(), TestCaseError> {
    let url = Url::parse("http://127.0.0.1:8080/specs/doc.json").expect("a URL");
    let started = Instant::now();
    let answer = parse_document(text, Some(&url), None);
    let took = started.elapsed();
    prop_assert!(took < PARSE_LIMIT, "parsing took {took:?}: {}", &text[..text.len().min(300)]);
    if let Err(error) = answer {
        prop_assert!(!error.to_string().is_empty(), "a refusal says why");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn structurally_damaged_documents_are_answered(text in structurally_damaged()) {
        check(&text)?;
    }

    #[test]
    fn textually_damaged_documents_are_answered(text in textually_damaged()) {
        check(&text)?;
    }
}

/// Inputs that once failed, kept in `tests/fixtures/fuzz/openapi/`.
#[test]
fn saved_inputs_still_pass() {
    for (path, text) in crate::fuzzing::saved_inputs("openapi") {
        check(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// `make fuzz`: fresh random damage until `FUZZ_SECONDS` pass.
#[test]
#[ignore = "run by `make fuzz`, bounded by FUZZ_SECONDS"]
fn fuzz_openapi_parser_for_a_while() {
    crate::fuzzing::fuzz_for_a_while(
        "openapi",
        prop_oneof![structurally_damaged(), textually_damaged()],
        check,
    );
}
