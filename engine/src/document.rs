//! Reads YAML or JSON streams into documents that remember where they came from.
//!
//! Owns only text → `serde_json::Value`; it knows nothing about Gatekeeper kinds. Documents are
//! split on `---` lines here (not by the parser) so that every document, and every parse error,
//! can be reported with its own number and the line in the original file.

use std::fmt;
use std::io::BufRead;
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
    // The documents are slices of the text between markers: each is copied once, not line by
    // line as the streamed reader must ([`Splitter`] gives the same documents).
    let mut out = Vec::new();
    let mut done = 0;
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (number, line) in lines_inclusive(text).enumerate() {
        let at = offset;
        offset += line.len();
        let Some(marker) = marker(line) else {
            continue;
        };
        done += 1;
        let doc = RawDocument {
            document: done,
            first_line,
            text: text[start..at].to_string(),
        };
        out.extend(doc.parse(file)?);
        (start, first_line) = match marker {
            Marker::Start => (at + 3, number + 1),
            Marker::End => (offset, number + 2),
        };
    }
    let last = RawDocument {
        document: done + 1,
        first_line,
        text: text[start..].to_string(),
    };
    out.extend(last.parse(file)?);
    Ok(out)
}

/// `text.split_inclusive('\n')`, with the line breaks found by vector code: a template's few
/// thousand short lines made core's per-line search a third of reading the pack.
pub(crate) fn lines_inclusive(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let rest = text.get(start..).filter(|rest| !rest.is_empty())?;
        let len = find_newline(rest.as_bytes()).map_or(rest.len(), |i| i + 1);
        start += len;
        // '\n' is ASCII: the line ends on a character boundary.
        rest.get(..len)
    })
}

/// memchr's SSE2 searcher where every x86-64 CPU has it, its portable one elsewhere; not its
/// default, which asks the CPU for its vector features on first use: a few CPUID instructions,
/// about 7 µs each in a virtual machine, at every start.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(sse2) = memchr::arch::x86_64::sse2::memchr::One::new(b'\n') {
        return sse2.find(bytes);
    }
    memchr::arch::all::memchr::One::new(b'\n').find(bytes)
}

/// A line that ends a document: `---` (a new one starts, with what follows the marker on its
/// line) or `...` (the next one starts on the next line).
enum Marker {
    Start,
    End,
}

fn marker(line: &str) -> Option<Marker> {
    let body = line.trim_end_matches(['\n', '\r']);
    if body == "---" || (body.starts_with("---") && body[3..].starts_with([' ', '\t'])) {
        Some(Marker::Start)
    } else if body == "..." {
        Some(Marker::End)
    } else {
        None
    }
}

/// One document of a YAML stream, split off but not parsed: [`Self::parse`] gives what
/// [`parse_stream`] gives for it, wherever (on whichever thread) it runs.
#[derive(Debug, Clone)]
pub struct RawDocument {
    /// 1-based document number within the stream.
    pub document: usize,
    /// 1-based line where the document starts.
    pub first_line: usize,
    /// The document's text.
    pub text: String,
}

impl RawDocument {
    /// Parses the document; `None` for an empty one (blank, comments only, or `null`).
    pub fn parse(&self, file: &str) -> Result<Option<Document>, DocumentError> {
        if is_blank(&self.text) {
            return Ok(None);
        }
        let value = match crate::block_yaml::parse(&self.text) {
            Some(value) => Some(value),
            None => self.parse_fully(file)?,
        };
        Ok(match value {
            None | Some(Value::Null) => None,
            Some(value) => Some(Document {
                origin: Origin {
                    file: file.to_string(),
                    document: self.document,
                    line: self.first_line,
                },
                // Only templates embed source worth pointing into; objects (an audit's worth in
                // `eval`) keep no copy of their text.
                text: crate::gatekeeper::ConstraintTemplate::is_template(&value)
                    .then(|| self.text.as_str().into()),
                value,
            }),
        })
    }

    /// The full parser's reading, errors placed in the file.
    fn parse_fully(&self, file: &str) -> Result<Option<Value>, DocumentError> {
        parse_yaml_fully(&self.text).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|loc| (loc.line() as usize, loc.column() as usize))
                .unwrap_or((1, 1));
            DocumentError::Syntax {
                file: file.to_string(),
                document: self.document,
                line: self.first_line + line.saturating_sub(1),
                column,
                message: first_line_of(&err.to_string()),
            }
        })
    }
}

