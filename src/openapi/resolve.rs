//! `$ref` handling: JSON-pointer lookup, 3.1 `$id`/`$anchor` lookup, and schema inlining.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::budget::{Budget, weight};
use super::model::ParseError;

/// Key added to the object left where inlining stopped, so consumers can tell an unexpanded
/// `$ref` from a complete schema.
pub const TRUNCATED_MARKER: &str = "x-metric-vault-truncated";

/// How many `$ref`s may be expanded inside one another in a single schema.
const MAX_REF_DEPTH: usize = 8;

/// How many `$ref`s one schema may expand in total. Large APIs (OpenAI's) have unions of unions
/// whose full expansion runs into megabytes per operation, which nobody can read or store.
const MAX_REF_EXPANSIONS: usize = 400;

/// A `$ref` chain longer than this is treated as a loop of references.
const MAX_REF_HOPS: usize = 32;

/// One step of the location of a value in the document, used only to word errors.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Segment<'a> {
    Key(&'a str),
    Index(usize),
    /// Entered the target of this reference; the location restarts there.
    Ref(&'a str),
}

/// Renders a location as `paths./pets.get.parameters[0]`.
pub(crate) fn render_location(location: &[Segment<'_>]) -> String {
    let start = location.iter().rposition(|segment| matches!(segment, Segment::Ref(_)));
    let mut text = String::new();
    let rest = match start {
        Some(index) => {
            if let Segment::Ref(reference) = location[index] {
                text.push_str(reference);
            }
            &location[index + 1..]
        }
        None => location,
    };
    for segment in rest {
        match segment {
            Segment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Segment::Index(index) => text.push_str(&format!("[{index}]")),
            Segment::Ref(_) => {}
        }
    }
    text
}

/// Outcome of looking a reference up.
pub(crate) enum Target<'a> {
    Found(&'a Value),
    /// Points into another file or URL; never fetched.
    External,
    /// A local reference whose target does not exist.
    Missing,
}

/// Resolves references within one document and remembers what it had to skip or cut.
///
/// Everything inlining copies is charged to the import's budget as it is copied: the per-schema
/// bounds below keep one schema readable, the budget keeps a document whose many schemas each
/// fan out (or whose few fan out over large targets) from multiplying past what an import may hold.
pub(crate) struct Resolver<'a> {
    root: &'a Value,
    budget: &'a Budget<'a>,
    /// `$id` and `$anchor` values, collected on first need since only some 3.1 documents use them.
    identifiers: Option<Identifiers<'a>>,
    pub external_refs: BTreeSet<String>,
    pub recursive_refs: BTreeSet<&'a str>,
    pub schemas_cut_for_size: usize,
}

#[derive(Default)]
struct Identifiers<'a> {
    ids: HashMap<&'a str, &'a Value>,
    anchors: HashMap<&'a str, &'a Value>,
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Value, budget: &'a Budget<'a>) -> Self {
        Resolver {
            root,
            budget,
            identifiers: None,
            external_refs: BTreeSet::new(),
            recursive_refs: BTreeSet::new(),
            schemas_cut_for_size: 0,
        }
    }

    /// The import's budget, for what callers copy out of the document.
    pub fn budget(&self) -> &'a Budget<'a> {
        self.budget
    }

    /// Looks one reference up, without following a `$ref` found at the target.
    pub fn lookup(&mut self, reference: &str) -> Target<'a> {
        if let Some(fragment) = reference.strip_prefix('#') {
            return match fragment {
                "" => Target::Found(self.root),
                pointer if pointer.starts_with('/') => found_or_missing(follow_pointer(self.root, pointer)),
                anchor => found_or_missing(self.identifiers().anchors.get(anchor).copied()),
            };
        }
        // 3.1 schemas may name each other by `$id` (optionally with a `#fragment`) instead of
        // by location; such names match the document's own `$id` values, not a file.
        let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let identifiers = self.identifiers();
        let Some(&schema) = identifiers.ids.get(base) else {
            return Target::External;
        };
        match fragment {
            "" => Target::Found(schema),
            pointer if pointer.starts_with('/') => found_or_missing(follow_pointer(schema, pointer)),
            anchor => found_or_missing(identifiers.anchors.get(anchor).copied()),
        }
    }

    /// Follows `$ref`s until a value without one. `Ok(None)` for an external reference,
    /// which is recorded for a warning.
    pub fn follow(
        &mut self,
        value: &'a Value,
        location: &[Segment<'a>],
    ) -> Result<Option<&'a Value>, ParseError> {
        let mut current = value;
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = ref_of(current) else {
                return Ok(Some(current));
            };
            match self.lookup(reference) {
                Target::Found(target) => current = target,
                Target::External => {
                    self.external_refs.insert(reference.to_owned());
                    return Ok(None);
                }
                Target::Missing => return Err(broken(reference, location)),
            }
        }
        let reference = ref_of(value).unwrap_or_default();
        Err(ParseError::CircularRef { reference: reference.to_owned(), location: render_location(location) })
    }

    /// Copies a schema with its local `$ref`s replaced by their targets.
    ///
    /// A reference already being expanded further up (recursion), nested deeper than
    /// [`MAX_REF_DEPTH`], or beyond [`MAX_REF_EXPANSIONS`] is left as `{"$ref", TRUNCATED_MARKER}`.
    pub fn inline_schema(
        &mut self,
        schema: &'a Value,
        location: &mut Vec<Segment<'a>>,
    ) -> Result<Value, ParseError> {
        let mut state =
            InlineState { expanding: Vec::new(), expansions_left: MAX_REF_EXPANSIONS, cut_for_size: false };
        let inlined = self.inline(schema, location, &mut state)?;
        if state.cut_for_size {
            self.schemas_cut_for_size += 1;
        }
        Ok(inlined)
    }

    fn inline(
        &mut self,
        schema: &'a Value,
        location: &mut Vec<Segment<'a>>,
        state: &mut InlineState<'a>,
    ) -> Result<Value, ParseError> {
        let Value::Object(object) = schema else {
            self.budget.produce(weight(schema), true)?;
            return Ok(schema.clone());
        };
        if let Some(reference) = ref_of(schema) {
            return self.inline_ref(reference, object, location, state);
        }
        self.budget.produce(2, true)?;
        let mut inlined = Map::new();
        for (key, value) in object {
            self.budget.produce(key.len() + 3, true)?;
            location.push(Segment::Key(key));
            let copy = self.inline_keyword(key, value, location, state)?;
            location.pop();
            inlined.insert(key.clone(), copy);
        }
        Ok(Value::Object(inlined))
    }

    /// Only keywords that hold subschemas are walked: `example`, `default`, `enum` and
    /// extensions are data, and a `$ref` key inside them is not a reference.
    fn inline_keyword(
        &mut self,
        key: &str,
        value: &'a Value,
        location: &mut Vec<Segment<'a>>,
        state: &mut InlineState<'a>,
    ) -> Result<Value, ParseError> {
        match (key, value) {
            ("properties" | "patternProperties" | "dependentSchemas", Value::Object(schemas)) => {
                let mut inlined = Map::new();
                for (name, subschema) in schemas {
                    self.budget.produce(name.len() + 3, true)?;
                    location.push(Segment::Key(name));
                    inlined.insert(name.clone(), self.inline(subschema, location, state)?);
                    location.pop();
                }
                Ok(Value::Object(inlined))
            }
            ("allOf" | "anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(schemas)) => {
                let mut inlined = Vec::with_capacity(schemas.len());
                for (index, subschema) in schemas.iter().enumerate() {
                    location.push(Segment::Index(index));
                    inlined.push(self.inline(subschema, location, state)?);
                    location.pop();
                }
                Ok(Value::Array(inlined))
            }
            (
                "items"
                | "additionalProperties"
                | "not"
                | "if"
                | "then"
                | "else"
                | "contains"
                | "propertyNames"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "additionalItems",
                _,
            ) => self.inline(value, location, state),
            _ => {
                self.budget.produce(weight(value), true)?;
                Ok(value.clone())
            }
        }
    }

    fn inline_ref(
        &mut self,
        reference: &'a str,
        object: &'a Map<String, Value>,
        location: &mut Vec<Segment<'a>>,
        state: &mut InlineState<'a>,
    ) -> Result<Value, ParseError> {
        // A cut or skipped reference leaves an object about as large as the one written.
        self.budget.produce(reference.len() + TRUNCATED_MARKER.len() + 16, true)?;
        let target = match self.lookup(reference) {
            Target::Found(target) => target,
            Target::External => {
                self.external_refs.insert(reference.to_owned());
                return Ok(Value::Object(object.clone()));
            }
            Target::Missing => return Err(broken(reference, location)),
        };
        if state.expanding.contains(&reference) {
            self.recursive_refs.insert(reference);
            return Ok(truncated(reference));
        }
        if state.expanding.len() >= MAX_REF_DEPTH || state.expansions_left == 0 {
            state.cut_for_size = true;
            return Ok(truncated(reference));
        }
        state.expansions_left -= 1;
        state.expanding.push(reference);
        location.push(Segment::Ref(reference));
        let mut expanded = self.inline(target, location, state)?;
        location.pop();
        state.expanding.pop();

        // OpenAPI 3.1 lets a `$ref` carry sibling keywords (a description, an extra `required`);
        // 3.0 documents use them too in practice, so they are applied over the target.
        if object.len() > 1
            && let Value::Object(expanded_object) = &mut expanded
        {
            for (key, value) in object.iter().filter(|(key, _)| key.as_str() != "$ref") {
                location.push(Segment::Key(key));
                let sibling = self.inline_keyword(key, value, location, state)?;
                location.pop();
                overlay_sibling(expanded_object, key, sibling);
            }
        }
        Ok(expanded)
    }

    fn identifiers(&mut self) -> &Identifiers<'a> {
        let root = self.root;
        self.identifiers.get_or_insert_with(|| {
            let mut identifiers = Identifiers::default();
            collect_identifiers(root, &mut identifiers);
            identifiers
        })
    }
}

