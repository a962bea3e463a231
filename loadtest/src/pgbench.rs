//! `pgbench-script`: the SQL work of one `placeOrder` (one line, paid from the balance) as a
//! pgbench script, so the server's orders/s can be set against what PostgreSQL itself sustains
//! for the same transaction.
//!
//! It follows the server's lock order (product rows by id, then the balance row) and writes what
//! the server writes: stock, balance, the order and its item, the payment, the ledger entry, the
//! day's sales (upsert) and the outbox event. A balance or stock that would go negative violates
//! a CHECK constraint and aborts that pgbench client, so charge the users enough first.

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct PgbenchArgs {
    /// How many users the ids are drawn from.
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// How many products the ids are drawn from.
    #[arg(long, default_value_t = 1_000)]
    pub products: u64,
    /// The id of the first of the (consecutive) users.
    #[arg(long, default_value_t = 1)]
    pub first_user_id: u64,
    /// The id of the first of the (consecutive) products.
    #[arg(long, default_value_t = 1)]
    pub first_product_id: u64,
    /// Units per order are drawn from 1 to this.
    #[arg(long, default_value_t = 3)]
    pub max_quantity: u64,
    /// The server's business time zone (`TIME_ZONE`), which dates the sales.
    #[arg(long, default_value = "Asia/Seoul")]
    pub time_zone: String,
}

/// The pgbench script.
pub fn script(args: &PgbenchArgs) -> String {
    let PgbenchArgs {
        users,
        products,
        first_user_id,
        first_product_id,
        max_quantity,
        time_zone,
    } = args;
    let user_offset = first_user_id.saturating_sub(1);
    let product_offset = first_product_id.saturating_sub(1);
    let last_user = first_user_id + users.saturating_sub(1);
    let last_product = first_product_id + products.saturating_sub(1);
    let time_zone = time_zone.replace('\'', "''");
    format!(
        r#"-- One placeOrder of the commerce server in plain SQL (1 line of 1-{max_quantity} units, paid from the balance).
-- Users {first_user_id}..{last_user}, products {first_product_id}..{last_product}.
\set users {users}
\set products {products}
\set uid random(1, :users) + {user_offset}
\set pid random(1, :products) + {product_offset}
\set qty random(1, {max_quantity})
BEGIN;
SELECT price FROM products WHERE id IN (:pid) ORDER BY id FOR UPDATE \gset
SELECT amount AS balance FROM balances WHERE user_id = :uid FOR UPDATE \gset
\set total :price * :qty
\set payment 0 - :total
\set balance_after :balance - :total
UPDATE products SET stock = stock - :qty, updated_at = now() WHERE id = :pid;
UPDATE balances SET amount = amount - :total, updated_at = now() WHERE user_id = :uid;
INSERT INTO orders (user_id, status, subtotal, discount, total, created_at, updated_at, paid_at)
  VALUES (:uid, 'COMPLETED', :total, 0, :total, now(), now(), now()) RETURNING id AS order_id \gset
INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (:order_id, :pid, :qty, :price);
INSERT INTO payments (order_id, user_id, amount, status, paid_at) VALUES (:order_id, :uid, :total, 'SUCCESS', now());
INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id, created_at)
  VALUES (:uid, 'PAYMENT', :payment, :balance_after, :order_id, now());
INSERT INTO product_sales_daily (sales_date, product_id, quantity, revenue)
  VALUES ((now() AT TIME ZONE '{time_zone}')::date, :pid, :qty, :total)
  ON CONFLICT (sales_date, product_id) DO UPDATE
  SET quantity = product_sales_daily.quantity + excluded.quantity, revenue = product_sales_daily.revenue + excluded.revenue;
INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, status, attempts, next_attempt_at, created_at)
  VALUES (md5(random()::text || clock_timestamp()::text), 'ORDER_COMPLETED', :order_id, '{{}}', 'PENDING', 0, now(), now());
COMMIT;
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_ids_from_the_given_ranges() {
        let text = script(&PgbenchArgs {
            users: 10,
            products: 5,
            first_user_id: 101,
            first_product_id: 7,
            max_quantity: 3,
            time_zone: "Asia/Seoul".into(),
        });
        assert!(text.contains(r"\set uid random(1, :users) + 100"));
        assert!(text.contains(r"\set pid random(1, :products) + 6"));
        assert!(text.contains("Users 101..110, products 7..11."));
        assert!(text.contains("'{}'"));
        assert!(text.trim_end().ends_with("COMMIT;"));
    }
}
