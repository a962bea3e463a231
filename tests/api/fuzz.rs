//! Generated hostile input against the real schema (proptest): documents built from the schema's
//! own fields with values of every wrong kind (out-of-range numbers, NUL and control characters,
//! wrong types, unknown fields), aliases, fragments (bombs and cycles among them), directives,
//! broken syntax, batches, and odd headers, thrown at a server process on the first database
//! server the harness has (SQLite without one).
//!
//! Every answer must be clean: an expected HTTP status, a JSON body, a code on every error and
//! never INTERNAL_SERVER_ERROR, within a time bound; the server must survive with its memory
//! bounded; and a request in which no mutation succeeded must leave the database exactly as it
//! was. `PROPTEST_CASES` sets the number of cases (default 256); a failure is shrunk to a small
//! case and printed.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sea_orm::{ActiveEnum, EntityTrait, QueryOrder};
use serde_json::{Map, Value, json};

use crate::harness::{FreshDatabase, ServerProcess, TestServer, backends, id_of, test_settings};

/// What the test arranged: ids worth aiming at (among random ones).
#[derive(Clone, Debug)]
struct World {
    users: Vec<i64>,
    products: Vec<i64>,
    orders: Vec<i64>,
    event: i64,
}

/// One generated request.
#[derive(Clone, Debug)]
struct Case {
    headers: Vec<(&'static str, String)>,
    body: String,
    /// The body holds at least one mutation.
    mutation: bool,
}

/// A root field of the schema: its kind, the field with `$v` for its one argument's variable,
/// that variable's type, and the values to try.
struct Template {
    mutation: bool,
    text: &'static str,
    variable: Option<&'static str>,
}

const TEMPLATES: &[Template] = &[
    Template {
        mutation: false,
        text: "products(first: 3, after: $v) { totalCount edges { cursor node { id name stock inStock alternatives(limit: 2) { id } } } pageInfo { hasNextPage } }",
        variable: Some("String"),
    },
    Template {
        mutation: false,
        text: "products(first: $v) { totalCount }",
        variable: Some("Int"),
    },
    Template {
        mutation: false,
        text: "products(category: $v) { totalCount edges { node { name } } }",
        variable: Some("String"),
    },
    Template {
        mutation: false,
        text: "product(id: $v) { id name price stock category description }",
        variable: Some("ID!"),
    },
    Template {
        mutation: false,
        text: "me { id name balance balanceHistory(first: 3) { totalCount edges { node { kind amount } } } orders(first: 3) { totalCount edges { node { id status total items { quantity product { name } } coupon { id } payment { amount } } } } coupons { id status } }",
        variable: None,
    },
    Template {
        mutation: false,
        text: "me { orders(status: $v) { totalCount } }",
        variable: Some("OrderStatus"),
    },
    Template {
        mutation: false,
        text: "order(id: $v) { id status total items { quantity } }",
        variable: Some("ID!"),
    },
    Template {
        mutation: false,
        text: "topSellers(days: $v) { from to entries { rank quantity product { name } } }",
        variable: Some("Int"),
    },
    Template {
        mutation: false,
        text: "couponEvents(activeOnly: $v) { id name remaining }",
        variable: Some("Boolean"),
    },
    Template {
        mutation: false,
        text: "couponEvent(id: $v) { id remaining }",
        variable: Some("ID!"),
    },
    Template {
        mutation: false,
        text: "outboxStats { pending failed }",
        variable: None,
    },
    Template {
        mutation: true,
        text: "chargeBalance(input: $v) { balance userErrors { code field } }",
        variable: Some("ChargeBalanceInput!"),
    },
    Template {
        mutation: true,
        text: "placeOrder(input: $v) { order { id status total } userErrors { code field ... on OutOfStockError { available alternatives { id } } } }",
        variable: Some("PlaceOrderInput!"),
    },
    Template {
        mutation: true,
        text: "createOrder(input: $v) { order { id status } userErrors { code field } }",
        variable: Some("PlaceOrderInput!"),
    },
    Template {
        mutation: true,
        text: "payOrder(input: $v) { order { id status } userErrors { code field } }",
        variable: Some("PayOrderInput!"),
    },
    Template {
        mutation: true,
        text: "cancelOrder(input: $v) { order { id status } userErrors { code field } }",
        variable: Some("CancelOrderInput!"),
    },
    Template {
        mutation: true,
        text: "issueCoupon(input: $v) { coupon { id } userErrors { code field } }",
        variable: Some("IssueCouponInput!"),
    },
    Template {
        mutation: true,
        text: "createUser(input: $v) { user { id } userErrors { code field } }",
        variable: Some("CreateUserInput!"),
    },
    Template {
        mutation: true,
        text: "createProduct(input: $v) { product { id } userErrors { code field } }",
        variable: Some("CreateProductInput!"),
    },
    Template {
        mutation: true,
        text: "restockProduct(input: $v) { product { stock } userErrors { code field } }",
        variable: Some("RestockProductInput!"),
    },
    Template {
        mutation: true,
        text: "createCouponEvent(input: $v) { couponEvent { id } userErrors { code field } }",
        variable: Some("CreateCouponEventInput!"),
    },
];

fn text() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => "[a-zA-Z0-9 -]{1,12}".prop_map(Value::from),
        2 => "\\PC{0,16}".prop_map(Value::from),
        1 => "[\u{0}-\u{1f}a]{1,6}".prop_map(Value::from),
        1 => Just(json!("\u{0}")),
        1 => Just(json!("x".repeat(300))),
        1 => Just(json!("'; DROP TABLE users; --")),
        1 => Just(json!("\u{feff}\u{202e}키보드\u{200b}")),
        1 => Just(json!("   ")),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (1i64..5).prop_map(Value::from),
        4 => (-3i64..120).prop_map(Value::from),
        1 => (1i64..100_000).prop_map(Value::from),
        1 => Just(json!(0)),
        1 => Just(json!(i64::MAX)),
        1 => Just(json!(i64::MIN)),
        1 => Just(json!(2_147_483_648_i64)),
        1 => Just(json!(-2_147_483_649_i64)),
        1 => Just(json!(1.5)),
        1 => Just(json!(1e300)),
        1 => Just(json!(10_000_000)),
        1 => Just(json!(10_000_001)),
    ]
    .boxed()
}

