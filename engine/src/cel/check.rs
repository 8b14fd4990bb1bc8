//! The part of cel-go's type checker that decides whether an expression compiles in the
//! Kubernetes admission environment: references to undeclared variables and functions,
//! `variables.<name>` for a variable not declared before, and the result type an expression must
//! have (`bool` for validations and match conditions, `string` for message expressions).
//!
//! cel-rust parses but does not type-check, so this walks its AST. Types are inferred only
//! where cel-go's answer is certain (literals, operators, known functions, fields of
//! `object`/`oldObject`, which are `dyn`); everything else is [`Ty::Unknown`] and accepted.

use std::collections::HashMap;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo, operators};

use super::library;

/// A statically known CEL type, as far as this checker follows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `bool`.
    Bool,
    /// `string`.
    String,
    /// `int`.
    Int,
    /// `uint`.
    UInt,
    /// `double`.
    Double,
    /// `bytes`.
    Bytes,
    /// `null_type`.
    Null,
    /// A list.
    List,
    /// A map.
    Map,
    /// `dyn`: a field of an unstructured object.
    Dyn,
    /// Not followed here: never reported as a wrong type.
    Unknown,
}

impl Ty {
    /// cel-go's name of the type, for the scalar types and `dyn`.
    pub fn cel_name(self) -> Option<&'static str> {
        Some(match self {
            Ty::Bool => "bool",
            Ty::String => "string",
            Ty::Int => "int",
            Ty::UInt => "uint",
            Ty::Double => "double",
            Ty::Bytes => "bytes",
            Ty::Null => "null_type",
            Ty::Dyn => "dyn",
            Ty::List | Ty::Map | Ty::Unknown => return None,
        })
    }
}

/// What an expression may refer to.
pub struct Scope<'a> {
    /// Whether `params` (the constraint) is declared: only for variables, as in Gatekeeper.
    pub has_params: bool,
    /// The variables declared so far (`variables.<name>`) and their types.
    pub variables: &'a HashMap<String, Ty>,
}

/// One compile error: where (character offset in the source) and what.
struct Issue {
    offset: usize,
    message: String,
}

struct Checker<'a> {
    scope: &'a Scope<'a>,
    info: &'a SourceInfo,
    issues: Vec<Issue>,
    locals: Vec<(String, Ty)>,
}

const TOP_LEVEL: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "namespaceObject",
    "variables",
];

impl Checker<'_> {
    fn offset(&self, e: &IdedExpr) -> usize {
        self.info
            .offset_for(e.id)
            .map_or(0, |(start, _)| start as usize)
    }

    fn issue(&mut self, e: &IdedExpr, message: String) {
        let offset = self.offset(e);
        self.issues.push(Issue { offset, message });
    }

    fn local(&self, name: &str) -> Option<Ty> {
        self.locals
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
    }

    fn infer(&mut self, e: &IdedExpr) -> Ty {
        match &e.expr {
            Expr::Unspecified => Ty::Unknown,
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::UInt,
            },
            Expr::Ident(name) => {
                if let Some(t) = self.local(name) {
                    return t;
                }
                match name.as_str() {
                    "object" | "oldObject" => Ty::Dyn,
                    "params" if self.scope.has_params => Ty::Dyn,
                    n if TOP_LEVEL.contains(&n) => Ty::Unknown,
                    _ => {
                        self.issue(
                            e,
                            format!("undeclared reference to '{name}' (in container '')"),
                        );
                        Ty::Unknown
                    }
                }
            }
            Expr::Select(select) => {
                if let Expr::Ident(root) = &select.operand.expr
                    && root == "variables"
                    && self.local("variables").is_none()
                {
                    let t = match self.scope.variables.get(&select.field) {
                        Some(t) => *t,
                        None => {
                            self.issue(e, format!("undefined field '{}'", select.field));
                            Ty::Unknown
                        }
                    };
                    return if select.test { Ty::Bool } else { t };
                }
                let operand = self.infer(&select.operand);
                if select.test {
                    return Ty::Bool;
                }
                match operand {
                    Ty::Dyn => Ty::Dyn,
                    _ => typed_field(&select.operand, &select.field),
                }
            }
            Expr::List(list) => {
                for el in &list.elements {
                    self.infer(el);
                }
                Ty::List
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.infer(&m.key);
                        self.infer(&m.value);
                    }
                }
                Ty::Map
            }
            Expr::Struct(s) => {
                self.issue(
                    e,
                    format!(
                        "undeclared reference to '{}' (in container '')",
                        s.type_name
                    ),
                );
                Ty::Unknown
            }
            Expr::Comprehension(c) => {
                self.infer(&c.iter_range);
                let accu = self.infer(&c.accu_init);
                let depth = self.locals.len();
                self.locals.push((c.iter_var.clone(), Ty::Unknown));
                if let Some(v2) = &c.iter_var2 {
                    self.locals.push((v2.clone(), Ty::Unknown));
                }
                self.locals.push((c.accu_var.clone(), accu));
                self.infer(&c.loop_cond);
                self.infer(&c.loop_step);
                let result = self.infer(&c.result);
                self.locals.truncate(depth);
                result
            }
            Expr::Call(call) => {
                // `sets.contains(...)` parses as a member call on `sets`: a namespaced global.
                if let Some(target) = &call.target
                    && let Expr::Ident(ns) = &target.expr
                    && self.local(ns).is_none()
                {
                    let qualified = format!("{ns}.{}", call.func_name);
                    if library::is_known(&qualified, false) {
                        for a in &call.args {
                            self.infer(a);
                        }
                        return library::return_type(&qualified).unwrap_or(Ty::Unknown);
                    }
                }
                let target = call.target.as_ref().map(|t| self.infer(t));
                let args: Vec<Ty> = call.args.iter().map(|a| self.infer(a)).collect();
                let name = call.func_name.as_str();
                match name {
                    operators::EQUALS
                    | operators::NOT_EQUALS
                    | operators::LESS
                    | operators::LESS_EQUALS
                    | operators::GREATER
                    | operators::GREATER_EQUALS
                    | operators::IN
                    | operators::LOGICAL_AND
                    | operators::LOGICAL_OR
                    | operators::LOGICAL_NOT
                    | operators::NOT_STRICTLY_FALSE => Ty::Bool,
                    operators::ADD => match args.as_slice() {
                        [a, b] if *a == Ty::String || *b == Ty::String => Ty::String,
                        [a, b] if a == b && *a != Ty::Unknown => *a,
                        _ => Ty::Unknown,
                    },
                    operators::SUBSTRACT
                    | operators::MULTIPLY
                    | operators::DIVIDE
                    | operators::MODULO => match args.as_slice() {
                        [a, b] if a == b && *a != Ty::Unknown => *a,
                        _ => Ty::Unknown,
                    },
                    operators::NEGATE => args.first().copied().unwrap_or(Ty::Unknown),
                    operators::CONDITIONAL => match args.as_slice() {
                        [_, a, b] if a == b => *a,
                        _ => Ty::Unknown,
                    },
                    operators::INDEX => match args.first() {
                        Some(Ty::Dyn) => Ty::Dyn,
                        _ => Ty::Unknown,
                    },
                    operators::OPT_INDEX | operators::OPT_SELECT => Ty::Unknown,
                    _ => {
                        let member = target.is_some();
                        if !library::is_known(name, member) {
                            self.issue(
                                e,
                                format!("undeclared reference to '{name}' (in container '')"),
                            );
                            return Ty::Unknown;
                        }
                        library::return_type(name).unwrap_or(Ty::Unknown)
                    }
                }
            }
        }
    }
}

