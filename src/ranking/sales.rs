//! Recording sales in `product_sales_daily`, inside the payment (or refund) transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::product_sales_daily;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryTrait, Set};

use crate::infra::writes::Writes;

/// One product's units and revenue in a payment or refund.
#[derive(Copy, Clone, Debug)]
pub struct Sale {
    pub product_id: i64,
    pub quantity: i64,
    pub revenue: i64,
}

/// The business day of an instant.
pub fn sales_date(at: DateTime<Utc>, time_zone: Tz) -> NaiveDate {
    at.with_timezone(&time_zone).date_naive()
}

/// Adds to `writes` the sales of payments on their day (one multi-row upsert; several sales of
/// one product add up first, as one statement may touch a row only once).
pub fn record(writes: &mut Writes, day: NaiveDate, sales: &[Sale]) {
    if sales.is_empty() {
        return;
    }
    let rows = per_product(sales)
        .into_iter()
        .map(
            |(product_id, (quantity, revenue))| product_sales_daily::ActiveModel {
                sales_date: Set(day),
                product_id: Set(product_id),
                quantity: Set(quantity),
                revenue: Set(revenue),
            },
        );
    // each row adds its own units: `excluded.` on PostgreSQL and SQLite, `VALUES()` on MySQL
    let (quantity, revenue) = match writes.backend() {
        DbBackend::MySql => (
            "`quantity` + VALUES(`quantity`)",
            "`revenue` + VALUES(`revenue`)",
        ),
        _ => (
            r#""product_sales_daily"."quantity" + excluded."quantity""#,
            r#""product_sales_daily"."revenue" + excluded."revenue""#,
        ),
    };
    let statement = product_sales_daily::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                product_sales_daily::Column::SalesDate,
                product_sales_daily::Column::ProductId,
            ])
            .value(product_sales_daily::Column::Quantity, Expr::cust(quantity))
            .value(product_sales_daily::Column::Revenue, Expr::cust(revenue))
            .to_owned(),
        )
        .into_query();
    writes.insert(statement);
}

/// Adds to `writes` taking the sales of a refunded payment back out of the day they were
/// recorded on (one update per product).
pub fn reverse(writes: &mut Writes, day: NaiveDate, sales: &[Sale]) {
    for (product_id, (quantity, revenue)) in per_product(sales) {
        writes.update(
            product_sales_daily::Entity::update_many()
                .col_expr(
                    product_sales_daily::Column::Quantity,
                    Expr::col(product_sales_daily::Column::Quantity).sub(quantity),
                )
                .col_expr(
                    product_sales_daily::Column::Revenue,
                    Expr::col(product_sales_daily::Column::Revenue).sub(revenue),
                )
                .filter(product_sales_daily::Column::SalesDate.eq(day))
                .filter(product_sales_daily::Column::ProductId.eq(product_id))
                .into_query(),
        );
    }
}

/// Units and revenue by product: several sales of one product add up (one statement may touch
/// a row only once).
fn per_product(sales: &[Sale]) -> BTreeMap<i64, (i64, i64)> {
    let mut per_product: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for sale in sales {
        let total = per_product.entry(sale.product_id).or_default();
        total.0 += sale.quantity;
        total.1 += sale.revenue;
    }
    per_product
}
