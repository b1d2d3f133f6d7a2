//! The bodies of the refusal-tally and instance methods of [`Store`](crate::Store) (migration
//! 0109), shared by both backends like [`crate::backend_ext`]: inherent methods of each concrete
//! store, which the trait implementation calls.

macro_rules! impl_tally_for {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn record_refusal_impl(
                &self,
                refusal: &$crate::Refusal<'_>,
            ) -> Result<$crate::RefusalRecorded, $crate::StoreError> {
                let decision = refusal.decision;
                if decision.code == "ok" {
                    return Err($crate::StoreError::Invalid(
                        "a refusal with code ok".to_owned(),
                    ));
                }
                $crate::text::BoundText::check_text(decision)?;
                $crate::text::check(&[("proven_device", refusal.proven_device)])?;
                let window_start = refusal.window_start()?;
                let sender = $crate::tally::sender_subject(decision.client_ip.as_deref());
                let mut transaction = self
                    .writer
                    .begin()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let failures = sqlx::query_scalar::<_, i64>($crate::sql::TALLY_SENDER_REFUSAL)
                    .bind(decision.app_id.as_str())
                    .bind(sender)
                    .bind(window_start)
                    .bind(decision.code.as_str())
                    .bind(i64::from(refusal.sample))
                    .fetch_one(&mut *transaction)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                if let Some(device_id) = refusal.proven_device {
                    sqlx::query($crate::sql::TALLY_DEVICE_REFUSAL)
                        .bind(decision.app_id.as_str())
                        .bind(device_id)
                        .bind(window_start)
                        .bind(decision.code.as_str())
                        .execute(&mut *transaction)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                }
                let decision_id = if failures <= i64::from(refusal.sample) {
                    Some(Self::insert_decision(&mut transaction, decision).await?)
                } else {
                    None
                };
                transaction
                    .commit()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok($crate::RefusalRecorded {
                    decision_id,
                    sender_failures: $crate::rows::count_from_db(failures)?,
                })
            }

            async fn tallied_failures_impl(
                &self,
                subject: &$crate::FailureSubject,
                since: time::OffsetDateTime,
            ) -> Result<Vec<$crate::FailureCount>, $crate::StoreError> {
                let (app_id, scope, subject) = match subject {
                    $crate::FailureSubject::Device { app_id, device_id } => {
                        (app_id.as_str(), "device", device_id.as_str())
                    }
                    $crate::FailureSubject::Sender { app_id, client_ip } => (
                        app_id.as_str(),
                        "sender",
                        $crate::tally::sender_subject(client_ip.as_deref()),
                    ),
                };
                $crate::text::check(&[("app_id", Some(app_id)), ("subject", Some(subject))])?;
                let rows = sqlx::query_as::<_, $crate::rows::FailureCountRow>(
                    $crate::sql::TALLIED_FAILURES,
                )
                .bind(app_id)
                .bind(scope)
                .bind(subject)
                .bind($crate::rows::unix(since))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::convert_all(rows)
            }

            async fn sender_failures_impl(
                &self,
                filter: &$crate::SenderFilter,
            ) -> Result<Vec<$crate::SenderFailures>, $crate::StoreError> {
                $crate::text::check(&[
                    ("app_id", Some(&filter.app_id)),
                    ("client_ip", filter.client_ip.as_deref()),
                ])?;
                let mut query = sqlx::QueryBuilder::<$db>::new($crate::sql::SENDER_FAILURES);
                query
                    .push_bind(filter.app_id.as_str())
                    .push(" AND window_start >= ")
                    .push_bind($crate::rows::unix(filter.since));
                if let Some(client_ip) = filter.client_ip.as_deref() {
                    query.push(" AND subject = ").push_bind(client_ip);
                }
                query
                    .push($crate::sql::SENDER_FAILURES_GROUP)
                    .push_bind($crate::rows::page_limit(filter.limit));
                let rows = query
                    .build_query_as::<$crate::rows::SenderFailuresRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::convert_all(rows)
            }

            async fn purge_failure_tallies_impl(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query($crate::sql::PURGE_FAILURE_TALLIES)
                    .bind($crate::rows::unix(before))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn heartbeat_impl(
                &self,
                instance: &str,
                now: time::OffsetDateTime,
                live_since: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                $crate::text::check(&[("instance", Some(instance))])?;
                let live_since = $crate::rows::unix(live_since);
                sqlx::query($crate::sql::HEARTBEAT)
                    .bind(instance)
                    .bind($crate::rows::unix(now))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                sqlx::query($crate::sql::FORGET_STALE_INSTANCES)
                    .bind(live_since)
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let live = sqlx::query_scalar::<_, i64>($crate::sql::LIVE_INSTANCES)
                    .bind(live_since)
                    .fetch_one(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::count_from_db(live)
            }

            async fn leave_impl(&self, instance: &str) -> Result<(), $crate::StoreError> {
                $crate::text::check(&[("instance", Some(instance))])?;
                sqlx::query($crate::sql::LEAVE)
                    .bind(instance)
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(())
            }

            /// `DecisionSummary::unlogged_refusals` for `filter`.
            async fn unlogged_refusals(
                &self,
                filter: &$crate::SummaryFilter,
            ) -> Result<u64, $crate::StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new($crate::sql::UNLOGGED_REFUSALS);
                if let Some(app_id) = filter.app_id.as_deref() {
                    query.push(" AND app_id = ").push_bind(app_id.to_owned());
                }
                if let Some(since) = filter.since {
                    // Windows starting at or after `since`.
                    query
                        .push(" AND window_start >= ")
                        .push_bind($crate::rows::unix(since));
                }
                let count = query
                    .build_query_scalar::<i64>()
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                $crate::rows::count_from_db(count)
            }
        }
    };
}

pub(crate) use impl_tally_for;
