//! `build`: generates each `constraints/<p>/template.yaml` from `policies/<p>/src.rego`.
//!
//! Owns the template's canonical text. The metadata (title, description, `custom.kind`,
//! `custom.version`, `custom.parameters` = the `openAPIV3Schema`) is read from the `# METADATA`
//! annotation block of `src.rego`, which `opa test` parses as an annotation and never loads as
//! data. The YAML is written by hand so that it is deterministic and readable: block style, keys
//! in source order, strings plain when YAML reads them back as the same string (quoted
//! otherwise), and the Rego verbatim as a `|` literal block. It writes no files: callers decide
//! whether to write or to compare ([`unified_diff`]).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::document::{self, DocumentError};

/// Where generated templates say they come from, and the target they declare.
const TARGET: &str = "admission.k8s.gatekeeper.sh";

/// A build failure, with the file (and line) it is about.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A directory or file could not be read.
    #[error("failed to read {path}: {error}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error (in the message, not a `source`: the message says it all once).
        error: std::io::Error,
    },
    /// The `# METADATA` block is missing, is not valid YAML, or lacks what a template needs.
    #[error("{path}:{line}: {message}")]
    Metadata {
        /// The Rego file.
        path: String,
        /// 1-based line in it.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The Rego does not parse as Rego v1 (regorus's message, with its `--> file:line:col`
    /// snippet).
    #[error("failed to parse {path} as Rego v1: {message}")]
    Rego {
        /// The Rego file.
        path: String,
        /// regorus's message.
        message: String,
    },
}

/// The template metadata read from a `# METADATA` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// `title` → `metadata.gatekeeper.sh/title`.
    pub title: Option<String>,
    /// `description` → the `description` annotation.
    pub description: Option<String>,
    /// `custom.kind` → the constraint kind; its lowercase form is the template name.
    pub kind: String,
    /// `custom.version` → `metadata.gatekeeper.sh/version`.
    pub version: Option<String>,
    /// `custom.parameters` → `spec.crd.spec.validation.openAPIV3Schema`.
    pub parameters: Option<Value>,
}

/// One generated template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The policy directory name (`<p>`).
    pub policy: String,
    /// `policies/<p>/src.rego`.
    pub source: PathBuf,
    /// `<out>/<p>/template.yaml`.
    pub target: PathBuf,
    /// The YAML text.
    pub content: String,
}

// === metadata ===

/// The `# METADATA` block: its 1-based line and the comment lines after it (without `#`), each
/// with its own line number.
fn metadata_block(src: &str) -> Option<(usize, Vec<(usize, &str)>)> {
    let lines: Vec<&str> = src.lines().collect();
    let start = lines.iter().position(|l| {
        l.trim_start()
            .strip_prefix('#')
            .is_some_and(|rest| rest.trim() == "METADATA")
    })?;
    let mut body = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            break;
        };
        body.push((i + 1, rest.strip_prefix(' ').unwrap_or(rest)));
    }
    Some((start + 1, body))
}

