//! Limits measured on the document as it would execute, before anything else looks at it.
//!
//! async-graphql's own depth, complexity and recursion checks walk fragments by expanding every
//! spread, so a document of a few hundred bytes whose fragments each spread the next one twice
//! costs 2^n steps (and as much memory) before any limit answers; its parser also recurses
//! without bound into nested list and object literals. Every request therefore passes these
//! checks first, in time linear in its size:
//!
//! 1. the text: at most `MAX_QUERY_BYTES` bytes, `MAX_QUERY_TOKENS` tokens and
//!    [`DocumentLimits::max_nesting`] nested brackets (a scan, no parsing);
//! 2. the parsed document, with every fragment measured once: no fragment cycle; at most
//!    `MAX_QUERY_COMPLEXITY` selections once fragments are expanded; fields at most
//!    `MAX_QUERY_DEPTH` deep (introspection, under `__schema` / `__type`, at most
//!    `MAX_INTROSPECTION_DEPTH`); selection sets and spreads nested at most
//!    [`DocumentLimits::max_recursion`] deep; at most `MAX_MUTATION_FIELDS` fields at the root of
//!    a mutation.
//!
//! A refusal is a QUERY_TOO_COMPLEX error (a fragment cycle: GRAPHQL_VALIDATION_FAILED). The parsed
//! document is kept in the request, so it is parsed once.
//!
//! [`text`] scans the text, [`document`] measures the parsed document, [`enforcement`] applies
//! both to every request.

pub mod document;
pub mod enforcement;
#[cfg(test)]
mod tests;
pub mod text;

use async_graphql::ServerError;

use crate::config::Settings;
use crate::graphql::top_level::{self, TopLevelCode};

/// The limits, from the settings.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DocumentLimits {
    pub max_bytes: usize,
    pub max_tokens: usize,
    /// Most selections (fields, spreads, inline fragments) once fragments are expanded.
    pub max_selections: usize,
    /// Deepest field nesting of a data query.
    pub max_depth: usize,
    /// Deepest field nesting under `__schema` or `__type`.
    pub max_introspection_depth: usize,
    /// Most fields at the root of a mutation.
    pub max_mutation_fields: usize,
}

impl DocumentLimits {
    /// The limits set by the settings.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max_bytes: settings.limits.max_query_bytes as usize,
            max_tokens: settings.limits.max_query_tokens as usize,
            max_selections: settings.limits.max_query_complexity as usize,
            max_depth: settings.limits.max_query_depth as usize,
            max_introspection_depth: settings.limits.max_introspection_depth as usize,
            max_mutation_fields: settings.limits.max_mutation_fields as usize,
        }
    }

    /// Deepest nesting of selection sets and fragment spreads (what async-graphql calls the
    /// recursive depth): enough for fields at the deepest allowed depth, each behind a fragment.
    pub fn max_recursion(&self) -> usize {
        (2 * self.max_depth.max(self.max_introspection_depth)).max(32)
    }

    /// Deepest nesting of `{`, `(` and `[` in the text: the selections plus arguments and their
    /// list and object values.
    pub fn max_nesting(&self) -> usize {
        self.max_recursion() + 16
    }
}

/// Why a document is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the document is {0} bytes long; at most {1} are accepted")]
    TooLong(usize, usize),
    #[error("the document has more than {0} tokens")]
    TooManyTokens(usize),
    #[error("the document nests brackets more than {0} deep")]
    NestedTooDeep(usize),
    #[error("fragment {0} spreads itself")]
    FragmentCycle(String),
    #[error("the query selects more than {0} fields once its fragments are expanded")]
    TooManySelections(usize),
    #[error("the query nests fields {0} deep; at most {1} are accepted")]
    TooDeep(usize, usize),
    #[error("the introspection query nests fields {0} deep; at most {1} are accepted")]
    IntrospectionTooDeep(usize, usize),
    #[error("selection sets and fragments nest more than {0} deep")]
    RecursionTooDeep(usize),
    #[error("a mutation may hold at most {1} fields; this one holds {0}")]
    TooManyMutationFields(usize, usize),
}

impl LimitError {
    pub fn code(&self) -> TopLevelCode {
        match self {
            LimitError::FragmentCycle(_) => TopLevelCode::GraphqlValidationFailed,
            _ => TopLevelCode::QueryTooComplex,
        }
    }

    fn into_server_error(self) -> ServerError {
        top_level::error(self.code(), self.to_string())
    }
}
