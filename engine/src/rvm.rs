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
    /// Idle machines, each with the thread that ran it last, oldest first: an evaluation takes
    /// one of its own thread's, else any, else builds one (see `put_back`).
    pool: Mutex<Vec<(ThreadId, RegoVM)>>,
}

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
        Self::ready(Some(policy), with_go_sprintf(program), rule)
    }

    /// A fast path from a program compiled ahead of time ([`crate::precompiled`]), whose
    /// `sprintf` is already tollgate's.
    pub fn precompiled(program: Program, rule: &str) -> Option<FastPath> {
        Self::ready(None, program, rule)
    }

    fn ready(policy: Option<CompiledPolicy>, program: Program, rule: &str) -> Option<FastPath> {
        let mut empty_data = Value::new_object();
        if let Ok(map) = empty_data.as_object_mut() {
            map.insert(Value::from("inventory"), Value::new_object());
        }
        let fast = FastPath {
            policy,
            program: Arc::new(program),
            rule: rule.to_string(),
            empty_data,
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

    fn machine(&self, inventory: Option<&Value>) -> Result<RegoVM, Fallback> {
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
        let mut vm = match pooled {
            // Pooled machines hold `empty_data` (see `evaluate`).
            Some(vm) => vm,
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
                vm
            }
        };
        if let Some(inventory) = inventory {
            let mut data = Value::new_object();
            if let Ok(map) = data.as_object_mut() {
                map.insert(Value::from("inventory"), inventory.clone());
            }
            vm.set_data(data).map_err(|_| Fallback::Interpreter)?;
        }
        Ok(vm)
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
    fn put_back(&self, vm: RegoVM) {
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() >= POOL_LIMIT {
                pool.remove(0);
            }
            pool.push((this_thread(), vm));
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
        let mut vm = self.machine(inventory)?;
        // Every evaluation sets its timer: a pooled machine may carry another call's.
        vm.set_execution_timer_config(timer);
        vm.set_input(input);
        let result = vm.execute_entry_point_by_name(&self.rule);
        // Drop the input and inventory before pooling: the machine must not pin a request or
        // a snapshot. A machine whose data cannot be reset is not pooled.
        vm.set_input(Value::Undefined);
        if inventory.is_none() || vm.set_data(self.empty_data.clone()).is_ok() {
            self.put_back(vm);
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
}
