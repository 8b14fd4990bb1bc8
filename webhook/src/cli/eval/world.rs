//! What the inputs say about how the other inputs are reviewed, found before any is reviewed:
//! policies among them (ConstraintTemplates, constraints, ExpansionTemplates), the
//! CustomResourceDefinitions that decide where their objects are placed, and the Namespaces
//! that `namespaceSelector` and `input.review.namespaceObject` read.
//!
//! Found without parsing most documents: a document is parsed only when its text could hold one
//! of these (see [`may_shape_the_world`]). Owns that scan only; placing and reviewing are
//! elsewhere.

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

/// False only when a document's text cannot parse to a policy (its `apiVersion` group ends in
/// `gatekeeper.sh`), a CustomResourceDefinition or a Namespace: none of those words is in it,
/// and nothing could spell them otherwise: no escape (`\`, in YAML double quotes or JSON), no
/// tag (`!`, such as `!!binary`). Folded lines join with a space, and an alias or merge key
/// copies a node written out in the same document.
fn may_shape_the_world(text: &str) -> bool {
    [
        "gatekeeper.sh",
        "CustomResourceDefinition",
        "Namespace",
        "\\",
        "!",
    ]
    .iter()
    .any(|word| text.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

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
