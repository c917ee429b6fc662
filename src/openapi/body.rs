//! Request bodies: `requestBody` (3.x), and `in: body` / `in: formData` parameters (2.0).

use serde_json::{Map, Value, json};

use super::examples::example_from_schema;
use super::operation::{OperationReader, RawParameter};
use super::parse::{HttpMethod, JsonText, ParseError, ParsedRequestBody};
use super::resolve::Segment;

const FORM_URLENCODED: &str = "application/x-www-form-urlencoded";
const MULTIPART_FORM: &str = "multipart/form-data";

impl<'a> OperationReader<'a, '_> {
    /// A 3.x `requestBody`, possibly a `$ref` to `components/requestBodies`.
    pub(super) fn read_request_body(
        &mut self,
        operation: &'a Value,
        at: &[Segment<'a>],
    ) -> Result<Option<ParsedRequestBody>, ParseError> {
        let Some(raw) = operation.get("requestBody") else {
            return Ok(None);
        };
        let mut at = [at, &[Segment::Key("requestBody")]].concat();
        let Some(body) = self.resolver.follow(raw, &at)? else {
            return Ok(None);
        };
        let Some((content_type, media)) =
            body.get("content").and_then(Value::as_object).and_then(pick_media_type)
        else {
            return Ok(None);
        };
        at.extend([Segment::Key("content"), Segment::Key(content_type), Segment::Key("schema")]);
        let schema =
            media.get("schema").map(|schema| self.resolver.inline_schema(schema, &mut at)).transpose()?;
        let example =
            self.explicit_example(media).or_else(|| generated_body_example(content_type, schema.as_ref()));
        Ok(Some(ParsedRequestBody {
            content_type: content_type.to_owned(),
            required: body.get("required").and_then(Value::as_bool).unwrap_or(false),
            schema: schema.as_ref().map(JsonText::new),
            example,
        }))
    }

    /// Swagger 2.0 keeps the body in an `in: body` parameter, or spreads a form over
    /// `in: formData` parameters; the media type comes from `consumes`.
    pub(super) fn read_swagger_body(
        &mut self,
        operation: &'a Value,
        method: HttpMethod,
        path: &str,
        body: Option<RawParameter<'a>>,
        form: &[RawParameter<'a>],
    ) -> Result<Option<ParsedRequestBody>, ParseError> {
        let consumes: Vec<&str> = operation
            .get("consumes")
            .or_else(|| self.root.get("consumes"))
            .and_then(Value::as_array)
            .map(|types| types.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(body) = body {
            if !form.is_empty() {
                self.warnings.push(format!(
                    "{method} {path} has both `in: body` and `in: formData` parameters; the formData ones are ignored"
                ));
            }
            let content_type = consumes.iter().find(|media| is_json_media(media)).or(consumes.first());
            let content_type = content_type.copied().unwrap_or("application/json");
            let mut at = body.at;
            at.push(Segment::Key("schema"));
            let schema = body
                .value
                .get("schema")
                .map(|schema| self.resolver.inline_schema(schema, &mut at))
                .transpose()?;
            let example = self
                .explicit_example(body.value)
                .or_else(|| generated_body_example(content_type, schema.as_ref()));
            return Ok(Some(ParsedRequestBody {
                content_type: content_type.to_owned(),
                required: body.value.get("required").and_then(Value::as_bool).unwrap_or(false),
                schema: schema.as_ref().map(JsonText::new),
                example,
            }));
        }
        if form.is_empty() {
            return Ok(None);
        }
        let mut properties = Map::new();
        let mut required = Vec::new();
        for parameter in form {
            if let Some(object) = parameter.value.as_object() {
                properties.insert(parameter.name.to_owned(), swagger_parameter_schema(object));
            }
            if parameter.value.get("required").and_then(Value::as_bool) == Some(true) {
                required.push(Value::String(parameter.name.to_owned()));
            }
        }
        let has_file =
            form.iter().any(|parameter| parameter.value.get("type").and_then(Value::as_str) == Some("file"));
        let declared_form =
            consumes.iter().find(|media| matches!(essence(media).as_str(), FORM_URLENCODED | MULTIPART_FORM));
        let content_type =
            declared_form.copied().unwrap_or(if has_file { MULTIPART_FORM } else { FORM_URLENCODED });
        let any_required = !required.is_empty();
        let mut schema = json!({"type": "object", "properties": properties});
        if any_required {
            schema["required"] = Value::Array(required);
        }
        Ok(Some(ParsedRequestBody {
            content_type: content_type.to_owned(),
            required: any_required,
            example: generated_body_example(content_type, Some(&schema)),
            schema: Some(JsonText::new(&schema)),
        }))
    }
}

/// A JSON media type when offered ("application/json" first), else the first one. serde_json
/// maps are sorted by key, so "first" means alphabetically first.
pub(super) fn pick_media_type(content: &Map<String, Value>) -> Option<(&str, &Value)> {
    content
        .iter()
        .find(|(media, _)| essence(media) == "application/json")
        .or_else(|| content.iter().find(|(media, _)| is_json_media(media)))
        .or_else(|| content.iter().next())
        .map(|(media, value)| (media.as_str(), value))
}

fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

fn is_json_media(media_type: &str) -> bool {
    let essence = essence(media_type);
    essence == "application/json" || essence.ends_with("+json") || essence.ends_with("/json")
}

/// Generated bodies are only useful where a JSON value maps onto the wire format:
/// JSON itself, and forms (one field per property).
fn generated_body_example(content_type: &str, schema: Option<&Value>) -> Option<Value> {
    let essence = essence(content_type);
    let fits =
        is_json_media(content_type) || matches!(essence.as_str(), FORM_URLENCODED | MULTIPART_FORM | "*/*");
    schema.filter(|_| fits).map(example_from_schema).filter(|example| !example.is_null())
}

/// Swagger 2.0 keywords a non-body parameter shares with a Schema Object.
const SWAGGER_PARAMETER_SCHEMA_KEYS: [&str; 17] = [
    "type",
    "format",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "description",
];

/// The Schema Object a Swagger 2.0 non-body parameter describes with its own keywords.
pub(super) fn swagger_parameter_schema(parameter: &Map<String, Value>) -> Value {
    let mut schema: Map<String, Value> = SWAGGER_PARAMETER_SCHEMA_KEYS
        .iter()
        .filter_map(|key| Some(((*key).to_owned(), parameter.get(*key)?.clone())))
        .collect();
    if schema.get("type").and_then(Value::as_str) == Some("file") {
        schema.insert("type".to_owned(), json!("string"));
        schema.insert("format".to_owned(), json!("binary"));
    }
    if let Some(example) = parameter.get("x-example") {
        schema.insert("example".to_owned(), example.clone());
    }
    Value::Object(schema)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::parse::{DEFAULT_TAG, parse_example as parse};

    #[test]
    fn swagger_body_and_form_parameters_become_request_bodies() {
        let text = r##"
swagger: '2.0'
info: {title: Forms, version: '1'}
host: api.test
consumes: [application/xml, application/json]
definitions:
  Pet: {type: object, required: [name], properties: {name: {type: string}, id: {type: integer, readOnly: true}}}
parameters:
  Page: {name: page, in: query, type: integer, default: 1}
paths:
  /pets:
    post:
      tags: [pets]
      parameters:
        - {name: body, in: body, required: true, schema: {$ref: '#/definitions/Pet'}}
        - $ref: '#/parameters/Page'
  /upload:
    post:
      consumes: [multipart/form-data]
      parameters:
        - {name: file, in: formData, type: file, required: true}
        - {name: note, in: formData, type: string}
"##;
        let spec = parse(text).unwrap();
        assert_eq!(spec.format, "swagger 2.0");
        assert_eq!(spec.base_url, "https://api.test/");
        let pets = &spec.endpoints[0];
        let body = pets.request_body.as_ref().unwrap();
        assert_eq!((body.content_type.as_str(), body.required), ("application/json", true));
        assert_eq!(body.example, Some(json!({"name": "string"})));
        assert_eq!(body.schema.as_ref().unwrap().to_value()["properties"]["name"]["type"], "string");
        assert_eq!(pets.parameters.len(), 1);
        assert_eq!(pets.parameters[0].schema_type.as_deref(), Some("integer"));
        assert_eq!(pets.parameters[0].example, Some(json!(1)));
        let upload = spec.endpoints[1].request_body.as_ref().unwrap();
        assert_eq!(upload.content_type, "multipart/form-data");
        assert_eq!(upload.schema.as_ref().unwrap().to_value()["required"], json!(["file"]));
        assert_eq!(upload.schema.as_ref().unwrap().to_value()["properties"]["file"]["format"], "binary");
        assert_eq!(spec.tags.iter().map(|tag| tag.name.as_str()).collect::<Vec<_>>(), ["pets", DEFAULT_TAG]);
    }

    #[test]
    fn request_body_refs_and_example_refs_resolve() {
        let text = r##"
openapi: 3.0.3
info: {title: Bodies, version: '1'}
servers: [{url: 'https://api.test/v1'}]
components:
  examples:
    Small: {summary: small order, value: {item: pen, quantity: 2}}
  requestBodies:
    Order:
      required: true
      content:
        text/plain: {schema: {type: string}}
        application/json:
          schema: {type: object, required: [item], properties: {item: {type: string}}}
          examples: {small: {$ref: '#/components/examples/Small'}}
paths:
  /orders:
    post: {requestBody: {$ref: '#/components/requestBodies/Order'}}
    put:
      requestBody:
        content:
          application/xml: {schema: {type: object, properties: {item: {type: string}}}}
"##;
        let spec = parse(text).unwrap();
        let post = spec.endpoints[1].request_body.as_ref().unwrap();
        assert_eq!((post.content_type.as_str(), post.required), ("application/json", true));
        assert_eq!(post.example, Some(json!({"item": "pen", "quantity": 2})));
        // XML bodies keep their schema, but a JSON value would not be a usable XML example.
        let put = spec.endpoints[0].request_body.as_ref().unwrap();
        assert_eq!((put.content_type.as_str(), put.example.is_none()), ("application/xml", true));
        assert!(put.schema.is_some());
    }
}
