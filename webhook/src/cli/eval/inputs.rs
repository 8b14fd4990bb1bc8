//! What `eval` reads: the files `-f` names, expanded as kubectl expands them, and the subjects
//! to review among their documents, each checked to be a Kubernetes object or an
//! AdmissionReview before it is evaluated. Inputs can be read more than once (what can be read
//! only once, standard input or a pipe, is read first and kept), whole or one document at a
//! time.
//!
//! Owns listing, reading and checking. Where an object without a namespace is placed is
//! [`super::scope`]'s; reviewing is `tollgate_engine::evaluate::review`'s alone.

use std::io::{BufRead, Read as _};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tollgate_engine::document::{self, Document, DocumentError, Origin};
use tollgate_engine::gatekeeper::{fields_type_name as type_name, object_name, object_namespace};
use tollgate_engine::review::is_admission_review;
use tollgate_engine::{Review, Source};

use super::scope::Placement;

/// One place `-f` reads from.
#[derive(Debug)]
pub enum Input {
    /// Standard input (`-f -`).
    Stdin,
    /// A file.
    File(PathBuf),
    /// An input that can be read only once, read by [`keep_unrepeatable`].
    Kept {
        /// Its name in documents and errors (`-` for standard input).
        name: String,
        /// Its text, or the error reading it (kind and message: `std::io::Error` is not
        /// `Clone`).
        text: Result<String, (std::io::ErrorKind, String)>,
    },
}

/// The inputs `-f` names, in the order they are read.
#[derive(Debug, Default)]
pub struct Listing {
    /// Files (and standard input) to read.
    pub inputs: Vec<Input>,
    /// Subdirectories left unread because `-R` was not given, for the hint when nothing was
    /// read.
    pub unread_directories: Vec<PathBuf>,
}

/// A document `eval` cannot review.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file or directory could not be read, or a document is not YAML or JSON.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A document is neither a Kubernetes object nor an AdmissionReview.
    #[error("{origin}: not a Kubernetes object: {}", located(.field, .problem))]
    NotAnObject {
        /// Where the document is.
        origin: Origin,
        /// The field at fault, empty for the document itself.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An AdmissionReview without a request that can be reviewed.
    #[error("{origin}: invalid AdmissionReview: {}", located(.field, .problem))]
    InvalidReview {
        /// Where the document is.
        origin: Origin,
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An object names another namespace than an explicit `--namespace` (kubectl refuses it).
    #[error(
        "{origin}: the namespace from the provided object {found:?} does not match the namespace {given:?}: pass --namespace={found} to review it"
    )]
    NamespaceMismatch {
        /// Where the document is.
        origin: Origin,
        /// `metadata.namespace` of the object.
        found: String,
        /// `--namespace`.
        given: String,
    },
}

fn located(field: &str, problem: &str) -> String {
    if field.is_empty() {
        problem.to_string()
    } else {
        format!("{field}: {problem}")
    }
}

/// Lists what `-f` names, as kubectl does: `-` is standard input; a file is read whatever its
/// extension; a directory contributes its `.json`, `.yaml` and `.yml` files in name order, and
/// its subdirectories' only with `recursive` (`-R`), depth first.
pub fn list(args: &[String], recursive: bool) -> Result<Listing, DocumentError> {
    let mut listing = Listing::default();
    for arg in args {
        if arg == "-" {
            listing.inputs.push(Input::Stdin);
            continue;
        }
        let path = Path::new(arg);
        let meta = std::fs::metadata(path).map_err(|error| DocumentError::Read {
            file: arg.clone(),
            error,
        })?;
        if meta.is_dir() {
            walk(path, recursive, &mut listing)?;
        } else {
            listing.inputs.push(Input::File(path.to_path_buf()));
        }
    }
    Ok(listing)
}

fn walk(dir: &Path, recursive: bool, listing: &mut Listing) -> Result<(), DocumentError> {
    let read_err = |error| DocumentError::Read {
        file: dir.display().to_string(),
        error,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // Like kubectl's walk, a link to a directory is not followed.
        if entry.file_type().map_err(read_err)?.is_dir() {
            if recursive {
                walk(&path, recursive, listing)?;
            } else {
                listing.unread_directories.push(path);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml" | "yml")
        ) {
            listing.inputs.push(Input::File(path));
        }
    }
    Ok(())
}

/// Reads what can be read only once and keeps it, so that the inputs can be read again:
/// standard input (a repeated `-` reads nothing, as it always did) and whatever is not a
/// regular file (a pipe, such as `-f <(kubectl get pods -o yaml)`).
pub fn keep_unrepeatable(inputs: &mut [Input]) {
    let mut stdin_read = false;
    for input in inputs.iter_mut() {
        let (name, text) = match input {
            Input::Stdin if stdin_read => ("-".to_string(), Ok(String::new())),
            Input::Stdin => {
                stdin_read = true;
                let mut text = String::new();
                let read = std::io::stdin().read_to_string(&mut text).map(|_| text);
                ("-".to_string(), read)
            }
            Input::File(path) if std::fs::metadata(&*path).is_ok_and(|m| !m.is_file()) => {
                (path.display().to_string(), std::fs::read_to_string(&*path))
            }
            Input::File(_) | Input::Kept { .. } => continue,
        };
        let text = text.map_err(|e| (e.kind(), e.to_string()));
        *input = Input::Kept { name, text };
    }
}

/// The text of a kept input.
fn kept<'a>(
    name: &str,
    text: &'a Result<String, (std::io::ErrorKind, String)>,
) -> Result<&'a str, DocumentError> {
    text.as_deref()
        .map_err(|(kind, message)| DocumentError::Read {
            file: name.to_string(),
            error: std::io::Error::new(*kind, message.clone()),
        })
}

