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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Request, ServerError, ServerResult};

use crate::config::Settings;

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
            max_bytes: settings.max_query_bytes as usize,
            max_tokens: settings.max_query_tokens as usize,
            max_selections: settings.max_query_complexity as usize,
            max_depth: settings.max_query_depth as usize,
            max_introspection_depth: settings.max_introspection_depth as usize,
            max_mutation_fields: settings.max_mutation_fields as usize,
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
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::FragmentCycle(_) => "GRAPHQL_VALIDATION_FAILED",
            _ => "QUERY_TOO_COMPLEX",
        }
    }

    fn into_server_error(self) -> ServerError {
        let mut error = ServerError::new(self.to_string(), None);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", self.code());
        error
    }
}

/// What a request's document does, as far as the transport needs to know before executing it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The type of the operation the request selects (`None`: the document cannot execute).
    pub operation: Option<OperationType>,
    /// Fields at the root of the selected mutation (each one a mutation to rate-limit).
    pub mutation_fields: usize,
}

/// What a parsed document selects, as far as the transport needs to know; nothing when it fails
/// a limit (its execution refuses it and says why).
pub fn inspect_parsed(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    limits: &DocumentLimits,
) -> Inspection {
    if check_document(document, operation_name, limits).is_err() {
        return Inspection::default();
    }
    let Some(operation) = selected_operation(document, operation_name) else {
        return Inspection::default();
    };
    let mutation_fields = match operation.ty {
        OperationType::Mutation => root_fields(document, &operation.selection_set.node),
        _ => 0,
    };
    Inspection {
        operation: Some(operation.ty),
        mutation_fields,
    }
}

/// Refuses a request over any limit; otherwise leaves its parsed document in it.
pub fn enforce(request: &mut Request, limits: &DocumentLimits) -> Result<(), ServerError> {
    check_text(&request.query, limits).map_err(LimitError::into_server_error)?;
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        // execution parses it again and reports the syntax error (GRAPHQL_PARSE_FAILED)
        return Ok(());
    };
    check_document(document, operation_name.as_deref(), limits)
        .map_err(LimitError::into_server_error)
}

/// The size checks on the text: bytes, tokens and bracket nesting, in one linear scan.
pub fn check_text(text: &str, limits: &DocumentLimits) -> Result<(), LimitError> {
    if text.len() > limits.max_bytes {
        return Err(LimitError::TooLong(text.len(), limits.max_bytes));
    }
    let bytes = text.as_bytes();
    let (mut at, mut tokens, mut nesting) = (0, 0, 0usize);
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                at += 1;
                continue;
            }
            b'#' => {
                while at < bytes.len() && !matches!(bytes[at], b'\n' | b'\r') {
                    at += 1;
                }
                continue;
            }
            b'"' => at = skip_string(bytes, at),
            b'{' | b'(' | b'[' => {
                nesting += 1;
                if nesting > limits.max_nesting() {
                    return Err(LimitError::NestedTooDeep(limits.max_nesting()));
                }
                at += 1;
            }
            b'}' | b')' | b']' => {
                nesting = nesting.saturating_sub(1);
                at += 1;
            }
            b'.' if bytes[at..].starts_with(b"...") => at += 3,
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                at += 1;
                while at < bytes.len() && (bytes[at] == b'_' || bytes[at].is_ascii_alphanumeric()) {
                    at += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                at += 1;
                while at < bytes.len()
                    && (bytes[at].is_ascii_alphanumeric()
                        || matches!(bytes[at], b'.' | b'+' | b'-'))
                {
                    at += 1;
                }
            }
            _ => at += 1,
        }
        tokens += 1;
        if tokens > limits.max_tokens {
            return Err(LimitError::TooManyTokens(limits.max_tokens));
        }
    }
    Ok(())
}

/// The index after the string starting at `start` (a `"` or `"""`), or the end of the text.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut at = start + 3;
        while at < bytes.len() {
            if bytes[at..].starts_with(b"\\\"\"\"") {
                at += 4;
            } else if bytes[at..].starts_with(b"\"\"\"") {
                return at + 3;
            } else {
                at += 1;
            }
        }
        return at;
    }
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            b'\n' | b'\r' => return at,
            _ => at += 1,
        }
    }
    at.min(bytes.len())
}