/// Reads the template metadata from the `# METADATA` block of `src` (`path` names it in errors).
pub fn parse_metadata(path: &str, src: &str) -> Result<Metadata, BuildError> {
    let err = |line: usize, message: String| BuildError::Metadata {
        path: path.to_string(),
        line,
        message,
    };
    let (start, body) = metadata_block(src).ok_or_else(|| {
        err(
            1,
            "no `# METADATA` block: tollgate build needs one with custom.kind".to_string(),
        )
    })?;
    let yaml: String = body.iter().map(|(_, l)| format!("{l}\n")).collect();
    let line_of = |yaml_line: usize| {
        body.get(yaml_line.saturating_sub(1))
            .map_or(start, |(n, _)| *n)
    };
    let docs = document::parse_stream(path, &yaml).map_err(|e| match e {
        DocumentError::Syntax { line, message, .. } => {
            err(line_of(line), format!("invalid METADATA: {message}"))
        }
        other => err(start, format!("invalid METADATA: {other}")),
    })?;
    let value = docs
        .into_iter()
        .next()
        .map(|d| d.value)
        .unwrap_or(Value::Null);
    let Value::Object(map) = value else {
        return Err(err(start, "METADATA must be a YAML mapping".to_string()));
    };
    // The line of `key:` inside the block, for errors about its value.
    let key_line = |key: &str| {
        body.iter()
            .find(|(_, l)| l.trim_start().starts_with(&format!("{key}:")))
            .map_or(start, |(n, _)| *n)
    };
    let string = |key: &str, v: Option<&Value>| -> Result<Option<String>, BuildError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(err(
                key_line(key),
                format!("METADATA {key} must be a string, found {other}"),
            )),
        }
    };
    let title = string("title", map.get("title"))?;
    let description = string("description", map.get("description"))?;
    let custom = match map.get("custom") {
        Some(Value::Object(c)) => c.clone(),
        Some(_) => {
            return Err(err(
                key_line("custom"),
                "METADATA custom must be a mapping".to_string(),
            ));
        }
        None => {
            return Err(err(
                start,
                "METADATA has no custom.kind (the constraint kind this template defines)"
                    .to_string(),
            ));
        }
    };
    let kind = match custom.get("kind") {
        Some(Value::String(k)) if is_kind(k) => k.clone(),
        Some(other) => {
            return Err(err(
                key_line("kind"),
                format!(
                    "METADATA custom.kind must be a kind name such as K8sRequiredLabels, found {other}"
                ),
            ));
        }
        None => {
            return Err(err(
                key_line("custom"),
                "METADATA has no custom.kind (the constraint kind this template defines)"
                    .to_string(),
            ));
        }
    };
    let version = string("version", custom.get("version"))?;
    let parameters = match custom.get("parameters") {
        None | Some(Value::Null) => None,
        Some(p @ Value::Object(_)) => Some(p.clone()),
        Some(other) => {
            return Err(err(
                key_line("parameters"),
                format!(
                    "METADATA custom.parameters must be an openAPIV3Schema mapping, found {other}"
                ),
            ));
        }
    };
    Ok(Metadata {
        title,
        description,
        kind,
        version,
        parameters,
    })
}

fn is_kind(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

// === YAML emission ===

/// True when YAML (1.1 or 1.2, as Kubernetes tools read it) would resolve the plain scalar `s`
/// to something other than the string `s`: null, a boolean, a number, a timestamp, `<<`, `=`.
fn resolves_to_non_string(s: &str) -> bool {
    static PATTERNS: &[&str] = &[
        r"^(~|null|Null|NULL)$",
        r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        r"^[-+]?(0|[1-9][0-9_]*)$",
        r"^[-+]?0[0-7_]+$",
        r"^[-+]?0o[0-7]+$",
        r"^[-+]?0x[0-9a-fA-F_]+$",
        r"^[-+]?0b[01_]+$",
        r"^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$",
        r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$",
        r"^[-+]?[0-9][0-9_]*([eE][-+]?[0-9]+)$",
        r"^[-+]?\.(inf|Inf|INF)$",
        r"^\.(nan|NaN|NAN)$",
        r"^[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?",
        r"^(<<|=)$",
    ];
    static SET: std::sync::LazyLock<Option<regex::RegexSet>> =
        std::sync::LazyLock::new(|| regex::RegexSet::new(PATTERNS).ok());
    match SET.as_ref() {
        Some(set) => set.is_match(s),
        // Unreachable with the patterns above; quoting everything is still correct.
        None => true,
    }
}

/// Whether `s` can be written as a plain scalar in block context and read back unchanged.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first.is_whitespace()
        || s.ends_with(char::is_whitespace)
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.chars().any(|c| c.is_control() || c == '\u{feff}')
    {
        return false;
    }
    !resolves_to_non_string(s)
}

