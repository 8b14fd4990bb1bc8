//! Run with `bash fuzz/run.sh go_sprintf` (see fuzz/run.sh); the harness is `tollgate_fuzz::go_sprintf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::go_sprintf(data));
