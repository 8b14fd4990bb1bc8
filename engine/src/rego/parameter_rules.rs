//! Which rules of a template read nothing but `input.parameters`.
//!
//! Gatekeeper gives a template its constraint's parameters and the review in one input, so a
//! rule that derives something from the parameters alone (a set of allowed hosts, quantities
//! parsed from strings) is computed again for every review, though its value only changes with
//! the constraint. The RVM's rule cache lasts one evaluation; the fast path
//! ([`crate::rvm::FastPath`]) keeps the values of the rules named here from one evaluation to
//! the next of the same parameters.
//!
//! The analysis is syntactic and errs on the side of "depends on the review": a rule qualifies
//! when every definition (heads, bodies, `else` branches) refers to `input` only as
//! `input.parameters…`, never to `data` except through rules of the template's own packages
//! that qualify too, calls only deterministic builtins and functions that qualify, and holds no
//! `with`. A name that could be a rule of the package counts as a reference to it, even where
//! it is a local variable of the same name. Rules with multi-part heads (`a.b contains x`) are
//! never kept, and neither is anything that refers to their first part.

use std::collections::{BTreeMap, BTreeSet};

use regorus::unstable::{Expr, Literal, LiteralStmt, Module, Query, Ref, Rule, RuleHead};

/// Builtins whose answer may differ between two evaluations of the same arguments.
const NON_DETERMINISTIC: &[&str] = &[
    "http.send",
    "net.lookup_ip_addr",
    "opa.runtime",
    "print",
    "rand.intn",
    "time.now_ns",
    "trace",
    "uuid.rfc4122",
];

/// The full paths (`data.<package>.<rule>`) of the non-function rules of `modules` whose value
/// depends on `input.parameters` alone, sorted.
pub fn parameter_only_rules(modules: &[Ref<Module>]) -> Vec<String> {
    let mut names = Names::default();
    for module in modules {
        names.add_module(module);
    }
    let mut analysis = Analysis::default();
    for module in modules {
        analysis.add_module(&names, module);
    }
    analysis.solve()
}

/// What the template's modules define, before any body is read: a rule may refer to one that a
/// later module defines.
#[derive(Default)]
struct Names {
    /// Every package, as path components.
    packages: BTreeSet<Vec<String>>,
    /// Per package, its rules with a one-part head, and the first parts of its multi-part heads.
    rules: BTreeMap<Vec<String>, (BTreeSet<String>, BTreeSet<String>)>,
}

impl Names {
    fn add_module(&mut self, module: &Ref<Module>) {
        let Some(package) = package_of(module) else {
            return;
        };
        self.packages.insert(package.clone());
        let (simple, nested) = self.rules.entry(package).or_default();
        for rule in &module.policy {
            match head_name(rule) {
                Some((root, true)) => {
                    simple.insert(root);
                }
                Some((root, false)) => {
                    nested.insert(root);
                }
                None => {}
            }
        }
    }
}

/// What one definition refers to.
#[derive(Default)]
struct Facts {
    /// Reads something other than the parameters, or something this analysis cannot follow.
    tainted: bool,
    /// Full paths of rules and functions it refers to.
    deps: BTreeSet<String>,
}

#[derive(Default)]
struct RuleFacts {
    is_function: bool,
    facts: Facts,
}

#[derive(Default)]
struct Analysis {
    /// Rules by full path; several definitions (and modules) merge into one entry.
    rules: BTreeMap<String, RuleFacts>,
}

/// How a module names things: its package and its imports.
struct Scope<'a> {
    /// `data.<package>.`, what a rule name of this package is appended to.
    prefix: String,
    /// Every package of the template.
    packages: &'a BTreeSet<Vec<String>>,
    /// Import aliases of `data…` paths (components after `data`).
    data_aliases: BTreeMap<String, Vec<String>>,
    /// Import aliases of `input…` paths.
    input_aliases: BTreeSet<String>,
    /// Names of rules of this package with a multi-part head (first part).
    nested: &'a BTreeSet<String>,
    /// Names of rules of this package.
    local_rules: &'a BTreeSet<String>,
}

