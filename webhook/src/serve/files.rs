//! The files source: `--policies` paths, polled by content and sent to the publisher whenever
//! anything changed.
//!
//! Files are polled, not watched: a ConfigMap volume updates by swapping the `..data` symlink,
//! which inotify on the file paths does not see. A file is the unit of reading: one that no
//! longer parses keeps its last good content in use (reported); one that never parsed is left
//! out (reported); the other files are unaffected. What the documents then hold is the
//! publisher's business (per template, see `tollgate_engine::ingest`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate_engine::Sources;
use tollgate_engine::document::{self, Document};
use tollgate_engine::load::policy_files;

use super::publisher::{Feed, SourceSnapshot};

/// What one file held when it was last read.
#[derive(Debug)]
struct FileState {
    content: Vec<u8>,
    parsed: Result<Vec<Document>, String>,
    last_good: Option<Vec<Document>>,
}

/// Reads the policy paths, remembering each file's content and last good parse.
#[derive(Debug)]
pub struct PolicyFiles {
    paths: Vec<PathBuf>,
    files: BTreeMap<PathBuf, FileState>,
    listing_errors: Vec<String>,
}

impl PolicyFiles {
    /// Nothing read yet.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        PolicyFiles {
            paths,
            files: BTreeMap::new(),
            listing_errors: Vec::new(),
        }
    }

    /// Reads every file again; `true` when anything differs from the last read.
    pub fn refresh(&mut self) -> bool {
        let mut listing_errors = Vec::new();
        let mut present = std::collections::BTreeSet::new();
        for path in &self.paths {
            match policy_files(path) {
                Ok(files) => present.extend(files),
                Err(e) => listing_errors.push(e.to_string()),
            }
        }
        let mut changed = listing_errors != self.listing_errors;
        self.listing_errors = listing_errors;
        let before = self.files.len();
        self.files.retain(|f, _| present.contains(f));
        changed |= self.files.len() != before;
        for file in present {
            let content = match std::fs::read(&file) {
                Ok(c) => c,
                // Gone between listing and reading (a ConfigMap update): the next poll sees it.
                Err(_) => continue,
            };
            if self.files.get(&file).is_some_and(|s| s.content == content) {
                continue;
            }
            changed = true;
            let name = file.display().to_string();
            let parsed = String::from_utf8(content.clone())
                .map_err(|e| format!("{name}: not UTF-8 text: {e}"))
                .and_then(|text| document::parse_stream(&name, &text).map_err(|e| e.to_string()));
            let last_good = match (&parsed, self.files.remove(&file)) {
                (Ok(docs), _) => Some(docs.clone()),
                (Err(_), Some(old)) => old.last_good,
                (Err(_), None) => None,
            };
            self.files.insert(
                file,
                FileState {
                    content,
                    parsed,
                    last_good,
                },
            );
        }
        changed
    }

    /// The documents to ingest, and the reading problems.
    pub fn snapshot(&self) -> SourceSnapshot {
        let mut documents = Sources::default();
        let mut problems = self.listing_errors.clone();
        for state in self.files.values() {
            match (&state.parsed, &state.last_good) {
                (Ok(docs), _) => documents.add(docs.clone()),
                (Err(e), Some(good)) => {
                    problems.push(format!("{e} (the file's last good content stays in use)"));
                    documents.add(good.clone());
                }
                (Err(e), None) => problems.push(e.clone()),
            }
        }
        SourceSnapshot {
            documents,
            problems,
            revision: 0,
        }
    }

    /// Reads the files once and sends what they hold: the first snapshot, which readiness
    /// waits for. Called on the thread that starts the server, before anything is served, as
    /// the embedded pack is read: a thread of the blocking pool (a new thread, with its own
    /// allocator arena, on a node that may have one core) would cost more than the read.
    pub fn first_read(mut self, feed: &Feed) -> Self {
        self.refresh();
        feed.send(self.snapshot());
        self
    }

    /// Polls every `interval` and sends the files' documents again after every change, until
    /// `shutdown`.
    pub async fn watch(mut self, feed: Feed, interval: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let polled = tokio::task::spawn_blocking(move || {
                let changed = self.refresh();
                (self, changed)
            })
            .await;
            let Ok((files, changed)) = polled else {
                tracing::error!("policy file polling failed; it stops here");
                return;
            };
            self = files;
            if changed {
                feed.send(self.snapshot());
            }
        }
    }
}
