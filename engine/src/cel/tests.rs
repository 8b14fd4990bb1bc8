#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;
use crate::gatekeeper::{CelSource, CelValidation};

fn source(validations: &[(&str, &str, &str)]) -> CelSource {
    CelSource {
        validations: validations
            .iter()
            .map(|(e, m, me)| CelValidation {
                expression: e.to_string(),
                message: m.to_string(),
                message_expression: me.to_string(),
            })
            .collect(),
        match_conditions: Vec::new(),
        variables: Vec::new(),
        ignore_failures: false,
        field: "spec.targets[0].code[0].source".into(),
    }
}

fn request(object: Value) -> Value {
    json!({
        "uid": "", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "", "resource": ""},
        "name": "cm", "namespace": "default", "operation": "", "userInfo": {},
        "object": object, "oldObject": null, "options": null, "namespaceObject": {}
    })
}

fn cm() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "cm", "namespace": "default", "labels": {"app": "web", "team": "a"}},
           "data": {"n": "3"}})
}

fn run(src: &CelSource, params: Option<Value>) -> Vec<String> {
    let (program, _) = CelProgram::compile(src).unwrap();
    let req = request(cm());
    program
        .evaluate(&Input {
            request: &req,
            namespace: None,
            parameters: params.as_ref(),
        })
        .into_iter()
        .map(|r| r.msg)
        .collect()
}

/// The value of one expression on the ConfigMap, `Ok(true)` meaning no result.
fn eval(expression: &str) -> Result<bool, String> {
    let msgs = run(&source(&[(expression, "denied", "")]), None);
    match msgs.as_slice() {
        [] => Ok(true),
        [m] if m == "denied" => Ok(false),
        other => Err(other.join("|")),
    }
}

fn holds(expression: &str) {
    assert_eq!(eval(expression), Ok(true), "{expression}");
}

#[test]
fn standard_macros_and_functions() {
    for e in [
        "has(object.metadata.labels)",
        "!has(object.spec)",
        "'app' in object.metadata.labels",
        "object.metadata.labels.all(k, k.size() > 2)",
        "object.metadata.labels.exists(k, k == 'team')",
        "[1, 2, 3].exists_one(x, x > 2)",
        "[1, 2, 3].map(x, x * 2) == [2, 4, 6]",
        "[1, 2, 3].filter(x, x > 1).size() == 2",
        "object.metadata.name.startsWith('c') && object.metadata.name.endsWith('m')",
        "object.metadata.name.matches('^c.$')",
        "'a,b,c'.split(',') == ['a', 'b', 'c']",
        "['a', 'b'].join('-') == 'a-b'",
        "['a', 'b'].join() == 'ab'",
        "'MiXed'.lowerAscii() == 'mixed' && 'x'.upperAscii() == 'X'",
        "'  x '.trim() == 'x'",
        "'abc'.contains('b')",
        "'hello'.replace('l', 'L') == 'heLLo'",
        "'hello'.substring(1, 3) == 'el'",
        "'hello'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3",
        "string(1) == '1' && int('2') == 2",
        "object.data.n == '3'",
        "size(object.metadata.labels) == 2",
        "variables.params == null",
        "namespaceObject == null",
        "request.kind.kind == 'ConfigMap' && request.operation == ''",
        "request.name == 'cm' && request.namespace == 'default'",
        "request.requestKind.kind == 'ConfigMap'",
        "oldObject == null",
        "variables.anyObject.metadata.name == 'cm'",
    ] {
        holds(e);
    }
}

#[test]
fn kubernetes_library_functions() {
    for e in [
        "[1, 2, 2, 3].isSorted() && !['b', 'a'].isSorted() && [].isSorted()",
        "[1, 2, 3].sum() == 6 && [].sum() == 0 && [1.5, 2.5].sum() == 4.0",
        "[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3 && ['b', 'a'].max() == 'b'",
        "[1, 2, 1].indexOf(1) == 0 && [1, 2, 1].lastIndexOf(1) == 2 && [1].indexOf(5) == -1",
        "'abc 123 def 456'.find('[0-9]+') == '123' && 'abc'.find('[0-9]+') == ''",
        "'a1b22c333'.findAll('[0-9]+') == ['1', '22', '333']",
        "'a1b22c333'.findAll('[0-9]+', 2) == ['1', '22']",
        "sets.contains([1, 2, 3], [1, 3]) && !sets.contains([1], [2])",
        "sets.equivalent([1, 2, 2], [2, 1]) && !sets.equivalent([1], [1, 2])",
        "sets.intersects([1, 2], [2, 3]) && !sets.intersects([1], [2])",
    ] {
        holds(e);
    }
    assert!(
        eval("[].min() == 1")
            .unwrap_err()
            .contains("min called on empty list")
    );
    assert!(
        eval("'a'.find('(') == ''")
            .unwrap_err()
            .contains("invalid regex")
    );
}

