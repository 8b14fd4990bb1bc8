//! `engine: K8sNativeValidation`: compiles a template's CEL and evaluates one review the way
//! Gatekeeper's k8scel driver does (`pkg/drivers/k8scel` in Gatekeeper, on the API server's
//! `validating.Validator`).
//!
//! What an expression sees:
//! - `object` and `oldObject` (on DELETE `object` is null, as the driver unsets it);
//! - `request`: the AdmissionRequest as the API server's CEL builds it (kind, resource,
//!   requestKind, requestResource, subResource, name, namespace, operation, userInfo, dryRun,
//!   options; no object);
//! - `namespaceObject`: the Namespace of the request, reduced as the API server reduces it;
//!   null when it is not known (always under gator, which passes none), and null in match
//!   conditions;
//! - `variables.params` (the constraint's `spec.parameters`, null when it has none),
//!   `variables.anyObject` (`oldObject` on DELETE, else `object`) and the template's own
//!   `variables`, each seeing the ones before it. `params` itself (the whole constraint) is
//!   declared only for variables.
//!
//! Results: each validation whose expression is not `true` denies with, in this order, the
//! trimmed string of its `messageExpression` (unless it fails, is not a string, is blank, holds
//! a newline or is over 5 KiB), its trimmed `message`, or `failed expression: <expression>`.
//! A validation that fails to compile or to evaluate denies with the error text instead, and
//! with `failurePolicy: Ignore` admits. A match condition that is false skips every validation;
//! one that errs (with none false) denies with the error under `Fail`. As in Gatekeeper, an
//! expression that does not compile is not an error when the template is added: it is reported
//! on every review it would run in; tollgate also lists such expressions, with their field, as
//! [`Diagnostic`]s when it compiles the template.

pub mod check;
pub mod library;

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr};
use cel::objects::{Key, Map, Value as CelValue};
use cel::{Context, Env, ExecutionError, ParseErrors, Program};
use serde_json::{Value, json};

use crate::gatekeeper::CelSource;
use check::{Scope, Ty};

/// The API server's limit on a message built by `messageExpression`.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// One compiled expression.
#[derive(Debug)]
struct Compiled {
    /// The expression as written (error messages quote it).
    text: String,
    /// The program, or the compile error as the API server words it (`compilation failed:
    /// ERROR: <input>:1:1: ...` or `must evaluate to bool but got dyn`).
    program: Result<Program, String>,
    /// The names it reads as `variables.<name>`.
    variables: Vec<String>,
}

#[derive(Debug)]
struct Validation {
    check: Compiled,
    message: String,
    message_expression: Option<Compiled>,
}

/// A template's CEL, compiled.
pub struct CelProgram {
    env: Arc<Env>,
    variables: Vec<(String, Compiled)>,
    match_conditions: Vec<Compiled>,
    validations: Vec<Validation>,
    ignore_failures: bool,
}

impl std::fmt::Debug for CelProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelProgram")
            .field("variables", &self.variables)
            .field("match_conditions", &self.match_conditions)
            .field("validations", &self.validations)
            .field("ignore_failures", &self.ignore_failures)
            .finish_non_exhaustive()
    }
}

/// An expression that does not compile: where and why. Gatekeeper reports it on every review
/// instead, and so does tollgate; this is what tollgate can say when it reads the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The expression's field, e.g. `spec.targets[0].code[0].source.validations[1].expression`.
    pub field: String,
    /// The compile error, as the violation message will say it.
    pub message: String,
}

/// What one evaluation reads.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// tollgate's AdmissionRequest (`input.review` of the Rego templates).
    pub request: &'a Value,
    /// The Namespace object of the request, when known.
    pub namespace: Option<&'a Value>,
    /// The constraint's `spec.parameters` (defaulted), `None` when the constraint has none.
    pub parameters: Option<&'a Value>,
}

/// One result of a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelResult {
    /// The message.
    pub msg: String,
    /// True when the result stands for an error (compile or evaluation), not a failed
    /// validation.
    pub is_error: bool,
}

