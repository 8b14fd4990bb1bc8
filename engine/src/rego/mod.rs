//! Rego source handling that makes regorus answer as Gatekeeper's OPA does.
//!
//! Owns the lexical scan of template sources (Gatekeeper's reference rules, the v0 parser
//! corners that regorus reads differently) and the Go-compatible `sprintf`. It rewrites text,
//! never evaluates; every rewrite keeps line numbers so regorus's errors still point at the
//! author's lines.

mod deprecated;
mod engine;
mod lexer;
mod negation;
mod parameter_rules;
mod rewrite;
mod sprintf;
mod value;

pub use deprecated::{NAMES as DEPRECATED_BUILTINS, call as call_deprecated};
pub use engine::{opa_compatible_engine, sprintf_builtin, strip_print_location};
pub use parameter_rules::parameter_only_rules;
pub use rewrite::{
    KnownFunctions, MAX_NESTING, RefError, check_nesting, check_refs, normalize, rule_is_defined,
    undefined_function,
};
pub use sprintf::{go_quote as go_quote_str, go_sprintf};
pub use value::to_rego;