/// A string scalar: plain when safe, single-quoted when printable on one line, else
/// double-quoted (JSON string syntax, which YAML reads the same).
fn string_scalar(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else if !s.chars().any(|c| c.is_control() || c == '\u{feff}') {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_scalar(s),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        Value::Object(o) if o.is_empty() => "{}".to_string(),
        // Callers only pass scalars and empty collections.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => false,
    }
}

/// A mapping in block style at `indent`; sequences under a key are not indented further.
fn emit_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in map {
        let key = string_scalar(k);
        match v {
            Value::Object(o) if !o.is_empty() => {
                let _ = writeln!(out, "{pad}{key}:");
                emit_map(out, o, indent + 2);
            }
            Value::Array(a) if !a.is_empty() => {
                let _ = writeln!(out, "{pad}{key}:");
                emit_seq(out, a, indent);
            }
            _ => {
                let _ = writeln!(out, "{pad}{key}: {}", scalar(v));
            }
        }
    }
}

fn emit_seq(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(o) if !o.is_empty() => {
                let mut nested = String::new();
                emit_map(&mut nested, o, indent + 2);
                // The first key goes on the dash's line.
                let _ = write!(out, "{pad}- {}", &nested[indent + 2..]);
            }
            Value::Array(a) if is_block(item) => {
                let _ = writeln!(out, "{pad}-");
                emit_seq(out, a, indent + 2);
            }
            _ => {
                let _ = writeln!(out, "{pad}- {}", scalar(item));
            }
        }
    }
}

/// `key: |` and the text as a literal block at `indent` (chomping and indentation indicators as
/// the text needs them), or a double-quoted scalar when a literal block cannot hold it.
fn emit_literal(out: &mut String, key: &str, text: &str, indent: usize) {
    let pad = " ".repeat(indent);
    let literal_ok = !text.is_empty()
        && !text
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
        && !text.trim_end_matches('\n').ends_with([' ', '\t'])
        && !text.starts_with('\t');
    if !literal_ok {
        let _ = writeln!(
            out,
            "{}{key}: {}",
            " ".repeat(indent - 2),
            serde_json::to_string(text).unwrap_or_default()
        );
        return;
    }
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let indicator = if body.starts_with([' ', '\n']) {
        "2"
    } else {
        ""
    };
    let _ = writeln!(out, "{}{key}: |{indicator}{chomp}", " ".repeat(indent - 2));
    for line in body.split('\n') {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}{line}");
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

/// The template YAML for `meta` and the Rego `rego` (embedded verbatim); `source` is the path
/// the header comment names.
pub fn render(meta: &Metadata, rego: &str, source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated from {source} by `tollgate build`; do not edit."
    );
    out.push_str("apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n");
    let _ = writeln!(out, "  name: {}", string_scalar(&meta.kind.to_lowercase()));
    let annotations = [
        ("metadata.gatekeeper.sh/title", &meta.title),
        ("metadata.gatekeeper.sh/version", &meta.version),
        ("description", &meta.description),
    ];
    if annotations.iter().any(|(_, v)| v.is_some()) {
        out.push_str("  annotations:\n");
        for (k, v) in annotations {
            if let Some(v) = v {
                let _ = writeln!(out, "    {k}: {}", string_scalar(v));
            }
        }
    }
    out.push_str("spec:\n  crd:\n    spec:\n      names:\n");
    let _ = writeln!(out, "        kind: {}", string_scalar(&meta.kind));
    if let Some(schema) = &meta.parameters {
        out.push_str("      validation:\n");
        match schema {
            Value::Object(o) if !o.is_empty() => {
                out.push_str("        openAPIV3Schema:\n");
                emit_map(&mut out, o, 10);
            }
            other => {
                let _ = writeln!(out, "        openAPIV3Schema: {}", scalar(other));
            }
        }
    }
    let _ = writeln!(out, "  targets:\n  - target: {TARGET}");
    out.push_str("    code:\n    - engine: Rego\n      source:\n        version: v1\n");
    emit_literal(&mut out, "rego", rego, 10);
    out
}

