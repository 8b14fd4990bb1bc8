//! tollgate-engine: Gatekeeper-compatible policy evaluation on regorus (Rego) and cel-rust
//! (`engine: K8sNativeValidation`).
//!
//! Data flows one way: [`load`] → [`ingest`] (which uses [`compile`]) into a
//! [`policy_set::PolicySet`] →
//! [`review`] → [`evaluate::review`] (match, expand, evaluate) → [`decide`]. The crate is
//! synchronous and does no network I/O; the webhook binary wraps it.

pub mod block_yaml;
pub mod cel;
pub mod compile;
pub mod data;
pub mod decide;
pub mod document;
pub mod error;
pub mod evaluate;
pub mod expand;
pub mod gatekeeper;
pub mod harness;
pub mod ingest;
pub mod load;
pub mod matching;
pub mod pack_build;
pub mod policy_set;
pub mod precompiled;
pub mod rego;
pub mod review;
pub mod rvm;
pub mod schema;
pub mod source_map;

pub use data::DataSnapshot;
pub use decide::Decision;
pub use error::{PolicyError, PolicyErrors};
pub use evaluate::{Context, Violation, enforcement_point};
pub use load::Sources;
pub use policy_set::PolicySet;
pub use review::{Review, Source};
