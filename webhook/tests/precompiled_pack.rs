//! The binary's precompiled programs (`constraints/programs.rvm`, embedded by `build.rs`) are
//! the ones this build's compiler writes for the embedded pack, and every pack template runs
//! its program instead of compiling at start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by unwrapping

use tollgate::pack;
use tollgate_engine::PolicySet;
use tollgate_engine::compile::PrecompiledUse;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::precompiled::Precompiled;

#[test]
fn the_embedded_programs_are_current_and_every_pack_template_uses_one() {
    let embedded = pack::read_programs(pack::program_bytes())
        .unwrap()
        .expect("the binary carries the pack's programs: run `tollgate build`");
    let sources = pack::sources().unwrap();
    let fresh = PolicySet::build(&sources).unwrap();
    let written = Precompiled::of_templates(fresh.templates().map(AsRef::as_ref)).unwrap();
    assert_eq!(
        embedded, written,
        "constraints/programs.rvm is stale: run `tollgate build`"
    );
    let loaded = PolicySet::build_with(
        &sources,
        BuildOptions {
            precompiled: pack::precompiled(),
            ..BuildOptions::default()
        },
    )
    .unwrap();
    let uses: Vec<_> = loaded
        .templates()
        .map(|t| (t.kind().to_string(), t.precompiled().clone()))
        .collect();
    assert_eq!(uses.len(), 5);
    assert!(
        uses.iter().all(|(_, u)| *u == PrecompiledUse::Used),
        "{uses:?}"
    );
}
