//! The bodies of the intelligence, decision-log and webhook-outbox methods of
//! [`Store`](crate::Store), shared by both backends like [`crate::backend`]: a macro writes them
//! out as inherent methods of each concrete store, which the trait implementation calls.

/// Appends ` AND column = value` for each set field of a [`crate::KeyFilter`], so every query
/// names only the columns it filters on and the matching index is used. (The earlier form,
/// `($n IS NULL OR column = $n)`, kept SQLite and PostgreSQL from using any index: each call
/// scanned the table, and assertions slowed as keys accumulated.)
macro_rules! push_key_filter {
    ($query:ident, $filter:ident) => {
        if let Some(value) = $filter.app_id.as_deref() {
            $query.push(" AND app_id = ").push_bind(value);
        }
        if let Some(value) = $filter.device_id.as_deref() {
            $query.push(" AND device_id = ").push_bind(value);
        }
        if let Some(value) = $filter.user_id.as_deref() {
            $query.push(" AND user_id = ").push_bind(value);
        }
        if let Some(value) = $filter.client_ip.as_deref() {
            $query.push(" AND client_ip = ").push_bind(value);
        }
        if let Some(environment) = $filter.environment {
            $query
                .push(" AND environment = ")
                .push_bind(environment.as_str());
        }
        if let Some(since) = $filter.created_since {
            $query
                .push(" AND created_at >= ")
                .push_bind($crate::rows::unix(since));
        }
        if $filter.active_only {
            $query.push(" AND revoked_at IS NULL");
        }
    };
}

/// A value a failure count may be scoped by.
pub(crate) enum SubjectValue<'a> {
    Bytes(&'a [u8]),
    Text(&'a str),
}

/// An [`AssertionCommit`](crate::AssertionCommit) with owned values, so the backend can run it
/// in a task of its own: a caller that is dropped half-way (a client that hung up) must not
/// stop a transaction half-way.
pub(crate) struct OwnedCommit {
    pub(crate) nonce: Vec<u8>,
    pub(crate) expires_at: i64,
    pub(crate) key_id: crate::KeyId,
    pub(crate) counter: Option<i64>,
    pub(crate) seen_at: i64,
    pub(crate) decision: crate::Decision,
}

impl OwnedCommit {
    pub(crate) fn new(commit: crate::AssertionCommit<'_>) -> Result<Self, crate::StoreError> {
        crate::backend::check_nonce(commit.challenge.nonce)?;
        crate::text::BoundText::check_text(commit.decision)?;
        Ok(Self {
            nonce: commit.challenge.nonce.to_vec(),
            expires_at: crate::rows::unix(commit.challenge.expires_at),
            key_id: commit.key_id,
            counter: commit.counter.map(i64::from),
            seen_at: crate::rows::unix(commit.seen_at),
            decision: commit.decision.clone(),
        })
    }

    /// The decision's reason codes, sorted and without repeats (one `decision_reasons` row
    /// each).
    pub(crate) fn reason_codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self
            .decision
            .reasons
            .iter()
            .map(|reason| reason.code.clone())
            .collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }
}

/// Binds `$1` to `$21` of one commit in `crate::sqlite_commit` and of
/// [`crate::sql::POSTGRES_COMMIT_ASSERTION`] from an [`OwnedCommit`].
macro_rules! bind_commit {
    ($query:expr, $commit:expr) => {{
        let commit = &$commit;
        let decision = &commit.decision;
        $query
            .bind(commit.nonce.as_slice())
            .bind(commit.expires_at)
            .bind(commit.key_id.as_slice())
            .bind(commit.counter)
            .bind(commit.seen_at)
            .bind($crate::rows::unix(decision.at))
            .bind(decision.app_id.as_str())
            .bind(decision.key_id.as_ref().map(|id| id.as_slice()))
            .bind(decision.route.as_str())
            .bind(decision.outcome.as_str())
            .bind(decision.code.as_str())
            .bind(decision.risk_score.map(i64::from))
            .bind(decision.kind.map(|kind| kind.as_str()))
            .bind(decision.device_id.as_deref())
            .bind(decision.user_id.as_deref())
            .bind(decision.client_ip.as_deref())
            .bind(decision.environment.map(|e| e.as_str()))
            .bind(decision.mode.map(|mode| mode.as_str()))
            .bind($crate::rows::flag_to_db(decision.would_deny))
            .bind($crate::rows::reasons_to_json(&decision.reasons))
            .bind($crate::rows::factors_to_json(&decision.factors))
    }};
}

pub(crate) use bind_commit;

