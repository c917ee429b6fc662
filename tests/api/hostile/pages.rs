//! Hostile input: pages.
