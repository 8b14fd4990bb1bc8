//! A reader for the plain subset of YAML that Kubernetes manifests are almost always written in,
//! about eight times faster than the full parser: block mappings and sequences of printable ASCII,
//! one scalar per line. It answers only when it is sure of the answer: on anything outside the
//! subset it answers `None` and the full parser decides, value and errors alike.
//!
//! The subset, where every value is what the full parser (serde-saphyr with `strict_booleans`)
//! makes of it:
//! - lines of printable ASCII and spaces only (no tab, no carriage return, no byte-order mark),
//!   the first line with content at column 0; blank lines and up to 16 comment lines (`#` first)
//!   anywhere;
//! - block mappings (`key: value`, `key:` then a nested block, a compact sequence or nothing)
//!   and block sequences (`- value`, `- key: value` starting a mapping, `-` then a nested block);
//! - keys: plain words (`[A-Za-z_][A-Za-z0-9_./-]*`) that could not mean anything but a string,
//!   or quoted strings; a key given twice is left to the full parser (an error there);
//! - scalars: quoted strings without escapes (`"…"` without `\` or `"`, `'…'` without `'`),
//!   decimal integers of up to 18 digits without a leading zero, `true`, `false`, `[]`, `{}`,
//!   Kubernetes quantities (`100m`, `1Gi`), versions (`1.0.0`), and plain text that starts with a
//!   letter or `/`, holds no `: ` or ` #`, does not end in `:` and is not a word some YAML reader
//!   takes for null, a boolean or a float;
//! - literal block scalars as a mapping's values (`key: |` or `key: |-`, as templates carry their
//!   Rego): lines of printable ASCII and tabs, indented by the first one's spaces, deeper than the
//!   key; blank lines holding no more spaces than that indentation. Their `#` lines are text.
//!
//! Left to the full parser, whatever they mean: anchors, aliases, tags, folded scalars, block
//! scalars with other headers or as sequence items, flow collections with content, multi-line
//! scalars, escapes, comments after content, other numbers, null in any spelling, directives.

use serde_json::{Map, Number, Value};

// Well inside the full parser's own limits (serde-saphyr's default budget: 64 levels, 1,000,000
// events, 250,000 nodes, 32 comments held while it looks ahead; 1,024 bytes before a key's
// colon), so that it never rejects a document for its size that this reader accepts.
const MAX_TEXT: usize = 16 << 20;
const MAX_LINES: usize = 60_000;
const MAX_DEPTH: usize = 32;
const MAX_KEY_LINE: usize = 512;
const MAX_COMMENTS: usize = 16;

/// The document's value, or `None` when the text is outside the subset.
pub fn parse(text: &str) -> Option<Value> {
    if text.len() > MAX_TEXT {
        return None;
    }
    // After the last line break there is a line only when something follows it. Lines are found
    // by vector code (core's per-line search was a third of reading the pack's templates).
    let raw: Vec<&str> = crate::document::lines_inclusive(text)
        .map(|line| line.strip_suffix('\n').unwrap_or(line))
        .collect();
    let mut lines = Vec::new();
    let mut blocks = Vec::new();
    let mut comments = 0;
    let mut next = 0;
    while let Some(&line) = raw.get(next) {
        next += 1;
        if !printable(line, false) {
            return None;
        }
        let content = line.trim_start_matches(' ');
        if content.starts_with('#') {
            comments += 1;
            if comments > MAX_COMMENTS {
                return None;
            }
            continue;
        }
        if content.is_empty() {
            continue;
        }
        if lines.len() == MAX_LINES {
            return None;
        }
        let indent = line.len() - content.len();
        let content = content.trim_end_matches(' ');
        let mut block = None;
        if let Some(strip) = block_header(content) {
            let (value, after) = literal(&raw, next, indent, strip)?;
            blocks.push(value);
            block = Some(blocks.len() - 1);
            next = after;
        }
        lines.push(Line {
            indent,
            content,
            block,
        });
    }
    if lines.first()?.indent != 0 {
        return None;
    }
    let mut reader = Reader {
        lines,
        blocks,
        at: 0,
        depth: 0,
    };
    let value = reader.block(0)?;
    (reader.at == reader.lines.len()).then_some(value)
}

