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
    /// Each source's newest snapshot, by rank; `None` until it sends its first.
    latest: Vec<Option<Arc<SourceSnapshot>>>,
    /// Whether a set with every source in it was published: later publications are reloads.
    published_once: bool,
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
            latest: Vec::new(),
            published_once: false,
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
        self.latest.push(None);
        self.state.policy_report.store(Arc::new(PolicyReport {
            waiting_for: self.names.clone(),
            problems: Vec::new(),
        }));
        Feed {
            rank: self.names.len() - 1,
            tx: self.tx.clone(),
        }
    }

    /// Publishes, on the calling thread, what the sources have sent so far, as [`Publisher::run`]
    /// would on the blocking pool. The embedded pack and the files are read on the thread that
    /// starts the server, before anything is served; compiling them there too spares every
    /// start a thread of the blocking pool (a new thread, with its own allocator arena, on a
    /// node that may have one core). A source that sends later (the cluster) is published by
    /// [`Publisher::run`].
    pub fn publish_sent(&mut self) {
        if !self.take_queued() {
            return;
        }
        let sources = self.sources();
        let started = Instant::now();
        let (ingested, read_problems) = ingest(&mut self.ingester, &sources);
        self.publish(ingested, read_problems, started, sources);
    }

    /// Publishes each change the sources send until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // The feeds alone keep the channel open: when every source is gone, so is the loop.
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return,
                update = self.rx.recv() => update,
            };
            let Some((rank, snapshot)) = first else {
                return;
            };
            if let Some(slot) = self.latest.get_mut(rank) {
                *slot = Some(Arc::new(snapshot));
            }
            // Updates that queued up meanwhile are published together.
            self.take_queued();
            let sources = self.sources();
            let layers = sources.clone();
            let started = Instant::now();
            let mut ingester = std::mem::replace(&mut self.ingester, Ingester::new(self.options));
            let ingested = tokio::task::spawn_blocking(move || {
                let (ingested, read_problems) = ingest(&mut ingester, &layers);
                (ingester, ingested, read_problems)
            })
            .await;
            let (returned, ingested, read_problems) = match ingested {
                Ok(done) => done,
                Err(error) => {
                    // A panic while compiling is a bug: the published set stays, and the next
                    // update starts from a fresh memory of last good versions (the one left in
                    // its place).
                    tracing::error!(%error, "policy ingestion failed; the published set stays");
                    continue;
                }
            };
            self.ingester = returned;
            self.publish(ingested, read_problems, started, sources);
        }
    }

    /// Files every update queued so far under its source; whether there was one.
    fn take_queued(&mut self) -> bool {
        let mut any = false;
        while let Ok((rank, snapshot)) = self.rx.try_recv() {
            if let Some(slot) = self.latest.get_mut(rank) {
                *slot = Some(Arc::new(snapshot));
            }
            any = true;
        }
        any
    }

    /// The sources that have sent a snapshot, lowest rank first, with it.
    fn sources(&self) -> Vec<(String, Arc<SourceSnapshot>)> {
        self.names
            .iter()
            .zip(&self.latest)
            .filter_map(|(n, s)| s.as_ref().map(|s| (n.clone(), Arc::clone(s))))
            .collect()
    }

    fn publish(
        &mut self,
        ingested: Ingested,
        read_problems: Vec<String>,
        started: Instant,
        sources: Vec<(String, Arc<SourceSnapshot>)>,
    ) {
        let waiting_for: Vec<String> = self
            .names
            .iter()
            .zip(&self.latest)
            .filter(|(_, s)| s.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        let is_reload = self.published_once;
        self.published_once |= waiting_for.is_empty();
        let outcome = publish(
            &self.state,
            ingested,
            read_problems,
            waiting_for,
            is_reload,
            started,
            sources,
        );
        self.outcomes.send_replace(Some(Arc::new(outcome)));
    }
}

/// Ingests the sources' documents, ranked as given, and lists the problems they had reading
/// them.
fn ingest(
    ingester: &mut Ingester,
    sources: &[(String, Arc<SourceSnapshot>)],
) -> (Ingested, Vec<String>) {
    let layers: Vec<Layer<'_>> = sources
        .iter()
        .map(|(source, s)| Layer {
            source,
            documents: &s.documents,
        })
        .collect();
    let ingested = ingester.ingest(&layers);
    let read_problems = sources
        .iter()
        .flat_map(|(source, s)| s.problems.iter().map(move |p| format!("[{source}] {p}")))
        .collect();
    (ingested, read_problems)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests assert by unwrapping

    use super::*;
    use crate::serve::config::{EvaluateOn, Exemptions};
    use crate::serve::metrics::Metrics;
    use crate::serve::state::AdmissionSettings;

    const TEMPLATE: &str = "../constraints/k8srequiredruntimeclass/template.yaml";
    const CONSTRAINT: &str =
        "../constraints/k8srequiredruntimeclass/samples/tracker/constraint.yaml";

    fn state() -> AppState {
        AppState::new(
            AdmissionSettings {
                exemptions: Exemptions::default(),
                fail_open: false,
                expand: true,
                evaluate_on: EvaluateOn::RequestTaskThenPool,
                inline_budget: std::time::Duration::from_millis(5),
            },
            Arc::new(Metrics::new()),
        )
    }

    fn snapshot(path: &str) -> SourceSnapshot {
        let mut documents = Sources::default();
        documents.add_path(std::path::Path::new(path)).unwrap();
        SourceSnapshot {
            documents,
            problems: Vec::new(),
            revision: 0,
        }
    }

    fn published(state: &AppState) -> Option<(usize, usize)> {
        let set = state.policies.load_full()?;
        Some((set.templates().count(), set.constraints().len()))
    }

    #[test]
    fn what_the_sources_sent_is_published_on_the_calling_thread() {
        let state = state();
        let mut publisher = Publisher::new(state.clone(), BuildOptions::default());
        let pack = publisher.feed("pack");
        let files = publisher.feed("files");
        publisher.publish_sent();
        assert_eq!(published(&state), None, "nothing sent: nothing published");

        // No async runtime exists in this test: a hand-off to the blocking pool would panic.
        pack.send(snapshot(TEMPLATE));
        publisher.publish_sent();
        assert_eq!(published(&state), Some((1, 0)));
        assert_eq!(state.policy_report.load().waiting_for, ["files"]);

        files.send(snapshot(CONSTRAINT));
        publisher.publish_sent();
        assert_eq!(published(&state), Some((1, 1)));
        let report = state.policy_report.load();
        assert!(report.waiting_for.is_empty(), "{:?}", report.waiting_for);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[tokio::test]
    async fn the_loop_publishes_what_arrived_before_it_with_what_comes_later() {
        let state = state();
        let mut publisher = Publisher::new(state.clone(), BuildOptions::default());
        let pack = publisher.feed("pack");
        let files = publisher.feed("files");
        let mut outcomes = publisher.outcomes();
        pack.send(snapshot(TEMPLATE));
        publisher.publish_sent();
        assert_eq!(published(&state), Some((1, 0)));
        outcomes.borrow_and_update();

        let shutdown = CancellationToken::new();
        let task = tokio::spawn(publisher.run(shutdown.clone()));
        files.send(snapshot(CONSTRAINT));
        outcomes.changed().await.unwrap();
        assert_eq!(
            published(&state),
            Some((1, 1)),
            "the pack's template is in the set"
        );
        assert!(state.policy_report.load().waiting_for.is_empty());

        // The sources gone, the loop ends.
        drop((pack, files));
        task.await.unwrap();
    }
}
