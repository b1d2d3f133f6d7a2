//! The one implementation of [`Store`](crate::Store) that both backends share.
//!
//! The statements are the same for SQLite and PostgreSQL (see [`crate::sql`]); only the pool
//! type differs. A generic implementation over `sqlx::Database` would need a dozen
//! higher-ranked `Encode`/`Decode` bounds repeated on every function, so a macro writes the
//! same body out for each concrete store instead. Each store type must have a field
//! `pool: sqlx::Pool<_>`.

macro_rules! impl_store_for {
    ($store:ty) => {
        impl $crate::Store for $store {
            async fn ping(&self) -> Result<(), $crate::StoreError> {
                sqlx::query($crate::sql::PING)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(())
            }

            async fn spend_challenge(
                &self,
                challenge: $crate::SpentChallenge<'_>,
            ) -> Result<bool, $crate::StoreError> {
                $crate::backend::check_nonce(challenge.nonce)?;
                let done = sqlx::query($crate::sql::SPEND_CHALLENGE)
                    .bind(challenge.nonce)
                    .bind($crate::rows::unix(challenge.expires_at))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn purge_spent_challenges(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query($crate::sql::PURGE_SPENT_CHALLENGES)
                    .bind($crate::rows::unix(before))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn server_secret(
                &self,
                name: &str,
                candidate: &[u8],
                now: time::OffsetDateTime,
            ) -> Result<Vec<u8>, $crate::StoreError> {
                $crate::text::check(&[("name", Some(name))])?;
                if candidate.len() < 32 {
                    return Err($crate::StoreError::Invalid(format!(
                        "a server secret of {} bytes (at least 32)",
                        candidate.len()
                    )));
                }
                let secret = $crate::sealing::SecretName::ServerSecret(name);
                sqlx::query($crate::sql::INSERT_SERVER_SECRET)
                    .bind(name)
                    .bind(self.secrets.seal(secret, candidate)?)
                    .bind($crate::rows::unix(now))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let stored = sqlx::query_scalar::<_, Vec<u8>>($crate::sql::SERVER_SECRET)
                    .bind(name)
                    .fetch_one(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                self.secrets.open(secret, &stored)
            }

            async fn commit_assertion(
                &self,
                commit: $crate::AssertionCommit<'_>,
            ) -> Result<$crate::AssertionCommitted, $crate::StoreError> {
                self.commit_assertion_impl(commit).await
            }

            async fn insert_device_key(
                &self,
                key: &$crate::DeviceKey,
                receipt: &[u8],
            ) -> Result<(), $crate::StoreError> {
                $crate::text::BoundText::check_text(key)?;
                let evidence = $crate::rows::evidence_to_db(key)?;
                // App Attest keys have a receipt row (empty without a receipt); keys of other
                // platforms none.
                let has_receipts = key.platform() == $crate::Platform::Ios;
                if !has_receipts && !receipt.is_empty() {
                    return Err($crate::StoreError::Invalid(format!(
                        "a receipt for a {} key",
                        key.platform()
                    )));
                }
                // The key and its receipt row, together or not at all.
                let mut transaction = self
                    .writer
                    .begin()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                sqlx::query($crate::sql::INSERT_DEVICE_KEY)
                    .bind(key.key_id.as_slice())
                    .bind(key.device_id.as_str())
                    .bind(key.app_id.as_str())
                    .bind(key.environment.as_str())
                    .bind(key.public_key_spki.as_slice())
                    .bind(key.counter.map(i64::from))
                    .bind(key.receipt_risk_metric)
                    .bind($crate::rows::unix(key.created_at))
                    .bind($crate::rows::unix(key.last_seen_at))
                    .bind($crate::rows::count_to_db(key.attestation_count)?)
                    .bind($crate::rows::count_to_db(key.assertion_count)?)
                    .bind(key.revoked_at.map($crate::rows::unix))
                    .bind(key.superseded_by.as_ref().map(|id| id.as_slice()))
                    .bind(evidence)
                    .bind(key.user_id.as_deref())
                    .bind(key.client_ip.as_deref())
                    .bind($crate::rows::count_to_db(key.counter_regressions)?)
                    .bind($crate::rows::count_to_db(key.replays)?)
                    .bind(key.revocation_reason.map(|reason| reason.as_str()))
                    .bind(key.platform().as_str())
                    .execute(&mut *transaction)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                if has_receipts {
                    sqlx::query($crate::sql::INSERT_DEVICE_KEY_RECEIPT)
                        .bind(key.key_id.as_slice())
                        .bind(receipt)
                        .execute(&mut *transaction)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                }
                transaction
                    .commit()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(())
            }

            async fn device_key(
                &self,
                key_id: $crate::KeyId,
            ) -> Result<Option<$crate::DeviceKey>, $crate::StoreError> {
                sqlx::query_as::<_, $crate::rows::DeviceKeyRow>($crate::sql::DEVICE_KEY)
                    .bind(key_id.as_slice())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?
                    .map($crate::DeviceKey::try_from)
                    .transpose()
            }

            async fn device_key_receipt(
                &self,
                key_id: $crate::KeyId,
            ) -> Result<Option<Vec<u8>>, $crate::StoreError> {
                sqlx::query_scalar::<_, Vec<u8>>($crate::sql::DEVICE_KEY_RECEIPT)
                    .bind(key_id.as_slice())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)
            }

            async fn key_context(
                &self,
                key_id: $crate::KeyId,
                query: &$crate::ContextQuery,
            ) -> Result<Option<$crate::KeyContext>, $crate::StoreError> {
                $crate::text::check(&[("client_ip", query.client_ip.as_deref())])?;
                sqlx::query_as::<_, $crate::rows::KeyContextRow>(Self::KEY_CONTEXT)
                    .bind(key_id.as_slice())
                    .bind($crate::rows::unix(query.failures_since))
                    .bind(query.client_ip.as_deref())
                    .bind($crate::rows::unix(query.keys_since))
                    .bind($crate::rows::flag_to_db(query.count_ip_keys))
                    .bind($crate::rows::flag_to_db(query.count_user_keys))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?
                    .map($crate::KeyContext::try_from)
                    .transpose()
            }

            async fn advance_counter(
                &self,
                key_id: $crate::KeyId,
                new_counter: u32,
                now: time::OffsetDateTime,
            ) -> Result<$crate::CounterAdvance, $crate::StoreError> {
                let done = sqlx::query($crate::sql::ADVANCE_COUNTER)
                    .bind(key_id.as_slice())
                    .bind(i64::from(new_counter))
                    .bind($crate::rows::unix(now))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                if done.rows_affected() > 0 {
                    return Ok($crate::CounterAdvance::Advanced);
                }
                // Nothing changed: find out why, for the error code only. Counters never go
                // down and revocations are never undone, so this later read cannot turn a
                // rejection into an acceptance.
                let state =
                    sqlx::query_as::<_, $crate::rows::CounterStateRow>($crate::sql::COUNTER_STATE)
                        .bind(key_id.as_slice())
                        .fetch_optional(&self.writer)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                $crate::backend::not_advanced(state)
            }

            async fn revoke_device_key(
                &self,
                key_id: $crate::KeyId,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::StoreError> {
                let done = sqlx::query($crate::sql::REVOKE_DEVICE_KEY)
                    .bind(key_id.as_slice())
                    .bind($crate::rows::unix(now))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::backend::one_row_changed(done.rows_affected())
            }

            async fn settle_lineage(
                &self,
                app_id: &str,
                device_id: &str,
                environment: $crate::Environment,
                now: time::OffsetDateTime,
            ) -> Result<Vec<($crate::KeyId, $crate::KeyId)>, $crate::StoreError> {
                $crate::text::check(&[("app_id", Some(app_id)), ("device_id", Some(device_id))])?;
                let rows = sqlx::query_as::<_, (Vec<u8>, Option<Vec<u8>>)>(Self::SETTLE_LINEAGE)
                    .bind(app_id)
                    .bind(device_id)
                    .bind(environment.as_str())
                    .bind($crate::rows::unix(now))
                    .fetch_all(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                rows.into_iter()
                    .map(|(old, new)| {
                        let new = new.ok_or_else(|| {
                            $crate::StoreError::Corrupt("a settled key without successor".into())
                        })?;
                        Ok(($crate::rows::key_id(old)?, $crate::rows::key_id(new)?))
                    })
                    .collect()
            }

            async fn supersede_device_key(
                &self,
                old_key: $crate::KeyId,
                new_key: $crate::KeyId,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::StoreError> {
                if old_key == new_key {
                    return Err($crate::StoreError::Invalid(
                        "a key cannot supersede itself".to_owned(),
                    ));
                }
                let done = sqlx::query($crate::sql::SUPERSEDE_DEVICE_KEY)
                    .bind(old_key.as_slice())
                    .bind(new_key.as_slice())
                    .bind($crate::rows::unix(now))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::backend::one_row_changed(done.rows_affected())
            }

            async fn link_device_key(
                &self,
                key_id: $crate::KeyId,
                device_id: &str,
                user_id: Option<&str>,
            ) -> Result<(), $crate::StoreError> {
                let done = sqlx::query($crate::sql::LINK_DEVICE_KEY)
                    .bind(key_id.as_slice())
                    .bind(device_id)
                    .bind(user_id)
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::backend::one_row_changed(done.rows_affected())
            }

            async fn list_device_keys(
                &self,
                app_id: Option<&str>,
                limit: u32,
                offset: u64,
            ) -> Result<Vec<$crate::DeviceKey>, $crate::StoreError> {
                $crate::text::check(&[("app_id", app_id)])?;
                let rows =
                    sqlx::query_as::<_, $crate::rows::DeviceKeyRow>($crate::sql::LIST_DEVICE_KEYS)
                        .bind(app_id)
                        .bind($crate::rows::page_limit(limit))
                        .bind($crate::rows::page_offset(offset))
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::convert_all(rows)
            }

            async fn find_device_keys(
                &self,
                filter: &$crate::KeyFilter,
                limit: u32,
            ) -> Result<Vec<$crate::DeviceKey>, $crate::StoreError> {
                $crate::text::BoundText::check_text(filter)?;
                self.find_device_keys_impl(filter, limit).await
            }

            async fn count_device_keys(
                &self,
                filter: &$crate::KeyFilter,
            ) -> Result<u64, $crate::StoreError> {
                $crate::text::BoundText::check_text(filter)?;
                self.count_device_keys_impl(filter).await
            }

            async fn record_counter_anomaly(
                &self,
                key_id: $crate::KeyId,
                anomaly: $crate::CounterAnomaly,
            ) -> Result<(), $crate::StoreError> {
                self.record_counter_anomaly_impl(key_id, anomaly).await
            }

            async fn expire_device_key(
                &self,
                key_id: $crate::KeyId,
                idle_before: time::OffsetDateTime,
                now: time::OffsetDateTime,
            ) -> Result<bool, $crate::StoreError> {
                self.expire_device_key_impl(key_id, idle_before, now).await
            }

            async fn expire_idle_keys(
                &self,
                idle_before: time::OffsetDateTime,
                now: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                self.expire_idle_keys_impl(idle_before, now).await
            }

            async fn record_decision(
                &self,
                decision: &$crate::Decision,
            ) -> Result<i64, $crate::StoreError> {
                $crate::text::BoundText::check_text(decision)?;
                self.record_decision_impl(decision).await
            }

            async fn purge_decisions(
                &self,
                before: time::OffsetDateTime,
                limit: u32,
            ) -> Result<u64, $crate::StoreError> {
                let before = $crate::rows::unix(before);
                let limit = $crate::rows::page_limit(limit);
                let mut transaction = self
                    .writer
                    .begin()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                sqlx::query($crate::sql::PURGE_DECISION_REASONS)
                    .bind(before)
                    .bind(limit)
                    .execute(&mut *transaction)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let done = sqlx::query($crate::sql::PURGE_DECISIONS)
                    .bind(before)
                    .bind(limit)
                    .execute(&mut *transaction)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                transaction
                    .commit()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn list_decisions(
                &self,
                filter: &$crate::DecisionFilter,
                limit: u32,
            ) -> Result<Vec<$crate::LoggedDecision>, $crate::StoreError> {
                $crate::text::BoundText::check_text(filter)?;
                self.list_decisions_impl(filter, limit).await
            }

            async fn failure_counts(
                &self,
                scope: &$crate::FailureScope,
                since: time::OffsetDateTime,
            ) -> Result<Vec<$crate::FailureCount>, $crate::StoreError> {
                $crate::text::BoundText::check_text(scope)?;
                self.failure_counts_impl(scope, since).await
            }

            async fn decision_summary(
                &self,
                filter: &$crate::SummaryFilter,
            ) -> Result<$crate::DecisionSummary, $crate::StoreError> {
                $crate::text::BoundText::check_text(filter)?;
                self.decision_summary_impl(filter).await
            }

            async fn enqueue_webhook(
                &self,
                delivery: &$crate::NewWebhookDelivery,
            ) -> Result<i64, $crate::StoreError> {
                $crate::text::BoundText::check_text(delivery)?;
                self.enqueue_webhook_impl(delivery).await
            }

            async fn claim_due_webhooks(
                &self,
                now: time::OffsetDateTime,
                lease_until: time::OffsetDateTime,
                limit: u32,
            ) -> Result<Vec<$crate::WebhookDelivery>, $crate::StoreError> {
                self.claim_due_webhooks_impl(now, lease_until, limit).await
            }

            async fn record_webhook_attempt(
                &self,
                id: i64,
                attempt: &$crate::DeliveryAttempt,
            ) -> Result<(), $crate::StoreError> {
                $crate::text::BoundText::check_text(attempt)?;
                self.record_webhook_attempt_impl(id, attempt).await
            }

            async fn list_webhook_deliveries(
                &self,
                filter: &$crate::DeliveryFilter,
                limit: u32,
            ) -> Result<Vec<$crate::WebhookDelivery>, $crate::StoreError> {
                $crate::text::BoundText::check_text(filter)?;
                self.list_webhook_deliveries_impl(filter, limit).await
            }

            async fn save_revocation_list(
                &self,
                list: &$crate::NewRevocationList<'_>,
            ) -> Result<$crate::RevocationListSaved, $crate::StoreError> {
                self.save_revocation_list_impl(list).await
            }

            async fn record_revocation_list_attempt(
                &self,
                attempt: &$crate::RevocationListAttempt,
            ) -> Result<(), $crate::StoreError> {
                self.record_revocation_list_attempt_impl(attempt).await
            }

            async fn revocation_list(
                &self,
            ) -> Result<$crate::RevocationListState, $crate::StoreError> {
                self.revocation_list_impl().await
            }

            async fn record_refusal(
                &self,
                refusal: &$crate::Refusal<'_>,
            ) -> Result<$crate::RefusalRecorded, $crate::StoreError> {
                self.record_refusal_impl(refusal).await
            }

            async fn tallied_failures(
                &self,
                subject: &$crate::FailureSubject,
                since: time::OffsetDateTime,
            ) -> Result<Vec<$crate::FailureCount>, $crate::StoreError> {
                self.tallied_failures_impl(subject, since).await
            }

            async fn sender_failures(
                &self,
                filter: &$crate::SenderFilter,
            ) -> Result<Vec<$crate::SenderFailures>, $crate::StoreError> {
                self.sender_failures_impl(filter).await
            }

            async fn purge_failure_tallies(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                self.purge_failure_tallies_impl(before).await
            }

            async fn heartbeat(
                &self,
                instance: &str,
                now: time::OffsetDateTime,
                live_since: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                self.heartbeat_impl(instance, now, live_since).await
            }

            async fn leave(&self, instance: &str) -> Result<(), $crate::StoreError> {
                self.leave_impl(instance).await
            }

            async fn insert_signing_key(
                &self,
                key: &$crate::SigningKey,
            ) -> Result<(), $crate::StoreError> {
                $crate::text::BoundText::check_text(key)?;
                let sealed = self.secrets.seal(
                    $crate::sealing::SecretName::SigningKey(&key.kid),
                    &key.private_pkcs8,
                )?;
                sqlx::query($crate::sql::INSERT_SIGNING_KEY)
                    .bind(key.kid.as_str())
                    .bind(key.algorithm.as_str())
                    .bind(sealed)
                    .bind($crate::rows::unix(key.created_at))
                    .bind(key.retired_at.map($crate::rows::unix))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(())
            }

            async fn signing_keys(&self) -> Result<Vec<$crate::SigningKey>, $crate::StoreError> {
                let rows =
                    sqlx::query_as::<_, $crate::rows::SigningKeyRow>($crate::sql::SIGNING_KEYS)
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                let mut keys: Vec<$crate::SigningKey> = $crate::rows::convert_all(rows)?;
                for key in &mut keys {
                    key.private_pkcs8 = self.secrets.open(
                        $crate::sealing::SecretName::SigningKey(&key.kid),
                        &key.private_pkcs8,
                    )?;
                }
                Ok(keys)
            }

            async fn retire_signing_key(
                &self,
                kid: &str,
                at: time::OffsetDateTime,
            ) -> Result<(), $crate::StoreError> {
                $crate::text::check(&[("kid", Some(kid))])?;
                let done = sqlx::query($crate::sql::RETIRE_SIGNING_KEY)
                    .bind(kid)
                    .bind($crate::rows::unix(at))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::backend::one_row_changed(done.rows_affected())
            }

            async fn probe_write(
                &self,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::StoreError> {
                self.probe_write_impl($crate::rows::unix(now)).await
            }

            async fn delete_retired_signing_keys(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query($crate::sql::DELETE_RETIRED_SIGNING_KEYS)
                    .bind($crate::rows::unix(before))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_store_for;

/// `Ok` if an UPDATE by primary key found its row, [`StoreError::NotFound`] otherwise.
pub(crate) fn one_row_changed(rows: u64) -> Result<(), crate::StoreError> {
    if rows == 0 {
        Err(crate::StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Why [`crate::sql::ADVANCE_COUNTER`] changed nothing, from the key's counter state. A key
/// without a counter (its platform has none) is the caller's mistake: it is never advanced.
pub(crate) fn not_advanced(
    state: Option<crate::rows::CounterStateRow>,
) -> Result<crate::CounterAdvance, crate::StoreError> {
    Ok(match state {
        None => crate::CounterAdvance::UnknownKey,
        Some(state) if state.revoked_at.is_some() => crate::CounterAdvance::Revoked,
        Some(crate::rows::CounterStateRow { counter: None, .. }) => {
            return Err(crate::StoreError::Invalid(
                "a counter advanced on a key whose platform signs without one".to_owned(),
            ));
        }
        Some(crate::rows::CounterStateRow {
            counter: Some(counter),
            ..
        }) => crate::CounterAdvance::Replayed {
            stored: crate::rows::counter_from_db(counter)?,
        },
    })
}

/// Challenge nonces are 16 to 64 bytes (the schema's CHECK, reported as [`StoreError::Invalid`]).
pub(crate) fn check_nonce(nonce: &[u8]) -> Result<(), crate::StoreError> {
    if (16..=64).contains(&nonce.len()) {
        Ok(())
    } else {
        Err(crate::StoreError::Invalid(format!(
            "a challenge nonce of {} bytes (16 to 64)",
            nonce.len()
        )))
    }
}
