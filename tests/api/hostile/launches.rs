//! Hostile input: launches.
