//! What `eval` reports: each subject reviewed and rendered on its own (on any thread), then
//! gathered in input order and printed at the end, in the format asked for.
//!
//! Owns the output's text, byte for byte; reviewing is `tollgate_engine::evaluate::review`'s.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};
use tollgate_engine::document::Origin;
use tollgate_engine::gatekeeper::Gvk;
use tollgate_engine::{Context, Decision, PolicySet};

use super::inputs::Subject;
use super::{EvalFormat, Rendering};
use crate::cluster::audit::{PassResults, StatusViolation, status_violation};

/// One subject, reviewed and rendered.
#[derive(Debug)]
pub struct Reviewed {
    /// `print()` output of the templates, in evaluation order.
    prints: Vec<String>,
    denied: bool,
    warned: bool,
    /// Its lines of the human output.
    human: String,
    /// Its entries of the JSON output's `results`, each pretty-printed as it is inside the
    /// document (indented two levels).
    results: Vec<String>,
    /// For `audit -f`: its results as the audit records them, by constraint (kind, name).
    audit: Vec<((String, String), StatusViolation)>,
}

impl Reviewed {
    /// `print()` output of the templates.
    pub fn prints(&self) -> &[String] {
        &self.prints
    }
}

/// Reviews one subject and renders its results in `format`. The subject is taken: an object
/// moves into its review, uncopied.
pub fn review(
    set: &PolicySet,
    ctx: &Context<'_>,
    subject: Subject,
    rendering: Rendering,
) -> anyhow::Result<Reviewed> {
    let label = Label::of(&subject);
    let review = subject.into_review();
    let outcome = tollgate_engine::evaluate::review(set, &review, ctx)
        .with_context(|| format!("{}: reviewing {}", label.origin, label.described))?;
    let decision = Decision::from_violations(outcome.violations);
    let mut reviewed = Reviewed {
        prints: outcome.prints,
        denied: !decision.allowed,
        warned: !decision.warnings.is_empty(),
        human: String::new(),
        results: Vec::new(),
        audit: Vec::new(),
    };
    for v in &decision.violations {
        let actions: Vec<&str> = v.actions.iter().map(|a| a.as_str()).collect();
        match rendering {
            Rendering::Audit => {
                if let Some(found) =
                    status_violation(set, &label.gvk, &label.namespace, &label.name, v)
                {
                    let c = &v.constraint.constraint;
                    reviewed
                        .audit
                        .push(((c.kind.clone(), c.name.clone()), found));
                }
            }
            Rendering::Eval(EvalFormat::Human) => reviewed.human.push_str(&format!(
                "{}: [{:?}] ({}) Message: {:?}\n",
                label.described,
                v.constraint.constraint.name,
                actions.join(","),
                v.msg
            )),
            Rendering::Eval(EvalFormat::Json) => {
                let mut object = json!({
                    "apiVersion": label.gvk.api_version(),
                    "kind": label.gvk.kind,
                    "namespace": label.namespace,
                    "name": label.name,
                    "file": label.origin.file,
                    "document": label.origin.document,
                });
                if let (Some(operation), Value::Object(o)) = (&label.operation, &mut object) {
                    o.insert("operation".into(), json!(operation));
                }
                let result = json!({
                    "object": object,
                    "constraint": {"kind": v.constraint.constraint.kind, "name": v.constraint.constraint.name},
                    "enforcementActions": actions,
                    "message": v.msg,
                    "details": v.details,
                    "impliedBy": v.implied_by,
                });
                reviewed
                    .results
                    .push(indented(&serde_json::to_string_pretty(&result)?));
            }
        }
    }
    Ok(reviewed)
}

/// What a report says of a subject, taken before its object moves into the review.
struct Label {
    origin: Origin,
    /// `apiVersion/Kind namespace/name`, as gator test prints objects.
    described: String,
    gvk: Gvk,
    namespace: String,
    name: String,
    operation: Option<String>,
}

impl Label {
    fn of(subject: &Subject) -> Label {
        let gvk = Gvk::of(subject.object());
        let (ns, name) = (subject.namespace(), subject.name());
        let described = if ns.is_empty() {
            format!("{}/{} {name}", gvk.api_version(), gvk.kind)
        } else {
            format!("{}/{} {ns}/{name}", gvk.api_version(), gvk.kind)
        };
        Label {
            origin: subject.origin().clone(),
            described,
            gvk,
            namespace: ns.to_string(),
            name: name.to_string(),
            operation: subject.operation().map(str::to_string),
        }
    }
}

/// A value pretty-printed on its own, as it is printed two levels down (JSON strings hold no
/// line breaks, so every line break is the printer's).
fn indented(pretty: &str) -> String {
    format!("    {}", pretty.replace('\n', "\n    "))
}

