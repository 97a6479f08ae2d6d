//! Reading the state's persistent collections without trusting the lengths the input
//! declares. imbl's own serde visitors preallocate whatever length a MessagePack map or array
//! claims (imbl 7.0.2), so seven bytes claiming four billion apps abort a master that decodes
//! them from a snapshot. These go through std's collections instead, whose serde impls
//! never preallocate more than a small bound, then into the persistent ones.
//!
//! May depend on: nothing but serde and imbl.

use imbl::{OrdMap, Vector};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// An `OrdMap` field (`#[serde(deserialize_with = "cautious::ord_map")]`).
pub(super) fn ord_map<'de, D, K, V>(deserializer: D) -> Result<OrdMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + Clone,
    V: Deserialize<'de> + Clone,
{
    Ok(BTreeMap::<K, V>::deserialize(deserializer)?
        .into_iter()
        .collect())
}

/// An `OrdMap` of `Vector`s.
pub(super) fn ord_map_of_vectors<'de, D, K, V>(
    deserializer: D,
) -> Result<OrdMap<K, Vector<V>>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + Clone,
    V: Deserialize<'de> + Clone,
{
    Ok(BTreeMap::<K, Vec<V>>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, values)| (key, values.into_iter().collect::<Vector<V>>()))
        .collect())
}