fn id(world: &World) -> BoxedStrategy<Value> {
    let known: Vec<i64> = world
        .users
        .iter()
        .chain(&world.products)
        .chain(&world.orders)
        .copied()
        .chain([world.event])
        .collect();
    prop_oneof![
        4 => proptest::sample::select(known).prop_map(|id| json!(id.to_string())),
        1 => proptest::sample::select(vec!["0", "-1", "abc", "1.0", "", "99999999999999999999", "9223372036854775807", "1\u{0}"])
            .prop_map(Value::from),
        1 => (0i64..200).prop_map(Value::from),
    ]
    .boxed()
}

/// Any value at all: what a variable of the wrong type gets.
fn junk() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!([1, "a"])),
        Just(json!({ "unknown": 1 })),
        number(),
        text(),
    ]
    .boxed()
}

/// An input object: each field of the input type present or not, usually of its kind.
fn input(world: &World, fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let _ = world;
    let parts: Vec<BoxedStrategy<Option<(&'static str, Value)>>> = fields
        .into_iter()
        .map(|(name, value)| {
            prop_oneof![
                12 => value.prop_map(move |v| Some((name, v))),
                1 => junk().prop_map(move |v| Some((name, v))),
                1 => Just(None),
            ]
            .boxed()
        })
        .collect();
    (parts, proptest::bool::weighted(0.05))
        .prop_map(|(parts, extra)| {
            let mut object: Map<String, Value> = parts
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            if extra {
                object.insert("noSuchField".into(), json!(1));
            }
            Value::Object(object)
        })
        .boxed()
}

fn items(world: &World) -> BoxedStrategy<Value> {
    proptest::collection::vec(
        (id(world), number())
            .prop_map(|(product, quantity)| json!({ "productId": product, "quantity": quantity })),
        0..4,
    )
    .prop_map(Value::from)
    .boxed()
}

/// Values for a template's variable.
fn value_for(template: &Template, world: &World) -> BoxedStrategy<Value> {
    let key = || text();
    match template.variable {
        None => Just(Value::Null).boxed(),
        Some("String") => {
            prop_oneof![text(), Just(Value::Null), Just(json!("bm90IGEgY3Vyc29y"))].boxed()
        }
        Some("Int") => number(),
        Some("ID!") => id(world),
        Some("Boolean") => prop_oneof![Just(json!(true)), Just(json!(false)), junk()].boxed(),
        Some("OrderStatus") => {
            prop_oneof![Just(json!("PENDING")), Just(json!("COMPLETED")), junk()].boxed()
        }
        Some("ChargeBalanceInput!") => {
            input(world, vec![("amount", number()), ("idempotencyKey", key())])
        }
        Some("PlaceOrderInput!") => input(
            world,
            vec![
                ("items", items(world)),
                ("couponId", id(world)),
                ("idempotencyKey", key()),
            ],
        ),
        Some("PayOrderInput!") | Some("CancelOrderInput!") => input(
            world,
            vec![("orderId", id(world)), ("idempotencyKey", key())],
        ),
        Some("IssueCouponInput!") => input(world, vec![("eventId", id(world))]),
        Some("CreateUserInput!") => input(
            world,
            vec![
                ("name", text()),
                (
                    "role",
                    prop_oneof![Just(json!("CUSTOMER")), Just(json!("ADMIN")), text()].boxed(),
                ),
            ],
        ),
        Some("CreateProductInput!") => input(
            world,
            vec![
                ("name", text()),
                ("category", text()),
                ("description", text()),
                ("price", number()),
                ("stock", number()),
            ],
        ),
        Some("RestockProductInput!") => input(
            world,
            vec![("productId", id(world)), ("quantity", number())],
        ),
        Some("CreateCouponEventInput!") => input(
            world,
            vec![
                ("name", text()),
                (
                    "discountType",
                    prop_oneof![Just(json!("PERCENT")), Just(json!("FIXED")), text()].boxed(),
                ),
                ("discountValue", number()),
                ("totalQuantity", number()),
                ("validDays", number()),
                ("minOrderAmount", number()),
                (
                    "startsAt",
                    prop_oneof![
                        Just(json!("2026-01-01T00:00:00Z")),
                        Just(json!("not a time")),
                        Just(json!("9999-12-31T23:59:59Z"))
                    ]
                    .boxed(),
                ),
            ],
        ),
        Some(other) => panic!("no values for {other}"),
    }
}

/// How a document is dressed up around its fields.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Plain,
    /// Every field behind a named fragment.
    Fragments,
    /// Plus a fragment bomb of this many levels.
    Bomb(usize),
    /// Plus two fragments spreading each other.
    Cycle,
    /// Fields repeated under this many aliases.
    Aliases(usize),
    /// Fields behind `@skip(if: $skip)`.
    Skipped,
}

