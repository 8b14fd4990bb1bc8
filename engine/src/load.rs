//! Reads policy sources (files, directories, in-memory text) into classified documents.
//!
//! Owns discovery and classification only: templates, constraints and ExpansionTemplates are
//! kept, everything else is returned as plain objects (what `eval` reviews). No compiling here.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::document::{self, Document, DocumentError};
use crate::gatekeeper::{Constraint, ConstraintTemplate, ExpansionTemplate};

/// Documents sorted by what they are.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// ConstraintTemplates.
    pub templates: Vec<Document>,
    /// Constraints.
    pub constraints: Vec<Document>,
    /// ExpansionTemplates.
    pub expansions: Vec<Document>,
    /// Everything else (workloads, namespaces, ...), in input order.
    pub objects: Vec<Document>,
}

impl Sources {
    /// Adds documents, classifying each; `kind: List` documents contribute their items.
    pub fn add(&mut self, docs: Vec<Document>) {
        for doc in docs {
            if doc.value.get("kind").and_then(Value::as_str) == Some("List")
                && let Some(items) = doc.value.get("items").and_then(Value::as_array)
            {
                let items = items
                    .iter()
                    .map(|item| Document {
                        origin: doc.origin.clone(),
                        value: item.clone(),
                        text: None,
                    })
                    .collect();
                self.add(items);
                continue;
            }
            if ConstraintTemplate::is_template(&doc.value) {
                self.templates.push(doc);
            } else if Constraint::is_constraint(&doc.value) {
                self.constraints.push(doc);
            } else if ExpansionTemplate::is_expansion(&doc.value) {
                self.expansions.push(doc);
            } else {
                self.objects.push(doc);
            }
        }
    }

    /// Parses text and adds its documents.
    pub fn add_text(&mut self, file: &str, text: &str) -> Result<(), DocumentError> {
        self.add(document::parse_stream(file, text)?);
        Ok(())
    }

    /// Reads a file, or every `.yaml`, `.yml` and `.json` file under a directory (recursively,
    /// sorted, hidden entries such as ConfigMap `..data` links skipped).
    pub fn add_path(&mut self, path: &Path) -> Result<(), DocumentError> {
        for file in policy_files(path)? {
            self.add(document::read_file(&file)?);
        }
        Ok(())
    }

    /// Reads several paths.
    pub fn from_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Self, DocumentError> {
        let mut sources = Sources::default();
        for p in paths {
            sources.add_path(p.as_ref())?;
        }
        Ok(sources)
    }
}

/// Lists the policy files a path names.
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, DocumentError> {
    let read_err = |error| DocumentError::Read {
        file: path.display().to_string(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|error| DocumentError::Read {
            file: dir.display().to_string(),
            error,
        })?;
        for entry in entries {
            let entry = entry.map_err(|error| DocumentError::Read {
                file: dir.display().to_string(),
                error,
            })?;
            let p = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if has_policy_extension(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn has_policy_extension(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}
