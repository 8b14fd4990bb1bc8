//! The pack's Rego against Kubernetes' own parsers. Generated quantities and image references
//! (valid, invalid and adversarial) go to the Go oracle (`tests/oracle`: `resource.ParseQuantity`
//! and `reference.ParseNormalizedNamed` at pinned versions) and through the pack's templates, with
//! parameters that make each verdict observable:
//!
//! - quantity `q` as a container's `limits.cpu` and `limits.memory` under `K8sEdgeResources`:
//!   invalid for Kubernetes ⇔ the "is not a valid quantity" violation; when valid, with
//!   `maxContainerLimits` at Kubernetes' `MilliValue()`m / `Value()` no "exceeds the maximum"
//!   violation, and one below each, both violate (so the pack's value is Kubernetes' value);
//! - image `i` under `K8sAllowedRegistries` allowing exactly the oracle's host (and repository
//!   path) ⇔ no violation, and allowing only `registry.example.com` ⇔ a violation unless that is
//!   the host; under `K8sImageTagPolicy`, the oracle's tag (or `latest`) disallowed ⇔ a violation
//!   unless there is a digest, and `requireDigest` ⇔ a violation unless there is a digest.
//!
//! Invalid references are not a disagreement (no runtime can pull them), but those the pack
//! would admit are listed. Every disagreement is listed with its exact input; the test fails if
//! there is any.
//!
//! Needs `tollgate-oracle` (`bash tests/oracle/install.sh`), found through `$TOLLGATE_ORACLE`,
//! then `PATH`, then the tools cache. Without it the test skips with a message, unless
//! `TOLLGATE_REQUIRE_ORACLES` is set. `TOLLGATE_ORACLE_CASES` (default 1000) sets how many
//! cases each generator makes, on top of the fixed adversarial ones; the generators are
//! seeded, so a run is reproducible (`TOLLGATE_ORACLE_SEED` picks another seed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use regorus::Value as RegoValue;
use serde_json::{Value, json};
use tollgate_engine::compile::CompiledTemplate;
use tollgate_engine::{PolicySet, Sources};

// === the oracle ===

struct Oracle {
    path: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn find() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("TOLLGATE_ORACLE") {
            return Some(PathBuf::from(p));
        }
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("tollgate-oracle"))
                .find(|p| p.is_file())
        });
        on_path.or_else(|| {
            let cache = std::env::var_os("TOLLGATE_TOOLS")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME").map(|c| Path::new(&c).join("tollgate-tools"))
                })
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/tollgate-tools"))
                })?;
            Some(cache.join("bin/tollgate-oracle")).filter(|p| p.is_file())
        })
    }

    /// The oracle, or `None` (after saying why) when the test should skip.
    fn start() -> Option<Oracle> {
        let Some(path) = Oracle::find() else {
            if std::env::var_os("TOLLGATE_REQUIRE_ORACLES").is_some() {
                panic!(
                    "tollgate-oracle not found and TOLLGATE_REQUIRE_ORACLES is set: run `bash tests/oracle/install.sh`"
                );
            }
            eprintln!(
                "skipping: tollgate-oracle not found (build it with `bash tests/oracle/install.sh`)"
            );
            return None;
        };
        Some(Oracle::spawn(path))
    }

    fn spawn(path: PathBuf) -> Oracle {
        let mut child = Command::new(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Oracle {
            path,
            child,
            stdin,
            stdout,
        }
    }

    /// The oracle's answer. It exits after answering a quantity whose parse never returns, so
    /// a closed pipe means: start a fresh one and ask again.
    fn ask(&mut self, kind: &str, value: &str) -> Value {
        let line = json!({"kind": kind, "value": value}).to_string();
        for _ in 0..2 {
            let mut answer = String::new();
            let asked = writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush());
            if asked.is_ok() && self.stdout.read_line(&mut answer).is_ok_and(|n| n > 0) {
                return serde_json::from_str(&answer)
                    .unwrap_or_else(|e| panic!("oracle answer {answer:?}: {e}"));
            }
            *self = Oracle::spawn(self.path.clone());
        }
        panic!("the oracle gave no answer for {line}");
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === the pack ===

struct Pack {
    resources: Arc<CompiledTemplate>,
    registries: Arc<CompiledTemplate>,
    tags: Arc<CompiledTemplate>,
}

impl Pack {
    fn load() -> Pack {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../constraints");
        let files: Vec<PathBuf> = [
            "k8sedgeresources",
            "k8sallowedregistries",
            "k8simagetagpolicy",
        ]
        .iter()
        .map(|p| root.join(p).join("template.yaml"))
        .collect();
        let set = PolicySet::build(&Sources::from_paths(&files).unwrap()).unwrap();
        let get = |kind: &str| Arc::clone(set.template(kind).unwrap());
        Pack {
            resources: get("K8sEdgeResources"),
            registries: get("K8sAllowedRegistries"),
            tags: get("K8sImageTagPolicy"),
        }
    }
}

/// The `violation` results of `template` for a Pod with `containers`, as JSON.
fn violations(
    template: &CompiledTemplate,
    containers: Value,
    parameters: Value,
) -> Result<Vec<Value>, String> {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "oracle", "namespace": "default"},
        "spec": {"containers": containers},
    });
    let input = json!({
        "review": {
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "name": "oracle",
            "namespace": "default",
            "object": pod,
        },
        "parameters": parameters,
    });
    let set = template.evaluate(RegoValue::from(input), None).result?;
    match serde_json::to_value(&set).map_err(|e| e.to_string())? {
        Value::Array(v) => Ok(v),
        Value::Null => Ok(Vec::new()),
        other => Err(format!("violation is not a set: {other}")),
    }
}

