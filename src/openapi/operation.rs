//! One path item's operations: parameters, request bodies and tags, for 2.0 and 3.x alike.

use std::str::FromStr;

use serde_json::{Map, Value, json};

use super::body::{pick_media_type, swagger_parameter_schema};
use super::budget::weight;
use super::examples::{declared_type, example_from_schema, explicit_example};
use super::parse::{
    DEFAULT_TAG, HttpMethod, ParameterLocation, ParseError, ParsedEndpoint, ParsedParameter, SpecVersion,
    scalar_text,
};
use super::resolve::{Resolver, Segment, ref_of, render_location};

/// Reads operations into endpoints, resolving references as it goes.
pub(crate) struct OperationReader<'a, 'w> {
    pub(super) version: SpecVersion,
    pub(super) root: &'a Map<String, Value>,
    pub(super) resolver: &'w mut Resolver<'a>,
    pub(super) warnings: &'w mut Vec<String>,
}

/// A parameter after `$ref` resolution, before it is sorted into parameters and body.
pub(super) struct RawParameter<'a> {
    pub(super) value: &'a Value,
    pub(super) name: &'a str,
    location: &'a str,
    /// 3.1 allows a description beside the `$ref`, which overrides the target's.
    description_beside_ref: Option<&'a str>,
    pub(super) at: Vec<Segment<'a>>,
}

impl<'a, 'w> OperationReader<'a, 'w> {
    pub fn new(
        version: SpecVersion,
        root: &'a Map<String, Value>,
        resolver: &'w mut Resolver<'a>,
        warnings: &'w mut Vec<String>,
    ) -> Self {
        OperationReader { version, root, resolver, warnings }
    }

