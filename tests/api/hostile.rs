//! Hostile input (issue 14): what an attacker with a VIEWER token, or none, can send, and that
//! the server answers each with an answer or a clear error in bounded time and memory, while
//! `/health` keeps answering.

mod documents;
mod imports;
mod launches;
mod pages;
mod websockets;
