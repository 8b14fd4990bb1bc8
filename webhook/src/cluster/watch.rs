//! One kube-runtime watcher per resource, turned into the few changes the policy source
//! needs: a complete list (after the first list and after every relist), one object applied,
//! one object deleted. A relist replaces what was known, so objects deleted while the API
//! server was out of reach are forgotten once it is back (Gatekeeper ignores those).

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
}

/// What a watch saw.
#[derive(Debug)]
pub enum Change {
    /// Everything there is now (first list, or a relist).
    Listed(Watched, Vec<Value>),
    /// One object created or changed.
    Applied(Watched, Value),
    /// One object deleted.
    Deleted(Watched, String),
}

/// A resource of a Gatekeeper group. The plural is given, never guessed: Gatekeeper's plurals
/// are lower-cased kinds, not English plurals.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn to_value(object: DynamicObject) -> Option<Value> {
    serde_json::to_value(object).ok()
}

/// Sends the changes of `api` into `tx` until `stop`; a failed watch is retried with backoff
/// and counted, and what was known stays meanwhile.
pub async fn run(
    api: Api<DynamicObject>,
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
    };
    let mut events = watch_stream(api, config).default_backoff().boxed();
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
                listing.extend(to_value(object));
                continue;
            }
            Ok(Event::InitDone) => Change::Listed(what.clone(), std::mem::take(&mut listing)),
            Ok(Event::Apply(object)) => match to_value(object) {
                Some(value) => Change::Applied(what.clone(), value),
                None => continue,
            },
            Ok(Event::Delete(object)) => {
                Change::Deleted(what.clone(), object.metadata.name.unwrap_or_default())
            }
        };
        if tx.send(change).is_err() {
            return;
        }
    }
}
