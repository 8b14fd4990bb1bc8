// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.
use crate::builtins;
use crate::value::Value;

use super::errors::{Result, VmError};
use super::execution_model::ExecutionMode;
use super::machine::RegoVM;

impl RegoVM {
    pub(super) fn execute_function_call(&mut self, params_index: u16) -> Result<()> {
        let params = self
            .program
            .instruction_data
            .get_function_call_params(params_index)
            .cloned()
            .ok_or_else(|| VmError::InvalidFunctionCallParamsIndex {
                index: params_index,
                pc: self.pc,
                available: self.program.instruction_data.function_call_params.len(),
            })?;
        let call_result = match self.execution_mode {
            ExecutionMode::RunToCompletion => {
                self.execute_call_rule_common(params.dest, params.func_rule_index, Some(&params))
            }
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
        // function pointer) instead of cloning the program's `Arc`, and the builtin borrows the
        // machine's placeholder span and expressions instead of a clone of each: every clone of
        // them is an atomic reference-count update, on every builtin call.
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
            let resolved = program
                .get_resolved_builtin(params.builtin_index)
                .map(|fcn| fcn.0);
            let cache_name = builtins::must_cache(builtin_info.name.as_str());
            (params, builtin_info.num_args, resolved, cache_name)
        };

        let mut args = core::mem::take(&mut self.cached_builtin_args);
        args.clear();
        for &arg_reg in params.arg_registers().iter() {
            let arg_value = self.get_register(arg_reg)?.clone();
            args.push(arg_value);
        }

        let actual_args = args.len();
        if u16::try_from(actual_args).unwrap_or(u16::MAX) != expected_args {
            self.cached_builtin_args = args;
            return Err(VmError::BuiltinArgumentMismatch {
                expected: expected_args,
                actual: actual_args,
                pc: self.pc,
            });
        }

        if args.iter().any(|a| a == &Value::Undefined) {
            self.cached_builtin_args = args;
            self.set_register(params.dest, Value::Undefined)?;
            self.memory_check()?;
            return Ok(());
        }

        let Some(builtin_fn) = resolved else {
            self.cached_builtin_args = args;
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
                    if entry.0.as_slice() == args.as_slice() {
                        let cached = entry.1.clone();
                        self.cached_builtin_args = args;
                        self.set_register(params.dest, cached)?;
                        self.memory_check()?;
                        return Ok(());
                    }
                }
            }
        }

        self.ensure_dummy_exprs(args.len())?;
        self.get_dummy_span()?;
        let outcome = match self.dummy_span.as_ref() {
            Some(dummy_span) => builtin_fn(
                dummy_span,
                self.dummy_exprs.get(..args.len()).unwrap_or(&[]),
                &args,
                self.strict_builtin_errors,
            ),
            None => {
                self.cached_builtin_args = args;
                return Err(VmError::Internal {
                    message: "dummy span missing after initialization".into(),
                    pc: self.pc,
                });
            }
        };
        let result = match outcome {
            Ok(value) => value,
            // Resource-limit errors must always propagate, even in non-strict
            // mode, to prevent `not builtin(...)` from silently flipping to true.
            Err(e) if !self.strict_builtin_errors => {
                if e.downcast_ref::<crate::LimitError>().is_some() {
                    self.cached_builtin_args = args;
                    return Err(e.into());
                }
                Value::Undefined
            }
            Err(err) => {
                self.cached_builtin_args = args;
                return Err(err.into());
            }
        };

        if let Some(name) = cache_name {
            // Move args into the cache. The now-empty (zero-capacity) Vec is
            // stored back in cached_builtin_args; the next call will re-allocate.
            // This is acceptable because cache inserts are rare (once per unique
            // argument set) while the hot path (cache hit above) reuses the Vec.
            let cache_args = core::mem::take(&mut args);
            self.cached_builtin_args = args;
            self.builtins_cache
                .entry(name)
                .or_default()
                .push((cache_args, result.clone()));
            self.set_register(params.dest, result)?;
        } else {
            self.cached_builtin_args = args;
            self.set_register(params.dest, result)?;
        }

        self.memory_check()?;

        Ok(())
    }
}
