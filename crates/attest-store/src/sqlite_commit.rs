//! Group commit of assertions on SQLite.
//!
//! SQLite has one writer at a time, so [`Store::commit_assertion`](crate::Store::commit_assertion)
//! calls queue up for it. Run one by one, each pays a transaction (WAL frames for every page
//! it dirties: the key, the spent nonce, the decision and its indexes) and two thread hand-offs
//! with the pool in between, during which the writer stands idle: measured on this workspace's
//! load test, the server then sat 30 % idle on two cores at ~2,600 assertions/s. Here one task
//! owns the writer's queue: it takes every commit waiting (up to [`MAX_BATCH`]) and runs them
//! as one transaction in one round trip. Each commit still runs its own statements, in order,
//! each conditioned on the one before by `changes()`, so each keeps its own outcome; the
//! replies go out only after the transaction committed. If any statement of the batch fails,
//! the batch is rolled back and each commit is retried alone, so one bad commit fails alone.
//!
//! The task also makes the commit independent of its caller: a request dropped half-way (a
//! client that hung up) cannot leave a transaction half-done.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::backend_ext::{OwnedCommit, bind_commit, commit_outcome};
use crate::rows::CounterStateRow;
use crate::{AssertionCommitted, StoreError};

/// Most commits in one transaction: enough to amortise the transaction, small enough that the
/// statement text (and its 22 parameters per commit) stays modest.
pub(crate) const MAX_BATCH: usize = 32;

/// Commits waiting for the writer task before callers wait for room.
const QUEUE: usize = 1024;

/// Parameters per commit: `$1`..`$21` bound by [`bind_commit`], `$22` the reason codes.
const PARAMS: usize = 22;

type Reply = oneshot::Sender<Result<AssertionCommitted, StoreError>>;

/// What the writer task does: commits, batched; and readiness probes, each its own write on
/// the same connection, so that a probe fails when commits would.
#[expect(
    clippy::large_enum_variant,
    reason = "commits are nearly every job; boxing them would allocate once per assertion"
)]
enum Job {
    Commit(OwnedCommit, Reply),
    Probe(i64, oneshot::Sender<Result<(), StoreError>>),
}

/// The sending side of the writer task's queue.
#[derive(Clone, Debug)]
pub(crate) struct CommitQueue {
    jobs: mpsc::Sender<Job>,
}

impl CommitQueue {
    /// Starts the writer task on `writer` (the store's one write connection). The task ends
    /// when the last queue handle is dropped.
    pub(crate) fn start(writer: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, queue));
        Self { jobs }
    }

    /// Commits `commit` with whatever else is waiting.
    pub(crate) async fn commit(
        &self,
        commit: OwnedCommit,
    ) -> Result<AssertionCommitted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Commit(commit, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Writes the readiness probe row at `now` (unix seconds), queued behind the commits
    /// before it.
    pub(crate) async fn probe(&self, now: i64) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Probe(now, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite commit task has stopped".into())
}

async fn run(writer: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    // Built once; generated only from constants and numbers, never from input.
    let statements: Vec<Arc<str>> = (1..=MAX_BATCH).map(|n| Arc::from(batch_sql(n))).collect();
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut commits = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            match job {
                Job::Commit(commit, reply) => {
                    commits.push(commit);
                    replies.push(reply);
                }
                Job::Probe(now, reply) => {
                    let _ = reply.send(probe(&writer, now).await);
                }
            }
        }
        if commits.is_empty() {
            continue;
        }
        let outcomes = match run_batch(&writer, &statements[commits.len() - 1], &commits).await {
            Ok(outcomes) => outcomes,
            Err(_) if commits.len() > 1 => {
                // One of them failed: retry each alone so it fails alone.
                let mut alone = Vec::with_capacity(commits.len());
                for commit in &commits {
                    alone.push(
                        run_batch(&writer, &statements[0], std::slice::from_ref(commit))
                            .await
                            .and_then(|mut outcome| outcome.pop().unwrap_or_else(|| Err(lost()))),
                    );
                }
                alone
            }
            Err(error) => vec![Err(error)],
        };
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that went away no longer needs its answer; the commit stands.
            let _ = reply.send(outcome);
        }
    }
}

/// The readiness probe's write ([`crate::sql::PROBE_WRITE`]), in its own transaction.
async fn probe(writer: &SqlitePool, now: i64) -> Result<(), StoreError> {
    let mut connection = writer.acquire().await.map_err(StoreError::from_sqlx)?;
    match sqlx::query(crate::sql::PROBE_WRITE)
        .bind(now)
        .execute(&mut *connection)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => {
            // As after a failed commit: a fresh connection for what comes next.
            connection.close_on_drop();
            Err(StoreError::from_sqlx(error))
        }
    }
}

