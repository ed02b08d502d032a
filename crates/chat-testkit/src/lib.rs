//! Contract suites generic over hihichat's ports, run against every adapter,
//! and fixtures for tests (builders, a private `redis-server`).
//!
//! Each port has a module of `pub async fn` test bodies, generic over the
//! store, and a macro that expands to one `#[test]` per body:
//!
//! ```text
//! async fn fresh() -> std::sync::Arc<chat_memory::MemoryStore> {
//!     std::sync::Arc::new(chat_memory::MemoryStore::new())
//! }
//! chat_testkit::storage_tests!(fresh);
//! chat_testkit::room_events_tests!(fresh);
//! chat_testkit::presence_tests!(fresh);
//! ```
//!
//! The factory is called once per test and MUST return a fresh, empty store.
//! Tests create the users they mention before using them, so stores that
//! enforce foreign keys pass too.

pub mod audit_log;
pub mod bot_corpus;
pub mod fixtures;
pub mod health_check;
pub mod message_log;
pub mod presence;
pub mod redis_server;
pub mod room_events;
pub mod room_repository;
pub mod runtime;
pub mod session_store;
pub mod user_repository;

/// Expands a list of test bodies of one suite module into a module of
/// `#[test]` functions. Not for direct use: call the per-port macros.
///
/// Each test runs on its own runtime from [`runtime`] (`current` or `multi`),
/// so the calling crate needs no tokio dev-dependency. The generated module
/// does `use super::*`, so `$factory` may be any function name visible in
/// the calling module, or an absolute path (`crate::…`, `::other_crate::…`).
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_suite {
    ($factory:path, $suite:ident { $($flavor:ident $test:ident),* $(,)? }) => {
        #[allow(unused_imports, clippy::unwrap_used)]
        mod $suite {
            use super::*;
            $(
                #[test]
                fn $test() {
                    $crate::runtime::$flavor(async {
                        $crate::$suite::$test($factory().await).await;
                    });
                }
            )*
        }
    };
}

/// The [`UserRepository`](chat_domain::UserRepository) contract, as a module
/// `user_repository` of `#[test]`s.
///
/// `$factory`: a path to an `async fn() -> std::sync::Arc<S>` returning a fresh,
/// empty store; `S: UserRepository`. The calling crate needs no tokio
/// dependency: each test builds its own runtime.
#[macro_export]
macro_rules! user_repository_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, user_repository {
            current a_created_user_reads_back_with_its_hash_and_permissions,
            current a_taken_username_is_a_conflict_and_changes_nothing,
            current an_unknown_user_reads_as_none,
            current users_are_listed_sorted_by_name,
            current unicode_usernames_round_trip,
            current set_password_hash_replaces_the_hash,
            current set_permissions_replaces_the_set,
            current a_deleted_user_is_gone_and_a_missing_one_is_not_found,
            current a_deleted_name_can_be_taken_again,
            current the_builtin_permissions_are_always_defined,
            current a_defined_permission_is_listed_and_a_repeat_is_a_conflict,
        });
    };
}

/// The [`SessionStore`](chat_domain::SessionStore) contract, as a module
/// `session_store` of `#[test]`s. `S: SessionStore + UserRepository`;
/// otherwise as [`user_repository_tests!`].
#[macro_export]
macro_rules! session_store_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, session_store {
            current a_session_reads_back_until_it_expires,
            current an_unknown_session_reads_as_none,
            current deleting_a_session_ends_only_that_one,
            current deleting_a_users_sessions_keeps_the_one_asked_for,
            current deleting_a_user_ends_their_sessions,
            current sessions_of_unicode_users_round_trip,
        });
    };
}

/// The [`RoomRepository`](chat_domain::RoomRepository) contract, as a module
/// `room_repository` of `#[test]`s. `S: RoomRepository + UserRepository`;
/// otherwise as [`user_repository_tests!`].
#[macro_export]
macro_rules! room_repository_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, room_repository {
            current a_created_room_reads_back_with_its_members,
            current a_taken_room_name_is_a_conflict_and_changes_nothing,
            current a_missing_room_is_not_found,
            current rooms_are_listed_sorted_without_direct_rooms,
            current rooms_of_a_user_include_direct_rooms,
            current members_are_added_and_removed_once,
            current members_are_sorted_by_name,
            current member_counts_agree_with_member_count,
            current a_ban_is_set_and_lifted,
            current a_mute_holds_until_it_ends_or_is_lifted,
            current mutes_are_sorted_by_user,
            current deleting_a_user_removes_memberships_mutes_and_bans,
            current slow_mode_is_set_per_room_and_lifted,
            current access_agrees_with_the_single_reads,
        });
    };
}

