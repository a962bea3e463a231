//! Trusted documents (`TRUSTED_DOCUMENTS=<manifest>`): only the documents that first-party apps
//! shipped may run, as GraphQL-over-HTTP's trusted documents and Apollo's safelisting do.
//!
//! The manifest is Apollo's persisted-query manifest (`{"format":
//! "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "body", ...}]}`) or a
//! flat `{"<sha256>": "<document>"}` map (graphql-codegen's client preset,
//! `persistedDocuments`). A request names its document
//! - by id: `documentId` (GraphQL-over-HTTP's proposal; `sha256:` prefix accepted) or the APQ
//!   extension's `sha256Hash`; an id not listed is PERSISTED_QUERY_NOT_IN_LIST;
//! - or by its full text, whose SHA-256 must be listed; else QUERY_NOT_IN_SAFELIST.
//!
//! Both refusals come before the document is parsed or inspected, on every transport (POST, GET
//! and WebSocket `subscribe` all pass the admission). With `TRUSTED_DOCUMENTS_ADMINS_FREE`,
//! an administrator may still run any document (and the playground is served, for them).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use async_graphql::{Request, ServerError};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::documents::hex;
use super::top_level::{TopLevelCode, error};
use crate::infra::meters::UNTRUSTED_DOCUMENTS;

/// Where a request's `documentId` travels from the transport to the admission (the POST body's
/// and the GET URL's `documentId` are put there).
pub const DOCUMENT_ID: &str = "documentId";

/// The documents that may run.
#[derive(Debug)]
pub struct TrustedDocuments {
    /// Each document by the id it is listed under (lower case, without `sha256:`).
    by_id: HashMap<String, Arc<str>>,
    /// The SHA-256 of each listed document's text.
    text_hashes: HashSet<String>,
    /// Administrators may run any document.
    pub admins_free: bool,
}

impl TrustedDocuments {
    /// Reads the manifest at `path` (either format); an unreadable or empty one is an error.
    pub fn load(path: &Path, admins_free: bool) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read TRUSTED_DOCUMENTS {}", path.display()))?;
        let manifest: Value = serde_json::from_str(&text)
            .with_context(|| format!("TRUSTED_DOCUMENTS {} is not JSON", path.display()))?;
        let documents = Self::from_manifest(&manifest, admins_free)
            .with_context(|| format!("TRUSTED_DOCUMENTS {}", path.display()))?;
        tracing::info!(
            documents = documents.by_id.len(),
            path = %path.display(),
            admins_free,
            "trusted documents: only these may run"
        );
        Ok(documents)
    }

    fn from_manifest(manifest: &Value, admins_free: bool) -> anyhow::Result<Self> {
        let entries: Vec<(&str, &str)> = if manifest["format"] == "apollo-persisted-query-manifest"
        {
            let Some(operations) = manifest["operations"].as_array() else {
                bail!("an Apollo manifest needs `operations`");
            };
            operations
                .iter()
                .map(
                    |operation| match (operation["id"].as_str(), operation["body"].as_str()) {
                        (Some(id), Some(body)) => Ok((id, body)),
                        _ => bail!("every operation needs a string `id` and `body`: {operation}"),
                    },
                )
                .collect::<anyhow::Result<_>>()?
        } else if let Some(map) = manifest.as_object() {
            map.iter()
                .map(|(id, body)| match body.as_str() {
                    Some(body) => Ok((id.as_str(), body)),
                    None => bail!("the document of {id} is not a string"),
                })
                .collect::<anyhow::Result<_>>()?
        } else {
            bail!(
                "expected an Apollo persisted-query manifest or a {{\"hash\": \"document\"}} map"
            );
        };
        if entries.is_empty() {
            bail!("lists no document");
        }
        let mut documents = Self {
            by_id: HashMap::with_capacity(entries.len()),
            text_hashes: HashSet::with_capacity(entries.len()),
            admins_free,
        };
        for (id, body) in entries {
            documents.by_id.insert(normal_id(id), body.into());
            documents.text_hashes.insert(text_hash(body));
        }
        Ok(documents)
    }

    /// Lets `request` through when its document is listed (filling in the text of one named by
    /// id), or says why not. `admin`: the viewer is an administrator.
    pub fn admit(&self, request: &mut Request, admin: bool) -> Result<(), ServerError> {
        let id = named_id(request);
        if self.admins_free && admin {
            return match id {
                Some(id) if request.query.is_empty() => self.fill_in(request, &id),
                _ => Ok(()),
            };
        }
        match id {
            Some(id) => self.fill_in(request, &id),
            None if self.text_hashes.contains(&text_hash(&request.query)) => Ok(()),
            None => {
                UNTRUSTED_DOCUMENTS.increment("text", 1);
                Err(error(
                    TopLevelCode::QueryNotInSafelist,
                    "this server runs only its trusted documents: send a listed document's id \
                     (documentId or extensions.persistedQuery.sha256Hash) or its exact text",
                ))
            }
        }
    }

    fn fill_in(&self, request: &mut Request, id: &str) -> Result<(), ServerError> {
        match self.by_id.get(id) {
            Some(body) => {
                request.query = body.to_string();
                Ok(())
            }
            None => {
                UNTRUSTED_DOCUMENTS.increment("id", 1);
                Err(error(
                    TopLevelCode::PersistedQueryNotInList,
                    format!("no trusted document has the id {id}"),
                ))
            }
        }
    }
}

