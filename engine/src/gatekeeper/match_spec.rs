//! The `spec.match` block of a constraint, validated as Gatekeeper's match CRD schema does.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::{FieldError, Fields, type_name};

/// One `kinds[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindSelector {
    /// `apiGroups` (empty or `*` = any).
    pub api_groups: Vec<String>,
    /// `kinds` (empty or `*` = any).
    pub kinds: Vec<String>,
}

/// One `matchExpressions[]` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn`.
    pub values: Vec<String>,
}

/// A Kubernetes LabelSelector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// `matchLabels`.
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`.
    pub match_expressions: Vec<Requirement>,
}

/// `spec.match`: all present matchers must agree (AND); absent or empty ones match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// `kinds`.
    pub kinds: Vec<KindSelector>,
    /// `scope`: `Cluster`, `Namespaced`, anything else means `*`.
    pub scope: Option<String>,
    /// `namespaces` (wildcards allowed).
    pub namespaces: Vec<String>,
    /// `excludedNamespaces` (wildcards allowed).
    pub excluded_namespaces: Vec<String>,
    /// `labelSelector`.
    pub label_selector: Option<LabelSelector>,
    /// `namespaceSelector`.
    pub namespace_selector: Option<LabelSelector>,
    /// `name` (wildcard).
    pub name: Option<String>,
    /// `source`: `All` (default), `Original`, `Generated`.
    pub source: Option<String>,
}

/// Gatekeeper's schema pattern for namespace and name globs: `^\*?[-:a-z0-9]*\*?$`.
fn is_valid_glob(s: &str) -> bool {
    let inner = s.strip_prefix('*').unwrap_or(s);
    let inner = inner.strip_suffix('*').unwrap_or(inner);
    inner
        .chars()
        .all(|c| c == '-' || c == ':' || c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn globs(fields: &Fields<'_>, key: &str) -> Result<Vec<String>, FieldError> {
    let values = fields.strings(key)?;
    for (i, v) in values.iter().enumerate() {
        if !is_valid_glob(v) {
            return Err(FieldError::new(
                format!("{}[{i}]", fields.path_of(key)),
                format!("{v:?} does not match the pattern ^\\*?[-:a-z0-9]*\\*?$"),
            ));
        }
    }
    Ok(values)
}

impl Match {
    /// Reads and validates a match block; `None` or `null` is the empty match.
    pub fn from_value(value: Option<&Value>, path: &str) -> Result<Self, FieldError> {
        let fields = Fields::new(value, path)?;
        let mut kinds = Vec::new();
        for (i, entry) in fields.array("kinds")?.iter().enumerate() {
            let entry = Fields::new(Some(entry), format!("{}[{i}]", fields.path_of("kinds")))?;
            kinds.push(KindSelector {
                api_groups: entry.strings("apiGroups")?,
                kinds: entry.strings("kinds")?,
            });
        }
        let name = fields.opt_str("name")?.map(str::to_string);
        if let Some(n) = &name
            && !is_valid_glob(n)
        {
            return Err(FieldError::new(
                fields.path_of("name"),
                format!("{n:?} does not match the pattern ^\\*?[-:a-z0-9]*\\*?$"),
            ));
        }
        let source = fields.opt_str("source")?.map(str::to_string);
        if let Some(s) = &source
            && !matches!(s.as_str(), "All" | "Generated" | "Original")
        {
            return Err(FieldError::new(
                fields.path_of("source"),
                format!("unsupported value {s:?}: expected All, Generated or Original"),
            ));
        }
        Ok(Match {
            kinds,
            scope: fields.opt_str("scope")?.map(str::to_string),
            namespaces: globs(&fields, "namespaces")?,
            excluded_namespaces: globs(&fields, "excludedNamespaces")?,
            label_selector: LabelSelector::from_value(
                fields.get("labelSelector"),
                &fields.path_of("labelSelector"),
            )?,
            namespace_selector: LabelSelector::from_value(
                fields.get("namespaceSelector"),
                &fields.path_of("namespaceSelector"),
            )?,
            name,
            source,
        })
    }
}

impl LabelSelector {
    /// Reads and validates a LabelSelector as `metav1.ValidateLabelSelector` does for operators
    /// and values.
    pub fn from_value(value: Option<&Value>, path: &str) -> Result<Option<Self>, FieldError> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let fields = Fields::new(Some(value), path)?;
        let mut match_labels = BTreeMap::new();
        if let Some(labels) = fields.get("matchLabels") {
            let labels = labels.as_object().ok_or_else(|| {
                FieldError::new(
                    fields.path_of("matchLabels"),
                    format!("expected object, got {}", type_name(labels)),
                )
            })?;
            for (k, v) in labels {
                let v = v.as_str().ok_or_else(|| {
                    FieldError::new(
                        format!("{}.{k}", fields.path_of("matchLabels")),
                        format!("expected string, got {}", type_name(v)),
                    )
                })?;
                match_labels.insert(k.clone(), v.to_string());
            }
        }
        let mut match_expressions = Vec::new();
        for (i, expr) in fields.array("matchExpressions")?.iter().enumerate() {
            let path = format!("{}[{i}]", fields.path_of("matchExpressions"));
            let expr = Fields::new(Some(expr), path.clone())?;
            let key = expr.req_str("key")?.to_string();
            let operator = expr.req_str("operator")?.to_string();
            let values = expr.strings("values")?;
            match operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(FieldError::new(
                        format!("{path}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(FieldError::new(
                        format!("{path}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(FieldError::new(
                        format!("{path}.operator"),
                        format!("not a valid selector operator: {other:?}"),
                    ));
                }
            }
            match_expressions.push(Requirement {
                key,
                operator,
                values,
            });
        }
        Ok(Some(LabelSelector {
            match_labels,
            match_expressions,
        }))
    }

    /// True when `labels` satisfy the selector; an empty selector selects everything.
    pub fn matches(&self, labels: &serde_json::Map<String, Value>) -> bool {
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        self.match_labels
            .iter()
            .all(|(k, v)| label(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|r| {
                let got = label(&r.key);
                match r.operator.as_str() {
                    "In" => got.is_some_and(|g| r.values.iter().any(|v| v == g)),
                    "NotIn" => got.is_none_or(|g| r.values.iter().all(|v| v != g)),
                    "Exists" => got.is_some(),
                    _ => got.is_none(),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_globs_outside_gatekeepers_pattern() {
        let err =
            Match::from_value(Some(&json!({"namespaces": ["Tracker"]})), "spec.match").unwrap_err();
        assert_eq!(err.field, "spec.match.namespaces[0]");
        assert!(Match::from_value(Some(&json!({"namespaces": ["*-sys*"]})), "m").is_ok());
    }

    #[test]
    fn selector_operators_are_validated() {
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "In"}]});
        assert!(LabelSelector::from_value(Some(&bad), "s").is_err());
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Maybe", "values": ["x"]}]});
        assert!(LabelSelector::from_value(Some(&bad), "s").is_err());
    }
}
