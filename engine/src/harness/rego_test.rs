//! `test`: runs Rego unit tests the way `opa test` (v1.22.3, `tester/runner.go`) does and returns
//! the results as data; [`super::rego_test_printer`] turns them into text.
//!
//! Owns discovery (`.rego` modules and `.json`/`.yaml` data documents under the given paths,
//! data nested by directory as OPA's loader nests it), finding the test rules (`test_*`, with
//! `todo_test_*` reported as skipped and duplicate names numbered `#01` as OPA numbers them),
//! evaluating each one in a fresh clone of one prepared regorus engine, and coverage. The engine
//! is configured as [`crate::compile`] configures template engines (non-strict builtin errors,
//! gathered `print()` output, Go `sprintf`, [`crate::rego::normalize`]) so unit tests see the
//! semantics templates get. It prints nothing and never exits the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;
use regorus::unstable::{Expr, Literal, Module, Query, Rule, RuleHead};
use regorus::{Engine, Value as RegoValue};
use serde_json::Value;

use crate::rego;

/// OPA's prefix for test rules.
pub const TEST_PREFIX: &str = "test_";
/// OPA's prefix for tests that are reported as skipped without running.
pub const SKIP_PREFIX: &str = "todo_test_";

/// How to load and run the tests.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Parse modules as Rego v0 (`--v0-compatible`); modules that `import rego.v1` stay v1.
    pub v0_compatible: bool,
    /// Only run tests whose full name (`data.pkg.test_x`) matches this regex (`--run`).
    pub run: Option<String>,
    /// Collect line coverage (`--coverage`).
    pub coverage: bool,
    /// File and directory name globs to skip while loading (`--ignore`), as OPA matches them:
    /// against the base name, below the given paths.
    pub ignore: Vec<String>,
}

/// What happened to one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Evaluated to `true`.
    Pass,
    /// Undefined, or a value other than `true`.
    Fail,
    /// A `todo_test_` rule: not run.
    Skip,
    /// Evaluation raised an error.
    Error,
}

impl Outcome {
    /// The word `opa test` prints for it.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIPPED",
            Outcome::Error => "ERROR",
        }
    }
}

/// A place in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// The file as discovered (argument joined with the relative path).
    pub file: String,
    /// 1-based line.
    pub row: u32,
    /// 1-based column.
    pub col: u32,
}

/// The last expression of a failing test's body that evaluation reached, which is where it
/// stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedAt {
    /// Where the expression starts.
    pub location: Location,
    /// Its source text.
    pub text: String,
}

/// One case of a test rule that defines an object (`test_x[name] if ...`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubResult {
    /// The key, as a string (JSON for non-string keys).
    pub name: String,
    /// True unless its value is `true` (or, for nested objects, all of theirs are).
    pub fail: bool,
    /// Nested cases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_results: Vec<SubResult>,
}

/// The result of one test rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestResult {
    /// Where the rule is defined.
    pub location: Location,
    /// The package path, `data.pkg`.
    pub package: String,
    /// The rule name, numbered (`test_x#01`) when a package defines it more than once.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
    /// The evaluation error, for [`Outcome::Error`].
    pub error: Option<String>,
    /// Evaluation time.
    #[serde(serialize_with = "nanos")]
    pub duration: Duration,
    /// `print()` output, one entry per call.
    pub output: Vec<String>,
    /// For failures, the expression where evaluation stopped, when it can be found.
    pub failed_at: Option<FailedAt>,
    /// Cases of an object-valued test rule.
    pub sub_results: Vec<SubResult>,
}

fn nanos<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl TestResult {
    /// `data.pkg.test_x`: the name `--run` matches against.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.package, self.name)
    }

    /// True when the test passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// Counts of a run, as `opa test` counts them (sub-results of object tests count one each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Skipped (`todo_test_`).
    pub skip: usize,
    /// Errored.
    pub error: usize,
}