/// `Some(strip)` for a mapping line whose value is a literal block scalar of the subset: `key: |`
/// (clip: one final line break kept) or `key: |-` (strip: none).
fn block_header(content: &str) -> Option<bool> {
    let strip = if content.ends_with(": |") {
        false
    } else if content.ends_with(": |-") {
        true
    } else {
        return None;
    };
    if is_item(content) {
        return None;
    }
    let (_, rest) = split_key(content)?;
    matches!(rest, "|" | "|-").then_some(strip)
}

/// The literal block scalar whose lines start at `raw[start]`, under a key at `key_indent`, and
/// the index of the first line after it.
fn literal(raw: &[&str], start: usize, key_indent: usize, strip: bool) -> Option<(String, usize)> {
    let is_blank = |line: &str| line.bytes().all(|b| b == b' ');
    let spaces = |line: &str| line.len() - line.trim_start_matches(' ').len();
    // The first line with text sets the indentation; blank lines before it may not be deeper.
    let first = start + raw.get(start..)?.iter().position(|l| !is_blank(l))?;
    let indent = spaces(raw[first]);
    if indent <= key_indent || raw[start..first].iter().any(|l| l.len() > indent) {
        return None;
    }
    let mut end = first;
    let mut last_text = first;
    while let Some(&line) = raw.get(end) {
        if is_blank(line) {
            // Spaces past the indentation would be text.
            if line.len() > indent {
                return None;
            }
        } else {
            let deep = spaces(line);
            if deep <= key_indent {
                break;
            }
            if deep < indent || !printable(line, true) {
                return None;
            }
            last_text = end;
        }
        end += 1;
    }
    let mut value = String::new();
    for line in &raw[start..=last_text] {
        value.push_str(line.get(indent..).unwrap_or(""));
        value.push('\n');
    }
    // The full parser keeps clip's line break where the text ends without one.
    if strip {
        value.pop();
    }
    Some((value, end))
}

/// Whether every byte of `line` is printable ASCII, or a tab where `tab` allows it. Checked a
/// chunk at a time without stopping at each byte, which the compiler turns into vector code:
/// this check reads every byte of a template's Rego.
fn printable(line: &str, tab: bool) -> bool {
    line.as_bytes().chunks(32).all(|chunk| {
        chunk.iter().fold(true, |ok, &b| {
            ok & ((b' '..=b'~').contains(&b) | (tab & (b == b'\t')))
        })
    })
}

