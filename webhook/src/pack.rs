//! The tracker policy pack compiled into the binary, so `eval` and `serve` work with no flags.

use tollgate_engine::Sources;
use tollgate_engine::document::DocumentError;

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
