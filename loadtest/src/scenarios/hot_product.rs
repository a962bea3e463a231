//! `hot-product`: one product with stock S and many customers buying one unit each, over and
//! over, until they are told OUT_OF_STOCK. Exactly S orders must succeed (no overselling, no
//! lost sale), and no answer may be anything but OK or OUT_OF_STOCK.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use super::{Context, Outcome};
use crate::client::{OK, Viewer};
use crate::report::{Check, Report, Tally};
use crate::setup::{self, NewProduct, Setup};

const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
const PLACE_ORDER: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: { items: $items }) { order { id status } userErrors { code } } }";
const PRICE: i64 = 1_000;

#[derive(Args, Debug, Clone, Serialize)]
pub struct HotProductArgs {
    /// Stock of the one product.
    #[arg(long, default_value_t = 5_000)]
    pub stock: i64,
    /// Concurrent customers (one user each).
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Give up after this many seconds even if some clients never saw OUT_OF_STOCK.
    #[arg(long, default_value_t = 300.0)]
    pub max_duration: f64,
}

pub async fn run(ctx: &Context, args: &HotProductArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(args.clients > 0, "--clients must be positive");
    let mut report = Report::new("hot-product", args);
    let setup = Setup::new(ctx.client.clone(), ctx.setup_concurrency, "hot-product");
    let products = setup
        .products(vec![NewProduct {
            price: PRICE,
            stock: args.stock,
        }])
        .await?;
    let product = products[0].id;
    let users = setup.users(args.clients).await?;
    // every customer could buy the whole stock (up to the balance limit)
    setup
        .charge(
            &users,
            (args.stock * PRICE).clamp(PRICE, setup::MAX_BALANCE),
        )
        .await?;
    report.setup_secs = setup.elapsed().as_secs_f64();

    println!(
        "run: {} customers buy 1 unit of product {product} (stock {}) until OUT_OF_STOCK",
        args.clients, args.stock
    );
    let (go, ready) = watch::channel(None::<Instant>);
    let give_up = Duration::from_secs_f64(args.max_duration);
    let items = Arc::new(json!({ "items": [{ "productId": product.to_string(), "quantity": 1 }] }));
    let mut clients = tokio::task::JoinSet::new();
    for user in users {
        let client = ctx.client.clone();
        let items = items.clone();
        let mut ready = ready.clone();
        clients.spawn(async move {
            let mut tally = Tally::default();
            let mut last_success = None;
            let Ok(start) = ready.wait_for(Option::is_some).await.map(|start| *start) else {
                return (tally, None);
            };
            let start = start.expect("started");
            loop {
                let sent = Instant::now();
                let reply = client
                    .send(Viewer::User(user), PLACE_ORDER, (*items).clone())
                    .await;
                tally.record(sent - start, sent.elapsed(), &reply);
                if reply.is_ok() {
                    last_success = Some(Instant::now());
                }
                if reply.outcome == OUT_OF_STOCK || start.elapsed() > give_up {
                    break;
                }
            }
            (tally, last_success)
        });
    }
    let start = Instant::now();
    go.send(Some(start))?;
    let mut tally = Tally::default();
    let mut sold_out_at = None;
    while let Some(joined) = clients.join_next().await {
        let (client_tally, last_success) = joined?;
        tally.merge(client_tally);
        sold_out_at = sold_out_at.max(last_success);
    }
    let elapsed = start.elapsed();

    let successes = tally.count(OK);
    let selling = sold_out_at.map_or(Duration::ZERO, |at| at - start);
    report.result("successes", successes);
    report.result("sold_out_after_secs", selling.as_secs_f64());
    report.result(
        "orders_per_sec_while_stock_lasted",
        successes as f64 / selling.as_secs_f64().max(1e-9),
    );
    report.check(Check::new(
        "successes = stock",
        successes == args.stock as u64,
        format!("{successes} orders succeeded, stock was {}", args.stock),
    ));
    let unexpected = tally.unexpected(&[OK, OUT_OF_STOCK]);
    report.check(Check::new(
        "only OK and OUT_OF_STOCK",
        unexpected.is_empty(),
        if unexpected.is_empty() {
            "no other outcome".to_owned()
        } else {
            format!("other outcomes: {unexpected:?}")
        },
    ));
    let left = ctx
        .client
        .expect(
            Viewer::Anonymous,
            "query($id: ID!) { product(id: $id) { stock } }",
            json!({ "id": product.to_string() }),
        )
        .await?;
    let left = left.pointer("/product/stock").and_then(|v| v.as_i64());
    report.check(Check::new(
        "stock left = 0",
        left == Some(0),
        format!("product {product} has stock {left:?}"),
    ));
    report.load = Some(tally.summary(elapsed));
    Ok(Outcome {
        report,
        initial_stock: setup::initial_stock(&products),
    })
}