/// Types of the typed fields of `request` and `namespaceObject` that are strings, booleans,
/// lists or maps; anything else is not followed.
fn typed_field(operand: &IdedExpr, field: &str) -> Ty {
    let mut path = vec![field];
    let mut e = operand;
    loop {
        match &e.expr {
            Expr::Select(s) if !s.test => {
                path.push(&s.field);
                e = &s.operand;
            }
            Expr::Ident(root) => {
                path.push(root);
                break;
            }
            _ => return Ty::Unknown,
        }
    }
    path.reverse();
    match path.as_slice() {
        [
            "request",
            "name" | "namespace" | "operation" | "subResource" | "requestSubResource",
        ] => Ty::String,
        ["request", "dryRun"] => Ty::Bool,
        [
            "request",
            "kind" | "requestKind",
            "group" | "version" | "kind",
        ]
        | [
            "request",
            "resource" | "requestResource",
            "group" | "version" | "resource",
        ]
        | ["request", "userInfo", "username" | "uid"] => Ty::String,
        ["request", "userInfo", "groups"] => Ty::List,
        [
            "namespaceObject",
            "metadata",
            "name" | "generateName" | "namespace" | "UID" | "resourceVersion",
        ]
        | ["namespaceObject", "status", "phase"] => Ty::String,
        ["namespaceObject", "metadata", "labels" | "annotations"] => Ty::Map,
        _ => Ty::Unknown,
    }
}

/// Checks an expression: its compile errors in cel-go's format (without the `compilation
/// failed: ` prefix), or its inferred type.
pub fn check(
    source: &str,
    expr: &IdedExpr,
    info: &SourceInfo,
    scope: &Scope<'_>,
) -> Result<Ty, String> {
    let mut checker = Checker {
        scope,
        info,
        issues: Vec::new(),
        locals: Vec::new(),
    };
    let ty = checker.infer(expr);
    if checker.issues.is_empty() {
        return Ok(ty);
    }
    let mut issues = checker.issues;
    issues.sort_by_key(|i| i.offset);
    Err(issues
        .iter()
        .map(|i| format_issue(source, i.offset, &i.message))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `ERROR: <input>:<line>:<column>: <message>` with the source line and a caret under the
/// column, as cel-go prints its issues.
pub fn format_issue(source: &str, offset: usize, message: &str) -> String {
    let mut line = 1;
    let mut column = 0;
    let mut line_start = 0;
    for (i, (byte, ch)) in source.char_indices().enumerate() {
        if i == offset {
            break;
        }
        if ch == '\n' {
            line += 1;
            column = 0;
            line_start = byte + 1;
        } else {
            column += 1;
        }
    }
    let text = source
        .get(line_start..)
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("");
    format!(
        "ERROR: <input>:{line}:{}: {message}\n | {text}\n | {}^",
        column + 1,
        ".".repeat(column)
    )
}
