//! Loading policy sets from disk (or the embedded pack) and reloading them when files change.
//!
//! Files are polled by content, not watched: a ConfigMap volume updates by swapping the `..data`
//! symlink, which inotify on the file paths does not see. A changed set is compiled aside and
//! published with one pointer swap; a set that fails keeps the previous one live.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate_engine::expand::builtin_templates;
use tollgate_engine::load::policy_files;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::rvm::Evaluator;
use tollgate_engine::{PolicySet, Sources};

use super::metrics::Metrics;
use super::state::AppState;
use crate::pack;

/// How a set is built.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// Paths; empty = the embedded pack.
    pub paths: Vec<PathBuf>,
    /// Load the embedded pack too when `paths` is not empty.
    pub with_embedded_pack: bool,
    /// Add the built-in workload expansion.
    pub expand: bool,
    /// Per-evaluation budget.
    pub eval_budget: Duration,
    /// Which evaluator runs the templates.
    pub evaluator: Evaluator,
}

/// The content of every policy file, to detect changes.
type Fingerprint = Vec<(PathBuf, Vec<u8>)>;

impl PolicySource {
    /// Reads and compiles the policies. The error text names every problem with its location.
    pub fn load(&self) -> Result<PolicySet, String> {
        let mut sources = if self.paths.is_empty() || self.with_embedded_pack {
            pack::sources().map_err(|e| e.to_string())?
        } else {
            Sources::default()
        };
        for path in &self.paths {
            sources.add_path(path).map_err(|e| e.to_string())?;
        }
        let options = BuildOptions {
            accept_unknown_actions: false,
            eval_budget: Some(self.eval_budget),
            evaluator: self.evaluator,
        };
        let set = PolicySet::build_with(&sources, options).map_err(|e| e.to_string())?;
        Ok(if self.expand {
            set.with_expansions(builtin_templates())
        } else {
            set
        })
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut out = Vec::new();
        for path in &self.paths {
            match policy_files(path) {
                Ok(files) => {
                    for f in files {
                        let content = std::fs::read(&f).unwrap_or_default();
                        out.push((f, content));
                    }
                }
                Err(_) => out.push((path.clone(), Vec::new())),
            }
        }
        out
    }

    /// Polls the files every `interval` and swaps in each new set that compiles, until
    /// `shutdown`. The embedded pack never changes, so nothing is polled for it.
    pub async fn watch(self, state: AppState, interval: Duration, shutdown: CancellationToken) {
        if self.paths.is_empty() {
            return;
        }
        let mut last = self.fingerprint();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let source = self.clone();
            let polled = tokio::task::spawn_blocking(move || {
                let now = source.fingerprint();
                (source, now)
            })
            .await;
            let Ok((source, now)) = polled else { continue };
            if now == last {
                continue;
            }
            last = now;
            let compiled = tokio::task::spawn_blocking(move || source.load()).await;
            match compiled {
                Ok(Ok(set)) => {
                    state.metrics.set_policies(&set, 0);
                    tracing::info!(
                        templates = set.templates().count(),
                        constraints = set.constraints().len(),
                        "policy set reloaded"
                    );
                    state.policies.store(Arc::new(set));
                    Metrics::reload(&state.metrics.policy_reloads, true);
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "policy reload rejected; the previous set stays active");
                    Metrics::reload(&state.metrics.policy_reloads, false);
                }
                Err(error) => {
                    tracing::error!(%error, "policy reload task failed");
                    Metrics::reload(&state.metrics.policy_reloads, false);
                }
            }
        }
    }
}
