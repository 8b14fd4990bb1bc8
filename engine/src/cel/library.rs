//! The Kubernetes CEL library functions that cel-rust lacks, as the API server's CEL
//! environment (`k8s.io/apiserver/pkg/cel/library`) defines them, and the list of every function
//! a K8sNativeValidation expression may call.
//!
//! Implemented here: the lists library (`isSorted`, `sum`, `min`, `max`, `indexOf`,
//! `lastIndexOf` on lists), the regex library (`find`, `findAll`) and the `sets` extension
//! (`sets.contains`, `sets.equivalent`, `sets.intersects`). cel-rust itself brings the standard
//! library (`size`, `matches`, `startsWith`, `endsWith`, `contains`, conversions, the `has`,
//! `all`, `exists`, `exists_one`, `map` and `filter` macros) and cel-go's strings extension
//! (`join`, `split`, `lowerAscii`, `upperAscii`, `trim`, `replace`, `substring`, `indexOf`,
//! `lastIndexOf`, `charAt`, `format`, `quote`, `reverse`).
//!
//! Not implemented (a call fails to compile, as an unknown function does): the `url`, `ip`,
//! `cidr`, `quantity`, `semver` and `format` libraries, `authorizer`, durations and timestamps,
//! and two-variable comprehensions.

use std::sync::Arc;

use cel::common::types::{DYN_TYPE, LIST_TYPE};
use cel::common::value::CowVal;
use cel::extractors::{Arguments, IntoResolveResult, This};
use cel::objects::Value;
use cel::{Context, Env, ExecutionError};

/// Global functions a K8sNativeValidation expression may call (besides operators and macros).
const GLOBAL: &[&str] = &[
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "dyn",
    "type",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "strings.quote",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
    "optional.of",
    "optional.ofNonZeroValue",
    "optional.none",
];

/// Member functions (`x.f(...)`) a K8sNativeValidation expression may call.
const MEMBER: &[&str] = &[
    "size",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    // cel-go's strings extension
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "format",
    "reverse",
    // Kubernetes lists and regex libraries
    "isSorted",
    "sum",
    "min",
    "max",
    "find",
    "findAll",
    // optionals
    "hasValue",
    "value",
    "orValue",
    "or",
];

/// Whether `name` is a function the environment knows, called globally or on a target.
pub fn is_known(name: &str, member: bool) -> bool {
    if member {
        MEMBER.contains(&name)
    } else {
        GLOBAL.contains(&name)
    }
}

/// The return type of a known function, when it does not depend on its arguments.
pub fn return_type(name: &str) -> Option<super::check::Ty> {
    use super::check::Ty;
    Some(match name {
        "size" | "int" | "indexOf" | "lastIndexOf" => Ty::Int,
        "uint" => Ty::UInt,
        "double" => Ty::Double,
        "string" | "charAt" | "join" | "lowerAscii" | "upperAscii" | "trim" | "replace"
        | "substring" | "format" | "reverse" | "strings.quote" => Ty::String,
        "bool" | "matches" | "contains" | "startsWith" | "endsWith" | "isSorted"
        | "sets.contains" | "sets.equivalent" | "sets.intersects" | "hasValue" => Ty::Bool,
        "dyn" => Ty::Dyn,
        "split" | "findAll" => Ty::List,
        _ => return None,
    })
}

/// The environment: cel-rust's standard library, its strings extension, and the list overloads
/// of `indexOf`/`lastIndexOf` (declared on the environment, beside the string ones).
pub fn environment() -> Result<Env, String> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .map_err(|e| e.to_string())?;
    env.add_member_overload(
        "indexOf",
        "list_indexOf",
        LIST_TYPE,
        vec![DYN_TYPE],
        list_index_of,
    )
    .map_err(|e| e.to_string())?;
    env.add_member_overload(
        "lastIndexOf",
        "list_lastIndexOf",
        LIST_TYPE,
        vec![DYN_TYPE],
        list_last_index_of,
    )
    .map_err(|e| e.to_string())?;
    Ok(env)
}

