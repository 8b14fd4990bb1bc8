//! `sprintf` as OPA implements it: Go's `fmt.Sprintf` over arguments converted the way OPA's
//! builtin converts them (integers → int, big integers → *big.Int, other numbers → float64,
//! strings → string, every other value → its Rego text as a string).
//!
//! Go's fmt never fails: a missing argument prints `%!v(MISSING)`, an extra one
//! `%!(EXTRA string=x)`, a wrong verb `%!d(string=x)`. Templates rely on that (a violation's
//! message must still come out), where regorus's own sprintf returns undefined or an error.

use std::fmt::Write;

use regorus::Value;

/// A Go value as OPA hands it to `fmt.Sprintf`.
enum Arg {
    Int(i128),
    Float(f64),
    Str(String),
}

impl Arg {
    fn from_value(v: &Value) -> Arg {
        match v {
            // OPA passes numbers that fit an int64 as int and everything else as float64 (gator
            // prints 12345678901234567890 as 1.2345678901234567e+19).
            Value::Number(n) => match n.as_i64().filter(|_| n.is_integer()) {
                Some(i) => Arg::Int(i128::from(i)),
                None => Arg::Float(
                    n.as_f64()
                        .or_else(|| n.format_decimal().parse().ok())
                        .unwrap_or(f64::NAN),
                ),
            },
            Value::String(s) => Arg::Str(s.to_string()),
            other => Arg::Str(rego_text(other)),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Arg::Int(_) => "int",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
        }
    }

    /// `%v` without flags, used in `%!verb(type=value)` notes.
    fn plain(&self) -> String {
        match self {
            Arg::Int(i) => i.to_string(),
            Arg::Float(f) => format_g(*f, None),
            Arg::Str(s) => s.clone(),
        }
    }
}

/// A Rego value printed as OPA's `ast.Term.String()` prints it.
pub fn rego_text(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if n.is_integer() {
                n.format_decimal()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                format!("{f}")
            }
        }
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(rego_text).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Set(items) => {
            if items.is_empty() {
                "set()".to_string()
            } else {
                let parts: Vec<String> = items.iter().map(rego_text).collect();
                format!("{{{}}}", parts.join(", "))
            }
        }
        Value::Object(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}: {}", rego_text(k), rego_text(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Undefined => "undefined".to_string(),
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Default)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Formats like Go's `fmt.Sprintf(format, args...)` after OPA's argument conversion.
pub fn go_sprintf(format: &str, args: &[Value]) -> String {
    let args: Vec<Arg> = args.iter().map(Arg::from_value).collect();
    let mut out = String::with_capacity(format.len() + 16);
    let mut next = 0usize;
    let mut reordered = false;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '+' => spec.plus = true,
                '-' => spec.minus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let mut bad_index = false;
        let mut explicit = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                            next: &mut usize| {
            if chars.peek() != Some(&'[') {
                return;
            }
            chars.next();
            let n = read_number(chars);
            if chars.next() != Some(']') {
                bad_index = true;
                return;
            }
            reordered = true;
            match n {
                Some(n) if n >= 1 && n <= args.len() => *next = n - 1,
                _ => bad_index = true,
            }
        };
        explicit(&mut chars, &mut next);
        spec.width = read_number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(read_number(&mut chars).unwrap_or(0));
        }
        explicit(&mut chars, &mut next);
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if bad_index {
            let _ = write!(out, "%!{verb}(BADINDEX)");
            continue;
        }
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let body = match format_arg(arg, verb, &spec) {
            Some(s) => s,
            None => {
                let _ = write!(out, "%!{verb}({}={})", arg.type_name(), arg.plain());
                continue;
            }
        };
        out.push_str(&pad(
            body,
            &spec,
            matches!(arg, Arg::Int(_) | Arg::Float(_)),
        ));
    }
    if !reordered && next < args.len() {
        out.push_str("%!(EXTRA ");
        let extras: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.plain()))
            .collect();
        out.push_str(&extras.join(", "));
        out.push(')');
    }
    out
}