    /// Appends the operations of the path item at `paths[path]` to `endpoints`.
    pub fn read_path_item(
        &mut self,
        path: &'a str,
        item: &'a Value,
        endpoints: &mut Vec<ParsedEndpoint>,
    ) -> Result<(), ParseError> {
        let here = vec![Segment::Key("paths"), Segment::Key(path)];
        let Value::Object(fields) = item else {
            self.warnings.push(format!("path `{path}` is not an object; skipped"));
            return Ok(());
        };
        let reference = ref_of(item);
        let target = match reference {
            Some(_) => self.resolver.follow(item, &here)?,
            None => None,
        };
        // Fields written beside a path item's `$ref` win over the referenced ones.
        let field = |key: &'static str| -> Option<(&'a Value, Vec<Segment<'a>>)> {
            if let Some(value) = fields.get(key) {
                return Some((value, [here.as_slice(), &[Segment::Key(key)]].concat()));
            }
            let value = target?.get(key)?;
            Some((value, vec![Segment::Ref(reference?), Segment::Key(key)]))
        };
        let path_parameters = field("parameters");
        for method in HttpMethod::ALL {
            let Some((operation, at)) = field(method.path_item_key()) else {
                continue;
            };
            if !operation.is_object() {
                self.warnings.push(format!("{method} {path} is not an object; skipped"));
                continue;
            }
            let endpoint = self.read_operation(path, method, operation, at, path_parameters.as_ref())?;
            // Path items and parameters shared by `$ref` are copied into every endpoint using them.
            self.resolver.budget().produce(kept_weight(&endpoint), false)?;
            endpoints.push(endpoint);
        }
        Ok(())
    }

    fn read_operation(
        &mut self,
        path: &str,
        method: HttpMethod,
        operation: &'a Value,
        at: Vec<Segment<'a>>,
        path_parameters: Option<&(&'a Value, Vec<Segment<'a>>)>,
    ) -> Result<ParsedEndpoint, ParseError> {
        let mut raw_parameters = Vec::new();
        if let Some((list, list_at)) = path_parameters {
            self.collect_parameters(list, list_at, &mut raw_parameters)?;
        }
        if let Some(list) = operation.get("parameters") {
            let list_at = [at.as_slice(), &[Segment::Key("parameters")]].concat();
            self.collect_parameters(list, &list_at, &mut raw_parameters)?;
        }

        let swagger = self.version == SpecVersion::Swagger2;
        let mut parameters = Vec::new();
        let mut body_parameter = None;
        let mut form_parameters = Vec::new();
        for raw in raw_parameters {
            match raw.location {
                "body" if swagger => body_parameter = Some(raw),
                "formData" if swagger => form_parameters.push(raw),
                location => match ParameterLocation::from_str(location) {
                    Ok(location) => parameters.extend(self.read_parameter(raw, location)?),
                    Err(_) => self.warnings.push(format!(
                        "{method} {path}: parameter `{}` has the unknown location `{location}`; skipped",
                        raw.name
                    )),
                },
            }
        }
        let request_body = if swagger {
            self.read_swagger_body(operation, method, path, body_parameter, &form_parameters)?
        } else {
            self.read_request_body(operation, &at)?
        };

        let mut tags: Vec<String> = Vec::new();
        for tag in operation.get("tags").and_then(Value::as_array).into_iter().flatten() {
            if let Some(tag) = scalar_text(tag).filter(|tag| !tag.is_empty() && !tags.contains(tag)) {
                tags.push(tag);
            }
        }
        if tags.is_empty() {
            tags.push(DEFAULT_TAG.to_owned());
        }
        Ok(ParsedEndpoint {
            method,
            path: path.to_owned(),
            operation_id: text_field(operation, "operationId"),
            summary: text_field(operation, "summary"),
            description: text_field(operation, "description"),
            deprecated: operation.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
            tags,
            parameters,
            request_body,
        })
    }

    /// Adds the parameters in `list`; one with the same name and location as an earlier one
    /// (path level) replaces it, as the specification says operation parameters override.
    fn collect_parameters(
        &mut self,
        list: &'a Value,
        list_at: &[Segment<'a>],
        into: &mut Vec<RawParameter<'a>>,
    ) -> Result<(), ParseError> {
        for (index, raw) in list.as_array().into_iter().flatten().enumerate() {
            let at = [list_at, &[Segment::Index(index)]].concat();
            let Some(resolved) = self.resolver.follow(raw, &at)? else {
                continue;
            };
            let name = resolved.get("name").and_then(Value::as_str);
            let location = resolved.get("in").and_then(Value::as_str);
            let (Some(name), Some(location)) = (name, location) else {
                let at = render_location(&at);
                self.warnings.push(format!("parameter at {at} has no `name` or `in`; skipped"));
                continue;
            };
            let description_beside_ref = ref_of(raw)
                .and_then(|_| raw.get("description")?.as_str())
                .filter(|text| !text.trim().is_empty());
            let parameter = RawParameter { value: resolved, name, location, description_beside_ref, at };
            match into.iter_mut().find(|known| known.name == name && known.location == location) {
                Some(known) => *known = parameter,
                None => into.push(parameter),
            }
        }
        Ok(())
    }

    fn read_parameter(
        &mut self,
        raw: RawParameter<'a>,
        location: ParameterLocation,
    ) -> Result<Option<ParsedParameter>, ParseError> {
        // OpenAPI 3 says these header parameters are ignored: the body, content negotiation
        // and security schemes decide them.
        let reserved_header =
            ["accept", "content-type", "authorization"].contains(&raw.name.to_ascii_lowercase().as_str());
        if self.version != SpecVersion::Swagger2 && location == ParameterLocation::Header && reserved_header {
            return Ok(None);
        }
        let mut at = raw.at;
        let (schema, media) = if self.version == SpecVersion::Swagger2 {
            (raw.value.as_object().map(swagger_parameter_schema), None)
        } else if let Some(schema) = raw.value.get("schema") {
            at.push(Segment::Key("schema"));
            (Some(self.resolver.inline_schema(schema, &mut at)?), None)
        } else if let Some((media_type, media)) =
            raw.value.get("content").and_then(Value::as_object).and_then(pick_media_type)
        {
            at.extend([Segment::Key("content"), Segment::Key(media_type), Segment::Key("schema")]);
            let schema =
                media.get("schema").map(|schema| self.resolver.inline_schema(schema, &mut at)).transpose()?;
            (schema, Some(media))
        } else {
            (None, None)
        };
        let example = self
            .explicit_example(raw.value)
            .or_else(|| media.and_then(|media| self.explicit_example(media)))
            .or_else(|| schema.as_ref().map(example_from_schema).filter(|example| !example.is_null()));
        let description =
            raw.description_beside_ref.or_else(|| raw.value.get("description").and_then(Value::as_str));
        Ok(Some(ParsedParameter {
            name: raw.name.to_owned(),
            location,
            required: location == ParameterLocation::Path
                || raw.value.get("required").and_then(Value::as_bool).unwrap_or(false),
            schema_type: schema.as_ref().and_then(declared_type).map(str::to_owned),
            description: description.map(str::trim).filter(|text| !text.is_empty()).map(str::to_owned),
            example,
        }))
    }

    /// The holder's own example; `examples` entries may be `$ref`s to `components/examples`.
    pub(super) fn explicit_example(&mut self, holder: &'a Value) -> Option<Value> {
        let examples = holder.get("examples").and_then(Value::as_object);
        let has_refs = examples.is_some_and(|named| named.values().any(|entry| ref_of(entry).is_some()));
        if !has_refs || holder.get("example").is_some() || holder.get("x-example").is_some() {
            return explicit_example(holder);
        }
        let mut resolved = Map::new();
        for (name, entry) in examples.into_iter().flatten() {
            // An unusable example is not worth failing an import for, unlike a schema.
            let entry = self.resolver.follow(entry, &[]).ok().flatten().unwrap_or(entry);
            resolved.insert(name.clone(), entry.clone());
        }
        explicit_example(&json!({ "examples": resolved }))
    }
}

