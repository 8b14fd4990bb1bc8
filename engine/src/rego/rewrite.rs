//! Lexical checks and rewrites of template Rego.

use super::lexer::{Kind, Token, line_col, tokenize};
use super::negation::{self, Guard};

/// A reference Gatekeeper does not allow in a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct RefError {
    /// 1-based line in the module.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

fn text<'a>(src: &'a str, t: &Token) -> &'a str {
    &src[t.start..t.end]
}

/// Gatekeeper's reference rules: a template may read `data.inventory` and `data.lib.*` only, and
/// may not `import input`.
pub fn check_refs(src: &str) -> Result<(), RefError> {
    let tokens: Vec<Token> = tokenize(src)
        .into_iter()
        .filter(Token::significant)
        .collect();
    let error = |t: &Token, message: String| {
        let (line, column) = line_col(src, t.start);
        RefError {
            line,
            column,
            message,
        }
    };
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != Kind::Ident {
            continue;
        }
        let word = text(src, t);
        let prev = i.checked_sub(1).map(|p| &tokens[p]);
        if word == "import" {
            if let Some(next) = tokens.get(i + 1)
                && text(src, next) == "input"
            {
                return Err(error(next, "import input is not allowed".to_string()));
            }
            continue;
        }
        if word != "data" || prev.is_some_and(|p| p.kind == Kind::Punct('.')) {
            continue;
        }
        let component = match (tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(dot), Some(name)) if dot.kind == Kind::Punct('.') && name.kind == Kind::Ident => {
                Some(text(src, name).to_string())
            }
            (Some(open), Some(name)) if open.kind == Kind::Punct('[') && name.kind == Kind::Str => {
                Some(text(src, name).trim_matches(['"', '`']).to_string())
            }
            _ => None,
        };
        match component.as_deref() {
            Some("inventory") | Some("lib") => {}
            Some(other) => {
                return Err(error(
                    t,
                    format!(
                        "disallowed ref data.{other}: templates may only reference data.inventory and data.lib"
                    ),
                ));
            }
            None => {
                return Err(error(
                    t,
                    "disallowed ref data: templates may only reference data.inventory and data.lib"
                        .to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// The deepest nesting of `[` and `{` a template module may have (rule bodies count).
///
/// regorus 0.14 parses these by trying each reading in turn (comprehension, set, object,
/// array), so its parse time doubles with every level: a module nested 14 deep takes about a
/// second, 20 deep about a minute, and an unclosed `[[[[…` nothing less. The policy reloader
/// must not stall on one bad template, so deeper modules are refused before parsing. Real
/// templates stay far below: the deepest in the gatekeeper-library and this pack is 6.
pub const MAX_NESTING: usize = 12;

/// Refuses a module whose brackets nest deeper than [`MAX_NESTING`], naming the first bracket
/// past the limit.
pub fn check_nesting(src: &str) -> Result<(), RefError> {
    let mut depth = 0usize;
    for t in tokenize(src) {
        match t.kind {
            Kind::Punct('[' | '{') => {
                depth += 1;
                if depth > MAX_NESTING {
                    let (line, column) = line_col(src, t.start);
                    return Err(RefError {
                        line,
                        column,
                        message: format!(
                            "brackets nested more than {MAX_NESTING} deep: tollgate refuses \
                             deeper nesting because the Rego parser's time doubles with each level"
                        ),
                    });
                }
            }
            Kind::Punct(']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// True when a top-level rule named `name` is declared (a statement that starts with it).
pub fn rule_is_defined(src: &str, name: &str) -> bool {
    statements(src, &tokenize(src))
        .iter()
        .any(|&start| text(src, &start) == name)
}

/// First token of each top-level statement: the first significant token on a line while no
/// bracket is open (multi-line heads continue inside brackets), or after a closing body brace.
fn statements(src: &str, tokens: &[Token]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut line_start = true;
    for t in tokens {
        match t.kind {
            Kind::Newline => {
                line_start = true;
                continue;
            }
            Kind::Comment => continue,
            _ => {}
        }
        if depth == 0 && line_start {
            out.push(*t);
        }
        line_start = false;
        match t.kind {
            Kind::Punct('{' | '[' | '(') => depth += 1,
            Kind::Punct('}' | ']' | ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let _ = src;
    out
}

/// Rewrites a module so regorus reads it as OPA does. Line numbers are preserved.
///
/// - A line break ends an expression in a body even when the next line starts with `(`;
///   regorus would read `x ⏎ (y)` as a call, so a `;` is inserted at the end of the line.
/// - (v0) Chained bodies `p[x] { a } { b }` mean `p[x] { a }` and `p[x] { b }`; regorus rejects
///   them on set rules and ignores all but the first body of a function, so the head is repeated.
pub fn normalize(src: &str, v1: bool) -> String {
    let tokens = tokenize(src);
    let mut inserts: Vec<(usize, String)> = Vec::new();
    // Bracket stack; for `{` also whether it opened a rule body at top level.
    let mut stack: Vec<(char, bool)> = Vec::new();
    let mut prev_sig: Option<Token> = None;
    let mut pending_newline = false;
    let mut line_start = true;
    let mut stmt_start: Option<usize> = None;
    let mut head_end: Option<usize> = None;
    let mut last_closed_body = false;
    let mut in_else = false;
    for t in &tokens {
        match t.kind {
            Kind::Newline => {
                pending_newline = true;
                line_start = true;
                continue;
            }
            Kind::Comment => continue,
            _ => {}
        }
        let top = stack.last().map(|&(c, _)| c);
        // Newline before `(` inside a body: end the previous expression explicitly.
        if pending_newline
            && t.kind == Kind::Punct('(')
            && top == Some('{')
            && prev_sig.is_some_and(|p| ends_expression(src, &p))
            && let Some(p) = prev_sig
        {
            inserts.push((p.end, ";".to_string()));
        }
        let continues_chain = t.kind == Kind::Punct('{') && last_closed_body;
        if stack.is_empty() && line_start && !continues_chain {
            stmt_start = Some(t.start);
            head_end = None;
            last_closed_body = false;
            in_else = false;
        }
        if stack.is_empty() && t.kind == Kind::Ident && text(src, t) == "else" {
            in_else = true;
        }
        match t.kind {
            Kind::Punct('{') => {
                let opens_body =
                    stack.is_empty() && prev_sig.is_some_and(|p| !is_value_position(src, &p));
                if opens_body && !v1 && last_closed_body && !in_else {
                    if let (Some(s), Some(h)) = (stmt_start, head_end) {
                        let head = one_line_head(src, &tokens, s, h);
                        inserts.push((t.start, format!("{head} ")));
                    }
                } else if opens_body && head_end.is_none() {
                    head_end = Some(t.start);
                }
                stack.push(('{', opens_body));
            }
            Kind::Punct('[') | Kind::Punct('(') => {
                stack.push((if t.kind == Kind::Punct('[') { '[' } else { '(' }, false));
            }
            Kind::Punct('}') | Kind::Punct(']') | Kind::Punct(')') => {
                let (_, was_body) = stack.pop().unwrap_or((' ', false));
                if stack.is_empty() {
                    last_closed_body = was_body;
                }
            }
            _ => {
                if stack.is_empty() {
                    last_closed_body = false;
                }
            }
        }
        prev_sig = Some(*t);
        pending_newline = false;
        line_start = false;
    }
    inserts.extend(negation_inserts(src, &tokens));
    if inserts.is_empty() {
        return src.to_string();
    }
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = String::with_capacity(src.len() + 64);
    let mut last = 0;
    for (at, s) in inserts {
        out.push_str(&src[last..at]);
        out.push_str(&s);
        last = at;
    }
    out.push_str(&src[last..]);
    out
}

/// The rule head in `src[start..end]` on one line, so that repeating it in front of a chained
/// body moves no later line: line breaks and comments become single spaces and a raw string that
/// spans lines becomes the equivalent quoted string.
fn one_line_head(src: &str, tokens: &[Token], start: usize, end: usize) -> String {
    let mut out = String::new();
    let mut last_end = start;
    for t in tokens
        .iter()
        .filter(|t| t.start >= start && t.end <= end && t.significant())
    {
        if t.start > last_end && !out.is_empty() {
            out.push(' ');
        }
        let word = text(src, t);
        match word.strip_prefix('`').and_then(|w| w.strip_suffix('`')) {
            Some(raw) if t.kind == Kind::Str && raw.contains('\n') => {
                out.push_str(&serde_json::Value::String(raw.to_string()).to_string());
            }
            _ => out.push_str(word),
        }
        last_end = t.end;
    }
    out
}

/// Guards for the terms OPA hoists out of each `not` expression (see [`negation`]).
fn negation_inserts(src: &str, tokens: &[Token]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut counter = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != Kind::Ident || text(src, t) != "not" {
            continue;
        }
        let before = tokens[..i].iter().rev().find(|p| p.kind != Kind::Comment);
        let starts_expression = match before {
            None => false,
            Some(p) => p.kind == Kind::Newline || matches!(p.kind, Kind::Punct('{' | ';' | '|')),
        };
        if !starts_expression {
            continue;
        }
        let mut depth = 0usize;
        let mut expr = Vec::new();
        let mut has_with = false;
        for t in &tokens[i + 1..] {
            match t.kind {
                Kind::Newline | Kind::Comment if depth == 0 => break,
                Kind::Newline | Kind::Comment => continue,
                Kind::Punct(';') if depth == 0 => break,
                Kind::Punct('(' | '[' | '{') => depth += 1,
                Kind::Punct(')' | ']' | '}') => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                Kind::Ident if depth == 0 && text(src, t) == "with" => {
                    has_with = true;
                    break;
                }
                _ => {}
            }
            expr.push(*t);
        }
        if has_with || expr.is_empty() {
            continue;
        }
        for guard in negation::hoisted_terms(src, &expr) {
            let (start, end, form) = match guard {
                Guard::Assign(a, b) => (a, b, None),
                Guard::Number(a, b) => (a, b, Some("is_number")),
                Guard::Set(a, b) => (a, b, Some("is_set")),
            };
            let term = &src[start..end];
            if term.contains('`') {
                continue;
            }
            let term = term.replace(['\n', '\r'], " ");
            let text = match form {
                None => {
                    counter += 1;
                    format!("__tollgate_hoist{}__ := {term}; ", counter - 1)
                }
                Some(check) => format!("{check}({term}); "),
            };
            out.push((t.start, text));
        }
    }
    out
}

fn ends_expression(src: &str, t: &Token) -> bool {
    match t.kind {
        Kind::Ident => !matches!(
            text(src, t),
            "not" | "some" | "with" | "as" | "in" | "if" | "contains" | "every" | "else"
        ),
        Kind::Number | Kind::Str => true,
        Kind::Punct(c) => matches!(c, ')' | ']' | '}'),
        _ => false,
    }
}

/// A `{` after these tokens starts a value (object or set), not a rule body.
fn is_value_position(src: &str, t: &Token) -> bool {
    match t.kind {
        Kind::Punct(c) => matches!(c, '=' | ',' | '(' | '[' | '|' | ':' | '+' | '-' | '*' | '&'),
        Kind::Ident => matches!(text(src, t), "in" | "contains" | "default"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inventory_and_lib_refs_are_allowed() {
        assert!(
            check_refs("package a\nx { data.inventory.cluster }\ny { data.lib.z.f(1) }").is_ok()
        );
        assert!(check_refs("package a\nx { s := \"data.foo\" } # data.bar").is_ok());
        let err = check_refs("package a\nx {\n  data.other.y\n}").unwrap_err();
        assert_eq!((err.line, err.column), (3, 3));
        assert!(check_refs("package a\nx { data[\"other\"] }").is_err());
        assert!(check_refs("package a\nx { y := data }").is_err());
        assert!(check_refs("package a\nimport input\n").is_err());
        assert!(check_refs("package a\nimport data.lib.helpers\n").is_ok());
        assert!(check_refs("package a\nx { input.data.foo }").is_ok());
    }

    #[test]
    fn finds_rule_declarations() {
        assert!(rule_is_defined(
            "package a\nviolation[{\"msg\": m}] {\n m := 1\n}",
            "violation"
        ));
        assert!(rule_is_defined(
            "package a\nviolation contains r if { r := 1 }",
            "violation"
        ));
        assert!(!rule_is_defined("package a\nx { violation }", "violation"));
    }

    #[test]
    fn newline_before_paren_ends_the_expression() {
        let src = "package a\np {\n  x := 1\n  (x + 1) > 1\n}\n";
        assert_eq!(
            normalize(src, false),
            "package a\np {\n  x := 1;\n  (x + 1) > 1\n}\n"
        );
        let call = "package a\np { f(\n  (1)) }\n";
        assert_eq!(normalize(call, false), call);
    }

    #[test]
    fn nesting_is_bounded_before_regorus_parses() {
        let ok = format!(
            "package a\np {{ x := {}1{} }}\n",
            "[".repeat(11),
            "]".repeat(11)
        );
        assert_eq!(check_nesting(&ok), Ok(()));
        let deep = format!("package a\np {{\n x := {}1 }}\n", "{\"a\": ".repeat(12));
        let e = check_nesting(&deep).unwrap_err();
        assert_eq!((e.line, e.column), (3, 73), "{e}");
        assert!(e.message.contains("more than 12 deep"), "{e}");
        let unclosed = format!("package a\np {{ input.a{} }}\n", "[".repeat(30));
        assert!(check_nesting(&unclosed).is_err());
        // Brackets inside strings and comments do not count.
        let quoted = format!("package a\np {{ x := \"{0}\" }} # {0}\n", "[".repeat(30));
        assert_eq!(check_nesting(&quoted), Ok(()));
    }

    #[test]
    fn chained_bodies_repeat_the_head_on_the_same_line() {
        let src = "package a\nv[x] { x := 1 } {\n x := 2\n}\n";
        assert_eq!(
            normalize(src, false),
            "package a\nv[x] { x := 1 } v[x] {\n x := 2\n}\n"
        );
        let f = "package a\nf(x) = y { y := 1 }\n{ y := 2 }\n";
        assert_eq!(
            normalize(f, false),
            "package a\nf(x) = y { y := 1 }\nf(x) = y { y := 2 }\n"
        );
        let obj = "package a\np = {\"a\": 1} { true }\n";
        assert_eq!(normalize(obj, false), obj);
        let multi = "package a\nv[{\"msg\": m, # why\n  \"d\": `a\nb`}] { m := 1 }\n{ m := 2 }\n";
        assert_eq!(
            normalize(multi, false),
            "package a\nv[{\"msg\": m, # why\n  \"d\": `a\nb`}] { m := 1 }\nv[{\"msg\": m, \"d\": \"a\\nb\"}] { m := 2 }\n"
        );
        // An unterminated string ends at its line; the head still moves no line.
        let broken = "package a\nv[\"a\nb\\\n] { true }\n{ true }\n";
        let out = normalize(broken, false);
        assert_eq!(out.lines().count(), broken.lines().count(), "{out}");
        let els = "package a\np = 1 { false } else = 2 { true }\n";
        assert_eq!(normalize(els, false), els);
    }
}

#[cfg(test)]
mod negation_tests {
    use super::normalize;

    fn guards(expr: &str) -> String {
        let src = format!("package a\np {{\n  {expr}\n}}\n");
        let out = normalize(&src, false);
        let line = out.lines().nth(2).unwrap_or_default().trim().to_string();
        line.strip_suffix(expr).unwrap_or(&line).trim().to_string()
    }

    #[test]
    fn call_arguments_are_hoisted() {
        assert_eq!(guards("not f(input.x)"), "__tollgate_hoist0__ := input.x;");
        assert_eq!(
            guards("not startswith(c.image, \"x\")"),
            "__tollgate_hoist0__ := c.image;"
        );
        assert_eq!(guards("not input.x > 0"), "__tollgate_hoist0__ := input.x;");
        assert_eq!(
            guards("not input.x != 1"),
            "__tollgate_hoist0__ := input.x;"
        );
        assert_eq!(
            guards("not count(input.x) > 0"),
            "__tollgate_hoist0__ := count(input.x);"
        );
        assert_eq!(
            guards("not input.x + 1 > 0"),
            "__tollgate_hoist0__ := input.x; is_number(input.x);"
        );
        assert_eq!(
            guards("not f([input.x])"),
            "__tollgate_hoist0__ := input.x;"
        );
    }

    #[test]
    fn equality_keeps_refs_but_hoists_calls() {
        assert_eq!(guards("not input.x == 1"), "");
        assert_eq!(guards("not input.x = 1"), "");
        assert_eq!(
            guards("not lower(input.x) == \"a\""),
            "__tollgate_hoist0__ := lower(input.x);"
        );
        assert_eq!(
            guards("not [input.x] == [1]"),
            "__tollgate_hoist0__ := input.x;"
        );
        assert_eq!(guards("not input.x"), "");
        assert_eq!(
            guards("not data.lib.p[input.x]"),
            "__tollgate_hoist0__ := input.x;"
        );
        assert_eq!(guards("not data.lib.p[x]"), "");
        assert_eq!(
            guards("not data.lib.p[lower(input.x)]"),
            "__tollgate_hoist0__ := lower(input.x);"
        );
        assert_eq!(guards("not f(1, \"a\", true)"), "");
        assert_eq!(guards("not f(x) with input as {}"), "");
    }
}

/// The function names a module set defines, for [`undefined_function`].
#[derive(Debug, Default)]
pub struct KnownFunctions {
    /// `data.<package>.<name>` of every rule or function in library modules.
    library: std::collections::BTreeSet<String>,
}

impl KnownFunctions {
    /// Records the rules a library module defines.
    pub fn add_library(&mut self, src: &str) {
        let tokens = tokenize(src);
        let Some(package) = package_of(src, &tokens) else {
            return;
        };
        for name in defined_names(src, &tokens) {
            self.library.insert(format!("data.{package}.{name}"));
        }
    }
}

fn package_of(src: &str, tokens: &[Token]) -> Option<String> {
    let sig: Vec<&Token> = tokens.iter().filter(|t| t.significant()).collect();
    let at = sig.iter().position(|t| text(src, t) == "package")?;
    let mut parts = Vec::new();
    for t in &sig[at + 1..] {
        match t.kind {
            Kind::Ident => parts.push(text(src, t)),
            Kind::Punct('.') => {}
            _ => break,
        }
        if tokens
            .iter()
            .any(|n| n.start == t.end && n.kind == Kind::Newline)
        {
            break;
        }
    }
    Some(parts.join("."))
}

fn defined_names(src: &str, tokens: &[Token]) -> Vec<String> {
    let sig: Vec<&Token> = tokens.iter().filter(|t| t.significant()).collect();
    statements(src, tokens)
        .iter()
        .filter_map(|start| {
            let i = sig.iter().position(|t| t.start == start.start)?;
            let first = text(src, sig[i]);
            let name = if first == "default" {
                sig.get(i + 1).map(|t| text(src, t))?
            } else {
                first
            };
            (!matches!(name, "package" | "import")).then(|| name.to_string())
        })
        .collect()
}

/// Import aliases of a module: alias → imported path (`helpers` → `data.lib.helpers`).
fn imports(src: &str, tokens: &[Token]) -> Vec<(String, String)> {
    let sig: Vec<&Token> = tokens.iter().filter(|t| t.significant()).collect();
    let mut out = Vec::new();
    for (i, t) in sig.iter().enumerate() {
        if text(src, t) != "import" {
            continue;
        }
        let mut path = Vec::new();
        let mut j = i + 1;
        while let Some(t) = sig.get(j) {
            match t.kind {
                Kind::Ident if path.is_empty() || sig[j - 1].kind == Kind::Punct('.') => {
                    path.push(text(src, t));
                }
                Kind::Punct('.') => {}
                _ => break,
            }
            j += 1;
        }
        let alias = match (sig.get(j), sig.get(j + 1)) {
            (Some(a), Some(name)) if text(src, a) == "as" => text(src, name).to_string(),
            _ => path.last().map(|s| s.to_string()).unwrap_or_default(),
        };
        out.push((alias, path.join(".")));
    }
    out
}

/// The first call in `src` to a function that is neither a regorus builtin, one of `extra`,
/// defined in the module, nor defined in a library: OPA rejects such a template at compile
/// time, where regorus would only fail when evaluation reaches the call.
pub fn undefined_function(
    src: &str,
    libraries: &KnownFunctions,
    extra: &[&str],
) -> Option<RefError> {
    let tokens = tokenize(src);
    let local = defined_names(src, &tokens);
    let aliases = imports(src, &tokens);
    let heads: std::collections::BTreeSet<usize> =
        statements(src, &tokens).iter().map(|t| t.start).collect();
    let sig: Vec<&Token> = tokens.iter().filter(|t| t.significant()).collect();
    let builtins = &*regorus::unstable::BUILTINS;
    let mut i = 0;
    while i < sig.len() {
        let t = sig[i];
        let chain_start = t.kind == Kind::Ident
            && (i == 0 || sig[i - 1].kind != Kind::Punct('.'))
            && !heads.contains(&t.start)
            && !(i > 0 && text(src, sig[i - 1]) == "default");
        if !chain_start {
            i += 1;
            continue;
        }
        let mut parts = vec![text(src, t)];
        let mut j = i + 1;
        while j + 1 < sig.len()
            && sig[j].kind == Kind::Punct('.')
            && sig[j + 1].kind == Kind::Ident
            && sig[j].start == sig[j - 1].end
        {
            parts.push(text(src, sig[j + 1]));
            j += 2;
        }
        let is_call = sig
            .get(j)
            .is_some_and(|n| n.kind == Kind::Punct('(') && n.start == sig[j - 1].end);
        i = j;
        if !is_call || KEYWORDS.contains(&parts[0]) {
            continue;
        }
        let name = parts.join(".");
        // `set()` is the empty-set literal, not a call.
        let known = name == "set"
            || builtins.contains_key(name.as_str())
            || extra.contains(&name.as_str())
            || name == "print"
            || local.iter().any(|l| *l == parts[0])
            || libraries.library.contains(&name)
            || aliases.iter().any(|(alias, path)| {
                let target = std::iter::once(path.as_str())
                    .chain(parts[1..].iter().copied())
                    .collect::<Vec<_>>()
                    .join(".");
                *alias == parts[0] && libraries.library.contains(&target)
            });
        if !known {
            let (line, column) = line_col(src, t.start);
            return Some(RefError {
                line,
                column,
                message: format!("undefined function {name}"),
            });
        }
    }
    None
}

const KEYWORDS: [&str; 14] = [
    "not", "some", "in", "if", "else", "with", "as", "contains", "every", "default", "package",
    "import", "true", "false",
];

#[cfg(test)]
mod function_tests {
    use super::*;

    #[test]
    fn calls_must_resolve_to_builtins_local_or_library_functions() {
        let mut libs = KnownFunctions::default();
        libs.add_library("package lib.helpers\nhas_prefix(s, p) { startswith(s, p) }\n");
        let ok = "package a\nimport data.lib.helpers\nf(x) = y { y := lower(x) }\ndefault g(_) := false\nviolation[{\"msg\": m}] {\n  m := sprintf(\"%v\", [f(input.x)])\n  helpers.has_prefix(m, \"a\")\n  data.lib.helpers.has_prefix(m, \"b\")\n  object.get(input, \"k\", 1)\n  g(1)\n}\n";
        assert_eq!(undefined_function(ok, &libs, &["sprintf"]), None);
        let bad = "package a\nviolation[{\"msg\": \"x\"}] {\n  c := input.review.object.spec.containers[_]\n  no_such_function(c)\n}\n";
        let err = undefined_function(bad, &libs, &[]).unwrap();
        assert_eq!((err.line, err.column), (4, 3));
        assert_eq!(err.message, "undefined function no_such_function");
        assert!(
            undefined_function(
                "package a\nv { helpers.nope(1) }\nimport data.lib.helpers\n",
                &libs,
                &[]
            )
            .is_some()
        );
        let direct = "package a\nimport data.lib.helpers.has_prefix\nv { has_prefix(\"a\", \"b\"); s := set() }\n";
        assert_eq!(undefined_function(direct, &libs, &[]), None);
    }
}
