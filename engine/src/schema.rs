//! Constraint parameters against the template's `openAPIV3Schema`: validation and defaulting.
//!
//! The schema is OpenAPI 3.0 as Kubernetes reads it, so it is first translated to JSON Schema
//! (`nullable`, `x-kubernetes-int-or-string`, boolean `exclusiveMaximum`). Defaults are filled in
//! the way the API server's structural defaulting does: a property with a `default` that is absent
//! from a present object gets the default, recursively.

use serde_json::{Map, Value};

use crate::gatekeeper::FieldError;
use crate::gatekeeper::fields_type_name;

/// A compiled parameters schema.
pub struct ParametersSchema {
    openapi: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for ParametersSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParametersSchema").finish_non_exhaustive()
    }
}

impl ParametersSchema {
    /// Compiles an `openAPIV3Schema`.
    pub fn compile(openapi: &Value) -> Result<Self, FieldError> {
        let json_schema = to_json_schema(openapi);
        if let Some(field) = tuple_items(openapi, "spec.crd.spec.validation.openAPIV3Schema") {
            return Err(FieldError::new(
                field,
                "invalid schema: items must be one schema, not an array of schemas",
            ));
        }
        // Draft 7, not jsonschema's default 2020-12: the keywords Kubernetes' OpenAPI subset has
        // mean the same in both once translated (items is one schema, checked above), and the
        // 2020-12 meta-schema, which every schema is first checked against, takes about 2 ms to
        // build: most of a cold start's first template. Formats stay annotations, as in 2020-12.
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(false)
            .build(&json_schema)
            .map_err(|e| {
                FieldError::new(
                    "spec.crd.spec.validation.openAPIV3Schema",
                    format!("invalid schema: {e}"),
                )
            })?;
        Ok(ParametersSchema {
            openapi: openapi.clone(),
            validator,
        })
    }

    /// Validates `parameters` (at field `path`) and returns them with defaults filled in.
    pub fn apply(&self, parameters: &Value, path: &str) -> Result<Value, FieldError> {
        let mut value = parameters.clone();
        apply_defaults(&mut value, &self.openapi);
        if let Some(error) = self.validator.iter_errors(&value).next() {
            let pointer = error.instance_path().as_str().to_string();
            let field = pointer_to_field(path, &pointer, &value);
            let message = match error.kind() {
                jsonschema::error::ValidationErrorKind::Type { kind } => {
                    let actual = value.pointer(&pointer).map_or("null", fields_type_name);
                    let expected = match kind {
                        jsonschema::error::TypeKind::Single(t) => t.to_string(),
                        jsonschema::error::TypeKind::Multiple(ts) => ts
                            .iter()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(" or "),
                    };
                    format!("expected {expected}, got {actual}")
                }
                _ => error.to_string(),
            };
            return Err(FieldError::new(field, message));
        }
        Ok(value)
    }
}

/// The first `items` given as an array (draft 7's tuple form, which 2020-12 and the API server's
/// structural schemas reject).
fn tuple_items(schema: &Value, field: &str) -> Option<String> {
    let obj = schema.as_object()?;
    match obj.get("items") {
        Some(Value::Array(_)) => return Some(format!("{field}.items")),
        Some(child) => {
            if let Some(found) = tuple_items(child, &format!("{field}.items")) {
                return Some(found);
            }
        }
        None => {}
    }
    for key in ["properties", "patternProperties", "definitions"] {
        if let Some(props) = obj.get(key).and_then(Value::as_object) {
            for (name, child) in props {
                if let Some(found) = tuple_items(child, &format!("{field}.{key}.{name}")) {
                    return Some(found);
                }
            }
        }
    }
    for key in ["additionalProperties", "not"] {
        if let Some(found) = obj
            .get(key)
            .and_then(|c| tuple_items(c, &format!("{field}.{key}")))
        {
            return Some(found);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, child) in obj
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(found) = tuple_items(child, &format!("{field}.{key}[{i}]")) {
                return Some(found);
            }
        }
    }
    None
}

