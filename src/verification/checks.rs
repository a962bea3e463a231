//! The invariants, each stated as what the writers guarantee, and the queries finding the rows
//! that break it (a clean database returns no row). Sums are cast to a 64-bit integer, which
//! PostgreSQL and MySQL would otherwise return as decimals.

use sea_orm::{DbBackend, DbErr, QueryResult};
use serde::Serialize;

/// One invariant of the data model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    Ledger,
    PaidOrders,
    Stock,
    Coupons,
    DailySales,
    NonNegative,
}

/// Every invariant, in the order of the report.
pub const INVARIANTS: [Invariant; 6] = [
    Invariant::Ledger,
    Invariant::PaidOrders,
    Invariant::Stock,
    Invariant::Coupons,
    Invariant::DailySales,
    Invariant::NonNegative,
];

/// The rows a run reads (the summary line's count).
pub(super) const ROWS_CHECKED: &str = "SELECT CAST(
    (SELECT COUNT(*) FROM balances) + (SELECT COUNT(*) FROM balance_ledger)
    + (SELECT COUNT(*) FROM orders) + (SELECT COUNT(*) FROM order_items)
    + (SELECT COUNT(*) FROM payments) + (SELECT COUNT(*) FROM outbox_events)
    + (SELECT COUNT(*) FROM products) + (SELECT COUNT(*) FROM coupon_events)
    + (SELECT COUNT(*) FROM user_coupons) + (SELECT COUNT(*) FROM product_sales_daily)
    AS BIGINT) AS n";

impl Invariant {
    /// Its name in the report and the `invariant` label of `commerce_verify_violations`.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Ledger => "ledger",
            Invariant::PaidOrders => "paid_orders",
            Invariant::Stock => "stock",
            Invariant::Coupons => "coupons",
            Invariant::DailySales => "daily_sales",
            Invariant::NonNegative => "non_negative",
        }
    }

    /// What must hold.
    pub fn statement(self) -> &'static str {
        match self {
            Invariant::Ledger => {
                "each balance equals the balance_after of its user's last ledger entry (0 without \
                 entries), each entry's balance_after = the previous one's + its amount, and no \
                 user has entries without a balance"
            }
            Invariant::PaidOrders => {
                "every COMPLETED or REFUNDED order has items, one payment of its total (SUCCESS, \
                 or REFUNDED when refunded), one ORDER_COMPLETED outbox event, and one \
                 ORDER_REFUNDED event exactly when refunded (an event may be missing when the \
                 outbox's retention deleted it: one of an order paid or refunded before \
                 installation.outbox_pruned_before)"
            }
            Invariant::Stock => {
                "each product's stock + the units of its PENDING and COMPLETED orders = the units \
                 it received (created with + restocked)"
            }
            Invariant::Coupons => {
                "each coupon event's issued_quantity = its coupons, at most total_quantity, at \
                 most one per user"
            }
            Invariant::DailySales => {
                "each product's daily sales, summed over the days, equal the quantity and revenue \
                 of its COMPLETED order lines"
            }
            Invariant::NonNegative => "no amount, stock, quantity or count is negative",
        }
    }

    pub(super) fn checks(self) -> &'static [Check] {
        match self {
            Invariant::Ledger => &[BALANCE_ENDS_LEDGER, LEDGER_CHAIN, LEDGER_WITHOUT_BALANCE],
            Invariant::PaidOrders => &[PAID_ORDERS],
            Invariant::Stock => &[STOCK],
            Invariant::Coupons => &[COUPONS],
            Invariant::DailySales => &[DAILY_SALES],
            Invariant::NonNegative => &[NON_NEGATIVE],
        }
    }
}

/// A query returning the rows that break an invariant, and how to name each.
pub(super) struct Check {
    sql: &'static str,
    describe: fn(&QueryResult) -> Result<String, DbErr>,
}