fn detail<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer(&format!("/details/{key}"))
        .and_then(Value::as_str)
}

fn msg(v: &Value) -> &str {
    v.get("msg").and_then(Value::as_str).unwrap_or("")
}

// === quantities ===

/// How the pack's answer relates to the oracle's.
enum Verdict {
    /// Same verdict.
    Agree,
    /// Different, in one of the documented ways the pack may differ (the class names which).
    Deviation(&'static str, String),
    /// Different: a bug in the pack (or in this test).
    Disagree(String),
}

/// The tracker spec's grammar (tracker-policies.md §3): an optional sign, a decimal number
/// (digits, digits.digits or .digits) and one suffix. Kubernetes' scanner is laxer: it also takes
/// "1.", "." and a missing number ("M", "-", "e3" are zero), which the spec rules out.
fn spec_grammar(q: &str) -> bool {
    static GRAMMAR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^[+-]?([0-9]+|[0-9]+\.[0-9]+|\.[0-9]+)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$",
        )
        .unwrap()
    });
    GRAMMAR.is_match(q)
}

/// Whether `q` has an exponent suffix outside int32, which Kubernetes truncates to int32
/// (`int32(parsed)` in `suffixHandler.interpret`): "1e4294967296" is 1 there.
fn exponent_beyond_int32(q: &str) -> bool {
    let Some(i) = q.find(['e', 'E']) else {
        return false;
    };
    let digits = q[i + 1..].trim_start_matches(['+', '-']);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits
            .trim_start_matches('0')
            .parse::<i64>()
            .map_or(true, |e| e > i64::from(i32::MAX))
}

/// Whether Kubernetes accepts quantity `q`, and how the pack's verdict relates to it.
fn check_quantity(pack: &Pack, oracle: &mut Oracle, q: &str) -> (bool, Verdict) {
    let k8s = oracle.ask("quantity", q);
    let valid = k8s["valid"].as_bool().unwrap();
    (valid, quantity_verdict(pack, &k8s, q))
}