/// One operation: a document and its variables.
fn operation(world: &World) -> BoxedStrategy<(String, Value, bool)> {
    let of_kind = |mutation: bool| {
        let chosen: Vec<usize> = (0..TEMPLATES.len())
            .filter(|&t| TEMPLATES[t].mutation == mutation)
            .collect();
        proptest::collection::vec(proptest::sample::select(chosen), 1..4)
    };
    // fields of one kind, as a client sends them; now and then a mix (refused by validation)
    let templates = prop_oneof![
        5 => of_kind(false),
        5 => of_kind(true),
        1 => proptest::collection::vec(0..TEMPLATES.len(), 1..4),
    ];
    let shape = prop_oneof![
        6 => Just(Shape::Plain),
        2 => Just(Shape::Fragments),
        1 => (0usize..45).prop_map(Shape::Bomb),
        1 => Just(Shape::Cycle),
        1 => (1usize..9).prop_map(Shape::Aliases),
        1 => Just(Shape::Skipped),
    ];
    let world = world.clone();
    (templates, shape, any::<bool>(), proptest::option::weighted(0.05, (0usize..400, "[{}()\\[\\]$:!@#\" a-z.]{0,3}")))
        .prop_flat_map(move |(chosen, shape, skip, damage)| {
            let values: Vec<BoxedStrategy<Value>> = chosen.iter().map(|&t| value_for(&TEMPLATES[t], &world)).collect();
            (Just(chosen), Just(shape), Just(skip), Just(damage), values)
        })
        .prop_map(|(chosen, shape, skip, damage, values)| {
            let mutation = TEMPLATES[chosen[0]].mutation;
            let root = if mutation { "Mutation" } else { "Query" };
            let mut declarations = vec![];
            let mut variables = Map::new();
            let mut fields = vec![];
            for (i, (&t, value)) in chosen.iter().zip(values).enumerate() {
                let template = &TEMPLATES[t];
                let name = format!("v{i}");
                let text = template.text.replace("$v", &format!("${name}"));
                if let Some(ty) = template.variable {
                    declarations.push(format!("${name}: {ty}"));
                    variables.insert(name, value);
                }
                let copies = match shape {
                    Shape::Aliases(n) => n,
                    _ => 1,
                };
                for copy in 0..copies {
                    let directive = if matches!(shape, Shape::Skipped) { " @skip(if: $skip)" } else { "" };
                    fields.push(format!("f{i}_{copy}: {text}{directive}"));
                }
            }
            if matches!(shape, Shape::Skipped) {
                declarations.push("$skip: Boolean!".into());
                variables.insert("skip".into(), json!(skip));
            }
            let mut fragments = String::new();
            let selection = match shape {
                Shape::Fragments => {
                    fragments = format!(" fragment Fields on {root} {{ {} }}", fields.join(" "));
                    "...Fields".to_owned()
                }
                Shape::Bomb(levels) => {
                    for level in 0..levels {
                        fragments.push_str(&format!(" fragment B{level} on {root} {{ ...B{n} ...B{n} }}", n = level + 1));
                    }
                    fragments.push_str(&format!(" fragment B{levels} on {root} {{ __typename }}"));
                    format!("{} ...B0", fields.join(" "))
                }
                Shape::Cycle => {
                    fragments = format!(" fragment C1 on {root} {{ __typename ...C2 }} fragment C2 on {root} {{ ...C1 }}");
                    format!("{} ...C1", fields.join(" "))
                }
                _ => fields.join(" "),
            };
            let keyword = if mutation { "mutation" } else { "query" };
            let declared = if declarations.is_empty() { String::new() } else { format!("({})", declarations.join(", ")) };
            let mut document = format!("{keyword} Op{declared} {{ {selection} }}{fragments}");
            if let Some((at, junk)) = damage {
                let at = at.min(document.len());
                let at = (0..=at).rev().find(|&i| document.is_char_boundary(i)).unwrap_or(0);
                document.insert_str(at, &junk);
            }
            let any_mutation = chosen.iter().any(|&t| TEMPLATES[t].mutation);
            (document, Value::Object(variables), any_mutation)
        })
        .boxed()
}

