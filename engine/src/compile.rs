//! Turns a ConstraintTemplate into a prepared regorus engine, exactly once.
//!
//! Owns Gatekeeper's compile rules (Rego version, libs, allowed references, the required
//! `violation` rule) and the engine settings that make regorus behave like OPA (non-strict
//! builtins, Go `sprintf`, the source normalisation in [`crate::rego`]). Evaluation clones the
//! prepared engine; it never parses again.

use std::sync::Arc;

use regorus::{Engine, Value as RegoValue};

use crate::gatekeeper::ConstraintTemplate;
use crate::rego;
use crate::schema::ParametersSchema;

/// A template ready to evaluate.
#[derive(Debug)]
pub struct CompiledTemplate {
    /// The template as read.
    pub template: ConstraintTemplate,
    /// Its parameters schema, when it has one.
    pub schema: Option<ParametersSchema>,
    engine: Engine,
    violation_rule: String,
}

/// A compile failure: the field holding the Rego and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileFailure {
    /// Field of the template where the problem is.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl CompiledTemplate {
    /// Compiles a template.
    pub fn compile(template: ConstraintTemplate) -> Result<Self, CompileFailure> {
        let code = &template.code;
        let fail = |field: &str, message: String| CompileFailure {
            field: field.to_string(),
            message,
        };
        rego::check_refs(&code.rego).map_err(|e| fail(&code.field, e.to_string()))?;
        if !rego::rule_is_defined(&code.rego, "violation") {
            return Err(fail(
                &code.field,
                "missing required rule: the template must define `violation`".to_string(),
            ));
        }
        let mut engine = Engine::new();
        engine.set_rego_v0(!code.v1);
        engine.set_strict_builtin_errors(false);
        engine
            .add_extension(
                "sprintf".to_string(),
                2,
                Box::new(|args: Vec<RegoValue>| {
                    let format = args
                        .first()
                        .and_then(|f| f.as_string().ok())
                        .ok_or_else(|| anyhow::anyhow!("sprintf: operand 1 must be string"))?;
                    let items = match args.get(1) {
                        Some(RegoValue::Array(items)) => items.iter().cloned().collect::<Vec<_>>(),
                        _ => anyhow::bail!("sprintf: operand 2 must be array"),
                    };
                    Ok(RegoValue::from(rego::go_sprintf(format, &items)))
                }),
            )
            .map_err(|e| fail(&code.field, e.to_string()))?;
        for (i, lib) in code.libs.iter().enumerate() {
            let field = format!("{}.libs[{i}]", parent_field(&code.field));
            rego::check_refs(lib).map_err(|e| fail(&field, e.to_string()))?;
            engine
                .add_policy(
                    format!("{}/lib{i}.rego", template.name),
                    rego::normalize(lib, code.v1),
                )
                .map_err(|e| fail(&field, e.to_string()))?;
        }
        let package = engine
            .add_policy(
                format!("{}.rego", template.name),
                rego::normalize(&code.rego, code.v1),
            )
            .map_err(|e| fail(&code.field, e.to_string()))?;
        let violation_rule = format!("{package}.violation");
        let schema = template
            .parameters_schema
            .as_ref()
            .map(ParametersSchema::compile)
            .transpose()
            .map_err(|e| fail(&e.field, e.message))?;
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
                return Err(fail(&template.code.field, message));
            }
        }
        Ok(CompiledTemplate {
            template,
            schema,
            engine,
            violation_rule,
        })
    }

    /// The constraint kind this template defines.
    pub fn kind(&self) -> &str {
        &self.template.kind
    }

    /// Evaluates `violation` for one input (`{"review", "parameters"}`), with `data.inventory`
    /// when given. Returns the raw result set, or the evaluation error text.
    pub fn evaluate(
        &self,
        input: RegoValue,
        inventory: Option<&RegoValue>,
    ) -> Result<RegoValue, anyhow::Error> {
        let mut engine = self.engine.clone();
        if let Some(inventory) = inventory {
            let mut data = RegoValue::new_object();
            if let Ok(map) = data.as_object_mut() {
                map.insert(RegoValue::from("inventory"), inventory.clone());
            }
            engine.add_data(data)?;
        }
        engine.set_input(input);
        engine.eval_rule(self.violation_rule.clone())
    }
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

/// Shares compiled templates between policy sets.
pub type SharedTemplate = Arc<CompiledTemplate>;