#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    content: &'a str,
    /// The literal block scalar that is this mapping line's value (an index into `blocks`).
    block: Option<usize>,
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    blocks: Vec<String>,
    at: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.at).copied()
    }

    /// The block whose first line is the current one, at `indent`.
    fn block(&mut self, indent: usize) -> Option<Value> {
        let line = self.peek()?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let value = if is_item(line.content) {
            self.sequence(indent)
        } else {
            self.mapping(indent)
        };
        self.depth -= 1;
        value
    }

    fn sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent || (line.indent == indent && !is_item(line.content)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let rest = &line.content[1..];
            let after = rest.trim_start_matches(' ');
            if after.is_empty() {
                self.at += 1;
                items.push(self.nested(indent)?);
                continue;
            }
            if is_item(after) {
                return None;
            }
            // The item's content is a line of its own, as deep as where it starts.
            let inner = indent + 1 + (rest.len() - after.len());
            if split_key(after).is_some() {
                self.lines[self.at] = Line {
                    indent: inner,
                    content: after,
                    block: None,
                };
                items.push(self.block(inner)?);
            } else {
                self.at += 1;
                items.push(scalar(after)?);
                self.expect_end_of(indent)?;
            }
        }
        Some(Value::Array(items))
    }

    fn mapping(&mut self, indent: usize) -> Option<Value> {
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_item(line.content) {
                return None;
            }
            let (key, rest) = split_key(line.content)?;
            if line.indent + line.content.len() - rest.len() > MAX_KEY_LINE {
                return None;
            }
            self.at += 1;
            let value = if let Some(block) = line.block {
                Value::String(std::mem::take(&mut self.blocks[block]))
            } else if rest.is_empty() {
                match self.peek() {
                    // A compact sequence: its items as deep as the key.
                    Some(next) if next.indent == indent && is_item(next.content) => {
                        self.block(indent)?
                    }
                    _ => self.nested(indent)?,
                }
            } else {
                let value = scalar(rest)?;
                self.expect_end_of(indent)?;
                value
            };
            if map.insert(key, value).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }

    /// The block nested under a line at `indent`, or null when nothing is.
    fn nested(&mut self, indent: usize) -> Option<Value> {
        match self.peek() {
            Some(next) if next.indent > indent => self.block(next.indent),
            _ => Some(Value::Null),
        }
    }

    /// After a scalar on a line at `indent`, a deeper line would continue it.
    fn expect_end_of(&self, indent: usize) -> Option<()> {
        match self.peek() {
            Some(next) if next.indent > indent => None,
            _ => Some(()),
        }
    }
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// `key: rest` or `key:` as (key, rest); `None` when the line does not start with a key of
/// the subset.
fn split_key(content: &str) -> Option<(String, &str)> {
    let (key, after) = match content.as_bytes().first()? {
        quote @ (b'"' | b'\'') => {
            let close = content[1..].find(*quote as char)? + 1;
            let key = &content[1..close];
            if key.contains('\\') {
                return None;
            }
            (key, &content[close + 1..])
        }
        _ => {
            let end = content
                .find(|c: char| !is_key_char(c))
                .unwrap_or(content.len());
            let key = &content[..end];
            if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') || is_reserved(key) {
                return None;
            }
            (key, &content[end..])
        }
    };
    let rest = after.strip_prefix(':')?;
    if rest.is_empty() {
        return Some((key.to_string(), rest));
    }
    let value = rest.strip_prefix(' ')?.trim_start_matches(' ');
    Some((key.to_string(), value))
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

/// Words a YAML reader may take for null, a boolean or a float, in any case.
fn is_reserved(word: &str) -> bool {
    const WORDS: [&str; 13] = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf", "infinity", "~",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}

fn scalar(text: &str) -> Option<Value> {
    let first = *text.as_bytes().first()?;
    match first {
        b'"' | b'\'' => {
            let inner = text
                .strip_prefix(first as char)?
                .strip_suffix(first as char)?;
            if inner.contains(first as char) || (first == b'"' && inner.contains('\\')) {
                return None;
            }
            Some(Value::String(inner.to_string()))
        }
        b'[' => (text == "[]").then(|| Value::Array(Vec::new())),
        b'{' => (text == "{}").then(|| Value::Object(Map::new())),
        b'0'..=b'9' | b'-' => number_or_quantity(text),
        _ => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => plain(text),
        },
    }
}

fn number_or_quantity(text: &str) -> Option<Value> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let (number, suffix) = digits.split_at(end);
    if number.is_empty() || number.len() > 18 || (number.starts_with('0') && number.len() > 1) {
        return None;
    }
    if !negative && is_version(digits) {
        return Some(Value::String(text.to_string()));
    }
    if suffix.is_empty() {
        let n: u64 = number.parse().ok()?;
        return Some(if negative {
            if n == 0 {
                return None;
            }
            Value::Number(Number::from(-(n as i64)))
        } else {
            Value::Number(Number::from(n))
        });
    }
    const SUFFIXES: [&str; 12] = [
        "m", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    (!negative && SUFFIXES.contains(&suffix)).then(|| Value::String(text.to_string()))
}