/// The template as a value, for checking that [`render`] re-parses to it.
pub fn template_value(meta: &Metadata, rego: &str) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(t) = &meta.title {
        annotations.insert(
            "metadata.gatekeeper.sh/title".into(),
            Value::from(t.clone()),
        );
    }
    if let Some(v) = &meta.version {
        annotations.insert(
            "metadata.gatekeeper.sh/version".into(),
            Value::from(v.clone()),
        );
    }
    if let Some(d) = &meta.description {
        annotations.insert("description".into(), Value::from(d.clone()));
    }
    let mut metadata = serde_json::json!({"name": meta.kind.to_lowercase()});
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    let mut crd = serde_json::json!({"names": {"kind": meta.kind}});
    if let Some(p) = &meta.parameters {
        crd["validation"] = serde_json::json!({"openAPIV3Schema": p});
    }
    serde_json::json!({
        "apiVersion": "templates.gatekeeper.sh/v1",
        "kind": "ConstraintTemplate",
        "metadata": metadata,
        "spec": {
            "crd": {"spec": crd},
            "targets": [{
                "target": TARGET,
                "code": [{"engine": "Rego", "source": {"version": "v1", "rego": rego}}],
            }],
        },
    })
}

// === the pack ===

/// Policy directories under `policies_dir` that hold a `src.rego`, sorted by name.
pub fn discover(policies_dir: &Path) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let read = std::fs::read_dir(policies_dir).map_err(|error| BuildError::Read {
        path: policies_dir.display().to_string(),
        error,
    })?;
    let mut out: Vec<(String, PathBuf)> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("src.rego").is_file())
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().to_string();
            Some((name, p.join("src.rego")))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// `policies/<p>/src.rego` as the header comment names it: independent of how the directory
/// was spelled on the command line, so that the output is too.
fn source_label(policies_dir: &Path, policy: &str) -> String {
    let dir = std::fs::canonicalize(policies_dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "policies".to_string());
    format!("{dir}/{policy}/src.rego")
}

/// Checks that the Rego parses as v1, as the template declares (`version: v1`).
fn check_rego(path: &str, rego: &str) -> Result<(), BuildError> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(false);
    engine
        .add_policy(path.to_string(), crate::rego::normalize(rego, true))
        .map(|_| ())
        .map_err(|e| BuildError::Rego {
            path: path.to_string(),
            message: e.to_string().trim().to_string(),
        })
}

/// Generates the template of one policy directory.
pub fn generate_one(
    policies_dir: &Path,
    policy: &str,
    source: &Path,
    out_dir: &Path,
) -> Result<Template, BuildError> {
    let path = source.display().to_string();
    let rego = std::fs::read_to_string(source).map_err(|e| BuildError::Read {
        path: path.clone(),
        error: e,
    })?;
    let meta = parse_metadata(&path, &rego)?;
    let name = meta.kind.to_lowercase();
    if name != policy {
        let line = metadata_block(&rego)
            .and_then(|(_, body)| {
                body.iter()
                    .find(|(_, l)| l.trim_start().starts_with("kind:"))
                    .map(|(n, _)| *n)
            })
            .unwrap_or(1);
        return Err(BuildError::Metadata {
            path,
            line,
            message: format!(
                "custom.kind {} names the template {name}, but the policy directory is {policy}",
                meta.kind
            ),
        });
    }
    check_rego(&path, &rego)?;
    Ok(Template {
        policy: policy.to_string(),
        source: source.to_path_buf(),
        target: out_dir.join(policy).join("template.yaml"),
        content: render(&meta, &rego, &source_label(policies_dir, policy)),
    })
}

/// Generates every template of the pack, in policy-name order.
pub fn generate(policies_dir: &Path, out_dir: &Path) -> Result<Vec<Template>, BuildError> {
    discover(policies_dir)?
        .into_iter()
        .map(|(policy, source)| generate_one(policies_dir, &policy, &source, out_dir))
        .collect()
}