/// Without a manifest: a request naming its document by `documentId` alone is refused (there are
/// no trusted documents to name); the APQ extension is left to the persisted queries.
pub fn without_manifest(request: &mut Request) -> Result<(), ServerError> {
    if request.extensions.remove(DOCUMENT_ID).is_some() && request.query.is_empty() {
        return Err(error(
            TopLevelCode::PersistedQueryNotFound,
            "documentId names a trusted document, and this server keeps none (TRUSTED_DOCUMENTS \
             is unset): send the document's text",
        ));
    }
    Ok(())
}

/// The id a request names its document by (taken out of the request), if any.
fn named_id(request: &mut Request) -> Option<String> {
    let document_id = request.extensions.remove(DOCUMENT_ID);
    let persisted = request.extensions.remove("persistedQuery");
    let id = |value: async_graphql::Value| match serde_json::to_value(value).ok()? {
        Value::String(id) => Some(id),
        Value::Object(extension) => extension.get("sha256Hash")?.as_str().map(str::to_owned),
        _ => None,
    };
    document_id
        .and_then(id)
        .or_else(|| persisted.and_then(id))
        .map(|id| normal_id(&id))
}

/// An id as listed: lower case, without a `sha256:` prefix.
fn normal_id(id: &str) -> String {
    let id = id.trim();
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .to_ascii_lowercase()
}

fn text_hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ME: &str = "query Me { me { id } }";

    fn code(refused: Result<(), ServerError>) -> String {
        let error = refused.expect_err("refused");
        serde_json::to_value(&error).unwrap()["extensions"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn both_manifest_formats_list_documents_by_id_and_by_text() {
        let hash = text_hash(ME);
        let apollo = json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{ "id": hash, "name": "Me", "type": "query", "body": ME }]
        });
        let flat = json!({ hash.clone(): ME });
        for manifest in [apollo, flat] {
            let trusted = TrustedDocuments::from_manifest(&manifest, false).unwrap();
            let mut by_id = Request::new("");
            by_id.extensions.insert(
                DOCUMENT_ID.into(),
                async_graphql::Value::String(format!("sha256:{}", hash.to_uppercase())),
            );
            assert!(trusted.admit(&mut by_id, false).is_ok());
            assert_eq!(by_id.query, ME);
            assert!(trusted.admit(&mut Request::new(ME), false).is_ok());
            assert_eq!(
                code(trusted.admit(&mut Request::new("{ me { id } }"), false)),
                "QUERY_NOT_IN_SAFELIST"
            );
            let mut unknown = Request::new("");
            unknown.extensions.insert(
                "persistedQuery".into(),
                async_graphql::Value::from_json(json!({ "version": 1, "sha256Hash": "abc" }))
                    .unwrap(),
            );
            assert_eq!(
                code(trusted.admit(&mut unknown, false)),
                "PERSISTED_QUERY_NOT_IN_LIST"
            );
        }
    }

    #[test]
    fn administrators_run_any_document_only_when_the_flag_says_so() {
        let manifest = json!({ text_hash(ME): ME });
        let strict = TrustedDocuments::from_manifest(&manifest, false).unwrap();
        assert!(
            strict
                .admit(&mut Request::new("{ __typename }"), true)
                .is_err()
        );
        let free = TrustedDocuments::from_manifest(&manifest, true).unwrap();
        assert!(
            free.admit(&mut Request::new("{ __typename }"), true)
                .is_ok()
        );
        assert!(
            free.admit(&mut Request::new("{ __typename }"), false)
                .is_err()
        );
    }

    #[test]
    fn a_manifest_that_lists_nothing_or_is_malformed_is_refused() {
        for manifest in [
            json!({}),
            json!([]),
            json!({ "h": 1 }),
            json!({ "format": "apollo-persisted-query-manifest", "operations": [{ "id": "h" }] }),
        ] {
            assert!(
                TrustedDocuments::from_manifest(&manifest, false).is_err(),
                "{manifest}"
            );
        }
    }
}
