//! Starts a private `redis-server` on a free loopback port for tests (being written).
