//! chat-testkit: placeholder until this crate is written.