fn quantity_verdict(pack: &Pack, k8s: &Value, q: &str) -> Verdict {
    let valid = k8s["valid"].as_bool().unwrap();
    let negative = k8s["exact"].as_str().is_some_and(|e| e.starts_with('-'));
    // Values are compared only where Kubernetes' own answer is meaningful: in int64, not
    // negative (MilliValue rounds a negative up on one internal path and away from zero on the
    // other; requests and limits must not be negative anyway), and not truncated.
    let compare_values =
        valid && k8s["fits"].as_bool().unwrap_or(false) && !negative && !exponent_beyond_int32(q);
    let said = || {
        if valid {
            format!(
                "Kubernetes: valid, MilliValue {}, Value {}, canonical {}",
                k8s["milli"], k8s["value"], k8s["canonical"]
            )
        } else {
            format!("Kubernetes: invalid ({})", k8s["error"])
        }
    };
    let containers = |q: &str| json!([{"name": "c", "image": "x", "resources": {"limits": {"cpu": q, "memory": q}}}]);
    let max = |milli: i128, value: i128| json!({"maxContainerLimits": {"cpu": format!("{milli}m"), "memory": format!("{value}")}});
    let (milli, value): (i128, i128) = if compare_values {
        (
            k8s["milli"].as_str().unwrap().parse().unwrap(),
            k8s["value"].as_str().unwrap().parse().unwrap(),
        )
    } else {
        (0, 0)
    };
    let params = if compare_values {
        max(milli, value)
    } else {
        json!({})
    };
    let vs = match violations(&pack.resources, containers(q), params) {
        Ok(v) => v,
        Err(e) => {
            return Verdict::Disagree(format!("{q:?}: pack evaluation error: {e}; {}", said()));
        }
    };
    let invalid_in_pack = |field: &str| {
        vs.iter().any(|v| {
            detail(v, "field") == Some(field) && msg(v).contains("is not a valid quantity")
        })
    };
    let (cpu_invalid, memory_invalid) = (
        invalid_in_pack("limits.cpu"),
        invalid_in_pack("limits.memory"),
    );
    if cpu_invalid == valid || memory_invalid == valid {
        let text = format!(
            "{q:?}: pack: {} (as cpu), {} (as memory); {}",
            if cpu_invalid { "invalid" } else { "valid" },
            if memory_invalid { "invalid" } else { "valid" },
            said()
        );
        if valid && cpu_invalid && memory_invalid && !spec_grammar(q) {
            return Verdict::Deviation("Kubernetes accepts it, the spec's grammar does not", text);
        }
        return Verdict::Disagree(text);
    }
    if !compare_values {
        return Verdict::Agree;
    }
    let exceeds = |vs: &[Value], res: &str| {
        vs.iter()
            .any(|v| detail(v, "resource") == Some(res) && msg(v).contains("exceeds the maximum"))
    };
    let mut wrong = Vec::new();
    if exceeds(&vs, "cpu") {
        wrong.push(format!("cpu above {milli}m"));
    }
    if exceeds(&vs, "memory") {
        wrong.push(format!("memory above {value}"));
    }
    match violations(&pack.resources, containers(q), max(milli - 1, value - 1)) {
        Ok(below) => {
            if !exceeds(&below, "cpu") {
                wrong.push(format!("cpu not above {}m", milli - 1));
            }
            if !exceeds(&below, "memory") {
                wrong.push(format!("memory not above {}", value - 1));
            }
        }
        Err(e) => wrong.push(format!("evaluation error: {e}")),
    }
    if wrong.is_empty() {
        Verdict::Agree
    } else {
        Verdict::Disagree(format!(
            "{q:?}: pack's value: {}; {}",
            wrong.join(", "),
            said()
        ))
    }
}

const SUFFIXES: &[&str] = &[
    "", "", "", "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi",
    "Ei", "K", "ki", "gi", "mi", "KI", "kI", "i", "e", "E", "Ki1", "iB", "KiB", "mm", "µ", " ",
    "x", "z", "Gi ",
];

const EXPONENT_DIGITS: &[&str] = &[
    "2147483647",
    "2147483648",
    "4294967296",
    "4294967297",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "99999999999999999999",
];

