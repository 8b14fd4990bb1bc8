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

fn labels(object: &Value) -> Map<String, Value> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// What matching reads of one object, read once: a review is matched against every
/// constraint, and every lookup in a parsed object hashes its key.
struct Facts<'a> {
    object: &'a Value,
    group: &'a str,
    kind: &'a str,
    name: &'a str,
    generate_name: &'a str,
    /// `metadata.namespace`, "" when absent.
    own_namespace: &'a str,
    /// The Namespace object, when known.
    namespace: Option<&'a Value>,
    /// The namespace the namespace matchers test: a Namespace's own name, else the known
    /// Namespace's, else `metadata.namespace` when set.
    namespace_name: Option<&'a str>,
    source: Option<Source>,
}

impl<'a> Facts<'a> {
    fn of(target: &Matchable<'a>) -> Self {
        let object = target.object;
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let group = split_api_version(api_version).0;
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = object_name(object);
        let own_namespace = object_namespace(object);
        let namespace_name = if kind == "Namespace" && group.is_empty() {
            Some(name)
        } else if let Some(ns) = target.namespace {
            Some(object_name(ns))
        } else {
            Some(own_namespace).filter(|n| !n.is_empty())
        };
        Facts {
            object,
            group,
            kind,
            name,
            generate_name: metadata_str(object, "generateName"),
            own_namespace,
            namespace: target.namespace,
            namespace_name,
            source: target.source,
        }
    }

    fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.group.is_empty()
    }
}

/// True when the object satisfies every matcher of `m`.
pub fn matches(m: &Match, target: &Matchable<'_>) -> Result<bool, MatchError> {
    matches_facts(m, &Facts::of(target))
}

fn matches_facts(m: &Match, f: &Facts<'_>) -> Result<bool, MatchError> {
    let kinds = m.kinds.is_empty()
        || m.kinds.iter().any(|k| {
            (k.kinds.is_empty() || k.kinds.iter().any(|x| x == "*" || x == f.kind))
                && (k.api_groups.is_empty()
                    || k.api_groups.iter().any(|g| g == "*" || g == f.group))
        });
    if !kinds {
        return Ok(false);
    }
    let has_namespace = !f.own_namespace.is_empty() || f.namespace.is_some();
    let scope = match m.scope.as_deref() {
        Some("Cluster") => f.is_namespace() || !has_namespace,
        Some("Namespaced") => !f.is_namespace() && has_namespace,
        _ => true,
    };
    if !scope {
        return Ok(false);
    }
    if !m.namespaces.is_empty()
        && let Some(ns) = f.namespace_name
        && !m.namespaces.iter().any(|p| wildcard_matches(p, ns))
    {
        return Ok(false);
    }
    if let Some(ns) = f.namespace_name
        && m.excluded_namespaces
            .iter()
            .any(|p| wildcard_matches(p, ns))
    {
        return Ok(false);
    }
    if let Some(sel) = &m.label_selector
        && !sel.matches(&labels(f.object))
    {
        return Ok(false);
    }
    if let Some(sel) = &m.namespace_selector {
        let selected = if f.is_namespace() {
            sel.matches(&labels(f.object))
        } else if f.namespace.is_none() && f.own_namespace.is_empty() {
            true
        } else {
            match f.namespace {
                Some(ns) => sel.matches(&labels(ns)),
                None => return Err(MatchError::MissingNamespace),
            }
        };
        if !selected {
            return Ok(false);
        }
    }
    if let Some(name) = &m.name
        && !wildcard_matches(name, f.name)
        && !wildcard_matches_generate_name(name, f.generate_name)
    {
        return Ok(false);
    }
    let wanted = match m.source.as_deref() {
        Some("Original") => Source::Original,
        Some("Generated") => Source::Generated,
        _ => return Ok(true),
    };
    match f.source {
        Some(source) => Ok(source == wanted),
        None => Err(MatchError::SourceNotSpecified(f.name.to_string())),
    }
}

/// A review's `object` and `oldObject`, read once for matching against every constraint.
pub struct ReviewTargets<'a> {
    /// Each present object's facts, or why it cannot be matched, in Gatekeeper's order.
    targets: [Option<Result<Facts<'a>, MatchError>>; 2],
}

impl<'a> ReviewTargets<'a> {
    /// Reads what matching needs of the review's objects.
    pub fn of(review: &'a Review) -> Self {
        let target = |object: Option<&'a Value>| {
            object.map(|object| {
                let facts = Facts::of(&Matchable {
                    object,
                    namespace: review.namespace.as_ref(),
                    source: Some(review.source),
                });
                // The object has no kind, so it is not a Kubernetes object.
                if facts.kind.is_empty() {
                    Err(MatchError::NoKind)
                } else {
                    Ok(facts)
                }
            })
        };
        ReviewTargets {
            targets: [target(review.object()), target(review.old_object())],
        }
    }

    /// True when the `object` or the `oldObject` matches (Gatekeeper's `matchAny`).
    pub fn matches(&self, m: &Match) -> Result<bool, MatchError> {
        if self.targets.iter().all(Option::is_none) {
            return Err(MatchError::NoObject);
        }
        for target in self.targets.iter().flatten() {
            let facts = target.as_ref().map_err(Clone::clone)?;
            if matches_facts(m, facts)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A review matches when its `object` or its `oldObject` matches (Gatekeeper's `matchAny`).
pub fn review_matches(m: &Match, review: &Review) -> Result<bool, MatchError> {
    ReviewTargets::of(review).matches(m)
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
