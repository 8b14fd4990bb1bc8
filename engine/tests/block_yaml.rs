//! The block-YAML shortcut against the full parser: wherever `block_yaml::parse` answers, its
//! value is the full parser's, on generated documents built to sit on the subset's edges and on
//! every YAML file in the repository.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::path::{Path, PathBuf};

use tollgate_engine::block_yaml;
use tollgate_engine::document::parse_yaml_fully;

/// Checks one document; true when the shortcut answered.
fn agrees(text: &str) -> bool {
    let Some(fast) = block_yaml::parse(text) else {
        return false;
    };
    match parse_yaml_fully(text) {
        Ok(Some(full)) if full == fast => true,
        other => panic!(
            "the shortcut read\n{text}\nas {fast:?}, the full parser as {:?}",
            other.map_err(|e| e.to_string())
        ),
    }
}

/// xorshift64*: the generated documents are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Mostly from `usual`, one time in ten from `edge`, so that whole documents of the subset
    /// are common and every edge is still met.
    fn token<'a>(&mut self, usual: &[&'a str], edge: &[&'a str]) -> &'a str {
        if self.below(10) == 0 {
            self.pick(edge)
        } else {
            self.pick(usual)
        }
    }
}

/// Keys the subset reads.
const KEYS: &[&str] = &[
    "name",
    "image",
    "app.kubernetes.io/name",
    "node-type",
    "_x",
    "a1",
    "kind",
    "spec",
    "\"quoted key\"",
    "'single'",
    "\"a: b\"",
];

/// Keys it leaves to the full parser (reserved, numeric, indicators), and some it reads.
const EDGE_KEYS: &[&str] = &[
    "name",
    "y",
    "n",
    "on",
    "true",
    "null",
    "Null",
    "8080",
    "0x1",
    "-a",
    "a b",
    "a#b",
    "<<",
    "?",
    "&a k",
    "!!str k",
    "\"esc\\\"\"",
    "key:x",
    "a:",
];

/// Scalars the subset reads.
const SCALARS: &[&str] = &[
    "\"registry.example.com/app:1.2\"",
    "\"\"",
    "'a'",
    "nginx:1.25",
    "/bin/sh",
    "a b",
    "value",
    "true",
    "false",
    "0",
    "8080",
    "-5",
    "100m",
    "1Gi",
    "[]",
    "{}",
    "e",
    "x1",
    "a=b",
    "1.0.0",
    "A description; with (punctuation), \"quotes\" and 'apostrophes'.",
];

/// Scalars near the subset's edge, in and out.
const EDGE_SCALARS: &[&str] = &[
    "\"registry.example.com/app:1.2\"",
    "\"\"",
    "''",
    "'it''s'",
    "'a'",
    "\"a\\nb\"",
    "\"a # b\"",
    "\"tab\\t\"",
    "nginx:1.25",
    "/bin/sh",
    "http://x.example/a?b=c",
    "a b",
    "a  b",
    "a #c",
    "a#c",
    "a: b",
    "a:",
    "value",
    "True",
    "TRUE",
    "true",
    "false",
    "False",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "Y",
    "null",
    "Null",
    "NULL",
    "~",
    "nan",
    "NaN",
    ".nan",
    "inf",
    ".inf",
    "-.inf",
    "Infinity",
    "0",
    "00",
    "007",
    "8080",
    "-5",
    "-0",
    "+5",
    "1_000",
    "1e3",
    "1E3",
    "1e",
    "1.5",
    "1.",
    ".5",
    "0x1F",
    "0o17",
    "0b101",
    "12345678901234567890",
    "123456789012345678",
    "-123456789012345678",
    "100m",
    "1Gi",
    "1G",
    "1Ei",
    "1E",
    "1e5m",
    "0m",
    "01Gi",
    "-1Gi",
    "2020-01-01",
    "12:30",
    "1:2:3",
    "[]",
    "{}",
    "[a]",
    "{a: 1}",
    "[ ]",
    "&anchor x",
    "*alias",
    "!!str 5",
    "!tag x",
    "|",
    ">",
    "|-",
    "@at",
    "`tick",
    "%pct",
    "-",
    "--",
    "- x",
    "? q",
    "a,b",
    "a[0]",
    "{",
    "}",
    "=",
    "a=b",
    "a+b",
    "e",
    "x1",
    "\"unterminated",
    "'unterminated",
    "\"a\" \"b\"",
    "\"a\"b",
    "'a\\b'",
    "'a\"b'",
    "1.0.0",
    "0.1.2",
    "00.1.2",
    "1.2.3e5",
    "10.2.33.4",
    "1..0",
    "1.0.",
    "-1.0.0",
    "1.0.0Gi",
    "v1.0.0",
    "The names; a pod (one) must, as \"x\" says",
    "it's 50% <= 100%",
    "a [b] {c} d,e",
    "a !b &c *d |e >f",
    "a `b` \\c ~d ^e $f",
    "a ?b -c",
    "a - b",
    "a? b",
    "x:y:z",
    "a ,",
    "a #",
    "a # b",
    "a#",
    "a:\"b\"",
    "a: ",
    "no.",
    "Yes, sir",
    "null.",
    "Null value",
];

