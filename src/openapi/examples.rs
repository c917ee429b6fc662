//! Example values for parameters and request bodies, taken from the document or made from a schema.
//!
//! Everything here is a pure function of its input: the same schema always yields the same value,
//! so re-importing a document does not change the load a test sends.

use serde_json::{Map, Number, Value};

use super::budget::weight;
use super::resolve::TRUNCATED_MARKER;

/// Nesting depth after which generation gives up on a branch; it keeps recursive schemas
/// (those not already cut by inlining) and absurdly deep ones finite.
const MAX_DEPTH: usize = 12;

/// Up to this many properties, an object schema without a `required` list gets all of them.
const ALL_PROPERTIES_LIMIT: usize = 10;

/// The most a generated example may weigh (about its JSON length). Arrays repeat their item up
/// to 16 times at each of [`MAX_DEPTH`] levels, so without a bound a small schema of nested
/// arrays would ask for 16^12 values; past this, arrays get fewer items and optional
/// properties are left out.
const MAX_EXAMPLE_BYTES: usize = 256 * 1024;

/// The longest generated string, whatever `minLength` asks for (`minLength: 1e12` would ask for
/// a terabyte).
const MAX_EXAMPLE_STRING: usize = 4096;

/// What is left of [`MAX_EXAMPLE_BYTES`] while one example is generated.
struct Allowance(usize);

impl Allowance {
    /// Takes `bytes` if that many are left.
    fn take(&mut self, bytes: usize) -> bool {
        let enough = bytes <= self.0;
        if enough {
            self.0 -= bytes;
        }
        enough
    }
}

/// The example written on a parameter or media type object: `example`, else the first entry of
/// `examples` (a 3.x map of Example Objects, whose `$ref`s the caller has resolved, or a list).
/// Swagger 2.0 has no parameter examples, but many 2.0 documents use `x-example`.
pub fn explicit_example(holder: &Value) -> Option<Value> {
    let object = holder.as_object()?;
    if let Some(example) = object.get("example").or_else(|| object.get("x-example")) {
        return Some(example.clone());
    }
    match object.get("examples")? {
        Value::Object(named) => named.values().find_map(|entry| entry.get("value").cloned()),
        Value::Array(list) => list.first().cloned(),
        _ => None,
    }
}

/// An example for `schema`: the schema's own `example`, first of `examples`, `default`,
/// `const` or first `enum` value, else one generated from its type and constraints.
/// `Value::Null` when nothing sensible can be made (an empty or cut-off schema).
pub fn example_from_schema(schema: &Value) -> Value {
    generate(schema, 0, &mut Allowance(MAX_EXAMPLE_BYTES)).unwrap_or(Value::Null)
}

/// `None` means "nothing can be said about this value": the caller leaves an optional property
/// out and an array empty rather than inventing data.
fn generate(schema: &Value, depth: usize, left: &mut Allowance) -> Option<Value> {
    let object = schema.as_object()?;
    if depth > MAX_DEPTH || object.contains_key(TRUNCATED_MARKER) || object.contains_key("$ref") {
        return None;
    }
    if let Some(value) = declared_value(object) {
        return left.take(weight(&value)).then_some(value);
    }
    if object.contains_key("allOf") || object.contains_key("oneOf") || object.contains_key("anyOf") {
        let flattened = flatten_composition(object, depth);
        return generate_from_type(&flattened, depth, left);
    }
    generate_from_type(object, depth, left)
}

fn declared_value(object: &Map<String, Value>) -> Option<Value> {
    if let Some(example) = object.get("example") {
        return Some(example.clone());
    }
    if let Some(Value::Array(examples)) = object.get("examples")
        && let Some(first) = examples.first()
    {
        return Some(first.clone());
    }
    if let Some(default) = object.get("default") {
        return Some(default.clone());
    }
    if let Some(constant) = object.get("const") {
        return Some(constant.clone());
    }
    let Some(Value::Array(choices)) = object.get("enum") else {
        return None;
    };
    choices.iter().find(|choice| !choice.is_null()).or(choices.first()).cloned()
}

