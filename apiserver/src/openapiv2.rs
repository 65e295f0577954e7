//! Swagger 2.0 JSON to gnostic's `openapi.v2.Document` protobuf, the body upstream serves for
//! `GET /openapi/v2` with `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`.
//!
//! Field numbers follow `openapiv2/OpenAPIv2.proto` of github.com/google/gnostic-models.
//! Messages are written the way Go's `proto.Marshal` writes gnostic's compiled document: fields
//! in number order, zero scalars left out, present (even empty) sub-messages and maps kept, every
//! JSON map in its source order. Free-form values (defaults, examples, enums, `x-*` extensions)
//! become gnostic `Any { yaml }`, rendered as single-line JSON-style YAML.

use serde_json::{Map, Value};
use std::fmt::Write as _;

type Res<T> = Result<T, String>;
/// Encodes the JSON value found at a path (used in errors) into the bytes of one message.
type Enc = fn(&Value, &str) -> Res<Vec<u8>>;

/// Encodes a Swagger 2.0 document given as JSON (the same JSON upstream serves at /openapi/v2 with Accept: application/json) into gnostic's openapi_v2.Document protobuf bytes.
pub fn encode_document(swagger: &Value) -> Result<Vec<u8>, String> {
    document(swagger, "#")
}

// --- wire format ---

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_len(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(buf, field, 2);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn wrap(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(bytes.len() + 6);
    put_len(&mut buf, field, bytes);
    buf
}

/// Builds one message from the members of a JSON object.
struct Msg<'a> {
    obj: &'a Map<String, Value>,
    path: &'a str,
    buf: Vec<u8>,
}

impl<'a> Msg<'a> {
    fn new(v: &'a Value, path: &'a str) -> Res<Self> {
        match v {
            Value::Object(obj) => Ok(Self {
                obj,
                path,
                buf: Vec::new(),
            }),
            _ => Err(format!("{path}: expected an object")),
        }
    }

