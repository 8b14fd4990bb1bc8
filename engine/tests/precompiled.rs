//! Programs compiled ahead of time (`tollgate_engine::precompiled`): tollgate's Go `sprintf` is
//! bound again after deserialization, the interpreter is prepared when a loaded template first
//! needs it, and a program that cannot be fully restored (another format version, a builtin
//! this build lacks, damaged bytes, another compiler) is compiled instead and reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use tollgate_engine::compile::PrecompiledUse;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::precompiled::{Entry, LoadError, Precompiled};
use tollgate_engine::{Context, PolicySet, Review, Source, Sources};

/// Messages built with `sprintf` where Go's formatting (OPA's, tollgate's) and regorus's own
/// builtin disagree: a float in `%v` (Go's `%g`), a verb of the wrong type, a missing operand,
/// `%q`, padding. The expected text is Go's (`engine/src/rego/sprintf.rs` tests the formatter).
const TEMPLATE: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8ssprintf
spec:
  crd:
    spec:
      names:
        kind: K8sSprintf
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8ssprintf

        violation[{"msg": msg}] {
          msg := sprintf("float %v", [input.review.object.spec.ratio])
        }
        violation[{"msg": msg}] {
          msg := sprintf("wrong verb %d", [input.review.object.metadata.name])
        }
        violation[{"msg": msg}] {
          msg := sprintf("missing %v and %v", [input.review.object.metadata.name])
        }
        violation[{"msg": msg}] {
          msg := sprintf("quoted %q padded [%-6s]", [input.review.object.metadata.name, "ab"])
        }
        violation[{"msg": msg}] {
          input.review.object.spec.conflict
          msg := conflict(1)
        }
        conflict(x) := "a"
        conflict(x) := "b"
"#;

const CONSTRAINT: &str = r#"
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sSprintf
metadata:
  name: all
"#;

fn sources() -> Sources {
    let mut sources = Sources::default();
    sources.add_text("template.yaml", TEMPLATE).unwrap();
    sources.add_text("constraint.yaml", CONSTRAINT).unwrap();
    sources
}

fn compiled() -> PolicySet {
    PolicySet::build(&sources()).unwrap()
}

fn artifact() -> Precompiled {
    let set = compiled();
    assert!(set.templates().all(|t| t.on_fast_path()));
    Precompiled::of_templates(set.templates().map(AsRef::as_ref)).unwrap()
}

/// The set built with `artifact` (through its bytes, as the binary reads it), and the warnings.
fn loaded(artifact: &Precompiled) -> (PolicySet, Vec<String>) {
    let read: &'static Precompiled = Box::leak(Box::new(
        Precompiled::from_bytes(&artifact.to_bytes()).unwrap(),
    ));
    let options = BuildOptions {
        precompiled: Some(read),
        ..BuildOptions::default()
    };
    PolicySet::build_warning(&sources(), options).unwrap()
}

/// `artifact` with each entry's program bytes changed by `edit`.
fn edited(edit: impl Fn(&mut Vec<u8>)) -> Precompiled {
    let mut out = Precompiled::new();
    for entry in artifact().entries() {
        let mut entry: Entry = entry.clone();
        edit(&mut entry.program);
        out.insert(entry);
    }
    out
}

fn messages(set: &PolicySet, object: serde_json::Value) -> Vec<String> {
    let review = Review::of_object(object, Source::Original);
    let outcome = tollgate_engine::evaluate::review(set, &review, &Context::gator()).unwrap();
    let mut out: Vec<String> = outcome
        .violations
        .iter()
        .map(|v| format!("error={} {}", v.is_error, v.msg))
        .collect();
    out.sort();
    out
}

fn pod(conflict: bool) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ratio": 1500000.5, "conflict": conflict}
    })
}

fn use_of(set: &PolicySet) -> PrecompiledUse {
    set.template("K8sSprintf").unwrap().precompiled().clone()
}

#[test]
fn deserialized_programs_format_with_gos_sprintf() {
    let (set, warnings) = loaded(&artifact());
    assert_eq!(use_of(&set), PrecompiledUse::Used);
    assert!(warnings.is_empty(), "{warnings:?}");
    let got = messages(&set, pod(false));
    assert_eq!(
        got,
        vec![
            "error=false float 1.5000005e+06",
            "error=false missing web and %!v(MISSING)",
            "error=false quoted \"web\" padded [ab    ]",
            "error=false wrong verb %!d(string=web)",
        ]
    );
    assert_eq!(got, messages(&compiled(), pod(false)));
}

