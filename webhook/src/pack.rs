//! The tracker policy pack compiled into the binary, so `eval` and `serve` work with no flags.

use std::sync::OnceLock;

use tollgate_engine::Sources;
use tollgate_engine::document::DocumentError;
use tollgate_engine::precompiled::{LoadError, Precompiled};

mod files {
    include!(concat!(env!("OUT_DIR"), "/pack.rs"));
}

/// The embedded pack's files, as `(path under constraints/, contents)`.
pub fn files() -> &'static [(&'static str, &'static str)] {
    files::FILES
}

/// The embedded pack as policy sources.
pub fn sources() -> Result<Sources, DocumentError> {
    let mut sources = Sources::default();
    for (path, text) in files() {
        sources.add_text(&format!("<embedded>/constraints/{path}"), text)?;
    }
    Ok(sources)
}

/// The pack's programs compiled ahead of time (`constraints/programs.rvm`, written by `tollgate
/// build`), read once. `None` when the binary carries none or they cannot be used, which is
/// logged once: the templates then compile at start, as they would without the artifact.
pub fn precompiled() -> Option<&'static Precompiled> {
    static PROGRAMS: OnceLock<Option<Precompiled>> = OnceLock::new();
    PROGRAMS
        .get_or_init(|| match read_programs(files::PROGRAMS) {
            Ok(programs) => programs,
            Err(e) => {
                tracing::warn!(
                    "the embedded pack's precompiled programs are not used, so its templates compile at start: {e}"
                );
                None
            }
        })
        .as_ref()
}

/// The artifact in `bytes`; none when there are no bytes.
pub fn read_programs(bytes: &[u8]) -> Result<Option<Precompiled>, LoadError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    Precompiled::from_bytes(bytes).map(Some)
}

/// The embedded artifact's bytes, as built in.
pub fn program_bytes() -> &'static [u8] {
    files::PROGRAMS
}