impl Summary {
    /// Counts the results.
    pub fn of(results: &[TestResult]) -> Summary {
        let mut s = Summary::default();
        for r in results {
            match r.outcome {
                Outcome::Skip => s.skip += 1,
                Outcome::Error => s.error += 1,
                Outcome::Pass | Outcome::Fail if !r.sub_results.is_empty() => {
                    let mut leaves = Vec::new();
                    collect_leaves(&r.sub_results, &mut leaves);
                    for leaf in leaves {
                        if leaf.fail {
                            s.fail += 1;
                        } else {
                            s.pass += 1;
                        }
                    }
                }
                Outcome::Pass => s.pass += 1,
                Outcome::Fail => s.fail += 1,
            }
        }
        s
    }

    /// Everything counted.
    pub fn total(&self) -> usize {
        self.pass + self.fail + self.skip + self.error
    }
}

fn collect_leaves<'a>(subs: &'a [SubResult], out: &mut Vec<&'a SubResult>) {
    for s in subs {
        if s.sub_results.is_empty() {
            out.push(s);
        } else {
            collect_leaves(&s.sub_results, out);
        }
    }
}

/// Line coverage of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCoverage {
    /// Lines evaluated by some test.
    pub covered: BTreeSet<u32>,
    /// Lines with expressions that no test evaluated.
    pub not_covered: BTreeSet<u32>,
}

impl FileCoverage {
    /// Percentage of covered lines, 0 for a file without expressions (as OPA computes it).
    pub fn percent(&self) -> f64 {
        percent(self.covered.len(), self.not_covered.len())
    }
}

fn percent(covered: usize, not_covered: usize) -> f64 {
    let total = covered + not_covered;
    if total == 0 {
        0.0
    } else {
        100.0 * covered as f64 / total as f64
    }
}

/// Line coverage of every loaded module.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    /// Per file, keyed by the discovered path.
    pub files: BTreeMap<String, FileCoverage>,
}

impl Coverage {
    /// Covered lines over all files.
    pub fn covered_lines(&self) -> usize {
        self.files.values().map(|f| f.covered.len()).sum()
    }

    /// Not-covered lines over all files.
    pub fn not_covered_lines(&self) -> usize {
        self.files.values().map(|f| f.not_covered.len()).sum()
    }

    /// Overall percentage, as OPA computes it (covered lines over all counted lines).
    pub fn percent(&self) -> f64 {
        percent(self.covered_lines(), self.not_covered_lines())
    }
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// One result per test rule that the filter selected, in file and rule order.
    pub results: Vec<TestResult>,
    /// Line coverage, when asked for.
    pub coverage: Option<Coverage>,
}

impl Report {
    /// The counts.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.results)
    }
}

/// Problems that stop a run before any test runs (`opa test` exits 1 for them).
#[derive(Debug, thiserror::Error)]
pub enum RegoTestError {
    /// Files could not be read or parsed; each entry names its file (and line and column, with
    /// regorus's source snippet, for parse errors).
    #[error("{}", loading_message(.0))]
    Load(Vec<String>),
    /// The modules parse but do not compile together (unsafe variables, unknown functions ...).
    #[error("{}", compile_message(.0))]
    Compile(String),
    /// The `--run` regex is invalid.
    #[error("error parsing regexp: {0}")]
    Filter(String),
}

/// OPA's `1 error occurred: msg`; regorus messages that start with their `-->` snippet go on
/// the next line.
fn joined(head: &str, message: &str) -> String {
    if message.starts_with("-->") {
        format!("{head}\n{message}")
    } else {
        format!("{head} {message}")
    }
}

fn compile_message(error: &str) -> String {
    joined("1 error occurred:", error.trim())
}

fn loading_message(errors: &[String]) -> String {
    let body: Vec<&str> = errors.iter().map(|e| e.trim()).collect();
    match body.as_slice() {
        [one] => joined("1 error occurred during loading:", one),
        many => format!(
            "{} errors occurred during loading:\n{}",
            many.len(),
            many.join("\n")
        ),
    }
}

// === discovery ===

/// A file found under the given paths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    /// The path as OPA prints it.
    display: String,
    file: PathBuf,
    /// Directory names between the argument and the file (where a data document is nested).
    data_path: Vec<String>,
}

fn display_path(p: &Path) -> String {
    let mut out = PathBuf::new();
    for c in p.components() {
        if c != Component::CurDir {
            out.push(c);
        }
    }
    if out.as_os_str().is_empty() {
        ".".to_string()
    } else {
        out.display().to_string()
    }
}

