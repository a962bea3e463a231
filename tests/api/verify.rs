//! `commerce verify`: a real history made through the API verifies clean; then one row per
//! invariant is corrupted by SQL, and the verifier names that row (and only that invariant),
//! through the library, the `commerce verify` binary (exit codes, `--json`) and the periodic run
//! in `/metrics`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use commerce::verification::{INVARIANTS, Invariant, Report, verify};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::harness::{TestServer, id_of, items, on_every_backend, on_every_backend_with, sample};

const ORDER: &str = "order { id status } userErrors { code message }";

/// placeOrder or createOrder as `user`; returns the new order's id.
async fn order(
    server: &TestServer,
    mutation: &str,
    user: i64,
    lines: &[(i64, i64)],
    coupon: Option<i64>,
) -> i64 {
    let query = format!(
        "mutation($items: [OrderItemInput!]!, $coupon: ID) {{ {mutation}(input: {{items: $items, couponId: $coupon}}) {{ {ORDER} }} }}"
    );
    let data = server
        .user(user)
        .data(&query, json!({ "items": items(lines), "coupon": coupon }))
        .await;
    assert_eq!(data[mutation]["userErrors"], json!([]), "{data}");
    id_of(&data[mutation]["order"]["id"])
}

/// payOrder or cancelOrder of `order` as `user`; returns the new status.
async fn act(server: &TestServer, mutation: &str, user: i64, order: i64) -> String {
    let query =
        format!("mutation($id: ID!) {{ {mutation}(input: {{orderId: $id}}) {{ {ORDER} }} }}");
    let data = server.user(user).data(&query, json!({ "id": order })).await;
    assert_eq!(data[mutation]["userErrors"], json!([]), "{data}");
    data[mutation]["order"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn scalar(server: &TestServer, sql: &str) -> i64 {
    let conn = server.database().conn();
    conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .expect("a row")
        .try_get::<i64>("", "id")
        .unwrap()
}

async fn execute(server: &TestServer, sql: &str) {
    server
        .database()
        .conn()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn report(server: &TestServer) -> Report {
    verify(server.database()).await.expect("the verifier runs")
}

/// The ids of what [`history`] made.
struct History {
    kim: i64,
    mouse: i64,
    keyboard: i64,
    completed: i64,
    cancelled: i64,
    event: i64,
}

/// Charges, placeOrder, createOrder + payOrder, an order left PENDING, a cancelled PENDING order,
/// a refunded COMPLETED order, a coupon issued and used, a restock.
async fn history(server: &TestServer) -> History {
    let (kim, [mouse, keyboard]) = server
        .shop(
            "김철수",
            500_000,
            [
                ("무선 마우스", "주변기기", 25_000, 50),
                ("키보드", "주변기기", 45_000, 10),
            ],
        )
        .await;
    let lee = server.customer("이영희", 300_000).await;
    server.charge(lee, 20_000).await;
    let completed = order(
        server,
        "placeOrder",
        kim,
        &[(mouse, 2), (keyboard, 1)],
        None,
    )
    .await;
    let later = order(server, "createOrder", kim, &[(mouse, 1)], None).await;
    assert_eq!(act(server, "payOrder", kim, later).await, "COMPLETED");
    order(server, "createOrder", lee, &[(keyboard, 2)], None).await;
    let cancelled = order(server, "createOrder", lee, &[(mouse, 3)], None).await;
    assert_eq!(
        act(server, "cancelOrder", lee, cancelled).await,
        "CANCELLED"
    );
    let refunded = order(server, "placeOrder", lee, &[(mouse, 1)], None).await;
    assert_eq!(act(server, "cancelOrder", lee, refunded).await, "REFUNDED");
    let event = server
        .coupon_event("10% 할인", "PERCENT", 10, 5, json!({}))
        .await;
    let issued = server
        .user(lee)
        .data(
            "mutation($id: ID!) { issueCoupon(input: {eventId: $id}) { coupon { id } userErrors { code } } }",
            json!({ "id": event }),
        )
        .await;
    let coupon = id_of(&issued["issueCoupon"]["coupon"]["id"]);
    order(server, "placeOrder", lee, &[(keyboard, 1)], Some(coupon)).await;
    let restocked = server
        .admin()
        .data(
            "mutation($id: ID!) { restockProduct(input: {productId: $id, quantity: 5}) { product { stock } userErrors { code } } }",
            json!({ "id": mouse }),
        )
        .await;
    assert_eq!(restocked["restockProduct"]["userErrors"], json!([]));
    History {
        kim,
        mouse,
        keyboard,
        completed,
        cancelled,
        event,
    }
}

/// Asserts the report finds exactly `broken` rows breaking `invariant`, one naming `row`, and
/// nothing else.
fn assert_names(server: &TestServer, report: &Report, invariant: Invariant, row: &str) {
    for other in INVARIANTS {
        let finding = report.of(other);
        if other == invariant {
            assert_eq!(finding.violations, 1, "[{}] {report}", server.backend);
            assert!(
                finding.examples[0].contains(row),
                "[{}] {} should name {row:?}: {report}",
                server.backend,
                other.name()
            );
        } else {
            assert_eq!(finding.violations, 0, "[{}] {report}", server.backend);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_real_history_clean_and_names_each_corrupted_row() {
    on_every_backend(|server| async move {
        let h = history(&server).await;
        let clean = report(&server).await;
        assert_eq!(clean.violations(), 0, "[{}] {clean}", server.backend);
        assert!(clean.rows_checked > 20, "{clean}");

        let first_entry = scalar(
            &server,
            &format!("SELECT MIN(id) AS id FROM balance_ledger WHERE user_id = {}", h.kim),
        )
        .await;
        let cancelled_item = scalar(
            &server,
            &format!("SELECT MIN(id) AS id FROM order_items WHERE order_id = {}", h.cancelled),
        )
        .await;
        let corruptions = [
            (
                Invariant::Ledger,
                format!("UPDATE balances SET amount = amount + 1 WHERE user_id = {}", h.kim),
                format!("UPDATE balances SET amount = amount - 1 WHERE user_id = {}", h.kim),
                format!("balance of user {}:", h.kim),
            ),
            (
                Invariant::Ledger,
                format!("UPDATE balance_ledger SET amount = amount + 7 WHERE id = {first_entry}"),
                format!("UPDATE balance_ledger SET amount = amount - 7 WHERE id = {first_entry}"),
                format!("ledger entry {first_entry} of user {}:", h.kim),
            ),
            (
                Invariant::PaidOrders,
                format!("UPDATE outbox_events SET event_type = 'ORDER_MISLAID' WHERE aggregate_id = {} AND event_type = 'ORDER_COMPLETED'", h.completed),
                format!("UPDATE outbox_events SET event_type = 'ORDER_COMPLETED' WHERE aggregate_id = {} AND event_type = 'ORDER_MISLAID'", h.completed),
                format!("order {} (COMPLETED, total 95000): 0 ORDER_COMPLETED events", h.completed),
            ),
            (
                Invariant::PaidOrders,
                format!("UPDATE payments SET status = 'REFUNDED' WHERE order_id = {}", h.completed),
                format!("UPDATE payments SET status = 'SUCCESS' WHERE order_id = {}", h.completed),
                format!("order {} (COMPLETED, total 95000): payment REFUNDED of 95000", h.completed),
            ),
            (
                Invariant::Stock,
                format!("UPDATE products SET stock = stock + 1 WHERE id = {}", h.keyboard),
                format!("UPDATE products SET stock = stock - 1 WHERE id = {}", h.keyboard),
                format!("product {}: stock 7 + 4 units in pending and completed orders = 11 but it received 10", h.keyboard),
            ),
            (
                Invariant::Coupons,
                format!("UPDATE coupon_events SET issued_quantity = issued_quantity + 1 WHERE id = {}", h.event),
                format!("UPDATE coupon_events SET issued_quantity = issued_quantity - 1 WHERE id = {}", h.event),
                format!("coupon event {}: issued_quantity 2 of 5, 1 coupons", h.event),
            ),
            (
                Invariant::DailySales,
                format!("UPDATE product_sales_daily SET quantity = quantity + 1 WHERE product_id = {}", h.mouse),
                format!("UPDATE product_sales_daily SET quantity = quantity - 1 WHERE product_id = {}", h.mouse),
                format!("product {}: daily sales 4 units for 75000 but completed order lines 3 units", h.mouse),
            ),
            (
                Invariant::NonNegative,
                format!("UPDATE order_items SET unit_price = -unit_price WHERE id = {cancelled_item}"),
                format!("UPDATE order_items SET unit_price = -unit_price WHERE id = {cancelled_item}"),
                format!("order_items {cancelled_item}: unit_price is -25000"),
            ),
        ];
        for (invariant, corrupt, restore, row) in corruptions {
            execute(&server, &corrupt).await;
            assert_names(&server, &report(&server).await, invariant, &row);
            execute(&server, &restore).await;
        }
        let restored = report(&server).await;
        assert_eq!(restored.violations(), 0, "[{}] {restored}", server.backend);
    })
    .await;
}

/// Runs `commerce verify` (with `args`) on the server's database: (exit code, stdout).
async fn run_binary(server: &TestServer, args: &'static [&'static str]) -> (i32, String) {
    verify_command(server.settings.database.database_url().to_owned(), args).await
}

/// Runs `commerce verify` (with `args`) on the database at `url`: (exit code, stdout).
pub(crate) async fn verify_command(url: String, args: &'static [&'static str]) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
            .arg("verify")
            .args(args)
            .env_clear()
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("commerce verify runs");
        // shown when a test fails
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        (
            output.status.code().expect("an exit code"),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verify_command_exits_0_when_clean_1_naming_the_row_2_when_it_cannot_run() {
    on_every_backend(|server| async move {
        let h = history(&server).await;
        let (code, out) = run_binary(&server, &[]).await;
        assert_eq!(code, 0, "[{}] {out}", server.backend);
        assert!(out.contains("0 violations of 6 invariants"), "{out}");

        execute(
            &server,
            &format!(
                "UPDATE products SET stock = stock + 1 WHERE id = {}",
                h.keyboard
            ),
        )
        .await;
        let (code, out) = run_binary(&server, &["--json"]).await;
        assert_eq!(code, 1, "[{}] {out}", server.backend);
        let report: Value = serde_json::from_str(&out).expect("JSON");
        let stock = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["invariant"] == "stock")
            .unwrap()
            .clone();
        assert_eq!(stock["violations"], 1, "{out}");
        assert!(
            stock["examples"][0]
                .as_str()
                .unwrap()
                .starts_with(&format!("product {}:", h.keyboard)),
            "{out}"
        );
        let (code, out) = run_binary(&server, &[]).await;
        assert_eq!(code, 1);
        assert!(out.contains("FAIL  stock"), "{out}");
    })
    .await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
        .args(["verify"])
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("DB_ACQUIRE_TIMEOUT_MS", "500")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until a periodic run that began after now reports `violations` for `invariant`.
async fn wait_for_run(server: &TestServer, invariant: &str, violations: f64) {
    let after = unix_now();
    let series = format!("commerce_verify_violations{{invariant=\"{invariant}\"}}");
    for _ in 0..100 {
        let text = server.metrics().await;
        let ran = sample(&text, "commerce_verify_last_run_timestamp_seconds")
            .is_some_and(|at| at > after + 0.01);
        if ran && sample(&text, &series) == Some(violations) {
            assert!(sample(&text, "commerce_verify_duration_seconds").is_some());
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "[{}] no run reported {series} = {violations}:\n{}",
        server.backend,
        server.metrics().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_verification_shows_a_violation_in_metrics() {
    on_every_backend_with(
        |settings| settings.verification.verify_interval_secs = 1,
        |server| async move {
            let product = server
                .create_product("모니터", "디스플레이", 120_000, 4)
                .await;
            wait_for_run(&server, "stock", 0.0).await;
            execute(
                &server,
                &format!("UPDATE products SET stock = 9 WHERE id = {product}"),
            )
            .await;
            wait_for_run(&server, "stock", 1.0).await;
            execute(
                &server,
                &format!("UPDATE products SET stock = 4 WHERE id = {product}"),
            )
            .await;
            wait_for_run(&server, "stock", 0.0).await;
        },
    )
    .await;
}