/// Hand-picked corners, always checked.
const ADVERSARIAL_QUANTITIES: &[&str] = &[
    "0",
    "1",
    "-1",
    "+1",
    "1.",
    ".5",
    ".",
    "",
    "-",
    "+",
    "+-1",
    "--1",
    "1.2.3",
    "0.5",
    "500m",
    "1Gi",
    "1G",
    "129e6",
    "129E6",
    "1e3",
    "1E-3",
    "1e+3",
    "1e",
    "1e+",
    "1e-",
    "1ee3",
    "1e3m",
    "1Ki",
    "1ki",
    "1K",
    "1k",
    "1gi",
    "1.5Gi",
    "0.1Ki",
    "1.G",
    ".Gi",
    "1.e3",
    "12xyz",
    " 1",
    "1 ",
    "1\n",
    "0x10",
    "1_000",
    "1,5",
    "١",
    "1e2147483647",
    "1e2147483648",
    "1e4294967296",
    "1e-4294967296",
    "1e9223372036854775807",
    "1e9223372036854775808",
    "1e-9223372036854775809",
    "1e1000000",
    "1e999999",
    "1e-999999",
    "8Ei",
    "9Ei",
    "16Ei",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999",
    "0.000000001",
    "0.0000000001",
    "1n",
    "1u",
    "0.5n",
    "-0.5m",
    "-0.0005",
    "1m",
    "1.5m",
    "0.0015",
    "1000000000000000000000m",
    "0.99999999999999999999",
    "100000000000000000001",
    "00000000000000000000001",
    "1.00000000000000000000001",
    "7E18",
    "9E18",
    "1e-3",
    "1e-9",
    "1e-10",
    "5e-324",
];

fn quantity() -> BoxedStrategy<String> {
    let sign = prop::sample::select(&["", "", "", "", "+", "-", "--", "+-"][..]);
    let int = prop_oneof![
        Just(String::new()),
        Just("0".to_string()),
        "[0-9]{1,3}",
        "[1-9][0-9]{3,22}",
        "0{1,3}[0-9]{1,4}",
    ];
    let frac = prop_oneof![
        3 => Just(String::new()),
        1 => Just(".".to_string()),
        2 => "\\.[0-9]{1,3}",
        1 => "\\.[0-9]{4,24}",
        1 => "\\.0{1,4}",
    ];
    let exponent = (
        prop::sample::select(&["e", "E"][..]),
        prop::sample::select(&["", "", "+", "-"][..]),
        prop_oneof![
            4 => "[0-9]{1,2}",
            1 => "[0-9]{3,8}",
            1 => "[0-9]{9,22}",
            1 => prop::sample::select(EXPONENT_DIGITS).prop_map(String::from),
        ],
    )
        .prop_map(|(e, s, d)| format!("{e}{s}{d}"));
    let suffix = prop_oneof![
        4 => prop::sample::select(SUFFIXES).prop_map(String::from),
        2 => exponent,
    ];
    prop_oneof![
        10 => (sign, int, frac, suffix).prop_map(|(s, i, f, x)| format!("{s}{i}{f}{x}")),
        1 => "[-+0-9.eEinumkKMGTPxi ]{0,12}",
    ]
    .boxed()
}

// === image references ===

/// Whether the distribution grammar accepts `image`, and how the pack's verdict relates to it.
fn check_image(pack: &Pack, oracle: &mut Oracle, image: &str) -> (bool, Verdict) {
    let parsed = oracle.ask("image", image);
    let valid = parsed["valid"] == json!(true);
    (valid, image_verdict(pack, &parsed, image))
}

