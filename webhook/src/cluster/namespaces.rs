//! Namespaces, as Gatekeeper's webhook sees them (`pkg/webhook/policy.go`): a watch-backed
//! cache in the server's data snapshot, which `namespaceSelector` and
//! `input.review.namespaceObject` read, and a live read for a cache miss (a Namespace created a
//! moment before its first Pod).
//!
//! The cache is kept by kube-runtime's watcher: it lists, then watches, and relists after a
//! dropped watch or an expired resource version. A relist replaces the cached set, so a
//! Namespace deleted while the API server was out of reach is forgotten once it is back.

use std::collections::BTreeSet;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, watcher as watch_stream};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::serve::state::{AppState, NamespaceReader, ReadinessHold};

/// The Namespace as templates see it in `input.review.namespaceObject`, without
/// `managedFields` (bookkeeping of field owners that no policy reads, and most of the bytes).
fn to_value(ns: &Namespace) -> Option<Value> {
    let mut value = serde_json::to_value(ns).ok()?;
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    Some(value)
}

fn name_of(ns: &Namespace) -> String {
    ns.metadata.name.clone().unwrap_or_default()
}

/// Keeps the cached Namespaces in step with the cluster until `shutdown`; releases `hold`
/// after the first complete list.
pub async fn watch(
    client: kube::Client,
    state: AppState,
    hold: ReadinessHold,
    shutdown: CancellationToken,
) {
    let api: Api<Namespace> = Api::all(client);
    let mut events = watch_stream(api, watcher::Config::default())
        .backoff(super::watch::QuickFirstBackoff::default())
        .boxed();
    let mut hold = Some(hold);
    let mut relisted: Vec<Value> = Vec::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => event,
        };
        let Some(event) = event else { return };
        match event {
            Err(error) => {
                // The watcher retries with backoff; the cache keeps what it had meanwhile.
                tracing::warn!(%error, "Namespace watch failed; retrying");
                state.metrics.watch_restarted("namespaces");
            }
            Ok(Event::Init) => relisted.clear(),
            Ok(Event::InitApply(ns)) => relisted.extend(to_value(&ns)),
            Ok(Event::InitDone) => {
                let listed = std::mem::take(&mut relisted);
                let names: BTreeSet<String> = listed
                    .iter()
                    .map(|v| tollgate_engine::gatekeeper::object_name(v).to_string())
                    .collect();
                state.data.rcu(|current| {
                    let mut next = (**current).clone();
                    for gone in current.namespace_names().filter(|n| !names.contains(*n)) {
                        next.remove_namespace(gone);
                    }
                    for ns in &listed {
                        next.set_namespace(ns.clone());
                    }
                    next
                });
                tracing::info!(namespaces = names.len(), "Namespaces listed");
                if let Some(hold) = hold.take() {
                    hold.release();
                }
            }
            Ok(Event::Apply(ns)) => {
                tracing::debug!(namespace = name_of(&ns), "Namespace changed");
                if let Some(value) = to_value(&ns) {
                    state.data.rcu(|current| {
                        let mut next = (**current).clone();
                        next.set_namespace(value.clone());
                        next
                    });
                }
            }
            Ok(Event::Delete(ns)) => {
                let name = name_of(&ns);
                tracing::debug!(namespace = name, "Namespace deleted");
                state.data.rcu(|current| {
                    let mut next = (**current).clone();
                    next.remove_namespace(&name);
                    next
                });
            }
        }
    }
}

/// Reads one Namespace from the API server, bypassing the cache.
pub fn live_reader(client: kube::Client) -> NamespaceReader {
    let api: Api<Namespace> = Api::all(client);
    NamespaceReader(std::sync::Arc::new(move |name: String| {
        let api = api.clone();
        Box::pin(async move {
            match api.get_opt(&name).await {
                Ok(Some(ns)) => Ok(to_value(&ns)),
                Ok(None) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }))
}
