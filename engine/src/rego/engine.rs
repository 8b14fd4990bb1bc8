//! One regorus engine configuration for everything that evaluates Rego (templates and Rego unit
//! tests), so both see OPA's semantics.

use regorus::{Engine, Value};

/// A new engine that evaluates like Gatekeeper's OPA: Rego v0 unless `v1`, non-strict builtin
/// errors, `print()` output gathered instead of written, Go's `sprintf`, and (v0 only) OPA's
/// deprecated builtins.
pub fn opa_compatible_engine(v1: bool) -> anyhow::Result<Engine> {
    let mut engine = Engine::new();
    engine.set_rego_v0(!v1);
    engine.set_strict_builtin_errors(false);
    engine.set_gather_prints(true);
    engine.add_extension(
        "sprintf".to_string(),
        2,
        Box::new(|args: Vec<Value>| sprintf_builtin(&args)),
    )?;
    if !v1 {
        for (name, arity) in super::DEPRECATED_BUILTINS {
            engine.add_extension(
                name.to_string(),
                arity,
                Box::new(move |args: Vec<Value>| super::call_deprecated(name, &args)),
            )?;
        }
    }
    Ok(engine)
}

/// `sprintf(format, args)` as a Rego builtin, with Go's formatting.
pub fn sprintf_builtin(args: &[Value]) -> anyhow::Result<Value> {
    let format = args
        .first()
        .and_then(|f| f.as_string().ok())
        .ok_or_else(|| anyhow::anyhow!("sprintf: operand 1 must be string"))?;
    let items = match args.get(1) {
        Some(Value::Array(items)) => items.iter().cloned().collect::<Vec<_>>(),
        _ => anyhow::bail!("sprintf: operand 2 must be array"),
    };
    Ok(Value::from(super::go_sprintf(format, &items)))
}

/// regorus prefixes `print()` output with `file.rego:line: `; OPA's print hooks do not.
pub fn strip_print_location(line: &str) -> &str {
    let Some((loc, rest)) = line.split_once(": ") else {
        return line;
    };
    match loc.rsplit_once(':') {
        Some((file, n)) if file.ends_with(".rego") && n.parse::<u32>().is_ok() => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_locations_are_stripped_only_when_they_are_locations() {
        assert_eq!(strip_print_location("a.rego:3: hello"), "hello");
        assert_eq!(strip_print_location("note: hello"), "note: hello");
    }
}
