//! The checked-in `schema.graphql` must be the schema the code serves.

#[test]
fn checked_in_schema_is_current() {
    let generated = commerce::graphql::sdl();
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
            .unwrap_or_default();
    assert!(
        generated == checked_in,
        "schema.graphql is stale: regenerate it with `cargo run -- schema > schema.graphql`"
    );
}
