//! Run with `bash fuzz/run.sh load_policies` (see fuzz/run.sh); the harness is `tollgate_fuzz::load_policies`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::load_policies(data));
