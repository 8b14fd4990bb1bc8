//! The one way policies reach the admission handler: sources (the embedded pack, files, the
//! cluster) each send their current documents through a [`Feed`]; the publisher ingests them
//! (compile, keeping each object's last good version), swaps the new set in with one pointer
//! store, updates the metrics and tells readiness.
//!
//! Sources rank in the order they were registered: a later one wins an object of the same
//! kind and name. Readiness waits until every registered source has delivered once; after
//! that the server stays ready, whatever later updates bring (they are reported instead).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tollgate_engine::ingest::{Ingested, Ingester, Layer};
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::{PolicyError, PolicySet, Sources};

use super::state::{AppState, PolicyReport};

/// What a source has now.
#[derive(Debug, Clone, Default)]
pub struct SourceSnapshot {
    /// Its documents (templates, constraints, ExpansionTemplates; other objects are ignored).
    pub documents: Sources,
    /// Problems reading them (a file that does not parse), reported beside ingestion's.
    pub problems: Vec<String>,
    /// Counts up with each snapshot a source sends, so it can tell when one was published.
    pub revision: u64,
}

/// A problem with one object, as the cluster's status objects report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProblem {
    /// The source that gave the object.
    pub source: String,
    /// `ConstraintTemplate`, a constraint kind or `ExpansionTemplate`.
    pub kind: String,
    /// Its `metadata.name`.
    pub name: String,
    /// Gatekeeper's error code: `ingest_error` for Rego, `create_error` for the rest.
    pub code: &'static str,
    /// The whole message.
    pub message: String,
    /// Where in the object, when the error says (`spec.targets[0].rego:3:7`).
    pub location: Option<String>,
    /// A previous version of the object is still enforced.
    pub kept_last_good: bool,
    /// The source whose object of the same kind and name is enforced instead of this one.
    pub shadowed_by: Option<String>,
    /// Where the object was read (file and document, or the cluster object).
    pub origin: String,
}

impl ObjectProblem {
    fn new(source: &str, error: &PolicyError, kept_last_good: bool) -> Option<Self> {
        let subject = error.subject()?;
        let (code, location) = match error {
            PolicyError::Rego { field, message, .. } => {
                ("ingest_error", rego_location(field, message))
            }
            _ => ("create_error", None),
        };
        // The object is the status's own: its origin would only repeat it.
        let message = error.to_string();
        let message = message
            .strip_prefix(&format!("{subject}: "))
            .unwrap_or(&message)
            .to_string();
        Some(ObjectProblem {
            source: source.to_string(),
            kind: subject.kind.clone(),
            name: subject.name.clone(),
            code,
            message,
            location,
            kept_last_good,
            origin: subject.origin.to_string(),
            shadowed_by: match error {
                PolicyError::Shadowed { by_source, .. } => Some(by_source.clone()),
                _ => None,
            },
        })
    }
}

