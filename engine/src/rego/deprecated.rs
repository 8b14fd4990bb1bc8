//! Builtins OPA removed in Rego v1 but still accepts in v0 modules, which Gatekeeper templates
//! (v0 by default) and gatekeeper-library policies use (`any`, `re_match`, ...). regorus has
//! none of them; they are registered as extensions on v0 templates only.

use regorus::Value;

/// Name and arity of every deprecated builtin provided.
pub const NAMES: [(&str, u8); 11] = [
    ("any", 1),
    ("all", 1),
    ("re_match", 2),
    ("set_diff", 2),
    ("cast_array", 1),
    ("cast_set", 1),
    ("cast_string", 1),
    ("cast_boolean", 1),
    ("cast_null", 1),
    ("cast_object", 1),
    ("net.cidr_overlap", 2),
];

fn elements(v: &Value, name: &str) -> anyhow::Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a.iter().cloned().collect()),
        Value::Set(s) => Ok(s.iter().cloned().collect()),
        _ => anyhow::bail!("{name}: operand 1 must be one of {{array, set}}"),
    }
}

/// Evaluates the deprecated builtin `name`.
pub fn call(name: &str, args: &[Value]) -> anyhow::Result<Value> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Undefined);
    Ok(match name {
        "any" => Value::Bool(elements(&arg(0), name)?.contains(&Value::Bool(true))),
        "all" => Value::Bool(
            elements(&arg(0), name)?
                .iter()
                .all(|v| *v == Value::Bool(true)),
        ),
        "re_match" => {
            let (Value::String(pattern), Value::String(value)) = (arg(0), arg(1)) else {
                anyhow::bail!("re_match: operands must be strings");
            };
            Value::Bool(regex::Regex::new(&pattern)?.is_match(&value))
        }
        "set_diff" => match (arg(0), arg(1)) {
            (Value::Set(a), Value::Set(b)) => {
                let diff: std::collections::BTreeSet<Value> =
                    a.iter().filter(|v| !b.contains(v)).cloned().collect();
                Value::from(diff)
            }
            _ => anyhow::bail!("set_diff: operands must be sets"),
        },
        "cast_array" => Value::from(elements(&arg(0), name)?),
        "cast_set" => Value::from(
            elements(&arg(0), name)?
                .into_iter()
                .collect::<std::collections::BTreeSet<Value>>(),
        ),
        "cast_string" => match arg(0) {
            v @ Value::String(_) => v,
            _ => anyhow::bail!("cast_string: operand must be a string"),
        },
        "cast_boolean" => match arg(0) {
            v @ Value::Bool(_) => v,
            _ => anyhow::bail!("cast_boolean: operand must be a boolean"),
        },
        "cast_null" => match arg(0) {
            Value::Null => Value::Null,
            _ => anyhow::bail!("cast_null: operand must be null"),
        },
        "cast_object" => match arg(0) {
            v @ Value::Object(_) => v,
            _ => anyhow::bail!("cast_object: operand must be an object"),
        },
        "net.cidr_overlap" => {
            let (Value::String(cidr), Value::String(ip)) = (arg(0), arg(1)) else {
                anyhow::bail!("net.cidr_overlap: operands must be strings");
            };
            Value::Bool(cidr_contains(&cidr, &ip)?)
        }
        other => anyhow::bail!("unknown deprecated builtin {other}"),
    })
}

/// Whether `cidr` contains the address or network `ip` (OPA's `net.cidr_contains`).
fn cidr_contains(cidr: &str, ip: &str) -> anyhow::Result<bool> {
    let (net, bits) = parse_cidr(cidr)?;
    let (addr, addr_bits) = match ip.split_once('/') {
        Some(_) => parse_cidr(ip)?,
        None => {
            let a: std::net::IpAddr = ip.parse()?;
            let width = if a.is_ipv4() { 32 } else { 128 };
            (a, width)
        }
    };
    if net.is_ipv4() != addr.is_ipv4() || addr_bits < bits {
        return Ok(false);
    }
    let (n, a, width) = match (net, addr) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
            (u128::from(u32::from(n)), u128::from(u32::from(a)), 32)
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
        _ => return Ok(false),
    };
    let shift = width - bits;
    Ok(shift >= 128 || (n >> shift) == (a >> shift))
}

fn parse_cidr(cidr: &str) -> anyhow::Result<(std::net::IpAddr, u32)> {
    let (addr, bits) = cidr
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("invalid CIDR {cidr:?}"))?;
    let addr: std::net::IpAddr = addr.parse()?;
    let bits: u32 = bits.parse()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    anyhow::ensure!(bits <= max, "invalid CIDR {cidr:?}");
    Ok((addr, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecated_builtins_behave_like_opa_v0() {
        let arr = Value::from(vec![Value::Bool(false), Value::Bool(true)]);
        assert_eq!(
            call("any", std::slice::from_ref(&arr)).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(call("all", &[arr]).unwrap(), Value::Bool(false));
        let m = call("re_match", &[Value::from("^ab+$"), Value::from("abbb")]).unwrap();
        assert_eq!(m, Value::Bool(true));
        let c = call(
            "net.cidr_overlap",
            &[Value::from("10.0.0.0/8"), Value::from("10.1.2.3")],
        );
        assert_eq!(c.unwrap(), Value::Bool(true));
        let c = call(
            "net.cidr_overlap",
            &[Value::from("10.0.0.0/8"), Value::from("11.1.2.3")],
        );
        assert_eq!(c.unwrap(), Value::Bool(false));
        assert!(call("cast_string", &[Value::from(1)]).is_err());
    }
}
