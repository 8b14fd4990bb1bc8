//! Run with `bash fuzz/run.sh block_yaml` (see fuzz/run.sh); the harness is `tollgate_fuzz::block_yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::block_yaml(data));