// === diff ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Del(usize),
    Add(usize),
}

/// The shortest edit script between two line lists (longest common subsequence).
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same(i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
            // Deletions first, as diff prints a changed line: `-old` then `+new`.
            ops.push(Op::Del(i));
            i += 1;
        } else {
            ops.push(Op::Add(j));
            j += 1;
        }
    }
    ops
}

/// A unified diff (`---`/`+++` headers, `@@ -l,n +l,n @@` hunks with three lines of context),
/// or `None` when the texts are equal.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    const CONTEXT: usize = 3;
    let changes: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    if changes.is_empty() {
        // Only the final newline differs.
        out.push_str("@@ end of file @@\n\\ the files differ only in their final line break\n");
        return Some(out);
    }
    // Group changes whose context overlaps into hunks: [first op, last op].
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &c in &changes {
        let start = c.saturating_sub(CONTEXT);
        let end = (c + CONTEXT).min(ops.len() - 1);
        match hunks.last_mut() {
            Some(h) if start <= h.1 + 1 => h.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    for (start, end) in hunks {
        let slice = &ops[start..=end];
        let old_lines = slice.iter().filter(|o| !matches!(o, Op::Add(_))).count();
        let new_lines = slice.iter().filter(|o| !matches!(o, Op::Del(_))).count();
        // 1-based first lines; a hunk with no lines on one side names the line before it.
        let mut old_start = None;
        let mut new_start = None;
        let (mut old_before, mut new_before) = (0, 0);
        for o in &ops[..start] {
            match o {
                Op::Same(..) => {
                    old_before += 1;
                    new_before += 1;
                }
                Op::Del(_) => old_before += 1,
                Op::Add(_) => new_before += 1,
            }
        }
        for o in slice {
            match *o {
                Op::Same(i, j) => {
                    old_start.get_or_insert(i + 1);
                    new_start.get_or_insert(j + 1);
                }
                Op::Del(i) => {
                    old_start.get_or_insert(i + 1);
                }
                Op::Add(j) => {
                    new_start.get_or_insert(j + 1);
                }
            }
        }
        let _ = writeln!(
            out,
            "@@ -{},{old_lines} +{},{new_lines} @@",
            old_start.unwrap_or(old_before),
            new_start.unwrap_or(new_before)
        );
        for o in slice {
            match *o {
                Op::Same(i, _) => {
                    let _ = writeln!(out, " {}", a[i]);
                }
                Op::Del(i) => {
                    let _ = writeln!(out, "-{}", a[i]);
                }
                Op::Add(j) => {
                    let _ = writeln!(out, "+{}", b[j]);
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "# METADATA\n# title: Demo\n# description: >-\n#   Requires a thing: always.\n# custom:\n#   kind: K8sDemo\n#   version: 1.0.0\n#   parameters:\n#     type: object\n#     properties:\n#       names:\n#         type: array\n#         items:\n#           type: string\n#       mode:\n#         type: string\n#         enum: [\"yes\", \"no\", \"1.5\"]\npackage k8sdemo\n\nviolation contains {\"msg\": \"x\"} if {\n\tinput.review.object.kind == \"Pod\"\n  \n}\n";

    fn reparse(text: &str) -> Value {
        let docs = document::parse_stream("t.yaml", text).unwrap();
        assert_eq!(docs.len(), 1);
        docs.into_iter().next().unwrap().value
    }

    #[test]
    fn metadata_is_read_from_the_annotation_block() {
        let m = parse_metadata("p/src.rego", SRC).unwrap();
        assert_eq!(m.kind, "K8sDemo");
        assert_eq!(m.title.as_deref(), Some("Demo"));
        assert_eq!(m.description.as_deref(), Some("Requires a thing: always."));
        assert_eq!(m.version.as_deref(), Some("1.0.0"));
        assert_eq!(
            m.parameters.unwrap()["properties"]["mode"]["enum"][0],
            "yes"
        );
    }

    #[test]
    fn rendered_template_reparses_to_the_same_value() {
        let m = parse_metadata("p/src.rego", SRC).unwrap();
        let text = render(&m, SRC, "policies/k8sdemo/src.rego");
        assert_eq!(reparse(&text), template_value(&m, SRC));
        assert!(
            text.contains("        rego: |\n          # METADATA\n"),
            "{text}"
        );
        assert!(
            text.contains("description: 'Requires a thing: always.'"),
            "{text}"
        );
        assert!(text.contains("- 'yes'\n"), "{text}");
        assert!(text.contains("- '1.5'\n"), "{text}");
        assert!(
            text.contains("metadata.gatekeeper.sh/version: 1.0.0\n"),
            "{text}"
        );
    }

    #[test]
    fn awkward_rego_text_still_round_trips() {
        let m = parse_metadata("p/src.rego", SRC).unwrap();
        for rego in [
            "package p",
            "package p\n\n\n",
            "  package p\n",
            "\npackage p\n",
            "package p\r\nx := 1\r\n",
            "package p\nx := \"\\u0001\"\n\u{1}",
            "package p\n\tx := 1 \n",
        ] {
            let text = render(&m, rego, "s");
            assert_eq!(reparse(&text), template_value(&m, rego), "{rego:?}\n{text}");
        }
    }

    #[test]
    fn plain_scalars_are_only_used_when_they_read_back_as_strings() {
        for s in [
            "1.0.0",
            "K8sDemo",
            "a, b (c:d)",
            "x \"y\"",
            "request <= limit",
        ] {
            assert!(plain_ok(s), "{s}");
        }
        for s in [
            "",
            "true",
            "yes",
            "Off",
            "~",
            "null",
            "1",
            "1.5",
            "0x1F",
            "1e3",
            ".inf",
            "2024-01-01",
            "a: b",
            "a #b",
            "-x",
            "'q",
            "x:",
            " lead",
            "trail ",
            "<<",
        ] {
            assert!(!plain_ok(s), "{s}");
        }
    }

    #[test]
    fn metadata_errors_name_file_and_line() {
        let no_kind = "# METADATA\n# title: x\n# custom:\n#   version: 1\npackage p\n";
        let e = parse_metadata("a/src.rego", no_kind)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a/src.rego:3: METADATA has no custom.kind"),
            "{e}"
        );
        let bad_yaml = "package p\n# METADATA\n# title: x\n# custom: [unclosed\npackage q\n";
        let e = parse_metadata("a/src.rego", bad_yaml)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a/src.rego:4: invalid METADATA"), "{e}");
        let missing = "package p\n";
        let e = parse_metadata("a/src.rego", missing)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a/src.rego:1: no `# METADATA` block"), "{e}");
        let bad_kind = "# METADATA\n# custom:\n#   kind: [x]\npackage p\n";
        let e = parse_metadata("a/src.rego", bad_kind)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a/src.rego:3: METADATA custom.kind"), "{e}");
    }

    #[test]
    fn diff_reports_hunks_with_line_numbers() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\n";
        let d = unified_diff(old, new, "old", "new").unwrap();
        assert_eq!(
            d,
            "--- old\n+++ new\n@@ -1,8 +1,9 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n+i\n"
        );
        assert!(unified_diff(old, old, "o", "n").is_none());
        let far = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let far2 = "x\n2\n3\n4\n5\n6\n7\n8\n9\ny\n";
        let d = unified_diff(far, far2, "o", "n").unwrap();
        assert!(d.contains("@@ -1,4 +1,4 @@\n-1\n+x\n 2\n"), "{d}");
        assert!(d.contains("@@ -7,4 +7,4 @@\n 7\n 8\n 9\n-10\n+y\n"), "{d}");
    }
}
