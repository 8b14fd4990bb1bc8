//! Run with `bash fuzz/run.sh rvm_differential` (see fuzz/run.sh); the harness is `tollgate_fuzz::rvm_differential`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::rvm_differential(data));