impl Check {
    pub(super) fn sql(&self, backend: DbBackend) -> String {
        in_dialect(self.sql, backend)
    }

    pub(super) fn describe(&self, row: &QueryResult) -> Result<String, DbErr> {
        (self.describe)(row)
    }
}

/// `sql` in the dialect of `backend`: MySQL casts to a 64-bit integer with `SIGNED`.
pub(super) fn in_dialect(sql: &str, backend: DbBackend) -> String {
    match backend {
        DbBackend::MySql => sql.replace("AS BIGINT)", "AS SIGNED)"),
        _ => sql.to_owned(),
    }
}

fn int(row: &QueryResult, column: &str) -> Result<i64, DbErr> {
    row.try_get::<i64>("", column)
}

fn text(row: &QueryResult, column: &str) -> Result<String, DbErr> {
    row.try_get::<String>("", column)
}

const BALANCE_ENDS_LEDGER: Check = Check {
    sql: "SELECT b.user_id, b.amount, l.balance_after AS ledger_end
        FROM balances b
        LEFT JOIN (SELECT user_id, MAX(id) AS last_id FROM balance_ledger GROUP BY user_id) m
            ON m.user_id = b.user_id
        LEFT JOIN balance_ledger l ON l.id = m.last_id
        WHERE b.amount <> COALESCE(l.balance_after, 0)
        ORDER BY b.user_id",
    describe: |row| {
        let (user, amount) = (int(row, "user_id")?, int(row, "amount")?);
        Ok(match row.try_get::<Option<i64>>("", "ledger_end")? {
            Some(end) => format!("balance of user {user}: {amount} but its ledger ends at {end}"),
            None => format!("balance of user {user}: {amount} but it has no ledger entries"),
        })
    },
};

const LEDGER_CHAIN: Check = Check {
    sql: "SELECT id, user_id, amount, balance_after, before_entry FROM (
            SELECT id, user_id, amount, balance_after,
                LAG(balance_after) OVER (PARTITION BY user_id ORDER BY id) AS before_entry
            FROM balance_ledger
        ) chain
        WHERE balance_after <> COALESCE(before_entry, 0) + amount
        ORDER BY id",
    describe: |row| {
        let previous = row.try_get::<Option<i64>>("", "before_entry")?.unwrap_or(0);
        Ok(format!(
            "ledger entry {} of user {}: balance_after {} but {previous} before it {:+} is {}",
            int(row, "id")?,
            int(row, "user_id")?,
            int(row, "balance_after")?,
            int(row, "amount")?,
            previous + int(row, "amount")?,
        ))
    },
};

const LEDGER_WITHOUT_BALANCE: Check = Check {
    sql: "SELECT l.user_id, COUNT(*) AS entries FROM balance_ledger l
        LEFT JOIN balances b ON b.user_id = l.user_id
        WHERE b.user_id IS NULL
        GROUP BY l.user_id
        ORDER BY l.user_id",
    describe: |row| {
        Ok(format!(
            "user {} has {} ledger entries but no balance",
            int(row, "user_id")?,
            int(row, "entries")?
        ))
    },
};