impl CelProgram {
    /// Compiles every expression of `source`. Fails only when the environment cannot be built;
    /// expressions that do not compile are kept as errors (and listed as diagnostics).
    pub fn compile(source: &CelSource) -> Result<(CelProgram, Vec<Diagnostic>), String> {
        let env = Arc::new(library::environment()?);
        let mut diagnostics = Vec::new();
        let mut types: HashMap<String, Ty> = HashMap::new();
        types.insert("params".into(), Ty::Dyn);
        types.insert("anyObject".into(), Ty::Dyn);
        let mut variables = Vec::new();
        for (i, (name, text)) in source.variables.iter().enumerate() {
            let scope = Scope {
                has_params: true,
                variables: &types,
            };
            let (compiled, ty) = compile_expression(&env, text, &scope, None);
            if let Err(e) = &compiled.program {
                diagnostics.push(Diagnostic {
                    field: format!("{}.variables[{i}].expression", source.field),
                    message: e.clone(),
                });
            }
            // A variable that fails to compile is still declared (as `dyn`), as in the API server.
            types.insert(name.clone(), ty);
            variables.push((name.clone(), compiled));
        }
        let scope = Scope {
            has_params: false,
            variables: &types,
        };
        let mut match_conditions = Vec::new();
        for (i, (_, text)) in source.match_conditions.iter().enumerate() {
            let (compiled, _) = compile_expression(&env, text, &scope, Some(Ty::Bool));
            if let Err(e) = &compiled.program {
                diagnostics.push(Diagnostic {
                    field: format!("{}.matchCondition[{i}].expression", source.field),
                    message: e.clone(),
                });
            }
            match_conditions.push(compiled);
        }
        let mut validations = Vec::new();
        for (i, v) in source.validations.iter().enumerate() {
            let (check, _) = compile_expression(&env, &v.expression, &scope, Some(Ty::Bool));
            if let Err(e) = &check.program {
                diagnostics.push(Diagnostic {
                    field: format!("{}.validations[{i}].expression", source.field),
                    message: e.clone(),
                });
            }
            let message_expression = (!v.message_expression.is_empty()).then(|| {
                let (compiled, _) =
                    compile_expression(&env, &v.message_expression, &scope, Some(Ty::String));
                if let Err(e) = &compiled.program {
                    diagnostics.push(Diagnostic {
                        field: format!("{}.validations[{i}].messageExpression", source.field),
                        message: e.clone(),
                    });
                }
                compiled
            });
            validations.push(Validation {
                check,
                message: v.message.clone(),
                message_expression,
            });
        }
        Ok((
            CelProgram {
                env,
                variables,
                match_conditions,
                validations,
                ignore_failures: source.ignore_failures,
            },
            diagnostics,
        ))
    }

    /// Evaluates one review: the results, in message order (gator sorts them so).
    pub fn evaluate(&self, input: &Input<'_>) -> Vec<CelResult> {
        let mut results = self.evaluate_unsorted(input);
        results.sort_by(|a, b| a.msg.cmp(&b.msg));
        results
    }

    fn error_result(&self, msg: String) -> Option<CelResult> {
        (!self.ignore_failures).then_some(CelResult {
            msg,
            is_error: true,
        })
    }

    fn evaluate_unsorted(&self, input: &Input<'_>) -> Vec<CelResult> {
        let request = input.request;
        let deleting = request.get("operation").and_then(Value::as_str) == Some("DELETE");
        let object = if deleting {
            CelValue::Null
        } else {
            to_cel(request.get("object").unwrap_or(&Value::Null))
        };
        let old_object = to_cel(request.get("oldObject").unwrap_or(&Value::Null));
        let base = Bindings {
            object,
            old_object,
            request: to_cel(&admission_request(request)),
            namespace: CelValue::Null,
            variables: HashMap::new(),
            failed: HashMap::new(),
        };
        let parameters = input.parameters.map_or(CelValue::Null, to_cel);

        if !self.match_conditions.is_empty() {
            // Match conditions see no Namespace, and neither do the variables they read.
            let bindings = self.bind_variables(base.clone(), &parameters);
            let mut errors: Vec<String> = Vec::new();
            for condition in &self.match_conditions {
                match bindings.run(&self.env, condition) {
                    Ok(CelValue::Bool(false)) => return Vec::new(),
                    Ok(_) => {}
                    Err(e) => {
                        if !errors.contains(&e) {
                            errors.push(e);
                        }
                    }
                }
            }
            if !errors.is_empty() {
                let msg = if let [one] = errors.as_slice() {
                    one.clone()
                } else {
                    format!("[{}]", errors.join(", "))
                };
                return self.error_result(msg).into_iter().collect();
            }
        }

        let mut with_namespace = base;
        with_namespace.namespace = input
            .namespace
            .map_or(CelValue::Null, |ns| to_cel(&namespace_object(ns)));
        let bindings = self.bind_variables(with_namespace, &parameters);
        let mut results = Vec::new();
        for v in &self.validations {
            match bindings.run(&self.env, &v.check) {
                Ok(CelValue::Bool(true)) => {}
                Ok(_) => {
                    let msg = v
                        .message_expression
                        .as_ref()
                        .and_then(|m| match bindings.run(&self.env, m) {
                            Ok(CelValue::String(s)) => Some(s.trim().to_string()),
                            _ => None,
                        })
                        .filter(|m| m.len() <= MAX_MESSAGE_BYTES && !m.contains('\n'))
                        .filter(|m| !m.is_empty())
                        .or_else(|| Some(v.message.trim().to_string()).filter(|m| !m.is_empty()))
                        .unwrap_or_else(|| format!("failed expression: {}", v.check.text.trim()));
                    results.push(CelResult {
                        msg,
                        is_error: false,
                    });
                }
                Err(e) => results.extend(self.error_result(e)),
            }
        }
        results
    }

