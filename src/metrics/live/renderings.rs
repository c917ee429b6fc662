//! What the transports made of one snapshot, kept with it for every subscriber to share.
//!
//! A thousand dashboards watching a run mostly ask for the same thing: the same document,
//! operation and variables. Rendering the snapshot for each of them costs as much as all
//! the rest of delivering it; so the first subscriber that needs a rendering makes it and
//! leaves it here, keyed by what it asked, and the others asking alike take it from here.
//! The renderings go when the snapshot goes, at the next interval.

use std::{
    any::Any,
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
};

/// Renderings of one snapshot, by the request that asked for them. Not part of the
/// snapshot's value: a clone starts without any, and two snapshots compare equal
/// whatever their renderings.
#[derive(Default)]
pub struct Renderings(Mutex<HashMap<Arc<str>, Arc<dyn Any + Send + Sync>>>);

impl Renderings {
    /// The rendering made for `request`, if one was made and is a `T`.
    pub fn get<T: Any + Send + Sync>(&self, request: &str) -> Option<Arc<T>> {
        let renderings = self.0.lock().expect("renderings lock");
        renderings.get(request).cloned()?.downcast().ok()
    }

    /// Keeps `rendering` for the next subscribers asking `request`; the first one made wins.
    pub fn insert<T: Any + Send + Sync>(&self, request: Arc<str>, rendering: Arc<T>) {
        let mut renderings = self.0.lock().expect("renderings lock");
        renderings.entry(request).or_insert(rendering);
    }

    fn len(&self) -> usize {
        self.0.lock().map_or(0, |renderings| renderings.len())
    }
}

impl Clone for Renderings {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Renderings {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Renderings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Renderings({})", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_is_found_by_its_request_and_type_and_the_first_one_stays() {
        let renderings = Renderings::default();
        let request: Arc<str> = Arc::from("subscription { a }");

        renderings.insert(request.clone(), Arc::new(String::from("first")));
        renderings.insert(request.clone(), Arc::new(String::from("second")));

        assert_eq!(
            renderings.get::<String>("subscription { a }").as_deref().map(String::as_str),
            Some("first")
        );
        assert!(renderings.get::<String>("subscription { b }").is_none(), "another request");
        assert!(renderings.get::<u32>("subscription { a }").is_none(), "another type");
        assert_eq!(renderings.clone().get::<String>("subscription { a }"), None, "a clone starts empty");
    }
}