/// An RVM error sends the evaluation to the interpreter, which a loaded template prepares only
/// then: its error is the interpreter's, as for a template compiled at start.
#[test]
fn a_loaded_template_prepares_its_interpreter_when_an_evaluation_needs_it() {
    let (set, _) = loaded(&artifact());
    assert_eq!(use_of(&set), PrecompiledUse::Used);
    let got = messages(&set, pod(true));
    assert!(
        got.iter()
            .any(|m| m.starts_with("error=true") && m.contains("eval_conflict_error")),
        "{got:?}"
    );
    assert_eq!(got, messages(&compiled(), pod(true)));
}

fn assert_refused(artifact: &Precompiled, why: &str) {
    let (set, warnings) = loaded(artifact);
    match use_of(&set) {
        PrecompiledUse::Refused(e) => assert!(e.to_string().contains(why), "{e}"),
        other => panic!("expected a refusal ({why}), got {other:?}"),
    }
    assert!(
        set.templates().all(|t| t.on_fast_path()),
        "compiled instead, on the RVM"
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("precompiled program is not used"),
        "{warnings:?}"
    );
    assert_eq!(
        messages(&set, pod(false)),
        messages(&compiled(), pod(false))
    );
}

#[test]
fn a_program_of_another_format_version_is_compiled_instead() {
    // regorus's header: magic (4 bytes), then its format version.
    assert_refused(
        &edited(|p| p[4..8].copy_from_slice(&99u32.to_le_bytes())),
        "Unsupported version 99",
    );
    // An older version deserializes only partly: never run.
    assert_refused(
        &edited(|p| p[4..8].copy_from_slice(&5u32.to_le_bytes())),
        "only partly",
    );
}

#[test]
fn a_program_calling_an_unknown_builtin_is_compiled_instead() {
    // Same length, so every offset in the program stays valid.
    assert_refused(
        &edited(|p| {
            let at: Vec<usize> = p
                .windows(7)
                .enumerate()
                .filter(|(_, w)| *w == b"sprintf")
                .map(|(i, _)| i)
                .collect();
            assert!(!at.is_empty());
            for i in at {
                p[i..i + 7].copy_from_slice(b"sprintz");
            }
        }),
        "only partly",
    );
}

#[test]
fn a_damaged_program_is_compiled_instead() {
    assert_refused(&edited(|p| p.truncate(p.len() / 2)), "does not deserialize");
}

#[test]
fn damaged_or_foreign_artifacts_are_refused_whole() {
    let bytes = artifact().to_bytes();
    // One flipped bit in a program: the checksum, not regorus, notices.
    let mut flipped = bytes.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x10;
    assert!(matches!(
        Precompiled::from_bytes(&flipped),
        Err(LoadError::Malformed(m)) if m.contains("checksum")
    ));
    assert!(matches!(
        Precompiled::from_bytes(&bytes[..bytes.len() - 1]),
        Err(LoadError::Malformed(_))
    ));
    assert!(matches!(
        Precompiled::from_bytes(b"not an artifact"),
        Err(LoadError::Malformed(_))
    ));
    // Another compiler's fingerprint (same length, so only the check can tell).
    let ours = tollgate_engine::precompiled::FINGERPRINT.as_bytes();
    let at = bytes.windows(ours.len()).position(|w| w == ours).unwrap();
    let mut foreign = bytes.clone();
    foreign[at] = if foreign[at] == b'0' { b'1' } else { b'0' };
    assert!(matches!(
        Precompiled::from_bytes(&foreign),
        Err(LoadError::Fingerprint { .. })
    ));
}

/// A template whose Rego differs by one character gets no program: the key is the exact Rego.
#[test]
fn a_program_is_only_given_to_its_own_rego() {
    let read: &'static Precompiled = Box::leak(Box::new(artifact()));
    let mut sources = Sources::default();
    sources
        .add_text("template.yaml", &TEMPLATE.replace("float %v", "float: %v"))
        .unwrap();
    let options = BuildOptions {
        precompiled: Some(read),
        ..BuildOptions::default()
    };
    let set = PolicySet::build_with(&sources, options).unwrap();
    assert_eq!(use_of(&set), PrecompiledUse::None);
    assert!(set.templates().all(|t| t.on_fast_path()));
}

/// The bytes are a function of the Rego and the compiler: `tollgate build --check` relies on it.
#[test]
fn the_artifact_is_the_same_on_every_build() {
    assert_eq!(artifact().to_bytes(), artifact().to_bytes());
}

/// A template named `k8smany<i>` whose one violation says which template it is.
fn numbered_template(i: usize, wording: &str) -> String {
    format!(
        r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8smany{i}
spec:
  crd:
    spec:
      names:
        kind: K8sMany{i}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8smany{i}

        violation[{{"msg": msg}}] {{
          msg := sprintf("{wording} %d of %v", [{i}, input.review.object.metadata.name])
        }}
"#
    )
}

