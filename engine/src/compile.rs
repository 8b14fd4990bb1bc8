//! Turns a ConstraintTemplate into a prepared regorus engine (or, for a CEL-only template, a
//! [`crate::cel::CelProgram`]), exactly once.
//!
//! Owns Gatekeeper's compile rules (Rego version, libs, allowed references, the required
//! `violation` rule) and the engine settings that make regorus behave like OPA (non-strict
//! builtins, Go `sprintf`, the source normalisation in [`crate::rego`]). Evaluation clones the
//! prepared engine; it never parses again.

use std::num::NonZeroU32;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value as RegoValue};

use crate::cel::{CelProgram, Diagnostic};
use crate::gatekeeper::{ConstraintTemplate, RegoCode, TemplateCode};
use crate::precompiled::{LoadError, Lookup, Precompiled};
use crate::rego;
use crate::rvm::{Evaluator, Fallback, FastPath};
use crate::schema::ParametersSchema;

/// A template ready to evaluate.
#[derive(Debug)]
pub struct CompiledTemplate {
    /// The template as read.
    pub template: ConstraintTemplate,
    /// Its parameters schema, when it has one.
    pub schema: Option<ParametersSchema>,
    code: Code,
}

/// The compiled code of a template.
#[derive(Debug)]
enum Code {
    Rego(Box<RegoProgram>),
    Cel {
        program: CelProgram,
        diagnostics: Vec<Diagnostic>,
    },
}

/// A template's Rego, prepared.
#[derive(Debug)]
struct RegoProgram {
    /// The interpreter's prepared engine (or why it could not be prepared). Set at compile
    /// time, except for a precompiled program: that one is prepared when an evaluation first
    /// needs the interpreter, so a start does not parse what it will rarely run.
    engine: OnceLock<Result<Engine, String>>,
    name: String,
    code: RegoCode,
    /// Idle copies of `engine` for evaluations without inventory: reusing one costs less than
    /// cloning the prepared engine each time (regorus resets its evaluation state per call).
    idle: Mutex<Vec<Engine>>,
    /// The same rule as RVM bytecode, when asked for and it compiles (see [`crate::rvm`]).
    fast: Option<FastPath>,
    violation_rule: String,
    /// Whether the Rego reads `data.inventory`; others skip loading it.
    uses_inventory: bool,
    /// The evaluation budget it was compiled with.
    budget: Option<Duration>,
    /// What became of a precompiled program for this Rego.
    precompiled: PrecompiledUse,
}

/// Whether a template runs a program compiled ahead of time ([`crate::precompiled`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrecompiledUse {
    /// None was offered for its Rego: compiled here.
    None,
    /// Runs the precompiled program.
    Used,
    /// One was offered and could not be used (why): compiled here.
    Refused(LoadError),
}

/// The outcome of one evaluation.
#[derive(Debug)]
pub struct Evaluation {
    /// The `violation` set, or the error text in OPA's wording.
    pub result: Result<RegoValue, String>,
    /// `print()` output, one entry per call.
    pub prints: Vec<String>,
    /// The evaluation was stopped by its time budget (`result` is that error).
    pub timed_out: bool,
}

/// Idle engines kept per template: more than the threads that evaluate at once is waste.
const IDLE_ENGINES: usize = 16;

