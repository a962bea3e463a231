//! The one way a write use case runs its transaction: [`Database::transact`], and
//! [`Database::transact_once`] with an idempotency key built in.
//!
//! A use case writes only its body, a closure given the transaction as a [`Txn`]: it returns its
//! value, refuses with [`Abort::Refused`], or fails with a database error (`?`). The helper begins the transaction (serialized on SQLite),
//! commits a value, rolls back a refusal or a failure (and a transaction that is dropped), and
//! runs the body again after a deadlock, a serialization failure or a lost race, a bounded number
//! of times (see [`Database::write`]). No use case writes a rollback or a nested `Result`.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use sea_orm::{DatabaseTransaction, DbErr};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::db::{AttemptError, Database, WriteTxn};
use super::idempotency::{IdempotentRequest, Lookup};
use crate::error::CommonError;

/// Why an attempt of a write does not commit.
#[derive(Debug)]
pub enum Abort<E> {
    /// The use case refused: rolled back and answered, never run again.
    Refused(E),
    /// The database failed or the attempt lost a race: rolled back, run again while transient.
    Failed(AttemptError),
}

impl<E> From<DbErr> for Abort<E> {
    fn from(err: DbErr) -> Self {
        Abort::Failed(err.into())
    }
}

impl<E> From<AttemptError> for Abort<E> {
    fn from(err: AttemptError) -> Self {
        Abort::Failed(err)
    }
}

/// What one attempt of a write use case comes to.
pub type Attempt<T, E> = Result<T, Abort<E>>;

/// The transaction as a body holds it: owned (a shared handle), so that a body's future borrows
/// nothing from the helper and stays `Send`. `&*txn` is the `&DatabaseTransaction` that every
/// statement goes through.
#[derive(Clone)]
pub struct Txn(Arc<WriteTxn>);

impl Deref for Txn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.0
    }
}

impl Database {
    /// Runs `body` in a write transaction and commits what it returns (see the module doc).
    pub async fn transact<T, E, Body, Run>(&self, body: Body) -> Result<T, E>
    where
        Body: Fn(Txn) -> Run,
        Run: Future<Output = Attempt<T, E>>,
        E: From<DbErr>,
    {
        self.write(|| async {
            let shared = Arc::new(self.begin_write().await?);
            let result = body(Txn(shared.clone())).await;
            let txn = Arc::try_unwrap(shared).map_err(|_| {
                DbErr::Custom("a write's body kept its transaction after it ended".into())
            })?;
            match result {
                Ok(value) => {
                    txn.commit().await?;
                    Ok(Ok(value))
                }
                Err(Abort::Refused(refusal)) => {
                    txn.rollback().await?;
                    Ok(Err(refusal))
                }
                Err(Abort::Failed(err)) => {
                    // the attempt's error is the one that matters; a failed rollback ends
                    // the connection, which the pool then replaces
                    if let Err(rollback) = txn.rollback().await {
                        tracing::debug!(%rollback, "rollback after a failed attempt");
                    }
                    Err(err)
                }
            }
        })
        .await?
    }

    /// Runs a use case once per idempotency key, in one transaction:
    /// 1. `lock` takes the rows the use case depends on (a repeat waits here for the first);
    /// 2. the key is looked up under those locks: a result stored for the same request is
    ///    answered through `replay` and nothing changes; a key used with another request is
    ///    refused (IDEMPOTENCY_KEY_REUSED);
    /// 3. otherwise `body` runs on what `lock` took, and the receipt it returns is stored under the
    ///    key in the same transaction, so a result is stored exactly when its effect commits.
    ///
    /// Without a key, `lock` then `body` run as in [`Database::transact`].
    pub async fn transact_once<L, R, T, E, Lock, Locked, Replay, Replayed, Body, Run>(
        &self,
        key: Option<&IdempotentRequest>,
        lock: Lock,
        replay: Replay,
        body: Body,
    ) -> Result<T, E>
    where
        Lock: Fn(Txn) -> Locked,
        Locked: Future<Output = Attempt<L, E>>,
        Replay: Fn(Txn, R) -> Replayed,
        Replayed: Future<Output = Attempt<T, E>>,
        Body: Fn(Txn, L) -> Run,
        Run: Future<Output = Attempt<(T, R), E>>,
        R: Serialize + DeserializeOwned,
        E: From<DbErr> + From<CommonError>,
    {
        let (lock, replay, body) = (&lock, &replay, &body);
        self.transact(move |txn: Txn| async move {
            let locked = lock(txn.clone()).await?;
            if let Some(request) = key {
                match request.lookup::<R>(&*txn).await? {
                    Lookup::New => {}
                    Lookup::Replay(receipt) => return replay(txn, receipt).await,
                    Lookup::Reused => {
                        return Err(Abort::Refused(CommonError::IdempotencyKeyReused.into()));
                    }
                }
            }
            let (value, receipt) = body(txn.clone(), locked).await?;
            if let Some(request) = key {
                request.record(&*txn, &receipt).await?;
            }
            Ok(value)
        })
        .await
    }
}