/// Adds the functions that live on the evaluation context (no overload of the same name).
pub fn add_functions(ctx: &mut Context<'_, '_>) -> Result<(), String> {
    let e = |e: cel::DeclarationError| e.to_string();
    ctx.add_function("isSorted", is_sorted).map_err(e)?;
    ctx.add_function("sum", sum).map_err(e)?;
    ctx.add_function("min", min).map_err(e)?;
    ctx.add_function("max", max).map_err(e)?;
    ctx.add_function("find", find).map_err(e)?;
    ctx.add_function("findAll", find_all).map_err(e)?;
    ctx.add_function("sets.contains", sets_contains)
        .map_err(e)?;
    ctx.add_function("sets.equivalent", sets_equivalent)
        .map_err(e)?;
    ctx.add_function("sets.intersects", sets_intersects)
        .map_err(e)?;
    Ok(())
}

fn error(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

/// Values CEL compares with `<`: numbers of any kind with each other, and same-kind scalars.
fn comparable(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (
            Value::Int(_) | Value::UInt(_) | Value::Float(_),
            Value::Int(_) | Value::UInt(_) | Value::Float(_)
        ) | (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Bytes(_), Value::Bytes(_))
    )
}

fn numeric_order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    let as_f64 = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::UInt(x), Value::UInt(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::UInt(y)) => Some(if *x < 0 {
            std::cmp::Ordering::Less
        } else {
            (*x as u64).cmp(y)
        }),
        (Value::UInt(x), Value::Int(y)) => Some(if *y < 0 {
            std::cmp::Ordering::Greater
        } else {
            x.cmp(&(*y as u64))
        }),
        _ => as_f64(a)?.partial_cmp(&as_f64(b)?),
    }
}

fn order(function: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, ExecutionError> {
    if !comparable(a, b) {
        return Err(error(
            function,
            format!("no such overload: {} < {}", a.type_of(), b.type_of()),
        ));
    }
    numeric_order(a, b)
        .or_else(|| a.partial_cmp(b))
        .ok_or_else(|| error(function, "values are not comparable"))
}

/// `list.isSorted()`: each element is at most the next one.
pub fn is_sorted(This(list): This<Arc<Vec<Value>>>) -> Result<bool, ExecutionError> {
    for pair in list.windows(2) {
        if let [a, b] = pair
            && order("isSorted", a, b)? == std::cmp::Ordering::Greater
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `list.sum()`: the sum of a list of numbers of one kind; `0` for an empty list.
pub fn sum(This(list): This<Arc<Vec<Value>>>) -> Result<Value, ExecutionError> {
    let mut total = match list.first() {
        None => return Ok(Value::Int(0)),
        Some(Value::Int(_)) => Value::Int(0),
        Some(Value::UInt(_)) => Value::UInt(0),
        Some(Value::Float(_)) => Value::Float(0.0),
        Some(other) => {
            return Err(error(
                "sum",
                format!("no such overload: sum on list({})", other.type_of()),
            ));
        }
    };
    for item in list.iter() {
        total = match (&total, item) {
            (Value::Int(a), Value::Int(b)) => Value::Int(
                a.checked_add(*b)
                    .ok_or_else(|| error("sum", "integer overflow"))?,
            ),
            (Value::UInt(a), Value::UInt(b)) => Value::UInt(
                a.checked_add(*b)
                    .ok_or_else(|| error("sum", "unsigned integer overflow"))?,
            ),
            (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
            (_, other) => {
                return Err(error(
                    "sum",
                    format!("no such overload: sum of mixed types ({})", other.type_of()),
                ));
            }
        };
    }
    Ok(total)
}

fn extreme(
    function: &str,
    list: &[Value],
    keep: std::cmp::Ordering,
) -> Result<Value, ExecutionError> {
    let mut items = list.iter();
    let Some(mut best) = items.next() else {
        return Err(error(function, format!("{function} called on empty list")));
    };
    for item in items {
        if order(function, item, best)? == keep {
            best = item;
        }
    }
    Ok(best.clone())
}

/// `list.min()`: the smallest element; an error for an empty list.
pub fn min(This(list): This<Arc<Vec<Value>>>) -> Result<Value, ExecutionError> {
    extreme("min", &list, std::cmp::Ordering::Less)
}

/// `list.max()`: the largest element; an error for an empty list.
pub fn max(This(list): This<Arc<Vec<Value>>>) -> Result<Value, ExecutionError> {
    extreme("max", &list, std::cmp::Ordering::Greater)
}

fn compile_regex(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    // RE2 and the regex crate share their syntax; both refuse look-around and back-references.
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| error(function, format!("invalid regex: {e}")))
}

/// `string.find(regex)`: the first match, `""` when none.
pub fn find(This(s): This<Arc<String>>, pattern: Arc<String>) -> Result<Value, ExecutionError> {
    let re = compile_regex("find", &pattern)?;
    Ok(Value::String(Arc::new(
        re.find(&s)
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
    )))
}

/// `string.findAll(regex)` and `string.findAll(regex, n)`: every match, or at most `n` when
/// `n` is not negative.
pub fn find_all(
    This(s): This<Arc<String>>,
    Arguments(args): Arguments,
) -> Result<Value, ExecutionError> {
    let (pattern, limit) = match args.as_slice() {
        [Value::String(p)] => (p, None),
        [Value::String(p), Value::Int(n)] => (p, usize::try_from(*n).ok()),
        _ => return Err(error("findAll", "expected (string) or (string, int)")),
    };
    let re = compile_regex("findAll", pattern)?;
    let found = re
        .find_iter(&s)
        .take(limit.unwrap_or(usize::MAX))
        .map(|m| Value::String(Arc::new(m.as_str().to_string())))
        .collect();
    Ok(Value::List(Arc::new(found)))
}

fn list_arg<'a>(function: &str, v: &'a Value) -> Result<&'a [Value], ExecutionError> {
    match v {
        Value::List(l) => Ok(l),
        other => Err(error(
            function,
            format!("no such overload: expected list, got {}", other.type_of()),
        )),
    }
}

fn two_lists<'a>(
    function: &str,
    args: &'a [Value],
) -> Result<(&'a [Value], &'a [Value]), ExecutionError> {
    match args {
        [a, b] => Ok((list_arg(function, a)?, list_arg(function, b)?)),
        _ => Err(ExecutionError::invalid_argument_count(2, args.len())),
    }
}