/// A compile failure: the field holding the Rego and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileFailure {
    /// Field of the template where the problem is.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl CompiledTemplate {
    /// Compiles a template with no evaluation time budget.
    pub fn compile(template: ConstraintTemplate) -> Result<Self, CompileFailure> {
        Self::compile_with_budget(template, None)
    }

    /// Compiles a template; every later evaluation is stopped (as an error, which becomes that
    /// constraint's violation) once it has run for `budget`.
    pub fn compile_with_budget(
        template: ConstraintTemplate,
        budget: Option<Duration>,
    ) -> Result<Self, CompileFailure> {
        Self::compile_with(template, budget, Evaluator::default())
    }

    /// Compiles a template for `evaluator`, with an optional evaluation budget.
    pub fn compile_with(
        template: ConstraintTemplate,
        budget: Option<Duration>,
        evaluator: Evaluator,
    ) -> Result<Self, CompileFailure> {
        Self::compile_using(template, budget, evaluator, None)
    }

    /// [`Self::compile_with`], taking the RVM program from `precompiled` when it holds one for
    /// exactly this Rego (and the RVM is asked for).
    pub fn compile_using(
        template: ConstraintTemplate,
        budget: Option<Duration>,
        evaluator: Evaluator,
        precompiled: Option<&Precompiled>,
    ) -> Result<Self, CompileFailure> {
        let schema = template
            .parameters_schema
            .as_ref()
            .map(ParametersSchema::compile)
            .transpose()
            .map_err(|e| CompileFailure {
                field: e.field,
                message: e.message,
            })?;
        let code = match &template.code {
            TemplateCode::Rego(code) => Code::Rego(Box::new(RegoProgram::compile(
                &template.name,
                code,
                budget,
                evaluator,
                precompiled,
            )?)),
            TemplateCode::Cel(source) => {
                let (program, diagnostics) =
                    CelProgram::compile(source).map_err(|message| CompileFailure {
                        field: source.field.clone(),
                        message,
                    })?;
                Code::Cel {
                    program,
                    diagnostics,
                }
            }
        };
        Ok(CompiledTemplate {
            template,
            schema,
            code,
        })
    }

    /// The template's CEL program, when it runs CEL (`engine: K8sNativeValidation` only).
    pub fn cel(&self) -> Option<&CelProgram> {
        match &self.code {
            Code::Cel { program, .. } => Some(program),
            Code::Rego(_) => None,
        }
    }

    /// CEL expressions of the template that do not compile: Gatekeeper accepts such a template
    /// and reports the error on every review it would run in, and so does tollgate; these say
    /// where they are.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match &self.code {
            Code::Cel { diagnostics, .. } => diagnostics,
            Code::Rego(_) => &[],
        }
    }

    /// Whether the template's Rego reads `data.inventory` (only then is it given one).
    pub fn uses_inventory(&self) -> bool {
        matches!(&self.code, Code::Rego(r) if r.uses_inventory)
    }

    /// Whether evaluations run on the RVM.
    pub fn on_fast_path(&self) -> bool {
        matches!(&self.code, Code::Rego(r) if r.fast.is_some())
    }

    /// Whether the template runs a precompiled program, and why not when one was refused.
    pub fn precompiled(&self) -> &PrecompiledUse {
        match &self.code {
            Code::Rego(r) => &r.precompiled,
            Code::Cel { .. } => &PrecompiledUse::None,
        }
    }

    /// The RVM program to store ahead of time: the template's name, Rego, `violation` rule and
    /// program, when it runs on the RVM.
    pub fn rvm_program(&self) -> Option<(&str, &RegoCode, &FastPath)> {
        match &self.code {
            Code::Rego(r) => r.fast.as_ref().map(|f| (r.name.as_str(), &r.code, f)),
            Code::Cel { .. } => None,
        }
    }

    /// The constraint kind this template defines.
    pub fn kind(&self) -> &str {
        &self.template.kind
    }

    /// Evaluates `violation` for one input (`{"review", "parameters"}`), with `data.inventory`
    /// when given. Returns the raw result set (or the error in OPA's wording) and any `print()`
    /// output. A CEL template has no `violation`: see [`Self::cel`].
    pub fn evaluate(&self, input: RegoValue, inventory: Option<&RegoValue>) -> Evaluation {
        self.evaluate_within(input, inventory, None)
    }

    /// [`Self::evaluate`] with `budget` in place of the template's own budget for this call.
    pub fn evaluate_within(
        &self,
        input: RegoValue,
        inventory: Option<&RegoValue>,
        budget: Option<Duration>,
    ) -> Evaluation {
        match &self.code {
            Code::Rego(rego) => rego.evaluate_within(input, inventory, budget),
            Code::Cel { .. } => Evaluation {
                result: Err(format!(
                    "template {} runs K8sNativeValidation (CEL), not Rego",
                    self.template.name
                )),
                prints: Vec::new(),
                timed_out: false,
            },
        }
    }
}

