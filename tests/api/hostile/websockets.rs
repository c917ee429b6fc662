//! Hostile input: websockets.
