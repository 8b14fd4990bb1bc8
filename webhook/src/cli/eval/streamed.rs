//! `eval` without holding its inputs: when no constraint's template reads `data.inventory`, a
//! review needs only the policies, the CustomResourceDefinitions and the Namespaces among the
//! inputs ([`super::world`]). Those are found first; then the inputs are read again one
//! document at a time, and each document is parsed, checked and reviewed on a worker thread.
//!
//! This is a shortcut for the common case, not a second set of rules: on anything it cannot
//! settle (a template that reads the inventory, a document that cannot be read, parsed, placed
//! or reviewed, policies that do not build) it answers `None`, having printed nothing, and
//! [`super::loaded`] does the whole run, reporting what it reports.

use std::ops::ControlFlow;
use std::sync::Arc;

use tollgate_engine::data::InventoryKey;
use tollgate_engine::document::{DocumentError, Unparsed};
use tollgate_engine::{DataSnapshot, Sources};

use super::inputs::{self, Input, Subject};
use super::report::{self, Report, Reviewed};
use super::scope::Placement;
use super::{Settings, ordered, world};

/// Reviews every input document by document; `None` when the loaded path must decide.
pub fn run(settings: &Settings, inputs: &[Input]) -> Option<Report> {
    let world = world::scan(inputs).ok()?;
    let base = settings.policy_sources().ok()?;
    let (set, warnings) = settings.build(base, &world.policies).ok()?;
    if set.reads_inventory() {
        return None;
    }
    let placement = Placement::new(settings.namespace.clone(), &world.definitions);
    let mut data = DataSnapshot::default();
    for doc in world.namespaces {
        if let Subject::Object(doc) = Subject::of(doc, &placement).ok()? {
            data.sync(doc.value).ok()?;
        }
    }
    super::add_default_namespace(&mut data);
    let ctx = settings.context(&data);
    let review_all = |piece: Result<(Arc<str>, Unparsed), DocumentError>| {
        let (file, unparsed) = piece.ok()?;
        let mut read = Sources::default();
        read.add(unparsed.parse(&file).ok()?);
        // Policies among them are in the set already; the rest is reviewed, as the loaded
        // path does: checked, placed, syncable.
        read.objects
            .into_iter()
            .map(|doc| {
                let subject = Subject::of(doc, &placement).ok()?;
                if let Subject::Object(doc) = &subject {
                    InventoryKey::of(&doc.value).ok()?;
                }
                report::review(&set, &ctx, subject, settings.rendering).ok()
            })
            .collect::<Option<Vec<Reviewed>>>()
    };
    let mut report = Report::with_warnings(warnings).constraints_of(&set);
    let mut settled = true;
    ordered::for_each(
        pieces(inputs),
        settings.jobs,
        review_all,
        |reviewed| match reviewed {
            Some(reviewed) => {
                reviewed.into_iter().for_each(|r| report.add(r));
                ControlFlow::Continue(())
            }
            None => {
                settled = false;
                ControlFlow::Break(())
            }
        },
    );
    settled.then_some(report)
}

/// Every input's documents, unparsed, with the name of their file.
fn pieces(
    inputs: &[Input],
) -> impl Iterator<Item = Result<(Arc<str>, Unparsed), DocumentError>> + Send + '_ {
    inputs.iter().flat_map(move |input| {
        let (file, stream, error) = match inputs::stream(input) {
            Ok(stream) => (Arc::<str>::from(stream.file()), Some(stream), None),
            Err(e) => (Arc::<str>::from(""), None, Some(e)),
        };
        error.map(Err).into_iter().chain(
            stream
                .into_iter()
                .flatten()
                .map(move |unparsed| unparsed.map(|u| (Arc::clone(&file), u))),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::cli::EvaluatorFlag;
    use crate::cli::eval::{EvalFormat, Rendering};

    fn settled(files: &[(&str, &str)]) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<Input> = files
            .iter()
            .map(|(name, text)| {
                let path = dir.path().join(name);
                std::fs::write(&path, text).unwrap();
                Input::File(path)
            })
            .collect();
        let settings = Settings {
            namespace: None,
            policies: Vec::new(),
            no_expand: false,
            rendering: Rendering::Eval(EvalFormat::Json),
            evaluator: EvaluatorFlag::Rvm,
            jobs: NonZeroUsize::new(2).unwrap(),
        };
        run(&settings, &inputs).is_some()
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\n";
    const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n";
    const INVENTORY: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sinv}
spec:
  crd: {spec: {names: {kind: K8sInv}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sinv
        violation[{"msg": "x"}] { data.inventory.namespace[_] }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sInv
metadata: {name: inv}
"#;

    #[test]
    fn streams_what_needs_no_inventory_and_hands_on_the_rest() {
        assert!(settled(&[("a.yaml", POD), ("b.yaml", NAMESPACE)]));
        assert!(settled(&[(
            "a.json",
            r#"{"apiVersion": "v1", "kind": "Pod"}"#
        )]));
        // A template that reads the inventory, even after the objects.
        assert!(!settled(&[("a.yaml", POD), ("b.yaml", INVENTORY)]));
        // Anything wrong is for the loaded path to report.
        assert!(!settled(&[("a.yaml", POD), ("b.yaml", "a: [1,\n")]));
        assert!(!settled(&[("a.yaml", "- not an object\n")]));
        assert!(!settled(&[(
            "a.yaml",
            "apiVersion: v1\nkind: Namespace\n---\nx: [\n"
        )]));
        assert!(!settled(&[(
            "a.yaml",
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: Unknown\nmetadata: {name: u}\n"
        )]));
    }
}
