//! GraphQL documents before execution: Apollo's automatic persisted queries, and parsed documents
//! kept for the next request with the same text.
//!
//! - **Persisted queries.** A request may carry `extensions.persistedQuery = {version: 1,
//!   sha256Hash}` and no document: the document stored under that hash is used (else the answer
//!   is `PersistedQueryNotFound`, code PERSISTED_QUERY_NOT_FOUND, and the client sends the
//!   document with its hash, which stores it). Documents are stored in memory and, with Redis, in
//!   Redis for every instance (`{REDIS_KEY_PREFIX}apq:{hash}`, kept a day after their last use). Over
//!   HTTP GET this lets a CDN cache `GET /graphql?extensions=…&variables=…` by hash.
//! - **Parsed documents.** Parsing (pest) is the largest CPU cost of a small request; the parsed
//!   form of recent documents (up to [`MAX_CACHED_TEXT`] bytes) is kept by text and cloned, up to
//!   [`PARSED_TEXT_BYTES`] of text in all. A parsed document takes about 14 times the memory of
//!   its text, so the bound is on bytes, not on documents: 2,000 distinct 15 KB documents (any
//!   client may send them) held 400 MB when the cache counted documents.
//!
//! Both run in the transport, before the document limits and the mutation count of the rate
//! limits, so a document sent by hash is measured and counted like any other.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError};
use sha2::{Digest, Sha256};

use super::limits::DocumentLimits;
use super::limits::document::{Inspection, inspect_parsed};
use super::limits::text::check_text;
use super::top_level::{TopLevelCode, error};
use crate::infra::redis::RedisConnection;

/// Text of the parsed documents kept, in bytes (their parsed forms take about 14 times that).
const PARSED_TEXT_BYTES: u64 = 2 * 1024 * 1024;
/// Longest document whose parsed form is kept.
pub const MAX_CACHED_TEXT: usize = 16 * 1024;
/// Persisted documents kept in memory (by total bytes).
const PERSISTED_BYTES: u64 = 32 * 1024 * 1024;
/// How long a persisted document is kept after its last use.
const PERSISTED_FOR: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone)]
pub struct Documents {
    parsed: moka::sync::Cache<String, Arc<ExecutableDocument>>,
    persisted: moka::sync::Cache<String, Arc<str>>,
    /// Redis and the key prefix of this deployment, when set.
    shared: Option<(RedisConnection, String)>,
}

