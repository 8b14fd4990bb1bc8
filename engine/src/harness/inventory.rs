//! `data.inventory` in Gatekeeper's layout, built from objects.

use std::collections::BTreeMap;

use regorus::Value as RegoValue;
use serde_json::Value;

use crate::gatekeeper::{Gvk, object_name, object_namespace};

type ByGroupVersion = BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>;

/// Objects synced for referential templates, plus the Namespaces they include.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Inventory {
    cluster: ByGroupVersion,
    namespace: BTreeMap<String, ByGroupVersion>,
    #[serde(skip)]
    namespaces: BTreeMap<String, Value>,
}

/// An object that cannot be placed in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to add object to data.inventory: resource {name} has no {missing}")]
pub struct InventoryError {
    /// The object's name.
    pub name: String,
    /// `version` or `kind`.
    pub missing: &'static str,
}

impl Inventory {
    /// Adds an object at `cluster[gv][kind][name]` or `namespace[ns][gv][kind][name]`.
    pub fn add(&mut self, object: &Value) -> Result<(), InventoryError> {
        let gvk = Gvk::of(object);
        let name = object_name(object).to_string();
        if gvk.version.is_empty() {
            return Err(InventoryError {
                name,
                missing: "version",
            });
        }
        if gvk.kind.is_empty() {
            return Err(InventoryError {
                name,
                missing: "kind",
            });
        }
        let ns = object_namespace(object);
        let by_gv = if ns.is_empty() {
            &mut self.cluster
        } else {
            self.namespace.entry(ns.to_string()).or_default()
        };
        by_gv
            .entry(gvk.api_version())
            .or_default()
            .entry(gvk.kind.clone())
            .or_default()
            .insert(name.clone(), object.clone());
        if gvk.kind == "Namespace" && gvk.group.is_empty() {
            self.namespaces.insert(name, object.clone());
        }
        Ok(())
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.cluster.is_empty() && self.namespace.is_empty()
    }

    /// The Namespace objects, by name.
    pub fn namespaces(&self) -> &BTreeMap<String, Value> {
        &self.namespaces
    }

    /// The `data.inventory` document.
    pub fn to_rego(&self) -> RegoValue {
        RegoValue::from(serde_json::to_value(self).unwrap_or(Value::Null))
    }
}
