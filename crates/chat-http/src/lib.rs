//! chat-http: placeholder until this crate is written.