fn image_verdict(pack: &Pack, parsed: &Value, image: &str) -> Verdict {
    let containers = json!([{"name": "c", "image": image}]);
    let run = |t: &CompiledTemplate, params: Value| violations(t, containers.clone(), params);
    let tracker = json!({"registries": ["registry.example.com"]});
    if parsed["valid"] != json!(true) {
        return match run(&pack.registries, tracker) {
            Ok(vs) if vs.is_empty() => Verdict::Deviation(
                "an invalid reference (no runtime pulls it) admitted from registry.example.com",
                format!("{image:?}: distribution: {}", parsed["error"]),
            ),
            Ok(_) => Verdict::Agree,
            Err(e) => Verdict::Disagree(format!("{image:?}: pack evaluation error: {e}")),
        };
    }
    let domain = parsed["domain"].as_str().unwrap_or("");
    let path = parsed["path"].as_str().unwrap_or("");
    let tag = parsed["tag"].as_str().unwrap_or("");
    let digest = parsed["digest"].as_str().unwrap_or("");
    let said =
        format!("distribution: domain {domain:?}, path {path:?}, tag {tag:?}, digest {digest:?}");
    let mut wrong = Vec::new();
    let mut expect =
        |what: &str, t: &CompiledTemplate, params: Value, violates: bool| match run(t, params) {
            Ok(vs) if vs.is_empty() == violates => {
                let pack_said: Vec<&str> = vs.iter().map(msg).collect();
                wrong.push(format!(
                    "{what}: expected {}, pack said {pack_said:?}",
                    if violates { "a violation" } else { "none" }
                ));
            }
            Ok(_) => {}
            Err(e) => wrong.push(format!("{what}: evaluation error: {e}")),
        };
    // splitDockerDomain takes a first component with "." or ":" for a host, but the full
    // grammar then finds it is not a valid host ("my_host.com/x") and keeps it in the path,
    // with no domain. A runtime given such a name contacts that "host" or fails; the pack calls
    // it the registry, which is never an allowed one unless listed. Only the tracker check and
    // the tags apply.
    let no_domain = domain.is_empty();
    if !no_domain {
        expect(
            &format!("registries [{domain:?}]"),
            &pack.registries,
            json!({"registries": [domain]}),
            false,
        );
    }
    expect(
        "registries [\"registry.example.com\"]",
        &pack.registries,
        tracker,
        !domain.eq_ignore_ascii_case("registry.example.com"),
    );
    if !no_domain {
        expect(
            &format!("registries [{domain:?}], repositories [{path:?}]"),
            &pack.registries,
            json!({"registries": [domain], "repositories": [path]}),
            false,
        );
        expect(
            &format!("registries [{domain:?}], repositories [\"{path}x\"]"),
            &pack.registries,
            json!({"registries": [domain], "repositories": [format!("{path}x")]}),
            true,
        );
    }
    let effective_tag = if tag.is_empty() { "latest" } else { tag };
    expect(
        &format!("disallowedTags [{effective_tag:?}]"),
        &pack.tags,
        json!({"disallowedTags": [effective_tag]}),
        digest.is_empty(),
    );
    expect(
        "disallowedTags [\"latest\"]",
        &pack.tags,
        json!({"disallowedTags": ["latest"]}),
        digest.is_empty() && effective_tag == "latest",
    );
    expect(
        "requireDigest",
        &pack.tags,
        json!({"disallowedTags": [], "requireDigest": true}),
        digest.is_empty(),
    );
    if !wrong.is_empty() {
        Verdict::Disagree(format!("{image:?}: {}; {said}", wrong.join("; ")))
    } else if no_domain {
        Verdict::Deviation(
            "distribution finds no host in a first component that looks like one",
            format!("{image:?}: {said}"),
        )
    } else {
        Verdict::Agree
    }
}

const HOSTS: &[&str] = &[
    "registry.example.com",
    "registry.example.com:5000",
    "Registry.Example.com",
    "REGISTRY.EXAMPLE.COM",
    "registry.example.com.evil.io",
    "registry.example.comx",
    "evil.io",
    "localhost",
    "localhost:5000",
    "LOCALHOST",
    "Localhost",
    "index.docker.io",
    "docker.io",
    "Docker.io",
    "[::1]",
    "[::1]:5000",
    "[2001:db8::1]:443",
    "[fe80::1%25eth0]",
    "::1",
    "10.0.0.1:5000",
    "127.0.0.1",
    "user@registry.example.com",
    "user:pass@registry.example.com",
    "registry.example.com:",
    ":5000",
    "registry.example.com:port",
    "registry.example.com:65536",
    "registry-1.example.com",
    "xn--bcher-kva.example",
    "my_host.com",
    "-bad.com",
    "bad-.com",
    "a",
    "UPPER",
    "Upper",
    "registry.example.com.",
    ".registry.example.com",
];