/// Everything reviewed so far, in input order, and what goes to standard error before it.
#[derive(Debug, Default)]
pub struct Report {
    /// Warnings about the policies, printed first.
    warnings: Vec<String>,
    /// `print()` output not printed yet.
    prints: Vec<String>,
    objects: usize,
    denied: usize,
    warned: usize,
    human: String,
    results: Vec<String>,
    /// For `audit -f`: every result, by constraint.
    audit: PassResults,
    /// For `audit -f`: every constraint (kind, name, enforcement action), found or not.
    constraints: Vec<(String, String, String)>,
}

/// What `audit -f` found: the objects reviewed and every result by constraint.
#[derive(Debug)]
pub struct Audited {
    pub objects: usize,
    pub results: PassResults,
    /// Every constraint: kind, name and enforcement action.
    pub constraints: Vec<(String, String, String)>,
}

impl Report {
    /// A report that starts with warnings about the policies, not printed yet.
    pub fn with_warnings(warnings: Vec<String>) -> Report {
        Report {
            warnings,
            ..Report::default()
        }
    }

    /// Notes the constraints reviewed against, which `audit -f` reports on with or without
    /// results.
    pub fn constraints_of(mut self, set: &PolicySet) -> Report {
        self.constraints = crate::cluster::audit::constraint_actions(set);
        self
    }

    /// Adds the next subject, keeping its `print()` output to print at the end.
    pub fn add(&mut self, reviewed: Reviewed) {
        self.prints.extend_from_slice(&reviewed.prints);
        self.add_printed(reviewed);
    }

    /// Adds the next subject whose `print()` output is printed already.
    pub fn add_printed(&mut self, reviewed: Reviewed) {
        self.objects += 1;
        self.denied += usize::from(reviewed.denied);
        self.warned += usize::from(reviewed.warned);
        self.human.push_str(&reviewed.human);
        self.results.extend(reviewed.results);
        for (constraint, found) in reviewed.audit {
            self.audit
                .entry(constraint)
                .or_default()
                .add(found, usize::MAX);
        }
    }

    /// Prints the warnings and `print()` output on standard error, as [`Report::print`] does,
    /// and hands over what the audit reports.
    pub fn into_audited(self) -> Audited {
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        for line in &self.prints {
            eprintln!("{line}");
        }
        Audited {
            objects: self.objects,
            results: self.audit,
            constraints: self.constraints,
        }
    }

    /// Prints the report: warnings and `print()` output on standard error, the results on
    /// standard output, then the count on standard error. Exit 1 when something is denied.
    pub fn print(self, format: EvalFormat, unread_directory: Option<&std::path::Path>) -> ExitCode {
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        for line in &self.prints {
            eprintln!("{line}");
        }
        match format {
            EvalFormat::Human => print!("{}", self.human),
            // A result at a time: the document is never held whole.
            EvalFormat::Json => self.json(|piece| print!("{piece}")),
        }
        eprintln!(
            "{} {}, {} denied, {} warned",
            self.objects,
            if self.objects == 1 {
                "object"
            } else {
                "objects"
            },
            self.denied,
            self.warned
        );
        if self.objects == 0
            && let Some(dir) = unread_directory
        {
            eprintln!(
                "note: subdirectories such as {} are read only with -R",
                dir.display()
            );
        }
        if self.denied > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }

    /// The JSON document and a line break, in pieces, as `serde_json::to_string_pretty`
    /// prints `{"allowed", "results", "summary"}`.
    fn json(&self, mut emit: impl FnMut(&str)) {
        emit(&format!(
            "{{\n  \"allowed\": {},\n  \"results\": ",
            self.denied == 0
        ));
        if self.results.is_empty() {
            emit("[]");
        } else {
            emit("[\n");
            for (i, result) in self.results.iter().enumerate() {
                if i > 0 {
                    emit(",\n");
                }
                emit(result);
            }
            emit("\n  ]");
        }
        emit(&format!(
            ",\n  \"summary\": {{\n    \"objects\": {},\n    \"denied\": {},\n    \"warned\": {}\n  }}\n}}\n",
            self.objects, self.denied, self.warned
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_document_is_what_serde_json_prints_for_the_whole() {
        let results = [
            json!({"object": {"kind": "Pod", "document": 3, "namespace": ""},
                "constraint": {"kind": "K", "name": "n"}, "enforcementActions": ["deny", "warn"],
                "message": "a \"quoted\"\nmessage", "details": {}, "impliedBy": null}),
            json!({"object": {}, "enforcementActions": [], "details": {"a": [1, {"b": []}]},
                "impliedBy": "expand-workloads"}),
        ];
        for n in 0..=results.len() {
            let report = Report {
                objects: 7,
                denied: n,
                warned: 1,
                results: results[..n]
                    .iter()
                    .map(|r| indented(&serde_json::to_string_pretty(r).unwrap_or_default()))
                    .collect(),
                ..Report::default()
            };
            let whole = json!({
                "allowed": n == 0,
                "results": results[..n],
                "summary": {"objects": 7, "denied": n, "warned": 1},
            });
            let mut printed = String::new();
            report.json(|piece| printed.push_str(piece));
            assert_eq!(
                printed,
                serde_json::to_string_pretty(&whole).unwrap_or_default() + "\n"
            );
        }
    }
}
