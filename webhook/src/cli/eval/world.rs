//! What the inputs say about how the other inputs are reviewed, found before any is reviewed:
//! policies among them (ConstraintTemplates, constraints, ExpansionTemplates), the
//! CustomResourceDefinitions that decide where their objects are placed, and the Namespaces
//! that `namespaceSelector` and `input.review.namespaceObject` read.
//!
//! Found without parsing most documents: a document is parsed only when its text could hold one
//! of these (see [`may_shape_the_world`]). Owns that scan only; placing and reviewing are
//! elsewhere.

use std::io::Read;

use tollgate_engine::Sources;
use tollgate_engine::data::is_namespace;
use tollgate_engine::document::{Document, DocumentError};

use super::inputs::{self, Input};
use super::scope::is_definition;

/// The documents among the inputs that shape every review, in input order.
#[derive(Debug, Default)]
pub struct World {
    /// Templates, constraints and ExpansionTemplates.
    pub policies: Sources,
    /// CustomResourceDefinitions.
    pub definitions: Vec<Document>,
    /// Namespace objects.
    pub namespaces: Vec<Document>,
}

/// Reads every input, one document at a time, for the documents that shape the world. Fails
/// on the first input that cannot be read or document that cannot be parsed (of those it
/// parses).
pub fn scan(inputs: &[Input]) -> Result<World, DocumentError> {
    let mut world = World::default();
    for input in inputs {
        if !may_hold_the_world(input)? {
            continue;
        }
        let stream = inputs::stream(input)?;
        let file = stream.file().to_string();
        for unparsed in stream {
            let unparsed = unparsed?;
            if !may_shape_the_world(unparsed.text()) {
                continue;
            }
            let mut found = Sources::default();
            found.add(unparsed.parse(&file)?);
            world.policies.templates.append(&mut found.templates);
            world.policies.constraints.append(&mut found.constraints);
            world.policies.expansions.append(&mut found.expansions);
            for doc in found.objects {
                if is_definition(&doc.value) {
                    world.definitions.push(doc);
                } else if is_namespace(&doc.value) {
                    world.namespaces.push(doc);
                }
            }
        }
    }
    Ok(world)
}

/// False when no document of `input` can shape the world: none of the words
/// [`may_shape_the_world`] looks for is anywhere in its bytes. Looked for a chunk at a time, so
/// that the input is never held whole, and without splitting it into documents: for a file of
/// objects only (an audit's worth of Pods) this is most of what the scan costs.
fn may_hold_the_world(input: &Input) -> Result<bool, DocumentError> {
    if matches!(input, Input::Stdin) {
        return Ok(true);
    }
    let finders: Vec<memchr::memmem::Finder<'_>> =
        WORDS.iter().map(memchr::memmem::Finder::new).collect();
    // The end of a chunk is kept, so that a word across two chunks is found in the second.
    let overlap = WORDS.iter().map(|w| w.len()).max().unwrap_or(1) - 1;
    let (file, mut reader) = inputs::open(input)?;
    let mut chunk = Vec::with_capacity(CHUNK + overlap);
    loop {
        chunk.drain(..chunk.len().saturating_sub(overlap));
        let read = (&mut reader)
            .take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .map_err(|error| DocumentError::Read {
                file: file.clone(),
                error,
            })?;
        if finders.iter().any(|f| f.find(&chunk).is_some()) {
            return Ok(true);
        }
        if read == 0 {
            return Ok(false);
        }
    }
}

/// Bytes read at a time by [`may_hold_the_world`].
const CHUNK: usize = 1 << 20;

/// What a document that can shape the world has in its text ([`may_shape_the_world`]).
const WORDS: [&str; 5] = [
    "gatekeeper.sh",
    "CustomResourceDefinition",
    "Namespace",
    "\\",
    "!",
];

/// False only when a document's text cannot parse to a policy (its `apiVersion` group ends in
/// `gatekeeper.sh`), a CustomResourceDefinition or a Namespace: none of those words is in it,
/// and nothing could spell them otherwise: no escape (`\`, in YAML double quotes or JSON), no
/// tag (`!`, such as `!!binary`). Folded lines join with a space, and an alias or merge key
/// copies a node written out in the same document.
fn may_shape_the_world(text: &str) -> bool {
    WORDS.iter().any(|word| text.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_is_found_anywhere_in_an_input_even_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let filler = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ns}\n---\n";
        let mut text = filler.repeat(CHUNK / filler.len() + 1);
        text.truncate(CHUNK - 4);
        let path = dir.path().join("pods.yaml");
        std::fs::write(&path, &text).unwrap();
        assert!(!may_hold_the_world(&Input::File(path.clone())).unwrap());
        for word in WORDS {
            let path = dir.path().join("world.yaml");
            std::fs::write(&path, format!("{text}{word}\n")).unwrap();
            assert!(may_hold_the_world(&Input::File(path)).unwrap(), "{word}");
        }
        let missing = Input::File(dir.path().join("missing.yaml"));
        assert!(matches!(
            may_hold_the_world(&missing),
            Err(DocumentError::Read { .. })
        ));
    }

    #[test]
    fn only_documents_that_could_shape_the_world_are_parsed() {
        for text in [
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sX\n",
            "kind: \"Name\\x73pace\"\n",
            "kind: !!binary TmFtZXNwYWNl\n",
            "{\"kind\": \"Namesp\\u0061ce\"}",
        ] {
            assert!(may_shape_the_world(text), "{text}");
        }
        for text in [
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ns}\n",
            "kind: >\n  Name\n  space\n",
        ] {
            assert!(!may_shape_the_world(text), "{text}");
        }
    }
}
