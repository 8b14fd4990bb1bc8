//! `verify`: runs gator Suites through the shared review path and returns results as data.
//!
//! Discovery, filters, per-test compilation and assertion semantics follow gator v3.23.0
//! (`pkg/gator/verify`); error texts reuse gator's wording so that output reads the same.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

use crate::data::DataSnapshot;
use crate::document::{self, Document};
use crate::error::PolicyError;
use crate::evaluate::{self, Context, enforcement_point};
use crate::gatekeeper::{Assertion, Case, Expectation, Suite, Test};
use crate::load::Sources;
use crate::policy_set::{BuildOptions, PolicySet};
use crate::review::{Review, Source, is_admission_review};
use crate::rvm::Evaluator;

/// Result of one case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// Skipped by `skip: true` or the filter.
    pub skipped: bool,
    /// Why it failed (gator's message).
    pub error: Option<String>,
    /// Time taken.
    #[serde(serialize_with = "seconds")]
    pub runtime: Duration,
    /// Every violation message the review returned (for failure reports).
    pub messages: Vec<String>,
    /// The failed assertion (for failure reports).
    pub failed_assertion: Option<FailedAssertion>,
    /// Suite file and line of the case, when known.
    pub location: Option<String>,
    /// `print()` output of the templates.
    pub prints: Vec<String>,
}

/// What a failing assertion expected.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedAssertion {
    /// `yes`, `no` or the count.
    pub violations: String,
    /// The message pattern, if any.
    pub message: Option<String>,
    /// How many results matched.
    pub matched: usize,
}

/// Result of one test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestResult {
    /// Test name.
    pub name: String,
    /// Skipped.
    pub skipped: bool,
    /// A test-level error (template or constraint problems, `invalid` expectations).
    pub error: Option<String>,
    /// Time taken.
    #[serde(serialize_with = "seconds")]
    pub runtime: Duration,
    /// Case results.
    pub cases: Vec<CaseResult>,
    /// Suite file and line of the test, when known.
    pub location: Option<String>,
}

/// Result of one suite file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SuiteResult {
    /// The path as gator prints it.
    pub path: String,
    /// The file on disk.
    pub file: PathBuf,
    /// Skipped by `skip: true`.
    pub skipped: bool,
    /// Time taken.
    #[serde(serialize_with = "seconds")]
    pub runtime: Duration,
    /// Test results.
    pub tests: Vec<TestResult>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl CaseResult {
    /// True when the case failed.
    pub fn is_failure(&self) -> bool {
        self.error.is_some()
    }
}

impl TestResult {
    /// True when the test or any case failed.
    pub fn is_failure(&self) -> bool {
        self.error.is_some() || self.cases.iter().any(CaseResult::is_failure)
    }
}

impl SuiteResult {
    /// True when any test failed.
    pub fn is_failure(&self) -> bool {
        self.tests.iter().any(TestResult::is_failure)
    }
}

/// A suite file found by discovery.
#[derive(Debug, Clone)]
pub struct SuiteFile {
    /// The path as gator prints it (`<argument><rest>`).
    pub display: String,
    /// The file.
    pub file: PathBuf,
    /// The parsed suite.
    pub suite: Suite,
}

/// Discovery or filter problems: nothing runs.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A path could not be read or a suite could not be parsed.
    #[error("listing test files: {0}")]
    Listing(String),
    /// The `--run` filter is invalid.
    #[error("compiling filter: invalid test filter: {0}")]
    Filter(String),
}