#[test]
fn library_functions_directly() {
    use std::sync::Arc;

    use cel::extractors::This;
    let list = |v: Vec<CelValue>| This(Arc::new(v));
    assert_eq!(
        library::is_sorted(list(vec![
            CelValue::Int(1),
            CelValue::UInt(2),
            CelValue::Float(2.5)
        ])),
        Ok(true)
    );
    assert!(
        library::is_sorted(list(vec![
            CelValue::Int(1),
            CelValue::String(Arc::new("a".into()))
        ]))
        .is_err()
    );
    assert!(library::sum(list(vec![CelValue::Int(i64::MAX), CelValue::Int(1)])).is_err());
    assert_eq!(
        library::max(list(vec![CelValue::Int(-1), CelValue::UInt(0)])),
        Ok(CelValue::UInt(0))
    );
}

#[test]
fn messages_follow_the_api_server() {
    let msgs = run(
        &source(&[
            ("false", "", ""),
            ("1 == 2", "  plain  ", ""),
            ("false", "", "'from ' + object.metadata.name"),
            ("false", "fallback", "object.metadata.missing"),
            ("false", "blank", "'   '"),
            ("false", "", "'a\\nb'"),
            ("object.metadata.name == 'cm'", "not shown", ""),
            ("false ||\n  false\n", "", ""),
        ]),
        None,
    );
    assert_eq!(
        msgs,
        [
            "blank",
            "failed expression: false",
            "failed expression: false",
            "failed expression: false ||\n  false",
            "fallback",
            "from cm",
            "plain",
        ]
    );
}

#[test]
fn compile_errors_are_results_and_diagnostics() {
    let src = source(&[
        ("undefinedvar == 1", "m", ""),
        ("1 +", "m", ""),
        ("object.metadata.name", "m", ""),
        ("variables.nope == 1", "m", ""),
        ("params.spec == 1", "m", ""),
        ("object.metadata.name.foo() == 1", "m", ""),
    ]);
    let (program, diagnostics) = CelProgram::compile(&src).unwrap();
    let fields: Vec<&str> = diagnostics.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        (0..6)
            .map(|i| format!("spec.targets[0].code[0].source.validations[{i}].expression"))
            .collect::<Vec<_>>()
    );
    let req = request(cm());
    let results = program.evaluate(&Input {
        request: &req,
        namespace: None,
        parameters: None,
    });
    assert!(results.iter().all(|r| r.is_error));
    let msgs: Vec<&str> = results.iter().map(|r| r.msg.as_str()).collect();
    assert!(msgs.contains(&"compilation error: compilation failed: ERROR: <input>:1:1: undeclared reference to 'undefinedvar' (in container '')\n | undefinedvar == 1\n | ^"), "{msgs:#?}");
    assert!(msgs.contains(&"compilation error: compilation failed: ERROR: <input>:1:10: undefined field 'nope'\n | variables.nope == 1\n | .........^"), "{msgs:#?}");
    assert!(
        msgs.contains(&"compilation error: must evaluate to bool but got dyn"),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with(
            "compilation error: compilation failed: ERROR: <input>:1:4: Syntax error: "
        )),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("undeclared reference to 'params'")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("undeclared reference to 'foo'")),
        "{msgs:#?}"
    );
}

#[test]
fn runtime_errors_name_the_expression() {
    assert_eq!(
        eval("object.spec.missing == 1"),
        Err("expression 'object.spec.missing == 1' resulted in error: no such key: spec".into())
    );
    let mut ignore = source(&[
        ("object.spec.missing == 1", "m", ""),
        ("false", "still", ""),
    ]);
    ignore.ignore_failures = true;
    assert_eq!(run(&ignore, None), ["still"]);
}

