//! A template's `violation` rule compiled to regorus's RVM bytecode: the default evaluator.
//!
//! The interpreter walks the AST and clones a prepared engine for every evaluation; the RVM runs
//! a flat instruction list on a reusable machine, several times faster on the pack
//! (`cargo bench -p tollgate-engine --bench decision`). regorus 0.14.1's RVM did not evaluate
//! Rego as OPA does (`x := input.missing` succeeded, conflicting outputs were no error); the
//! vendored copy fixes that (`vendor/regorus/TOLLGATE.md`), and
//! `engine/tests/rvm_conformance.rs` runs every suite of the corpus both ways and requires the
//! same violations.
//!
//! Templates the RVM cannot compile (`with`, OPA's deprecated v0 builtins, which tollgate adds
//! as extensions the RVM cannot call) stay on the interpreter, and so do `print()` output and
//! any evaluation error, whose wording users see: on an RVM error the template is evaluated
//! again on the interpreter. A timeout is final on both paths.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::unstable::{Expr, Ref, Span};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{CompiledPolicy, Engine, LimitError, Value};

use crate::rego;

/// Which evaluator runs templates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Evaluator {
    /// regorus's interpreter for every template.
    Interpreter,
    /// The RVM wherever a template compiles to it, the interpreter elsewhere.
    #[default]
    Rvm,
}

/// A compiled `violation` rule with a pool of machines to run it on.
pub struct FastPath {
    /// The interpreter's policy the program was compiled from; a precompiled program has none
    /// (regorus's machine keeps it but never reads it).
    policy: Option<CompiledPolicy>,
    program: Arc<Program>,
    rule: String,
    /// `{"inventory": {}}`, built once: an idle machine holds it, so an evaluation without
    /// inventory neither builds nor re-checks its data.
    empty_data: Value,
    /// The rules whose values depend on `input.parameters` alone
    /// ([`rego::parameter_only_rules`]), as indices into the program's rules.
    parameter_rules: Vec<usize>,
    /// `"parameters"`, the key the machines' known values are filed under.
    parameters_key: Value,
    /// Idle machines, each with the thread that ran it last, oldest first: an evaluation takes
    /// one of its own thread's, else any, else builds one (see `put_back`).
    pool: Mutex<Vec<(ThreadId, Machine)>>,
}

/// A machine, and the values of the parameter-only rules it computed, per parameters value.
struct Machine {
    vm: RegoVM,
    known: Vec<Known>,
}

/// Values of parameter-only rules, computed on `parameters`.
struct Known {
    parameters: Value,
    values: Vec<(usize, Value)>,
}

/// How many parameter values a machine keeps rule values for: one per constraint of the
/// template in the steady state; past this, the oldest is forgotten.
const KNOWN_LIMIT: usize = 64;

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// Why the fast path gave no answer.
#[derive(Debug)]
pub enum Fallback {
    /// The evaluation hit the budget: final, reported as the interpreter would.
    Budget(String),
    /// Anything else: evaluate on the interpreter instead.
    Interpreter,
}

/// How many idle machines a template keeps; more than the cores that evaluate is waste.
const POOL_LIMIT: usize = 16;

impl FastPath {
    /// Compiles `rule` of a prepared engine to bytecode, or `None` when the RVM compiler
    /// cannot take the template.
    pub fn compile(engine: &mut Engine, rule: &str, source: &str) -> Option<FastPath> {
        // print() output is gathered by the interpreter only.
        if source.contains("print(") {
            return None;
        }
        let policy = engine.compile_with_entrypoint(&rule.into()).ok()?;
        let program = Compiler::compile_from_policy(&policy, &[rule]).ok()?;
        // The compiler's own `Arc` is the only one: taken, not cloned, when it can be.
        let program = Arc::try_unwrap(program).unwrap_or_else(|shared| (*shared).clone());
        let parameter_rules = rego::parameter_only_rules(engine.get_modules());
        Self::ready(
            Some(policy),
            with_go_sprintf(program),
            rule,
            &parameter_rules,
        )
    }

    /// A fast path from a program compiled ahead of time ([`crate::precompiled`]), whose
    /// `sprintf` is already tollgate's, with the parameter-only rules found when it was
    /// compiled.
    pub fn precompiled(
        program: Program,
        rule: &str,
        parameter_rules: &[String],
    ) -> Option<FastPath> {
        Self::ready(None, program, rule, parameter_rules)
    }