/// What a commit did, from how far it got.
pub(crate) fn commit_outcome(
    spent: bool,
    advanced: bool,
    decision_id: Option<i64>,
    state: Option<crate::rows::CounterStateRow>,
) -> Result<crate::AssertionCommitted, crate::StoreError> {
    match (spent, advanced, decision_id) {
        (false, _, _) => Ok(crate::AssertionCommitted::ChallengeSpent),
        (true, true, Some(decision_id)) => Ok(crate::AssertionCommitted::Accepted { decision_id }),
        (true, true, None) => Err(crate::StoreError::Corrupt(
            "an advanced counter without its decision".to_owned(),
        )),
        (true, false, _) => Ok(crate::AssertionCommitted::NotAdvanced(
            crate::backend::not_advanced(state)?,
        )),
    }
}

macro_rules! impl_store_ext_for {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn find_device_keys_impl(
                &self,
                filter: &$crate::KeyFilter,
                limit: u32,
            ) -> Result<Vec<$crate::DeviceKey>, $crate::StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new($crate::sql::FIND_DEVICE_KEYS);
                $crate::backend_ext::push_key_filter!(query, filter);
                query
                    .push(" ORDER BY created_at, key_id LIMIT ")
                    .push_bind($crate::rows::page_limit(limit));
                let rows = query
                    .build_query_as::<$crate::rows::DeviceKeyRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::convert_all(rows)
            }

            async fn count_device_keys_impl(
                &self,
                filter: &$crate::KeyFilter,
            ) -> Result<u64, $crate::StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new($crate::sql::COUNT_DEVICE_KEYS);
                $crate::backend_ext::push_key_filter!(query, filter);
                let count = query
                    .build_query_scalar::<i64>()
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::count_from_db(count)
            }

            async fn record_counter_anomaly_impl(
                &self,
                key_id: $crate::KeyId,
                anomaly: $crate::CounterAnomaly,
            ) -> Result<(), $crate::StoreError> {
                let statement = match anomaly {
                    $crate::CounterAnomaly::Regression => $crate::sql::RECORD_COUNTER_REGRESSION,
                    $crate::CounterAnomaly::Replay => $crate::sql::RECORD_REPLAY,
                };
                let done = sqlx::query(statement)
                    .bind(key_id.as_slice())
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::backend::one_row_changed(done.rows_affected())
            }

            async fn expire_device_key_impl(
                &self,
                key_id: $crate::KeyId,
                idle_before: time::OffsetDateTime,
                now: time::OffsetDateTime,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query($crate::sql::EXPIRE_DEVICE_KEY)
                    .bind(key_id.as_slice())
                    .bind($crate::rows::unix(idle_before))
                    .bind($crate::rows::unix(now))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected() > 0)
            }

            async fn expire_idle_keys_impl(
                &self,
                idle_before: time::OffsetDateTime,
                now: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query($crate::sql::EXPIRE_IDLE_KEYS)
                    .bind($crate::rows::unix(idle_before))
                    .bind($crate::rows::unix(now))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn record_decision_impl(
                &self,
                decision: &$crate::Decision,
            ) -> Result<i64, $crate::StoreError> {
                let mut transaction = self
                    .writer
                    .begin()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let id = Self::insert_decision(&mut transaction, decision).await?;
                transaction
                    .commit()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(id)
            }

            /// The decision and its reason codes, in the caller's transaction.
            async fn insert_decision(
                transaction: &mut sqlx::Transaction<'_, $db>,
                decision: &$crate::Decision,
            ) -> Result<i64, $crate::StoreError> {
                let id = sqlx::query_scalar::<_, i64>($crate::sql::INSERT_DECISION)
                    .bind($crate::rows::unix(decision.at))
                    .bind(decision.app_id.as_str())
                    .bind(decision.key_id.as_ref().map(|id| id.as_slice()))
                    .bind(decision.route.as_str())
                    .bind(decision.outcome.as_str())
                    .bind(decision.code.as_str())
                    .bind(decision.risk_score.map(i64::from))
                    .bind(decision.kind.map(|kind| kind.as_str()))
                    .bind(decision.device_id.as_deref())
                    .bind(decision.user_id.as_deref())
                    .bind(decision.client_ip.as_deref())
                    .bind(decision.environment.map(|e| e.as_str()))
                    .bind(decision.mode.map(|mode| mode.as_str()))
                    .bind($crate::rows::flag_to_db(decision.would_deny))
                    .bind($crate::rows::reasons_to_json(&decision.reasons))
                    .bind($crate::rows::factors_to_json(&decision.factors))
                    .fetch_one(&mut **transaction)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let mut codes: Vec<&str> =
                    decision.reasons.iter().map(|r| r.code.as_str()).collect();
                codes.sort_unstable();
                codes.dedup();
                for code in codes {
                    sqlx::query($crate::sql::INSERT_DECISION_REASON)
                        .bind(id)
                        .bind(code)
                        .execute(&mut **transaction)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                }
                Ok(id)
            }

            async fn list_decisions_impl(
                &self,
                filter: &$crate::DecisionFilter,
                limit: u32,
            ) -> Result<Vec<$crate::LoggedDecision>, $crate::StoreError> {
                // Only the set filters are written out, so an App ID uses its index.
                let mut query = sqlx::QueryBuilder::<$db>::new($crate::sql::LIST_DECISIONS);
                if let Some(app_id) = filter.app_id.as_deref() {
                    query.push(" AND app_id = ").push_bind(app_id);
                }
                if let Some(key_id) = filter.key_id.as_ref() {
                    query.push(" AND key_id = ").push_bind(key_id.as_slice());
                }
                if let Some(outcome) = filter.outcome {
                    query.push(" AND outcome = ").push_bind(outcome.as_str());
                }
                if let Some(since) = filter.since {
                    query
                        .push(" AND at >= ")
                        .push_bind($crate::rows::unix(since));
                }
                if let Some(before_id) = filter.before_id {
                    query.push(" AND id < ").push_bind(before_id);
                }
                if let Some(would_deny) = filter.would_deny {
                    query
                        .push(" AND would_deny = ")
                        .push_bind($crate::rows::flag_to_db(would_deny));
                }
                if let Some(device_id) = filter.device_id.as_deref() {
                    query.push(" AND device_id = ").push_bind(device_id);
                }
                query
                    .push(" ORDER BY id DESC LIMIT ")
                    .push_bind($crate::rows::page_limit(limit));
                let rows = query
                    .build_query_as::<$crate::rows::DecisionRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::convert_all(rows)
            }

            async fn failure_counts_impl(
                &self,
                scope: &$crate::FailureScope,
                since: time::OffsetDateTime,
            ) -> Result<Vec<$crate::FailureCount>, $crate::StoreError> {
                // Only the set filters are written out, so each subject uses its own index (the
                // partial decision_failures_by_key / _by_device / _by_ip / _by_app of migration
                // 0102, which hold failures only; an OR of them becomes a union of index
                // lookups) instead of a scan of the decision log.
                let mut query = sqlx::QueryBuilder::<$db>::new($crate::sql::FAILURE_COUNTS);
                query.push_bind($crate::rows::unix(since));
                if let Some(app_id) = scope.app_id.as_deref() {
                    query.push(" AND app_id = ").push_bind(app_id);
                }
                if let Some(kind) = scope.kind {
                    query.push(" AND kind = ").push_bind(kind.as_str());
                }
                let subjects = [
                    scope.key_id.as_ref().map(|id| {
                        (
                            "key_id",
                            $crate::backend_ext::SubjectValue::Bytes(id.as_slice()),
                        )
                    }),
                    scope
                        .device_id
                        .as_deref()
                        .map(|d| ("device_id", $crate::backend_ext::SubjectValue::Text(d))),
                    scope
                        .client_ip
                        .as_deref()
                        .map(|ip| ("client_ip", $crate::backend_ext::SubjectValue::Text(ip))),
                ];
                let mut first = true;
                for (column, value) in subjects.into_iter().flatten() {
                    query.push(if first { " AND (" } else { " OR " });
                    first = false;
                    query.push(column).push(" = ");
                    match value {
                        $crate::backend_ext::SubjectValue::Bytes(bytes) => query.push_bind(bytes),
                        $crate::backend_ext::SubjectValue::Text(text) => query.push_bind(text),
                    };
                }
                if !first {
                    query.push(")");
                }
                query.push(" GROUP BY code ORDER BY code");
                let rows = query
                    .build_query_as::<$crate::rows::FailureCountRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::convert_all(rows)
            }

            async fn decision_summary_impl(
                &self,
                filter: &$crate::SummaryFilter,
            ) -> Result<$crate::DecisionSummary, $crate::StoreError> {
                // Only the set filters are written out, so an App ID and a start time use
                // decisions_by_app_time instead of a scan of the whole log.
                let scoped = |sql: &'static str| {
                    let mut query = sqlx::QueryBuilder::<$db>::new(sql);
                    if let Some(app_id) = filter.app_id.as_deref() {
                        query.push(" AND d.app_id = ").push_bind(app_id.to_owned());
                    }
                    if let Some(since) = filter.since {
                        query
                            .push(" AND d.at >= ")
                            .push_bind($crate::rows::unix(since));
                    }
                    query
                };
                let mut by_outcome = scoped($crate::sql::SUMMARY_BY_OUTCOME);
                by_outcome.push($crate::sql::SUMMARY_BY_OUTCOME_GROUP);
                let by_outcome = by_outcome
                    .build_query_as::<$crate::rows::OutcomeCountRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let mut by_reason = scoped($crate::sql::SUMMARY_BY_REASON);
                by_reason.push($crate::sql::SUMMARY_BY_REASON_GROUP);
                let by_reason = by_reason
                    .build_query_as::<$crate::rows::ReasonCountRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let devices = scoped($crate::sql::SUMMARY_WOULD_DENY_DEVICES)
                    .build_query_scalar::<i64>()
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok($crate::DecisionSummary {
                    by_outcome: $crate::rows::convert_all(by_outcome)?,
                    by_reason: $crate::rows::convert_all(by_reason)?,
                    would_deny_devices: $crate::rows::count_from_db(devices)?,
                    unlogged_refusals: self.unlogged_refusals(filter).await?,
                })
            }

            async fn enqueue_webhook_impl(
                &self,
                delivery: &$crate::NewWebhookDelivery,
            ) -> Result<i64, $crate::StoreError> {
                sqlx::query_scalar::<_, i64>($crate::sql::ENQUEUE_WEBHOOK)
                    .bind(delivery.event_id.as_str())
                    .bind(delivery.event.as_str())
                    .bind(delivery.endpoint.as_str())
                    .bind(delivery.payload.as_str())
                    .bind($crate::rows::unix(delivery.created_at))
                    .fetch_one(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)
            }

            async fn claim_due_webhooks_impl(
                &self,
                now: time::OffsetDateTime,
                lease_until: time::OffsetDateTime,
                limit: u32,
            ) -> Result<Vec<$crate::WebhookDelivery>, $crate::StoreError> {
                let rows =
                    sqlx::query_as::<_, $crate::rows::DeliveryRow>($crate::sql::CLAIM_DUE_WEBHOOKS)
                        .bind($crate::rows::unix(now))
                        .bind($crate::rows::unix(lease_until))
                        .bind($crate::rows::page_limit(limit))
                        .fetch_all(&self.writer)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                let mut claimed: Vec<$crate::WebhookDelivery> = $crate::rows::convert_all(rows)?;
                // RETURNING promises no order.
                claimed.sort_by_key(|delivery| delivery.id);
                Ok(claimed)
            }

            async fn record_webhook_attempt_impl(
                &self,
                id: i64,
                attempt: &$crate::DeliveryAttempt,
            ) -> Result<(), $crate::StoreError> {
                let at = $crate::rows::unix(attempt.at);
                let (status, next_attempt_at, delivered_at) = match attempt.next {
                    $crate::NextAttempt::Delivered => {
                        ($crate::DeliveryStatus::Delivered, None, Some(at))
                    }
                    $crate::NextAttempt::RetryAt(next) => (
                        $crate::DeliveryStatus::Pending,
                        Some($crate::rows::unix(next)),
                        None,
                    ),
                    $crate::NextAttempt::GiveUp => ($crate::DeliveryStatus::Failed, None, None),
                };
                let done = sqlx::query($crate::sql::RECORD_WEBHOOK_ATTEMPT)
                    .bind(id)
                    .bind(at)
                    .bind(attempt.http_status.map(i64::from))
                    .bind(attempt.error.as_deref())
                    .bind(status.as_str())
                    .bind(next_attempt_at)
                    .bind(delivered_at)
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::backend::one_row_changed(done.rows_affected())
            }

            async fn list_webhook_deliveries_impl(
                &self,
                filter: &$crate::DeliveryFilter,
                limit: u32,
            ) -> Result<Vec<$crate::WebhookDelivery>, $crate::StoreError> {
                let rows = sqlx::query_as::<_, $crate::rows::DeliveryRow>(
                    $crate::sql::LIST_WEBHOOK_DELIVERIES,
                )
                .bind(filter.status.map(|status| status.as_str()))
                .bind(filter.event.as_deref())
                .bind(filter.before_id)
                .bind($crate::rows::page_limit(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::convert_all(rows)
            }
        }
    };
}

pub(crate) use impl_store_ext_for;
pub(crate) use push_key_filter;
