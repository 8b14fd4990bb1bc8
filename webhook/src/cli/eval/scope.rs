//! Which namespace `eval` reviews an object in when the object names none: kubectl's rule, so
//! that a manifest is judged as the API server would see it after `kubectl apply -f`.
//!
//! - An object of a namespaced kind without `metadata.namespace` is placed in `--namespace`,
//!   else in `default` (kubectl's fallback; tollgate does not read a kubeconfig).
//! - An object of a cluster-scoped kind (a Namespace, a ClusterRole, ...) never gets one.
//! - With an explicit `--namespace`, an object naming another namespace is an error, as
//!   kubectl refuses it.
//!
//! Without an API server to ask, scope comes from a table of the built-in cluster-scoped kinds,
//! from CustomResourceDefinitions among the inputs (`spec.scope`), and is namespaced for any
//! other kind. `gator test` differs: it reviews every object without a namespace, cluster-scoped
//! ones included, as if in a namespace named `""`, so `namespaces: [x]` never matches them.
//! Owns placement only; it never evaluates.

use std::collections::HashMap;

use serde_json::{Value, json};
use tollgate_engine::document::Document;
use tollgate_engine::gatekeeper::{Gvk, object_namespace};

use super::inputs::InputError;

/// kubectl's namespace when none is given and no kubeconfig says otherwise.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `(group, kind)` of the kinds Kubernetes 1.30 serves cluster-scoped (`kubectl api-resources
/// --namespaced=false`), and Gatekeeper's; `*` stands for every kind of the group.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "ComponentStatus"),
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("authentication.k8s.io", "SelfSubjectReview"),
    ("authentication.k8s.io", "TokenReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("templates.gatekeeper.sh", "*"),
    ("constraints.gatekeeper.sh", "*"),
    ("mutations.gatekeeper.sh", "*"),
    ("expansion.gatekeeper.sh", "*"),
    ("externaldata.gatekeeper.sh", "*"),
    ("syncset.gatekeeper.sh", "*"),
];

/// Whether an object is a CustomResourceDefinition, whose scope [`Placement`] follows.
pub fn is_definition(object: &Value) -> bool {
    let gvk = Gvk::of(object);
    gvk.group == "apiextensions.k8s.io" && gvk.kind == "CustomResourceDefinition"
}

/// Where objects without a namespace go.
#[derive(Debug)]
pub struct Placement {
    namespace: String,
    explicit: bool,
    /// `(group, kind)` → namespaced, from CustomResourceDefinitions among the inputs.
    custom: HashMap<(String, String), bool>,
}

impl Placement {
    /// `--namespace` (or kubectl's default), with the scopes of the CustomResourceDefinitions
    /// among `objects`.
    pub fn new(namespace: Option<String>, objects: &[Document]) -> Placement {
        let custom = objects
            .iter()
            .filter_map(|doc| {
                if !is_definition(&doc.value) {
                    return None;
                }
                let spec = doc.value.get("spec")?;
                let text = |p: &str| spec.pointer(p).and_then(Value::as_str).map(str::to_string);
                Some((
                    (text("/group")?, text("/names/kind")?),
                    text("/scope")? != "Cluster",
                ))
            })
            .collect();
        Placement {
            explicit: namespace.is_some(),
            namespace: namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            custom,
        }
    }

    /// True when objects of this kind live in a namespace.
    pub fn is_namespaced(&self, gvk: &Gvk) -> bool {
        if let Some(namespaced) = self.custom.get(&(gvk.group.clone(), gvk.kind.clone())) {
            return *namespaced;
        }
        !CLUSTER_SCOPED
            .iter()
            .any(|(group, kind)| *group == gvk.group && (*kind == "*" || *kind == gvk.kind))
    }

    /// Puts a namespaced object without a namespace in the placement's namespace.
    pub fn place(&self, doc: &mut Document) -> Result<(), InputError> {
        if !self.is_namespaced(&Gvk::of(&doc.value)) {
            return Ok(());
        }
        let found = object_namespace(&doc.value);
        if !found.is_empty() {
            if self.explicit && found != self.namespace {
                return Err(InputError::NamespaceMismatch {
                    origin: doc.origin.clone(),
                    found: found.to_string(),
                    given: self.namespace.clone(),
                });
            }
            return Ok(());
        }
        // Inputs::subject checked that the document is a mapping and `metadata` one when set.
        if let Value::Object(object) = &mut doc.value {
            let metadata = object.entry("metadata").or_insert_with(|| json!({}));
            if metadata.is_null() {
                *metadata = json!({});
            }
            if let Value::Object(metadata) = metadata {
                metadata.insert("namespace".into(), json!(self.namespace));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_engine::document::Origin;

    fn doc(value: Value) -> Document {
        Document {
            origin: Origin {
                file: "f.yaml".into(),
                document: 1,
                line: 1,
            },
            value,
            text: None,
        }
    }

    #[test]
    fn custom_resource_definitions_among_the_inputs_decide_their_kinds_scope() {
        let crd = |kind: &str, scope: &str| {
            doc(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "spec": {"group": "example.com", "names": {"kind": kind}, "scope": scope}}),
            )
        };
        let placement = Placement::new(
            None,
            &[crd("Fleet", "Cluster"), crd("Tracker", "Namespaced")],
        );
        let gvk = |kind: &str| Gvk::of(&json!({"apiVersion": "example.com/v1", "kind": kind}));
        assert!(!placement.is_namespaced(&gvk("Fleet")));
        assert!(placement.is_namespaced(&gvk("Tracker")));
        // Not described by any input: namespaced, as most custom resources are.
        assert!(placement.is_namespaced(&gvk("Other")));
        assert!(!placement.is_namespaced(&Gvk::of(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"})
        )));
    }

    #[test]
    fn metadata_is_created_for_an_object_without_it() {
        let mut pod = doc(json!({"apiVersion": "v1", "kind": "Pod"}));
        Placement::new(Some("logistics".into()), &[])
            .place(&mut pod)
            .unwrap();
        assert_eq!(pod.value["metadata"]["namespace"], "logistics");
    }
}