    fn ready(
        policy: Option<CompiledPolicy>,
        program: Program,
        rule: &str,
        parameter_rules: &[String],
    ) -> Option<FastPath> {
        let mut empty_data = Value::new_object();
        if let Ok(map) = empty_data.as_object_mut() {
            map.insert(Value::from("inventory"), Value::new_object());
        }
        // Rules the compiler left out (never called from `violation`) have no index: nothing
        // to keep for them.
        let parameter_rules = program
            .rule_infos
            .iter()
            .enumerate()
            .filter(|(_, info)| {
                info.function_info.is_none() && parameter_rules.contains(&info.name)
            })
            .map(|(i, _)| i)
            .collect();
        let fast = FastPath {
            policy,
            program: Arc::new(program),
            rule: rule.to_string(),
            empty_data,
            parameter_rules,
            parameters_key: Value::from("parameters"),
            pool: Mutex::new(Vec::new()),
        };
        // A machine that cannot even take the empty data is no fast path.
        let vm = fast.machine(None).ok()?;
        fast.put_back(vm);
        Some(fast)
    }

    /// The program, with tollgate's `sprintf` bound (what [`crate::precompiled`] stores:
    /// serialization keeps builtins by name).
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The `violation` rule's path.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The paths of the rules whose values a machine keeps from one evaluation to the next of
    /// the same parameters.
    pub fn parameter_rules(&self) -> Vec<String> {
        self.parameter_rules
            .iter()
            .filter_map(|i| self.program.rule_infos.get(*i))
            .map(|info| info.name.clone())
            .collect()
    }

    fn machine(&self, inventory: Option<&Value>) -> Result<Machine, Fallback> {
        // This thread's own machine if one is idle, else any (its thread may be gone): see
        // `put_back`.
        let me = this_thread();
        let pooled = self.pool.lock().ok().and_then(|mut pool| {
            let at = pool
                .iter()
                .rposition(|(thread, _)| *thread == me)
                .or(pool.len().checked_sub(1))?;
            Some(pool.remove(at).1)
        });
        let mut machine = match pooled {
            // Pooled machines hold `empty_data` (see `evaluate`).
            Some(machine) => machine,
            None => {
                let mut vm = match &self.policy {
                    Some(policy) => RegoVM::new_with_policy(policy.clone()),
                    None => RegoVM::new(),
                };
                vm.load_program(self.program_for_new_machine());
                vm.set_strict_builtin_errors(false);
                // The budget bounds evaluation; the RVM's default instruction cap (25,000) would
                // refuse ordinary large pods.
                vm.set_max_instructions(usize::MAX);
                vm.set_data(self.empty_data.clone())
                    .map_err(|_| Fallback::Interpreter)?;
                Machine {
                    vm,
                    known: Vec::new(),
                }
            }
        };
        if let Some(inventory) = inventory {
            let mut data = Value::new_object();
            if let Ok(map) = data.as_object_mut() {
                map.insert(Value::from("inventory"), inventory.clone());
            }
            machine
                .vm
                .set_data(data)
                .map_err(|_| Fallback::Interpreter)?;
        }
        Ok(machine)
    }

    /// The program a new machine runs: the first machine shares the compiled one; any other
    /// gets a copy of its own, made through the serialized form. Machines on different threads
    /// then share no reference count: the program's literals (keys, strings) are cloned into
    /// registers all through an evaluation, and two cores incrementing the same counts move
    /// their cache lines back and forth (with the cross-thread frees `put_back` avoids, a
    /// quarter more CPU time in a two-thread `eval`).
    fn program_for_new_machine(&self) -> Arc<Program> {
        if Arc::strong_count(&self.program) == 1 {
            return Arc::clone(&self.program);
        }
        match self
            .program
            .serialize_binary()
            .ok()
            .and_then(|bytes| crate::precompiled::restore(&bytes).ok())
        {
            Some(program) => Arc::new(program),
            None => Arc::clone(&self.program),
        }
    }