/// Reads and parses one input.
pub fn read(input: &Input) -> Result<Vec<Document>, DocumentError> {
    match input {
        Input::Stdin => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| DocumentError::Read {
                    file: "-".into(),
                    error,
                })?;
            document::parse_stream("-", &text)
        }
        Input::File(path) => document::read_file(path),
        Input::Kept { name, text } => document::parse_stream(name, kept(name, text)?),
    }
}

/// A reader of an input, for [`document::stream`].
pub type Reader<'a> = Box<dyn BufRead + Send + 'a>;

/// Opens one input to be read a document at a time.
pub fn stream(input: &Input) -> Result<document::Stream<Reader<'_>>, DocumentError> {
    let (name, reader) = open(input)?;
    Ok(document::stream(&name, reader))
}

/// Opens one input to be read as bytes, as they are, with the name its documents and errors
/// carry (standard input is read once: keep it first, [`keep_unrepeatable`]).
pub fn open(input: &Input) -> Result<(String, Reader<'_>), DocumentError> {
    match input {
        Input::Stdin => Ok((
            "-".to_string(),
            Box::new(std::io::BufReader::new(std::io::stdin())),
        )),
        Input::File(path) => {
            let file = path.display().to_string();
            let reader = std::fs::File::open(path).map_err(|error| DocumentError::Read {
                file: file.clone(),
                error,
            })?;
            Ok((file, Box::new(std::io::BufReader::new(reader))))
        }
        Input::Kept { name, text } => Ok((name.clone(), Box::new(kept(name, text)?.as_bytes()))),
    }
}

/// One thing to review.
#[derive(Debug)]
pub enum Subject {
    /// An object, reviewed as `gator test` reviews it, and synced into the inventory.
    Object(Document),
    /// The request of an AdmissionReview, reviewed as the webhook reviews it.
    Request {
        /// Where the AdmissionReview is.
        origin: Origin,
        /// Its request.
        review: Review,
    },
}

impl Subject {
    /// Checks a document and makes it a subject: an AdmissionReview becomes its request, an
    /// object is placed in its namespace.
    pub fn of(doc: Document, placement: &Placement) -> Result<Subject, InputError> {
        if is_admission_review(&doc.value) {
            return request_of(doc);
        }
        if let Err((field, problem)) = check_object(&doc.value, "") {
            return Err(InputError::NotAnObject {
                origin: doc.origin,
                field,
                problem,
            });
        }
        let mut doc = doc;
        placement.place(&mut doc)?;
        Ok(Subject::Object(doc))
    }

    /// Where it was read.
    pub fn origin(&self) -> &Origin {
        match self {
            Subject::Object(doc) => &doc.origin,
            Subject::Request { origin, .. } => origin,
        }
    }

    /// The object a report names: the request's `object`, or its `oldObject` for a DELETE.
    pub fn object(&self) -> &Value {
        match self {
            Subject::Object(doc) => &doc.value,
            // `Review::of_request` refuses a request with neither.
            Subject::Request { review, .. } => review
                .object()
                .or(review.old_object())
                .unwrap_or(&Value::Null),
        }
    }

    /// The namespace a report names.
    pub fn namespace(&self) -> &str {
        match self {
            Subject::Object(doc) => object_namespace(&doc.value),
            Subject::Request { review, .. } => review.namespace_name(),
        }
    }

    /// The name a report names: the object's, else the request's.
    pub fn name(&self) -> &str {
        match self {
            Subject::Object(doc) => object_name(&doc.value),
            Subject::Request { review, .. } => match object_name(self.object()) {
                "" => review
                    .request
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                name => name,
            },
        }
    }

    /// What the engine reviews: the object's review (`Review::of_object` takes the object,
    /// uncopied), or the request.
    pub fn into_review(self) -> Review {
        match self {
            Subject::Object(doc) => Review::of_object(doc.value, Source::Original),
            Subject::Request { review, .. } => review,
        }
    }