/// About what an endpoint keeps besides its schemas (charged while they were inlined).
fn kept_weight(endpoint: &ParsedEndpoint) -> usize {
    let text = |field: &Option<String>| field.as_ref().map_or(0, String::len);
    let example = |example: &Option<Value>| example.as_ref().map_or(0, weight);
    let parameters: usize = endpoint
        .parameters
        .iter()
        .map(|parameter| {
            parameter.name.len() + text(&parameter.description) + example(&parameter.example) + 16
        })
        .sum();
    let body =
        endpoint.request_body.as_ref().map_or(0, |body| body.content_type.len() + example(&body.example));
    endpoint.path.len()
        + text(&endpoint.operation_id)
        + text(&endpoint.summary)
        + text(&endpoint.description)
        + endpoint.tags.iter().map(String::len).sum::<usize>()
        + parameters
        + body
        + 32
}

fn text_field(object: &Value, key: &str) -> Option<String> {
    let text = object.get(key)?.as_str()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::parse::{DEFAULT_TAG, ParameterLocation, ParsedTag, parse_example as parse};

    #[test]
    fn merges_path_and_operation_parameters_with_refs() {
        let text = r##"
openapi: 3.0.3
info: {title: Merge, version: '1'}
servers: [{url: 'https://api.test'}]
components:
  parameters:
    Limit: {name: limit, in: query, schema: {type: integer, minimum: 10}}
    Trace: {name: X-Trace, in: header, required: true, schema: {type: string, format: uuid}}
paths:
  /items/{id}:
    parameters:
      - {name: id, in: path, schema: {type: string}, description: path level}
      - $ref: '#/components/parameters/Limit'
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}, example: 7}
        - $ref: '#/components/parameters/Trace'
        - {name: Accept, in: header, schema: {type: string}}
"##;
        let spec = parse(text).unwrap();
        let parameters = &spec.endpoints[0].parameters;
        let summary: Vec<_> = parameters
            .iter()
            .map(|p| (p.name.as_str(), p.location, p.required, p.schema_type.as_deref(), p.example.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("id", ParameterLocation::Path, true, Some("integer"), Some(json!(7))),
                ("limit", ParameterLocation::Query, false, Some("integer"), Some(json!(10))),
                (
                    "X-Trace",
                    ParameterLocation::Header,
                    true,
                    Some("string"),
                    Some(json!("00000000-0000-4000-8000-000000000000"))
                ),
            ]
        );
        assert_eq!(parameters[0].description, None);
        assert_eq!(spec.tags, [ParsedTag { name: DEFAULT_TAG.to_owned(), description: None }]);
    }

    #[test]
    fn path_item_refs_and_external_refs() {
        let text = r##"
openapi: 3.0.0
info: {version: '1'}
servers: [{url: 'https://api.test'}]
x-shared:
  pets:
    get: {summary: shared get, tags: [pets]}
    delete: {summary: shared delete}
paths:
  x-internal: {get: {}}
  /pets:
    $ref: '#/x-shared/pets'
    delete: {summary: beside wins}
    post:
      requestBody:
        content:
          application/xml: {schema: {type: object}}
          application/vnd.api+json: {schema: {$ref: 'common.yaml#/Pet'}}
"##;
        let spec = parse(text).unwrap();
        assert_eq!(spec.title, "Untitled API");
        let summary: Vec<_> = spec
            .endpoints
            .iter()
            .map(|e| (e.method.as_str(), e.summary.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            summary,
            [("GET", "shared get".into()), ("POST", String::new()), ("DELETE", "beside wins".into())]
        );
        let body = spec.endpoints[1].request_body.as_ref().unwrap();
        assert_eq!(body.content_type, "application/vnd.api+json");
        assert_eq!(body.example, None);
        assert!(
            spec.warnings.iter().any(|warning| warning.contains("`common.yaml#/Pet`")),
            "{:?}",
            spec.warnings
        );
        assert!(spec.warnings.iter().any(|warning| warning.contains("info.title")));
    }
}