fn is_rego(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "rego")
}

fn is_data(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e == "json" || e == "yaml" || e == "yml")
}

/// `filepath.Match` for the simple globs `--ignore` takes: `*`, `?` and literal characters.
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn walk(
    dir: &Path,
    data_path: &[String],
    ignore: &[String],
    found: &mut Vec<Found>,
    errors: &mut Vec<String>,
) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            errors.push(format!("{}: {e}", display_path(dir)));
            return;
        }
    };
    // Go's os.ReadDir sorts by name.
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if ignore.iter().any(|g| glob_match(g, &name)) {
            continue;
        }
        if path.is_dir() {
            let mut nested = data_path.to_vec();
            nested.push(name);
            walk(&path, &nested, ignore, found, errors);
        } else if is_rego(&path) || is_data(&path) {
            found.push(Found {
                display: display_path(&path),
                file: path,
                data_path: data_path.to_vec(),
            });
        }
    }
}

fn discover(paths: &[String], ignore: &[String]) -> Result<Vec<Found>, RegoTestError> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for arg in paths {
        let path = Path::new(arg);
        match std::fs::metadata(path) {
            Err(e) => errors.push(format!("stat {arg}: {e}")),
            Ok(meta) if meta.is_dir() => walk(path, &[], ignore, &mut found, &mut errors),
            Ok(_) if is_rego(path) || is_data(path) => found.push(Found {
                display: display_path(path),
                file: path.to_path_buf(),
                data_path: Vec::new(),
            }),
            Ok(_) => errors.push(format!("{arg}: unrecognized file type")),
        }
    }
    // The same file named twice (`test . x.rego`) is loaded once.
    let mut seen = BTreeSet::new();
    found.retain(|f| seen.insert((f.data_path.clone(), f.display.clone())));
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(RegoTestError::Load(errors))
    }
}

// === loading ===

/// A test rule found in a module.
#[derive(Debug, Clone)]
struct TestCase {
    location: Location,
    package: String,
    /// Name as reported (`test_x#01` for a duplicate).
    name: String,
    /// Rule path to evaluate, below the package.
    query_name: String,
    skip: bool,
    /// The rule's head has a non-ground tail (`test_x[name]`): its value is an object of cases.
    object: bool,
    /// Statements of the rule's bodies: (first line, last line, column, text).
    statements: Vec<(u32, u32, u32, String)>,
}

/// The modules and data, parsed and prepared once; every test runs in a clone.
#[derive(Debug)]
pub struct Suite {
    engine: Engine,
    tests: Vec<TestCase>,
    /// For each module file, the lines regorus would count for coverage.
    coverable: BTreeMap<String, BTreeSet<u32>>,
}

/// A parsed module with the facts the runner needs.
struct Parsed {
    display: String,
    source: String,
    package: String,
    rules: Vec<RuleInfo>,
    coverable: BTreeSet<u32>,
}

struct RuleInfo {
    /// Ground components of the head, below the package.
    ground: Vec<String>,
    /// Whether the head continues past its ground prefix.
    dynamic_tail: bool,
    is_function: bool,
    line: u32,
    col: u32,
    /// Byte range of the head's first identifier in the parsed text.
    name_span: (usize, usize),
    statements: Vec<(u32, u32, u32, String)>,
    /// For `test_x[name] if { ... }`: where to report each case reached (the end of the first
    /// statement that mentions `name`) and the variable.
    case_probe: Option<(usize, String)>,
}

/// Whether a module is v1 under the given default: `import rego.v1` makes a v0 module v1.
fn module_is_v1(src: &str, v0_default: bool) -> bool {
    !v0_default
        || src
            .lines()
            .any(|l| l.trim_start().starts_with("import rego.v1"))
}

