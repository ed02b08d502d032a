//! chat-redis: placeholder until this crate is written.
