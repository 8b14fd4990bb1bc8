//! Gatekeeper's match semantics (`pkg/mutation/match/match.go`): one small predicate per
//! matcher, all ANDed.

use serde_json::{Map, Value};

use crate::gatekeeper::{Match, metadata_str, object_name, object_namespace, split_api_version};
use crate::review::{Review, Source};

/// A match that cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// `namespaceSelector` on a namespaced object whose Namespace is not known.
    #[error("namespace selector for namespace-scoped object but missing Namespace")]
    MissingNamespace,
    /// Neither `object` nor `oldObject` is set.
    #[error("neither object nor old object are defined")]
    NoObject,
    /// The object has no `kind`, so it is not a Kubernetes object.
    #[error("Object 'Kind' is missing")]
    NoKind,
    /// `match.source` is `Original` or `Generated` but the object's source is not known.
    #[error("source field not specified for resource {0}")]
    SourceNotSpecified(String),
}

/// What one object is matched against.
pub struct Matchable<'a> {
    /// The object.
    pub object: &'a Value,
    /// Its Namespace object, when known.
    pub namespace: Option<&'a Value>,
    /// Original or generated; `None` only when a caller cannot say (then `match.source` other
    /// than `All` is an error, as in Gatekeeper).
    pub source: Option<Source>,
}

/// Gatekeeper's wildcard: `x*` prefix, `*x` suffix, `*x*` contains, otherwise exact.
pub fn wildcard_matches(pattern: &str, candidate: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) if pattern.len() >= 2 => {
            candidate.contains(&pattern[1..pattern.len() - 1])
        }
        (Some(suffix), _) => candidate.ends_with(suffix),
        (None, Some(prefix)) => candidate.starts_with(prefix),
        (None, None) => pattern == candidate,
    }
}

/// The same wildcard against `generateName`: only prefix and contains patterns can match.
fn wildcard_matches_generate_name(pattern: &str, candidate: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) if pattern.len() == 1 => true,
        (Some(_), Some(_)) => candidate.contains(&pattern[1..pattern.len() - 1]),
        (None, Some(prefix)) => candidate.starts_with(prefix),
        _ => false,
    }
}

/// An object's API group and kind, borrowed from it: matching runs for every constraint on
/// every decision, and [`crate::gatekeeper::Gvk::of`] allocates its three strings.
struct GroupKind<'a> {
    group: &'a str,
    kind: &'a str,
}

impl<'a> GroupKind<'a> {
    fn of(object: &'a Value) -> Self {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        GroupKind {
            group: split_api_version(api_version).0,
            kind: object.get("kind").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

fn is_namespace(gvk: &GroupKind<'_>) -> bool {
    gvk.kind == "Namespace" && gvk.group.is_empty()
}

fn labels(object: &Value) -> Map<String, Value> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn namespace_name<'a>(
    object: &'a Value,
    gvk: &GroupKind<'_>,
    ns: Option<&'a Value>,
) -> Option<&'a str> {
    if is_namespace(gvk) {
        Some(object_name(object))
    } else if let Some(ns) = ns {
        Some(object_name(ns))
    } else {
        Some(object_namespace(object)).filter(|n| !n.is_empty())
    }
}

/// True when the object satisfies every matcher of `m`.
pub fn matches(m: &Match, target: &Matchable<'_>) -> Result<bool, MatchError> {
    let obj = target.object;
    let gvk = GroupKind::of(obj);
    let kinds = m.kinds.is_empty()
        || m.kinds.iter().any(|k| {
            (k.kinds.is_empty() || k.kinds.iter().any(|x| x == "*" || *x == gvk.kind))
                && (k.api_groups.is_empty()
                    || k.api_groups.iter().any(|g| g == "*" || *g == gvk.group))
        });
    if !kinds {
        return Ok(false);
    }
    let has_namespace = !object_namespace(obj).is_empty() || target.namespace.is_some();
    let scope = match m.scope.as_deref() {
        Some("Cluster") => is_namespace(&gvk) || !has_namespace,
        Some("Namespaced") => !is_namespace(&gvk) && has_namespace,
        _ => true,
    };
    if !scope {
        return Ok(false);
    }
    let ns = namespace_name(obj, &gvk, target.namespace);
    if !m.namespaces.is_empty()
        && let Some(ns) = ns
        && !m.namespaces.iter().any(|p| wildcard_matches(p, ns))
    {
        return Ok(false);
    }
    if let Some(ns) = ns
        && m.excluded_namespaces
            .iter()
            .any(|p| wildcard_matches(p, ns))
    {
        return Ok(false);
    }
    if let Some(sel) = &m.label_selector
        && !sel.matches(&labels(obj))
    {
        return Ok(false);
    }
    if let Some(sel) = &m.namespace_selector {
        let selected = if is_namespace(&gvk) {
            sel.matches(&labels(obj))
        } else if target.namespace.is_none() && object_namespace(obj).is_empty() {
            true
        } else {
            match target.namespace {
                Some(ns) => sel.matches(&labels(ns)),
                None => return Err(MatchError::MissingNamespace),
            }
        };
        if !selected {
            return Ok(false);
        }
    }
    if let Some(name) = &m.name {
        let generate_name = metadata_str(obj, "generateName");
        if !wildcard_matches(name, object_name(obj))
            && !wildcard_matches_generate_name(name, generate_name)
        {
            return Ok(false);
        }
    }
    let wanted = match m.source.as_deref() {
        Some("Original") => Source::Original,
        Some("Generated") => Source::Generated,
        _ => return Ok(true),
    };
    match target.source {
        Some(source) => Ok(source == wanted),
        None => Err(MatchError::SourceNotSpecified(object_name(obj).to_string())),
    }
}

/// A review matches when its `object` or its `oldObject` matches (Gatekeeper's `matchAny`).
pub fn review_matches(m: &Match, review: &Review) -> Result<bool, MatchError> {
    let objects = [review.object(), review.old_object()];
    if objects.iter().all(Option::is_none) {
        return Err(MatchError::NoObject);
    }
    for object in objects.into_iter().flatten() {
        if object
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(MatchError::NoKind);
        }
        let target = Matchable {
            object,
            namespace: review.namespace.as_ref(),
            source: Some(review.source),
        };
        if matches(m, &target)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_gatekeeper() {
        assert!(wildcard_matches("kube-*", "kube-system"));
        assert!(wildcard_matches("*-system", "kube-system"));
        assert!(wildcard_matches("*system*", "kube-system-x"));
        assert!(!wildcard_matches("kube", "kube-system"));
        assert!(wildcard_matches("*", "anything"));
        assert!(wildcard_matches("**", "anything"));
        assert!(!wildcard_matches_generate_name("*-abc", "x-abc"));
        assert!(wildcard_matches_generate_name("x-*", "x-abc"));
    }
}