impl RegoProgram {
    fn compile(
        name: &str,
        code: &RegoCode,
        budget: Option<Duration>,
        evaluator: Evaluator,
        precompiled: Option<&Precompiled>,
    ) -> Result<Self, CompileFailure> {
        let uses_inventory = std::iter::once(&code.rego)
            .chain(code.libs.iter())
            .any(|src| src.contains("inventory"));
        let mut program = RegoProgram {
            engine: OnceLock::new(),
            name: name.to_string(),
            code: code.clone(),
            idle: Mutex::new(Vec::new()),
            fast: None,
            violation_rule: String::new(),
            uses_inventory,
            budget,
            precompiled: PrecompiledUse::None,
        };
        if evaluator == Evaluator::Rvm
            && let Some(precompiled) = precompiled
        {
            // The artifact holds only Rego that compiled, with its analysis passed: the checks
            // below would find nothing, and the interpreter waits until it is needed.
            match precompiled.lookup(name, code) {
                Lookup::Absent => {}
                Lookup::Ready {
                    program: p,
                    rule,
                    parameter_rules,
                } => match FastPath::precompiled(*p, &rule, &parameter_rules) {
                    Some(fast) => {
                        program.fast = Some(fast);
                        program.violation_rule = rule;
                        program.precompiled = PrecompiledUse::Used;
                        return Ok(program);
                    }
                    None => {
                        program.precompiled = PrecompiledUse::Refused(LoadError::Program(
                            "its machine does not start".into(),
                        ));
                    }
                },
                Lookup::Unusable(e) => program.precompiled = PrecompiledUse::Refused(e),
            }
        }
        let (mut engine, violation_rule) = prepare(name, code, budget)?;
        if evaluator == Evaluator::Rvm {
            let sources = std::iter::once(code.rego.as_str())
                .chain(code.libs.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("\n");
            program.fast = FastPath::compile(&mut engine, &violation_rule, &sources);
        }
        program.violation_rule = violation_rule;
        program.engine = OnceLock::from(Ok(engine));
        Ok(program)
    }

    /// The prepared interpreter, built now if it was left for later.
    fn engine(&self) -> Result<&Engine, &str> {
        self.engine
            .get_or_init(|| {
                prepare(&self.name, &self.code, self.budget)
                    .map(|(engine, _)| engine)
                    .map_err(|f| format!("{}: {}", f.field, f.message))
            })
            .as_ref()
            .map_err(String::as_str)
    }

    fn evaluate_within(
        &self,
        input: RegoValue,
        inventory: Option<&RegoValue>,
        budget: Option<Duration>,
    ) -> Evaluation {
        let timer = crate::rvm::timer(budget.or(self.budget));
        if let Some(fast) = &self.fast {
            let inventory = inventory.filter(|_| self.uses_inventory);
            match fast.evaluate(input.clone(), inventory, timer) {
                Ok(set) => {
                    return Evaluation {
                        result: Ok(set),
                        prints: Vec::new(),
                        timed_out: false,
                    };
                }
                Err(Fallback::Budget(message)) => {
                    return Evaluation {
                        result: Err(message),
                        prints: Vec::new(),
                        timed_out: true,
                    };
                }
                Err(Fallback::Interpreter) => {}
            }
        }
        // An engine that gets inventory data keeps it: those are cloned fresh and not reused.
        let with_inventory = inventory.is_some() && self.uses_inventory;
        let pooled = if with_inventory {
            None
        } else {
            self.idle.lock().ok().and_then(|mut idle| idle.pop())
        };
        let mut engine = match pooled {
            Some(engine) => engine,
            None => match self.engine() {
                Ok(engine) => engine.clone(),
                // Only a precompiled template prepares its interpreter this late, and its Rego
                // compiled when the artifact was written: reached only if this build's checks
                // disagree with that one's.
                Err(message) => {
                    return Evaluation {
                        result: Err(message.to_string()),
                        prints: Vec::new(),
                        timed_out: false,
                    };
                }
            },
        };
        if let Some(inventory) = inventory
            && self.uses_inventory
        {
            let mut data = RegoValue::new_object();
            if let Ok(map) = data.as_object_mut() {
                map.insert(RegoValue::from("inventory"), inventory.clone());
            }
            if let Err(e) = engine.add_data(data) {
                return Evaluation {
                    result: Err(e.to_string()),
                    prints: Vec::new(),
                    timed_out: false,
                };
            }
        }
        // Every evaluation sets its timer: a pooled engine may carry another call's.
        match timer {
            Some(t) => engine.set_execution_timer_config(t),
            None => engine.clear_execution_timer_config(),
        }
        engine.set_input(input);
        let mut timed_out = false;
        let result = engine.eval_rule(self.violation_rule.clone()).map_err(|e| {
            timed_out = crate::rvm::is_time_limit(&e);
            opa_error_text(&e.to_string(), &self.code.rego)
        });
        let prints = engine
            .take_prints()
            .unwrap_or_default()
            .into_iter()
            .map(|p| rego::strip_print_location(&p).to_string())
            .collect();
        if !with_inventory {
            // Without the request's input: an idle engine must not pin a review in memory.
            engine.set_input(RegoValue::Undefined);
            if let Ok(mut idle) = self.idle.lock()
                && idle.len() < IDLE_ENGINES
            {
                idle.push(engine);
            }
        }
        Evaluation {
            result,
            prints,
            timed_out,
        }
    }
}

/// The interpreter's engine for a template's Rego, checked as Gatekeeper checks it and
/// prepared by one evaluation; and the `violation` rule's path.
fn prepare(
    name: &str,
    code: &RegoCode,
    budget: Option<Duration>,
) -> Result<(Engine, String), CompileFailure> {
    let fail = |field: &str, message: String| CompileFailure {
        field: field.to_string(),
        message,
    };
    rego::check_nesting(&code.rego).map_err(|e| fail(&code.field, e.to_string()))?;
    let mut engine =
        rego::opa_compatible_engine(code.v1).map_err(|e| fail(&code.field, e.to_string()))?;
    if let Some(limit) = budget {
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit,
            check_interval: NonZeroU32::MIN.saturating_add(63),
        });
    }
    // Gatekeeper always provides data.inventory, empty until something is synced.
    engine
        .add_data(RegoValue::from(serde_json::json!({"inventory": {}})))
        .map_err(|e| fail(&code.field, e.to_string()))?;

    for (i, lib) in code.libs.iter().enumerate() {
        let field = format!("{}.libs[{i}]", parent_field(&code.field));
        rego::check_nesting(lib).map_err(|e| fail(&field, e.to_string()))?;
        rego::check_refs(lib).map_err(|e| fail(&field, e.to_string()))?;
        engine
            .add_policy(format!("{name}/lib{i}.rego"), rego::normalize(lib, code.v1))
            .map_err(|e| fail(&field, e.to_string()))?;
    }
    let package = engine
        .add_policy(format!("{name}.rego"), rego::normalize(&code.rego, code.v1))
        .map_err(|e| fail(&code.field, e.to_string()))?;
    // Gatekeeper's own rules run on source that parses: a syntax error is reported as one,
    // never as a follow-on such as a missing `violation` rule.
    rego::check_refs(&code.rego).map_err(|e| fail(&code.field, e.to_string()))?;
    let mut libraries = rego::KnownFunctions::default();
    for lib in &code.libs {
        libraries.add_library(lib);
    }
    let mut extensions = vec!["sprintf"];
    if !code.v1 {
        extensions.extend(rego::DEPRECATED_BUILTINS.iter().map(|(n, _)| *n));
    }
    if let Some(e) = rego::undefined_function(&code.rego, &libraries, &extensions) {
        return Err(fail(&code.field, e.to_string()));
    }
    if !rego::rule_is_defined(&code.rego, "violation") {
        return Err(fail(
            &code.field,
            "missing required rule: the template must define `violation`".to_string(),
        ));
    }
    let violation_rule = format!("{package}.violation");
    // Evaluate once on an empty review. This runs regorus's analysis (unsafe variables,
    // unknown functions, recursion) now, so a broken template fails at load time rather than
    // on every request, and it leaves the engine prepared: clones made per evaluation skip
    // the analysis. Runtime errors that depend on input are not compile errors.
    engine.set_input(RegoValue::from(
        serde_json::json!({"review": {}, "parameters": {}}),
    ));
    if let Err(e) = engine.eval_rule(violation_rule.clone()) {
        let message = e.to_string();
        if is_compile_error(&message) {
            return Err(fail(&code.field, message));
        }
    }
    let _ = engine.take_prints();
    Ok((engine, violation_rule))
}