impl Analysis {
    fn add_module(&mut self, names: &Names, module: &Ref<Module>) {
        // A package this analysis cannot name: nothing of it is kept, and `data` references
        // into it resolve nowhere, which is taint.
        let Some(package) = package_of(module) else {
            return;
        };
        let empty = (BTreeSet::new(), BTreeSet::new());
        let (local_rules, nested) = names.rules.get(&package).unwrap_or(&empty);
        let mut scope = Scope {
            prefix: package_prefix(&package),
            packages: &names.packages,
            data_aliases: BTreeMap::new(),
            input_aliases: BTreeSet::new(),
            nested,
            local_rules,
        };
        for import in &module.imports {
            // regorus's parser only takes names and string keys here; were that to change, an
            // alias this analysis cannot resolve would hide what it names: keep nothing.
            let Some((root, rest)) = static_path(&import.refr) else {
                return;
            };
            let alias = match &import.r#as {
                Some(span) => span.text().to_string(),
                None => rest.last().cloned().unwrap_or_else(|| root.clone()),
            };
            match root.as_str() {
                "data" => {
                    scope.data_aliases.insert(alias, rest);
                }
                "input" => {
                    scope.input_aliases.insert(alias);
                }
                // `future.keywords…`, `rego.v1`: keywords, not names.
                _ => {}
            }
        }

        for rule in &module.policy {
            // Every head starts with a name (the parser makes sure).
            let Some((root, simple)) = head_name(rule) else {
                continue;
            };
            let path = format!("{}{root}", scope.prefix);
            let mut facts = Facts::default();
            if !simple {
                facts.tainted = true;
            }
            let is_function = match rule.as_ref() {
                Rule::Spec { head, bodies, .. } => {
                    let is_function = match head {
                        RuleHead::Compr { refr, assign, .. } => {
                            scope.refs_in_head(refr, &mut facts);
                            if let Some(a) = assign {
                                scope.expr(&a.value, &mut facts);
                            }
                            false
                        }
                        RuleHead::Set { refr, key, .. } => {
                            scope.refs_in_head(refr, &mut facts);
                            if let Some(k) = key {
                                scope.expr(k, &mut facts);
                            }
                            false
                        }
                        RuleHead::Func {
                            refr, args, assign, ..
                        } => {
                            scope.refs_in_head(refr, &mut facts);
                            for a in args {
                                scope.expr(a, &mut facts);
                            }
                            if let Some(a) = assign {
                                scope.expr(&a.value, &mut facts);
                            }
                            true
                        }
                    };
                    for body in bodies {
                        if let Some(a) = &body.assign {
                            scope.expr(&a.value, &mut facts);
                        }
                        scope.query(&body.query, &mut facts);
                    }
                    is_function
                }
                Rule::Default { args, value, .. } => {
                    for a in args {
                        scope.expr(a, &mut facts);
                    }
                    scope.expr(value, &mut facts);
                    !args.is_empty()
                }
            };
            let entry = self.rules.entry(path).or_default();
            entry.is_function |= is_function;
            entry.facts.tainted |= facts.tainted;
            entry.facts.deps.extend(facts.deps);
        }
    }

    /// The rules that qualify, found by removing every rule that is tainted or depends on one
    /// that does not qualify (Rego has no recursion, so this ends at the one answer).
    fn solve(self) -> Vec<String> {
        let mut qualifying: BTreeSet<&String> = self
            .rules
            .iter()
            .filter(|(_, r)| !r.facts.tainted)
            .map(|(path, _)| path)
            .collect();
        loop {
            let before = qualifying.len();
            qualifying = qualifying
                .iter()
                .copied()
                .filter(|path| {
                    self.rules
                        .get(*path)
                        .is_some_and(|r| r.facts.deps.iter().all(|d| qualifying.contains(d)))
                })
                .collect();
            if qualifying.len() == before {
                break;
            }
        }
        qualifying
            .into_iter()
            .filter(|path| self.rules.get(*path).is_some_and(|r| !r.is_function))
            .cloned()
            .collect()
    }
}