    /// Pools a machine under the thread that used it last, which takes it again first: in a
    /// steady state each thread runs its own machines, so what a machine allocates (registers,
    /// cached rule values) is freed by the thread that allocated it, not handed across to the
    /// allocator's slower cross-thread path. When the pool is full, the longest idle machine
    /// makes room.
    fn put_back(&self, machine: Machine) {
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() >= POOL_LIMIT {
                pool.remove(0);
            }
            pool.push((this_thread(), machine));
        }
    }

    /// Evaluates `violation` for `input`, with `data.inventory` when given, stopped by `timer`
    /// (none: unbounded).
    pub fn evaluate(
        &self,
        input: Value,
        inventory: Option<&Value>,
        timer: Option<ExecutionTimerConfig>,
    ) -> Result<Value, Fallback> {
        let mut machine = self.machine(inventory)?;
        let known = self.known_values(&mut machine, &input);
        let vm = &mut machine.vm;
        // Every evaluation sets its timer: a pooled machine may carry another call's.
        vm.set_execution_timer_config(timer);
        vm.set_input(input);
        let result = vm.execute_entry_point_by_name(&self.rule);
        if result.is_ok()
            && let Some(at) = known
        {
            self.learn(&mut machine, at);
        }
        // Drop the input and inventory before pooling: the machine must not pin a request or
        // a snapshot. A machine whose data cannot be reset is not pooled.
        machine.vm.set_input(Value::Undefined);
        if inventory.is_none() || machine.vm.set_data(self.empty_data.clone()).is_ok() {
            self.put_back(machine);
        }
        match result {
            // An undefined partial set is the empty set, as the interpreter answers.
            Ok(Value::Undefined) => Ok(Value::new_set()),
            Ok(value) => Ok(value),
            Err(e) => {
                let error = anyhow::Error::from(e);
                if is_time_limit(&error) {
                    Err(Fallback::Budget(error.to_string()))
                } else {
                    Err(Fallback::Interpreter)
                }
            }
        }
    }
}

impl FastPath {
    /// Gives the machine the parameter-only rule values it knows for `input.parameters`, and
    /// returns where they are filed (made room for when new), or `None` when the template has
    /// no such rules.
    fn known_values(&self, machine: &mut Machine, input: &Value) -> Option<usize> {
        if self.parameter_rules.is_empty() {
            return None;
        }
        let parameters = input
            .as_object()
            .ok()
            .and_then(|map| map.get(&self.parameters_key))
            .unwrap_or(&Value::Undefined);
        if matches!(parameters, Value::Number(_)) {
            // Never the same as another (see below): nothing to keep.
            machine.vm.set_known_rule_values(std::iter::empty());
            return None;
        }
        // A constraint's parameters are one value shared by all its reviews: the same
        // allocation, which holds the same contents as long as an entry holds it (values are
        // copied on write). Equal contents are not enough: `1` and `1.0` are equal numbers,
        // and a rule may format them differently.
        let at = machine
            .known
            .iter()
            .position(|k| same_parameters(&k.parameters, parameters));
        let at = match at {
            Some(at) => at,
            None => {
                if machine.known.len() >= KNOWN_LIMIT {
                    machine.known.remove(0);
                }
                machine.known.push(Known {
                    parameters: parameters.clone(),
                    values: Vec::new(),
                });
                machine.known.len() - 1
            }
        };
        let values = machine
            .known
            .get(at)
            .map(|k| k.values.as_slice())
            .unwrap_or_default();
        machine.vm.set_known_rule_values(values.iter().cloned());
        Some(at)
    }

    /// Files the parameter-only rule values the last (successful) evaluation computed that the
    /// machine did not know yet.
    fn learn(&self, machine: &mut Machine, at: usize) {
        let Some(known) = machine.known.get_mut(at) else {
            return;
        };
        if known.values.len() == self.parameter_rules.len() {
            return;
        }
        for &rule in &self.parameter_rules {
            if known.values.iter().any(|(r, _)| *r == rule) {
                continue;
            }
            if let Some(value) = machine.vm.computed_rule_value(rule) {
                known.values.push((rule, value.clone()));
            }
        }
    }
}