/// Turns `allOf` (all branches merged) and `oneOf`/`anyOf` (first branch that is neither just
/// `null` nor cut off by inlining) into one plain schema merged with the keywords beside them.
fn flatten_composition(object: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    let mut merged: Map<String, Value> = object
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "allOf" | "oneOf" | "anyOf"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut branches: Vec<&Value> = Vec::new();
    if let Some(Value::Array(all)) = object.get("allOf") {
        branches.extend(all);
    }
    for keyword in ["oneOf", "anyOf"] {
        if let Some(Value::Array(choices)) = object.get(keyword)
            && let Some(choice) = choices.iter().find(|choice| is_usable_branch(choice))
        {
            branches.push(choice);
        }
    }
    for branch in branches {
        let Some(branch) = branch.as_object().filter(|branch| !branch.contains_key(TRUNCATED_MARKER)) else {
            continue;
        };
        let branch = if depth < MAX_DEPTH
            && (branch.contains_key("allOf") || branch.contains_key("oneOf") || branch.contains_key("anyOf"))
        {
            flatten_composition(branch, depth + 1)
        } else {
            branch.clone()
        };
        merge_branch(&mut merged, branch);
    }
    merged
}

fn merge_branch(merged: &mut Map<String, Value>, branch: Map<String, Value>) {
    for (key, value) in branch {
        match (key.as_str(), merged.get_mut(&key), value) {
            ("properties", Some(Value::Object(existing)), Value::Object(more)) => {
                for (name, property) in more {
                    existing.entry(name).or_insert(property);
                }
            }
            ("required", Some(Value::Array(existing)), Value::Array(more)) => {
                for name in more {
                    if !existing.contains(&name) {
                        existing.push(name);
                    }
                }
            }
            // What the outer schema (or an earlier branch) says first wins.
            (_, Some(_), _) => {}
            (_, None, value) => {
                merged.insert(key, value);
            }
        }
    }
}

fn is_usable_branch(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) != Some("null") && schema.get(TRUNCATED_MARKER).is_none()
}

/// The schema's `type`; for a 3.1 type list the first entry that is not "null".
pub fn declared_type(schema: &Value) -> Option<&str> {
    type_keyword(schema.get("type")?)
}

fn type_keyword(value: &Value) -> Option<&str> {
    match value {
        Value::String(name) => Some(name),
        Value::Array(names) => {
            let mut names = names.iter().filter_map(Value::as_str);
            let first = names.clone().next();
            names.find(|name| *name != "null").or(first)
        }
        _ => None,
    }
}

/// The declared type, else the one the keywords present imply (`properties`: an object, ...).
fn schema_type(object: &Map<String, Value>) -> Option<&str> {
    if let Some(name) = object.get("type").and_then(type_keyword) {
        return Some(name);
    }
    if ["properties", "additionalProperties", "required"].iter().any(|key| object.contains_key(*key)) {
        Some("object")
    } else if object.contains_key("items") || object.contains_key("prefixItems") {
        Some("array")
    } else if ["format", "minLength", "maxLength", "pattern"].iter().any(|key| object.contains_key(*key)) {
        Some("string")
    } else if ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]
        .iter()
        .any(|key| object.contains_key(*key))
    {
        Some("number")
    } else {
        None
    }
}

fn generate_from_type(object: &Map<String, Value>, depth: usize, left: &mut Allowance) -> Option<Value> {
    if let Some(value) = declared_value(object) {
        return left.take(weight(&value)).then_some(value);
    }
    if !left.take(4) {
        return None;
    }
    match schema_type(object)? {
        "string" => Some(string_example(object)).filter(|text| left.take(text.len())).map(Value::String),
        "integer" => Some(Value::Number(integer_example(object).into())),
        "number" => Number::from_f64(number_example(object)).map(Value::Number),
        "boolean" => Some(Value::Bool(true)),
        "array" => Some(array_example(object, depth, left)),
        "object" => Some(object_example(object, depth, left)),
        _ => None,
    }
}

fn string_example(object: &Map<String, Value>) -> String {
    let format = object.get("format").and_then(Value::as_str).unwrap_or_default();
    let formatted = match format {
        "date" => Some("2024-01-01"),
        "date-time" => Some("2024-01-01T00:00:00Z"),
        "time" => Some("00:00:00Z"),
        "email" | "idn-email" => Some("user@example.com"),
        "uuid" => Some("00000000-0000-4000-8000-000000000000"),
        "uri" | "url" | "iri" => Some("https://example.com"),
        "uri-reference" | "iri-reference" => Some("/example"),
        "hostname" | "idn-hostname" => Some("example.com"),
        "ipv4" => Some("192.0.2.1"),
        "ipv6" => Some("2001:db8::1"),
        "byte" => Some("ZXhhbXBsZQ=="),
        "duration" => Some("P1D"),
        "password" => Some("password"),
        _ => None,
    };
    if let Some(formatted) = formatted {
        return formatted.to_owned();
    }
    let min_length = unsigned(object, "minLength").unwrap_or(0).min(MAX_EXAMPLE_STRING);
    let max_length = unsigned(object, "maxLength").unwrap_or(usize::MAX).max(min_length);
    let mut text = String::from("string");
    if text.len() < min_length {
        text.push_str(&"x".repeat(min_length - text.len()));
    }
    text.truncate(max_length);
    text
}