/// A part of a stream read by [`Stream`], not parsed yet.
#[derive(Debug, Clone)]
pub enum Unparsed {
    /// One document of a YAML stream.
    Yaml(RawDocument),
    /// A whole stream that starts like JSON: it is parsed at once, since one value that is not
    /// JSON makes the whole stream YAML ([`parse_stream`]'s rule).
    Whole(String),
}

impl Unparsed {
    /// The text, for a look before parsing.
    pub fn text(&self) -> &str {
        match self {
            Unparsed::Yaml(raw) => &raw.text,
            Unparsed::Whole(text) => text,
        }
    }

    /// Its documents, exactly as [`parse_stream`] reads them.
    pub fn parse(&self, file: &str) -> Result<Vec<Document>, DocumentError> {
        match self {
            Unparsed::Yaml(raw) => Ok(raw.parse(file)?.into_iter().collect()),
            Unparsed::Whole(text) => parse_stream(file, text),
        }
    }
}

/// A YAML stream read one document at a time, so that a large file is never held whole: the
/// same documents, numbers and lines as [`parse_stream`] on its whole text. A stream that
/// starts like JSON is read whole ([`Unparsed::Whole`]). Blank documents are skipped.
pub struct Stream<R> {
    file: String,
    reader: R,
    /// Lines read to tell YAML from JSON, handed out before more is read.
    head: std::io::Cursor<Vec<u8>>,
    state: StreamState,
}

enum StreamState {
    Start,
    Yaml(Splitter),
    Done,
}

/// Reads `reader` (named `file` in documents and errors) as [`Stream`].
pub fn stream<R: BufRead>(file: &str, reader: R) -> Stream<R> {
    Stream {
        file: file.to_string(),
        reader,
        head: std::io::Cursor::default(),
        state: StreamState::Start,
    }
}

impl<R: BufRead> Stream<R> {
    /// The name documents and errors carry.
    pub fn file(&self) -> &str {
        &self.file
    }

    fn read_error(&self, error: std::io::Error) -> DocumentError {
        DocumentError::Read {
            file: self.file.clone(),
            error,
        }
    }

    /// Reads up to the first line with something other than white space, to tell JSON (read
    /// whole) from YAML (split as it is read).
    fn start(&mut self) -> Result<Option<Unparsed>, DocumentError> {
        let mut head = String::new();
        loop {
            let n = self
                .reader
                .read_line(&mut head)
                .map_err(|e| self.read_error(e))?;
            let text = head.strip_prefix('\u{feff}').unwrap_or(&head);
            if n == 0 || !text.trim_start().is_empty() {
                break;
            }
        }
        let text = head.strip_prefix('\u{feff}').unwrap_or(&head);
        if text.trim_start().starts_with(['{', '[']) {
            self.reader
                .read_to_string(&mut head)
                .map_err(|e| self.read_error(e))?;
            self.state = StreamState::Done;
            return Ok(Some(Unparsed::Whole(head)));
        }
        let text = text.to_string();
        self.head = std::io::Cursor::new(text.into_bytes());
        self.state = StreamState::Yaml(Splitter::default());
        Ok(None)
    }

    fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        // The head holds whole lines only, so no line spans it and the reader.
        match self.head.read_line(line)? {
            0 => self.reader.read_line(line),
            n => Ok(n),
        }
    }

    fn next_yaml(&mut self) -> Result<Option<RawDocument>, DocumentError> {
        let mut line = String::new();
        while matches!(self.state, StreamState::Yaml(_)) {
            line.clear();
            let n = self.read_line(&mut line).map_err(|e| self.read_error(e))?;
            let StreamState::Yaml(splitter) = &mut self.state else {
                break;
            };
            let doc = if n == 0 {
                let last = std::mem::take(splitter).finish();
                self.state = StreamState::Done;
                last
            } else {
                match splitter.push(&line) {
                    Some(doc) => doc,
                    None => continue,
                }
            };
            if !is_blank(&doc.text) {
                return Ok(Some(doc));
            }
        }
        Ok(None)
    }
}

impl<R: BufRead> Iterator for Stream<R> {
    type Item = Result<Unparsed, DocumentError>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = (|| {
            if matches!(self.state, StreamState::Start)
                && let Some(whole) = self.start()?
            {
                return Ok(Some(whole));
            }
            Ok(self.next_yaml()?.map(Unparsed::Yaml))
        })();
        match result {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.state = StreamState::Done;
                Some(Err(e))
            }
        }
    }
}