fn numbered_sources(count: usize, wording: impl Fn(usize) -> &'static str) -> Sources {
    let mut sources = Sources::default();
    for i in 0..count {
        sources
            .add_text(&format!("t{i}.yaml"), &numbered_template(i, wording(i)))
            .unwrap();
        let constraint = format!(
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sMany{i}\nmetadata:\n  name: c{i}\n"
        );
        sources
            .add_text(&format!("c{i}.yaml"), &constraint)
            .unwrap();
    }
    sources
}

/// Templates with a program in the artifact are restored on the building thread while the
/// others compile on worker threads: every template still gets its own code, its own account
/// of its program and its own warning, whichever way it was built.
#[test]
fn a_pack_partly_precompiled_gets_each_template_its_own_program() {
    const COUNT: usize = 9;
    // The artifact has programs for the even templates, one for template 3 under other Rego,
    // and a damaged one for template 5.
    let covered = PolicySet::build(&numbered_sources(COUNT, |i| {
        if i == 3 { "other Rego:" } else { "template" }
    }))
    .unwrap();
    let mut artifact = Precompiled::new();
    let all = Precompiled::of_templates(covered.templates().map(AsRef::as_ref)).unwrap();
    for entry in all.entries() {
        let i: usize = entry.key.name["k8smany".len()..].parse().unwrap();
        let mut entry = entry.clone();
        if i == 5 {
            entry.program.truncate(entry.program.len() / 2);
        }
        if i.is_multiple_of(2) || i == 3 || i == 5 {
            artifact.insert(entry);
        }
    }
    let read: &'static Precompiled = Box::leak(Box::new(artifact));
    let options = BuildOptions {
        precompiled: Some(read),
        ..BuildOptions::default()
    };
    let (set, warnings) =
        PolicySet::build_warning(&numbered_sources(COUNT, |_| "template"), options).unwrap();

    for i in 0..COUNT {
        let template = set.template(&format!("K8sMany{i}")).unwrap();
        let got = template.precompiled();
        match i {
            5 => assert!(
                matches!(got, PrecompiledUse::Refused(_)),
                "template 5: {got:?}"
            ),
            _ if i.is_multiple_of(2) => assert_eq!(got, &PrecompiledUse::Used, "template {i}"),
            _ => assert_eq!(got, &PrecompiledUse::None, "template {i}"),
        }
    }
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("k8smany5") && warnings[0].contains("precompiled program is not used"),
        "{warnings:?}"
    );
    let mut expected: Vec<String> = (0..COUNT)
        .map(|i| format!("error=false template {i} of web"))
        .collect();
    expected.sort();
    assert_eq!(messages(&set, pod(false)), expected);
}

/// The pack's rules that depend on `input.parameters` alone, as compiling finds them and as the
/// committed artifact (`constraints/programs.rvm`, which `serve` embeds) carries them.
#[test]
fn the_packs_parameter_only_rules_are_found_and_carried_by_its_artifact() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../constraints");
    let mut sources = Sources::default();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.is_dir() {
            sources.add_path(&dir.join("template.yaml")).unwrap();
        }
    }
    let rules_of = |set: &PolicySet| -> Vec<(String, Vec<String>)> {
        let mut out: Vec<_> = set
            .templates()
            .filter_map(|t| t.rvm_program())
            .map(|(name, _, fast)| (name.to_string(), fast.parameter_rules()))
            .collect();
        out.sort();
        out
    };
    let compiled = rules_of(&PolicySet::build(&sources).unwrap());
    // The ones a review of the reference pod would otherwise compute again each time.
    for (template, rule) in [
        ("k8sallowedregistries", "data.k8sallowedregistries._hosts"),
        ("k8sedgeresources", "data.k8sedgeresources._params"),
        (
            "k8simagetagpolicy",
            "data.k8simagetagpolicy._disallowed_tags",
        ),
        (
            "k8srequirednodeselector",
            "data.k8srequirednodeselector._allow_node_affinity",
        ),
    ] {
        assert!(
            compiled
                .iter()
                .any(|(t, rules)| t == template && rules.iter().any(|r| r == rule)),
            "{template}: {rule} not found in {compiled:?}"
        );
    }
    // Everything the runtime-class template derives reads the review.
    assert!(
        compiled
            .iter()
            .any(|(t, rules)| t == "k8srequiredruntimeclass" && rules.is_empty())
    );
    let bytes = std::fs::read(root.join("programs.rvm")).unwrap();
    let read: &'static Precompiled = Box::leak(Box::new(Precompiled::from_bytes(&bytes).unwrap()));
    let options = BuildOptions {
        precompiled: Some(read),
        ..BuildOptions::default()
    };
    let loaded = PolicySet::build_with(&sources, options).unwrap();
    assert!(
        loaded
            .templates()
            .all(|t| t.precompiled() == &PrecompiledUse::Used)
    );
    assert_eq!(rules_of(&loaded), compiled);
}