const COMMENTS: &[&str] = &["# a comment", "#", "  # indented comment", ""];

/// A random document: nested mappings and sequences (compact or indented, items starting
/// mappings, bare `-`), with comment and blank lines and trailing spaces here and there.
fn document(rng: &mut Rng) -> String {
    let mut out = String::new();
    mapping(rng, &mut out, 0, 0, false);
    // Now and then no line break at the end (a block scalar's last line then has none).
    if rng.below(10) == 0 {
        out.pop();
    }
    out
}

fn line(rng: &mut Rng, out: &mut String, indent: usize, text: &str) {
    if rng.below(12) == 0 {
        out.push_str(rng.pick(COMMENTS));
        out.push('\n');
    }
    // Rarely, more comments in a row than the full parser holds while it looks ahead.
    if rng.below(100) == 0 {
        out.push_str(&"# c\n".repeat(40));
    }
    // Now and then a line one column off, where the reading must stop.
    let indent = match rng.below(60) {
        0 => indent + 1,
        1 => indent.saturating_sub(1),
        _ => indent,
    };
    out.push_str(&" ".repeat(indent));
    out.push_str(text);
    if rng.below(15) == 0 {
        out.push(' ');
    }
    out.push('\n');
}

/// A mapping at `indent`; when `first_inline`, its first entry goes on the current line (after
/// a `- ` already written).
fn mapping(rng: &mut Rng, out: &mut String, indent: usize, depth: usize, first_inline: bool) {
    let entries = 1 + rng.below(4);
    for i in 0..entries {
        let key = rng.token(KEYS, EDGE_KEYS);
        let at = if first_inline && i == 0 { 0 } else { indent };
        let nest = depth < 4 && rng.below(3) == 0;
        if rng.below(8) == 0 {
            let header = rng.token(&["|", "|-"], BLOCK_HEADERS);
            line(rng, out, at, &format!("{key}: {header}"));
            literal(rng, out, indent);
        } else if nest {
            line(rng, out, at, &format!("{key}:"));
            let deeper = indent + 1 + rng.below(3);
            match rng.below(4) {
                0 => sequence(rng, out, indent, depth + 1),
                1 => sequence(rng, out, deeper, depth + 1),
                2 => {}
                _ => mapping(rng, out, deeper, depth + 1, false),
            }
        } else {
            let sep = if rng.below(20) == 0 { ":  " } else { ": " };
            let entry = format!("{key}{sep}{}", rng.token(SCALARS, EDGE_SCALARS));
            line(rng, out, at, &entry);
        }
    }
}

/// Block scalar headers near the subset's edge, in and out.
const BLOCK_HEADERS: &[&str] = &[
    "|", "|-", "|+", ">", ">-", "|2", "|-2", "|1-", "| # c", "|  ", "|x", "||",
];

/// Lines of block scalar text, Rego-like, with YAML's look-alikes.
const BLOCK_TEXT: &[&str] = &[
    "package p",
    "violation[{\"msg\": msg}] {",
    "\tmsg := sprintf(\"%v: %v\", [a, b])",
    "# not a YAML comment",
    "key: value",
    "- item",
    "}",
    "a # b",
    "'quoted'",
    "\t\tdeep",
    "x\t",
];