fn ref_components(expr: &Expr, out: &mut Vec<Option<String>>) -> Option<(usize, usize)> {
    match expr {
        Expr::Var { span, .. } => {
            out.push(Some(span.text().to_string()));
            Some((span.start as usize, span.end as usize))
        }
        Expr::RefDot { refr, field, .. } => {
            let root = ref_components(refr, out);
            out.push(Some(field.0.text().to_string()));
            root
        }
        Expr::RefBrack { refr, index, .. } => {
            let root = ref_components(refr, out);
            match index.as_ref() {
                Expr::String { value, .. } | Expr::RawString { value, .. } => {
                    out.push(value.as_string().ok().map(|s| s.to_string()));
                }
                _ => out.push(None),
            }
            root
        }
        _ => None,
    }
}

fn query_statements(query: &Query, out: &mut Vec<(u32, u32, u32, String)>) {
    for stmt in &query.stmts {
        let text = stmt.span.text();
        let lines = u32::try_from(text.matches('\n').count()).unwrap_or(0);
        out.push((
            stmt.span.line,
            stmt.span.line + lines,
            stmt.span.col,
            text.to_string(),
        ));
    }
}

/// The lines regorus's coverage report counts for a rule (mirrors its `gather_coverage_*`).
fn coverable_query(query: &Query, lines: &mut BTreeSet<u32>) {
    for stmt in &query.stmts {
        match &stmt.literal {
            Literal::SomeVars { .. } => {}
            Literal::SomeIn {
                value, collection, ..
            } => {
                coverable_expr(value, lines);
                coverable_expr(collection, lines);
            }
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => {
                coverable_expr(expr, lines);
            }
            Literal::Every { domain, query, .. } => {
                coverable_expr(domain, lines);
                coverable_query(query, lines);
            }
        }
    }
}

fn coverable_expr(expr: &Expr, lines: &mut BTreeSet<u32>) {
    match expr {
        Expr::ArrayCompr { query, .. }
        | Expr::SetCompr { query, .. }
        | Expr::ObjectCompr { query, .. } => {
            coverable_query(query, lines);
            return;
        }
        _ => {
            lines.insert(expr.span().line);
        }
    }
    match expr {
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            items.iter().for_each(|i| coverable_expr(i, lines));
        }
        Expr::Object { fields, .. } => {
            for (_, k, v) in fields {
                coverable_expr(k, lines);
                coverable_expr(v, lines);
            }
        }
        Expr::Call { params, .. } => params.iter().for_each(|p| coverable_expr(p, lines)),
        Expr::UnaryExpr { expr, .. } => coverable_expr(expr, lines),
        Expr::RefDot { refr, .. } => coverable_expr(refr, lines),
        Expr::RefBrack { refr, index, .. } => {
            coverable_expr(refr, lines);
            coverable_expr(index, lines);
        }
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            coverable_expr(lhs, lines);
            coverable_expr(rhs, lines);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                coverable_expr(k, lines);
            }
            coverable_expr(value, lines);
            coverable_expr(collection, lines);
        }
        _ => {}
    }
}

/// Whether `text` mentions the identifier `var` (not as part of a longer name, a field after
/// `.`, or a string).
fn mentions(text: &str, var: &str) -> bool {
    let mut code = String::with_capacity(text.len());
    let mut quote = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                code.push(' ');
            }
            None => {
                if c == '"' || c == '`' {
                    quote = Some(c);
                    code.push(' ');
                } else {
                    code.push(c);
                }
            }
        }
    }
    let text = code.as_str();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(var).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + var.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident) && before != Some('.')
    })
}

/// OPA reports every case of an object-valued test, failed ones included, by injecting
/// `internal.test_case([name])` after the statement that binds the key and tracing it. regorus
/// has no tracer, so a `print` of a marker and the key goes there instead (on the same line, so
/// locations hold); cases printed but missing from the object failed.
fn case_probe(head: &RuleHead, bodies: &[regorus::unstable::RuleBody]) -> Option<(usize, String)> {
    let RuleHead::Compr { refr, .. } = head else {
        return None;
    };
    let Expr::RefBrack { index, .. } = refr.as_ref() else {
        return None;
    };
    let Expr::Var { span, .. } = index.as_ref() else {
        return None;
    };
    let var = span.text().to_string();
    let body = bodies.first()?;
    let stmt = body
        .query
        .stmts
        .iter()
        .find(|s| mentions(s.span.text(), &var))?;
    Some((stmt.span.end as usize, var))
}

/// The marker the case probe prints before the key.
const CASE_MARKER: &str = "__tollgate_test_case__";

