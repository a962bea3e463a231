//! SeaORM entities of the commerce service: one module per table, nothing else.
//!
//! The GraphQL types of the server are separate types; these models are the storage shape only.
//! Money columns are `i64` won, timestamps are UTC. Statuses and kinds are enums
//! ([`sea_orm::DeriveActiveEnum`]) stored in string columns as their names in capitals
//! (`PENDING`, `PERCENT`, ...): loading a row with any other value fails instead of guessing.

pub mod balance;
pub mod balance_ledger;
pub mod coupon_event;
pub mod idempotency_key;
pub mod installation;
pub mod order;
pub mod order_item;
pub mod outbox_event;
pub mod payment;
pub mod product;
pub mod product_sales_daily;
pub mod user;
pub mod user_coupon;

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use super::*;

    /// Every variant's stored name, and that exactly those names load.
    fn stored_as<E: ActiveEnum<Value = String> + Iterable + PartialEq + std::fmt::Debug>(
        names: &[&str],
    ) {
        let stored: Vec<String> = E::iter().map(|v| v.to_value()).collect();
        assert_eq!(stored, names);
        for variant in E::iter() {
            assert_eq!(E::try_from_value(&variant.to_value()).unwrap(), variant);
        }
        assert!(E::try_from_value(&"pending".to_owned()).is_err());
        assert!(E::try_from_value(&"SHIPPED".to_owned()).is_err());
    }

    #[test]
    fn statuses_keep_the_strings_already_stored() {
        stored_as::<order::OrderStatus>(&[
            "PENDING",
            "COMPLETED",
            "CANCELLED",
            "EXPIRED",
            "REFUNDED",
        ]);
        stored_as::<payment::PaymentStatus>(&["SUCCESS", "REFUNDED"]);
        stored_as::<user_coupon::CouponStatus>(&["AVAILABLE", "RESERVED", "USED", "EXPIRED"]);
        stored_as::<coupon_event::DiscountType>(&["PERCENT", "FIXED"]);
        stored_as::<balance_ledger::LedgerKind>(&["CHARGE", "PAYMENT", "REFUND"]);
        stored_as::<outbox_event::OutboxStatus>(&["PENDING", "SENT", "FAILED"]);
        assert_eq!(order::OrderStatus::Expired.to_string(), "EXPIRED");
    }
}