    fn get<T>(&self, k: &str, want: &str, f: fn(&'a Value) -> Option<T>) -> Res<Option<T>> {
        self.obj
            .get(k)
            .map(|v| f(v).ok_or_else(|| format!("{}/{k}: expected {want}", self.path)))
            .transpose()
    }

    fn str(mut self, field: u32, k: &str) -> Res<Self> {
        if let Some(s) = self
            .get(k, "a string", Value::as_str)?
            .filter(|s| !s.is_empty())
        {
            put_len(&mut self.buf, field, s.as_bytes());
        }
        Ok(self)
    }

    fn strs(mut self, field: u32, k: &str) -> Res<Self> {
        for v in self
            .get(k, "an array", Value::as_array)?
            .into_iter()
            .flatten()
        {
            let s = v
                .as_str()
                .ok_or_else(|| format!("{}/{k}: expected strings", self.path))?;
            put_len(&mut self.buf, field, s.as_bytes());
        }
        Ok(self)
    }

    fn bool(mut self, field: u32, k: &str) -> Res<Self> {
        if self.get(k, "a boolean", Value::as_bool)? == Some(true) {
            key(&mut self.buf, field, 0);
            varint(&mut self.buf, 1);
        }
        Ok(self)
    }

    fn int(mut self, field: u32, k: &str) -> Res<Self> {
        let as_int = |v: &Value| {
            v.as_i64()
                .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        };
        if let Some(n) = self.get(k, "an integer", as_int)?.filter(|&n| n != 0) {
            key(&mut self.buf, field, 0);
            varint(&mut self.buf, n as u64);
        }
        Ok(self)
    }

    fn num(mut self, field: u32, k: &str) -> Res<Self> {
        if let Some(n) = self
            .get(k, "a number", Value::as_f64)?
            .filter(|&n| n != 0.0)
        {
            key(&mut self.buf, field, 1);
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
        Ok(self)
    }

    fn msg(mut self, field: u32, k: &str, enc: Enc) -> Res<Self> {
        if let Some(v) = self.obj.get(k) {
            let bytes = enc(v, &format!("{}/{k}", self.path))?;
            put_len(&mut self.buf, field, &bytes);
        }
        Ok(self)
    }

    fn msgs(mut self, field: u32, k: &str, enc: Enc) -> Res<Self> {
        for (i, v) in self
            .get(k, "an array", Value::as_array)?
            .into_iter()
            .flatten()
            .enumerate()
        {
            let bytes = enc(v, &format!("{}/{k}/{i}", self.path))?;
            put_len(&mut self.buf, field, &bytes);
        }
        Ok(self)
    }

    /// The object's own members whose names pass `keep`, as `Named* { name = 1; value = 2 }`.
    fn named(mut self, field: u32, keep: fn(&str) -> bool, enc: Enc) -> Res<Self> {
        for (k, v) in self.obj.iter().filter(|(k, _)| keep(k)) {
            let mut entry = wrap(1, k.as_bytes());
            put_len(&mut entry, 2, &enc(v, &format!("{}/{k}", self.path))?);
            put_len(&mut self.buf, field, &entry);
        }
        Ok(self)
    }

    fn ext(self, field: u32) -> Res<Self> {
        self.named(field, |k| k.starts_with("x-"), any)
    }

    /// The run of primitive-parameter fields shared by PrimitivesItems, Header and the
    /// non-body parameter sub-schemas, `type` being numbered `f`.
    fn primitive(self, f: u32) -> Res<Self> {
        self.str(f, "type")?
            .str(f + 1, "format")?
            .msg(f + 2, "items", primitives_items)?
            .str(f + 3, "collectionFormat")?
            .msg(f + 4, "default", any)?
            .num(f + 5, "maximum")?
            .bool(f + 6, "exclusiveMaximum")?
            .num(f + 7, "minimum")?
            .bool(f + 8, "exclusiveMinimum")?
            .int(f + 9, "maxLength")?
            .int(f + 10, "minLength")?
            .str(f + 11, "pattern")?
            .int(f + 12, "maxItems")?
            .int(f + 13, "minItems")?
            .bool(f + 14, "uniqueItems")?
            .msgs(f + 15, "enum", any)?
            .num(f + 16, "multipleOf")
    }

    fn done(self) -> Res<Vec<u8>> {
        Ok(self.buf)
    }
}

fn all(_: &str) -> bool {
    true
}

// --- messages ---

fn document(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "swagger")?
        .msg(2, "info", info)?
        .str(3, "host")?
        .str(4, "basePath")?
        .strs(5, "schemes")?
        .strs(6, "consumes")?
        .strs(7, "produces")?
        .msg(8, "paths", paths)?
        .msg(9, "definitions", schemas)?
        .msg(10, "parameters", |v, p| {
            Msg::new(v, p)?.named(1, all, parameter)?.done()
        })?
        .msg(11, "responses", |v, p| {
            Msg::new(v, p)?.named(1, all, response)?.done()
        })?
        .msgs(12, "security", |v, p| {
            Msg::new(v, p)?.named(1, all, string_array)?.done()
        })?
        .msg(13, "securityDefinitions", |v, p| {
            Msg::new(v, p)?.named(1, all, security_definition)?.done()
        })?
        .msgs(14, "tags", tag)?
        .msg(15, "externalDocs", external_docs)?
        .ext(16)?
        .done()
}

fn info(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "title")?
        .str(2, "version")?
        .str(3, "description")?
        .str(4, "termsOfService")?
        .msg(5, "contact", |v, p| {
            Msg::new(v, p)?
                .str(1, "name")?
                .str(2, "url")?
                .str(3, "email")?
                .ext(4)?
                .done()
        })?
        .msg(6, "license", |v, p| {
            Msg::new(v, p)?
                .str(1, "name")?
                .str(2, "url")?
                .ext(3)?
                .done()
        })?
        .ext(7)?
        .done()
}

fn external_docs(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "description")?
        .str(2, "url")?
        .ext(3)?
        .done()
}

fn tag(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "name")?
        .str(2, "description")?
        .msg(3, "externalDocs", external_docs)?
        .ext(4)?
        .done()
}

fn paths(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .ext(1)?
        .named(2, |k| k.starts_with('/'), path_item)?
        .done()
}

fn path_item(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "$ref")?
        .msg(2, "get", operation)?
        .msg(3, "put", operation)?
        .msg(4, "post", operation)?
        .msg(5, "delete", operation)?
        .msg(6, "options", operation)?
        .msg(7, "head", operation)?
        .msg(8, "patch", operation)?
        .msgs(9, "parameters", parameters_item)?
        .ext(10)?
        .done()
}

