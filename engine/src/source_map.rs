//! Where a line of a template's embedded Rego sits in the template's own YAML file.
//!
//! regorus reports a Rego error at `<template>.rego:<line>:<column>`, a file that does not exist:
//! the Rego is a block scalar inside `template.yaml`. This finds the block in the document's
//! text and rewrites the location (and the excerpt's line numbers) to the YAML file's lines, so
//! an editor can jump to it.

use regex::Regex;

/// The 0-based line of the document where the source's first line is, and the block's
/// indentation; `None` when the source is not found as a block (a JSON string, a folded scalar).
fn locate(doc_text: &str, source: &str) -> Option<(usize, usize)> {
    let src: Vec<&str> = source.lines().collect();
    let first = src.iter().position(|l| !l.trim().is_empty())?;
    let doc: Vec<&str> = doc_text.lines().collect();
    'candidates: for (i, line) in doc.iter().enumerate() {
        let Some(indent) = line.len().checked_sub(src[first].len()) else {
            continue;
        };
        if !line.ends_with(src[first]) || !line[..indent].chars().all(|c| c == ' ') {
            continue;
        }
        // The next few lines must follow, at the same indentation.
        for (j, want) in src.iter().enumerate().skip(first + 1).take(5) {
            let Some(have) = doc.get(i + j - first) else {
                break;
            };
            let same = if want.is_empty() {
                have.trim().is_empty()
            } else {
                have.len() == indent + want.len() && have.ends_with(want)
            };
            if !same {
                continue 'candidates;
            }
        }
        return Some((i.checked_sub(first)?, indent));
    }
    None
}

/// Rewrites `--> <name>.rego:L:C` in `message` to `--> <file>:<yaml line>:<yaml column>`.
/// `sources` pairs regorus's file names with the Rego it was given; `first_line` is the
/// document's first line in the file.
pub fn to_yaml_location(
    message: &str,
    file: &str,
    doc_text: &str,
    first_line: usize,
    sources: &[(String, &str)],
) -> String {
    let Ok(location) = Regex::new(r"--> (\S+\.rego):(\d+):(\d+)") else {
        return message.to_string();
    };
    let Some(found) = location.captures(message) else {
        return message.to_string();
    };
    let (name, line, column) = (&found[1], &found[2], &found[3]);
    let (Ok(line), Ok(column)) = (line.parse::<usize>(), column.parse::<usize>()) else {
        return message.to_string();
    };
    let Some((offset, indent)) = sources
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, src)| locate(doc_text, src))
    else {
        return message.to_string();
    };
    let yaml_line = |rego_line: usize| first_line + offset + rego_line - 1;
    let mut out = location
        .replace(
            message,
            format!("--> {file}:{}:{}", yaml_line(line), column + indent).as_str(),
        )
        .to_string();
    // The excerpt's gutter numbers the Rego's lines; number them as the file does.
    if let Ok(gutter) = Regex::new(r"(?m)^(\s*)(\d+) \|") {
        out = gutter
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let n = c[2]
                    .parse::<usize>()
                    .map_or_else(|_| c[2].to_string(), |n| yaml_line(n).to_string());
                format!("{}{n} |", &c[1])
            })
            .to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rego_lines_map_to_the_yaml_file() {
        let doc = "kind: ConstraintTemplate\nspec:\n  targets:\n  - rego: |\n      package x\n\n      broken := [\n      violation[{\"msg\": m}] { m := 1 }\n";
        let rego = "package x\n\nbroken := [\nviolation[{\"msg\": m}] { m := 1 }\n";
        let message = "\n--> x.rego:4:1\n   |\n4 | violation[{\"msg\": m}] { m := 1 }\n   | ^\nerror: expecting `]`";
        let sources = vec![("x.rego".to_string(), rego)];
        let mapped = to_yaml_location(message, "t.yaml", doc, 10, &sources);
        // Rego line 4 is the document's 8th line, the file's 17th; 6 columns of indentation.
        assert!(mapped.contains("--> t.yaml:17:7"), "{mapped}");
        assert!(mapped.contains("\n17 | violation"), "{mapped}");
        assert_eq!(
            to_yaml_location(message, "t.json", "{}", 1, &sources),
            message
        );
    }
}
