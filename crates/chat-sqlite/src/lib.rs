//! chat-sqlite: placeholder until this crate is written.
