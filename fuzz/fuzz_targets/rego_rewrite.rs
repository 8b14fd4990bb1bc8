//! Run with `bash fuzz/run.sh rego_rewrite` (see fuzz/run.sh); the harness is `tollgate_fuzz::rego_rewrite`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::rego_rewrite(data));
