#![allow(clippy::all, missing_docs)]
use regorus::*;
fn main() {
    let src = std::fs::read_to_string("/tmp/norm.rego").unwrap();
    let input = r#"{"review":{"object":{"metadata":{"labels":{"b":"y"}}}}}"#;
    for variant in 0..3 {
        let mut e = Engine::new();
        e.set_rego_v0(true);
        if variant >= 1 { e.set_strict_builtin_errors(false); }
        if variant >= 2 { e.add_extension("sprintf".into(), 2, Box::new(|_a: Vec<Value>| Ok(Value::from("x")))).unwrap(); }
        e.add_policy("t.rego".into(), src.clone()).unwrap();
        e.set_input(Value::from_json_str(input).unwrap());
        println!("variant={variant}: {}", e.eval_rule("data.v0chainedset.violation".into()).unwrap().to_json_str().unwrap().replace('\n', ""));
    }
}
