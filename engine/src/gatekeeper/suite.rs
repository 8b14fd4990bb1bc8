//! gator's `Suite` format (`test.gatekeeper.sh/v1alpha1`, kind `Suite`).

use serde_json::Value;

use super::fields::{FieldError, Fields, type_name};
use super::{SUITE_GROUP, split_api_version};

/// What an assertion expects of the number of matching violations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// `yes` (also the default): at least one.
    AtLeastOne,
    /// `no`: none.
    None,
    /// An exact count.
    Exactly(u64),
    /// Anything else; gator reports it as invalid YAML when the case runs.
    Invalid(String),
}

/// One assertion of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The expected count.
    pub violations: Expectation,
    /// An unanchored RE2 pattern on each result's message.
    pub message: Option<String>,
}

/// One case: an object to review and assertions on the result.
#[derive(Debug, Clone)]
pub struct Case {
    /// Case name.
    pub name: String,
    /// Path of the object file, relative to the suite.
    pub object: String,
    /// Inventory files, relative to the suite.
    pub inventory: Vec<String>,
    /// Assertions.
    pub assertions: Vec<Assertion>,
    /// Skip this case.
    pub skip: bool,
    /// 1-based line of the case in the suite file, when found.
    pub line: Option<usize>,
}

/// One test: a template, a constraint and its cases.
#[derive(Debug, Clone)]
pub struct Test {
    /// Test name.
    pub name: String,
    /// Template path.
    pub template: String,
    /// Constraint path.
    pub constraint: String,
    /// ExpansionTemplate path.
    pub expansion: String,
    /// Expect the constraint to fail schema validation.
    pub invalid: bool,
    /// Skip this test.
    pub skip: bool,
    /// Cases.
    pub cases: Vec<Case>,
    /// 1-based line of the test in the suite file, when found.
    pub line: Option<usize>,
}

/// A gator Suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Skip the whole suite.
    pub skip: bool,
    /// Tests in order.
    pub tests: Vec<Test>,
}

impl Suite {
    /// True when the document is a Suite: group `test.gatekeeper.sh`, kind `Suite`, any version
    /// (gator ignores every other YAML).
    pub fn is_suite(value: &Value) -> bool {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        split_api_version(api_version).0 == SUITE_GROUP
            && value.get("kind").and_then(Value::as_str) == Some("Suite")
    }

    /// Reads a Suite. `source` is the file text, used to find each case's line.
    pub fn from_value(value: &Value, source: &str) -> Result<Self, FieldError> {
        let root = Fields::new(Some(value), "")?;
        let mut tests = Vec::new();
        let mut search_from = 0;
        // Tests have their own cursor, so that finding a test's line never moves the search for
        // its cases past them (a test's `name:` may follow its `cases:`).
        let mut test_search_from = 0;
        for (i, t) in root.array("tests")?.iter().enumerate() {
            let t = Fields::new(Some(t), format!("tests[{i}]"))?;
            let test_name = t.opt_str("name")?.unwrap_or("").to_string();
            let test_line = find_line(source, &test_name, &mut test_search_from);
            // A case named like its test is below the test's own `name:` line.
            if let Some(line) = test_line {
                search_from = search_from.max(line);
            }
            let mut cases = Vec::new();
            for (j, c) in t.array("cases")?.iter().enumerate() {
                let c = Fields::new(Some(c), format!("{}[{j}]", t.path_of("cases")))?;
                let name = c.opt_str("name")?.unwrap_or("").to_string();
                let line = find_line(source, &name, &mut search_from);
                let mut assertions = Vec::new();
                for (k, a) in c.array("assertions")?.iter().enumerate() {
                    let a = Fields::new(Some(a), format!("{}[{k}]", c.path_of("assertions")))?;
                    assertions.push(Assertion {
                        violations: expectation(a.get("violations"), &a.path_of("violations"))?,
                        message: a.opt_str("message")?.map(str::to_string),
                    });
                }
                cases.push(Case {
                    name,
                    object: c.opt_str("object")?.unwrap_or("").to_string(),
                    inventory: c.strings("inventory")?,
                    assertions,
                    skip: c.bool("skip")?,
                    line,
                });
            }
            tests.push(Test {
                name: test_name,
                template: t.opt_str("template")?.unwrap_or("").to_string(),
                constraint: t.opt_str("constraint")?.unwrap_or("").to_string(),
                expansion: t.opt_str("expansion")?.unwrap_or("").to_string(),
                invalid: t.bool("invalid")?,
                skip: t.bool("skip")?,
                cases,
                line: test_line,
            });
        }
        Ok(Suite {
            skip: root.bool("skip")?,
            tests,
        })
    }
}

/// `violations:` is an int-or-string. Suites are YAML 1.2 (as gator reads them), so `yes`/`no`
/// are strings; a boolean `true`/`false` is rejected, as gator rejects the whole file.
fn expectation(value: Option<&Value>, path: &str) -> Result<Expectation, FieldError> {
    Ok(match value {
        None => Expectation::AtLeastOne,
        Some(Value::String(s)) if s == "yes" => Expectation::AtLeastOne,
        Some(Value::String(s)) if s == "no" => Expectation::None,
        Some(Value::String(s)) => Expectation::Invalid(s.clone()),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => Expectation::Exactly(n),
            None => Expectation::Invalid(n.to_string()),
        },
        Some(other) => {
            return Err(FieldError::new(
                path,
                format!(
                    "expected integer, \"yes\" or \"no\", got {}",
                    type_name(other)
                ),
            ));
        }
    })
}

/// Finds the line of `- name: <case>` at or after `from`, so failures can point at the case.
fn find_line(source: &str, name: &str, from: &mut usize) -> Option<usize> {
    if name.is_empty() {
        return None;
    }
    let lines: Vec<&str> = source.lines().collect();
    for (i, line) in lines.iter().enumerate().skip(*from) {
        let t = line.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = t.strip_prefix("name:") {
            let v = rest.trim().trim_matches(['"', '\'']);
            if v == name {
                *from = i + 1;
                return Some(i + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn suite_with(violations: Value) -> Result<Suite, FieldError> {
        let doc = json!({"apiVersion": "test.gatekeeper.sh/v1alpha1", "kind": "Suite", "tests": [
            {"name": "t", "template": "t.yaml", "constraint": "c.yaml", "cases": [
                {"name": "c", "object": "o.yaml", "assertions": [{"violations": violations}]}]}]});
        Suite::from_value(&doc, "")
    }

    #[test]
    fn violations_accept_yes_no_and_counts_but_not_booleans() {
        let expect = |v: Value| {
            suite_with(v).unwrap().tests[0].cases[0].assertions[0]
                .violations
                .clone()
        };
        assert_eq!(expect(json!("yes")), Expectation::AtLeastOne);
        assert_eq!(expect(json!("no")), Expectation::None);
        assert_eq!(expect(json!(2)), Expectation::Exactly(2));
        assert_eq!(expect(json!("maybe")), Expectation::Invalid("maybe".into()));
        let err = suite_with(json!(false)).unwrap_err();
        assert_eq!(err.field, "tests[0].cases[0].assertions[0].violations");
    }
}
