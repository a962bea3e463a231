//! Preparing a scenario's data through the admin API: users, their balances, products and coupon
//! events, with a bounded number of requests in flight, timing each step.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use crate::client::{Client, Viewer};

/// The server's largest single charge (`MAX_CHARGE_AMOUNT`, default).
pub const MAX_CHARGE: i64 = 10_000_000;
/// The server's largest balance (`MAX_BALANCE`, default).
pub const MAX_BALANCE: i64 = 1_000_000_000;

const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } userErrors { code message } } }";
const CHARGE: &str = "mutation($input: ChargeBalanceInput!) { chargeBalance(input: $input) { balance userErrors { code message } } }";
const CREATE_PRODUCT: &str = "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code message } } }";
const CREATE_EVENT: &str = "mutation($input: CreateCouponEventInput!) { createCouponEvent(input: $input) { couponEvent { id } userErrors { code message } } }";

/// A product to create.
#[derive(Clone, Debug)]
pub struct NewProduct {
    pub price: i64,
    pub stock: i64,
}

/// A product the tool created, with the stock it started with.
#[derive(Copy, Clone, Debug)]
pub struct Product {
    pub id: i64,
    pub stock: i64,
}

/// Initial stock by product id, of the products a run created (what the invariant checks use).
pub fn initial_stock(products: &[Product]) -> BTreeMap<i64, i64> {
    products.iter().map(|p| (p.id, p.stock)).collect()
}

/// The admin side of a run's preparation.
pub struct Setup {
    client: Client,
    concurrency: usize,
    started: Instant,
    /// Names of what this run creates start with this, e.g. `lt-orders-1767225600`.
    tag: String,
}

impl Setup {
    pub fn new(client: Client, concurrency: usize, scenario: &str) -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            client,
            concurrency: concurrency.max(1),
            started: Instant::now(),
            tag: format!("lt-{scenario}-{epoch}"),
        }
    }

    /// Time since the setup began.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates `count` customers; their ids in creation order.
    pub async fn users(&self, count: usize) -> anyhow::Result<Vec<i64>> {
        let step = Instant::now();
        let ids = self
            .bounded(0..count, |i| async move {
                let name = format!("{}-user-{i}", self.tag);
                let data = self
                    .client
                    .expect(
                        Viewer::Admin,
                        CREATE_USER,
                        json!({ "input": { "name": name } }),
                    )
                    .await?;
                id_at(&data, "/createUser/user/id")
            })
            .await?;
        done(step, &plural(count, "user"));
        Ok(ids)
    }

    /// Adds `amount` won to each user's balance, in charges of at most [`MAX_CHARGE`].
    pub async fn charge(&self, users: &[i64], amount: i64) -> anyhow::Result<()> {
        let step = Instant::now();
        let charges = (amount
            .max(1)
            .unsigned_abs()
            .div_ceil(MAX_CHARGE.unsigned_abs())) as i64;
        let work = users.iter().flat_map(|&user| {
            (0..charges).map(move |n| (user, (amount - n * MAX_CHARGE).min(MAX_CHARGE)))
        });
        self.bounded(work, |(user, won)| async move {
            self.client
                .expect(
                    Viewer::User(user),
                    CHARGE,
                    json!({ "input": { "amount": won } }),
                )
                .await
                .map(drop)
        })
        .await?;
        done(
            step,
            &format!("{} charged {amount} won", plural(users.len(), "user")),
        );
        Ok(())
    }

    /// Creates the products; they come back in the order given.
    pub async fn products(&self, products: Vec<NewProduct>) -> anyhow::Result<Vec<Product>> {
        let step = Instant::now();
        let count = products.len();
        let created = self
            .bounded(products.into_iter().enumerate(), |(i, new)| async move {
                let input = json!({
                    "name": format!("{}-product-{i}", self.tag),
                    "price": new.price,
                    "stock": new.stock,
                    "category": self.tag,
                });
                let data = self
                    .client
                    .expect(Viewer::Admin, CREATE_PRODUCT, json!({ "input": input }))
                    .await?;
                Ok(Product {
                    id: id_at(&data, "/createProduct/product/id")?,
                    stock: new.stock,
                })
            })
            .await?;
        done(step, &plural(count, "product"));
        Ok(created)
    }

    /// Creates an open first-come-first-served event of `total` coupons (1,000 won off each).
    pub async fn coupon_event(&self, total: u64) -> anyhow::Result<i64> {
        let input = json!({
            "name": format!("{}-event", self.tag),
            "discountType": "FIXED",
            "discountValue": 1000,
            "totalQuantity": total,
        });
        let data = self
            .client
            .expect(Viewer::Admin, CREATE_EVENT, json!({ "input": input }))
            .await?;
        id_at(&data, "/createCouponEvent/couponEvent/id")
    }

    /// Runs `work` over `items` with at most `concurrency` in flight; results in item order.
    async fn bounded<'a, T, R, F, Fut>(
        &'a self,
        items: impl IntoIterator<Item = T>,
        work: F,
    ) -> anyhow::Result<Vec<R>>
    where
        F: Fn(T) -> Fut + 'a,
        Fut: Future<Output = anyhow::Result<R>> + 'a,
    {
        stream::iter(items)
            .map(work)
            .buffered(self.concurrency)
            .try_collect()
            .await
    }
}

/// An `ID` (a string holding a number) at a JSON pointer.
fn id_at(data: &Value, pointer: &str) -> anyhow::Result<i64> {
    let value = data
        .pointer(pointer)
        .ok_or_else(|| anyhow!("no {pointer} in {data}"))?;
    match value {
        Value::String(text) => text.parse().with_context(|| format!("id {text:?}")),
        Value::Number(number) => number.as_i64().ok_or_else(|| anyhow!("id {number}")),
        other => Err(anyhow!("id {other} at {pointer}")),
    }
}

/// Describes ids as a range when they are consecutive (e.g. for pgbench's `--first-user-id`).
pub fn id_range(ids: &[i64]) -> String {
    let (Some(min), Some(max)) = (ids.iter().min(), ids.iter().max()) else {
        return "none".into();
    };
    let consecutive = max - min + 1 == ids.len() as i64;
    let note = if consecutive { "" } else { " (with gaps)" };
    format!("{min}..={max}{note}")
}

/// `1 user`, `2 users`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn done(step: Instant, what: &str) {
    println!("setup: {what} in {:.1} s", step.elapsed().as_secs_f64());
}