fn pointer_to_field(base: &str, pointer: &str, value: &Value) -> String {
    let mut out = base.to_string();
    let mut cursor = Some(value);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match cursor {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{seg}]"));
                cursor = seg.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            Some(Value::Object(map)) => {
                out.push('.');
                out.push_str(&seg);
                cursor = map.get(&seg);
            }
            _ => {
                out.push('.');
                out.push_str(&seg);
                cursor = None;
            }
        }
    }
    out
}

/// Translates the OpenAPI 3.0 dialect Kubernetes uses into JSON Schema.
fn to_json_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        match k.as_str() {
            "properties" | "patternProperties" | "definitions" => {
                let translated = v
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s)))
                            .collect::<Map<_, _>>()
                    })
                    .map(Value::Object)
                    .unwrap_or_else(|| v.clone());
                out.insert(k.clone(), translated);
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(k.clone(), to_json_schema(v));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let items = v
                    .as_array()
                    .map(|a| Value::Array(a.iter().map(to_json_schema).collect()))
                    .unwrap_or_else(|| v.clone());
                out.insert(k.clone(), items);
            }
            // Kubernetes extensions and OpenAPI-only keywords carry no JSON Schema meaning.
            k if k.starts_with("x-kubernetes-") => {}
            "nullable" | "exclusiveMaximum" | "exclusiveMinimum" | "default" | "example"
            | "externalDocs" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        out.remove("type");
        out.insert("type".into(), serde_json::json!(["integer", "string"]));
    }
    if map.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(t)) = out.get("type").cloned()
    {
        out.insert("type".into(), serde_json::json!([t, "null"]));
    }
    for (flag, bound) in [
        ("exclusiveMaximum", "maximum"),
        ("exclusiveMinimum", "minimum"),
    ] {
        match map.get(flag) {
            Some(Value::Bool(true)) => {
                if let Some(b) = out.remove(bound) {
                    out.insert(flag.into(), b);
                }
            }
            Some(n @ Value::Number(_)) => {
                out.insert(flag.into(), n.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

fn apply_defaults(value: &mut Value, schema: &Value) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (name, sub) in props {
                    if !map.contains_key(name)
                        && let Some(default) = sub.get("default")
                    {
                        map.insert(name.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(name) {
                        apply_defaults(child, sub);
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for (name, child) in map.iter_mut() {
                    if props.is_none_or(|p| !p.contains_key(name)) {
                        apply_defaults(child, extra);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ParametersSchema {
        ParametersSchema::compile(&json!({
            "type": "object",
            "properties": {
                "runtimeClassNames": {"type": "array", "items": {"type": "string"}},
                "allowNodeAffinity": {"type": "boolean", "default": true},
                "limits": {"type": "object", "properties": {"cpu": {"x-kubernetes-int-or-string": true}}},
                "note": {"type": "string", "nullable": true}
            }
        }))
        .unwrap()
    }

    #[test]
    fn type_errors_name_the_field_and_both_types() {
        let err = schema()
            .apply(&json!({"runtimeClassNames": "wasmedge"}), "spec.parameters")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.parameters.runtimeClassNames: expected array, got string"
        );
        let err = schema()
            .apply(&json!({"runtimeClassNames": ["a", 3]}), "spec.parameters")
            .unwrap_err();
        assert_eq!(err.field, "spec.parameters.runtimeClassNames[1]");
    }

    #[test]
    fn defaults_fill_absent_properties_only() {
        let s = schema();
        assert_eq!(s.apply(&json!({}), "p").unwrap()["allowNodeAffinity"], true);
        assert_eq!(
            s.apply(&json!({"allowNodeAffinity": false}), "p").unwrap()["allowNodeAffinity"],
            false
        );
    }

    #[test]
    fn formats_are_annotations_and_tuple_items_are_refused() {
        let s = ParametersSchema::compile(&json!({
            "type": "object",
            "properties": {"contact": {"type": "string", "format": "email"},
                           "ratio": {"type": "number", "maximum": 2, "exclusiveMaximum": true}}
        }))
        .unwrap();
        assert!(s.apply(&json!({"contact": "not an address"}), "p").is_ok());
        assert!(s.apply(&json!({"ratio": 1.5}), "p").is_ok());
        assert!(s.apply(&json!({"ratio": 2}), "p").is_err());
        let err = ParametersSchema::compile(&json!({
            "type": "object",
            "properties": {"pair": {"type": "array", "items": [{"type": "string"}]}}
        }))
        .unwrap_err();
        assert_eq!(
            err.field,
            "spec.crd.spec.validation.openAPIV3Schema.properties.pair.items"
        );
        assert!(
            ParametersSchema::compile(&json!({"type": "object", "minProperties": "2"})).is_err()
        );
    }

    #[test]
    fn openapi_extensions_are_understood() {
        let s = schema();
        assert!(s.apply(&json!({"limits": {"cpu": 1}}), "p").is_ok());
        assert!(s.apply(&json!({"limits": {"cpu": "1"}}), "p").is_ok());
        assert!(s.apply(&json!({"limits": {"cpu": true}}), "p").is_err());
        assert!(s.apply(&json!({"note": null}), "p").is_ok());
    }
}

/// A `type` in a parameters schema that the API server does not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedType {
    /// The field in the template (`spec.crd.spec.validation.openAPIV3Schema.properties.x.type`).
    pub field: String,
    /// The same field as the API server names it in the constraint CRD it generates (what
    /// gator prints: `spec.validation.openAPIV3Schema.properties[spec].properties[parameters]...`).
    pub crd_field: String,
    /// `Unsupported value: "strng": supported values: ...`.
    pub message: String,
}

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Finds the first `type` that is not one of the API server's, walking the schema in the order
/// the API server validates it (`properties` by name, then `items`, `additionalProperties`).
pub fn unsupported_type(openapi: &Value) -> Option<UnsupportedType> {
    fn walk(schema: &Value, field: &str, crd: &str) -> Option<UnsupportedType> {
        let obj = schema.as_object()?;
        if let Some(t) = obj.get("type") {
            let ok = t.as_str().is_some_and(|t| TYPES.contains(&t));
            if !ok {
                let supported: Vec<String> = TYPES.iter().map(|t| format!("{t:?}")).collect();
                return Some(UnsupportedType {
                    field: format!("{field}.type"),
                    crd_field: format!("{crd}.type"),
                    message: format!(
                        "Unsupported value: {t}: supported values: {}",
                        supported.join(", ")
                    ),
                });
            }
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            let mut names: Vec<&String> = props.keys().collect();
            names.sort();
            for name in names {
                let found = walk(
                    &props[name.as_str()],
                    &format!("{field}.properties.{name}"),
                    &format!("{crd}.properties[{name}]"),
                );
                if found.is_some() {
                    return found;
                }
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = obj.get(key) {
                let found = walk(child, &format!("{field}.{key}"), &format!("{crd}.{key}"));
                if found.is_some() {
                    return found;
                }
            }
        }
        None
    }
    walk(
        openapi,
        "spec.crd.spec.validation.openAPIV3Schema",
        "spec.validation.openAPIV3Schema.properties[spec].properties[parameters]",
    )
}

#[cfg(test)]
mod type_tests {
    use super::*;

    #[test]
    fn a_misspelt_type_is_named_with_its_path_and_the_allowed_values() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "ok": {"type": "string"},
            "runtimeClassNames": {"type": "array", "items": {"type": "strng"}}
        }});
        let found = unsupported_type(&schema).unwrap_or_else(|| unreachable!());
        assert_eq!(
            found.field,
            "spec.crd.spec.validation.openAPIV3Schema.properties.runtimeClassNames.items.type"
        );
        assert_eq!(
            found.crd_field,
            "spec.validation.openAPIV3Schema.properties[spec].properties[parameters].properties[runtimeClassNames].items.type"
        );
        assert_eq!(
            found.message,
            "Unsupported value: \"strng\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
        );
        assert!(unsupported_type(&serde_json::json!({"type": "object"})).is_none());
    }
}
