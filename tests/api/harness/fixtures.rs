//! The setups tests start from, made through the admin and customer API (never by writing
//! rows): users, products, money, and the common shapes of them together: "a customer with a
//! balance and products" ([`TestServer::shop`]), "many customers with money"
//! ([`TestServer::customers`]), "a shelf of products" ([`TestServer::stocked`]).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::client::id_of;
use super::server::TestServer;

/// A product to create: `(name, category, price, stock)`.
pub type ProductSpec<'a> = (&'a str, &'a str, i64, i64);

/// Products made by [`TestServer::stocked`].
pub struct Stocked {
    /// In the order they were created.
    pub ids: Vec<i64>,
    /// Each product's stock when created (what [`super::assert_invariants`] compares with).
    pub initial: HashMap<i64, i64>,
}

impl TestServer {
    /// Creates a customer through the admin API; returns its id.
    pub async fn create_user(&self, name: &str) -> i64 {
        let data = self
            .admin()
            .data(
                "mutation($name: String!) { createUser(input: {name: $name}) { user { id } userErrors { code message } } }",
                json!({ "name": name }),
            )
            .await;
        id_of(&data["createUser"]["user"]["id"])
    }

    /// Creates a product through the admin API; returns its id.
    pub async fn create_product(&self, name: &str, category: &str, price: i64, stock: i64) -> i64 {
        let data = self
            .admin()
            .data(
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code message } } }",
                json!({ "input": { "name": name, "category": category, "price": price, "stock": stock } }),
            )
            .await;
        id_of(&data["createProduct"]["product"]["id"])
    }

    /// Charges a user's balance through the API.
    pub async fn charge(&self, user: i64, amount: i64) {
        let data = self
            .user(user)
            .data(
                "mutation($amount: Won!) { chargeBalance(input: {amount: $amount}) { balance userErrors { code } } }",
                json!({ "amount": amount }),
            )
            .await;
        assert_eq!(
            data["chargeBalance"]["userErrors"],
            json!([]),
            "[{}] charge",
            self.backend
        );
    }

    pub async fn balance(&self, user: i64) -> i64 {
        self.user(user).data("{ me { balance } }", json!({})).await["me"]["balance"]
            .as_i64()
            .expect("a balance")
    }

    /// A customer who has charged `balance` won (one CHARGE in the ledger); returns its id.
    pub async fn customer(&self, name: &str, balance: i64) -> i64 {
        let user = self.create_user(name).await;
        self.charge(user, balance).await;
        user
    }

    /// One customer per balance, named `"{prefix} {i}"`; returns `(user, charged)` pairs, as
    /// [`super::assert_invariants`] takes them.
    pub async fn customers(
        &self,
        prefix: &str,
        balances: impl IntoIterator<Item = i64>,
    ) -> Vec<(i64, i64)> {
        let mut users = vec![];
        for (i, balance) in balances.into_iter().enumerate() {
            users.push((
                self.customer(&format!("{prefix} {i}"), balance).await,
                balance,
            ));
        }
        users
    }

    /// A customer with `balance` won and the products to buy: returns the customer's id and the
    /// products' ids, in the order given.
    pub async fn shop<const N: usize>(
        &self,
        customer: &str,
        balance: i64,
        products: [ProductSpec<'_>; N],
    ) -> (i64, [i64; N]) {
        let user = self.customer(customer, balance).await;
        let mut ids = [0; N];
        for (id, (name, category, price, stock)) in ids.iter_mut().zip(products) {
            *id = self.create_product(name, category, price, stock).await;
        }
        (user, ids)
    }

    /// Products named `"{prefix} {i}"` in one category, one per `(price, stock)`.
    pub async fn stocked(
        &self,
        prefix: &str,
        category: &str,
        products: impl IntoIterator<Item = (i64, i64)>,
    ) -> Stocked {
        let mut stocked = Stocked {
            ids: vec![],
            initial: HashMap::new(),
        };
        for (i, (price, stock)) in products.into_iter().enumerate() {
            let id = self
                .create_product(&format!("{prefix} {i}"), category, price, stock)
                .await;
            stocked.ids.push(id);
            stocked.initial.insert(id, stock);
        }
        stocked
    }

    /// Creates a coupon event through the admin API (`kind` is PERCENT or FIXED; `extra` adds or
    /// overrides input fields: `startsAt`, `minOrderAmount`, ...); returns its id.
    pub async fn coupon_event(
        &self,
        name: &str,
        kind: &str,
        value: i64,
        total: i64,
        extra: Value,
    ) -> i64 {
        let mut input = json!({ "name": name, "discountType": kind, "discountValue": value, "totalQuantity": total });
        if let (Value::Object(map), Value::Object(more)) = (&mut input, extra) {
            map.extend(more);
        }
        let data = self
            .admin()
            .data(
                "mutation($input: CreateCouponEventInput!) { createCouponEvent(input: $input) { couponEvent { id } userErrors { code field message } } }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(data["createCouponEvent"]["userErrors"], json!([]), "{data}");
        id_of(&data["createCouponEvent"]["couponEvent"]["id"])
    }

    /// How many COMPLETED orders a user has.
    pub async fn completed_orders(&self, user: i64) -> u64 {
        self.user(user)
            .data(
                "{ me { orders(status: COMPLETED) { totalCount } } }",
                json!({}),
            )
            .await["me"]["orders"]["totalCount"]
            .as_u64()
            .expect("a count")
    }
}