fn rule_info(rule: &Rule, coverable: &mut BTreeSet<u32>) -> Option<RuleInfo> {
    let span = rule.span();
    let mut probe = None;
    let (refr, is_function, statements) = match rule {
        Rule::Spec { head, bodies, .. } => {
            let (refr, is_function) = match head {
                RuleHead::Compr { refr, assign, .. } => {
                    if let Some(a) = assign {
                        coverable_expr(&a.value, coverable);
                    }
                    (refr, false)
                }
                RuleHead::Set { refr, key, .. } => {
                    if let Some(k) = key {
                        coverable_expr(k, coverable);
                    }
                    (refr, false)
                }
                RuleHead::Func { refr, assign, .. } => {
                    if let Some(a) = assign {
                        coverable_expr(&a.value, coverable);
                    }
                    (refr, true)
                }
            };
            probe = case_probe(head, bodies);
            let mut statements = Vec::new();
            for b in bodies {
                coverable_query(&b.query, coverable);
                query_statements(&b.query, &mut statements);
            }
            (refr, is_function, statements)
        }
        Rule::Default { refr, value, .. } => {
            coverable_expr(value, coverable);
            (refr, false, Vec::new())
        }
    };
    let mut components = Vec::new();
    let name_span = ref_components(refr, &mut components)?;
    let ground: Vec<String> = components.iter().map_while(Clone::clone).collect();
    let dynamic_tail = ground.len() < components.len();
    Some(RuleInfo {
        ground,
        dynamic_tail,
        is_function,
        line: span.line,
        col: span.col,
        name_span,
        statements,
        case_probe: probe,
    })
}

fn parse_module(display: &str, source: String, v0: bool) -> Result<Parsed, String> {
    let mut scratch = Engine::new();
    scratch.set_rego_v0(v0);
    let package = scratch
        .add_policy(display.to_string(), source.clone())
        .map_err(|e| e.to_string())?;
    let module: &Module = scratch
        .get_modules()
        .last()
        .ok_or_else(|| format!("{display}: no module parsed"))?;
    let mut coverable = BTreeSet::new();
    let rules = module
        .policy
        .iter()
        .filter_map(|r| rule_info(r, &mut coverable))
        .collect();
    Ok(Parsed {
        display: display.to_string(),
        source,
        package,
        rules,
        coverable,
    })
}

/// Merges a data document into `data` as OPA's loader does: objects merge, anything else that
/// meets an existing value is a conflict.
fn merge_data(into: &mut Value, doc: Value, file: &str) -> Result<(), String> {
    fn merge(into: &mut Value, doc: Value, at: &mut Vec<String>) -> Result<(), Vec<String>> {
        match (into, doc) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(existing) => {
                            at.push(k);
                            merge(existing, v, at)?;
                            at.pop();
                        }
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
                Ok(())
            }
            _ => Err(at.clone()),
        }
    }
    merge(into, doc, &mut Vec::new()).map_err(|at| {
        let mut path = String::from("data");
        for k in at {
            path.push('.');
            path.push_str(&k);
        }
        format!(
            "{file}: merge error: conflicting values at {path}, data from multiple files must not overlap"
        )
    })
}

fn read_data(found: &Found) -> Result<Value, String> {
    let text =
        std::fs::read_to_string(&found.file).map_err(|e| format!("{}: {e}", found.display))?;
    let is_json = found.file.extension().is_some_and(|e| e == "json");
    let doc: Value = if is_json {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", found.display))?
    } else {
        let docs =
            crate::document::parse_stream(&found.display, &text).map_err(|e| e.to_string())?;
        docs.into_iter()
            .next()
            .map(|d| d.value)
            .unwrap_or(Value::Null)
    };
    if !doc.is_object() {
        return Err(format!(
            "{}: bad document type: expected an object at the top level",
            found.display
        ));
    }
    let mut nested = doc;
    for part in found.data_path.iter().rev() {
        let mut m = serde_json::Map::new();
        m.insert(part.clone(), nested);
        nested = Value::Object(m);
    }
    Ok(nested)
}

