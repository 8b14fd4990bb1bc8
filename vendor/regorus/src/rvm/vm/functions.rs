// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.
use crate::builtins::{self, BuiltinFcn};
use crate::rvm::instructions::BuiltinCallParams;
use crate::rvm::program::Program;
use crate::value::Value;
use alloc::vec::Vec;

use super::errors::{Result, VmError};
use super::execution_model::ExecutionMode;
use super::machine::RegoVM;

impl RegoVM {
    pub(super) fn execute_function_call(
        &mut self,
        program: &Program,
        params_index: u16,
    ) -> Result<()> {
        let params = program
            .instruction_data
            .get_function_call_params(params_index)
            .cloned()
            .ok_or_else(|| VmError::InvalidFunctionCallParamsIndex {
                index: params_index,
                pc: self.pc,
                available: program.instruction_data.function_call_params.len(),
            })?;
        let call_result = match self.execution_mode {
            ExecutionMode::RunToCompletion => self.execute_call_rule_common(
                program,
                params.dest,
                params.func_rule_index,
                Some(&params),
            ),
            ExecutionMode::Suspendable => self.execute_call_rule_suspendable(
                params.dest,
                params.func_rule_index,
                Some(&params),
            ),
        };

        call_result?;

        self.memory_check()?;
        Ok(())
    }

    pub(super) fn execute_builtin_call(&mut self, params_index: u16) -> Result<()> {
        // tollgate: what the call needs is copied out of the program (a few integers and a
        // function pointer) instead of cloning the program's `Arc`, and `call_builtin` lends
        // the builtin the machine's placeholder span and expressions instead of a clone of
        // each: every clone of them is an atomic reference-count update, on every builtin call.
        let (params, expected_args, resolved, cache_name) = {
            let program = &*self.program;
            let params = program
                .instruction_data
                .get_builtin_call_params(params_index)
                .ok_or_else(|| VmError::InvalidBuiltinCallParamsIndex {
                    index: params_index,
                    pc: self.pc,
                    available: program.instruction_data.builtin_call_params.len(),
                })?
                .clone();
            let builtin_info = program
                .get_builtin_info(params.builtin_index)
                .ok_or_else(|| VmError::InvalidBuiltinInfoIndex {
                    index: params.builtin_index,
                    pc: self.pc,
                    available: program.builtin_info_table.len(),
                })?;
            let resolved = program.get_resolved_builtin(params.builtin_index).copied();
            let cache_name = builtins::must_cache(builtin_info.name.as_str());
            (params, builtin_info.num_args, resolved, cache_name)
        };

        // tollgate: the arguments are moved out of their registers for the call and moved back
        // after it, not cloned: a clone of a string, array, set or object is an atomic
        // increment, and dropping it an atomic decrement. A register passed twice is cloned the
        // second time, since the first move left it undefined.
        let registers = params.arg_registers();
        let mut args = core::mem::take(&mut self.cached_builtin_args);
        args.clear();
        for (k, &arg_reg) in registers.iter().enumerate() {
            let repeated = registers
                .get(..k)
                .is_some_and(|seen| seen.contains(&arg_reg));
            let arg_value = if repeated {
                self.get_register(arg_reg).cloned()
            } else {
                self.take_register(arg_reg)
            };
            match arg_value {
                Ok(value) => args.push(value),
                Err(err) => {
                    self.restore_builtin_args(registers, args);
                    return Err(err);
                }
            }
        }
        let outcome = self.call_builtin(&params, expected_args, resolved, cache_name, &args);
        self.restore_builtin_args(registers, args);
        let result = outcome?;
        self.set_register(params.dest, result)?;
        self.memory_check()?;

        Ok(())
    }

    /// Moves builtin arguments back into the registers they were taken from (see
    /// `execute_builtin_call`) and keeps the emptied vector for the next call.
    fn restore_builtin_args(&mut self, registers: &[u8], mut args: Vec<Value>) {
        for (k, value) in args.drain(..).enumerate() {
            let Some(&reg) = registers.get(k) else { break };
            if registers.get(..k).is_some_and(|seen| seen.contains(&reg)) {
                continue;
            }
            if let Some(slot) = self.registers.get_mut(usize::from(reg)) {
                *slot = value;
            }
        }
        self.cached_builtin_args = args;
    }

    /// A builtin's result for `args`: undefined when an argument is, from the cache for the
    /// builtins that must give one value per evaluation, and undefined for an error that is
    /// not strict and not a resource limit.
    fn call_builtin(
        &mut self,
        params: &BuiltinCallParams,
        expected_args: u16,
        resolved: Option<BuiltinFcn>,
        cache_name: Option<&'static str>,
        args: &[Value],
    ) -> Result<Value> {
        let actual_args = args.len();
        if u16::try_from(actual_args).unwrap_or(u16::MAX) != expected_args {
            return Err(VmError::BuiltinArgumentMismatch {
                expected: expected_args,
                actual: actual_args,
                pc: self.pc,
            });
        }

        if args.iter().any(|a| a == &Value::Undefined) {
            return Ok(Value::Undefined);
        }

        let Some(builtin_fn) = resolved else {
            let name = self
                .program
                .get_builtin_info(params.builtin_index)
                .map(|info| info.name.clone())
                .unwrap_or_default();
            return Err(VmError::BuiltinNotResolved { name, pc: self.pc });
        };

        if let Some(name) = cache_name {
            if let Some(entries) = self.builtins_cache.get(name) {
                for entry in entries {
                    if entry.0.as_slice() == args {
                        return Ok(entry.1.clone());
                    }
                }
            }
        }

        self.ensure_dummy_exprs(args.len())?;
        self.get_dummy_span()?;
        let Some(dummy_span) = self.dummy_span.as_ref() else {
            return Err(VmError::Internal {
                message: "dummy span missing after initialization".into(),
                pc: self.pc,
            });
        };
        let outcome = (builtin_fn.0)(
            dummy_span,
            self.dummy_exprs.get(..args.len()).unwrap_or(&[]),
            args,
            self.strict_builtin_errors,
        );
        let result = match outcome {
            Ok(value) => value,
            // Resource-limit errors must always propagate, even in non-strict
            // mode, to prevent `not builtin(...)` from silently flipping to true.
            Err(e) if !self.strict_builtin_errors => {
                if e.downcast_ref::<crate::LimitError>().is_some() {
                    return Err(e.into());
                }
                Value::Undefined
            }
            Err(err) => return Err(err.into()),
        };

        if let Some(name) = cache_name {
            // Cache inserts are rare (once per unique argument set).
            self.builtins_cache
                .entry(name)
                .or_default()
                .push((args.to_vec(), result.clone()));
        }
        Ok(result)
    }
}