/// Whether two parameters values are the same allocation (the same shared object, array, set
/// or string), or both absent, null, or the same boolean.
fn same_parameters(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
        (Value::Array(a), Value::Array(b)) => Arc::ptr_eq(a, b),
        (Value::Set(a), Value::Set(b)) => Arc::ptr_eq(a, b),
        (Value::String(a), Value::String(b)) => Arc::ptr_eq(a, b),
        (Value::Undefined, Value::Undefined) | (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

/// The calling thread's id, without `thread::current()`'s handle clone on every evaluation.
fn this_thread() -> ThreadId {
    thread_local! {
        static ID: ThreadId = std::thread::current().id();
    }
    ID.with(|id| *id)
}

/// Whether an evaluation error (RVM or interpreter) is the time budget running out.
pub fn is_time_limit(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<LimitError>(),
        Some(LimitError::TimeLimitExceeded { .. })
    ) || error.to_string().contains("exceeded time limit")
}

/// The program with `sprintf` bound to tollgate's Go-compatible implementation, as the
/// interpreter has it through an extension (the RVM only calls regorus's builtin table).
pub(crate) fn with_go_sprintf(mut program: Program) -> Program {
    for (i, info) in program.builtin_info_table.iter().enumerate() {
        if info.name == "sprintf"
            && let Some(slot) = program.resolved_builtins.get_mut(i)
        {
            *slot = (go_sprintf_builtin, 2);
        }
    }
    program
}

fn go_sprintf_builtin(
    _span: &Span,
    _params: &[Ref<Expr>],
    args: &[Value],
    _strict: bool,
) -> anyhow::Result<Value> {
    rego::sprintf_builtin(args)
}

/// The budget as the RVM's timer configuration. The clock is read every 1,024 instructions:
/// at 64 (the interpreter's interval, in its coarser work units) reading it was about 1% of a
/// review's CPU time, and 1,024 instructions take tens of microseconds, far inside the
/// smallest budget (the 5 ms inline one).
pub fn timer(budget: Option<Duration>) -> Option<ExecutionTimerConfig> {
    budget.map(|limit| ExecutionTimerConfig {
        limit,
        check_interval: std::num::NonZeroU32::MIN.saturating_add(1023),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"package t
violation[{"msg": msg}] {
    name := input.parameters.names[_]
    input.review.object.metadata.name == name
    msg := sprintf("%v is not allowed", [name])
}
"#;

    fn fast_path() -> FastPath {
        let mut engine = Engine::new();
        engine.set_rego_v0(true);
        engine.add_policy("t.rego".into(), POLICY.into()).unwrap();
        FastPath::compile(&mut engine, "data.t.violation", POLICY).unwrap()
    }

    fn input(name: &str) -> Value {
        Value::from(serde_json::json!({
            "review": {"object": {"metadata": {"name": name}}},
            "parameters": {"names": ["a", "b"]},
        }))
    }

    fn messages(value: &Value) -> Vec<String> {
        value
            .as_set()
            .unwrap()
            .iter()
            .map(|v| v["msg"].as_string().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_second_machine_runs_its_own_copy_of_the_program() {
        let fast = fast_path();
        let first = fast.machine(None).ok().unwrap();
        let second = fast.machine(None).ok().unwrap();
        // The path's own reference and the first machine's: the second holds a copy.
        assert_eq!(Arc::strong_count(&fast.program), 2);
        fast.put_back(first);
        fast.put_back(second);
        // Both machines decide alike, on whichever threads take them.
        std::thread::scope(|scope| {
            let runs: Vec<_> = ["a", "c", "b"]
                .into_iter()
                .map(|name| {
                    let fast = &fast;
                    scope.spawn(move || {
                        messages(&fast.evaluate(input(name), None, None).ok().unwrap())
                    })
                })
                .collect();
            let got: Vec<Vec<String>> = runs.into_iter().map(|r| r.join().unwrap()).collect();
            assert_eq!(
                got,
                [vec!["a is not allowed"], vec![], vec!["b is not allowed"]]
            );
        });
    }

    #[test]
    fn a_thread_takes_back_its_own_machine_before_another_threads() {
        let fast = fast_path();
        let mine = fast.machine(None).ok().unwrap();
        let theirs = fast.machine(None).ok().unwrap();
        fast.put_back(mine);
        let other = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    fast.put_back(theirs);
                    std::thread::current().id()
                })
                .join()
                .unwrap()
        });
        let tags = |fast: &FastPath| -> Vec<ThreadId> {
            fast.pool.lock().unwrap().iter().map(|(t, _)| *t).collect()
        };
        assert_eq!(tags(&fast), [std::thread::current().id(), other]);
        // The other thread's machine is the last idle one, but this thread gets its own.
        let again = fast.machine(None).ok().unwrap();
        assert_eq!(tags(&fast), [other]);
        // A thread with none of its own takes what is idle rather than building a machine.
        std::thread::scope(|scope| {
            scope.spawn(|| fast.put_back(fast.machine(None).ok().unwrap()));
        });
        assert_eq!(tags(&fast).len(), 1);
        assert_ne!(tags(&fast), [other]);
        fast.put_back(again);
    }

    const PARAMETER_POLICY: &str = r#"package p
names := {lower(n) | some n in input.parameters.names}
violation contains {"msg": msg} if {
    lower(input.review.object.metadata.name) in names
    msg := sprintf("%v is not allowed", [input.review.object.metadata.name])
}
violation contains {"msg": "conflict"} if {
    count(names) > 0
    _conflict == 1
}
_conflict := 1 if input.review.conflict
_conflict := 2 if input.review.conflict
"#;

    fn parameter_fast_path() -> FastPath {
        let mut engine = Engine::new();
        engine
            .add_policy("p.rego".into(), PARAMETER_POLICY.into())
            .unwrap();
        FastPath::compile(&mut engine, "data.p.violation", PARAMETER_POLICY).unwrap()
    }

    fn review(name: &str, parameters: &Value) -> Value {
        let mut input = Value::from(serde_json::json!({
            "review": {"object": {"metadata": {"name": name}}},
        }));
        input
            .as_object_mut()
            .unwrap()
            .insert(Value::from("parameters"), parameters.clone());
        input
    }

    fn names(list: &[&str]) -> Value {
        Value::from(serde_json::json!({ "names": list }))
    }

    /// The one pooled machine's known values: per parameters value, the rules it holds.
    fn known(fast: &FastPath) -> Vec<Vec<String>> {
        let pool = fast.pool.lock().unwrap();
        assert_eq!(pool.len(), 1);
        pool[0]
            .1
            .known
            .iter()
            .map(|k| {
                k.values
                    .iter()
                    .map(|(i, _)| fast.program.rule_infos[*i].name.clone())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_parameter_only_rule_is_computed_once_per_parameters() {
        let fast = parameter_fast_path();
        assert_eq!(fast.parameter_rules(), ["data.p.names"]);
        let first = names(&["A", "b"]);
        let second = names(&["C"]);
        let run = |name: &str, parameters: &Value| {
            messages(
                &fast
                    .evaluate(review(name, parameters), None, None)
                    .ok()
                    .unwrap(),
            )
        };
        assert_eq!(run("a", &first), ["a is not allowed"]);
        assert_eq!(known(&fast), [vec!["data.p.names".to_string()]]);
        // Other parameters are another entry, and answer by their own names.
        assert_eq!(run("a", &second), Vec::<String>::new());
        assert_eq!(run("c", &second), ["c is not allowed"]);
        assert_eq!(run("c", &first), Vec::<String>::new());
        assert_eq!(known(&fast).len(), 2);
        // Equal contents in another allocation are another entry (see `same_parameters`).
        assert_eq!(run("b", &names(&["A", "b"])), ["b is not allowed"]);
        assert_eq!(known(&fast).len(), 3);
        // A constraint without parameters has an entry too.
        assert_eq!(run("a", &Value::Undefined), Vec::<String>::new());
        assert_eq!(run("b", &Value::Undefined), Vec::<String>::new());
        assert_eq!(known(&fast).len(), 4);
    }

    #[test]
    fn a_known_value_is_what_the_next_evaluation_reads() {
        let fast = parameter_fast_path();
        let parameters = names(&["a"]);
        let evaluate = |name: &str| {
            messages(
                &fast
                    .evaluate(review(name, &parameters), None, None)
                    .ok()
                    .unwrap(),
            )
        };
        assert_eq!(evaluate("z"), Vec::<String>::new());
        // Replace what the machine learnt with a value the rule cannot compute from these
        // parameters: the evaluation answers from it, so the rule did not run again.
        {
            let mut pool = fast.pool.lock().unwrap();
            let values = &mut pool[0].1.known[0].values;
            values[0].1 = Value::from_json_str(r#"["z"]"#).unwrap();
        }
        assert_eq!(evaluate("z"), ["z is not allowed"]);
    }

    #[test]
    fn a_failed_evaluation_teaches_nothing() {
        let fast = parameter_fast_path();
        let parameters = names(&["a"]);
        let mut input = Value::from(serde_json::json!({
            "review": {"object": {"metadata": {"name": "a"}}, "conflict": true},
        }));
        input
            .as_object_mut()
            .unwrap()
            .insert(Value::from("parameters"), parameters.clone());
        // `names` ran before the conflict stopped the evaluation; it is not kept.
        assert!(fast.evaluate(input, None, None).is_err());
        assert_eq!(known(&fast), [Vec::<String>::new()]);
        assert_eq!(
            messages(
                &fast
                    .evaluate(review("a", &parameters), None, None)
                    .ok()
                    .unwrap()
            ),
            ["a is not allowed"]
        );
        assert_eq!(known(&fast), [vec!["data.p.names".to_string()]]);
    }
}