/// Finds the Suites a `gator verify` argument names: a file, a directory (its direct entries),
/// or `dir/...` (recursive). Other YAML is ignored; results are sorted by path.
pub fn discover(argument: &str) -> Result<Vec<SuiteFile>, VerifyError> {
    let (original, recursive) = match argument.strip_suffix("...") {
        Some(dir) => (dir.to_string(), true),
        None => (argument.to_string(), false),
    };
    let target = if original.is_empty() {
        "."
    } else {
        original.as_str()
    };
    let target = Path::new(target);
    let meta = std::fs::metadata(target)
        .map_err(|e| VerifyError::Listing(format!("stat {}: {e}", target.display())))?;
    let mut files = Vec::new();
    if !meta.is_dir() {
        if recursive {
            return Err(VerifyError::Listing(format!(
                "can only recursively traverse directories, not a directory: {:?}",
                target.display().to_string()
            )));
        }
        if !is_yaml(target) {
            let ext = target
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default();
            return Err(VerifyError::Listing(format!(
                "unsupported extension: {ext:?}"
            )));
        }
        files.push(target.to_path_buf());
    } else {
        collect(target, recursive, &mut files)?;
    }
    // gator sorts by the path string ("skip-suite/" before "skip/"), not by components.
    files.sort_by_key(|p| p.to_string_lossy().to_string());
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| {
            VerifyError::Listing(format!(
                "reading file {:?}: {e}",
                file.display().to_string()
            ))
        })?;
        let docs = document::parse_stream(&file.display().to_string(), &text)
            .map_err(|e| VerifyError::Listing(format!("invalid yaml: {e}")))?;
        let Some(doc) = docs.first() else { continue };
        if !Suite::is_suite(&doc.value) {
            continue;
        }
        let suite = Suite::from_value(&doc.value, &text)
            .map_err(|e| VerifyError::Listing(format!("invalid yaml: {}: {e}", file.display())))?;
        let display = display_path(&original, target, &file);
        out.push(SuiteFile {
            display,
            file,
            suite,
        });
    }
    Ok(out)
}

