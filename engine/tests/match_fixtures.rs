//! Every row of Gatekeeper v3.23.0's match tests (ported as data in `fixtures/match/`), run
//! through tollgate's public matching API. One test per fixture file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tollgate_engine::document;
use tollgate_engine::gatekeeper::{ApplyTo, Constraint, Gvk, Match, object_namespace};
use tollgate_engine::matching::{self, Matchable};
use tollgate_engine::review::{Review, Source};

fn rows(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/match")
        .join(file);
    let docs = document::read_file(&path).unwrap();
    let rows = docs[0].value.as_array().unwrap().clone();
    assert!(!rows.is_empty(), "{file} has no rows");
    rows
}

fn source(row: &Value) -> Option<Source> {
    match row.get("source").and_then(Value::as_str) {
        Some("Generated") => Some(Source::Generated),
        Some("Original") | Some("All") | None => Some(Source::Original),
        _ => None,
    }
}

/// `Ok(bool)` or `Err(())` for "Gatekeeper returns an error".
fn match_row(row: &Value) -> Result<bool, String> {
    let m = Match::from_value(row.get("match"), "spec.match").map_err(|e| e.to_string())?;
    let object = row
        .get("object")
        .filter(|o| !o.is_null())
        .ok_or("nil object")?;
    let target = Matchable {
        object,
        namespace: row.get("namespace").filter(|n| !n.is_null()),
        source: source(row),
    };
    matching::matches(&m, &target).map_err(|e| e.to_string())
}

fn check(file: &str, outcome: impl Fn(&Value) -> Result<bool, String>) {
    let mut failures = Vec::new();
    let all = rows(file);
    for row in &all {
        let name = row["name"].as_str().unwrap_or("?");
        if row.get("wantHandled") == Some(&Value::Bool(false)) {
            continue;
        }
        let want_error = row.get("wantError") == Some(&Value::Bool(true));
        // Constraint rows only say whether adding the constraint fails.
        let want = row.get("want").and_then(Value::as_bool);
        match (outcome(row), want_error) {
            (Err(_), true) => {}
            (Ok(got), false) if want.is_none_or(|w| w == got) => {}
            (got, _) => failures.push(format!(
                "{name}: got {got:?}, want {}",
                if want_error {
                    "an error".to_string()
                } else {
                    format!("{want:?}")
                }
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} of {} rows differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn match_go_test_match() {
    check("match.yaml", match_row);
}

#[test]
fn match_go_test_names_match() {
    check("names_match.yaml", match_row);
}

#[test]
fn wildcard_go_test_matches() {
    check("wildcard_matches.yaml", match_row);
}

#[test]
fn wildcard_go_test_matches_generate_name() {
    check("wildcard_matches_generate_name.yaml", match_row);
}

#[test]
fn apply_to_go_test() {
    check("apply_to.yaml", |row| {
        let gvk = Gvk {
            group: row["gvk"]["group"].as_str().unwrap_or("").into(),
            version: row["gvk"]["version"].as_str().unwrap_or("").into(),
            kind: row["gvk"]["kind"].as_str().unwrap_or("").into(),
        };
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let apply: Vec<ApplyTo> = row["applyTo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| ApplyTo {
                groups: strings(&a["groups"]),
                versions: strings(&a["versions"]),
                kinds: strings(&a["kinds"]),
            })
            .collect();
        Ok(apply.iter().any(|a| a.matches(&gvk)))
    });
}

fn constraint_row(row: &Value) -> Result<bool, String> {
    Constraint::from_value(&row["constraint"])
        .map(|_| true)
        .map_err(|e| e.to_string())
}

#[test]
fn target_go_test_validate_constraint() {
    check("validate_constraint.yaml", constraint_row);
}

/// `ToMatcher` reads only `spec.match` (it also accepts mutators, which have no constraint kind).
#[test]
fn target_go_test_to_matcher() {
    check("to_matcher.yaml", |row| {
        let spec_match = row["constraint"].pointer("/spec/match");
        Match::from_value(spec_match, "spec.match")
            .map(|_| true)
            .map_err(|e| e.to_string())
    });
}

/// Gatekeeper reviews the object as AdmissionRequest `object`, as `oldObject`, and as a plain
/// object; all three must give the row's answer.
#[test]
fn target_go_test_constraint_enforcement() {
    check("constraint_enforcement.yaml", |row| {
        let m = Match::from_value(row.get("match"), "spec.match").map_err(|e| e.to_string())?;
        let object = row["object"].clone();
        let namespace = row.get("namespace").filter(|n| !n.is_null()).cloned();
        let mut answers = Vec::new();
        for request in [json!({"object": object}), json!({"oldObject": object})] {
            let review = Review::of_request(request)
                .map_err(|e| e.to_string())?
                .with_namespace(namespace.clone());
            answers.push(matching::review_matches(&m, &review).map_err(|e| e.to_string())?);
        }
        let review = Review::of_object(object, Source::Original).with_namespace(namespace);
        answers.push(matching::review_matches(&m, &review).map_err(|e| e.to_string())?);
        if answers.iter().all(|a| *a == answers[0]) {
            Ok(answers[0])
        } else {
            Err(format!("object/oldObject/plain disagree: {answers:?}"))
        }
    });
}

#[test]
fn target_go_test_matcher_match() {
    check("matcher_match.yaml", |row| {
        let m = match row.get("match").filter(|m| !m.is_null()) {
            Some(m) => Match::from_value(Some(m), "spec.match").map_err(|e| e.to_string())?,
            // A constraint without spec.match: Gatekeeper's matcher accepts everything.
            None => return Ok(true),
        };
        let cached: BTreeMap<String, Value> = row
            .get("cachedNamespaces")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|n| {
                        (
                            n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                            n.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let kind = row["review"].as_str().unwrap_or("");
        let (review, ns_name) = match kind {
            "AdmissionRequest" | "AugmentedReview" => {
                let request = row.get("request").cloned().unwrap_or(json!({}));
                let ns = request
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                (Review::of_request(request).map_err(|e| e.to_string())?, ns)
            }
            _ => {
                let object = row.get("object").cloned().unwrap_or(Value::Null);
                let ns = object_namespace(&object).to_string();
                (Review::of_object(object, Source::Original), ns)
            }
        };
        let namespace = row
            .get("namespace")
            .filter(|n| !n.is_null())
            .cloned()
            .or_else(|| cached.get(&ns_name).cloned());
        let review = review.with_namespace(namespace);
        matching::review_matches(&m, &review).map_err(|e| e.to_string())
    });
}