impl Scope<'_> {
    /// A rule head's own reference: only the brackets of a multi-part head hold expressions.
    fn refs_in_head(&self, refr: &Ref<Expr>, facts: &mut Facts) {
        let mut e = refr;
        loop {
            match e.as_ref() {
                Expr::RefDot { refr, .. } => e = refr,
                Expr::RefBrack { refr, index, .. } => {
                    self.expr(index, facts);
                    e = refr;
                }
                _ => return,
            }
        }
    }

    fn query(&self, query: &Ref<Query>, facts: &mut Facts) {
        for stmt in &query.stmts {
            self.stmt(stmt, facts);
        }
    }

    fn stmt(&self, stmt: &LiteralStmt, facts: &mut Facts) {
        if !stmt.with_mods.is_empty() {
            facts.tainted = true;
        }
        match &stmt.literal {
            Literal::SomeVars { .. } => {}
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => self.membership(key.as_ref(), value, collection, facts),
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr, facts),
            Literal::Every { domain, query, .. } => {
                self.expr(domain, facts);
                self.query(query, facts);
            }
        }
    }

    fn expr(&self, expr: &Ref<Expr>, facts: &mut Facts) {
        match expr.as_ref() {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                self.reference(expr, facts)
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                for i in items {
                    self.expr(i, facts);
                }
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.expr(k, facts);
                    self.expr(v, facts);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.expr(term, facts);
                self.query(query, facts);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.expr(key, facts);
                self.expr(value, facts);
                self.query(query, facts);
            }
            Expr::Call { fcn, params, .. } => {
                self.call(fcn, facts);
                for p in params {
                    self.expr(p, facts);
                }
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr, facts),
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                self.expr(lhs, facts);
                self.expr(rhs, facts);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => self.membership(key.as_ref(), value, collection, facts),
            #[allow(unreachable_patterns)] // expressions a later regorus may add
            _ => facts.tainted = true,
        }
    }

    /// `key, value in collection`, as a literal (`some`) or an expression.
    fn membership(
        &self,
        key: Option<&Ref<Expr>>,
        value: &Ref<Expr>,
        collection: &Ref<Expr>,
        facts: &mut Facts,
    ) {
        if let Some(k) = key {
            self.expr(k, facts);
        }
        self.expr(value, facts);
        self.expr(collection, facts);
    }

    /// A variable or a reference chain: every expression in its brackets, then what its root
    /// names. Most are local variables, which cost no allocation here.
    fn reference(&self, expr: &Ref<Expr>, facts: &mut Facts) {
        // The component next to the root: `Some(None)` for a bracket that is no string literal.
        let mut first: Option<Option<&str>> = None;
        let mut e = expr;
        let root = loop {
            match e.as_ref() {
                Expr::RefDot { refr, field, .. } => {
                    first = Some(Some(field.0.text()));
                    e = refr;
                }
                Expr::RefBrack { refr, index, .. } => {
                    first = Some(match index.as_ref() {
                        Expr::String { value, .. } | Expr::RawString { value, .. } => {
                            value.as_string().ok().map(|s| s.as_ref())
                        }
                        _ => {
                            self.expr(index, facts);
                            None
                        }
                    });
                    e = refr;
                }
                Expr::Var { span, .. } => break span.text(),
                // A reference into a literal or a call's result: the root is an expression.
                _ => {
                    self.expr(e, facts);
                    return;
                }
            }
        };
        match root {
            "input" => {
                if first != Some(Some("parameters")) {
                    facts.tainted = true;
                }
            }
            "data" => self.data_path(Vec::new(), &components(expr), facts),
            name => {
                if self.input_aliases.contains(name) || self.nested.contains(name) {
                    facts.tainted = true;
                } else if let Some(prefix) = self.data_aliases.get(name) {
                    self.data_path(prefix.clone(), &components(expr), facts);
                } else if self.local_rules.contains(name) {
                    facts.deps.insert(format!("{}{name}", self.prefix));
                }
                // Anything else is a local variable (or `_`).
            }
        }
    }

    /// `data` followed by `prefix` and `components`: a rule of one of the template's
    /// packages, or taint.
    fn data_path(&self, prefix: Vec<String>, components: &[Option<String>], facts: &mut Facts) {
        let mut path = prefix;
        for c in components {
            match c {
                Some(c) => path.push(c.clone()),
                None => break,
            }
        }
        // The longest package the path runs through, then one rule name.
        for split in (0..path.len()).rev() {
            if let (Some(package), Some(rule)) = (path.get(..split), path.get(split))
                && !package.is_empty()
                && self.packages.contains(package)
            {
                facts
                    .deps
                    .insert(format!("{}{rule}", package_prefix(package)));
                return;
            }
        }
        facts.tainted = true;
    }

    fn call(&self, fcn: &Ref<Expr>, facts: &mut Facts) {
        // `count(x)`, `_helper(x)`: a name alone, the usual callee.
        if let Expr::Var { span, .. } = fcn.as_ref() {
            let name = span.text();
            if self.local_rules.contains(name) {
                facts.deps.insert(format!("{}{name}", self.prefix));
            } else if self.data_aliases.contains_key(name) {
                self.reference(fcn, facts);
            } else if self.input_aliases.contains(name)
                || self.nested.contains(name)
                || !is_deterministic_builtin(name)
            {
                facts.tainted = true;
            }
            return;
        }
        let Some((root, rest)) = static_path(fcn) else {
            facts.tainted = true;
            return;
        };
        if root == "data" || self.data_aliases.contains_key(&root) {
            self.reference(fcn, facts);
            return;
        }
        if rest.is_empty() && self.local_rules.contains(&root) {
            facts.deps.insert(format!("{}{root}", self.prefix));
            return;
        }
        if self.input_aliases.contains(&root) || self.nested.contains(&root) {
            facts.tainted = true;
            return;
        }
        let name = std::iter::once(root)
            .chain(rest)
            .collect::<Vec<_>>()
            .join(".");
        if !is_deterministic_builtin(&name) {
            facts.tainted = true;
        }
    }
}