/// A literal block scalar's lines under a key at `indent`: mostly one indentation deeper than
/// the key, sometimes deeper, shallower or mixed; blank lines of every length; now and then a
/// character outside the subset.
fn literal(rng: &mut Rng, out: &mut String, indent: usize) {
    let inner = indent + 1 + rng.below(3);
    for i in 0..rng.below(6) {
        match rng.below(12) {
            0 => out.push('\n'),
            1 => {
                out.push_str(&" ".repeat(rng.below(inner + 3)));
                out.push('\n');
            }
            2 if i > 0 => {
                out.push_str(&" ".repeat(inner + 1 + rng.below(3)));
                out.push_str(rng.pick(BLOCK_TEXT));
                out.push('\n');
            }
            3 => {
                out.push_str(&" ".repeat(rng.below(inner + 1)));
                out.push_str(rng.pick(BLOCK_TEXT));
                out.push('\n');
            }
            4 => {
                out.push_str(&" ".repeat(inner));
                out.push_str(rng.pick(&["caf\u{e9}", "a\rb", "\u{7f}", "---", "..."]));
                out.push('\n');
            }
            _ => {
                out.push_str(&" ".repeat(inner));
                out.push_str(rng.pick(BLOCK_TEXT));
                out.push('\n');
            }
        }
    }
}

fn sequence(rng: &mut Rng, out: &mut String, indent: usize, depth: usize) {
    for _ in 0..1 + rng.below(3) {
        match rng.below(4) {
            0 if depth < 4 => {
                out.push_str(&" ".repeat(indent));
                let gap = 1 + rng.below(2);
                out.push('-');
                out.push_str(&" ".repeat(gap));
                mapping(rng, out, indent + 1 + gap, depth + 1, true);
            }
            1 if depth < 4 => {
                line(rng, out, indent, "-");
                let deeper = indent + 1 + rng.below(3);
                mapping(rng, out, deeper, depth + 1, false);
            }
            _ => {
                let item = format!("- {}", rng.token(SCALARS, EDGE_SCALARS));
                line(rng, out, indent, &item);
            }
        }
    }
}

#[test]
fn wherever_the_shortcut_answers_it_reads_what_the_full_parser_reads() {
    let mut rng = Rng(0x7011_6a7e_0000_0001);
    let (mut answered, total) = (0, 100_000);
    let (mut blocks_answered, mut blocks) = (0, 0);
    for _ in 0..total {
        let doc = document(&mut rng);
        let with_block = doc.contains(": |");
        let read = agrees(&doc);
        answered += usize::from(read);
        blocks += usize::from(with_block);
        blocks_answered += usize::from(read && with_block);
    }
    // Both sides of the edge are exercised: documents it reads and documents it leaves.
    eprintln!(
        "the shortcut read {answered} of {total} documents, {blocks_answered} of the {blocks} with a block scalar"
    );
    assert!(
        answered > total / 20 && answered < total * 19 / 20,
        "{answered} of {total}"
    );
    assert!(
        blocks_answered > blocks / 20 && blocks_answered < blocks * 19 / 20,
        "{blocks_answered} of {blocks}"
    );
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            // Helm templates are not YAML until rendered; build outputs are not ours.
            if !matches!(name.as_str(), "target" | "templates" | ".git" | "work") {
                yaml_files(&path, out);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_yaml_document_in_the_repository_reads_the_same_both_ways() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in [
        "constraints",
        "tests",
        "examples",
        "policies",
        "charts",
        "bench",
    ] {
        yaml_files(&root.join(dir), &mut files);
    }
    let (mut answered, mut total) = (0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in text.split("\n---") {
            total += 1;
            if agrees(doc) {
                answered += 1;
            }
        }
    }
    eprintln!("the shortcut read {answered} of {total} documents");
    // Templates embed Rego in block scalars; most other documents are in the subset.
    assert!(answered > total / 3, "{answered} of {total} documents");
}

/// The pack's templates carry their Rego in literal block scalars and are read by the shortcut,
/// which every start of `tollgate serve` does (about eight times faster than the full parser).
#[test]
fn the_packs_templates_are_in_the_subset() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../constraints");
    let mut templates = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let template = entry.unwrap().path().join("template.yaml");
        if template.is_file() {
            let text = std::fs::read_to_string(&template).unwrap();
            assert!(
                agrees(&text),
                "{} is outside the block-YAML subset",
                template.display()
            );
            templates += 1;
        }
    }
    assert_eq!(templates, 5);
}

#[test]
fn a_document_outside_the_subset_keeps_the_full_parsers_error_and_line() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n";
    assert_eq!(block_yaml::parse(text), None);
    let err = tollgate_engine::document::parse_stream("f.yaml", text).unwrap_err();
    assert!(err.to_string().contains("f.yaml"), "{err}");
    assert!(err.to_string().contains("duplicate"), "{err}");
}