    /// Binds `variables`: Gatekeeper's `params` and `anyObject`, then the template's own, in
    /// order, each able to read the ones before it.
    fn bind_variables(&self, mut bindings: Bindings, parameters: &CelValue) -> Bindings {
        let any_object = if matches!(bindings.object, CelValue::Null)
            && cel_str(&bindings.request, "operation") == Some("DELETE")
        {
            bindings.old_object.clone()
        } else {
            bindings.object.clone()
        };
        bindings
            .variables
            .insert(Key::String(Arc::new("params".into())), parameters.clone());
        bindings
            .variables
            .insert(Key::String(Arc::new("anyObject".into())), any_object);
        for (name, compiled) in &self.variables {
            match &compiled.program {
                Err(e) => {
                    bindings.failed.insert(
                        name.clone(),
                        format!("composited variable {name:?} fails to compile: {e}"),
                    );
                }
                Ok(program) => match bindings.execute(&self.env, program, compiled) {
                    Ok(value) => {
                        bindings
                            .variables
                            .insert(Key::String(Arc::new(name.clone())), value);
                    }
                    Err(e) => {
                        bindings.failed.insert(
                            name.clone(),
                            format!("composited variable {name:?} fails to evaluate: {e}"),
                        );
                    }
                },
            }
        }
        bindings
    }
}

/// The values an expression is evaluated with.
#[derive(Clone)]
struct Bindings {
    object: CelValue,
    old_object: CelValue,
    request: CelValue,
    namespace: CelValue,
    variables: HashMap<Key, CelValue>,
    /// Variables whose evaluation failed, with the error a reader of them gets.
    failed: HashMap<String, String>,
}

impl Bindings {
    /// Runs a compiled expression: its value, or the error as the violation message says it.
    fn run(&self, env: &Arc<Env>, compiled: &Compiled) -> Result<CelValue, String> {
        match &compiled.program {
            Err(e) => Err(format!("compilation error: {e}")),
            Ok(program) => self
                .execute(env, program, compiled)
                .map_err(|e| format!("expression '{}' resulted in error: {e}", compiled.text)),
        }
    }

    /// Executes `program`; the error in cel-go's words.
    fn execute(
        &self,
        env: &Arc<Env>,
        program: &Program,
        compiled: &Compiled,
    ) -> Result<CelValue, String> {
        let mut ctx = Context::with_env(Arc::clone(env));
        library::add_functions(&mut ctx)?;
        ctx.add_variable_from_value("object", self.object.clone());
        ctx.add_variable_from_value("oldObject", self.old_object.clone());
        ctx.add_variable_from_value("request", self.request.clone());
        ctx.add_variable_from_value("namespaceObject", self.namespace.clone());
        ctx.add_variable_from_value(
            "variables",
            CelValue::Map(Map {
                map: Arc::new(self.variables.clone()),
            }),
        );
        if compiled.variables.iter().any(|v| v == "params") {
            // Only variables may read `params`, the constraint; they read its spec.
            let params = self
                .variables
                .get(&Key::String(Arc::new("params".into())))
                .cloned()
                .unwrap_or(CelValue::Null);
            let spec = match params {
                CelValue::Null => HashMap::new(),
                p => HashMap::from([(
                    Key::String(Arc::new("spec".into())),
                    CelValue::Map(Map {
                        map: Arc::new(HashMap::from([(
                            Key::String(Arc::new("parameters".into())),
                            p,
                        )])),
                    }),
                )]),
            };
            ctx.add_variable_from_value(
                "params",
                CelValue::Map(Map {
                    map: Arc::new(spec),
                }),
            );
        }
        program.execute(&ctx).map_err(|e| {
            // A failed variable is missing from `variables`: say why, as the API server does.
            if let ExecutionError::NoSuchKey(key) = &e
                && compiled.variables.iter().any(|v| v == key.as_str())
                && let Some(why) = self.failed.get(key.as_str())
            {
                return why.clone();
            }
            if let ExecutionError::NoSuchOverload(o) = &e
                && o.function() == "_._"
                && o.argument_types().first().map(String::as_str) == Some("null_type")
                && let Some(field) = null_select(program.expression(), &ctx)
            {
                // cel-go: selecting a field of null is a missing key.
                return format!("no such key: {field}");
            }
            go_error(&e)
        })
    }
}