/// `sets.contains(a, b)`: every element of `b` is in `a`.
pub fn sets_contains(Arguments(args): Arguments) -> Result<bool, ExecutionError> {
    let (a, b) = two_lists("sets.contains", &args)?;
    Ok(b.iter().all(|x| a.contains(x)))
}

/// `sets.equivalent(a, b)`: `a` and `b` hold the same elements, duplicates aside.
pub fn sets_equivalent(Arguments(args): Arguments) -> Result<bool, ExecutionError> {
    let (a, b) = two_lists("sets.equivalent", &args)?;
    Ok(b.iter().all(|x| a.contains(x)) && a.iter().all(|x| b.contains(x)))
}

/// `sets.intersects(a, b)`: `a` and `b` share an element.
pub fn sets_intersects(Arguments(args): Arguments) -> Result<bool, ExecutionError> {
    let (a, b) = two_lists("sets.intersects", &args)?;
    Ok(b.iter().any(|x| a.contains(x)))
}

fn list_position<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    last: bool,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let function = if last { "lastIndexOf" } else { "indexOf" };
    let values: Vec<Value> = args
        .iter()
        .map(|v| Value::try_from(v.as_ref()))
        .collect::<Result<_, _>>()?;
    let (list, needle) = match values.as_slice() {
        [Value::List(list), needle] => (list, needle),
        _ => return Err(error(function, "expected list.indexOf(value)")),
    };
    let found = if last {
        list.iter().rposition(|x| x == needle)
    } else {
        list.iter().position(|x| x == needle)
    };
    let index = found.and_then(|i| i64::try_from(i).ok()).unwrap_or(-1);
    Value::Int(index).into_resolve_result()
}

fn list_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    list_position(args, false)
}

fn list_last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    list_position(args, true)
}
