//! The limits on documents that attacks and real clients send.

use async_graphql::parser::types::OperationType;

use super::document::{check_document, inspect_parsed};
use super::text::check_text;
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