/// Numbers duplicate test names per package the way OPA's `rewriteDuplicateTestNames` does (the
/// second `test_x` is `test_x#01`), renaming the rule in the source (same line, so locations
/// hold) so that each definition is evaluated on its own.
fn collect_tests(parsed: &mut [Parsed]) -> Vec<TestCase> {
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut tests = Vec::new();
    for module in parsed.iter_mut() {
        let mut edits: Vec<((usize, usize), String)> = Vec::new();
        for rule in &module.rules {
            if rule.is_function {
                continue;
            }
            let Some(at) = rule
                .ground
                .iter()
                .position(|c| c.starts_with(TEST_PREFIX) || c.starts_with(SKIP_PREFIX))
            else {
                continue;
            };
            let name_parts = &rule.ground[..=at];
            let last = &name_parts[at];
            let base = name_parts.join(".");
            let skip = last.starts_with(SKIP_PREFIX);
            let key = format!("{}.{base}", module.package);
            let seen = if skip {
                0
            } else {
                let n = count.entry(key).or_insert(0);
                *n += 1;
                *n - 1
            };
            let object = rule.dynamic_tail && at + 1 == rule.ground.len();
            if let (true, false, Some((end, var))) = (object, skip, &rule.case_probe) {
                edits.push(((*end, *end), format!("; print(\"{CASE_MARKER}\", {var})")));
            }
            let (name, query_name) = if seen > 0 && name_parts.len() == 1 {
                let renamed = format!("{last}__tollgate_dup{seen:02}");
                edits.push((rule.name_span, renamed.clone()));
                (format!("{last}#{seen:02}"), renamed)
            } else {
                (base.clone(), base)
            };
            tests.push(TestCase {
                location: Location {
                    file: module.display.clone(),
                    row: rule.line,
                    col: rule.col,
                },
                package: module.package.clone(),
                name,
                query_name,
                skip,
                object,
                statements: rule.statements.clone(),
            });
        }
        // Back to front, so that earlier offsets stay valid.
        edits.sort_by_key(|r| std::cmp::Reverse(r.0.0));
        for ((start, end), name) in edits {
            if module.source.is_char_boundary(start) && module.source.is_char_boundary(end) {
                module.source.replace_range(start..end, &name);
            }
        }
    }
    tests
}