    /// The request's operation; `None` for an object.
    pub fn operation(&self) -> Option<&str> {
        match self {
            Subject::Object(_) => None,
            Subject::Request { review, .. } => Some(
                review
                    .request
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            ),
        }
    }
}

/// The request of an AdmissionReview, through the engine's one way of reading requests.
fn request_of(doc: Document) -> Result<Subject, InputError> {
    let Document {
        origin, mut value, ..
    } = doc;
    let invalid = |origin: Origin, field: &str, problem: String| InputError::InvalidReview {
        origin,
        field: field.to_string(),
        problem,
    };
    let request = match value.get_mut("request").map(Value::take) {
        None | Some(Value::Null) => {
            return Err(invalid(
                origin,
                "request",
                "missing: nothing to review".into(),
            ));
        }
        Some(request @ Value::Object(_)) => request,
        Some(other) => {
            let problem = format!("expected a mapping, got {}", type_name(&other));
            return Err(invalid(origin, "request", problem));
        }
    };
    for field in ["object", "oldObject"] {
        if let Some(object) = request.get(field).filter(|o| !o.is_null())
            && let Err((at, problem)) = check_object(object, &format!("request.{field}"))
        {
            return Err(invalid(origin, &at, problem));
        }
    }
    match Review::of_request(request) {
        Ok(review) => Ok(Subject::Request { origin, review }),
        Err(e) => Err(invalid(origin, "request", e.to_string())),
    }
}

/// What a Kubernetes object needs for `eval` to review it: a mapping with string `apiVersion`
/// and `kind`, and a well-formed `metadata` when there is one. `Err` is (field, problem).
fn check_object(value: &Value, at: &str) -> Result<(), (String, String)> {
    let path = |field: &str| {
        if at.is_empty() {
            field.to_string()
        } else {
            format!("{at}.{field}")
        }
    };
    let Value::Object(map) = value else {
        return Err((
            at.to_string(),
            format!(
                "expected a mapping with apiVersion and kind, got {}",
                article(type_name(value))
            ),
        ));
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            None | Some(Value::Null) => return Err((path(field), "missing".into())),
            Some(Value::String(s)) if s.is_empty() => {
                return Err((path(field), "empty".into()));
            }
            Some(Value::String(_)) => {}
            Some(other) => {
                return Err((
                    path(field),
                    format!("expected a string, got {}", type_name(other)),
                ));
            }
        }
    }
    match map.get("metadata") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(metadata)) => check_metadata(metadata, &path("metadata")),
        Some(other) => Err((
            path("metadata"),
            format!("expected a mapping, got {}", type_name(other)),
        )),
    }
}

fn check_metadata(metadata: &Map<String, Value>, at: &str) -> Result<(), (String, String)> {
    for field in ["name", "namespace", "generateName"] {
        if let Some(v) = metadata
            .get(field)
            .filter(|v| !v.is_null() && !v.is_string())
        {
            return Err((
                format!("{at}.{field}"),
                format!("expected a string, got {}", type_name(v)),
            ));
        }
    }
    for field in ["labels", "annotations"] {
        match metadata.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                if let Some((key, v)) = entries.iter().find(|(_, v)| !v.is_string()) {
                    return Err((
                        format!("{at}.{field}.{key}"),
                        format!("expected a string, got {}", type_name(v)),
                    ));
                }
            }
            Some(other) => {
                return Err((
                    format!("{at}.{field}"),
                    format!("expected a mapping, got {}", type_name(other)),
                ));
            }
        }
    }
    Ok(())
}

fn article(type_name: &str) -> String {
    match type_name {
        "array" | "object" | "integer" => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_need_string_api_version_and_kind_and_well_formed_metadata() {
        let problem = |v: Value| check_object(&v, "").err();
        assert_eq!(problem(json!({"apiVersion": "v1", "kind": "Pod"})), None);
        assert_eq!(
            problem(json!({"kind": "Pod"})),
            Some(("apiVersion".into(), "missing".into()))
        );
        assert_eq!(
            problem(json!({"apiVersion": "v1", "kind": 3})),
            Some(("kind".into(), "expected a string, got integer".into()))
        );
        assert_eq!(
            problem(json!(["a"])),
            Some((
                String::new(),
                "expected a mapping with apiVersion and kind, got an array".into()
            ))
        );
        assert_eq!(
            problem(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": 1}}})),
            Some((
                "metadata.labels.a".into(),
                "expected a string, got integer".into()
            ))
        );
        assert_eq!(
            check_object(&json!({"apiVersion": "v1"}), "request.object").err(),
            Some(("request.object.kind".into(), "missing".into()))
        );
    }
}