fn operation(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .strs(1, "tags")?
        .str(2, "summary")?
        .str(3, "description")?
        .msg(4, "externalDocs", external_docs)?
        .str(5, "operationId")?
        .strs(6, "produces")?
        .strs(7, "consumes")?
        .msgs(8, "parameters", parameters_item)?
        .msg(9, "responses", responses)?
        .strs(10, "schemes")?
        .bool(11, "deprecated")?
        .msgs(12, "security", |v, p| {
            Msg::new(v, p)?.named(1, all, string_array)?.done()
        })?
        .ext(13)?
        .done()
}

fn json_reference(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "$ref")?
        .str(2, "description")?
        .done()
}

/// `ParametersItem { oneof { Parameter parameter = 1; JsonReference json_reference = 2; } }`
fn parameters_item(v: &Value, p: &str) -> Res<Vec<u8>> {
    Ok(match v.get("$ref") {
        Some(_) => wrap(2, &json_reference(v, p)?),
        None => wrap(1, &parameter(v, p)?),
    })
}

/// `Parameter { oneof { BodyParameter = 1; NonBodyParameter = 2 } }`, the latter a oneof of
/// header (1), formData (2), query (3) and path (4) sub-schemas.
fn parameter(v: &Value, p: &str) -> Res<Vec<u8>> {
    let (field, enc): (u32, Enc) = match v.get("in").and_then(Value::as_str) {
        Some("body") => return Ok(wrap(1, &body_parameter(v, p)?)),
        Some("header") => (1, header_or_path_parameter),
        Some("formData") => (2, query_or_form_parameter),
        Some("query") => (3, query_or_form_parameter),
        Some("path") => (4, header_or_path_parameter),
        other => return Err(format!("{p}/in: unsupported parameter location {other:?}")),
    };
    Ok(wrap(2, &wrap(field, &enc(v, p)?)))
}

fn body_parameter(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "description")?
        .str(2, "name")?
        .str(3, "in")?
        .bool(4, "required")?
        .msg(5, "schema", schema)?
        .ext(6)?
        .done()
}

/// HeaderParameterSubSchema and PathParameterSubSchema share one layout.
fn header_or_path_parameter(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .bool(1, "required")?
        .str(2, "in")?
        .str(3, "description")?
        .str(4, "name")?
        .primitive(5)?
        .ext(22)?
        .done()
}

/// QueryParameterSubSchema and FormDataParameterSubSchema share one layout.
fn query_or_form_parameter(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .bool(1, "required")?
        .str(2, "in")?
        .str(3, "description")?
        .str(4, "name")?
        .bool(5, "allowEmptyValue")?
        .primitive(6)?
        .ext(23)?
        .done()
}

fn primitives_items(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?.primitive(1)?.ext(18)?.done()
}

fn header(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .primitive(1)?
        .str(18, "description")?
        .ext(19)?
        .done()
}

fn responses(v: &Value, p: &str) -> Res<Vec<u8>> {
    let is_code =
        |k: &str| k == "default" || (k.len() == 3 && k.bytes().all(|b| b.is_ascii_digit()));
    Msg::new(v, p)?
        .named(1, is_code, response_value)?
        .ext(2)?
        .done()
}

/// `ResponseValue { oneof { Response response = 1; JsonReference json_reference = 2; } }`
fn response_value(v: &Value, p: &str) -> Res<Vec<u8>> {
    Ok(match v.get("$ref") {
        Some(_) => wrap(2, &json_reference(v, p)?),
        None => wrap(1, &response(v, p)?),
    })
}

fn response(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "description")?
        // SchemaItem { oneof { Schema schema = 1; FileSchema file_schema = 2; } }: gnostic tries
        // Schema first, and it accepts every schema object.
        .msg(2, "schema", |v, p| Ok(wrap(1, &schema(v, p)?)))?
        .msg(3, "headers", |v, p| {
            Msg::new(v, p)?.named(1, all, header)?.done()
        })?
        .msg(4, "examples", |v, p| {
            Msg::new(v, p)?.named(1, all, any)?.done()
        })?
        .ext(5)?
        .done()
}

/// Definitions and Properties: `{ repeated NamedSchema additional_properties = 1; }`.
fn schemas(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?.named(1, all, schema)?.done()
}