#[test]
fn variables_and_parameters() {
    let mut src = source(&[
        (
            "variables.up == 'cm-y'",
            "",
            "'up=' + variables.up + ' n=' + string(variables.params.n)",
        ),
        ("variables.bad == 1", "bad var", ""),
        (
            "variables.fromParams == 'foo'",
            "",
            "'p=' + variables.fromParams",
        ),
    ]);
    src.variables = vec![
        ("nm".into(), "object.metadata.name".into()),
        ("up".into(), "variables.nm + '-x'".into()),
        ("bad".into(), "object.nope.x".into()),
        ("fromParams".into(), "params.spec.parameters.name".into()),
    ];
    let msgs = run(&src, Some(json!({"n": 3, "name": "bar"})));
    assert_eq!(
        msgs,
        [
            "expression 'variables.bad == 1' resulted in error: composited variable \"bad\" fails to evaluate: no such key: nope",
            "p=bar",
            "up=cm-x n=3",
        ]
    );
}

#[test]
fn match_conditions_skip_or_fail() {
    let mut src = source(&[("false", "denied", "")]);
    src.match_conditions = vec![(
        "only-other".into(),
        "object.metadata.name == 'other'".into(),
    )];
    assert!(run(&src, None).is_empty());
    src.match_conditions = vec![("cm".into(), "object.metadata.name == 'cm'".into())];
    assert_eq!(run(&src, None), ["denied"]);
    src.match_conditions = vec![
        ("err".into(), "object.nope == 1".into()),
        ("false".into(), "false".into()),
    ];
    assert!(
        run(&src, None).is_empty(),
        "a false condition wins over an error"
    );
    src.match_conditions = vec![("err".into(), "object.nope == 1".into())];
    assert_eq!(
        run(&src, None),
        ["expression 'object.nope == 1' resulted in error: no such key: nope"]
    );
    src.ignore_failures = true;
    assert!(run(&src, None).is_empty());
}

#[test]
fn delete_unsets_object_and_namespace_is_reduced() {
    let src = source(&[
        (
            "object == null && variables.anyObject.metadata.name == 'cm'",
            "",
            "",
        ),
        (
            "namespaceObject.metadata.labels.env == 'prod' && !has(namespaceObject.apiVersion)",
            "",
            "",
        ),
        (
            "request.operation == 'DELETE' && request.dryRun == false",
            "",
            "",
        ),
    ]);
    let (program, diagnostics) = CelProgram::compile(&src).unwrap();
    assert!(diagnostics.is_empty());
    let mut req = request(cm());
    req["operation"] = json!("DELETE");
    req["oldObject"] = cm();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "default", "labels": {"env": "prod"}}});
    let results = program.evaluate(&Input {
        request: &req,
        namespace: Some(&ns),
        parameters: None,
    });
    assert!(results.is_empty(), "{results:?}");
}

#[test]
fn json_numbers_are_ints_then_doubles() {
    assert_eq!(to_cel(&json!(3)), CelValue::Int(3));
    assert_eq!(to_cel(&json!(2.5)), CelValue::Float(2.5));
    assert_eq!(to_cel(&json!(u64::MAX)), CelValue::Float(u64::MAX as f64));
}

#[test]
fn no_panic_on_hostile_expressions() {
    for e in [
        "",
        "(((((",
        "'\\u",
        "a.b.c.d.e.f.g()",
        "[1,2][5] == 1",
        "1 / 0 == 1",
        "{'a': 1}['b'] == 1",
        "'x'.matches('(') ",
        "9223372036854775807 + 1 == 0",
        "object.metadata.name[0] == 'c'",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]] == []",
    ] {
        let _ = eval(e);
    }
}

#[test]
fn selecting_a_field_of_null_names_the_key() {
    assert_eq!(
        eval("oldObject.metadata.name == 'x'"),
        Err(
            "expression 'oldObject.metadata.name == 'x'' resulted in error: no such key: metadata"
                .into()
        )
    );
    assert_eq!(
        eval("object.spec.missing.deeper == 'x'"),
        Err(
            "expression 'object.spec.missing.deeper == 'x'' resulted in error: no such key: spec"
                .into()
        )
    );
}