/// Whether `name` is a builtin of regorus whose answer depends on its arguments alone.
fn is_deterministic_builtin(name: &str) -> bool {
    !NON_DETERMINISTIC.contains(&name) && regorus::unstable::BUILTINS.contains_key(name)
}

/// A reference chain's components after its root; `None` for a bracket that is no string
/// literal.
fn components(expr: &Ref<Expr>) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let mut e = expr;
    loop {
        match e.as_ref() {
            Expr::RefDot { refr, field, .. } => {
                out.push(Some(field.0.text().to_string()));
                e = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                out.push(match index.as_ref() {
                    Expr::String { value, .. } | Expr::RawString { value, .. } => {
                        value.as_string().ok().map(|s| s.to_string())
                    }
                    _ => None,
                });
                e = refr;
            }
            _ => break,
        }
    }
    out.reverse();
    out
}

/// A module's package as path components.
fn package_of(module: &Ref<Module>) -> Option<Vec<String>> {
    let (root, mut rest) = static_path(&module.package.refr)?;
    rest.insert(0, root);
    Some(rest)
}

fn package_prefix(package: &[String]) -> String {
    let mut out = String::from("data.");
    for p in package {
        out.push_str(p);
        out.push('.');
    }
    out
}

/// The head's reference of a rule.
fn head_ref(rule: &Ref<Rule>) -> Option<&Ref<Expr>> {
    match rule.as_ref() {
        Rule::Spec { head, .. } => Some(match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => refr,
        }),
        Rule::Default { refr, .. } => Some(refr),
    }
}

/// The name a rule's head defines, and whether that is the rule's whole path: a bare name, or
/// a name and one bracket that is no string (`x[k] := v`, a partial object of `x`). Any other
/// head (`a.b`, `a["b"]`, `a[k].c`) defines part of a longer path.
fn head_name(rule: &Ref<Rule>) -> Option<(String, bool)> {
    let refr = head_ref(rule)?;
    match refr.as_ref() {
        Expr::Var { span, .. } => Some((span.text().to_string(), true)),
        Expr::RefBrack { refr, index, .. } => {
            let Expr::Var { span, .. } = refr.as_ref() else {
                return root_name(refr).map(|r| (r, false));
            };
            let simple = !matches!(index.as_ref(), Expr::String { .. } | Expr::RawString { .. });
            Some((span.text().to_string(), simple))
        }
        _ => root_name(refr).map(|r| (r, false)),
    }
}

/// The variable a reference chain starts from.
fn root_name(expr: &Ref<Expr>) -> Option<String> {
    let mut e = expr;
    loop {
        match e.as_ref() {
            Expr::Var { span, .. } => return Some(span.text().to_string()),
            Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => e = refr,
            _ => return None,
        }
    }
}