fn schema(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "$ref")?
        .str(2, "format")?
        .str(3, "title")?
        .str(4, "description")?
        .msg(5, "default", any)?
        .num(6, "multipleOf")?
        .num(7, "maximum")?
        .bool(8, "exclusiveMaximum")?
        .num(9, "minimum")?
        .bool(10, "exclusiveMinimum")?
        .int(11, "maxLength")?
        .int(12, "minLength")?
        .str(13, "pattern")?
        .int(14, "maxItems")?
        .int(15, "minItems")?
        .bool(16, "uniqueItems")?
        .int(17, "maxProperties")?
        .int(18, "minProperties")?
        .strs(19, "required")?
        .msgs(20, "enum", any)?
        .msg(21, "additionalProperties", additional_properties)?
        .msg(22, "type", type_item)?
        .msg(23, "items", items_item)?
        .msgs(24, "allOf", schema)?
        .msg(25, "properties", schemas)?
        .str(26, "discriminator")?
        .bool(27, "readOnly")?
        .msg(28, "xml", xml)?
        .msg(29, "externalDocs", external_docs)?
        .msg(30, "example", any)?
        .ext(31)?
        .done()
}

/// `AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2; } }`; a oneof
/// member is written even when false.
fn additional_properties(v: &Value, p: &str) -> Res<Vec<u8>> {
    match v {
        Value::Bool(b) => {
            let mut buf = Vec::new();
            key(&mut buf, 2, 0);
            varint(&mut buf, u64::from(*b));
            Ok(buf)
        }
        _ => Ok(wrap(1, &schema(v, p)?)),
    }
}

/// `TypeItem { repeated string value = 1; }` from `"type": "t"` or `"type": ["t", ...]`.
fn type_item(v: &Value, p: &str) -> Res<Vec<u8>> {
    match v {
        Value::String(s) => Ok(wrap(1, s.as_bytes())),
        Value::Array(a) => a.iter().try_fold(Vec::new(), |mut buf, t| {
            let s = t.as_str().ok_or_else(|| format!("{p}: expected strings"))?;
            put_len(&mut buf, 1, s.as_bytes());
            Ok(buf)
        }),
        _ => Err(format!("{p}: expected a string or an array of strings")),
    }
}

/// `ItemsItem { repeated Schema schema = 1; }` from one schema or an array of them.
fn items_item(v: &Value, p: &str) -> Res<Vec<u8>> {
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_fold(Vec::new(), |mut buf, (i, s)| {
                put_len(&mut buf, 1, &schema(s, &format!("{p}/{i}"))?);
                Ok(buf)
            }),
        _ => Ok(wrap(1, &schema(v, p)?)),
    }
}

fn xml(v: &Value, p: &str) -> Res<Vec<u8>> {
    Msg::new(v, p)?
        .str(1, "name")?
        .str(2, "namespace")?
        .str(3, "prefix")?
        .bool(4, "attribute")?
        .bool(5, "wrapped")?
        .ext(6)?
        .done()
}

/// `StringArray { repeated string value = 1; }`, the value of a SecurityRequirement entry.
fn string_array(v: &Value, p: &str) -> Res<Vec<u8>> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("{p}: expected an array"))?;
    items.iter().try_fold(Vec::new(), |mut buf, s| {
        put_len(
            &mut buf,
            1,
            s.as_str()
                .ok_or_else(|| format!("{p}: expected strings"))?
                .as_bytes(),
        );
        Ok(buf)
    })
}

/// `SecurityDefinitionsItem`: a oneof chosen by `type` and, for OAuth2, `flow`.
fn security_definition(v: &Value, p: &str) -> Res<Vec<u8>> {
    let s = |k| v.get(k).and_then(Value::as_str);
    let (field, enc): (u32, Enc) = match (s("type"), s("flow")) {
        (Some("basic"), _) => (1, |v, p| {
            Msg::new(v, p)?
                .str(1, "type")?
                .str(2, "description")?
                .ext(3)?
                .done()
        }),
        (Some("apiKey"), _) => (2, |v, p| {
            Msg::new(v, p)?
                .str(1, "type")?
                .str(2, "name")?
                .str(3, "in")?
                .str(4, "description")?
                .ext(5)?
                .done()
        }),
        (Some("oauth2"), Some("implicit")) => (3, |v, p| {
            oauth2(v, p)?
                .str(4, "authorizationUrl")?
                .str(5, "description")?
                .ext(6)?
                .done()
        }),
        (Some("oauth2"), Some("password")) => (4, |v, p| {
            oauth2(v, p)?
                .str(4, "tokenUrl")?
                .str(5, "description")?
                .ext(6)?
                .done()
        }),
        (Some("oauth2"), Some("application")) => (5, |v, p| {
            oauth2(v, p)?
                .str(4, "tokenUrl")?
                .str(5, "description")?
                .ext(6)?
                .done()
        }),
        (Some("oauth2"), Some("accessCode")) => (6, |v, p| {
            oauth2(v, p)?
                .str(4, "authorizationUrl")?
                .str(5, "tokenUrl")?
                .str(6, "description")?
                .ext(7)?
                .done()
        }),
        (t, f) => {
            return Err(format!(
                "{p}: unsupported security scheme type {t:?} flow {f:?}"
            ))
        }
    };
    Ok(wrap(field, &enc(v, p)?))
}

