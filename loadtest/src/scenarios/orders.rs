//! `orders`: random customers place paid orders of 1-3 random products (1-3 units each) against a
//! catalog with ample stock and balances that cover the whole run: the throughput and latency of
//! `placeOrder`, the server's main write path.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Context, Outcome};
use crate::chart::{self, Labels, Series};
use crate::client::{OK, Viewer};
use crate::load::{self, LoadArgs};
use crate::report::{self, Report};
use crate::setup::{self, NewProduct, Setup};

const PLACE_ORDER: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: { items: $items }) { order { id status total } userErrors { code } } }";

#[derive(Args, Debug, Clone, Serialize)]
pub struct OrdersArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub load: LoadArgs,
    /// Customers to create (each order is placed by a random one).
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Products to create, priced 1,000 to 50,000 won.
    #[arg(long, default_value_t = 1_000)]
    pub products: usize,
    /// Initial stock of each product.
    #[arg(long, default_value_t = 1_000_000)]
    pub stock: i64,
    /// Won charged to each customer before the run (an order costs about 100,000 on average).
    #[arg(long, default_value_t = 10_000_000)]
    pub balance: i64,
    /// Write an SVG chart of p50 and p99 latency per second here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

pub async fn run(ctx: &Context, args: &OrdersArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        args.users > 0 && args.products > 0,
        "--users and --products must be positive"
    );
    let mut report = Report::new("orders", args);
    let setup = Setup::new(ctx.client.clone(), ctx.setup_concurrency, "orders");
    let catalog: Vec<NewProduct> = {
        let mut rng = rand::rng();
        (0..args.products)
            .map(|_| NewProduct {
                price: rng.random_range(10..=500) * 100,
                stock: args.stock,
            })
            .collect()
    };
    let products = setup.products(catalog).await?;
    let users = setup.users(args.users).await?;
    setup.charge(&users, args.balance).await?;
    report.setup_secs = setup.elapsed().as_secs_f64();
    report.result("user_ids", setup::id_range(&users));
    report.result(
        "product_ids",
        setup::id_range(&products.iter().map(|p| p.id).collect::<Vec<_>>()),
    );

    println!("run: placeOrder, {}", args.load.mode());
    let client = ctx.client.clone();
    let product_ids: Arc<Vec<i64>> = Arc::new(products.iter().map(|p| p.id).collect());
    let user_ids = Arc::new(users);
    let (tally, elapsed) = load::run(&args.load, move || {
        let (user, items) = random_order(&user_ids, &product_ids);
        let client = client.clone();
        async move {
            client
                .send(Viewer::User(user), PLACE_ORDER, json!({ "items": items }))
                .await
                .require("NOT_COMPLETED", |reply| {
                    reply.data("/placeOrder/order/status") == "COMPLETED"
                })
        }
    })
    .await;

    let seconds = report::per_second(&tally.samples);
    report.result(
        "per_second",
        seconds
            .iter()
            .map(|(second, latency)| {
                json!({ "second": second, "requests": latency.count, "p50_ms": latency.p50, "p99_ms": latency.p99 })
            })
            .collect::<Vec<_>>(),
    );
    report.result("orders_completed", tally.count(OK));
    if let Some(path) = &args.chart {
        let series = |name: &str, color, pick: fn(&report::Latency) -> f64| Series {
            name: name.into(),
            color,
            points: seconds
                .iter()
                .map(|(second, latency)| (*second as f64, pick(latency)))
                .collect(),
        };
        let svg = chart::line_chart(
            &Labels {
                title: &format!("placeOrder latency per second ({})", args.load.mode()),
                x: "second of the run",
                y: "latency (ms)",
            },
            &[
                series("p50", "#1f77b4", |l| l.p50),
                series("p99", "#d62728", |l| l.p99),
            ],
        );
        std::fs::write(path, svg)?;
        println!("chart: {}", path.display());
    }
    report.load = Some(tally.summary(elapsed));
    Ok(Outcome {
        report,
        initial_stock: setup::initial_stock(&products),
    })
}

/// A random customer and 1-3 lines of distinct random products, 1-3 units each.
fn random_order(users: &[i64], products: &[i64]) -> (i64, Value) {
    let mut rng = rand::rng();
    let user = *users.choose(&mut rng).expect("at least one user");
    let lines = rng.random_range(1..=3);
    let items: Vec<Value> = products
        .choose_multiple(&mut rng, lines)
        .map(|id| json!({ "productId": id.to_string(), "quantity": rng.random_range(1..=3) }))
        .collect();
    (user, Value::Array(items))
}
