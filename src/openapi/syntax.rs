//! Turns document text (JSON or YAML) into a `serde_json::Value` tree, keeping the order of `paths`.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_json::{Map, Value};

use super::model::ParseError;

/// Longest parser message shown to the user; YAML errors can quote long stretches of input.
const MAX_REASON_CHARS: usize = 160;

/// The top-level mapping of a document, with the keys of `paths` in the order they were written.
///
/// serde_json is built without `preserve_order`, so its maps iterate alphabetically. Endpoint order
/// is part of the import result, so the `paths` keys are recorded while the text is read.
#[derive(Debug)]
pub(crate) struct SyntaxTree {
    pub root: Map<String, Value>,
    pub path_order: Vec<String>,
}

/// Reads `text` as JSON when it starts with `{`, else as YAML.
pub(crate) fn read_document(text: &str) -> Result<SyntaxTree, ParseError> {
    let text = text.trim_start_matches('\u{feff}');
    // Only for looking: YAML whose first line is indented must reach the parser as written.
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    if looks_like_html(trimmed) {
        return Err(ParseError::Html);
    }
    let (root, path_order) = if trimmed.starts_with('{') {
        // A flow-style YAML mapping also starts with `{`, so YAML gets a second chance, but the
        // JSON error is the one worth reporting for text that was meant to be JSON.
        read_json(text).or_else(|json_error| read_yaml(text).map_err(|_| syntax_error(&json_error)))?
    } else {
        read_yaml(text).map_err(|error| syntax_error(&error))?
    };
    let found = match root {
        Value::Object(root) => return Ok(SyntaxTree { root, path_order }),
        Value::Null => return Err(ParseError::Empty),
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
    };
    Err(ParseError::NotAnObject { found })
}

fn read_json(text: &str) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let read = ValueSeed(Keep::PathOrder).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(read)
}

fn read_yaml(text: &str) -> Result<(Value, Vec<String>), yaml_serde::Error> {
    ValueSeed(Keep::PathOrder).deserialize(yaml_serde::Deserializer::from_str(text))
}

fn looks_like_html(text: &str) -> bool {
    if !text.starts_with('<') {
        return false;
    }
    let head: String = text.chars().take(2048).collect::<String>().to_ascii_lowercase();
    ["<!doctype html", "<html", "<head", "<body"].iter().any(|marker| head.contains(marker))
}

fn syntax_error(error: &dyn fmt::Display) -> ParseError {
    let message = error.to_string();
    let first_line = message.lines().next().unwrap_or_default();
    let mut reason: String = first_line.chars().take(MAX_REASON_CHARS).collect();
    if first_line.chars().count() > MAX_REASON_CHARS {
        reason.push('…');
    }
    ParseError::Syntax { reason }
}

/// Which key order a [`ValueSeed`] reports along with the value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    /// The value is the document: report the key order of its `paths` mapping.
    PathOrder,
    /// Report the key order of this mapping.
    KeyOrder,
}

/// Builds a `serde_json::Value` like serde_json's own visitor, but also accepts what YAML allows
/// and JSON does not: integers beyond 64 bits (OpenAI's spec writes ±9.2e18 as integers; they
/// become floats) and tagged values (`!Tag value`, the tag is dropped).
#[derive(Clone, Copy)]
struct ValueSeed(Keep);

type WithOrder = (Value, Vec<String>);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = WithOrder;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WithOrder, D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn plain(value: Value) -> WithOrder {
    (value, Vec::new())
}

