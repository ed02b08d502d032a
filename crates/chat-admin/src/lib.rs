//! chat-admin: placeholder until this crate is written.