const COMPONENTS: &[&str] = &[
    "x",
    "nginx",
    "tracker",
    "team",
    "app",
    "library",
    "registry.example.com",
    "a__b",
    "a___b",
    "a..b",
    "a.b",
    "a-b",
    "a--b",
    "a_b",
    "_x",
    "x_",
    "-x",
    "x-",
    "Team",
    "UPPER",
    "a:b",
    "a@b",
    "sha256",
    "",
];

const TAGS: &[&str] = &[
    ":1.27",
    ":latest",
    ":LATEST",
    ":Latest",
    ":v1_2-3.4",
    ":",
    ":-x",
    ":.x",
    ":_x",
    ":x:y",
    ":1.27@",
    ":a/b",
];

fn image() -> BoxedStrategy<String> {
    let host = prop_oneof![
        4 => Just(None),
        4 => prop::sample::select(HOSTS).prop_map(|h| Some(h.to_string())),
        1 => "[a-z0-9]{1,6}(\\.[a-z0-9]{1,6}){0,2}(:[0-9]{1,5})?".prop_map(Some),
        1 => "[a-zA-Z0-9._:-]{1,10}".prop_map(Some),
    ];
    let component = prop_oneof![
        4 => prop::sample::select(COMPONENTS).prop_map(String::from),
        3 => "[a-z0-9]{1,6}",
        1 => "[a-z0-9._-]{1,8}",
        1 => "[a-zA-Z0-9]{1,5}",
    ];
    let path = prop::collection::vec(component, 1..4).prop_map(|c| c.join("/"));
    let tag = prop_oneof![
        3 => Just(String::new()),
        2 => prop::sample::select(TAGS).prop_map(String::from),
        1 => ":[A-Za-z0-9_.-]{1,10}",
        1 => ":[a-z]{129}",
    ];
    let digest = prop_oneof![
        4 => Just(String::new()),
        2 => "@sha256:[0-9a-f]{64}",
        1 => "@sha256:[0-9a-f]{63}",
        1 => "@sha256:[0-9a-f]{65}",
        1 => "@sha256:[0-9A-F]{64}",
        1 => "@sha512:[0-9a-f]{128}",
        1 => "@sha384:[0-9a-f]{96}",
        1 => "@md5:[0-9a-f]{32}",
        1 => "@sha256\\+b64:[0-9a-f]{64}",
        1 => prop::sample::select(&["@", "@sha256:", "@sha256", "@:abc", "@@sha256:0"][..]).prop_map(String::from),
    ];
    prop_oneof![
        8 => (host, path, tag, digest).prop_map(|(h, p, t, d)| match h {
            Some(h) => format!("{h}/{p}{t}{d}"),
            None => format!("{p}{t}{d}"),
        }),
        1 => "[a-zA-Z0-9.:/@_\\[\\]-]{0,30}",
    ]
    .boxed()
}

