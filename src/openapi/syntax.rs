//! Turns document text (JSON or YAML) into a `serde_json::Value` tree, keeping the order of `paths`.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_json::{Map, Value};

use super::budget::Budget;
use super::model::ParseError;
use super::yaml_scan::measure_yaml;

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

/// Reads `text` as JSON when it starts with `{`, else as YAML, within `budget`: every value
/// read is counted and its depth checked, and YAML is measured with its aliases expanded
/// before it is read.
pub(crate) fn read_document(text: &str, budget: &Budget<'_>) -> Result<SyntaxTree, ParseError> {
    let text = text.trim_start_matches('\u{feff}');
    // Only for looking: YAML whose first line is indented must reach the parser as written.
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    if looks_like_html(trimmed) {
        return Err(ParseError::Html);
    }
    // A limit that stops a parser surfaces as that parser's error; the budget knows the reason.
    let refusal_or = |error: &dyn fmt::Display| budget.refusal().unwrap_or_else(|| syntax_error(error));
    let (root, path_order) = if trimmed.starts_with('{') {
        // A flow-style YAML mapping also starts with `{`, so YAML gets a second chance, but the
        // JSON error is the one worth reporting for text that was meant to be JSON.
        match read_json(text, budget) {
            Ok(read) => read,
            Err(json_error) => {
                if let Some(refusal) = budget.refusal() {
                    return Err(refusal);
                }
                read_yaml(text, budget).map_err(|_| refusal_or(&json_error))?
            }
        }
    } else {
        read_yaml(text, budget).map_err(|error| refusal_or(&error))?
    };
    if holds_nul(&root) {
        return Err(ParseError::NulCharacter);
    }
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

/// Whether a key or a string anywhere in `value` holds a NUL character (walked without recursion).
fn holds_nul(value: &Value) -> bool {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) if text.contains('\0') => return true,
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => {
                if fields.keys().any(|key| key.contains('\0')) {
                    return true;
                }
                pending.extend(fields.values());
            }
            _ => {}
        }
    }
    false
}

fn read_json(text: &str, budget: &Budget<'_>) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let read = ValueSeed::top(budget).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(read)
}

/// Measures the text with its aliases expanded first, then reads it.
fn read_yaml(text: &str, budget: &Budget<'_>) -> Result<(Value, Vec<String>), ReadError> {
    measure_yaml(text, budget).map_err(ReadError::Limit)?;
    ValueSeed::top(budget).deserialize(yaml_serde::Deserializer::from_str(text)).map_err(ReadError::Yaml)
}

/// Why YAML was not read: a limit (already recorded in the budget) or the parser's error.
enum ReadError {
    Limit(ParseError),
    Yaml(yaml_serde::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Limit(error) => error.fmt(f),
            ReadError::Yaml(error) => error.fmt(f),
        }
    }
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
///
/// Every value (map keys included) is charged to the budget at its depth before it is built,
/// so neither a long nor a deep document gets further than the limits.
#[derive(Clone, Copy)]
struct ValueSeed<'b, 'l> {
    keep: Keep,
    /// Of the value this seed builds; the top-level value is at depth 1.
    depth: usize,
    budget: &'b Budget<'l>,
}

impl<'b, 'l> ValueSeed<'b, 'l> {
    fn top(budget: &'b Budget<'l>) -> Self {
        ValueSeed { keep: Keep::PathOrder, depth: 1, budget }
    }

    fn child(self, keep: Keep) -> Self {
        ValueSeed { keep, depth: self.depth + 1, budget: self.budget }
    }

    /// Charges this value; the error text is replaced by the budget's refusal later.
    fn charge<E: de::Error>(self) -> Result<(), E> {
        self.budget.read_value(self.depth).map_err(|refusal| E::custom(refusal))
    }
}

type WithOrder = (Value, Vec<String>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
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

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = WithOrder;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON or YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<WithOrder, A::Error> {
        self.charge()?;
        let mut map = Map::new();
        let mut order = Vec::new();
        let mut merged = Vec::new();
        while let Some(key) = access.next_key::<String>()? {
            self.child(Keep::Nothing).charge()?;
            if key == "<<" {
                merged.push(access.next_value_seed(self.child(Keep::KeyOrder))?);
                continue;
            }
            let value = if self.keep == Keep::PathOrder && key == "paths" {
                let (value, paths_order) = access.next_value_seed(self.child(Keep::KeyOrder))?;
                order = paths_order;
                value
            } else {
                access.next_value_seed(self.child(Keep::Nothing))?.0
            };
            // A repeated key keeps its first position, while the later value replaces the earlier.
            if self.keep == Keep::KeyOrder && !map.contains_key(&key) {
                order.push(key.clone());
            }
            map.insert(key, value);
        }
        apply_merge_keys(&mut map, &mut order, merged, self.keep == Keep::KeyOrder);
        Ok((Value::Object(map), order))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<WithOrder, A::Error> {
        self.charge()?;
        let mut items = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
        while let Some((item, _)) = access.next_element_seed(self.child(Keep::Nothing))? {
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
        self.charge()?;
        Ok(plain(Value::String(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(Value::String(text)))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(Value::String(String::from_utf8_lossy(bytes).into_owned())))
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(Value::Bool(flag)))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(Value::from(number)))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(Value::from(number)))
    }

    fn visit_i128<E: de::Error>(self, number: i128) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(i64::try_from(number).map_or_else(|_| Value::from(number as f64), Value::from)))
    }

    fn visit_u128<E: de::Error>(self, number: u128) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(u64::try_from(number).map_or_else(|_| Value::from(number as f64), Value::from)))
    }

    /// YAML's `.nan` and `.inf` have no JSON form; like serde_json, they become null.
    fn visit_f64<E: de::Error>(self, number: f64) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(Value::from(number)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<WithOrder, E> {
        self.charge()?;
        Ok(plain(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::super::budget::ParseLimits;
    use super::*;

    fn read_document(text: &str) -> Result<SyntaxTree, ParseError> {
        super::read_document(text, &Budget::new(&ParseLimits::DEFAULT))
    }

    #[test]
    fn a_nul_character_anywhere_is_refused() {
        for text in [
            r#"{"openapi":"3.0.0","info":{"title":"a\u0000b"},"paths":{}}"#,
            r#"{"openapi":"3.0.0","paths":{"/x\u0000":{}}}"#,
            "openapi: 3.0.0\ninfo:\n  title: \"a\\0b\"\npaths: {}\n",
            r#"{"openapi":"3.0.0","paths":{},"x":[[{"e":"\u0000"}]]}"#,
        ] {
            assert!(matches!(read_document(text), Err(ParseError::NulCharacter)), "{text}");
        }
        assert!(read_document(r#"{"openapi":"3.0.0","info":{"title":"a\\u0000b"},"paths":{}}"#).is_ok());
    }

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