struct InlineState<'a> {
    expanding: Vec<&'a str>,
    expansions_left: usize,
    cut_for_size: bool,
}

/// The reference of a Reference Object (`{"$ref": "..."}`, possibly with siblings).
pub(crate) fn ref_of(value: &Value) -> Option<&str> {
    value.as_object()?.get("$ref")?.as_str()
}

fn found_or_missing(value: Option<&Value>) -> Target<'_> {
    value.map_or(Target::Missing, Target::Found)
}

fn broken(reference: &str, location: &[Segment<'_>]) -> ParseError {
    ParseError::BrokenRef { reference: reference.to_owned(), location: render_location(location) }
}

fn truncated(reference: &str) -> Value {
    let mut marker = Map::new();
    marker.insert("$ref".to_owned(), Value::String(reference.to_owned()));
    marker.insert(TRUNCATED_MARKER.to_owned(), Value::Bool(true));
    Value::Object(marker)
}

fn overlay_sibling(target: &mut Map<String, Value>, key: &str, sibling: Value) {
    // Both `required` lists apply, so they are united instead of one replacing the other.
    if key == "required"
        && let (Some(Value::Array(existing)), Value::Array(extra)) = (target.get_mut(key), &sibling)
    {
        for name in extra {
            if !existing.contains(name) {
                existing.push(name.clone());
            }
        }
        return;
    }
    target.insert(key.to_owned(), sibling);
}

/// Walks a JSON pointer written as a URI fragment ("/components/schemas/Pet%20Type").
fn follow_pointer<'v>(root: &'v Value, pointer: &str) -> Option<&'v Value> {
    let decoded = percent_decode(pointer)?;
    let mut current = root;
    for raw in decoded.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        current = match current {
            Value::Object(object) => object.get(&token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

fn collect_identifiers<'a>(value: &'a Value, identifiers: &mut Identifiers<'a>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(id)) = object.get("$id") {
                identifiers.ids.entry(id.as_str()).or_insert(value);
            }
            if let Some(Value::String(anchor)) = object.get("$anchor") {
                identifiers.anchors.entry(anchor.as_str()).or_insert(value);
            }
            object.values().for_each(|child| collect_identifiers(child, identifiers));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_identifiers(child, identifiers)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::budget::ParseLimits;
    use super::*;
    use serde_json::json;

    static LIMITS: ParseLimits = ParseLimits::DEFAULT;

    fn budget() -> Budget<'static> {
        Budget::new(&LIMITS)
    }

    #[test]
    fn pointer_unescapes_tokens() {
        let doc = json!({"paths": {"/a/b": {"get": 1}}, "x": {"a b": [10, 20]}});
        let budget = budget();
        let mut resolver = Resolver::new(&doc, &budget);
        assert!(matches!(resolver.lookup("#/paths/~1a~1b/get"), Target::Found(v) if v == 1));
        assert!(matches!(resolver.lookup("#/x/a%20b/1"), Target::Found(v) if v == 20));
        assert!(matches!(resolver.lookup("#/x/nope"), Target::Missing));
        assert!(matches!(resolver.lookup("other.yaml#/Foo"), Target::External));
    }

    #[test]
    fn recursion_is_cut_and_siblings_apply() {
        let doc = json!({"components": {"schemas": {
            "Node": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}}});
        let budget = budget();
        let mut resolver = Resolver::new(&doc, &budget);
        let schema =
            json!({"$ref": "#/components/schemas/Node", "required": ["children"], "description": "root"});
        let inlined = resolver.inline_schema(&schema, &mut Vec::new()).unwrap();
        assert_eq!(inlined["description"], "root");
        assert_eq!(inlined["required"], json!(["name", "children"]));
        let cut = &inlined["properties"]["children"]["items"];
        assert_eq!(cut[TRUNCATED_MARKER], true);
        assert!(resolver.recursive_refs.contains("#/components/schemas/Node"));
    }

    #[test]
    fn broken_ref_names_reference_and_location() {
        let doc = json!({"components": {"schemas": {"A": {"properties": {"b": {"$ref": "#/components/schemas/Nope"}}}}}});
        let budget = budget();
        let mut resolver = Resolver::new(&doc, &budget);
        let schema = json!({"$ref": "#/components/schemas/A"});
        let error = resolver.inline_schema(&schema, &mut vec![Segment::Key("paths")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "broken $ref `#/components/schemas/Nope` at #/components/schemas/A.properties.b: no such target"
        );
    }

    #[test]
    fn id_and_anchor_references_resolve() {
        let doc = json!({"components": {"schemas": {
            "Details": {"$id": "/schemas/details", "properties": {"id": {"$anchor": "detail_id", "type": "integer"}}}}}});
        let budget = budget();
        let mut resolver = Resolver::new(&doc, &budget);
        assert!(matches!(resolver.lookup("/schemas/details"), Target::Found(v) if v.get("$id").is_some()));
        assert!(
            matches!(resolver.lookup("/schemas/details#detail_id"), Target::Found(v) if v["type"] == "integer")
        );
        assert!(matches!(resolver.lookup("/schemas/other"), Target::External));
    }

    #[test]
    fn example_data_is_not_treated_as_reference() {
        let doc = json!({});
        let budget = budget();
        let mut resolver = Resolver::new(&doc, &budget);
        let schema = json!({"type": "object", "example": {"$ref": "#/nowhere"}});
        assert_eq!(resolver.inline_schema(&schema, &mut Vec::new()).unwrap(), schema);
    }

    /// `levels` schemas, each an `allOf` of the next one twice, the last carrying `payload`
    /// bytes of description: inlining one copies the payload 2^levels times.
    fn fan_out(levels: usize, payload: usize) -> Value {
        let mut schemas = Map::new();
        for level in 0..levels {
            let next = json!({"$ref": format!("#/components/schemas/S{}", level + 1)});
            schemas.insert(format!("S{level}"), json!({"allOf": [next.clone(), next]}));
        }
        schemas.insert(format!("S{levels}"), json!({"type": "string", "description": "x".repeat(payload)}));
        json!({"components": {"schemas": schemas}})
    }

    #[test]
    fn fan_out_is_bounded_by_what_it_produces_per_document() {
        let doc = fan_out(7, 100_000);
        let limits = ParseLimits { max_output_bytes: 16 * 1024 * 1024, ..ParseLimits::DEFAULT };
        let budget = Budget::new(&limits);
        let mut resolver = Resolver::new(&doc, &budget);
        let schema = json!({"$ref": "#/components/schemas/S0"});
        // 2^7 copies of 100 KB fit one schema's own bounds (depth 8, 400 expansions) ...
        let one = resolver.inline_schema(&schema, &mut Vec::new()).unwrap();
        assert!(one.to_string().len() > 12_000_000);
        // ... but not twice in one document.
        let error = resolver.inline_schema(&schema, &mut Vec::new()).unwrap_err();
        assert_eq!(error, ParseError::TooMuchOutput { limit_mb: 16, through_refs: true });
        assert!(budget.output_bytes() <= 16 * 1024 * 1024 + 200_000, "stopped at the limit");
    }
}