/// The checks on the parsed document, each fragment measured once.
pub fn check_document(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    limits: &DocumentLimits,
) -> Result<(), LimitError> {
    let mut measure = Measure {
        document,
        limits,
        fragments: HashMap::new(),
    };
    let mut selections = 0u64;
    for (_, operation) in document.operations.iter() {
        let root = &operation.node.selection_set.node;
        let cost = measure.selection_set(root, 1)?;
        selections = selections.saturating_add(cost.selections);
        if selections > limits.max_selections as u64 {
            return Err(LimitError::TooManySelections(limits.max_selections));
        }
        measure.root_depths(root)?;
    }
    if let Some(operation) = selected_operation(document, operation_name)
        && operation.ty == OperationType::Mutation
    {
        let fields = root_fields(document, &operation.selection_set.node);
        if fields > limits.max_mutation_fields {
            return Err(LimitError::TooManyMutationFields(
                fields,
                limits.max_mutation_fields,
            ));
        }
    }
    Ok(())
}

/// The size of a selection set with its fragments expanded.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct Cost {
    /// Fields, spreads and inline fragments.
    selections: u64,
    /// Deepest field nesting below (a leaf field is 1).
    depth: usize,
    /// Deepest nesting of selection sets and spreads below.
    nesting: usize,
}

enum FragmentState {
    Measuring,
    Measured(Cost),
}

struct Measure<'a> {
    document: &'a ExecutableDocument,
    limits: &'a DocumentLimits,
    fragments: HashMap<&'a str, FragmentState>,
}

impl<'a> Measure<'a> {
    /// `level`: how deep this selection set sits (the operation's is 1).
    fn selection_set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Cost, LimitError> {
        if level > self.limits.max_recursion() {
            return Err(LimitError::RecursionTooDeep(self.limits.max_recursion()));
        }
        let mut total = Cost::default();
        for item in &set.items {
            let (inner, field) = match &item.node {
                Selection::Field(field) => {
                    let sub = &field.node.selection_set.node;
                    let inner = if sub.items.is_empty() {
                        Cost::default()
                    } else {
                        self.selection_set(sub, level + 1)?
                    };
                    (inner, true)
                }
                Selection::InlineFragment(inline) => (
                    self.selection_set(&inline.node.selection_set.node, level + 1)?,
                    false,
                ),
                Selection::FragmentSpread(spread) => (
                    self.fragment(&spread.node.fragment_name.node, level + 1)?,
                    false,
                ),
            };
            total.selections = total
                .selections
                .saturating_add(1)
                .saturating_add(inner.selections);
            if total.selections > self.limits.max_selections as u64 {
                return Err(LimitError::TooManySelections(self.limits.max_selections));
            }
            total.depth = total.depth.max(inner.depth + usize::from(field));
            total.nesting = total.nesting.max(inner.nesting + 1);
        }
        Ok(total)
    }

    /// A fragment's cost, measured the first time it is spread; 0 for an unknown one (validation
    /// reports it).
    fn fragment(&mut self, name: &'a Name, level: usize) -> Result<Cost, LimitError> {
        let cost = match self.fragments.get(name.as_str()) {
            Some(FragmentState::Measured(cost)) => *cost,
            Some(FragmentState::Measuring) => {
                return Err(LimitError::FragmentCycle(name.to_string()));
            }
            None => {
                let Some(definition) = self.document.fragments.get(name) else {
                    return Ok(Cost::default());
                };
                self.fragments
                    .insert(name.as_str(), FragmentState::Measuring);
                // the cost is relative to where the fragment sits, so it holds wherever it is
                // spread; `level` only bounds this walk's own recursion
                let cost = self.selection_set(&definition.node.selection_set.node, level)?;
                self.fragments
                    .insert(name.as_str(), FragmentState::Measured(cost));
                cost
            }
        };
        if level + cost.nesting > self.limits.max_recursion() + 1 {
            return Err(LimitError::RecursionTooDeep(self.limits.max_recursion()));
        }
        Ok(cost)
    }

    /// Depth limits, judged per root field: introspection (`__schema`, `__type`) by its own bound.
    fn root_depths(&mut self, root: &'a SelectionSet) -> Result<(), LimitError> {
        let mut visited = HashSet::new();
        let mut fields = vec![];
        collect_root_fields(self.document, root, &mut visited, &mut fields);
        for field in fields {
            let sub = &field.selection_set.node;
            let depth = if sub.items.is_empty() {
                1
            } else {
                1 + self.selection_set(sub, 2)?.depth
            };
            let name = field.name.node.as_str();
            if name == "__schema" || name == "__type" {
                if depth > self.limits.max_introspection_depth {
                    return Err(LimitError::IntrospectionTooDeep(
                        depth,
                        self.limits.max_introspection_depth,
                    ));
                }
            } else if depth > self.limits.max_depth {
                return Err(LimitError::TooDeep(depth, self.limits.max_depth));
            }
        }
        Ok(())
    }
}

