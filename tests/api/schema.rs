//! The schema as clients see it: the checked-in `schema.graphql` must be the schema the code
//! serves, and every element of ours must say what it is.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::harness::on_every_backend;

#[test]
fn checked_in_schema_is_current() {
    let generated = commerce::schema::sdl();
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
            .unwrap_or_default();
    assert!(
        generated == checked_in,
        "schema.graphql is stale: regenerate it with `cargo run -- schema > schema.graphql`"
    );
}

/// The standard full introspection query, as GraphiQL sends it (deprecated fields, arguments,
/// input fields and enum values included).
const INTROSPECTION: &str = include_str!("fixtures/introspection-graphiql.graphql");

/// Types the GraphQL specification defines: described by the spec, not by us.
const BUILT_IN_SCALARS: [&str; 5] = ["Int", "Float", "String", "Boolean", "ID"];

/// Directives the GraphQL specification (or async-graphql) defines.
const BUILT_IN_DIRECTIVES: [&str; 5] = ["include", "skip", "deprecated", "specifiedBy", "oneOf"];

fn name_of(element: &Value) -> &str {
    element["name"].as_str().expect("a name")
}

fn undescribed(element: &Value) -> bool {
    element["description"]
        .as_str()
        .is_none_or(|text| text.trim().is_empty())
}

fn list<'a>(element: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    element[key].as_array().into_iter().flatten()
}

/// Every element of ours in an introspection result without a description: types (`Type`),
/// fields of objects and interfaces (`Type.field`), their arguments (`Type.field(arg)`), input
/// fields (`Input.field`), enum values (`Enum.VALUE`) and directives (`@directive`,
/// `@directive(arg)`).
fn missing_descriptions(schema: &Value) -> Vec<String> {
    let mut missing = BTreeSet::new();
    for ty in list(schema, "types") {
        let name = name_of(ty);
        if name.starts_with("__") || BUILT_IN_SCALARS.contains(&name) {
            continue;
        }
        if undescribed(ty) {
            missing.insert(name.to_owned());
        }
        for field in list(ty, "fields") {
            let field_name = name_of(field);
            if undescribed(field) {
                missing.insert(format!("{name}.{field_name}"));
            }
            for arg in list(field, "args").filter(|arg| undescribed(arg)) {
                missing.insert(format!("{name}.{field_name}({})", name_of(arg)));
            }
        }
        for input in list(ty, "inputFields").filter(|input| undescribed(input)) {
            missing.insert(format!("{name}.{}", name_of(input)));
        }
        for value in list(ty, "enumValues").filter(|value| undescribed(value)) {
            missing.insert(format!("{name}.{}", name_of(value)));
        }
    }
    for directive in list(schema, "directives") {
        let name = name_of(directive);
        if BUILT_IN_DIRECTIVES.contains(&name) {
            continue;
        }
        if undescribed(directive) {
            missing.insert(format!("@{name}"));
        }
        for arg in list(directive, "args").filter(|arg| undescribed(arg)) {
            missing.insert(format!("@{name}({})", name_of(arg)));
        }
    }
    missing.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_field_argument_and_enum_value_has_a_description() {
    on_every_backend(|server| async move {
        let data = server.anonymous().data(INTROSPECTION, json!({})).await;
        let schema = &data["__schema"];
        assert!(
            list(schema, "types").any(|ty| name_of(ty) == "Query"),
            "[{}] not an introspection result: {data}",
            server.backend
        );
        let missing = missing_descriptions(schema);
        assert!(
            missing.is_empty(),
            "[{}] {} schema elements have no description (add a `///` doc comment, or \
             `#[graphql(desc = \"...\")]` on an argument):\n{}",
            server.backend,
            missing.len(),
            missing.join("\n")
        );
    })
    .await;
}

#[test]
fn the_check_sees_every_kind_of_element() {
    let schema = json!({
        "types": [
            { "name": "__Type", "description": null, "fields": [{ "name": "kind", "args": [] }] },
            { "name": "String", "description": null },
            { "name": "Shop", "description": " ", "fields": [
                { "name": "open", "description": "Open now.", "args": [
                    { "name": "at", "description": null },
                    { "name": "zone", "description": "A time zone." }
                ] },
                { "name": "name", "description": "" }
            ] },
            { "name": "ShopInput", "description": "A shop.", "inputFields": [
                { "name": "name", "description": null }
            ] },
            { "name": "Kind", "description": "A kind.", "enumValues": [
                { "name": "BIG", "description": null },
                { "name": "SMALL", "description": "Small." }
            ] }
        ],
        "directives": [
            { "name": "skip", "description": null, "args": [{ "name": "if", "description": null }] },
            { "name": "cached", "description": null, "args": [{ "name": "ttl", "description": null }] }
        ]
    });
    assert_eq!(
        missing_descriptions(&schema),
        [
            "@cached",
            "@cached(ttl)",
            "Kind.BIG",
            "Shop",
            "Shop.name",
            "Shop.open(at)",
            "ShopInput.name",
        ]
    );
}
