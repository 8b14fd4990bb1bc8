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

/// What one file held when it was last read: its documents as last parsed successfully, and
/// why its current content does not parse, if it does not.
#[derive(Debug)]
struct FileState {
    content: Vec<u8>,
    last_good: Option<Vec<Document>>,
    error: Option<String>,
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
            let parsed = std::str::from_utf8(&content)
                .map_err(|e| format!("{name}: not UTF-8 text: {e}"))
                .and_then(|text| document::parse_stream(&name, text).map_err(|e| e.to_string()));
            let (last_good, error) = match parsed {
                Ok(docs) => (Some(docs), None),
                Err(e) => (
                    self.files.remove(&file).and_then(|old| old.last_good),
                    Some(e),
                ),
            };
            self.files.insert(
                file,
                FileState {
                    content,
                    last_good,
                    error,
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
            if let Some(e) = &state.error {
                problems.push(match state.last_good {
                    Some(_) => format!("{e} (the file's last good content stays in use)"),
                    None => e.clone(),
                });
            }
            if let Some(docs) = &state.last_good {
                documents.add(docs.clone());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests assert by unwrapping

    use super::*;

    const GOOD: &str =
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sX\nmetadata:\n  name: a\n";
    const BROKEN: &str = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: [K8sX\n";

    fn names(snapshot: &SourceSnapshot) -> Vec<String> {
        snapshot
            .documents
            .constraints
            .iter()
            .map(|d| {
                d.value["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_file_that_stops_parsing_keeps_its_last_good_documents() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, GOOD).unwrap();
        let mut files = PolicyFiles::new(vec![dir.path().to_path_buf()]);
        assert!(files.refresh());
        let first = files.snapshot();
        assert_eq!(names(&first), ["a"]);
        assert!(first.problems.is_empty(), "{:?}", first.problems);
        assert!(!files.refresh(), "nothing changed");

        std::fs::write(&file, BROKEN).unwrap();
        assert!(files.refresh());
        let broken = files.snapshot();
        assert_eq!(names(&broken), ["a"], "the last good content stays in use");
        assert_eq!(broken.problems.len(), 1);
        assert!(
            broken.problems[0].contains("c.yaml")
                && broken.problems[0].ends_with("(the file's last good content stays in use)"),
            "{:?}",
            broken.problems
        );

        std::fs::write(&file, GOOD.replace("name: a", "name: b")).unwrap();
        assert!(files.refresh());
        let fixed = files.snapshot();
        assert_eq!(names(&fixed), ["b"]);
        assert!(fixed.problems.is_empty(), "{:?}", fixed.problems);
    }

    #[test]
    fn a_file_that_never_parsed_is_left_out_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), BROKEN).unwrap();
        std::fs::write(dir.path().join("latin1.yaml"), b"kind: caf\xe9\n").unwrap();
        let mut files = PolicyFiles::new(vec![dir.path().to_path_buf()]);
        files.refresh();
        let snapshot = files.snapshot();
        assert_eq!(names(&snapshot), ["a"]);
        assert_eq!(snapshot.problems.len(), 2, "{:?}", snapshot.problems);
        assert!(
            snapshot.problems[0].contains("bad.yaml"),
            "{:?}",
            snapshot.problems
        );
        assert!(
            snapshot.problems[1].contains("latin1.yaml: not UTF-8 text"),
            "{:?}",
            snapshot.problems
        );
        assert!(!snapshot.problems.iter().any(|p| p.contains("stays in use")));
    }
}
