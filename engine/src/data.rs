//! The data a review may read besides its own request: Namespace objects (for
//! `namespaceSelector` and `input.review.namespaceObject`) and `data.inventory`, in
//! Gatekeeper's layout.
//!
//! A [`DataSnapshot`] is immutable once a reader holds it: a writer clones it (cheap: the maps
//! are split into shards behind `Arc`s), changes the clone and publishes that. A change copies
//! one shard of one map, never the whole data, so a watch event costs the same with ten objects
//! or ten thousand. The webhook swaps snapshots as the cluster changes; `eval` and `verify`
//! build one from their input files.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use regorus::Value as RegoValue;
use serde_json::Value;

use crate::gatekeeper::{Gvk, object_name, object_namespace};

/// Shards per map: enough that one shard of a 10,000-object inventory is about 40 objects.
const SHARDS: usize = 256;

/// A map split into shards by key hash, each shard shared until written. Cloning copies the
/// shard pointers only.
#[derive(Clone)]
struct ShardedMap<K, V> {
    shards: Vec<Arc<BTreeMap<K, Arc<V>>>>,
    len: usize,
}

impl<K: Ord + Hash + Clone, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS).map(|_| Arc::new(BTreeMap::new())).collect(),
            len: 0,
        }
    }
}

impl<K: Ord + Hash + Clone, V> ShardedMap<K, V> {
    fn shard_of(key: &K) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % SHARDS as u64) as usize
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.shards[Self::shard_of(key)].get(key).map(Arc::as_ref)
    }

    /// The one shard `key` lives in, copied first if a reader still shares it.
    fn write(&mut self, key: &K) -> &mut BTreeMap<K, Arc<V>> {
        Arc::make_mut(&mut self.shards[Self::shard_of(key)])
    }

    fn insert(&mut self, key: K, value: V) {
        if self.write(&key).insert(key, Arc::new(value)).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, key: &K) -> bool {
        if self.get(key).is_none() {
            return false;
        }
        self.len -= 1;
        self.write(key).remove(key);
        true
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, v)| (k, v.as_ref())))
    }
}

/// Where an object sits in `data.inventory`: `cluster/<gv>/<kind>/<name>` when `namespace` is
/// empty, else `namespace/<namespace>/<gv>/<kind>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InventoryKey {
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// `group/version`, or `version` for the core group.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
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

impl InventoryKey {
    /// The key of an object, or why it has none.
    pub fn of(object: &Value) -> Result<InventoryKey, InventoryError> {
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
        Ok(InventoryKey {
            namespace: object_namespace(object).to_string(),
            api_version: gvk.api_version(),
            kind: gvk.kind,
            name,
        })
    }
}

/// An object ready to be synced: converted once to the evaluator's value type, which is
/// reference-counted, so putting it in a snapshot, and in the `data.inventory` tree, copies a
/// pointer and not the object (10,000 synced Pods are held once, not three times).
#[derive(Debug, Clone)]
pub struct SyncedObject {
    key: InventoryKey,
    value: RegoValue,
    /// The object as JSON too when it is a Namespace (matching reads Namespaces as JSON).
    namespace: Option<Value>,
}

impl SyncedObject {
    /// Converts an object for [`DataSnapshot::sync_object`].
    pub fn new(object: Value) -> Result<SyncedObject, InventoryError> {
        let key = InventoryKey::of(&object)?;
        let namespace = is_namespace(&object).then(|| object.clone());
        Ok(SyncedObject {
            key,
            value: RegoValue::from(object),
            namespace,
        })
    }

    /// Where it sits in `data.inventory`.
    pub fn key(&self) -> &InventoryKey {
        &self.key
    }
}

/// Namespaces and synced objects, as one immutable value per reader.
#[derive(Clone, Default)]
pub struct DataSnapshot {
    namespaces: ShardedMap<String, Value>,
    inventory: ShardedMap<InventoryKey, RegoValue>,
    /// `data.inventory` as regorus reads it, built on first use by a template that reads it;
    /// every change starts a new, empty cell.
    inventory_value: Arc<OnceLock<RegoValue>>,
}

impl std::fmt::Debug for DataSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSnapshot")
            .field("namespaces", &self.namespaces.len)
            .field("inventory", &self.inventory.len)
            .finish()
    }
}

/// Whether an object is a Namespace (core group), which [`DataSnapshot::sync`] also records for
/// matching.
pub fn is_namespace(object: &Value) -> bool {
    let gvk = Gvk::of(object);
    gvk.kind == "Namespace" && gvk.group.is_empty()
}

impl DataSnapshot {
    /// Syncs an object into `data.inventory`; a Namespace is also known for matching.
    pub fn sync(&mut self, object: Value) -> Result<(), InventoryError> {
        self.sync_object(&SyncedObject::new(object)?);
        Ok(())
    }

    /// Syncs a converted object (a pointer copy).
    pub fn sync_object(&mut self, object: &SyncedObject) {
        if let Some(namespace) = &object.namespace {
            self.namespaces
                .insert(object.key.name.clone(), namespace.clone());
        }
        self.inventory
            .insert(object.key.clone(), object.value.clone());
        self.inventory_value = Arc::default();
    }

    /// Removes a synced object (and, for a Namespace, what matching knows of it).
    pub fn unsync(&mut self, key: &InventoryKey) {
        if key.kind == "Namespace" && key.api_version == "v1" {
            self.namespaces.remove(&key.name);
        }
        if self.inventory.remove(key) {
            self.inventory_value = Arc::default();
        }
    }

    /// Records a Namespace for matching only (not in `data.inventory`).
    pub fn set_namespace(&mut self, namespace: Value) {
        let name = object_name(&namespace).to_string();
        self.namespaces.insert(name, namespace);
    }