fn adversarial_images() -> Vec<String> {
    let sha = "0123456789abcdef".repeat(4);
    let mut out: Vec<String> = [
        "nginx",
        "nginx:1.27",
        "docker.io/library/nginx:1.27",
        "index.docker.io/nginx",
        "registry.example.com/tracker:1",
        "registry.example.com.evil.io/tracker:1",
        "registry.example.com.evil.io/x",
        "evil.io/registry.example.com/x",
        "registry.example.comx/y",
        "registry.example.com:5000/x",
        "Registry.Example.com/x",
        "registry.example.com/X",
        "localhost/x",
        "localhost:5000/x",
        "LOCALHOST/x",
        "localhost",
        "user@registry.example.com/x",
        "registry.example.com@evil.io/x",
        "evil.io@registry.example.com/x",
        "[::1]/x",
        "[::1]:5000/x",
        "[2001:db8::1]:5000/team/app:v1",
        "::1/x",
        "10.0.0.1:5000/x",
        "registry.example.com/x:latest",
        "registry.example.com/x:LATEST",
        "busybox:1.36",
        "Docker.io/x",
        "DOCKER.IO/library/x:1",
        "Index.Docker.io/x",
        "docker.io/x",
        "busybox",
        "Busybox",
        "a/b/c/d:e",
        "",
        "/x",
        "x/",
        "registry.example.com//x",
        " registry.example.com/x",
        "registry.example.com/x ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    out.extend([
        format!("registry.example.com@sha256:{sha}"),
        format!("registry.example.com/x@sha256:{sha}"),
        format!("registry.example.com/x:latest@sha256:{sha}"),
        format!("nginx@sha256:{sha}"),
        format!("nginx:latest@sha256:{}", &sha[..40]),
        format!("nginx:latest@md5:{}", &sha[..32]),
        format!("evil.io/x@sha256:{sha}"),
    ]);
    out
}

// === the runs ===

fn cases() -> u32 {
    std::env::var("TOLLGATE_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// `cases()` distinct values from `strategy`, reproducibly.
fn generate(strategy: &BoxedStrategy<String>, salt: u8) -> Vec<String> {
    let mut seed = [salt; 32];
    if let Some(s) = std::env::var("TOLLGATE_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        seed[..8].copy_from_slice(&s.to_le_bytes());
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let target = cases() as usize;
    for _ in 0..target * 4 {
        if out.len() >= target {
            break;
        }
        let value = strategy.new_tree(&mut runner).unwrap().current();
        if seen.insert(value.clone()) {
            out.push(value);
        }
    }
    out
}

/// Prints the results and fails on any disagreement.
fn conclude(what: &str, checked: usize, valid: usize, verdicts: Vec<Verdict>) {
    let mut deviations: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    let mut disagreements = Vec::new();
    for v in verdicts {
        match v {
            Verdict::Agree => {}
            Verdict::Deviation(class, text) => deviations.entry(class).or_default().push(text),
            Verdict::Disagree(text) => disagreements.push(text),
        }
    }
    println!(
        "{what}: {checked} cases ({valid} valid for the oracle), {} disagreements",
        disagreements.len()
    );
    for (class, cases) in &deviations {
        println!("  allowed deviation, {class}: {} cases, e.g.", cases.len());
        for c in cases.iter().take(8) {
            println!("    {c}");
        }
    }
    for d in &disagreements {
        println!("  DISAGREE {d}");
    }
    assert!(
        disagreements.is_empty(),
        "{what}: the pack disagrees with the oracle on {} inputs (listed above)",
        disagreements.len()
    );
}

#[test]
fn quantities_agree_with_kubernetes() {
    let Some(mut oracle) = Oracle::start() else {
        return;
    };
    let pack = Pack::load();
    let mut inputs: Vec<String> = ADVERSARIAL_QUANTITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    inputs.extend(generate(&quantity(), 1));
    let mut seen = BTreeSet::new();
    inputs.retain(|q| seen.insert(q.clone()));
    let mut valid = 0;
    let verdicts = inputs
        .iter()
        .map(|q| {
            let (is_valid, verdict) = check_quantity(&pack, &mut oracle, q);
            valid += usize::from(is_valid);
            verdict
        })
        .collect();
    conclude("quantities", inputs.len(), valid, verdicts);
}

#[test]
fn image_references_agree_with_the_distribution_grammar() {
    let Some(mut oracle) = Oracle::start() else {
        return;
    };
    let pack = Pack::load();
    let mut inputs = adversarial_images();
    inputs.extend(generate(&image(), 2));
    let mut seen = BTreeSet::new();
    inputs.retain(|i| seen.insert(i.clone()));
    let mut valid = 0;
    let verdicts = inputs
        .iter()
        .map(|i| {
            let (is_valid, verdict) = check_image(&pack, &mut oracle, i);
            valid += usize::from(is_valid);
            verdict
        })
        .collect();
    conclude("image references", inputs.len(), valid, verdicts);
}