fn unsigned(object: &Map<String, Value>, key: &str) -> Option<usize> {
    let value = object.get(key)?;
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|n| *n >= 0.0).map(|n| n as u64))
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A `minimum` or `maximum`.
#[derive(Clone, Copy)]
struct Bound {
    value: f64,
    exclusive: bool,
}

/// 3.0 writes exclusivity as a boolean beside `minimum`; 3.1 writes the bound itself in
/// `exclusiveMinimum`.
fn bound(object: &Map<String, Value>, inclusive_key: &str, exclusive_key: &str) -> Option<Bound> {
    let flag = object.get(exclusive_key);
    if let Some(value) = flag.and_then(Value::as_f64) {
        return Some(Bound { value, exclusive: true });
    }
    let exclusive = flag.and_then(Value::as_bool).unwrap_or(false);
    let value = object.get(inclusive_key).and_then(Value::as_f64)?;
    Some(Bound { value, exclusive })
}

fn integer_example(object: &Map<String, Value>) -> i64 {
    let low = bound(object, "minimum", "exclusiveMinimum")
        .map(|low| if low.exclusive { low.value.floor() + 1.0 } else { low.value.ceil() });
    let high = bound(object, "maximum", "exclusiveMaximum")
        .map(|high| if high.exclusive { high.value.ceil() - 1.0 } else { high.value.floor() });
    let mut chosen = match (low, high) {
        (Some(low), _) => low,
        (None, Some(high)) => high.min(1.0),
        (None, None) => 1.0,
    };
    if let Some(step) = object.get("multipleOf").and_then(Value::as_f64).filter(|step| *step >= 1.0) {
        let step = step.round();
        chosen = (chosen / step).ceil() * step;
    }
    // Float to integer `as` saturates, which is the right answer for absurd bounds.
    chosen as i64
}

fn number_example(object: &Map<String, Value>) -> f64 {
    let low = bound(object, "minimum", "exclusiveMinimum");
    let high = bound(object, "maximum", "exclusiveMaximum");
    match (low, high) {
        (Some(low), _) if !low.exclusive => low.value,
        (Some(low), Some(high)) => (low.value + high.value) / 2.0,
        (Some(low), None) => low.value + 1.0,
        (None, Some(high)) if high.exclusive => (high.value - 1.0).min(1.0),
        (None, Some(high)) => high.value.min(1.0),
        (None, None) => 1.0,
    }
}

fn array_example(object: &Map<String, Value>, depth: usize, left: &mut Allowance) -> Value {
    let Some(item) = object.get("items").and_then(|items| generate(items, depth + 1, left)) else {
        return Value::Array(Vec::new());
    };
    let mut count = unsigned(object, "minItems").unwrap_or(1).clamp(1, 16);
    let item_weight = weight(&item).max(1);
    count = count.min(1 + left.0 / item_weight);
    left.take((count - 1) * item_weight);
    Value::Array(vec![item; count])
}