fn headers(world: &World) -> BoxedStrategy<Vec<(&'static str, String)>> {
    let users: Vec<String> = world.users.iter().map(i64::to_string).collect();
    let who = prop_oneof![
        1 => Just(vec![]),
        6 => proptest::sample::select(users).prop_map(|id| vec![("x-user-id", id)]),
        2 => Just(vec![("x-role", "ADMIN".to_owned())]),
        1 => proptest::sample::select(vec!["0", "-5", "abc", "987654", "99999999999999999999", " 1 "])
            .prop_map(|id| vec![("x-user-id", id.to_owned())]),
        1 => proptest::sample::select(vec!["Bearer x.y.z", "Basic Zm9vOmJhcg==", "Bearer", ""])
            .prop_map(|value| vec![("authorization", value.to_owned())]),
        1 => Just(vec![("x-role", "ROOT".to_owned())]),
    ];
    let accept = prop_oneof![
        8 => Just(None),
        3 => Just(Some("application/graphql-response+json")),
        2 => Just(Some("application/json")),
        1 => Just(Some("text/html")),
        1 => Just(Some("application/xml")),
    ];
    let content = prop_oneof![
        20 => Just("application/json"),
        1 => Just("text/plain"),
        1 => Just("application/json; charset=latin1"),
    ];
    (who, accept, content)
        .prop_map(|(mut headers, accept, content)| {
            if let Some(accept) = accept {
                headers.push(("accept", accept.to_owned()));
            }
            headers.push(("content-type", content.to_owned()));
            headers
        })
        .boxed()
}

