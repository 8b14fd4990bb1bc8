//! `tollgate serve`: the validating admission webhook over HTTPS, plus probes and metrics on a
//! plain-HTTP port.
//!
//! Config flows one way: `cli::serve::ServeArgs` (clap) → [`config::ServeConfig`] (validated) →
//! [`server::Server`] → `run(shutdown)`. The admission handler only translates HTTP to the
//! engine's review path and back; policies are an immutable `PolicySet` swapped whole by the
//! [`publisher::Publisher`], which the policy sources (the embedded pack, [`files`], the
//! cluster) feed.

pub mod admission;
pub mod body;
pub mod config;
pub mod files;
pub mod legacy_hello;
pub mod metrics;
pub mod nodelay;
pub mod probes;
pub mod publisher;
pub mod server;
pub mod state;
pub mod tls;