/// The [`MessageLog`](chat_domain::MessageLog) contract, as a module
/// `message_log` of `#[test]`s; the concurrency tests run on a two-worker
/// multi-thread runtime. `S: MessageLog + RoomRepository + UserRepository`;
/// otherwise as [`user_repository_tests!`].
#[macro_export]
macro_rules! message_log_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, message_log {
            current appends_get_seqs_from_one_without_gaps,
            current every_field_of_a_message_is_kept,
            current seqs_are_counted_per_room,
            current last_seqs_agree_with_last_seq,
            multi concurrent_appends_get_every_seq_exactly_once,
            current a_repeated_cid_returns_the_first_message_and_stores_nothing,
            current the_same_cid_from_another_sender_or_room_is_a_new_message,
            multi concurrent_retries_of_one_cid_store_it_once,
            current appending_to_a_missing_room_is_not_found_and_stores_nothing,
            current a_missing_or_empty_room_reads_as_empty,
            current before_pages_backwards_with_more,
            current after_pages_forwards_with_more,
            current retention_deletes_old_messages_in_batches_everywhere,
            current retention_keeps_messages_newer_than_the_cutoff,
            current unicode_messages_round_trip_exactly,
            current a_deleted_users_messages_stay_in_history,
            current direct_rooms_have_their_own_history,
            current access_with_page_agrees_with_access_and_before,
        });
    };
}

/// The [`BotCorpus`](chat_domain::BotCorpus) contract, as a module
/// `bot_corpus` of `#[test]`s. `S: BotCorpus`; otherwise as
/// [`user_repository_tests!`].
#[macro_export]
macro_rules! bot_corpus_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, bot_corpus {
            current an_empty_corpus_has_no_pairs,
            current identical_pairs_are_stored_once_in_insertion_order,
            current pairs_differing_in_one_half_are_both_kept,
            current unicode_pairs_round_trip_exactly,
        });
    };
}

/// The [`AuditLog`](chat_domain::AuditLog) contract, as a module
/// `audit_log` of `#[test]`s. `S: AuditLog`; otherwise as
/// [`user_repository_tests!`].
#[macro_export]
macro_rules! audit_log_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, audit_log {
            current an_empty_trail_reads_as_empty,
            current entries_read_back_newest_first_up_to_the_limit,
            current the_order_is_the_order_of_recording_not_of_timestamps,
            current every_action_and_field_round_trips_exactly,
            current a_longer_trail_is_kept_whole,
        });
    };
}

/// The [`RoomEvents`](chat_domain::RoomEvents) contract, as a module
/// `room_events` of `#[test]`s. `S: RoomEvents`; otherwise as
/// [`user_repository_tests!`]. The lag test publishes
/// [`room_events::LAG_BURST`] events to a subscriber that is not reading.
#[macro_export]
macro_rules! room_events_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, room_events {
            current a_subscriber_gets_its_rooms_events_in_order,
            current every_subscriber_of_a_room_gets_every_event,
            current publishing_without_subscribers_is_fine,
            current every_room_event_arrives_intact,
            current user_events_reach_only_that_user,
            current a_user_topic_and_a_room_topic_of_one_name_are_apart,
            current a_subscriber_that_falls_behind_is_told_it_lagged,
        });
    };
}

/// The [`Presence`](chat_domain::Presence) contract, as a module `presence`
/// of `#[test]`s. `S: Presence`; otherwise as [`user_repository_tests!`].
#[macro_export]
macro_rules! presence_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, presence {
            current the_first_connection_brings_a_user_online,
            current online_lists_users_with_live_connections_sorted,
            current removing_the_last_connection_takes_a_user_offline,
            current removing_ignores_expired_connections,
            current expiry_reports_each_user_that_went_offline_once,
            current removing_after_expiry_reported_the_leave_takes_nobody_offline,
        });
    };
}

/// The [`HealthCheck`](chat_domain::HealthCheck) contract, as a module
/// `health_check` of `#[test]`s. `S: HealthCheck`; otherwise as
/// [`user_repository_tests!`].
#[macro_export]
macro_rules! health_check_tests {
    ($factory:path) => {
        $crate::__contract_suite!($factory, health_check {
            current a_reachable_store_is_healthy,
        });
    };
}

/// Every storage contract at once: users, sessions, rooms, the message log,
/// the bot corpus and the health check (not the bus or presence, which some
/// deployments keep elsewhere). `S` implements all six ports. The audit
/// trail has its own macro, [`audit_log_tests!`], invoked beside this one.
#[macro_export]
macro_rules! storage_tests {
    ($factory:path) => {
        $crate::user_repository_tests!($factory);
        $crate::session_store_tests!($factory);
        $crate::room_repository_tests!($factory);
        $crate::message_log_tests!($factory);
        $crate::bot_corpus_tests!($factory);
        $crate::health_check_tests!($factory);
    };
}