impl Documents {
    pub fn new(shared: Option<(RedisConnection, String)>) -> Self {
        Self {
            parsed: moka::sync::Cache::builder()
                .weigher(|text: &String, _: &Arc<ExecutableDocument>| {
                    u32::try_from(text.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(PARSED_TEXT_BYTES)
                .build(),
            persisted: moka::sync::Cache::builder()
                .weigher(|hash: &String, text: &Arc<str>| {
                    u32::try_from(hash.len() + text.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(PERSISTED_BYTES)
                .time_to_idle(PERSISTED_FOR)
                .build(),
            shared,
        }
    }

    /// Fills in the document of a request sent by hash, or stores the document sent with its
    /// hash. A request without the extension is left as it is.
    pub async fn resolve_persisted(
        &self,
        request: &mut Request,
        limits: &DocumentLimits,
    ) -> Result<(), ServerError> {
        let Some(extension) = request.extensions.remove("persistedQuery") else {
            return Ok(());
        };
        let extension = serde_json::to_value(&extension).unwrap_or_default();
        let version = extension["version"].as_i64();
        let Some(hash) = extension["sha256Hash"]
            .as_str()
            .map(str::to_ascii_lowercase)
        else {
            return Err(error(
                TopLevelCode::BadRequest,
                "persistedQuery needs a sha256Hash",
            ));
        };
        if version != Some(1) {
            return Err(error(
                TopLevelCode::BadRequest,
                "only version 1 of persistedQuery is supported",
            ));
        }
        if request.query.is_empty() {
            return match self.stored(&hash).await {
                Some(text) => {
                    request.query = text.to_string();
                    Ok(())
                }
                None => Err(error(
                    TopLevelCode::PersistedQueryNotFound,
                    "PersistedQueryNotFound",
                )),
            };
        }
        if hex(&Sha256::digest(request.query.as_bytes())) != hash {
            return Err(error(
                TopLevelCode::BadRequest,
                "provided sha does not match query",
            ));
        }
        // a document over the limits is refused when it runs; it is never stored
        if check_text(&request.query, limits).is_ok() {
            self.store(hash, &request.query).await;
        }
        Ok(())
    }

    async fn stored(&self, hash: &str) -> Option<Arc<str>> {
        if let Some(text) = self.persisted.get(hash) {
            return Some(text);
        }
        let (redis, prefix) = self.shared.as_ref()?;
        let mut redis = redis.clone();
        let text: Option<String> = redis::cmd("GETEX")
            .arg(format!("{prefix}apq:{hash}"))
            .arg("EX")
            .arg(PERSISTED_FOR.as_secs())
            .query_async(&mut redis)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "persisted queries: Redis unavailable"))
            .ok()?;
        let text: Arc<str> = text?.into();
        self.persisted.insert(hash.to_owned(), text.clone());
        Some(text)
    }

    async fn store(&self, hash: String, text: &str) {
        if let Some((redis, prefix)) = &self.shared {
            let mut redis = redis.clone();
            let stored: Result<(), _> = redis::cmd("SET")
                .arg(format!("{prefix}apq:{hash}"))
                .arg(text)
                .arg("EX")
                .arg(PERSISTED_FOR.as_secs())
                .query_async(&mut redis)
                .await;
            if let Err(err) = stored {
                tracing::warn!(error = %err, "persisted queries: Redis unavailable; kept here only");
            }
        }
        self.persisted.insert(hash, text.into());
    }

    /// Parses the request's document (from the cache when its text was seen before), leaves it
    /// in the request for execution, and tells what it selects. A document over a limit, or that
    /// does not parse, inspects as nothing: its execution refuses it and says why.
    pub fn inspect(&self, request: &mut Request, limits: &DocumentLimits) -> Inspection {
        if check_text(&request.query, limits).is_err() {
            return Inspection::default();
        }
        if request.query.len() <= MAX_CACHED_TEXT {
            match self.parsed.get(&request.query) {
                Some(document) => request.set_parsed_query((*document).clone()),
                None => {
                    if let Ok(document) = request.parsed_query() {
                        let document = Arc::new(document.clone());
                        self.parsed.insert(request.query.clone(), document);
                    }
                }
            }
        }
        let operation_name = request.operation_name.clone();
        match request.parsed_query() {
            Ok(document) => inspect_parsed(document, operation_name.as_deref(), limits),
            Err(_) => Inspection::default(),
        }
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_documents_are_kept_up_to_a_bound_on_their_text() {
        let documents = Documents::new(None);
        let settings = crate::config::Settings::for_database("sqlite::memory:");
        let limits = DocumentLimits::from_settings(&settings);
        // 400 distinct documents of ~15 KB: 6 MB of text, three times the bound
        for n in 0..400 {
            let fields: Vec<String> = (0..700).map(|i| format!("f{n}_{i}: __typename")).collect();
            let mut request = Request::new(format!("{{ {} }}", fields.join(" ")));
            assert!(request.query.len() <= MAX_CACHED_TEXT);
            documents.inspect(&mut request, &limits);
        }
        documents.parsed.run_pending_tasks();
        let kept: u64 = documents
            .parsed
            .iter()
            .map(|(text, _)| text.len() as u64)
            .sum();
        assert!(
            kept > 0 && kept <= PARSED_TEXT_BYTES,
            "{kept} bytes of text kept"
        );
    }
}