/// regorus points at `<file>.rego:<line>:<column>`; the status names the template's field.
fn rego_location(field: &str, message: &str) -> Option<String> {
    let at = message.find("--> ")? + 4;
    let rest = &message[at..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let mut parts = rest[..end].rsplitn(3, ':');
    let column: u32 = parts.next()?.parse().ok()?;
    let line: u32 = parts.next()?.parse().ok()?;
    Some(format!("{field}:{line}:{column}"))
}

/// What one publication was made of and what came of it: the cluster's status writer reads it.
#[derive(Debug)]
pub struct Outcome {
    /// The published set.
    pub set: Arc<PolicySet>,
    /// Each source's snapshot that went into it, by source name.
    pub sources: Vec<(String, Arc<SourceSnapshot>)>,
    /// The problems of single objects.
    pub problems: Vec<ObjectProblem>,
}

/// A source's line to the publisher.
#[derive(Debug, Clone)]
pub struct Feed {
    rank: usize,
    tx: mpsc::UnboundedSender<(usize, SourceSnapshot)>,
}

impl Feed {
    /// Replaces everything this source had given before.
    pub fn send(&self, snapshot: SourceSnapshot) {
        // The publisher only stops at shutdown; a send after that has nobody to tell.
        let _ = self.tx.send((self.rank, snapshot));
    }
}

/// Ingests what the sources send and publishes the result.
#[derive(Debug)]
pub struct Publisher {
    state: AppState,
    options: BuildOptions,
    ingester: Ingester,
    names: Vec<String>,
    tx: mpsc::UnboundedSender<(usize, SourceSnapshot)>,
    rx: mpsc::UnboundedReceiver<(usize, SourceSnapshot)>,
    outcomes: watch::Sender<Option<Arc<Outcome>>>,
}

impl Publisher {
    /// A publisher into `state`, compiling with `options`.
    pub fn new(state: AppState, options: BuildOptions) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Publisher {
            state,
            options,
            ingester: Ingester::new(options),
            names: Vec::new(),
            tx,
            rx,
            outcomes: watch::Sender::new(None),
        }
    }

    /// Each publication's [`Outcome`], newest only.
    pub fn outcomes(&self) -> watch::Receiver<Option<Arc<Outcome>>> {
        self.outcomes.subscribe()
    }

    /// Registers a source ranking above every source registered before it; readiness waits
    /// for its first snapshot.
    pub fn feed(&mut self, name: &str) -> Feed {
        self.names.push(name.to_string());
        self.state.policy_report.store(Arc::new(PolicyReport {
            waiting_for: self.names.clone(),
            problems: Vec::new(),
        }));
        Feed {
            rank: self.names.len() - 1,
            tx: self.tx.clone(),
        }
    }

    /// Publishes each change the sources send until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let Publisher {
            state,
            options,
            mut ingester,
            names,
            tx,
            mut rx,
            outcomes,
        } = self;
        drop(tx);
        let mut latest: Vec<Option<Arc<SourceSnapshot>>> = vec![None; names.len()];
        let mut published_once = false;
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return,
                update = rx.recv() => update,
            };
            let Some((rank, snapshot)) = first else {
                return;
            };
            latest[rank] = Some(Arc::new(snapshot));
            // Updates that queued up meanwhile are published together.
            while let Ok((rank, snapshot)) = rx.try_recv() {
                latest[rank] = Some(Arc::new(snapshot));
            }
            let sources: Vec<(String, Arc<SourceSnapshot>)> = names
                .iter()
                .zip(&latest)
                .filter_map(|(n, s)| s.as_ref().map(|s| (n.clone(), Arc::clone(s))))
                .collect();
            let layers = sources.clone();
            let started = Instant::now();
            let ingested = tokio::task::spawn_blocking(move || {
                let borrowed: Vec<Layer<'_>> = layers
                    .iter()
                    .map(|(source, s)| Layer {
                        source,
                        documents: &s.documents,
                    })
                    .collect();
                let ingested = ingester.ingest(&borrowed);
                let read_problems: Vec<String> = layers
                    .iter()
                    .flat_map(|(source, s)| {
                        s.problems.iter().map(move |p| format!("[{source}] {p}"))
                    })
                    .collect();
                (ingester, ingested, read_problems)
            })
            .await;
            let (returned, ingested, read_problems) = match ingested {
                Ok(done) => done,
                Err(error) => {
                    // A panic while compiling is a bug: the published set stays, and the next
                    // update starts from a fresh memory of last good versions.
                    tracing::error!(%error, "policy ingestion failed; the published set stays");
                    ingester = Ingester::new(options);
                    continue;
                }
            };
            ingester = returned;
            let waiting_for: Vec<String> = names
                .iter()
                .zip(&latest)
                .filter(|(_, s)| s.is_none())
                .map(|(n, _)| n.clone())
                .collect();
            let is_reload = published_once;
            published_once |= waiting_for.is_empty();
            let outcome = publish(
                &state,
                ingested,
                read_problems,
                waiting_for,
                is_reload,
                started,
                sources,
            );
            outcomes.send_replace(Some(Arc::new(outcome)));
        }
    }
}

fn publish(
    state: &AppState,
    ingested: Ingested,
    read_problems: Vec<String>,
    waiting_for: Vec<String>,
    is_reload: bool,
    started: Instant,
    sources: Vec<(String, Arc<SourceSnapshot>)>,
) -> Outcome {
    let Ingested {
        set,
        problems,
        compiled,
        warnings,
    } = ingested;
    for warning in &warnings {
        tracing::warn!(%warning, "policy warning");
    }
    let metrics = &state.metrics;
    for c in &compiled {
        metrics.template_ingested(c.ok, c.duration);
        // Where a cold start's time goes: a precompiled template loads in microseconds, one
        // compiled at start in milliseconds.
        tracing::debug!(
            template = %c.name,
            elapsed_us = c.duration.as_micros() as u64,
            "template ingested"
        );
    }
    let failed_templates = problems
        .iter()
        .filter(|p| p.error.is_about_template())
        .count();
    metrics.set_policies(&set, failed_templates);
    let kept = problems.iter().filter(|p| p.kept_last_good).count();
    let lines: Vec<String> = read_problems
        .into_iter()
        .chain(problems.iter().map(|p| format!("[{}] {p}", p.source)))
        .collect();
    metrics.set_problems(kept, lines.len() - kept);
    for line in &lines {
        tracing::error!(problem = %line, "policy not enforced as written");
    }
    if is_reload {
        metrics.policy_reloaded(lines.is_empty());
    }
    let templates: Vec<&str> = set.templates().map(|t| t.kind()).collect();
    let constraints: Vec<String> = set
        .constraints()
        .iter()
        .map(|c| format!("{}/{}", c.constraint.kind, c.constraint.name))
        .collect();
    tracing::info!(
        ?templates,
        ?constraints,
        problems = lines.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "policy set published"
    );
    let object_problems = problems
        .iter()
        .filter_map(|p| ObjectProblem::new(&p.source, &p.error, p.kept_last_good))
        .collect();
    let set = Arc::new(set);
    state.policies.store(Some(Arc::clone(&set)));
    state.policy_report.store(Arc::new(PolicyReport {
        waiting_for,
        problems: lines,
    }));
    Outcome {
        set,
        sources,
        problems: object_problems,
    }
}
