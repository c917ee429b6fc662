//! Level batching for one request's relation loads.
//!
//! Every field that asks for a relation (an endpoint's parameters, a tag's endpoints, …)
//! registers its key in the relation's open batch. The first asker then lets the request run
//! on until no sibling adds a key any more — all fields of that level have asked — closes the
//! batch and fetches it with one statement; every asker reads its own rows from the shared
//! answer. So a query costs one statement per relation and level, whatever the data size, and
//! a key costs two short locks and a lookup instead of a channel and a timer per key.

use std::{
    any::{Any, TypeId},
    collections::{HashMap, HashSet},
    hash::Hash,
    sync::{Arc, Mutex},
};

use async_graphql::dataloader::Loader;
use tokio::sync::OnceCell;

type Answer<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

/// Keys gathered for one fetch, and its answer once fetched.
struct Batch<K, V> {
    keys: Mutex<Vec<K>>,
    answer: OnceCell<Answer<K, V>>,
}

/// The batch of one relation that still takes keys.
struct Relation<K, V> {
    open: Mutex<Option<Arc<Batch<K, V>>>>,
}

/// Batches a request's loads per relation (per key type) and level.
pub struct Batcher<L> {
    loader: L,
    /// Largest number of keys in one fetch: below SQLite's bound-parameter limit.
    max_keys: usize,
    relations: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl<L: Send + Sync + 'static> Batcher<L> {
    pub fn new(loader: L, max_keys: usize) -> Self {
        Self { loader, max_keys, relations: Mutex::default() }
    }

    fn relation<K, V>(&self) -> Arc<Relation<K, V>>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let mut relations = self.relations.lock().expect("batcher lock");
        let relation = relations
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Arc::new(Relation::<K, V> { open: Mutex::new(None) }))
            .clone();
        relation.downcast::<Relation<K, V>>().expect("a key type always loads the same value type")
    }

    /// The value for `key`, or None when there is none.
    pub async fn load_one<K>(&self, key: K) -> Result<Option<L::Value>, async_graphql::Error>
    where
        L: Loader<K, Error = async_graphql::Error>,
        K: Send + Sync + Hash + Eq + Clone + 'static,
    {
        let mut values = self.load_many([key.clone()]).await?;
        Ok(values.remove(&key))
    }

    /// The values for `keys` that exist.
    pub async fn load_many<K, I>(&self, keys: I) -> Result<HashMap<K, L::Value>, async_graphql::Error>
    where
        L: Loader<K, Error = async_graphql::Error>,
        K: Send + Sync + Hash + Eq + Clone + 'static,
        I: IntoIterator<Item = K>,
    {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let relation = self.relation::<K, L::Value>();
        let batch = {
            let mut open = relation.open.lock().expect("relation lock");
            let batch = open
                .get_or_insert_with(|| Arc::new(Batch { keys: Mutex::default(), answer: OnceCell::new() }))
                .clone();
            batch.keys.lock().expect("batch lock").extend(keys.iter().cloned());
            batch
        };
        let answer = batch.answer.get_or_init(|| self.fetch(&relation, &batch)).await;
        match answer {
            Ok(values) => {
                Ok(keys.into_iter().filter_map(|k| values.get(&k).cloned().map(|v| (k, v))).collect())
            }
            Err(err) => Err(err.clone()),
        }
    }

    /// Waits for the level to finish asking, closes the batch, and fetches it.
    async fn fetch<K>(
        &self,
        relation: &Relation<K, L::Value>,
        batch: &Arc<Batch<K, L::Value>>,
    ) -> Answer<K, L::Value>
    where
        L: Loader<K, Error = async_graphql::Error>,
        K: Send + Sync + Hash + Eq + Clone + 'static,
    {
        // Each yield lets the request poll the siblings that have not asked yet (a large list is
        // polled in slices); when a whole round adds no key, the level is complete.
        loop {
            let before = batch.keys.lock().expect("batch lock").len();
            tokio::task::yield_now().await;
            if batch.keys.lock().expect("batch lock").len() == before {
                break;
            }
        }
        let keys = {
            // Closing and taking happen under the relation's lock, which every asker holds while
            // adding its key: no key can land in a batch after it was taken.
            let mut open = relation.open.lock().expect("relation lock");
            if open.as_ref().is_some_and(|current| Arc::ptr_eq(current, batch)) {
                *open = None;
            }
            std::mem::take(&mut *batch.keys.lock().expect("batch lock"))
        };
        let mut seen = HashSet::with_capacity(keys.len());
        let unique: Vec<K> = keys.into_iter().filter(|key| seen.insert(key.clone())).collect();
        let mut values = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(self.max_keys) {
            values.extend(self.loader.load(chunk).await?);
        }
        Ok(values)
    }
}
