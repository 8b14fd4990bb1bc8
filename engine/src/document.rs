//! Reads YAML or JSON streams into documents that remember where they came from.
//!
//! Owns only text → `serde_json::Value`; it knows nothing about Gatekeeper kinds. Documents are
//! split on `---` lines here (not by the parser) so that every document, and every parse error,
//! can be reported with its own number and the line in the original file.

use std::fmt;
use std::path::Path;

use serde_json::Value;

/// Where a document came from: a file (or `-` for stdin) and its 1-based position in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file as the user named it (`-` for standard input, `<embedded>/…` for the pack).
    pub file: String,
    /// 1-based document number within the file.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file, self.document)
    }
}

/// One parsed document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it was read from.
    pub origin: Origin,
    /// Its content.
    pub value: Value,
    /// The YAML text it was parsed from (its first line is `origin.line`), kept so that an
    /// error inside an embedded string (a template's Rego) can point at the file's own line.
    /// `None` for JSON and for items of a `List`.
    pub text: Option<std::sync::Arc<str>>,
}

/// A stream that could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The file could not be read.
    #[error("{file}: failed to read: {error}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error (in the message, not a `source`: the message says it all once).
        error: std::io::Error,
    },
    /// A document is not valid YAML or JSON.
    #[error("{file}: document {document}: line {line}, column {column}: invalid YAML: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based document number.
        document: usize,
        /// 1-based line in the file.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
}

/// Reads a file and parses it as a YAML stream (JSON documents included).
pub fn read_file(path: &Path) -> Result<Vec<Document>, DocumentError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| DocumentError::Read {
        file: file.clone(),
        error,
    })?;
    parse_stream(&file, &text)
}

/// Parses a YAML stream (which may hold JSON documents). Empty documents are skipped, as
/// Kubernetes tools skip them.
pub fn parse_stream(file: &str, text: &str) -> Result<Vec<Document>, DocumentError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(docs) = parse_json_stream(file, text) {
        return Ok(docs);
    }
    let mut out = Vec::new();
    for (index, chunk) in split_documents(text).into_iter().enumerate() {
        let document = index + 1;
        if is_blank(chunk.text) {
            continue;
        }
        let value: Option<Value> = serde_saphyr::from_str_with_options(chunk.text, yaml_options())
            .map_err(|err| {
                let (line, column) = err
                    .location()
                    .map(|loc| (loc.line() as usize, loc.column() as usize))
                    .unwrap_or((1, 1));
                DocumentError::Syntax {
                    file: file.to_string(),
                    document,
                    line: chunk.first_line + line.saturating_sub(1),
                    column,
                    message: first_line_of(&err.to_string()),
                }
            })?;
        match value {
            None | Some(Value::Null) => continue,
            Some(value) => out.push(Document {
                origin: Origin {
                    file: file.to_string(),
                    document,
                    line: chunk.first_line,
                },
                // Only templates embed source worth pointing into; objects (an audit's worth in
                // `eval`) keep no copy of their text.
                text: crate::gatekeeper::ConstraintTemplate::is_template(&value)
                    .then(|| chunk.text.into()),
                value,
            }),
        }
    }
    Ok(out)
}

/// YAML as Kubernetes tools read it for objects: `true`/`false` are booleans, while `y`, `n`,
/// `yes`, `on` … stay strings (gator keeps `labels: {b: y}` a string; a YAML 1.1 reader would
/// turn a quoted-looking plain `yes` into `true` and change what templates see).
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
    }
}

/// JSON streams (one or more concatenated values) are parsed by the JSON parser: YAML rejects
/// some valid JSON (tabs used for indentation).
fn parse_json_stream(file: &str, text: &str) -> Option<Vec<Document>> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    for (index, value) in stream.enumerate() {
        let value = value.ok()?;
        out.push(Document {
            origin: Origin {
                file: file.to_string(),
                document: index + 1,
                line: 1,
            },
            value,
            text: None,
        });
    }
    Some(out)
}

struct Chunk<'a> {
    text: &'a str,
    first_line: usize,
}

/// Splits on document markers (`---` at column 0). A marker line may carry content after it
/// (`--- {a: 1}`), which stays with the following document.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (line_no, line) in (1..).zip(text.split_inclusive('\n')) {
        let body = line.trim_end_matches(['\n', '\r']);
        let is_marker =
            body == "---" || (body.starts_with("---") && body[3..].starts_with([' ', '\t']));
        let is_end = body == "...";
        if is_marker || is_end {
            chunks.push(Chunk {
                text: &text[start..offset],
                first_line: start_line,
            });
            if is_marker {
                // Keep anything after the marker as part of the next document, on its line.
                start = offset + 3;
                start_line = line_no;
            } else {
                start = offset + line.len();
                start_line = line_no + 1;
            }
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        text: &text[start..],
        first_line: start_line,
    });
    chunks
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

/// The parser's message without its own (document-relative) location prefix.
fn first_line_of(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.split_once(": ") {
        Some((loc, rest)) if loc.starts_with("line ") && loc.contains(" column ") => {
            rest.to_string()
        }
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_document_streams_with_lines() {
        let docs = parse_stream(
            "f.yaml",
            "a: 1\n---\n# only a comment\n---\nb: 2\nc: [1, 2]\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].origin.document, 1);
        assert_eq!(docs[1].origin.document, 3);
        assert_eq!(docs[1].origin.line, 4);
        assert_eq!(docs[1].value["c"][1], 2);
    }

    #[test]
    fn syntax_errors_carry_file_document_and_absolute_line() {
        let err = parse_stream("f.yaml", "a: 1\n---\nb: 2\nc: [1, 2\n").unwrap_err();
        let DocumentError::Syntax { document, line, .. } = &err else {
            panic!("unexpected {err}");
        };
        assert_eq!(*document, 2);
        assert!(*line >= 3, "line {line} should be in the second document");
        assert!(err.to_string().starts_with("f.yaml: document 2: line"));
    }

    #[test]
    fn reads_json_and_concatenated_json() {
        let docs = parse_stream("f.json", "{\n\t\"a\": 1\n}\n{\"b\": 2}").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["b"], 2);
    }

    #[test]
    fn only_true_and_false_are_booleans() {
        let docs = parse_stream("f.yaml", "a: y\nb: yes\nc: true\nd: on\n").unwrap();
        assert_eq!(docs[0].value["a"], "y");
        assert_eq!(docs[0].value["b"], "yes");
        assert_eq!(docs[0].value["c"], true);
        assert_eq!(docs[0].value["d"], "on");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(parse_stream("f.yaml", "a: 1\na: 2\n").is_err());
    }
}
