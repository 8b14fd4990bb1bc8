//! One kube-runtime watcher per resource, turned into the few changes the policy source
//! needs: a complete list (after the first list and after every relist), one object applied,
//! one object deleted. A relist replaces what was known, so objects deleted while the API
//! server was out of reach are forgotten once it is back (Gatekeeper ignores those).

use std::time::Duration;

use futures_util::StreamExt as _;
use kube::Api;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, watcher as watch_stream};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::serve::metrics::Metrics;

/// Which watch a change comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watched {
    /// ConstraintTemplates.
    Templates,
    /// ExpansionTemplates.
    Expansions,
    /// Constraint CRDs (label `gatekeeper.sh/constraint: "yes"`).
    ConstraintCrds,
    /// Constraints of one kind.
    Constraints(String),
    /// Gatekeeper's `Config` named `config` in tollgate's namespace.
    GatekeeperConfig,
    /// SyncSets.
    SyncSets,
    /// Objects of one kind synced into `data.inventory`.
    Synced(tollgate_engine::gatekeeper::Gvk),
}

/// What a watch saw.
#[derive(Debug)]
pub enum Change {
    /// Everything there is now (first list, or a relist).
    Listed(Watched, Vec<Value>),
    /// One object created or changed.
    Applied(Watched, Value),
    /// One object deleted (its last state).
    Deleted(Watched, Value),
}

/// Retries after 100 ms, doubling up to 30 s; back to 100 ms after a success. The usual first
/// failure here is a constraint CRD that was just Established while the API server still
/// publishes its resource: client-go's 800 ms first step (kube's default) would add a second or
/// two to every apply-to-enforcement. An API server that keeps failing still gets client-go's
/// 30 s ceiling.
#[derive(Debug, Clone)]
pub struct QuickFirstBackoff {
    next: Duration,
}

impl QuickFirstBackoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);
}

impl Default for QuickFirstBackoff {
    fn default() -> Self {
        QuickFirstBackoff { next: Self::FIRST }
    }
}

impl Iterator for QuickFirstBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (now * 2).min(Self::MAX);
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for QuickFirstBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// A resource of a Gatekeeper group. The plural is given, never guessed: Gatekeeper's plurals
/// are lower-cased kinds, not English plurals.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The object as JSON, with `apiVersion` and `kind` filled in: items of a list come without
/// them, and both policies and `data.inventory` key objects by them.
pub fn to_value(object: DynamicObject, resource: &ApiResource) -> Option<Value> {
    let mut value = serde_json::to_value(object).ok()?;
    let map = value.as_object_mut()?;
    for (key, want) in [
        ("apiVersion", resource.api_version.as_str()),
        ("kind", resource.kind.as_str()),
    ] {
        if map
            .get(key)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            map.insert(key.into(), Value::String(want.to_string()));
        }
    }
    Some(value)
}

/// Sends the changes of `api` into `tx` until `stop`; a failed watch is retried with backoff
/// and counted, and what was known stays meanwhile.
pub async fn run(
    api: Api<DynamicObject>,
    resource: ApiResource,
    config: watcher::Config,
    what: Watched,
    tx: mpsc::UnboundedSender<Change>,
    metrics: std::sync::Arc<Metrics>,
    stop: CancellationToken,
) {
    let label = match &what {
        Watched::Templates => "constrainttemplates".to_string(),
        Watched::Expansions => "expansiontemplates".to_string(),
        Watched::ConstraintCrds => "customresourcedefinitions".to_string(),
        Watched::Constraints(kind) => kind.to_lowercase(),
        Watched::GatekeeperConfig => "configs".to_string(),
        Watched::SyncSets => "syncsets".to_string(),
        Watched::Synced(gvk) => format!("synced {}/{}", gvk.api_version(), gvk.kind),
    };
    let mut events = watch_stream(api, config)
        .backoff(QuickFirstBackoff::default())
        .boxed();
    let mut listing: Vec<Value> = Vec::new();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.next() => event,
        };
        let Some(event) = event else { return };
        let change = match event {
            Err(error) => {
                tracing::warn!(%error, resource = label, "watch failed; retrying");
                metrics.watch_restarted(&label);
                continue;
            }
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(object)) => {
                listing.extend(to_value(object, &resource));
                continue;
            }
            Ok(Event::InitDone) => Change::Listed(what.clone(), std::mem::take(&mut listing)),
            Ok(Event::Apply(object)) => match to_value(object, &resource) {
                Some(value) => Change::Applied(what.clone(), value),
                None => continue,
            },
            Ok(Event::Delete(object)) => match to_value(object, &resource) {
                Some(value) => Change::Deleted(what.clone(), value),
                None => continue,
            },
        };
        if tx.send(change).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff as _;

    #[test]
    fn backoff_starts_quick_doubles_to_30s_and_resets() {
        let mut b = QuickFirstBackoff::default();
        let steps: Vec<u64> = b.by_ref().take(4).map(|d| d.as_millis() as u64).collect();
        assert_eq!(steps, [100, 200, 400, 800]);
        assert_eq!(b.by_ref().nth(20), Some(Duration::from_secs(30)));
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }
}