/// A reference made only of names and string keys: its root variable and the rest.
fn static_path(expr: &Ref<Expr>) -> Option<(String, Vec<String>)> {
    let mut rest = Vec::new();
    let mut e = expr;
    loop {
        match e.as_ref() {
            Expr::Var { span, .. } => {
                rest.reverse();
                return Some((span.text().to_string(), rest));
            }
            Expr::RefDot { refr, field, .. } => {
                rest.push(field.0.text().to_string());
                e = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                match index.as_ref() {
                    Expr::String { value, .. } | Expr::RawString { value, .. } => {
                        rest.push(value.as_string().ok()?.to_string());
                    }
                    _ => return None,
                }
                e = refr;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regorus::Engine;

    /// The parameter-only rules of Rego v1 modules.
    fn found(modules: &[&str]) -> Vec<String> {
        let mut engine = Engine::new();
        for (i, m) in modules.iter().enumerate() {
            engine
                .add_policy(format!("m{i}.rego"), m.to_string())
                .unwrap();
        }
        parameter_only_rules(engine.get_modules())
    }

    #[test]
    fn rules_of_the_parameters_alone_are_found_and_their_dependents_too() {
        let got = found(&[r#"package t
_params := {"max": to_number(input.parameters.max)}
_bracket := input["parameters"].names
_derived if _params.max > 1
_pod := input.review.object
_mixed if {
    _pod.kind == "Pod"
    _params.max > 1
}
violation contains {"msg": "x"} if not _derived
deny contains {"msg": "y"} if _mixed
"#]);
        // `violation` reads nothing else either: its value too is the parameters' alone.
        assert_eq!(
            got,
            [
                "data.t._bracket",
                "data.t._derived",
                "data.t._params",
                "data.t.violation"
            ]
        );
    }

    #[test]
    fn any_other_read_of_input_or_data_is_a_dependency_on_the_review() {
        let got = found(&[r#"package t
_bare := object.get(input, "parameters", {})
_inventory := data.inventory.cluster
_root := data
_review_in_comprehension := [c | some c in input.review.object.spec.containers]
_review_in_every if every c in input.review.object.spec.containers { c.name != "" }
_review_as_key := {input.review.kind.kind: input.parameters.x}
_review_in_bracket := input.parameters.limits[input.review.object.kind]
_kept := [n | some n in input.parameters.names]
"#]);
        assert_eq!(got, ["data.t._kept"]);
    }

    #[test]
    fn functions_count_by_what_their_bodies_read() {
        let got = found(&[r#"package t
_double(x) := x * 2
_sized(x) := x + count(input.review.object.spec.containers)
_pure := _double(input.parameters.n)
_impure := _sized(1)
"#]);
        assert_eq!(got, ["data.t._pure"]);
    }

    #[test]
    fn libraries_are_followed_through_data_and_through_imports() {
        let lib = r#"package lib.helpers
double(x) := x * 2
kind := input.review.object.kind
limit := input.parameters.limit
"#;
        let got = found(&[
            r#"package t
import data.lib.helpers
import data.lib.helpers.double
import data.lib.helpers.kind as k
_by_path := data.lib.helpers.double(input.parameters.n)
_by_alias := helpers.double(input.parameters.n)
_by_function_alias := double(input.parameters.n)
_rule_by_path := data.lib.helpers.limit
_review_by_alias := k
_review_by_path := data.lib.helpers.kind
_whole_package := data.lib.helpers
_nowhere := data.lib.missing.rule
"#,
            lib,
        ]);
        assert_eq!(
            got,
            [
                "data.lib.helpers.limit",
                "data.t._by_alias",
                "data.t._by_function_alias",
                "data.t._by_path",
                "data.t._rule_by_path",
            ]
        );
    }

    #[test]
    fn an_alias_of_input_is_the_review() {
        let got = found(&[r#"package t
import input.parameters as p
_through_alias := p.x
"#]);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn time_randomness_and_the_network_are_never_kept() {
        let got = found(&[r#"package t
_now := time.now_ns()
_random := rand.intn("seed", input.parameters.n)
_fetched := http.send({"method": "GET", "url": input.parameters.url})
_lowered := lower(input.parameters.name)
"#]);
        assert_eq!(got, ["data.t._lowered"]);
    }

    #[test]
    fn with_multi_part_heads_and_their_readers_are_left_alone() {
        let got = found(&[r#"package t
a.b := input.parameters.x
_reads_nested := a.b
_with := count(input.parameters.names) if {
    true with input as {}
}
"#]);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn partial_objects_count_by_their_bodies() {
        let got = found(&[r#"package t
_labels[k] := v if some k, v in input.review.object.metadata.labels
_reads_labels := count(_labels)
_limits[res] := n if some res, n in input.parameters.limits
_reads_limits := _limits.cpu
"#]);
        assert_eq!(got, ["data.t._limits", "data.t._reads_limits"]);
    }

    #[test]
    fn every_definition_of_a_rule_must_qualify() {
        let got = found(&[r#"package t
default _level := 0
_level := 1 if input.parameters.strict
_level := 2 if input.review.dryRun
default _mode := "open"
_mode := "closed" if input.parameters.strict
_names contains n if some n in input.parameters.names
_names contains n if n := input.review.object.metadata.name
"#]);
        assert_eq!(got, ["data.t._mode"]);
    }
}