/// A document's value as the full YAML parser reads it, without the [`crate::block_yaml`]
/// shortcut: the reading that shortcut must agree with wherever it answers.
pub fn parse_yaml_fully(text: &str) -> Result<Option<Value>, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, yaml_options())
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

/// Splits a YAML stream into documents, line by line, on document markers (`---` at column 0).
/// A marker line may carry content after it (`--- {a: 1}`), which stays with the following
/// document. Every document is numbered, blank ones included.
#[derive(Debug)]
struct Splitter {
    text: String,
    /// 1-based line where `text` starts.
    first_line: usize,
    /// Lines pushed so far.
    lines: usize,
    /// Documents finished so far.
    done: usize,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter {
            text: String::new(),
            first_line: 1,
            lines: 0,
            done: 0,
        }
    }
}

impl Splitter {
    /// Takes the next line (with its line break, if any); returns the document a marker on it
    /// ends.
    fn push(&mut self, line: &str) -> Option<RawDocument> {
        self.lines += 1;
        let Some(marker) = marker(line) else {
            self.text.push_str(line);
            return None;
        };
        let done = self.take();
        match marker {
            Marker::Start => {
                // Keep anything after the marker as part of the next document, on its line.
                self.text.push_str(&line[3..]);
                self.first_line = self.lines;
            }
            Marker::End => self.first_line = self.lines + 1,
        }
        Some(done)
    }

    /// The last document, after the last line.
    fn finish(mut self) -> RawDocument {
        self.take()
    }

    fn take(&mut self) -> RawDocument {
        self.done += 1;
        RawDocument {
            document: self.done,
            first_line: self.first_line,
            text: std::mem::take(&mut self.text),
        }
    }
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

    /// What a stream read document by document gives, in `parse_stream`'s terms.
    fn streamed(text: &str) -> Result<Vec<Document>, DocumentError> {
        let mut out = Vec::new();
        // A tiny buffer, so that lines are read in several pieces.
        let reader = std::io::BufReader::with_capacity(3, text.as_bytes());
        for unparsed in stream("f.yaml", reader) {
            out.extend(unparsed?.parse("f.yaml")?);
        }
        Ok(out)
    }

    #[test]
    fn a_stream_read_document_by_document_gives_what_the_whole_text_gives() {
        let texts = [
            "",
            "\n  \n",
            "a: 1\n",
            "---\na: 1\n---\nb: 2\n",
            "\u{feff}---\r\na: 1\r\n---\r\nb: 2",
            "\u{feff}\u{feff}a: 1\n",
            "a: 1\n---\n# only a comment\n---\nb: 2\nc: [1, 2]\n",
            "--- {a: 1}\n--- [2]\n...\n# end\n...\nc: 3\n---\t|\n  text\n",
            "---\nnull\n---\n~\n---\napiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\n",
            "\n\n  {\"a\": 1}\n{\"b\": [2]}",
            "[1, 2]\n---\nb: 2\n",
            "{a: 1}\n",
            "a: 1\n---\nb: [1, 2\n",
            "a: 1\na: 2\n",
            "----\n--- x\n---x\n",
            "a: 1\n...\r\nb: 2\n...",
            "...\n---",
            "a: 1\n---",
            "a: 1\n--- b: 2\n\n\n---\n\n",
        ];
        let view = |docs: Result<Vec<Document>, DocumentError>| match docs {
            Ok(docs) => Ok(docs
                .into_iter()
                .map(|d| (d.origin, d.value, d.text.map(|t| t.to_string())))
                .collect::<Vec<_>>()),
            Err(e) => Err(e.to_string()),
        };
        for text in texts {
            assert_eq!(
                view(streamed(text)),
                view(parse_stream("f.yaml", text)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn lines_are_split_as_split_inclusive_splits_them() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\nb",
            "\n\na\r\n",
            "é\nü\n\nx",
            "a\n\n",
        ] {
            assert_eq!(
                lines_inclusive(text).collect::<Vec<_>>(),
                text.split_inclusive('\n').collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_yaml_stream_is_handed_out_one_document_at_a_time() {
        let parts: Vec<Unparsed> = stream("f.yaml", "a: 1\n---\n\n---\nb: 2\n".as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parts.len(), 2);
        // The rest of the marker line (its line break) starts the document, on the marker's line.
        assert_eq!(parts[1].text(), "\nb: 2\n");
        let Unparsed::Yaml(raw) = &parts[1] else {
            panic!("YAML expected");
        };
        assert_eq!((raw.document, raw.first_line), (3, 4));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(parse_stream("f.yaml", "a: 1\na: 2\n").is_err());
    }
}
