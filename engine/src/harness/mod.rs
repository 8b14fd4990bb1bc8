//! Test harnesses that return results as data: `verify` runs gator Suites through the same
//! review path as the webhook; printers turn results into text apart from running them.

pub mod printer;
pub mod rego_test;
pub mod rego_test_printer;
pub mod verify;