impl Suite {
    /// Discovers and parses every module and data file under `paths`, and prepares the engine.
    pub fn load(paths: &[String], options: &Options) -> Result<Suite, RegoTestError> {
        let found = discover(paths, &options.ignore)?;
        let v0 = options.v0_compatible;
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        let mut data = Value::Object(serde_json::Map::new());
        for f in &found {
            if is_rego(&f.file) {
                let text = match std::fs::read_to_string(&f.file) {
                    Ok(t) => t,
                    Err(e) => {
                        errors.push(format!("{}: {e}", f.display));
                        continue;
                    }
                };
                let normalized = rego::normalize(&text, module_is_v1(&text, v0));
                match parse_module(&f.display, normalized, v0) {
                    Ok(p) => parsed.push(p),
                    Err(e) => errors.push(e),
                }
            } else {
                match read_data(f).and_then(|doc| merge_data(&mut data, doc, &f.display)) {
                    Ok(()) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
        if !errors.is_empty() {
            return Err(RegoTestError::Load(errors));
        }
        let tests = collect_tests(&mut parsed);
        let mut engine =
            rego::opa_compatible_engine(!v0).map_err(|e| RegoTestError::Compile(e.to_string()))?;
        engine
            .add_data(RegoValue::from(data))
            .map_err(|e| RegoTestError::Load(vec![e.to_string()]))?;
        let mut coverable = BTreeMap::new();
        for p in parsed {
            engine
                .add_policy(p.display.clone(), p.source)
                .map_err(|e| RegoTestError::Load(vec![e.to_string()]))?;
            coverable.insert(p.display, p.coverable);
        }
        // The first evaluation runs regorus's analysis of every module (unsafe variables,
        // unknown functions, recursion) and leaves the engine prepared, so clones skip it.
        engine
            .eval_query("true".to_string(), false)
            .map_err(|e| RegoTestError::Compile(e.to_string()))?;
        let _ = engine.take_prints();
        Ok(Suite {
            engine,
            tests,
            coverable,
        })
    }

    /// Runs the tests the filter selects, each in a fresh clone of the prepared engine.
    pub fn run(&self, options: &Options) -> Result<Report, RegoTestError> {
        let filter = match options.run.as_deref() {
            Some(r) if !r.is_empty() => {
                Some(Regex::new(r).map_err(|e| RegoTestError::Filter(e.to_string()))?)
            }
            _ => None,
        };
        let mut base = self.engine.clone();
        if options.coverage {
            base.set_enable_coverage(true);
        }
        let mut results = Vec::new();
        let mut coverage = Coverage::default();
        for test in &self.tests {
            let full = format!("{}.{}", test.package, test.name);
            if filter.as_ref().is_some_and(|f| !f.is_match(&full)) {
                continue;
            }
            let mut result = TestResult {
                location: test.location.clone(),
                package: test.package.clone(),
                name: test.name.clone(),
                outcome: Outcome::Skip,
                error: None,
                duration: Duration::ZERO,
                output: Vec::new(),
                failed_at: None,
                sub_results: Vec::new(),
            };
            if test.skip {
                results.push(result);
                continue;
            }
            let mut engine = base.clone();
            let query = format!("{}.{}", test.package, test.query_name);
            let started = Instant::now();
            let value = engine.eval_rule(query);
            result.duration = started.elapsed();
            let mut cases = Vec::new();
            for p in engine.take_prints().unwrap_or_default() {
                let line = rego::strip_print_location(&p);
                match line.strip_prefix(CASE_MARKER) {
                    Some(case) => cases.push(case.trim_start().to_string()),
                    None => result.output.push(line.to_string()),
                }
            }
            match value {
                Err(e) => {
                    result.outcome = Outcome::Error;
                    result.error = Some(e.to_string().trim().to_string());
                }
                Ok(v)
                    if test.object && (matches!(v, RegoValue::Object(_)) || !cases.is_empty()) =>
                {
                    result.sub_results = sub_results(&v);
                    for case in cases {
                        if !result.sub_results.iter().any(|s| s.name == case) {
                            result.sub_results.push(SubResult {
                                name: case,
                                fail: true,
                                sub_results: Vec::new(),
                            });
                        }
                    }
                    result.sub_results.sort_by(|a, b| a.name.cmp(&b.name));
                    let mut leaves = Vec::new();
                    collect_leaves(&result.sub_results, &mut leaves);
                    result.outcome = if leaves.iter().any(|l| l.fail) {
                        Outcome::Fail
                    } else {
                        Outcome::Pass
                    };
                }
                Ok(RegoValue::Bool(true)) => result.outcome = Outcome::Pass,
                Ok(_) => result.outcome = Outcome::Fail,
            }
            if options.coverage {
                merge_coverage(&mut coverage, &engine);
            }
            if result.outcome == Outcome::Fail {
                result.failed_at = self.failed_at(test);
            }
            results.push(result);
        }
        let coverage = options.coverage.then(|| self.finish_coverage(coverage));
        Ok(Report { results, coverage })
    }

    /// Reruns a failed test with coverage on and returns the last statement of its body that
    /// evaluation reached: where it stopped.
    fn failed_at(&self, test: &TestCase) -> Option<FailedAt> {
        if test.statements.is_empty() {
            return None;
        }
        let mut engine = self.engine.clone();
        engine.set_enable_coverage(true);
        let _ = engine.eval_rule(format!("{}.{}", test.package, test.query_name));
        let report = engine.get_coverage_report().ok()?;
        let file = report.files.iter().find(|f| f.path == test.location.file)?;
        test.statements
            .iter()
            .rev()
            .find(|(first, last, _, _)| file.covered.range(*first..=*last).next().is_some())
            .map(|(line, _, col, text)| FailedAt {
                location: Location {
                    file: test.location.file.clone(),
                    row: *line,
                    col: *col,
                },
                text: text.clone(),
            })
    }

    fn finish_coverage(&self, mut coverage: Coverage) -> Coverage {
        for (file, lines) in &self.coverable {
            let entry = coverage.files.entry(file.clone()).or_default();
            if entry.covered.is_empty() && entry.not_covered.is_empty() {
                entry.not_covered = lines.clone();
            }
        }
        for f in coverage.files.values_mut() {
            let covered = f.covered.clone();
            f.not_covered.retain(|l| !covered.contains(l));
        }
        coverage
    }

    /// How many test rules were found (before filtering).
    pub fn test_count(&self) -> usize {
        self.tests.len()
    }
}

fn merge_coverage(into: &mut Coverage, engine: &Engine) {
    let Ok(report) = engine.get_coverage_report() else {
        return;
    };
    for f in report.files {
        let entry = into.files.entry(f.path).or_default();
        entry.covered.extend(f.covered);
        entry.not_covered.extend(f.not_covered);
    }
}

fn sub_results(v: &RegoValue) -> Vec<SubResult> {
    let RegoValue::Object(map) = v else {
        return Vec::new();
    };
    let mut out: Vec<SubResult> = map
        .iter()
        .map(|(k, v)| {
            let name = match k {
                RegoValue::String(s) => s.to_string(),
                other => other.to_json_str().unwrap_or_default(),
            };
            match v {
                RegoValue::Object(_) => {
                    let nested = sub_results(v);
                    let mut leaves = Vec::new();
                    collect_leaves(&nested, &mut leaves);
                    SubResult {
                        name,
                        fail: leaves.iter().any(|l| l.fail),
                        sub_results: nested,
                    }
                }
                RegoValue::Bool(true) => SubResult {
                    name,
                    fail: false,
                    sub_results: Vec::new(),
                },
                _ => SubResult {
                    name,
                    fail: true,
                    sub_results: Vec::new(),
                },
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Loads and runs in one step.
pub fn run(paths: &[String], options: &Options) -> Result<Report, RegoTestError> {
    Suite::load(paths, options)?.run(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_filepath_match() {
        for (p, n, want) in [
            (".*", ".git", true),
            (".*", "src", false),
            ("*_test.rego", "a_test.rego", true),
            ("*_test.rego", "a.rego", false),
            ("a?c", "abc", true),
            ("target", "target", true),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} {n}");
        }
    }

    #[test]
    fn print_location_is_stripped_only_when_it_is_one() {
        assert_eq!(rego::strip_print_location("a.rego:3: hello"), "hello");
    }

    #[test]
    fn duplicate_names_are_numbered_and_renamed_in_place() {
        let src = "package p\n\ntest_a if true\n\ntest_a if false\n".to_string();
        let mut parsed = vec![parse_module("p.rego", src, false).unwrap()];
        let tests = collect_tests(&mut parsed);
        let names: Vec<_> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["test_a", "test_a#01"]);
        assert!(
            parsed[0]
                .source
                .contains("\ntest_a__tollgate_dup01 if false\n")
        );
        assert_eq!(tests[1].location.row, 5);
    }

    #[test]
    fn data_merges_and_reports_conflicts() {
        let mut into = serde_json::json!({"a": {"b": 1}});
        merge_data(&mut into, serde_json::json!({"a": {"c": 2}}), "x.json").unwrap();
        assert_eq!(into, serde_json::json!({"a": {"b": 1, "c": 2}}));
        let err = merge_data(&mut into, serde_json::json!({"a": {"b": 3}}), "y.json").unwrap_err();
        assert_eq!(
            err,
            "y.json: merge error: conflicting values at data.a.b, data from multiple files must not overlap"
        );
    }

    #[test]
    fn summary_counts_object_cases_as_leaves() {
        let r = TestResult {
            location: Location {
                file: "f".into(),
                row: 1,
                col: 1,
            },
            package: "data.p".into(),
            name: "test_x".into(),
            outcome: Outcome::Fail,
            error: None,
            duration: Duration::ZERO,
            output: Vec::new(),
            failed_at: None,
            sub_results: vec![
                SubResult {
                    name: "a".into(),
                    fail: false,
                    sub_results: Vec::new(),
                },
                SubResult {
                    name: "b".into(),
                    fail: true,
                    sub_results: Vec::new(),
                },
            ],
        };
        let s = Summary::of(&[r]);
        assert_eq!((s.pass, s.fail, s.total()), (1, 1, 2));
    }
}