fn parent_field(field: &str) -> &str {
    field.rsplit_once('.').map_or(field, |(p, _)| p)
}

/// regorus reports static problems through the same error type as runtime ones; these are the
/// messages that can only come from analysis, never from input data.
fn is_compile_error(message: &str) -> bool {
    [
        "could not find function",
        "unsafe var",
        "var not bound",
        "recursion",
        "use of undefined variable",
        "invalid",
        "mismatch in number of arguments",
        "not a valid",
        "duplicate",
        "unknown",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Rewrites a regorus evaluation error the way OPA words it (`template:<line>: <code>: <msg>`),
/// on one line, for the conflicts OPA reports as `eval_conflict_error`; other errors keep
/// regorus's message with its location.
pub fn opa_error_text(message: &str, rego: &str) -> String {
    let mut line = None;
    let mut column = None;
    let mut source_line = "";
    let mut error = message.trim();
    for l in message.lines() {
        let t = l.trim();
        if let Some(loc) = t.strip_prefix("--> ") {
            let mut parts = loc.rsplit(':');
            column = parts.next().and_then(|n| n.parse::<usize>().ok());
            line = parts.next().and_then(|n| n.parse::<usize>().ok());
        } else if let Some((_, code)) = t.split_once(" | ")
            && source_line.is_empty()
        {
            source_line = code;
        } else if let Some(e) = t.strip_prefix("error: ") {
            error = e;
        }
    }
    let head_is_object_rule = source_line
        .split(['=', '{'])
        .next()
        .is_some_and(|head| head.contains('[') && !head.trim_start().starts_with("violation"));
    let mapped = if error.contains("functions must not produce multiple outputs") {
        // regorus points at the call; OPA at the definition that produced the second output.
        if let Some(def) = line
            .zip(column)
            .and_then(|(l, c)| last_definition(rego, l, c))
        {
            line = Some(def);
        }
        "eval_conflict_error: functions must not produce multiple outputs for same inputs"
            .to_string()
    } else if error.contains("rule conflicts with rule")
        || error.contains("rules must not produce multiple outputs")
    {
        if head_is_object_rule {
            "eval_conflict_error: object keys must be unique".to_string()
        } else {
            "eval_conflict_error: complete rules must not produce multiple outputs".to_string()
        }
    } else {
        error.to_string()
    };
    match line {
        Some(n) => format!("template:{n}: {mapped}"),
        None => mapped,
    }
}

/// The line of the last definition of the function called at `line`:`column` of `rego`.
fn last_definition(rego: &str, line: usize, column: usize) -> Option<usize> {
    let text = rego.lines().nth(line.checked_sub(1)?)?;
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.';
    let mut end = column.saturating_sub(1).min(bytes.len());
    while end < bytes.len() && is_ident(bytes[end]) {
        end += 1;
    }
    let mut start = end;
    while start > 0 && is_ident(bytes[start - 1]) {
        start -= 1;
    }
    let name = text.get(start..end)?.rsplit('.').next()?;
    if name.is_empty() {
        return None;
    }
    let head = format!("{name}(");
    rego.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(&head))
        .map(|(i, _)| i + 1)
        .last()
}