/// `1.0.0`: three or more dot-separated runs of digits, no number in any YAML schema.
fn is_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn plain(text: &str) -> Option<Value> {
    // Past its first character a plain scalar in block context may hold any printable character:
    // indicators mean something only where it starts, `: ` and ` #` wherever they are.
    let starts_well = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/');
    let chars_ok = text.bytes().all(|b| (b' '..=b'~').contains(&b));
    if !starts_well
        || !chars_ok
        || text.contains(": ")
        || text.contains(" #")
        || text.ends_with(':')
        || is_reserved(text)
    {
        return None;
    }
    Some(Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_manifest_in_the_subset() {
        let text = "\
# a pod
apiVersion: v1
kind: Pod
metadata:
  name: \"p\"
  labels: {}
  annotations:
    note: two words
spec:
  containers:
  - name: c
    image: registry.example.com/app@sha256:ab
    ports:
      - containerPort: 8080
        hostPort: -1
    args: []
    resources:
      limits: {cpu: 1}
      requests:
        cpu: 100m
        memory: '1Gi'
  hostNetwork: false
  initContainers:
  -
    name: i
  tolerations:
";
        // A flow mapping with content is outside the subset: the whole document is.
        assert_eq!(parse(text), None);
        let text = text.replace("limits: {cpu: 1}", "limits:\n        cpu: 1");
        assert_eq!(
            parse(&text),
            Some(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labels": {}, "annotations": {"note": "two words"}},
                "spec": {
                    "containers": [{
                        "name": "c", "image": "registry.example.com/app@sha256:ab",
                        "ports": [{"containerPort": 8080, "hostPort": -1}],
                        "args": [],
                        "resources": {"limits": {"cpu": 1}, "requests": {"cpu": "100m", "memory": "1Gi"}},
                    }],
                    "hostNetwork": false,
                    "initContainers": [{"name": "i"}],
                    "tolerations": null,
                },
            }))
        );
    }

    #[test]
    fn leaves_what_it_is_not_sure_of() {
        for text in [
            "a: yes\n",
            "a: ~\n",
            "a: 007\n",
            "a: 1.5\n",
            "a: 1e3\n",
            "a: \"x\\ty\"\n",
            "a: b # comment\n",
            "a: &x 1\nb: *x\n",
            "a: >\n  text\n",
            "a: |+\n  text\n",
            "a: |2\n  text\n",
            "a: | # c\n  text\n",
            "- |\n  text\n",
            "- a: |\n    text\n",
            "a: |\ntext\n",
            "a: |\n    x\n  y\n",
            "a: |\n  x\n   \n",
            "a: |\n\n    \n  x\n",
            "a: |\n  caf\u{e9}\n",
            "a: |\n  x\r\n",
            "a: |\n",
            "a: one\n  two\n",
            "a: 1\na: 2\n",
            "a:\tb\n",
            "a: b\r\n",
            "a: caf\u{e9}\n",
            "  a: 1\n",
            "- - a\n",
            "%YAML 1.2\n",
            "a:\n  b: 1\n c: 2\n",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn reads_literal_block_scalars() {
        let text = "\
spec:
  rego: |
    package p

    # a comment, not YAML's
    violation[{\"msg\": msg}] {
    \tmsg := \"x: y\"
      }

  short: |-
    one
     two
  last: x
";
        assert_eq!(
            parse(text),
            Some(json!({"spec": {
                "rego": "package p\n\n# a comment, not YAML's\nviolation[{\"msg\": msg}] {\n\tmsg := \"x: y\"\n  }\n",
                "short": "one\n two",
                "last": "x",
            }}))
        );
        assert_eq!(parse("a: |\n\n  x"), Some(json!({"a": "\nx\n"})));
    }

    #[test]
    fn nesting_past_the_limit_is_left_to_the_full_parser() {
        let deep: String = (0..=MAX_DEPTH)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect();
        assert_eq!(parse(&deep), None);
        let shallow: String = (0..MAX_DEPTH)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect();
        assert!(parse(&shallow).is_some());
    }
}