fn display_path(original: &str, target: &Path, file: &Path) -> String {
    let rest = file
        .strip_prefix(target)
        .map(|r| r.to_string_lossy().to_string())
        .unwrap_or_default();
    if rest.is_empty() {
        original.to_string()
    } else if original.ends_with('/') || original.is_empty() {
        format!("{original}{rest}")
    } else {
        format!("{original}/{rest}")
    }
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

fn collect(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), VerifyError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| VerifyError::Listing(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| VerifyError::Listing(format!("{}: {e}", dir.display())))?;
        let p = entry.path();
        if p.is_dir() {
            if recursive {
                collect(&p, recursive, out)?;
            }
        } else if is_yaml(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// gator's `--run` filter: `test` (matches a test or case name), or `test//case`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    test: Option<Regex>,
    case: Option<Regex>,
    and: bool,
}

impl Filter {
    /// Parses a filter; empty matches everything.
    pub fn new(filter: &str) -> Result<Filter, VerifyError> {
        if filter.is_empty() {
            return Ok(Filter::default());
        }
        let compile = |s: &str| Regex::new(s).map_err(|e| VerifyError::Filter(e.to_string()));
        let parts: Vec<&str> = filter.split("//").collect();
        match parts.as_slice() {
            [one] => Ok(Filter {
                test: Some(compile(one)?),
                case: None,
                and: false,
            }),
            [t, c] => Ok(Filter {
                test: Some(compile(t)?),
                case: Some(compile(c)?),
                and: true,
            }),
            _ => Err(VerifyError::Filter(
                "a filter may include at most one \"//\"".to_string(),
            )),
        }
    }

    fn matches_test(&self, t: &Test) -> bool {
        match (&self.test, self.and) {
            (None, _) => true,
            (Some(re), true) => re.is_match(&t.name),
            (Some(re), false) => {
                re.is_match(&t.name) || t.cases.iter().any(|c| re.is_match(&c.name))
            }
        }
    }

    fn matches_case(&self, test: &str, case: &str) -> bool {
        match (&self.test, &self.case) {
            (None, _) => true,
            (Some(t), Some(c)) => c.is_match(case) && t.is_match(test),
            (Some(re), None) => re.is_match(case) || re.is_match(test),
        }
    }
}

/// Runs one suite.
pub fn run_suite(suite: &SuiteFile, filter: &Filter) -> SuiteResult {
    run_suite_with(suite, filter, Evaluator::default())
}

/// Runs one suite with templates evaluated by `evaluator`.
pub fn run_suite_with(suite: &SuiteFile, filter: &Filter, evaluator: Evaluator) -> SuiteResult {
    let start = Instant::now();
    if suite.suite.skip {
        return SuiteResult {
            path: suite.display.clone(),
            file: suite.file.clone(),
            skipped: true,
            runtime: Duration::ZERO,
            tests: Vec::new(),
        };
    }
    let dir = suite.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let tests = suite
        .suite
        .tests
        .iter()
        .map(|t| {
            if t.skip || !filter.matches_test(t) {
                TestResult {
                    name: t.name.clone(),
                    skipped: true,
                    error: None,
                    runtime: Duration::ZERO,
                    cases: Vec::new(),
                    location: None,
                }
            } else {
                run_test(&dir, &suite.file, t, filter, evaluator)
            }
        })
        .collect();
    SuiteResult {
        path: suite.display.clone(),
        file: suite.file.clone(),
        skipped: false,
        runtime: start.elapsed(),
        tests,
    }
}

fn read_docs(dir: &Path, rel: &str) -> Result<Vec<Document>, String> {
    let path = dir.join(rel);
    let docs = document::read_file(&path).map_err(|e| e.to_string())?;
    if docs.is_empty() {
        return Err(format!(
            "missing objects: path {:?} defines no YAML objects",
            path.display().to_string()
        ));
    }
    Ok(docs)
}

/// Compiles the test's template, constraint and expansions.
fn build_set(dir: &Path, t: &Test, evaluator: Evaluator) -> Result<PolicySet, (String, bool)> {
    if t.template.is_empty() {
        return Err(("invalid Suite: missing template".into(), false));
    }
    let template = read_docs(dir, &t.template).map_err(|e| (e, false))?;
    if t.constraint.is_empty() {
        return Err(("invalid Suite: missing constraint".into(), false));
    }
    let constraint = read_docs(dir, &t.constraint).map_err(|e| (e, false))?;
    let mut sources = Sources::default();
    sources.templates.extend(template.into_iter().take(1));
    sources.constraints.extend(constraint.into_iter().take(1));
    if !t.expansion.is_empty() {
        let expansions = read_docs(dir, &t.expansion).map_err(|e| (e, false))?;
        sources.expansions.extend(expansions);
    }
    let options = BuildOptions {
        accept_unknown_actions: true,
        eval_budget: None,
        evaluator,
        builtin_expansions: false,
        precompiled: None,
    };
    PolicySet::build_with(&sources, options).map_err(|errors| {
        let schema = errors.0.iter().all(|e| e.is_schema_error());
        // The first error is the root cause: a broken template also leaves its constraint
        // without a kind, which gator never reports separately.
        let first = errors.0.first();
        // gator adds a constraint without the "adding constraint" wrapper when it checks the
        // test (`tryAddConstraint`), and words its own errors without tollgate's location.
        if let Some(message) = first.and_then(PolicyError::gator_message) {
            return (message, false);
        }
        let first = first.map(ToString::to_string).unwrap_or_default();
        let prefix = if errors.0.first().is_some_and(PolicyError::is_about_template) {
            "adding template"
        } else {
            "adding constraint"
        };
        (format!("{prefix}: {first}"), schema)
    })
}

fn run_test(
    dir: &Path,
    suite_file: &Path,
    t: &Test,
    filter: &Filter,
    evaluator: Evaluator,
) -> TestResult {
    let start = Instant::now();
    let built = build_set(dir, t, evaluator);
    let (error, cases) = match (built, t.invalid) {
        (Err((_, true)), true) => (None, Vec::new()),
        (Err((msg, _)), true) => (
            Some(format!(
                "constraint should have failed schema validation: got error {msg} but want schema error"
            )),
            Vec::new(),
        ),
        (Ok(_), true) => (
            Some(
                "constraint should have failed schema validation: got error <nil> but want schema error"
                    .to_string(),
            ),
            Vec::new(),
        ),
        (Err((msg, _)), false) => (Some(msg), Vec::new()),
        (Ok(set), false) => {
            let cases = t
                .cases
                .iter()
                .map(|c| {
                    if c.skip || !filter.matches_case(&t.name, &c.name) {
                        CaseResult {
                            name: c.name.clone(),
                            skipped: true,
                            error: None,
                            runtime: Duration::ZERO,
                            messages: Vec::new(),
                            failed_assertion: None,
                            location: None,
                            prints: Vec::new(),
                        }
                    } else {
                        run_case(dir, suite_file, &set, t, c)
                    }
                })
                .collect();
            (None, cases)
        }
    };
    TestResult {
        name: t.name.clone(),
        skipped: false,
        error,
        runtime: start.elapsed(),
        cases,
        location: t.line.map(|l| format!("{}:{l}", suite_file.display())),
    }
}

fn run_case(dir: &Path, suite_file: &Path, set: &PolicySet, t: &Test, c: &Case) -> CaseResult {
    let start = Instant::now();
    let location = c.line.map(|l| format!("{}:{l}", suite_file.display()));
    let mut result = CaseResult {
        name: c.name.clone(),
        skipped: false,
        error: None,
        runtime: Duration::ZERO,
        messages: Vec::new(),
        failed_assertion: None,
        location,
        prints: Vec::new(),
    };
    match review_case(dir, set, t, c) {
        Err(e) => result.error = Some(e),
        Ok((messages, prints)) => {
            result.prints = prints;
            for a in &c.assertions {
                if let Err((error, failed)) = check_assertion(a, &messages) {
                    result.error = Some(error);
                    result.failed_assertion = failed;
                    break;
                }
            }
            result.messages = messages;
        }
    }
    result.runtime = start.elapsed();
    result
}

/// Reviews the case's object and returns every violation message and the print() output.
fn review_case(
    dir: &Path,
    set: &PolicySet,
    t: &Test,
    c: &Case,
) -> Result<(Vec<String>, Vec<String>), String> {
    if c.object.is_empty() {
        return Err("invalid Case: must define object".into());
    }
    if c.assertions.is_empty() {
        return Err("invalid Case: assertions must be non-empty".into());
    }
    let path = dir.join(&c.object);
    let objects = read_docs(dir, &c.object)?;
    if objects.len() != 1 {
        return Err(format!(
            "object file must contain exactly one object: {:?} defines {} objects",
            path.display().to_string(),
            objects.len()
        ));
    }
    let mut data = DataSnapshot::default();
    for inv in &c.inventory {
        for doc in read_docs(dir, inv)? {
            data.sync(doc.value).map_err(|e| e.to_string())?;
        }
    }
    let object = objects
        .into_iter()
        .next()
        .map(|d| d.value)
        .unwrap_or(Value::Null);
    let is_admission_review = is_admission_review(&object);
    let review = if is_admission_review {
        let request = object
            .get("request")
            .filter(|r| !r.is_null())
            .cloned()
            .ok_or_else(|| {
                "missing an AdmissionRequest object: request did not actually pass in an AdmissionRequest"
                    .to_string()
            })?;
        Review::of_request(request)
            .map_err(|e| format!("not a valid AdmissionReview object: {e}"))?
    } else {
        Review::of_object(object, Source::Original)
    };
    let ctx = Context {
        enforcement_point: enforcement_point::GATOR,
        data: Some(&data),
        expand: !t.expansion.is_empty() && !is_admission_review,
        builtin_expansions: true,
        observe: None,
    };
    let outcome = evaluate::review(set, &review, &ctx).map_err(|e| e.to_string())?;
    let messages = outcome.violations.into_iter().map(|v| v.msg).collect();
    Ok((messages, outcome.prints))
}

/// gator's `Assertion.Run`, with its error texts.
fn check_assertion(
    a: &Assertion,
    messages: &[String],
) -> Result<(), (String, Option<FailedAssertion>)> {
    let regex = match &a.message {
        Some(m) => Some(Regex::new(m).map_err(|e| {
            (
                format!("message contains invalid regular expression: {e}"),
                None,
            )
        })?),
        None => None,
    };
    let matched = messages
        .iter()
        .filter(|m| regex.as_ref().is_none_or(|r| r.is_match(m)))
        .count();
    let containing = a
        .message
        .as_ref()
        .map(|m| format!(" containing {}", crate::rego::go_quote_str(m)))
        .unwrap_or_default();
    let got = format!("got {matched} violations{containing}");
    let (ok, want, label) = match &a.violations {
        Expectation::AtLeastOne => (
            matched > 0,
            "but want at least 1".to_string(),
            "yes".to_string(),
        ),
        Expectation::None => (matched == 0, "but want none".to_string(), "no".to_string()),
        Expectation::Exactly(n) => (
            matched as u64 == *n,
            format!("but want exactly {n}"),
            n.to_string(),
        ),
        Expectation::Invalid(_) => {
            return Err((
                "invalid yaml: assertion.violation, if set, must be a nonnegative integer, \"yes\", or \"no\""
                    .to_string(),
                None,
            ));
        }
    };
    if ok {
        return Ok(());
    }
    Err((
        format!(
            "unexpected number of violations: {got} {want}: got messages [{}]",
            messages.join(" ")
        ),
        Some(FailedAssertion {
            violations: label,
            message: a.message.clone(),
            matched,
        }),
    ))
}
