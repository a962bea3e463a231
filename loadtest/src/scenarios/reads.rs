//! `reads`: one read, flat out or at a fixed rate: a random product by id, the first page of the
//! catalog, a random customer's balance, or the cached top sellers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Context, Outcome};
use crate::client::{Client, MISSING_DATA, Reply, Viewer};
use crate::load::{self, LoadArgs};
use crate::report::Report;
use crate::setup::{self, NewProduct, Setup};

const PRODUCT: &str = "query($id: ID!) { product(id: $id) { id name price stock } }";
const PRODUCTS: &str = "{ products(first: 20) { edges { node { id stock } } } }";
const BALANCE: &str = "{ me { balance } }";
const TOP_SELLERS: &str =
    "{ topSellers(days: 3, limit: 5) { entries { rank quantity product { id } } } }";
const PLACE_ORDER: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: { items: $items }) { order { id } userErrors { code } } }";

#[derive(ValueEnum, Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadQuery {
    /// `product(id)` of a random product.
    Product,
    /// `products(first: 20)`.
    Products,
    /// `me { balance }` of a random customer.
    Balance,
    /// `topSellers(days: 3, limit: 5)`.
    TopSellers,
}

impl ReadQuery {
    /// The operation sent.
    fn text(self) -> &'static str {
        match self {
            Self::Product => PRODUCT,
            Self::Products => PRODUCTS,
            Self::Balance => BALANCE,
            Self::TopSellers => TOP_SELLERS,
        }
    }
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ReadsArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub load: LoadArgs,
    /// The read to run.
    #[arg(long, value_enum)]
    pub query: ReadQuery,
    /// Products to create.
    #[arg(long, default_value_t = 1_000)]
    pub products: usize,
    /// Customers to create.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// Orders placed during setup, so that the top sellers are not empty.
    #[arg(long, default_value_t = 50)]
    pub orders: usize,
}

pub async fn run(ctx: &Context, args: &ReadsArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        args.products > 0 && args.users > 0,
        "--products and --users must be positive"
    );
    let mut report = Report::new("reads", args);
    let setup = Setup::new(ctx.client.clone(), ctx.setup_concurrency, "reads");
    let catalog = {
        let mut rng = rand::rng();
        (0..args.products)
            .map(|_| NewProduct {
                price: rng.random_range(10..=500) * 100,
                stock: 1_000_000,
            })
            .collect()
    };
    let products = setup.products(catalog).await?;
    let users = setup.users(args.users).await?;
    let product_ids: Vec<i64> = products.iter().map(|p| p.id).collect();
    place_some_orders(&setup, &users, &product_ids, args.orders).await?;
    if matches!(args.query, ReadQuery::TopSellers) && args.orders > 0 {
        wait_for_ranking(setup.client()).await?;
    }
    report.setup_secs = setup.elapsed().as_secs_f64();

    println!("run: {}, {}", args.query.text(), args.load.mode());
    let client = ctx.client.clone();
    let product_ids = Arc::new(product_ids);
    let users = Arc::new(users);
    let query = args.query;
    let (tally, elapsed) = load::run(&args.load, move || {
        let (user, product) = {
            let mut rng = rand::rng();
            (
                *users.choose(&mut rng).expect("users"),
                *product_ids.choose(&mut rng).expect("products"),
            )
        };
        read(client.clone(), query, user, product)
    })
    .await;
    report.load = Some(tally.summary(elapsed));
    Ok(Outcome {
        report,
        initial_stock: setup::initial_stock(&products),
    })
}

/// One read, whose answer must hold what was asked for.
async fn read(client: Client, query: ReadQuery, user: i64, product: i64) -> Reply {
    let variables = match query {
        ReadQuery::Product => json!({ "id": product.to_string() }),
        _ => Value::Null,
    };
    let reply = client
        .send(Viewer::User(user), query.text(), variables)
        .await;
    reply.require(MISSING_DATA, |r| match query {
        ReadQuery::Product => r.data("/product/id").is_string(),
        ReadQuery::Products => r
            .data("/products/edges")
            .as_array()
            .is_some_and(|edges| !edges.is_empty()),
        ReadQuery::Balance => r.data("/me/balance").is_i64(),
        ReadQuery::TopSellers => r.data("/topSellers/entries").is_array(),
    })
}

/// `count` orders of the first ten products by the first customers, for the ranking.
async fn place_some_orders(
    setup: &Setup,
    users: &[i64],
    products: &[i64],
    count: usize,
) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let step = Instant::now();
    let buyers = &users[..users.len().min(count)];
    setup.charge(buyers, setup::MAX_CHARGE).await?;
    let hot = &products[..products.len().min(10)];
    for i in 0..count {
        let (product, quantity) = {
            let mut rng = rand::rng();
            (
                *hot.choose(&mut rng).expect("products"),
                rng.random_range(1..=5),
            )
        };
        let items = json!([{ "productId": product.to_string(), "quantity": quantity }]);
        setup
            .client()
            .expect(
                Viewer::User(buyers[i % buyers.len()]),
                PLACE_ORDER,
                json!({ "items": items }),
            )
            .await?;
    }
    println!(
        "setup: {count} orders in {:.1} s",
        step.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits (up to 30 s) until the cached top sellers show the setup's sales.
async fn wait_for_ranking(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = client
            .expect(Viewer::Anonymous, TOP_SELLERS, Value::Null)
            .await?;
        let entries = data
            .pointer("/topSellers/entries")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if entries > 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "topSellers still empty after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