fn case(world: &World) -> BoxedStrategy<Case> {
    let request = operation(world).prop_map(|(query, variables, mutation)| {
        (
            json!({ "query": query, "variables": variables, "operationName": "Op" }),
            mutation,
        )
    });
    let body = prop_oneof![
        10 => request.clone().prop_map(|(body, mutation)| (body.to_string(), mutation)),
        2 => proptest::collection::vec(request, 1..4).prop_map(|requests| {
            let mutation = requests.iter().any(|(_, m)| *m);
            (Value::from(requests.into_iter().map(|(b, _)| b).collect::<Vec<_>>()).to_string(), mutation)
        }),
        1 => "\\PC{0,64}".prop_map(|junk| (junk, false)),
        1 => Just(("[]".to_owned(), false)),
        1 => Just((r#"{"query": 5}"#.to_owned(), false)),
    ];
    (headers(world), body)
        .prop_map(|(headers, (body, mutation))| Case {
            headers,
            body,
            mutation,
        })
        .boxed()
}

/// Everything a refused request must leave alone.
async fn digest(db: &sea_orm::DatabaseConnection) -> Value {
    let balances = entity::balance::Entity::find()
        .order_by_asc(entity::balance::Column::UserId)
        .all(db)
        .await
        .unwrap();
    let ledger = entity::balance_ledger::Entity::find()
        .all(db)
        .await
        .unwrap();
    let products = entity::product::Entity::find()
        .order_by_asc(entity::product::Column::Id)
        .all(db)
        .await
        .unwrap();
    let orders = entity::order::Entity::find()
        .order_by_asc(entity::order::Column::Id)
        .all(db)
        .await
        .unwrap();
    let coupons = entity::user_coupon::Entity::find()
        .order_by_asc(entity::user_coupon::Column::Id)
        .all(db)
        .await
        .unwrap();
    let events = entity::coupon_event::Entity::find()
        .order_by_asc(entity::coupon_event::Column::Id)
        .all(db)
        .await
        .unwrap();
    let users = entity::user::Entity::find().all(db).await.unwrap();
    let keys = entity::idempotency_key::Entity::find()
        .all(db)
        .await
        .unwrap();
    json!({
        "balances": balances.iter().map(|b| (b.user_id, b.amount)).collect::<Vec<_>>(),
        "ledger": ledger.len(),
        "stock": products.iter().map(|p| (p.id, p.stock)).collect::<Vec<_>>(),
        "orders": orders.iter().map(|o| (o.id, o.status.to_value())).collect::<Vec<_>>(),
        "coupons": coupons.iter().map(|c| (c.id, c.status.to_value())).collect::<Vec<_>>(),
        "issued": events.iter().map(|e| (e.id, e.issued_quantity)).collect::<Vec<_>>(),
        "users": users.len(),
        "keys": keys.len(),
    })
}

/// True when some field of the answer is a payload without user errors: a mutation that may
/// have changed something.
fn something_succeeded(body: &Value) -> bool {
    let answers: Vec<&Value> = match body {
        Value::Array(answers) => answers.iter().collect(),
        single => vec![single],
    };
    answers.iter().any(|answer| {
        answer["data"].as_object().is_some_and(|fields| {
            fields
                .values()
                .any(|field| field["userErrors"].as_array().is_some_and(Vec::is_empty))
        })
    })
}

/// The codes in the `userErrors` of every payload of every answer.
fn user_error_codes(body: &Value) -> Vec<String> {
    let answers: Vec<&Value> = match body {
        Value::Array(answers) => answers.iter().collect(),
        single => vec![single],
    };
    answers
        .iter()
        .filter_map(|answer| answer["data"].as_object())
        .flat_map(|fields| fields.values())
        .filter_map(|field| field["userErrors"].as_array())
        .flatten()
        .filter_map(|error| error["code"].as_str().map(str::to_owned))
        .collect()
}

/// The errors of every answer in the body.
fn errors(body: &Value) -> Vec<&Value> {
    let answers: Vec<&Value> = match body {
        Value::Array(answers) => answers.iter().collect(),
        single => vec![single],
    };
    answers
        .into_iter()
        .flat_map(|answer| answer["errors"].as_array().into_iter().flatten())
        .collect()
}

/// How the answers went: statuses, error codes, and mutations that went through.
type Tally = std::sync::Mutex<std::collections::BTreeMap<String, usize>>;

fn count(tally: &Tally, what: String) {
    if let Ok(mut tally) = tally.lock() {
        *tally.entry(what).or_default() += 1;
    }
}

async fn check(
    server: &TestServer,
    db: &sea_orm::DatabaseConnection,
    tally: &Tally,
    case: Case,
) -> Result<(), String> {
    let before = if case.mutation {
        Some(digest(db).await)
    } else {
        None
    };
    let mut request = server
        .http
        .post(server.url("/graphql"))
        .timeout(Duration::from_secs(10))
        .body(case.body.clone());
    for (name, value) in &case.headers {
        request = request.header(*name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("no answer within 10 s: {e}"))?;
    let status = response.status().as_u16();
    if ![200, 400, 401, 406, 415, 429].contains(&status) {
        return Err(format!("unexpected status {status}"));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    let body: Value =
        serde_json::from_str(&text).map_err(|_| format!("not JSON ({status}): {text}"))?;
    count(tally, format!("HTTP {status}"));
    for error in errors(&body) {
        match error["extensions"]["code"].as_str() {
            None => return Err(format!("an error without a code: {error}")),
            Some("INTERNAL_SERVER_ERROR") => return Err(format!("an internal error: {body}")),
            Some(code) => count(tally, code.to_owned()),
        }
    }
    if something_succeeded(&body) {
        count(tally, "mutation applied".to_owned());
    }
    for code in user_error_codes(&body) {
        count(tally, format!("userErrors {code}"));
    }
    if let Some(before) = before
        && !something_succeeded(&body)
    {
        let after = digest(db).await;
        if before != after {
            return Err(format!(
                "a refused request changed the database: {body}\nbefore {before}\nafter {after}"
            ));
        }
    }
    Ok(())
}

/// Sets up users with money, products, a coupon event and orders to aim at.
async fn arrange(server: &TestServer) -> World {
    let mut users = vec![];
    for name in ["퍼저 1", "퍼저 2", "퍼저 3"] {
        users.push(server.customer(name, 1_000_000).await);
    }
    let mut products = vec![];
    for (name, stock) in [("마우스", 50), ("키보드", 1), ("모니터", 0)] {
        products.push(server.create_product(name, "입력", 10_000, stock).await);
    }
    let event = server
        .coupon_event("퍼징", "PERCENT", 10, 2, json!({}))
        .await;
    let mut orders = vec![];
    for (user, mutation) in [(users[0], "createOrder"), (users[1], "placeOrder")] {
        let placed = server
            .user(user)
            .data(
                &format!("mutation($p: ID!) {{ {mutation}(input: {{items: [{{productId: $p, quantity: 1}}]}}) {{ order {{ id }} }} }}"),
                json!({ "p": products[0].to_string() }),
            )
            .await;
        orders.push(id_of(&placed[mutation]["order"]["id"]));
    }
    World {
        users,
        products,
        orders,
        event,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_hostile_requests_get_clean_answers_and_change_nothing_when_refused() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    for backend in backends().await {
        let database = FreshDatabase::create(backend).await;
        let mut settings = test_settings(database.url.clone());
        settings.redis.redis_url = backend.redis_url.clone();
        settings.redis.redis_key_prefix = format!("fuzz{}:", std::process::id());
        settings.limits.rate_limit_user_per_sec = 0;
        let (mut process, server) = ServerProcess::start(backend.name, &settings).await;
        let world = arrange(&server).await;
        let started = process.resident_kib();
        let db = server.database().conn().clone();
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let handle = tokio::runtime::Handle::current();
        let (outcome, server, tally) = tokio::task::spawn_blocking(move || {
            let tally = Tally::default();
            let outcome = runner.run(&case(&world), |case| {
                handle
                    .block_on(check(&server, &db, &tally, case))
                    .map_err(TestCaseError::fail)
            });
            (outcome, server, tally)
        })
        .await
        .unwrap();
        if let Err(failure) = outcome {
            panic!("[{}] {failure}", backend.name);
        }
        let after = process.resident_kib();
        eprintln!(
            "[{}] {cases} generated requests; resident memory {started} KiB -> {after} KiB; answers: {:?}",
            backend.name,
            tally.into_inner().unwrap_or_default()
        );
        assert!(process.is_running(), "the server survived");
        assert!(
            after < started + 64 * 1024,
            "memory stays bounded: {started} KiB -> {after} KiB"
        );
        assert_eq!(server.get("/healthz").await.status(), 200);
        process.kill();
        database.remove().await;
    }
}