/// The operation a request runs: the named one, or the only one.
fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    let mut operations = document.operations.iter();
    let found = match operation_name {
        Some(wanted) => operations.find(|(name, _)| name.is_some_and(|n| n.as_str() == wanted)),
        None => {
            let first = operations.next();
            operations.next().is_none().then_some(first).flatten()
        }
    };
    found.map(|(_, operation)| &operation.node)
}

/// The fields at the root of a selection set as execution collects them: fragments followed once,
/// one field per response key, `__typename` and the like not counted.
fn root_fields(document: &ExecutableDocument, root: &SelectionSet) -> usize {
    let mut visited = HashSet::new();
    let mut fields = vec![];
    collect_root_fields(document, root, &mut visited, &mut fields);
    fields
        .iter()
        .filter(|field| !field.name.node.starts_with("__"))
        .map(|field| field.response_key().node.as_str())
        .collect::<HashSet<_>>()
        .len()
}

fn collect_root_fields<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    visited: &mut HashSet<&'a str>,
    fields: &mut Vec<&'a async_graphql::parser::types::Field>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => fields.push(&field.node),
            Selection::InlineFragment(inline) => {
                collect_root_fields(document, &inline.node.selection_set.node, visited, fields)
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                if visited.insert(name.as_str())
                    && let Some(definition) = document.fragments.get(name)
                {
                    collect_root_fields(
                        document,
                        &definition.node.selection_set.node,
                        visited,
                        fields,
                    );
                }
            }
        }
    }
}

/// The extension that applies [`enforce`] to every request, whatever its transport.
pub struct DocumentLimitsExtension(pub DocumentLimits);

impl ExtensionFactory for DocumentLimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Enforcer(self.0))
    }
}

struct Enforcer(DocumentLimits);

#[async_graphql::async_trait::async_trait]
impl Extension for Enforcer {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        enforce(&mut request, &self.0)?;
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_CONFIGURABLE_DEPTH;

    const LIMITS: DocumentLimits = DocumentLimits {
        max_bytes: 65_536,
        max_tokens: 10_000,
        max_selections: 2_000,
        max_depth: 12,
        max_introspection_depth: 20,
        max_mutation_fields: 5,
    };

    fn check(query: &str) -> Result<(), LimitError> {
        check_text(query, &LIMITS)?;
        let document = async_graphql::parser::parse_query(query).expect("parses");
        check_document(&document, None, &LIMITS)
    }

    /// `query{...F0} fragment F0 on Query{...F1 ...F1} ... fragment F{n} on Query{__typename}`
    fn fragment_bomb(levels: usize) -> String {
        let mut query = String::from("query{...F0}");
        for level in 0..levels {
            let next = level + 1;
            query.push_str(&format!(
                " fragment F{level} on Query{{...F{next} ...F{next}}}"
            ));
        }
        query.push_str(&format!(" fragment F{levels} on Query{{__typename}}"));
        query
    }

    #[test]
    fn a_fragment_bomb_is_measured_without_expanding_it() {
        assert_eq!(check(&fragment_bomb(5)), Ok(()));
        assert_eq!(
            check(&fragment_bomb(30)),
            Err(LimitError::TooManySelections(2_000))
        );
        // a long chain of fragments is refused for its nesting, after a walk as deep as the limit
        assert_eq!(
            check(&fragment_bomb(500)),
            Err(LimitError::RecursionTooDeep(40))
        );
    }

    #[test]
    fn fragment_cycles_are_refused() {
        let cycle = "query{...A} fragment A on Query{...B} fragment B on Query{...A ...A}";
        assert_eq!(check(cycle), Err(LimitError::FragmentCycle("A".into())));
        let own = "{...A} fragment A on Query{__typename ...A}";
        assert_eq!(check(own), Err(LimitError::FragmentCycle("A".into())));
    }