/// YAML merge keys (`<<: *base` or `<<: [*a, *b]`): keys written in the mapping win, then
/// earlier merged mappings over later ones. Hand-written specs use them to share operations.
fn apply_merge_keys(
    map: &mut Map<String, Value>,
    order: &mut Vec<String>,
    merged: Vec<WithOrder>,
    keep_order: bool,
) {
    let mut sources = Vec::new();
    for (value, value_order) in merged {
        match value {
            Value::Object(source) => sources.push((source, value_order)),
            Value::Array(items) => sources.extend(items.into_iter().filter_map(|item| match item {
                Value::Object(source) => Some((source, Vec::new())),
                _ => None,
            })),
            _ => {}
        }
    }
    for (mut source, source_order) in sources {
        let keys: Vec<String> =
            if source_order.is_empty() { source.keys().cloned().collect() } else { source_order };
        for key in keys {
            if map.contains_key(&key) {
                continue;
            }
            if let Some(value) = source.remove(&key) {
                if keep_order {
                    order.push(key.clone());
                }
                map.insert(key, value);
            }
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = WithOrder;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON or YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<WithOrder, A::Error> {
        let mut map = Map::new();
        let mut order = Vec::new();
        let mut merged = Vec::new();
        while let Some(key) = access.next_key::<String>()? {
            if key == "<<" {
                merged.push(access.next_value_seed(ValueSeed(Keep::KeyOrder))?);
                continue;
            }
            let value = if self.0 == Keep::PathOrder && key == "paths" {
                let (value, paths_order) = access.next_value_seed(ValueSeed(Keep::KeyOrder))?;
                order = paths_order;
                value
            } else {
                access.next_value_seed(ValueSeed(Keep::Nothing))?.0
            };
            // A repeated key keeps its first position, while the later value replaces the earlier.
            if self.0 == Keep::KeyOrder && !map.contains_key(&key) {
                order.push(key.clone());
            }
            map.insert(key, value);
        }
        apply_merge_keys(&mut map, &mut order, merged, self.0 == Keep::KeyOrder);
        Ok((Value::Object(map), order))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<WithOrder, A::Error> {
        let mut items = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
        while let Some((item, _)) = access.next_element_seed(ValueSeed(Keep::Nothing))? {
            items.push(item);
        }
        Ok(plain(Value::Array(items)))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, access: A) -> Result<WithOrder, A::Error> {
        let (_tag, variant): (IgnoredAny, _) = access.variant()?;
        variant.newtype_variant_seed(self)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<WithOrder, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<WithOrder, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<WithOrder, E> {
        Ok(plain(Value::String(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<WithOrder, E> {
        Ok(plain(Value::String(text)))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<WithOrder, E> {
        Ok(plain(Value::String(String::from_utf8_lossy(bytes).into_owned())))
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<WithOrder, E> {
        Ok(plain(Value::Bool(flag)))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<WithOrder, E> {
        Ok(plain(Value::from(number)))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<WithOrder, E> {
        Ok(plain(Value::from(number)))
    }

    fn visit_i128<E: de::Error>(self, number: i128) -> Result<WithOrder, E> {
        Ok(plain(i64::try_from(number).map_or_else(|_| Value::from(number as f64), Value::from)))
    }

    fn visit_u128<E: de::Error>(self, number: u128) -> Result<WithOrder, E> {
        Ok(plain(u64::try_from(number).map_or_else(|_| Value::from(number as f64), Value::from)))
    }

    /// YAML's `.nan` and `.inf` have no JSON form; like serde_json, they become null.
    fn visit_f64<E: de::Error>(self, number: f64) -> Result<WithOrder, E> {
        Ok(plain(Value::from(number)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<WithOrder, E> {
        Ok(plain(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<WithOrder, E> {
        Ok(plain(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_path_order_from_json_and_yaml() {
        let json = r#"{"openapi":"3.0.0","paths":{"/b":{},"/a":{},"/c":{}}}"#;
        assert_eq!(read_document(json).unwrap().path_order, ["/b", "/a", "/c"]);
        let yaml = "openapi: 3.0.0\npaths:\n  /z: {}\n  /y: {}\n";
        assert_eq!(read_document(yaml).unwrap().path_order, ["/z", "/y"]);
    }

    #[test]
    fn yaml_integer_keys_become_strings() {
        let tree = read_document("a:\n  200: ok\n  404: missing\n").unwrap();
        assert_eq!(tree.root["a"]["200"], "ok");
    }

    #[test]
    fn yaml_big_integers_and_tags_are_tolerated() {
        let tree =
            read_document("min: -9223372036854776000\nmax: 18446744073709551615\ntagged: !Thing {a: 1}\n")
                .unwrap();
        assert_eq!(tree.root["min"].as_f64(), Some(-9.223372036854776e18));
        assert_eq!(tree.root["max"], u64::MAX);
        assert_eq!(tree.root["tagged"]["a"], 1);
    }

    #[test]
    fn classifies_bad_input() {
        assert_eq!(read_document("  \n\t").unwrap_err(), ParseError::Empty);
        assert_eq!(read_document("# only a comment\n").unwrap_err(), ParseError::Empty);
        assert_eq!(
            read_document("<!DOCTYPE html><html><body>Sign in</body></html>").unwrap_err(),
            ParseError::Html
        );
        assert_eq!(read_document("just words").unwrap_err(), ParseError::NotAnObject { found: "a string" });
        assert_eq!(read_document("- 1\n- 2").unwrap_err(), ParseError::NotAnObject { found: "a list" });
        let error = read_document("{\"openapi\": ").unwrap_err();
        assert!(matches!(error, ParseError::Syntax { .. }), "{error:?}");
        let error = read_document("a: [1, 2\nb: }").unwrap_err();
        assert!(error.to_string().starts_with("the document is neither JSON nor YAML: "));
    }

    #[test]
    fn indented_yaml_keeps_its_indentation() {
        let tree = read_document("\n  openapi: 3.0.0\n  paths:\n    /a: {}\n").unwrap();
        assert_eq!(tree.path_order, ["/a"]);
    }

    #[test]
    fn yaml_merge_keys_apply() {
        let text = "base: &base {get: {summary: shared}, put: {summary: base}}\npaths:\n  /a:\n    <<: *base\n    put: {summary: own}\n  /b: {}\n";
        let tree = read_document(text).unwrap();
        assert_eq!(tree.root["paths"]["/a"]["get"]["summary"], "shared");
        assert_eq!(tree.root["paths"]["/a"]["put"]["summary"], "own");
        assert_eq!(tree.path_order, ["/a", "/b"]);
    }

    #[test]
    fn flow_style_yaml_mapping_is_accepted() {
        let tree = read_document("{openapi: 3.0.0, paths: {}}").unwrap();
        assert_eq!(tree.root["openapi"], "3.0.0");
    }
}
