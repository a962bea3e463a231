//! Idempotency keys: a mutation sent again with the same key returns its first result.
//!
//! The key row is written in the same transaction as the effect, so a result is stored exactly
//! when the effect commits. Two requests racing with one key cannot both commit: the unique
//! (user, key) index makes the second attempt fail ([`AttemptError::Contended`]), and its retry
//! finds the first one's stored result. A refused request stores nothing, so its key stays free.

use chrono::Utc;
use entity::idempotency_key;
use std::collections::{HashMap, HashSet};

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryTrait, Set};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::db::{AttemptError, is_unique_violation};
use super::writes::Writes;
use crate::error::InvalidInput;

/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 200;

/// A validated key with the operation and the request it was sent with.
#[derive(Clone, Debug)]
pub struct IdempotentRequest {
    pub user_id: i64,
    pub key: String,
    pub operation: &'static str,
    pub request_hash: String,
}

/// What an earlier use of the key says about this request.
#[derive(Debug)]
pub enum Lookup<R> {
    /// First use: run the request.
    New,
    /// Same request seen before: return its stored result.
    Replay(R),
    /// The key was used with another request or operation.
    Reused,
}

impl IdempotentRequest {
    /// `None` without a key; `request` is the input without the key, hashed to detect reuse.
    pub fn new(
        user_id: i64,
        key: Option<&str>,
        operation: &'static str,
        request: &impl Serialize,
    ) -> Result<Option<Self>, InvalidInput> {
        let Some(key) = key else { return Ok(None) };
        if key.trim().is_empty() || key.chars().count() > MAX_KEY_LEN {
            return Err(InvalidInput::new(
                "idempotencyKey",
                format!("must be 1 to {MAX_KEY_LEN} characters"),
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "idempotencyKey",
                "must not contain control characters (NUL, line breaks, tabs)",
            ));
        }
        let canonical = serde_json::to_vec(request).unwrap_or_default();
        Ok(Some(Self {
            user_id,
            key: key.to_owned(),
            operation,
            request_hash: hex(&Sha256::digest(&canonical)),
        }))
    }

    /// Looks the key up (inside the transaction that will perform the request).
    pub async fn lookup<R: DeserializeOwned>(
        &self,
        conn: &impl ConnectionTrait,
    ) -> Result<Lookup<R>, DbErr> {
        let found = idempotency_key::Entity::find()
            .filter(idempotency_key::Column::UserId.eq(self.user_id))
            .filter(idempotency_key::Column::IdemKey.eq(self.key.as_str()))
            .one(conn)
            .await?;
        self.judge(found.as_ref())
    }

    /// What the stored row of this key (if any) says about this request.
    pub fn judge<R: DeserializeOwned>(
        &self,
        stored: Option<&idempotency_key::Model>,
    ) -> Result<Lookup<R>, DbErr> {
        Ok(match stored {
            None => Lookup::New,
            Some(row)
                if row.operation == self.operation && row.request_hash == self.request_hash =>
            {
                let stored = serde_json::from_str(&row.response)
                    .map_err(|e| DbErr::Custom(format!("stored idempotent response: {e}")))?;
                Lookup::Replay(stored)
            }
            Some(_) => Lookup::Reused,
        })
    }

    /// True when `other` is this same request (same key, operation and input).
    pub fn same_as(&self, other: &IdempotentRequest) -> bool {
        self.operation == other.operation && self.request_hash == other.request_hash
    }

    /// Stores the result in the transaction of the effect; a concurrent twin makes it `Contended`.
    pub async fn record(
        &self,
        conn: &impl ConnectionTrait,
        response: &impl Serialize,
    ) -> Result<(), AttemptError> {
        let mut writes = Writes::new(conn.get_database_backend());
        record_many(
            &mut writes,
            &[(self, serde_json::to_string(response).unwrap_or_default())],
        );
        writes.send(conn).await.map_err(contended_if_taken)
    }

    fn row(&self, response: String) -> idempotency_key::ActiveModel {
        idempotency_key::ActiveModel {
            user_id: Set(self.user_id),
            idem_key: Set(self.key.clone()),
            operation: Set(self.operation.to_owned()),
            request_hash: Set(self.request_hash.clone()),
            response: Set(response),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
    }
}

/// The stored rows of several keys (one query), by (user, key).
pub async fn lookup_many(
    conn: &impl ConnectionTrait,
    requests: &[&IdempotentRequest],
) -> Result<HashMap<(i64, String), idempotency_key::Model>, DbErr> {
    if requests.is_empty() {
        return Ok(HashMap::new());
    }
    let wanted: HashSet<(i64, &str)> = requests
        .iter()
        .map(|r| (r.user_id, r.key.as_str()))
        .collect();
    let rows = idempotency_key::Entity::find()
        .filter(idempotency_key::Column::UserId.is_in(wanted.iter().map(|(user, _)| *user)))
        .filter(
            idempotency_key::Column::IdemKey.is_in(wanted.iter().map(|(_, key)| key.to_string())),
        )
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|row| wanted.contains(&(row.user_id, row.idem_key.as_str())))
        .map(|row| ((row.user_id, row.idem_key.clone()), row))
        .collect())
}

/// Adds to `writes` several results (JSON) to store in the transaction of their effects, in one
/// statement. A concurrent twin of any of them fails the send with a unique violation:
/// [`contended_if_taken`] makes it `Contended` (the attempt runs again and finds the key).
pub fn record_many(writes: &mut Writes, results: &[(&IdempotentRequest, String)]) {
    if results.is_empty() {
        return;
    }
    let rows = results
        .iter()
        .map(|(request, response)| request.row(response.clone()));
    writes.insert(idempotency_key::Entity::insert_many(rows).into_query());
}

/// The error of a send that stored keys: a unique violation means a concurrent twin took one of
/// them first (`Contended`).
pub fn contended_if_taken(err: DbErr) -> AttemptError {
    if is_unique_violation(&err) {
        AttemptError::Contended
    } else {
        err.into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
