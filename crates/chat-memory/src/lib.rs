//! chat-memory: placeholder until this crate is written.