    /// Forgets a Namespace recorded with [`Self::set_namespace`].
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(&name.to_string());
    }

    /// The Namespace object of that name, when known.
    pub fn namespace(&self, name: &str) -> Option<&Value> {
        self.namespaces.get(&name.to_string())
    }

    /// The names of the known Namespaces.
    pub fn namespace_names(&self) -> impl Iterator<Item = &str> {
        self.namespaces.iter().map(|(name, _)| name.as_str())
    }

    /// How many Namespaces are known.
    pub fn namespace_count(&self) -> usize {
        self.namespaces.len
    }

    /// How many objects are synced into `data.inventory`.
    pub fn inventory_len(&self) -> usize {
        self.inventory.len
    }

    /// `data.inventory`, or `None` when nothing is synced (templates then see the empty
    /// inventory they were compiled with). Built once per snapshot, on first use.
    pub fn inventory(&self) -> Option<&RegoValue> {
        if self.inventory.len == 0 {
            return None;
        }
        Some(self.inventory_value.get_or_init(|| self.build_inventory()))
    }

    /// `data.inventory` as JSON, in Gatekeeper's layout.
    pub fn inventory_json(&self) -> Value {
        match self.inventory() {
            Some(tree) => serde_json::to_value(tree).unwrap_or_default(),
            None => serde_json::json!({"cluster": {}, "namespace": {}}),
        }
    }

    /// `{"cluster": {gv: {kind: {name: obj}}}, "namespace": {ns: {gv: {kind: {name: obj}}}}}`,
    /// every object shared with the snapshot's map rather than copied.
    fn build_inventory(&self) -> RegoValue {
        type Level = BTreeMap<RegoValue, RegoValue>;
        type Tree = BTreeMap<String, BTreeMap<String, Level>>;
        let mut cluster: Tree = BTreeMap::new();
        let mut namespace: BTreeMap<String, Tree> = BTreeMap::new();
        for (key, object) in self.inventory.iter() {
            let tree = if key.namespace.is_empty() {
                &mut cluster
            } else {
                namespace.entry(key.namespace.clone()).or_default()
            };
            tree.entry(key.api_version.clone())
                .or_default()
                .entry(key.kind.clone())
                .or_default()
                .insert(RegoValue::from(key.name.as_str()), object.clone());
        }
        let tree_value = |tree: Tree| -> RegoValue {
            let levels: Level = tree
                .into_iter()
                .map(|(gv, kinds)| {
                    let kinds: Level = kinds
                        .into_iter()
                        .map(|(kind, names)| {
                            (RegoValue::from(kind.as_str()), RegoValue::from(names))
                        })
                        .collect();
                    (RegoValue::from(gv.as_str()), RegoValue::from(kinds))
                })
                .collect();
            RegoValue::from(levels)
        };
        let namespaces: Level = namespace
            .into_iter()
            .map(|(ns, tree)| (RegoValue::from(ns.as_str()), tree_value(tree)))
            .collect();
        let mut root = Level::new();
        root.insert(RegoValue::from("cluster"), tree_value(cluster));
        root.insert(RegoValue::from("namespace"), RegoValue::from(namespaces));
        RegoValue::from(root)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn ns(name: &str, team: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": team}}})
    }

    #[test]
    fn a_reader_keeps_its_snapshot_while_the_writer_moves_on() {
        let mut writer = DataSnapshot::default();
        for i in 0..1000 {
            writer.set_namespace(ns(&format!("ns-{i}"), "a"));
        }
        let reader = writer.clone();
        writer.set_namespace(ns("ns-7", "b"));
        writer.remove_namespace("ns-8");
        assert_eq!(
            reader.namespace("ns-7").unwrap()["metadata"]["labels"]["team"],
            "a"
        );
        assert!(reader.namespace("ns-8").is_some());
        assert_eq!(
            writer.namespace("ns-7").unwrap()["metadata"]["labels"]["team"],
            "b"
        );
        assert!(writer.namespace("ns-8").is_none());
        assert_eq!(
            (reader.namespace_count(), writer.namespace_count()),
            (1000, 999)
        );
        // One change copies one shard: every other shard is still shared with the reader.
        let shared = reader
            .namespaces
            .shards
            .iter()
            .zip(writer.namespaces.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= SHARDS - 2, "{shared} shards shared");
    }

    #[test]
    fn inventory_uses_gatekeepers_layout_and_follows_changes() {
        let mut data = DataSnapshot::default();
        assert!(data.inventory().is_none());
        data.sync(ns("prod", "a")).unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "prod"}});
        data.sync(pod.clone()).unwrap();
        let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "prod"}});
        data.sync(ing).unwrap();
        let inv = data.inventory_json();
        assert_eq!(
            inv["cluster"]["v1"]["Namespace"]["prod"]["metadata"]["name"],
            "prod"
        );
        assert_eq!(inv["namespace"]["prod"]["v1"]["Pod"]["p"], pod);
        assert!(inv["namespace"]["prod"]["networking.k8s.io/v1"]["Ingress"]["i"].is_object());
        assert!(data.namespace("prod").is_some());
        let before = data.inventory().unwrap().clone();
        data.unsync(&InventoryKey::of(&pod).unwrap());
        data.unsync(&InventoryKey::of(&ns("prod", "a")).unwrap());
        assert!(data.namespace("prod").is_none());
        assert_ne!(&before, data.inventory().unwrap());
        assert_eq!(data.inventory_len(), 1);
        let missing = data.sync(json!({"kind": "Pod", "metadata": {"name": "x"}}));
        assert_eq!(
            missing.unwrap_err().to_string(),
            "unable to add object to data.inventory: resource x has no version"
        );
    }
}
