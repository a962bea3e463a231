//! Catalog: paging every product exactly once, exact stock, validated admin input, restocking.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::harness::{error_code, id_of, on_every_backend};

const PAGE: &str = "query($first: Int!, $after: String, $category: String) {
  products(first: $first, after: $after, category: $category) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name category price stock inStock } }
  }
}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_product_exactly_once() {
    on_every_backend(|server| async move {
        let mut created = vec![];
        for i in 0..25 {
            let category = if i % 3 == 0 { "audio" } else { "input" };
            created.push(
                server
                    .create_product(&format!("product {i}"), category, 1_000 + i, i)
                    .await,
            );
        }
        let walk = |category: Option<&'static str>| {
            let caller = server.anonymous();
            async move {
                let mut seen = vec![];
                let mut after: Option<String> = None;
                loop {
                    let data = caller
                        .data(
                            PAGE,
                            json!({ "first": 7, "after": after, "category": category }),
                        )
                        .await;
                    let connection = &data["products"];
                    for edge in connection["edges"].as_array().unwrap() {
                        seen.push(id_of(&edge["node"]["id"]));
                    }
                    if connection["pageInfo"]["hasNextPage"] == json!(false) {
                        return (seen, connection["totalCount"].as_u64().unwrap());
                    }
                    after = connection["pageInfo"]["endCursor"]
                        .as_str()
                        .map(str::to_owned);
                }
            }
        };
        let (all, total) = walk(None).await;
        assert_eq!(total, 25);
        assert_eq!(all, created, "every product once, in id order");
        let (audio, audio_total) = walk(Some("audio")).await;
        assert_eq!(audio_total, 9);
        assert_eq!(audio.len(), 9);
        assert_eq!(audio.iter().collect::<HashSet<_>>().len(), 9);

        for (first, after) in [
            (0, Value::Null),
            (101, Value::Null),
            (-1, Value::Null),
            (5, json!("not-a-cursor")),
        ] {
            let body = server
                .anonymous()
                .post(PAGE, json!({ "first": first, "after": after }))
                .await;
            assert_eq!(
                error_code(&body),
                "BAD_USER_INPUT",
                "first {first}, after {after}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_shows_exact_stock_and_restocking_adds_to_it() {
    on_every_backend(|server| async move {
        let mouse = server.create_product("무선 마우스", "마우스", 25_000, 50).await;
        let query = "query($id: ID!) { product(id: $id) { id name price stock inStock category } }";
        let data = server.anonymous().data(query, json!({ "id": mouse })).await;
        assert_eq!(
            data["product"],
            json!({ "id": mouse.to_string(), "name": "무선 마우스", "price": 25_000, "stock": 50, "inStock": true, "category": "마우스" })
        );
        assert_eq!(server.anonymous().data(query, json!({ "id": 987_654 })).await["product"], Value::Null);
        assert_eq!(error_code(&server.anonymous().post(query, json!({ "id": "abc" })).await), "BAD_USER_INPUT");

        let restock = "mutation($id: ID!, $q: Int!) { restockProduct(input: {productId: $id, quantity: $q}) { product { stock } userErrors { code field message } } }";
        let data = server.admin().data(restock, json!({ "id": mouse, "q": 5 })).await;
        assert_eq!(data["restockProduct"]["product"]["stock"], json!(55));
        for (id, quantity, code) in [
            (json!(mouse), 0, "INVALID_INPUT"),
            (json!(mouse), -4, "INVALID_INPUT"),
            (json!(987_654), 1, "NOT_FOUND"),
            (json!("abc"), 1, "INVALID_INPUT"),
        ] {
            let data = server.admin().data(restock, json!({ "id": id, "q": quantity })).await;
            assert_eq!(data["restockProduct"]["userErrors"][0]["code"], json!(code), "{id} {quantity}");
            assert_eq!(data["restockProduct"]["product"], Value::Null);
        }
        assert_eq!(server.anonymous().data(query, json!({ "id": mouse })).await["product"]["stock"], json!(55));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_products_are_refused_and_nothing_is_created() {
    on_every_backend(|server| async move {
        let create = "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code field message } } }";
        let cases = [
            (json!({ "name": "  ", "price": 1, "category": "c" }), "name"),
            (json!({ "name": "x", "price": -1, "category": "c" }), "price"),
            (json!({ "name": "x", "price": 1, "stock": -1, "category": "c" }), "stock"),
            (json!({ "name": "x", "price": 1, "category": "" }), "category"),
            (json!({ "name": "x".repeat(201), "price": 1, "category": "c" }), "name"),
        ];
        for (input, field) in cases {
            let data = server.admin().data(create, json!({ "input": input })).await;
            let error = &data["createProduct"]["userErrors"][0];
            assert_eq!(error["code"], json!("INVALID_INPUT"), "{input}");
            assert_eq!(error["field"], json!(["input", field]));
            assert_eq!(data["createProduct"]["product"], Value::Null);
        }
        let total = server.anonymous().data("{ products { totalCount } }", json!({})).await;
        assert_eq!(total["products"]["totalCount"], json!(0));
    })
    .await;
}