/// The field of the first selection (in evaluation order) whose operand is null, where the
/// operand can be evaluated on its own (not inside a comprehension).
fn null_select(e: &IdedExpr, ctx: &Context<'_, '_>) -> Option<String> {
    let children: Vec<&IdedExpr> = match &e.expr {
        Expr::Select(s) => vec![&s.operand],
        Expr::Call(c) => c.target.iter().map(|t| &**t).chain(c.args.iter()).collect(),
        Expr::List(l) => l.elements.iter().collect(),
        _ => Vec::new(),
    };
    for child in children {
        if let Some(found) = null_select(child, ctx) {
            return Some(found);
        }
    }
    if let Expr::Select(s) = &e.expr
        && !s.test
        && matches!(ctx.resolve(&s.operand), Ok(CelValue::Null))
    {
        return Some(s.field.clone());
    }
    None
}

fn cel_str<'a>(value: &'a CelValue, key: &str) -> Option<&'a str> {
    match value {
        CelValue::Map(m) => match m.map.get(&Key::String(Arc::new(key.to_string()))) {
            Some(CelValue::String(s)) => Some(s.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// Compiles one expression for `scope`, requiring the type `want` when given.
fn compile_expression(
    env: &Env,
    text: &str,
    scope: &Scope<'_>,
    want: Option<Ty>,
) -> (Compiled, Ty) {
    let compiled = |program, variables| Compiled {
        text: text.to_string(),
        program,
        variables,
    };
    let program = match env.compile(text) {
        Ok(p) => p,
        Err(errors) => {
            return (
                compiled(
                    Err(format!(
                        "compilation failed: {}",
                        parse_errors(text, &errors)
                    )),
                    Vec::new(),
                ),
                Ty::Unknown,
            );
        }
    };
    let mut variables = Vec::new();
    referenced_variables(program.expression(), &mut variables);
    let ty = match check::check(text, program.expression(), program.source_info(), scope) {
        Ok(ty) => ty,
        Err(e) => {
            return (
                compiled(Err(format!("compilation failed: {e}")), variables),
                Ty::Unknown,
            );
        }
    };
    if let Some(want) = want
        && ty != want
        && let (Some(got), Some(want)) = (ty.cel_name(), want.cel_name())
    {
        return (
            compiled(
                Err(format!("must evaluate to {want} but got {got}")),
                variables,
            ),
            ty,
        );
    }
    (compiled(Ok(program), variables), ty)
}

/// Parse errors in cel-go's format.
fn parse_errors(text: &str, errors: &ParseErrors) -> String {
    errors
        .errors
        .iter()
        .map(|e| {
            // cel-rust's position is (1-based line, 0-based column).
            let (line, column) = (e.pos.0.max(1) as usize, e.pos.1.max(0) as usize);
            let offset: usize = text
                .split_inclusive('\n')
                .take(line - 1)
                .map(|l| l.chars().count())
                .sum::<usize>()
                + column;
            // cel-rust words syntax errors as cel-go does, `Syntax error: ` included.
            check::format_issue(text, offset, &e.msg)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names read as `variables.<name>` (and `params`, when read directly).
fn referenced_variables(e: &IdedExpr, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Select(s) => {
            if let Expr::Ident(root) = &s.operand.expr
                && root == "variables"
            {
                out.push(s.field.clone());
            }
            referenced_variables(&s.operand, out);
        }
        Expr::Ident(name) if name == "params" => out.push(name.clone()),
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                referenced_variables(t, out);
            }
            for a in &c.args {
                referenced_variables(a, out);
            }
        }
        Expr::List(l) => l
            .elements
            .iter()
            .for_each(|el| referenced_variables(el, out)),
        Expr::Map(m) => {
            for entry in &m.entries {
                if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                    referenced_variables(&me.key, out);
                    referenced_variables(&me.value, out);
                }
            }
        }
        Expr::Comprehension(c) => {
            for sub in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                referenced_variables(sub, out);
            }
        }
        _ => {}
    }
}

/// An evaluation error in cel-go's words where they are known.
fn go_error(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::UndeclaredReference(r) => format!("undeclared reference to '{r}'"),
        ExecutionError::NoSuchOverload(_) | ExecutionError::UnsupportedBinaryOperator(..) => {
            "no such overload".to_string()
        }
        ExecutionError::ValuesNotComparable(..) => "no such overload".to_string(),
        ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_string(),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        ExecutionError::IndexOutOfBounds(_) => "index out of range".to_string(),
        other => other.to_string(),
    }
}

