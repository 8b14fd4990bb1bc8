//! Reading typed fields out of JSON values with the field path kept for errors.

use std::fmt;

use serde_json::{Map, Value};

/// A field that is missing or has the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `spec.match.kinds[0].apiGroups`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// JSON type names as Kubernetes' errors spell them.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A cursor on an object, remembering its path.
#[derive(Clone)]
pub struct Fields<'a> {
    map: Option<&'a Map<String, Value>>,
    path: String,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Fields<'a> {
    /// Views `value` (at `path`) as an object; `null` or absent reads as an empty object.
    pub fn new(value: Option<&'a Value>, path: impl Into<String>) -> Result<Self, FieldError> {
        let path = path.into();
        match value {
            None | Some(Value::Null) => Ok(Fields { map: None, path }),
            Some(Value::Object(map)) => Ok(Fields {
                map: Some(map),
                path,
            }),
            Some(other) => Err(FieldError::new(
                path,
                format!("expected object, got {}", type_name(other)),
            )),
        }
    }

    /// The object at `key` (empty when absent).
    pub fn child(&self, key: &str) -> Result<Fields<'a>, FieldError> {
        Fields::new(self.get(key), self.path_of(key))
    }

    /// The raw value of `key`, `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    /// Path of a child field.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// An optional string field.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(FieldError::new(
                self.path_of(key),
                format!("expected string, got {}", type_name(other)),
            )),
        }
    }

    /// A required, non-empty string field.
    pub fn req_str(&self, key: &str) -> Result<&'a str, FieldError> {
        match self.opt_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(FieldError::new(
                self.path_of(key),
                "required field is missing",
            )),
        }
    }

    /// An optional boolean (false when absent).
    pub fn bool(&self, key: &str) -> Result<bool, FieldError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(FieldError::new(
                self.path_of(key),
                format!("expected boolean, got {}", type_name(other)),
            )),
        }
    }

    /// An optional array (empty when absent).
    pub fn array(&self, key: &str) -> Result<&'a [Value], FieldError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(FieldError::new(
                self.path_of(key),
                format!("expected array, got {}", type_name(other)),
            )),
        }
    }

    /// An optional array of strings (empty when absent).
    pub fn strings(&self, key: &str) -> Result<Vec<String>, FieldError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(FieldError::new(
                    format!("{}[{i}]", self.path_of(key)),
                    format!("expected string, got {}", type_name(other)),
                )),
            })
            .collect()
    }
}
