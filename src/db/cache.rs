//! Read-through copies of data that changes only together with a stamp on its parent row.
//!
//! Some data is written once and then read over and over: an imported spec's tags, endpoints,
//! parameters and bodies change only when the document is imported again, and a run's
//! scenarios and stages only when the run itself is written. Every such write also changes a
//! stamp on the parent row, in the same transaction (`openapi_spec.revision`,
//! `test_history.updated_at`). A reader has the parent row anyway, so it can ask for the copy
//! under the row's stamp: the same stamp means the data is still what it was when it was
//! copied, whichever replica wrote last; another stamp is a miss, and the data is read again.
//!
//! Why a copy stored under stamp `s` is never older than `s`: the stamp is read before the
//! data (the parent row comes first), so the data is at least as new as the stamp it is
//! filed under. A copy filed under an old stamp is simply never asked for again, and leaves
//! when the budget needs room.
//!
//! The budget is counted in rows (`READ_CACHE_ROWS`; 0 turns every cache off). When an entry
//! does not fit, the least recently used ones leave. Lookups take a short lock and clone an
//! `Arc`; eviction scans the entries, which happens only when a new entry is filed.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard},
};

/// Copies of `V` by parent id `K`, each valid for one stamp `S` of the parent.
pub struct StampedCache<K, S, V> {
    budget: usize,
    inner: Mutex<Entries<K, S, V>>,
}

struct Entries<K, S, V> {
    map: HashMap<K, Entry<S, V>>,
    /// Sum of the entries' weights.
    weight: usize,
    /// Bumped by every hit, to order entries by recent use.
    clock: u64,
}

struct Entry<S, V> {
    stamp: S,
    value: Arc<V>,
    weight: usize,
    used: u64,
}

impl<K: Eq + Hash + Copy, S: PartialEq, V> StampedCache<K, S, V> {
    /// A cache holding at most `budget` rows' worth of entries; 0 keeps nothing.
    pub fn new(budget: usize) -> Self {
        Self { budget, inner: Mutex::new(Entries { map: HashMap::new(), weight: 0, clock: 0 }) }
    }

    /// Whether anything is ever kept.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// The copy of `key`'s data, if one was filed under `stamp`.
    pub fn get(&self, key: &K, stamp: &S) -> Option<Arc<V>> {
        if !self.enabled() {
            return None;
        }
        let mut entries = self.lock();
        entries.clock += 1;
        let clock = entries.clock;
        let entry = entries.map.get_mut(key).filter(|entry| entry.stamp == *stamp)?;
        entry.used = clock;
        Some(entry.value.clone())
    }

    /// Files `value` as `key`'s data at `stamp`, `weight` rows large, making room if needed;
    /// an entry larger than the whole budget is not kept.
    pub fn put(&self, key: K, stamp: S, value: Arc<V>, weight: usize) {
        let weight = weight.max(1);
        if weight > self.budget {
            return;
        }
        let mut entries = self.lock();
        entries.clock += 1;
        let used = entries.clock;
        if let Some(old) = entries.map.insert(key, Entry { stamp, value, weight, used }) {
            entries.weight -= old.weight;
        }
        entries.weight += weight;
        while entries.weight > self.budget {
            let Some(oldest) = entries.map.iter().min_by_key(|(_, entry)| entry.used).map(|(key, _)| *key)
            else {
                break;
            };
            if let Some(gone) = entries.map.remove(&oldest) {
                entries.weight -= gone.weight;
            }
        }
    }

    /// Rows' worth of entries held now.
    pub fn weight(&self) -> usize {
        self.lock().weight
    }

    fn lock(&self) -> MutexGuard<'_, Entries<K, S, V>> {
        // A panic while holding the lock cannot leave the map half-changed in a way that
        // matters: at worst `weight` is off until the entries turn over.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_answers_only_under_its_own_stamp() {
        let cache = StampedCache::new(10);
        cache.put(1, 7, Arc::new("seven"), 1);

        assert_eq!(cache.get(&1, &7).as_deref(), Some(&"seven"));
        assert_eq!(cache.get(&1, &8), None, "a newer stamp is a miss");
        assert_eq!(cache.get(&2, &7), None);
    }

    #[test]
    fn a_new_stamp_replaces_the_old_copy() {
        let cache = StampedCache::new(10);
        cache.put(1, 1, Arc::new("old"), 4);
        cache.put(1, 2, Arc::new("new"), 3);

        assert_eq!(cache.get(&1, &1), None);
        assert_eq!(cache.get(&1, &2).as_deref(), Some(&"new"));
        assert_eq!(cache.weight(), 3);
    }

    #[test]
    fn the_least_recently_used_leave_when_the_budget_is_full() {
        let cache = StampedCache::new(10);
        cache.put(1, 0, Arc::new(1), 4);
        cache.put(2, 0, Arc::new(2), 4);
        cache.get(&1, &0);
        cache.put(3, 0, Arc::new(3), 4);

        assert!(cache.get(&1, &0).is_some(), "used most recently");
        assert!(cache.get(&2, &0).is_none(), "the least recently used left");
        assert!(cache.get(&3, &0).is_some());
        assert_eq!(cache.weight(), 8);
    }

    #[test]
    fn nothing_is_kept_without_a_budget_or_beyond_it() {
        let off = StampedCache::new(0);
        off.put(1, 0, Arc::new(1), 1);
        assert!(!off.enabled());
        assert!(off.get(&1, &0).is_none());

        let small = StampedCache::new(5);
        small.put(1, 0, Arc::new(1), 6);
        assert!(small.get(&1, &0).is_none());
        assert_eq!(small.weight(), 0);
    }
}