const MAX_WIDTH: usize = 1_000_000;

fn read_number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        // Go's fmt refuses widths and precisions above 1e6; capping here keeps a typo in a
        // template's format string from allocating gigabytes (or aborting) in the webhook.
        n = Some(
            n.unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(d as usize)
                .min(MAX_WIDTH),
        );
        chars.next();
    }
    n
}

fn pad(body: String, spec: &Spec, numeric: bool) -> String {
    let Some(width) = spec.width else {
        return body;
    };
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if spec.minus {
        format!("{body}{}", " ".repeat(fill))
    } else if spec.zero && numeric {
        let (sign, digits) = match body.strip_prefix(['-', '+']) {
            Some(rest) => (&body[..1], rest),
            None => ("", body.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}

fn sign(negative: bool, spec: &Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_arg(arg: &Arg, verb: char, spec: &Spec) -> Option<String> {
    match arg {
        Arg::Str(s) => match verb {
            'v' | 's' => Some(truncate(s, spec.precision)),
            'q' => Some(go_quote(&truncate(s, spec.precision))),
            'x' => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
            'X' => Some(s.bytes().map(|b| format!("{b:02X}")).collect()),
            'T' => Some("string".to_string()),
            _ => None,
        },
        Arg::Int(i) => format_int(*i, verb, spec),
        Arg::Float(f) => format_float(*f, verb, spec),
    }
}

fn truncate(s: &str, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn format_int(i: i128, verb: char, spec: &Spec) -> Option<String> {
    let neg = i < 0;
    let mag = i.unsigned_abs();
    let digits = match verb {
        'v' | 'd' => mag.to_string(),
        'b' => format!("{mag:b}"),
        'o' => format!("{}{mag:o}", if spec.sharp { "0" } else { "" }),
        'O' => format!("0o{mag:o}"),
        'x' => format!("{}{mag:x}", if spec.sharp { "0x" } else { "" }),
        'X' => format!("{}{mag:X}", if spec.sharp { "0X" } else { "" }),
        'c' => return char::from_u32(u32::try_from(i).ok()?).map(String::from),
        'q' => return char::from_u32(u32::try_from(i).ok()?).map(|c| format!("'{c}'")),
        'U' => return Some(format!("U+{mag:04X}")),
        'T' => return Some("int".to_string()),
        _ => return None,
    };
    let digits = match spec.precision {
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits,
    };
    Some(format!("{}{digits}", sign(neg, spec)))
}

/// Rust's float formatter panics on very large precisions; past ~770 digits an f64 has only
/// zeros left to print.
const MAX_FLOAT_PRECISION: usize = 1000;

fn format_float(f: f64, verb: char, spec: &Spec) -> Option<String> {
    let precision = spec.precision.map(|p| p.min(MAX_FLOAT_PRECISION));
    if f.is_nan() {
        return Some("NaN".to_string());
    }
    if f.is_infinite() {
        return Some(format!("{}Inf", if f < 0.0 { "-" } else { "+" }));
    }
    let neg = f.is_sign_negative() && f != 0.0;
    let a = f.abs();
    let body = match verb {
        'v' | 'g' => format_g(a, precision),
        'G' => format_g(a, precision).to_uppercase(),
        'e' => format_e(a, precision.unwrap_or(6)),
        'E' => format_e(a, precision.unwrap_or(6)).to_uppercase(),
        'f' | 'F' => format!("{a:.*}", precision.unwrap_or(6)),
        'T' => return Some("float64".to_string()),
        _ => return None,
    };
    Some(format!("{}{body}", sign(neg, spec)))
}

/// Go's `%e`: mantissa with `precision` decimals and a signed exponent of at least two digits.
fn format_e(a: f64, precision: usize) -> String {
    let s = format!("{a:.precision$e}");
    fix_exponent(&s)
}

fn fix_exponent(s: &str) -> String {
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let digits = if digits.len() < 2 {
                format!("0{digits}")
            } else {
                digits.to_string()
            };
            format!("{mantissa}e{sign}{digits}")
        }
        None => s.to_string(),
    }
}

/// Go's `%g` (and `%v` for floats): shortest representation, scientific when the exponent is
/// below -4 or at least the precision (6 for the shortest form).
fn format_g(a: f64, precision: Option<usize>) -> String {
    if a == 0.0 {
        return "0".to_string();
    }
    let sci = match precision {
        Some(p) => format!("{:.*e}", p.max(1) - 1, a),
        None => format!("{a:e}"),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let eprec = match precision {
        Some(p) => {
            let p = p.max(1) as i32;
            if p > digits.len() as i32 && digits.len() as i32 > exp {
                digits.len() as i32
            } else {
                p
            }
        }
        None => 6,
    };
    if exp < -4 || exp >= eprec {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        fix_exponent(&format!("{m}e{exp}"))
    } else if exp >= 0 {
        let point = exp as usize + 1;
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::from(v)
    }

    #[test]
    fn missing_and_extra_arguments_render_like_go() {
        assert_eq!(go_sprintf("a %v b %v", &[s("x")]), "a x b %!v(MISSING)");
        assert_eq!(
            go_sprintf("a", &[s("x"), Value::from(3)]),
            "a%!(EXTRA string=x, int=3)"
        );
        assert_eq!(go_sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(go_sprintf("100%%", &[]), "100%");
        assert_eq!(go_sprintf("%", &[]), "%!(NOVERB)");
    }

    #[test]
    fn huge_widths_and_precisions_are_bounded() {
        assert!(go_sprintf("%99999999999999999999d", &[Value::from(5)]).len() <= MAX_WIDTH);
        assert!(go_sprintf("%.7777777777777777f", &[Value::from(1.5)]).len() <= MAX_WIDTH + 8);
        assert!(go_sprintf("%.99999999e", &[Value::from(1.5)]).len() <= MAX_WIDTH + 8);
    }

    #[test]
    fn explicit_argument_indexes() {
        assert_eq!(
            go_sprintf("%[2]v %[1]v", &[s("a"), Value::from(42)]),
            "42 a"
        );
        assert_eq!(go_sprintf("%[3]v", &[s("a")]), "%!v(BADINDEX)");
    }

    #[test]
    fn rego_values_print_as_opa_terms() {
        let arr = Value::from(vec![s("wasmedge"), s("runc")]);
        assert_eq!(
            go_sprintf("%v", std::slice::from_ref(&arr)),
            "[\"wasmedge\", \"runc\"]"
        );
        assert_eq!(go_sprintf("%q", &[s("a\"b")]), "\"a\\\"b\"");
        assert_eq!(go_sprintf("%v", &[Value::Bool(true)]), "true");
        assert_eq!(go_sprintf("%t", &[Value::Bool(true)]), "%!t(string=true)");
        assert_eq!(go_sprintf("%v", &[Value::Null]), "null");
    }

    #[test]
    fn numbers_format_like_go() {
        assert_eq!(
            go_sprintf(
                "%v %d %05d %x",
                &[
                    Value::from(5),
                    Value::from(-5),
                    Value::from(42),
                    Value::from(255)
                ]
            ),
            "5 -5 00042 ff"
        );
        assert_eq!(go_sprintf("%v", &[Value::from(0.5)]), "0.5");
        assert_eq!(go_sprintf("%v", &[Value::from(1500000.5)]), "1.5000005e+06");
        assert_eq!(go_sprintf("%v", &[Value::from(0.00001)]), "1e-05");
        assert_eq!(go_sprintf("%.2f", &[Value::from(1.005)]), "1.00");
        assert_eq!(go_sprintf("%d", &[Value::from(1.5)]), "%!d(float64=1.5)");
        assert_eq!(go_sprintf("%s", &[Value::from(3)]), "%!s(int=3)");
        assert_eq!(go_sprintf("%e", &[Value::from(1234.5)]), "1.234500e+03");
        assert_eq!(go_sprintf("%-4s|%4s", &[s("a"), s("b")]), "a   |   b");
    }
}
