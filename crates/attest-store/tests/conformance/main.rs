//! The security contract of `Store`, proved against every backend.
//!
//! Every contract in `conformance/suite.rs` runs once against SQLite (a temporary file) and once
//! against PostgreSQL (a fresh schema, dropped afterwards). Without `DATABASE_URL` the
//! PostgreSQL tests are reported as ignored, with the reason.
//!
//! ```sh
//! cargo test -p attest-store --test conformance
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p attest-store --test conformance
//! ```

mod harness;
mod suite;
mod suite_ext;
mod suite_revocation_list;
mod suite_secrets;
mod suite_tally;
mod suite_webhooks;

/// Generates one `#[tokio::test]` per contract and backend.
macro_rules! contract_tests {
    ($($contract:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $contract() {
                    crate::harness::on_sqlite(crate::suite::$contract).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(no_database_url, ignore = "PostgreSQL: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run")]
                async fn $contract() {
                    crate::harness::on_postgres(crate::suite::$contract).await;
                }
            )*
        }
    };
}

contract_tests!(
    ping_answers,
    inserting_an_existing_key_fails_and_keeps_the_original,
    device_key_round_trips_every_field,
    an_android_key_round_trips_without_a_counter,
    a_key_without_a_counter_commits_on_its_challenge_alone,
    unknown_key_is_absent,
    challenge_is_spent_once,
    concurrent_spends_let_exactly_one_caller_through,
    purge_forgets_only_challenges_expired_before_the_bound,
    malformed_nonces_are_refused,
    the_first_server_secret_wins,
    an_assertion_commits_challenge_counter_and_decision_together,
    concurrent_assertion_commits_with_the_same_counter_let_exactly_one_through,
    a_failed_assertion_commit_leaves_nothing_behind,
    a_failed_commit_among_concurrent_ones_fails_alone,
    purging_decisions_removes_the_oldest_with_their_reasons,
    settling_a_lineage_leaves_the_key_stored_last,
    concurrent_re_attestations_settle_on_one_active_key,
    a_key_context_counts_what_the_separate_queries_count,
    a_key_comes_with_its_device_history,
    counter_only_moves_forward,
    concurrent_advances_with_the_same_counter_let_exactly_one_through,
    concurrent_advances_with_different_counters_end_at_the_highest,
    revoked_key_cannot_advance,
    superseded_key_is_revoked_and_names_its_successor,
    only_an_active_key_is_linked_to_another_device_and_user,
    device_keys_list_in_stable_pages,
    decisions_round_trip_newest_first_and_filter,
    signing_keys_round_trip_and_retire,
    values_outside_their_domain_are_refused,
    a_supersession_link_and_a_revocation_reason_are_never_rewritten,
    keys_are_found_and_counted_by_device_user_address_environment_and_age,
    counter_anomalies_are_counted_without_touching_the_counter,
    only_idle_active_keys_expire,
    decisions_keep_their_reasons_and_factors_and_filter_by_would_deny_and_device,
    failures_are_counted_by_code_for_any_of_key_device_and_address,
    decisions_are_summarised_by_outcome_and_reason,
    webhook_deliveries_are_enqueued_once_per_event_and_endpoint,
    a_due_webhook_is_claimed_by_one_caller_until_its_lease_lapses,
    webhook_attempts_retry_deliver_or_give_up_and_finished_deliveries_stay,
    webhook_deliveries_list_newest_first_with_filters,
    the_write_probe_commits_again_and_again,
    only_retired_signing_keys_are_deleted_and_only_before_the_bound,
    text_with_a_nul_is_refused_as_invalid,
    identical_refusals_are_all_counted_and_only_a_sample_is_logged,
    a_proven_refusal_counts_against_its_device_and_windows_are_read_exactly,
    refusals_outside_their_domain_are_refused,
    instances_count_those_seen_recently,
    the_revocation_list_is_absent_until_saved_and_round_trips,
    an_older_revocation_list_never_replaces_a_newer_one,
    concurrent_revocation_list_saves_leave_the_newest,
    the_last_revocation_list_attempt_is_kept_apart_from_the_list,
    revocation_list_values_outside_their_domain_are_refused,
);
