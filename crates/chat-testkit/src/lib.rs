//! Contract suites generic over hihichat's ports, run against every adapter,
//! and fixtures for tests (a private `redis-server`).

pub mod redis_server;