fn lost() -> StoreError {
    StoreError::Corrupt("a commit of the batch reported nothing".to_owned())
}

/// Runs `commits` as one transaction: one outcome per commit, or the error that rolled the
/// transaction back.
async fn run_batch(
    writer: &SqlitePool,
    sql: &Arc<str>,
    commits: &[OwnedCommit],
) -> Result<Vec<Result<AssertionCommitted, StoreError>>, StoreError> {
    let mut codes = Vec::with_capacity(commits.len());
    for commit in commits {
        codes.push(
            serde_json::to_string(&commit.reason_codes())
                .map_err(|error| StoreError::Invalid(format!("reason codes: {error}")))?,
        );
    }
    let mut query =
        sqlx::query_as::<_, (i64, i64, Option<i64>, Option<i64>)>(AssertSqlSafe(Arc::clone(sql)));
    for (commit, codes) in commits.iter().zip(&codes) {
        query = bind_commit!(query, commit).bind(codes.as_str());
    }
    let mut connection = writer.acquire().await.map_err(StoreError::from_sqlx)?;
    let rows = match query.fetch_all(&mut *connection).await {
        Ok(rows) => rows,
        Err(error) => {
            // A statement failed inside the transaction, which may still be open: closing the
            // connection rolls it back.
            connection.close_on_drop();
            return Err(StoreError::from_sqlx(error));
        }
    };
    Ok((0..commits.len())
        .map(|index| {
            let item = i64::try_from(index).unwrap_or(i64::MAX);
            let step = |n| rows.iter().find(|row| row.0 == item && row.1 == n);
            let state = step(4).map(|row| CounterStateRow {
                counter: row.2,
                revoked_at: row.3,
            });
            commit_outcome(
                step(1).is_some(),
                step(2).is_some(),
                step(3).and_then(|row| row.2),
                state,
            )
        })
        .collect())
}

/// The transaction for `count` commits.
fn batch_sql(count: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    for item in 0..count {
        sql.push_str(&item_sql(item));
    }
    sql.push_str("COMMIT;");
    sql
}

/// Contract points 2 and 3 and the decision log for commit number `item` of a batch, whose
/// parameters start after those of the commits before it. Each statement runs only if the one
/// before changed a row (`changes()`: rows changed by the last completed statement). The rows
/// it returns, all tagged with `item`, say how far it got: step 1 spent, 2 advanced, 3 logged
/// (with the decision id), then always step 4 with the key's counter and revocation time, if
/// the key exists.
fn item_sql(item: usize) -> String {
    let p = |n: usize| format!("${}", item * PARAMS + n);
    let decision: Vec<String> = (6..=21).map(p).collect();
    format!(
        "INSERT INTO spent_challenges (nonce, expires_at) VALUES ({nonce}, {expires}) \
         ON CONFLICT (nonce) DO NOTHING RETURNING {item}, 1, NULL, NULL;\n\
         UPDATE device_keys SET counter = {counter}, last_seen_at = {seen}, \
         assertion_count = assertion_count + 1 WHERE key_id = {key} \
         AND (counter < {counter} OR (counter IS NULL AND {counter} IS NULL)) \
         AND revoked_at IS NULL AND changes() = 1 RETURNING {item}, 2, NULL, NULL;\n\
         INSERT INTO decisions (at, app_id, key_id, route, outcome, code, risk_score, kind, \
         device_id, user_id, client_ip, environment, mode, would_deny, reasons, factors) \
         SELECT {decision} WHERE changes() = 1 RETURNING {item}, 3, id, NULL;\n\
         INSERT INTO decision_reasons (decision_id, code) \
         SELECT last_insert_rowid(), value FROM json_each({codes}) WHERE changes() = 1;\n\
         SELECT {item}, 4, counter, revoked_at FROM device_keys WHERE key_id = {key};\n",
        nonce = p(1),
        expires = p(2),
        key = p(3),
        counter = p(4),
        seen = p(5),
        decision = decision.join(", "),
        codes = p(22),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_commit_of_a_batch_binds_its_own_parameters() {
        let sql = batch_sql(2);
        assert!(sql.starts_with("BEGIN IMMEDIATE;") && sql.ends_with("COMMIT;"));
        assert!(sql.contains("VALUES ($1, $2)") && sql.contains("VALUES ($23, $24)"));
        assert!(sql.contains("json_each($22)") && sql.contains("json_each($44)"));
        assert!(!sql.contains("$45"));
        assert_eq!(sql.matches("RETURNING 1, 3, id").count(), 1);
    }
}
