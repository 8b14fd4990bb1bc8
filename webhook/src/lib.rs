//! The `tollgate` binary's library: the CLI commands, the embedded pack and the HTTPS admission
//! webhook. Kept as a library so integration tests can drive the server in-process.

pub mod cli;
pub mod cluster;
pub mod pack;
pub mod serve;
