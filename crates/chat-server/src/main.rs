//! The hihichat binary.
fn main() {}
