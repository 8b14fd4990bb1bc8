//! Run with `bash fuzz/run.sh admission_review` (see fuzz/run.sh); the harness is `tollgate_fuzz::admission_review`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::admission_review(data));