const PAID_ORDERS: Check = Check {
    sql: "SELECT o.id, o.status, o.total, COALESCE(i.item_count, 0) AS item_count,
            COALESCE(p.status, '') AS payment_status, COALESCE(p.amount, -1) AS payment_amount,
            COALESCE(e.completed, 0) AS completed_events, COALESCE(e.refunded, 0) AS refunded_events
        FROM orders o
        LEFT JOIN (SELECT order_id, COUNT(*) AS item_count FROM order_items GROUP BY order_id) i
            ON i.order_id = o.id
        LEFT JOIN payments p ON p.order_id = o.id
        LEFT JOIN (SELECT aggregate_id,
                CAST(SUM(CASE WHEN event_type = 'ORDER_COMPLETED' THEN 1 ELSE 0 END) AS BIGINT) AS completed,
                CAST(SUM(CASE WHEN event_type = 'ORDER_REFUNDED' THEN 1 ELSE 0 END) AS BIGINT) AS refunded
            FROM outbox_events GROUP BY aggregate_id) e
            ON e.aggregate_id = o.id
        LEFT JOIN installation r ON r.id = 1
        WHERE o.status IN ('COMPLETED', 'REFUNDED') AND NOT (
            COALESCE(i.item_count, 0) > 0
            AND COALESCE(p.amount, -1) = o.total
            AND (COALESCE(e.completed, 0) = 1
              OR (COALESCE(e.completed, 0) = 0
                AND COALESCE(o.paid_at < r.outbox_pruned_before, 1 = 0)))
            AND ((o.status = 'COMPLETED' AND COALESCE(p.status, '') = 'SUCCESS' AND COALESCE(e.refunded, 0) = 0)
              OR (o.status = 'REFUNDED' AND COALESCE(p.status, '') = 'REFUNDED'
                AND (COALESCE(e.refunded, 0) = 1
                  OR (COALESCE(e.refunded, 0) = 0
                    AND COALESCE(o.cancelled_at < r.outbox_pruned_before, 1 = 0))))))
        ORDER BY o.id",
    describe: |row| {
        let status = text(row, "status")?;
        let refunded = status == "REFUNDED";
        let total = int(row, "total")?;
        let mut wrong = vec![];
        if int(row, "item_count")? == 0 {
            wrong.push("no items".to_owned());
        }
        let (payment, amount) = (text(row, "payment_status")?, int(row, "payment_amount")?);
        let expected = if refunded { "REFUNDED" } else { "SUCCESS" };
        if payment.is_empty() {
            wrong.push("no payment".to_owned());
        } else if payment != expected || amount != total {
            wrong.push(format!("payment {payment} of {amount}"));
        }
        let completed = int(row, "completed_events")?;
        if completed != 1 {
            wrong.push(format!("{completed} ORDER_COMPLETED events"));
        }
        let refunds = int(row, "refunded_events")?;
        if refunds != i64::from(refunded) {
            wrong.push(format!("{refunds} ORDER_REFUNDED events"));
        }
        Ok(format!(
            "order {} ({status}, total {total}): {}",
            int(row, "id")?,
            wrong.join(", ")
        ))
    },
};

const STOCK: Check = Check {
    sql: "SELECT p.id, p.stock, p.received, CAST(COALESCE(h.held, 0) AS BIGINT) AS held
        FROM products p
        LEFT JOIN (SELECT i.product_id, SUM(i.quantity) AS held FROM order_items i
            JOIN orders o ON o.id = i.order_id
            WHERE o.status IN ('PENDING', 'COMPLETED')
            GROUP BY i.product_id) h
            ON h.product_id = p.id
        WHERE p.stock + COALESCE(h.held, 0) <> p.received
        ORDER BY p.id",
    describe: |row| {
        let (stock, held) = (int(row, "stock")?, int(row, "held")?);
        Ok(format!(
            "product {}: stock {stock} + {held} units in pending and completed orders = {} but it received {}",
            int(row, "id")?,
            stock + held,
            int(row, "received")?
        ))
    },
};

const COUPONS: Check = Check {
    sql: "SELECT e.id, e.issued_quantity, e.total_quantity,
            COALESCE(c.coupons, 0) AS coupons, COALESCE(c.users, 0) AS users
        FROM coupon_events e
        LEFT JOIN (SELECT event_id, COUNT(*) AS coupons, COUNT(DISTINCT user_id) AS users
            FROM user_coupons GROUP BY event_id) c
            ON c.event_id = e.id
        WHERE e.issued_quantity <> COALESCE(c.coupons, 0)
            OR e.issued_quantity > e.total_quantity
            OR COALESCE(c.coupons, 0) <> COALESCE(c.users, 0)
        ORDER BY e.id",
    describe: |row| {
        let (coupons, users) = (int(row, "coupons")?, int(row, "users")?);
        Ok(format!(
            "coupon event {}: issued_quantity {} of {}, {coupons} coupons held by {users} users",
            int(row, "id")?,
            int(row, "issued_quantity")?,
            int(row, "total_quantity")?,
        ))
    },
};