/// The leading `type = 1; flow = 2; Oauth2Scopes scopes = 3;` of the four OAuth2 messages.
fn oauth2<'a>(v: &'a Value, p: &'a str) -> Res<Msg<'a>> {
    Msg::new(v, p)?
        .str(1, "type")?
        .str(2, "flow")?
        .msg(3, "scopes", scopes)
}

/// `Oauth2Scopes { repeated NamedString additional_properties = 1; }`
fn scopes(v: &Value, p: &str) -> Res<Vec<u8>> {
    let string = |v: &Value, p: &str| {
        v.as_str()
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| format!("{p}: expected a string"))
    };
    Msg::new(v, p)?.named(1, all, string)?.done()
}

/// gnostic `Any { google.protobuf.Any value = 1; string yaml = 2; }`: only `yaml` is set.
fn any(v: &Value, _: &str) -> Res<Vec<u8>> {
    let mut yaml = String::new();
    write_yaml(v, &mut yaml);
    Ok(wrap(2, yaml.as_bytes()))
}

/// Flow-style YAML (JSON with `, ` and `: ` separators) that YAML 1.1 parsers read back
/// unchanged: strings are always double-quoted, with every character YAML 1.1 treats as
/// non-printable or as a line break escaped.
fn write_yaml(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => quote(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_yaml(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                quote(k, out);
                out.push_str(": ");
                write_yaml(x, out);
            }
            out.push('}');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' '
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Clone, Copy, Debug)]
    enum Wire<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(b: &mut &[u8]) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().expect("truncated varint");
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
        }
        panic!("varint too long")
    }

    /// Splits one message into its (field number, value) pairs, panicking on malformed input.
    fn parse(mut b: &[u8]) -> Vec<(u32, Wire<'_>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let k = read_varint(&mut b);
            let value = match k & 7 {
                0 => Wire::Varint(read_varint(&mut b)),
                1 => {
                    let (v, rest) = b.split_at(8);
                    b = rest;
                    Wire::Fixed64(u64::from_le_bytes(v.try_into().unwrap()))
                }
                2 => {
                    let len = read_varint(&mut b) as usize;
                    let (v, rest) = b.split_at(len);
                    b = rest;
                    Wire::Bytes(v)
                }
                t => panic!("unexpected wire type {t}"),
            };
            out.push(((k >> 3) as u32, value));
        }
        out
    }

    /// Every value of the last field of a path like `8.2[0].2.8`; `[i]` picks the i-th
    /// occurrence of a field (the first when left out on an inner step).
    fn at<'a>(buf: &'a [u8], path: &str) -> Vec<Wire<'a>> {
        let mut cur = buf;
        let mut steps = path.split('.').peekable();
        while let Some(step) = steps.next() {
            let (field, index) = match step.split_once('[') {
                Some((f, i)) => (f, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
                None => (step, None),
            };
            let field: u32 = field.parse().unwrap();
            let mut found: Vec<_> = parse(cur)
                .into_iter()
                .filter(|(f, _)| *f == field)
                .map(|(_, w)| w)
                .collect();
            if let Some(i) = index {
                found = found.get(i).copied().into_iter().collect();
            }
            if steps.peek().is_none() {
                return found;
            }
            match found.first() {
                Some(Wire::Bytes(b)) => cur = b,
                other => panic!("{path}: step {step} found {other:?}"),
            }
        }
        unreachable!()
    }

    enum Want {
        Str(&'static str),
        Int(u64),
        F64(f64),
        Count(usize),
    }
    use Want::*;

    fn check(buf: &[u8], path: &str, want: &Want) {
        let found = at(buf, path);
        match (want, found.first()) {
            (Count(n), _) => assert_eq!(found.len(), *n, "{path}: {found:?}"),
            (Str(s), Some(Wire::Bytes(b))) => {
                assert_eq!(std::str::from_utf8(b).unwrap(), *s, "{path}")
            }
            (Int(n), Some(Wire::Varint(v))) => assert_eq!(v, n, "{path}"),
            (F64(x), Some(Wire::Fixed64(v))) => assert_eq!(f64::from_bits(*v), *x, "{path}"),
            (_, other) => panic!("{path}: unexpected {other:?}"),
        }
    }

    fn pod_swagger() -> Value {
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.28.0"},
            "paths": {
                "/api/v1/namespaces/{namespace}/pods/{name}": {
                    "patch": {
                        "consumes": ["application/json-patch+json", "application/merge-patch+json",
                                     "application/strategic-merge-patch+json", "application/apply-patch+yaml"],
                        "produces": ["application/json", "application/yaml"],
                        "schemes": ["https"],
                        "tags": ["core_v1"],
                        "description": "partially update the specified Pod",
                        "operationId": "patchCoreV1NamespacedPod",
                        "parameters": [
                            {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true},
                            {"name": "body", "in": "body", "required": true, "schema": {"type": "object"}}
                        ],
                        "responses": {
                            "200": {"description": "OK", "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}},
                            "401": {"description": "Unauthorized"}
                        },
                        "x-kubernetes-action": "patch",
                        "x-kubernetes-group-version-kind": {"group": "", "kind": "Pod", "version": "v1"}
                    },
                    "parameters": [
                        {"uniqueItems": true, "type": "string", "description": "name of the Pod",
                         "name": "name", "in": "path", "required": true},
                        {"$ref": "#/parameters/namespace-vgWSWtn3"},
                        {"$ref": "#/parameters/pretty-tJGM1-ng"}
                    ]
                }
            },
            "definitions": {
                "io.k8s.api.core.v1.Pod": {
                    "description": "Pod is a collection of containers that can run on a host.",
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "default": {}},
                        "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}
                    },
                    "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]
                },
                "io.k8s.api.core.v1.PodSpec": {
                    "type": "object",
                    "required": ["containers"],
                    "properties": {
                        "containers": {
                            "type": "array",
                            "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"},
                            "x-kubernetes-patch-merge-key": "name",
                            "x-kubernetes-patch-strategy": "merge"
                        },
                        "nodeSelector": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                        "terminationGracePeriodSeconds": {"type": "integer", "format": "int64"},
                        "restartPolicy": {"type": "string", "enum": ["Always", "Never", "OnFailure"]}
                    }
                },
                "io.k8s.apimachinery.pkg.runtime.RawExtension": {"type": "object", "properties": {}},
                "x.Odd": {
                    "type": ["string", "null"],
                    "items": [{"type": "string"}, {"type": "integer"}],
                    "additionalProperties": false,
                    "maxProperties": 3,
                    "minimum": -1.5,
                    "readOnly": true
                }
            },
            "parameters": {
                "pretty-tJGM1-ng": {"uniqueItems": true, "type": "string", "name": "pretty", "in": "query"}
            },
            "securityDefinitions": {
                "BearerToken": {"description": "Bearer Token authentication", "type": "apiKey",
                                "name": "authorization", "in": "header"},
                "oauth": {"type": "oauth2", "flow": "accessCode", "authorizationUrl": "https://a",
                          "tokenUrl": "https://t", "scopes": {"read": "reads"}}
            },
            "security": [{"BearerToken": []}],
            "x-rkube": {"a": [1, 2.5, null, true]}
        })
    }

    #[test]
    fn fields_sit_at_gnostic_field_numbers() {
        let buf = encode_document(&pod_swagger()).unwrap();
        // Document.paths(8).path(2)[0].value(2) is the PathItem; its patch(8) the Operation.
        const P: &str = "8.2[0].2";
        const OP: &str = "8.2[0].2.8";
        let table: &[(&str, Want)] = &[
            ("1", Str("2.0")),
            ("2.1", Str("Kubernetes")),
            ("2.2", Str("v1.28.0")),
            ("8.2", Count(1)),
            (
                "8.2[0].1",
                Str("/api/v1/namespaces/{namespace}/pods/{name}"),
            ),
            // PathItem.parameters(9): ParametersItem.parameter(1).non_body(2).path(4), json_reference(2).
            (&format!("{P}.9"), Count(3)),
            (&format!("{P}.9[0].1.2.4.4"), Str("name")),
            (&format!("{P}.9[0].1.2.4.1"), Int(1)),
            (&format!("{P}.9[0].1.2.4.19"), Int(1)),
            (
                &format!("{P}.9[1].2.1"),
                Str("#/parameters/namespace-vgWSWtn3"),
            ),
            (&format!("{OP}.1"), Str("core_v1")),
            (
                &format!("{OP}.3"),
                Str("partially update the specified Pod"),
            ),
            (&format!("{OP}.5"), Str("patchCoreV1NamespacedPod")),
            (&format!("{OP}.6"), Count(2)),
            (
                &format!("{OP}.7[2]"),
                Str("application/strategic-merge-patch+json"),
            ),
            (&format!("{OP}.10"), Str("https")),
            // Operation.vendor_extension(13): NamedAny{name(1), value(2): Any{yaml(2)}}.
            (&format!("{OP}.13[0].1"), Str("x-kubernetes-action")),
            (&format!("{OP}.13[0].2.2"), Str("\"patch\"")),
            (
                &format!("{OP}.13[1].1"),
                Str("x-kubernetes-group-version-kind"),
            ),
            (
                &format!("{OP}.13[1].2.2"),
                Str(r#"{"group": "", "kind": "Pod", "version": "v1"}"#),
            ),
            (&format!("{OP}.13[1].2.1"), Count(0)),
            // Operation.parameters(8)[0]: parameter(1).non_body_parameter(2).query_parameter_sub_schema(3).
            (&format!("{OP}.8"), Count(2)),
            (&format!("{OP}.8[0].1.2.3.4"), Str("fieldValidation")),
            (&format!("{OP}.8[0].1.2.3.2"), Str("query")),
            (&format!("{OP}.8[0].1.2.3.6"), Str("string")),
            (&format!("{OP}.8[0].1.2.3.20"), Int(1)),
            (&format!("{OP}.8[0].1.2.3.1"), Count(0)),
            // parameters[1]: parameter(1).body_parameter(1){name 2, in 3, required 4, schema 5}.
            (&format!("{OP}.8[1].1.1.2"), Str("body")),
            (&format!("{OP}.8[1].1.1.3"), Str("body")),
            (&format!("{OP}.8[1].1.1.4"), Int(1)),
            (&format!("{OP}.8[1].1.1.5.22.1"), Str("object")),
            // Operation.responses(9).response_code(1): NamedResponseValue -> response(1).schema(2).schema(1)._ref(1).
            (&format!("{OP}.9.1"), Count(2)),
            (&format!("{OP}.9.1[0].1"), Str("200")),
            (&format!("{OP}.9.1[0].2.1.1"), Str("OK")),
            (
                &format!("{OP}.9.1[0].2.1.2.1.1"),
                Str("#/definitions/io.k8s.api.core.v1.Pod"),
            ),
            (&format!("{OP}.9.1[1].2.1.2"), Count(0)),
            // Document.definitions(9).additional_properties(1): NamedSchema{name 1, value 2}.
            ("9.1", Count(4)),
            ("9.1[0].1", Str("io.k8s.api.core.v1.Pod")),
            (
                "9.1[0].2.4",
                Str("Pod is a collection of containers that can run on a host."),
            ),
            ("9.1[0].2.22.1", Str("object")),
            ("9.1[0].2.25.1", Count(3)),
            ("9.1[0].2.25.1[1].1", Str("metadata")),
            (
                "9.1[0].2.25.1[1].2.1",
                Str("#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            ),
            ("9.1[0].2.25.1[1].2.5.2", Str("{}")),
            ("9.1[0].2.31[0].1", Str("x-kubernetes-group-version-kind")),
            (
                "9.1[0].2.31[0].2.2",
                Str(r#"[{"group": "", "kind": "Pod", "version": "v1"}]"#),
            ),
            ("9.1[1].2.19", Str("containers")),
            ("9.1[1].2.25.1[0].1", Str("containers")),
            ("9.1[1].2.25.1[0].2.22.1", Str("array")),
            ("9.1[1].2.25.1[0].2.23.1", Count(1)),
            (
                "9.1[1].2.25.1[0].2.23.1.1",
                Str("#/definitions/io.k8s.api.core.v1.Container"),
            ),
            (
                "9.1[1].2.25.1[0].2.31[0].1",
                Str("x-kubernetes-patch-merge-key"),
            ),
            ("9.1[1].2.25.1[0].2.31[0].2.2", Str("\"name\"")),
            (
                "9.1[1].2.25.1[0].2.31[1].1",
                Str("x-kubernetes-patch-strategy"),
            ),
            ("9.1[1].2.25.1[0].2.31[1].2.2", Str("\"merge\"")),
            ("9.1[1].2.25.1[1].2.21.1.22.1", Str("string")),
            ("9.1[1].2.25.1[1].2.21.1.5.2", Str("\"\"")),
            ("9.1[1].2.25.1[2].2.2", Str("int64")),
            ("9.1[1].2.25.1[3].2.20", Count(3)),
            ("9.1[1].2.25.1[3].2.20[2].2", Str("\"OnFailure\"")),
            // An empty `properties` stays present (kube-openapi tells kinds from maps by it).
            ("9.1[2].2.25", Str("")),
            ("9.1[3].2.22.1", Count(2)),
            ("9.1[3].2.22.1[1]", Str("null")),
            ("9.1[3].2.23.1", Count(2)),
            ("9.1[3].2.23.1[1].22.1", Str("integer")),
            ("9.1[3].2.21.2", Int(0)),
            ("9.1[3].2.17", Int(3)),
            ("9.1[3].2.9", F64(-1.5)),
            ("9.1[3].2.27", Int(1)),
            // Document.parameters(10): NamedParameter{name 1, value 2: Parameter}.
            ("10.1[0].1", Str("pretty-tJGM1-ng")),
            ("10.1[0].2.2.3.4", Str("pretty")),
            // security(12): SecurityRequirement{NamedStringArray{name 1, value 2: StringArray}}.
            ("12.1[0].1", Str("BearerToken")),
            ("12.1[0].2", Str("")),
            // securityDefinitions(13): NamedSecurityDefinitionsItem -> api_key_security(2).
            ("13.1[0].1", Str("BearerToken")),
            ("13.1[0].2.2.1", Str("apiKey")),
            ("13.1[0].2.2.2", Str("authorization")),
            ("13.1[0].2.2.3", Str("header")),
            // oauth2_access_code_security(6){authorization_url 4, token_url 5, scopes 3: NamedString}.
            ("13.1[1].2.6.4", Str("https://a")),
            ("13.1[1].2.6.5", Str("https://t")),
            ("13.1[1].2.6.3.1[0].1", Str("read")),
            ("13.1[1].2.6.3.1[0].2", Str("reads")),
            ("16[0].1", Str("x-rkube")),
            ("16[0].2.2", Str(r#"{"a": [1, 2.5, null, true]}"#)),
            ("3", Count(0)),
        ];
        for (path, want) in table {
            check(&buf, path, want);
        }
    }

    #[test]
    fn rejects_malformed_documents() {
        let cases = [
            (json!([]), "#: expected an object"),
            (json!({"swagger": 2}), "#/swagger: expected a string"),
            (
                json!({"paths": {"/x": {"get": {"parameters": [{"name": "n"}]}}}}),
                "#/paths//x/get/parameters/0/in: unsupported",
            ),
            (
                json!({"definitions": {"A": {"type": 5}}}),
                "#/definitions/A/type: expected a string or an array",
            ),
            (
                json!({"definitions": {"A": {"required": "x"}}}),
                "#/definitions/A/required: expected an array",
            ),
        ];
        for (doc, want) in cases {
            let err = encode_document(&doc).unwrap_err();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn yaml_quotes_what_yaml_would_misread() {
        let v =
            json!({"k\"": ["a\\b\n\t", "\u{85}\u{7f}\u{1}é\u{2028}", -3, 0.5, false, null, {}]});
        let mut out = String::new();
        write_yaml(&v, &mut out);
        assert_eq!(
            out,
            r#"{"k\"": ["a\\b\n\t", "\u0085\u007f\u0001é\u2028", -3, 0.5, false, null, {}]}"#
        );
    }
}
