//! Fixture-driven load and compile errors: each file in `fixtures/load/` says in `# expect-error:`
//! lines what the error must contain, in `# expect-warning:` lines what a warning of a
//! successful build must contain (or `# expect: ok`; JSON files must load).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::path::Path;

use tollgate_engine::{PolicySet, Sources};

#[test]
fn every_load_fixture_gives_its_expected_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/load");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the load fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect-error: "))
            .collect();
        let expected_warnings: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect-warning: "))
            .collect();
        let mut warnings = Vec::new();
        let outcome = Sources::from_paths(&[file])
            .map_err(|e| e.to_string())
            .and_then(|s| {
                PolicySet::build_warning(&s, Default::default())
                    .map(|(_, w)| warnings = w)
                    .map_err(|e| e.to_string())
            });
        let name = file.file_name().unwrap().to_string_lossy();
        for want in &expected_warnings {
            if !warnings.iter().any(|w| w.contains(want)) {
                failures.push(format!("{name}: no warning with {want:?}: {warnings:?}"));
            }
        }
        if expected_warnings.is_empty() && !warnings.is_empty() {
            failures.push(format!("{name}: unexpected warnings {warnings:?}"));
        }
        match (&outcome, expected.is_empty()) {
            (Ok(()), true) => {}
            (Ok(()), false) => failures.push(format!("{name}: loaded, expected an error")),
            (Err(e), true) => failures.push(format!("{name}: unexpected error: {e}")),
            (Err(e), false) => {
                if !e.starts_with(&file.display().to_string()) {
                    failures.push(format!("{name}: error does not start with the file: {e}"));
                }
                for want in &expected {
                    if !e.contains(want) {
                        failures.push(format!("{name}: error lacks {want:?}:\n{e}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_errors_of_a_set_are_reported_together() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/load");
    let sources = Sources::from_paths(&[
        dir.join("missing_violation_rule.yaml"),
        dir.join("disallowed_data_ref.yaml"),
    ])
    .unwrap();
    let errors = PolicySet::build(&sources).unwrap_err();
    assert_eq!(errors.0.len(), 2, "{errors}");
}