fn object_example(object: &Map<String, Value>, depth: usize, left: &mut Allowance) -> Value {
    let mut example = Map::new();
    let Some(Value::Object(properties)) = object.get("properties") else {
        return Value::Object(example);
    };
    let required: Vec<&str> = match object.get("required") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let chosen: Vec<&String> = if required.is_empty() {
        if properties.len() > ALL_PROPERTIES_LIMIT { Vec::new() } else { properties.keys().collect() }
    } else {
        properties.keys().filter(|name| required.contains(&name.as_str())).collect()
    };
    for name in chosen {
        let property = &properties[name];
        // A request never sends read-only properties.
        if property.get("readOnly").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if !left.take(name.len() + 3) {
            break;
        }
        match generate(property, depth + 1, left) {
            Some(value) => {
                example.insert(name.clone(), value);
            }
            None if required.contains(&name.as_str()) => {
                example.insert(name.clone(), Value::Null);
            }
            None => {}
        }
    }
    Value::Object(example)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explicit_examples_come_first() {
        let media = json!({"example": {"a": 1}, "examples": {"x": {"value": 2}}});
        assert_eq!(explicit_example(&media), Some(json!({"a": 1})));
        let media = json!({"examples": {"b": {"externalValue": "x.json"}, "c": {"value": 3}}});
        assert_eq!(explicit_example(&media), Some(json!(3)));
        assert_eq!(explicit_example(&json!({"schema": {}})), None);
    }

    #[test]
    fn schema_values_before_generation() {
        assert_eq!(example_from_schema(&json!({"type": "string", "examples": ["doggie"]})), "doggie");
        assert_eq!(example_from_schema(&json!({"type": "integer", "default": 20})), 20);
        assert_eq!(example_from_schema(&json!({"enum": [null, "b", "c"]})), "b");
        assert_eq!(example_from_schema(&json!({"const": "fixed"})), "fixed");
    }

    #[test]
    fn strings_follow_format_and_length() {
        assert_eq!(
            example_from_schema(&json!({"type": "string", "format": "date-time"})),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            example_from_schema(&json!({"type": "string", "format": "uuid"})),
            "00000000-0000-4000-8000-000000000000"
        );
        assert_eq!(example_from_schema(&json!({"type": "string", "minLength": 10})), "stringxxxx");
        assert_eq!(example_from_schema(&json!({"type": "string", "maxLength": 3})), "str");
    }

    #[test]
    fn numbers_respect_bounds() {
        assert_eq!(example_from_schema(&json!({"type": "integer"})), 1);
        assert_eq!(example_from_schema(&json!({"type": "integer", "minimum": 5})), 5);
        assert_eq!(
            example_from_schema(&json!({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 10})),
            2
        );
        assert_eq!(
            example_from_schema(&json!({"type": "integer", "minimum": 0, "exclusiveMinimum": true})),
            1
        );
        assert_eq!(example_from_schema(&json!({"type": "integer", "maximum": -3})), -3);
        assert_eq!(example_from_schema(&json!({"type": "integer", "minimum": 3, "multipleOf": 5})), 5);
        assert_eq!(example_from_schema(&json!({"type": "number", "exclusiveMinimum": 0, "maximum": 1})), 0.5);
    }

    #[test]
    fn objects_arrays_and_compositions() {
        let schema = json!({
            "type": "object",
            "required": ["id", "tags"],
            "properties": {
                "id": {"type": ["integer", "null"], "readOnly": false},
                "tags": {"type": "array", "minItems": 2, "items": {"type": "string"}},
                "note": {"type": "string"}
            }
        });
        assert_eq!(example_from_schema(&schema), json!({"id": 1, "tags": ["string", "string"]}));
        let schema = json!({
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "boolean"}}},
                {"properties": {"b": {"oneOf": [{"type": "null"}, {"type": "string", "format": "email"}]}}}
            ]
        });
        assert_eq!(example_from_schema(&schema), json!({"a": true, "b": "user@example.com"}));
        let read_only =
            json!({"properties": {"id": {"type": "integer", "readOnly": true}, "n": {"type": "string"}}});
        assert_eq!(example_from_schema(&read_only), json!({"n": "string"}));
    }

    #[test]
    fn cut_schemas_and_deep_recursion_terminate() {
        let cut = json!({"type": "object", "required": ["child", "children"], "properties": {
            "child": {"$ref": "#/components/schemas/Node", TRUNCATED_MARKER: true},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node", TRUNCATED_MARKER: true}}}});
        assert_eq!(example_from_schema(&cut), json!({"child": null, "children": []}));
        let mut deep = json!({"type": "string"});
        for _ in 0..40 {
            deep = json!({"type": "object", "required": ["next"], "properties": {"next": deep}});
        }
        let example = example_from_schema(&deep);
        assert_eq!(example, example_from_schema(&deep));
        assert!(example.to_string().contains("\"next\":null"));
    }

    #[test]
    fn examples_stay_small_whatever_the_schema_asks() {
        let huge_string = json!({"type": "string", "minLength": 1e12});
        assert_eq!(example_from_schema(&huge_string).as_str().map(str::len), Some(MAX_EXAMPLE_STRING));
        // Sixteen items at each of twelve levels would be 16^12 strings.
        let mut nested = json!({"type": "string"});
        for _ in 0..12 {
            nested = json!({"type": "array", "minItems": 16, "items": nested});
        }
        let started = std::time::Instant::now();
        let example = example_from_schema(&nested);
        assert!(example.to_string().len() <= MAX_EXAMPLE_BYTES, "{}", example.to_string().len());
        assert!(example[0][0][0].is_array(), "still an example of the right shape");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