const DAILY_SALES: Check = Check {
    sql: "SELECT p.id, CAST(COALESCE(s.quantity, 0) AS BIGINT) AS sold,
            CAST(COALESCE(s.revenue, 0) AS BIGINT) AS revenue,
            CAST(COALESCE(l.quantity, 0) AS BIGINT) AS line_quantity,
            CAST(COALESCE(l.revenue, 0) AS BIGINT) AS line_revenue
        FROM products p
        LEFT JOIN (SELECT product_id, SUM(quantity) AS quantity, SUM(revenue) AS revenue
            FROM product_sales_daily GROUP BY product_id) s
            ON s.product_id = p.id
        LEFT JOIN (SELECT i.product_id, SUM(i.quantity) AS quantity,
                SUM(i.quantity * i.unit_price) AS revenue
            FROM order_items i JOIN orders o ON o.id = i.order_id
            WHERE o.status = 'COMPLETED'
            GROUP BY i.product_id) l
            ON l.product_id = p.id
        WHERE COALESCE(s.quantity, 0) <> COALESCE(l.quantity, 0)
            OR COALESCE(s.revenue, 0) <> COALESCE(l.revenue, 0)
        ORDER BY p.id",
    describe: |row| {
        Ok(format!(
            "product {}: daily sales {} units for {} but completed order lines {} units for {}",
            int(row, "id")?,
            int(row, "sold")?,
            int(row, "revenue")?,
            int(row, "line_quantity")?,
            int(row, "line_revenue")?,
        ))
    },
};

const NON_NEGATIVE: Check = Check {
    sql: "SELECT 'balances' AS tbl, user_id AS id, 'amount' AS col, amount AS value FROM balances WHERE amount < 0
        UNION ALL SELECT 'balance_ledger', id, 'balance_after', balance_after FROM balance_ledger WHERE balance_after < 0
        UNION ALL SELECT 'products', id, 'stock', stock FROM products WHERE stock < 0
        UNION ALL SELECT 'products', id, 'received', received FROM products WHERE received < 0
        UNION ALL SELECT 'products', id, 'price', price FROM products WHERE price < 0
        UNION ALL SELECT 'orders', id, 'subtotal', subtotal FROM orders WHERE subtotal < 0
        UNION ALL SELECT 'orders', id, 'discount', discount FROM orders WHERE discount < 0
        UNION ALL SELECT 'orders', id, 'total', total FROM orders WHERE total < 0
        UNION ALL SELECT 'order_items', id, 'quantity', quantity FROM order_items WHERE quantity < 0
        UNION ALL SELECT 'order_items', id, 'unit_price', unit_price FROM order_items WHERE unit_price < 0
        UNION ALL SELECT 'payments', id, 'amount', amount FROM payments WHERE amount < 0
        UNION ALL SELECT 'product_sales_daily', product_id, 'quantity', quantity FROM product_sales_daily WHERE quantity < 0
        UNION ALL SELECT 'product_sales_daily', product_id, 'revenue', revenue FROM product_sales_daily WHERE revenue < 0
        UNION ALL SELECT 'coupon_events', id, 'issued_quantity', issued_quantity FROM coupon_events WHERE issued_quantity < 0
        UNION ALL SELECT 'coupon_events', id, 'total_quantity', total_quantity FROM coupon_events WHERE total_quantity < 0",
    describe: |row| {
        Ok(format!(
            "{} {}: {} is {}",
            text(row, "tbl")?,
            int(row, "id")?,
            text(row, "col")?,
            int(row, "value")?
        ))
    },
};
