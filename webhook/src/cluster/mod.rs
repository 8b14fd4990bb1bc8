//! Everything that talks to the Kubernetes API server (`tollgate serve --cluster`). It feeds
//! the server's state (the data snapshot, readiness) and, later, the policy publisher; the
//! engine never sees a client.

pub mod audit;
pub mod crd;
pub mod leader;
pub mod namespaces;
pub mod policies;
pub mod policy_reports;
pub mod status;
pub mod sync;
pub mod watch;

use anyhow::Context as _;

/// Where tollgate runs in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Tollgate's own namespace (`POD_NAMESPACE`, or `--namespace`).
    pub namespace: String,
    /// This replica's pod name (`POD_NAME`), its identity in status objects and the Lease.
    pub pod_name: String,
    /// Keep `metadata.managedFields` of objects synced into `data.inventory`.
    pub sync_managed_fields: bool,
    /// The audit.
    pub audit: audit::AuditSettings,
}

/// A client from `KUBECONFIG` (or `~/.kube/config`), else the in-cluster service account. It
/// does not contact the API server: an unreachable one is retried by each watch, with backoff.
pub async fn client() -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer()
        .await
        .context("--cluster: no Kubernetes client configuration (KUBECONFIG, ~/.kube/config or the in-cluster service account)")?;
    kube::Client::try_from(config).context("--cluster: cannot build the Kubernetes client")
}

/// The strings of `object[key]` when it is a list (others left out): Gatekeeper's list fields.
pub fn strings(object: &serde_json::Value, key: &str) -> Vec<String> {
    object
        .get(key)
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .map(str::to_string)
        .collect()
}