    #[test]
    fn depth_counts_fields_through_fragments_and_introspection_has_its_own_bound() {
        let nested = |n: usize| format!("{{{}x{}}}", "a{".repeat(n - 1), "}".repeat(n - 1));
        assert_eq!(check(&nested(12)), Ok(()));
        assert_eq!(check(&nested(13)), Err(LimitError::TooDeep(13, 12)));
        let through_fragment = "{me{...O}} fragment O on User{orders{edges{node{items{product{alternatives{category{a{b{c{d{e}}}}}}}}}}}}";
        assert_eq!(check(through_fragment), Err(LimitError::TooDeep(13, 12)));
        let deep_types = format!(
            "{{__schema{{types{{{}name{}}}}}}}",
            "ofType{".repeat(15),
            "}".repeat(15)
        );
        assert_eq!(check(&deep_types), Ok(()));
        let too_deep_types = format!(
            "{{__schema{{types{{{}name{}}}}}}}",
            "ofType{".repeat(18),
            "}".repeat(18)
        );
        assert_eq!(
            check(&too_deep_types),
            Err(LimitError::IntrospectionTooDeep(21, 20))
        );
    }

    #[test]
    fn the_text_is_bounded_before_parsing() {
        let lists = format!("{{a(x:{}1{})}}", "[".repeat(5_000), "]".repeat(5_000));
        assert_eq!(
            check_text(&lists, &LIMITS),
            Err(LimitError::NestedTooDeep(LIMITS.max_nesting()))
        );
        let many = format!("{{{}}}", "a ".repeat(10_001));
        assert_eq!(
            check_text(&many, &LIMITS),
            Err(LimitError::TooManyTokens(10_000))
        );
        let long = format!("{{a}}#{}", "x".repeat(70_000));
        assert_eq!(
            check_text(&long, &LIMITS),
            Err(LimitError::TooLong(70_004, 65_536))
        );
        // brackets inside strings and comments do not count
        let quoted = format!(
            "{{a(x:\"{}\", y:\"\"\"{}\\\"\"\"{}\"\"\")}} # {}",
            "[".repeat(500),
            "{".repeat(500),
            "(".repeat(500),
            "[".repeat(500)
        );
        assert_eq!(check_text(&quoted, &LIMITS), Ok(()));
    }

    #[test]
    fn the_deepest_nesting_any_setting_accepts_parses() {
        let deepest = DocumentLimits {
            max_depth: MAX_CONFIGURABLE_DEPTH as usize,
            max_introspection_depth: MAX_CONFIGURABLE_DEPTH as usize,
            ..LIMITS
        };
        let depth = deepest.max_nesting() - 2;
        let query = format!("{{a(x:{}1{})}}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(check_text(&query, &deepest), Ok(()));
        let parsed = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || async_graphql::parser::parse_query(&query).is_ok())
            .expect("a thread")
            .join()
            .expect("the parser does not overflow a 2 MiB stack");
        assert!(parsed);
    }

    #[test]
    fn mutation_fields_are_counted_after_fragments_and_by_response_key() {
        let inspect = |query: &str| {
            let document = async_graphql::parser::parse_query(query).expect("parses");
            inspect_parsed(&document, None, &LIMITS)
        };
        let two = inspect(
            "mutation{a:chargeBalance(input:{amount:1}){balance} b:chargeBalance(input:{amount:1}){balance} __typename}",
        );
        assert_eq!(two.operation, Some(OperationType::Mutation));
        assert_eq!(two.mutation_fields, 2);
        let through_fragments = inspect(
            "mutation{...M ...M ... on Mutation{c:chargeBalance(input:{amount:1}){balance}}} fragment M on Mutation{a:chargeBalance(input:{amount:1}){balance} b:chargeBalance(input:{amount:1}){balance}}",
        );
        assert_eq!(through_fragments.mutation_fields, 3);
        let merged = inspect(
            "mutation{a:chargeBalance(input:{amount:1}){balance} a:chargeBalance(input:{amount:1}){entry{id}}}",
        );
        assert_eq!(merged.mutation_fields, 1);
        assert_eq!(
            inspect("{__typename}").operation,
            Some(OperationType::Query)
        );
        assert_eq!(inspect("query A{a} query B{b}").operation, None);
        let six = (0..6)
            .map(|i| format!("a{i}:chargeBalance(input:{{amount:1}}){{balance}}"))
            .collect::<String>();
        assert_eq!(
            check(&format!("mutation{{{six}}}")),
            Err(LimitError::TooManyMutationFields(6, 5))
        );
    }
}