/// JSON as CEL sees unstructured Kubernetes objects: integers are `int` (`double` past
/// int64), objects are maps with string keys.
pub fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => CelValue::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// The `request` variable: the API server's `CreateAdmissionRequest` of the review (no
/// object or oldObject; `requestKind`/`requestResource` repeat `kind`/`resource`; empty
/// optional fields absent; `dryRun` always present).
fn admission_request(request: &Value) -> Value {
    let mut out = serde_json::Map::new();
    let get = |k: &str| request.get(k).filter(|v| !v.is_null());
    let gvk = |v: Option<&Value>, keys: [&str; 3]| {
        let mut m = serde_json::Map::new();
        for k in keys {
            let s = v
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .unwrap_or("");
            m.insert(k.to_string(), json!(s));
        }
        Value::Object(m)
    };
    let kind = gvk(get("kind"), ["group", "version", "kind"]);
    let resource = gvk(get("resource"), ["group", "version", "resource"]);
    out.insert("kind".into(), kind.clone());
    out.insert("resource".into(), resource.clone());
    out.insert("requestKind".into(), kind);
    out.insert("requestResource".into(), resource);
    let non_empty = |k: &str| get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(sub) = non_empty("subResource") {
        out.insert("subResource".into(), json!(sub));
        out.insert("requestSubResource".into(), json!(sub));
    }
    for k in ["name", "namespace"] {
        if let Some(s) = non_empty(k) {
            out.insert(k.into(), json!(s));
        }
    }
    out.insert(
        "operation".into(),
        json!(non_empty("operation").unwrap_or("")),
    );
    let mut user = serde_json::Map::new();
    if let Some(info) = get("userInfo") {
        for k in ["username", "uid"] {
            if let Some(s) = info
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                user.insert(k.into(), json!(s));
            }
        }
        for k in ["groups", "extra"] {
            let present = match info.get(k) {
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Object(o)) => !o.is_empty(),
                _ => false,
            };
            if let (true, Some(v)) = (present, info.get(k)) {
                user.insert(k.into(), v.clone());
            }
        }
    }
    out.insert("userInfo".into(), Value::Object(user));
    out.insert(
        "dryRun".into(),
        json!(get("dryRun").and_then(Value::as_bool).unwrap_or(false)),
    );
    out.insert(
        "options".into(),
        get("options").cloned().unwrap_or(Value::Null),
    );
    Value::Object(out)
}

/// `namespaceObject`: the API server's `CreateNamespaceObject` (metadata reduced to its
/// identifying fields, labels, annotations and finalizers; spec and status kept; no
/// apiVersion or kind).
fn namespace_object(ns: &Value) -> Value {
    let mut metadata = serde_json::Map::new();
    if let Some(m) = ns.get("metadata").and_then(Value::as_object) {
        for k in [
            "name",
            "generateName",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "labels",
            "annotations",
            "finalizers",
        ] {
            if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                metadata.insert(k.into(), v.clone());
            }
        }
        metadata.insert(
            "creationTimestamp".into(),
            m.get("creationTimestamp").cloned().unwrap_or(Value::Null),
        );
    }
    json!({
        "metadata": metadata,
        "spec": ns.get("spec").filter(|v| v.is_object()).cloned().unwrap_or(json!({})),
        "status": ns.get("status").filter(|v| v.is_object()).cloned().unwrap_or(json!({})),
    })
}

#[cfg(test)]
mod tests;
