//! Invariants checked by SQL after a scenario (with `--database-url`):
//!
//! - stock: for each product the run created, stock + units in COMPLETED and PENDING orders =
//!   the stock it was created with (units of cancelled, expired and refunded orders went back);
//! - balances: for every user, the ledger sums to the balance, and the balance is not negative;
//! - coupon events: issued <= total, and issued = the number of coupons of the event;
//! - coupons: no user holds two coupons of one event.

use std::collections::BTreeMap;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult, Statement};

use crate::report::Check;

/// How many offending rows a failed check names.
const SHOWN: usize = 5;

/// Runs every check; `initial_stock` maps the products the run created to their initial stock.
pub async fn run(
    database_url: &str,
    initial_stock: &BTreeMap<i64, i64>,
) -> anyhow::Result<Vec<Check>> {
    let db = Database::connect(database_url)
        .await
        .context("connecting to the database for the invariant checks")?;
    let checks = vec![
        stock(&db, initial_stock).await?,
        balances(&db).await?,
        coupon_events(&db).await?,
        coupons_per_user(&db).await?,
    ];
    db.close().await?;
    Ok(checks)
}

async fn stock(db: &DatabaseConnection, initial: &BTreeMap<i64, i64>) -> anyhow::Result<Check> {
    let int = bigint(db);
    let held: BTreeMap<i64, i64> = query(
        db,
        &format!(
            "SELECT oi.product_id, CAST(SUM(oi.quantity) AS {int}) \
             FROM order_items oi JOIN orders o ON o.id = oi.order_id \
             WHERE o.status IN ('COMPLETED', 'PENDING') GROUP BY oi.product_id"
        ),
    )
    .await?
    .iter()
    .map(|row| Ok((int_at(row, 0)?, int_at(row, 1)?)))
    .collect::<anyhow::Result<_>>()?;
    let current: BTreeMap<i64, i64> = query(db, "SELECT id, stock FROM products")
        .await?
        .iter()
        .map(|row| Ok((int_at(row, 0)?, int_at(row, 1)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut wrong = Vec::new();
    for (&id, &initial_stock) in initial {
        let sold = held.get(&id).copied().unwrap_or(0);
        match current.get(&id) {
            Some(&stock) if stock + sold == initial_stock => {}
            Some(&stock) => wrong.push(format!(
                "product {id}: stock {stock} + ordered {sold} != initial {initial_stock}"
            )),
            None => wrong.push(format!("product {id}: missing")),
        }
    }
    Ok(verdict(
        "stock + ordered units = initial stock",
        initial.len(),
        "products",
        wrong,
    ))
}

async fn balances(db: &DatabaseConnection) -> anyhow::Result<Check> {
    let int = bigint(db);
    let users = count(db, "SELECT COUNT(*) FROM balances").await?;
    let rows = query(
        db,
        &format!(
            "SELECT b.user_id, b.amount, COALESCE(l.total, 0) \
             FROM balances b LEFT JOIN \
               (SELECT user_id, CAST(SUM(amount) AS {int}) AS total FROM balance_ledger GROUP BY user_id) l \
               ON l.user_id = b.user_id \
             WHERE b.amount < 0 OR b.amount <> COALESCE(l.total, 0)"
        ),
    )
    .await?;
    let mut wrong = Vec::new();
    for row in &rows {
        wrong.push(format!(
            "user {}: balance {} but ledger sums to {}",
            int_at(row, 0)?,
            int_at(row, 1)?,
            int_at(row, 2)?
        ));
    }
    let orphans = count(
        db,
        "SELECT COUNT(DISTINCT user_id) FROM balance_ledger l \
         WHERE NOT EXISTS (SELECT 1 FROM balances b WHERE b.user_id = l.user_id)",
    )
    .await?;
    if orphans > 0 {
        wrong.push(format!(
            "{orphans} users have ledger entries but no balance"
        ));
    }
    Ok(verdict(
        "ledger sum = balance >= 0",
        users as usize,
        "users",
        wrong,
    ))
}

async fn coupon_events(db: &DatabaseConnection) -> anyhow::Result<Check> {
    let events = count(db, "SELECT COUNT(*) FROM coupon_events").await?;
    let rows = query(
        db,
        "SELECT e.id, e.total_quantity, e.issued_quantity, \
           (SELECT COUNT(*) FROM user_coupons c WHERE c.event_id = e.id) \
         FROM coupon_events e \
         WHERE e.issued_quantity > e.total_quantity \
            OR e.issued_quantity <> (SELECT COUNT(*) FROM user_coupons c WHERE c.event_id = e.id)",
    )
    .await?;
    let mut wrong = Vec::new();
    for row in &rows {
        wrong.push(format!(
            "event {}: total {}, issued {}, coupons {}",
            int_at(row, 0)?,
            int_at(row, 1)?,
            int_at(row, 2)?,
            int_at(row, 3)?
        ));
    }
    Ok(verdict(
        "coupons issued <= total and = coupons held",
        events as usize,
        "events",
        wrong,
    ))
}

async fn coupons_per_user(db: &DatabaseConnection) -> anyhow::Result<Check> {
    let coupons = count(db, "SELECT COUNT(*) FROM user_coupons").await?;
    let rows = query(
        db,
        "SELECT event_id, user_id, COUNT(*) FROM user_coupons \
         GROUP BY event_id, user_id HAVING COUNT(*) > 1",
    )
    .await?;
    let mut wrong = Vec::new();
    for row in &rows {
        wrong.push(format!(
            "event {} user {}: {} coupons",
            int_at(row, 0)?,
            int_at(row, 1)?,
            int_at(row, 2)?
        ));
    }
    Ok(verdict(
        "at most one coupon per user and event",
        coupons as usize,
        "coupons",
        wrong,
    ))
}

fn verdict(name: &str, checked: usize, what: &str, wrong: Vec<String>) -> Check {
    if wrong.is_empty() {
        return Check::new(name, true, format!("{checked} {what} checked"));
    }
    let mut detail = format!("{} of {checked} {what} wrong: ", wrong.len());
    detail.push_str(&wrong[..wrong.len().min(SHOWN)].join("; "));
    Check::new(name, false, detail)
}

/// The 64-bit integer type of a `CAST` (`SUM` of a bigint is numeric on PostgreSQL).
fn bigint(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::MySql => "SIGNED",
        _ => "BIGINT",
    }
}

async fn query(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<QueryResult>> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .with_context(|| format!("running {sql}"))
}

async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let rows = query(db, sql).await?;
    rows.first().map_or(Ok(0), |row| int_at(row, 0))
}

fn int_at(row: &QueryResult, index: usize) -> anyhow::Result<i64> {
    row.try_get_by_index::<i64>(index)
        .with_context(|| format!("reading column {index} as an integer"))
}
