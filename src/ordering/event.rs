//! The order as the data platform receives it (the payload of ORDER_COMPLETED and ORDER_REFUNDED
//! outbox events), and the priced lines that sales and events are made of.

use std::collections::HashMap;

use entity::{order, order_item};
use serde_json::{Value, json};

use crate::ranking::sales::Sale;

/// An order line with its price.
#[derive(Copy, Clone, Debug)]
pub struct PricedLine {
    pub product_id: i64,
    pub quantity: i64,
    pub unit_price: i64,
}

impl From<&order_item::Model> for PricedLine {
    fn from(item: &order_item::Model) -> Self {
        Self {
            product_id: item.product_id,
            quantity: item.quantity,
            unit_price: item.unit_price,
        }
    }
}

impl PricedLine {
    pub fn sale(&self) -> Sale {
        Sale {
            product_id: self.product_id,
            quantity: self.quantity,
            revenue: self.quantity * self.unit_price,
        }
    }
}

/// The event payload: the order as committed, its lines with the products' names.
pub fn order_event(
    order: &order::Model,
    lines: &[PricedLine],
    names: &HashMap<i64, String>,
) -> Value {
    json!({
        "order": {
            "id": order.id,
            "userId": order.user_id,
            "status": order.status.to_string(),
            "items": lines.iter().map(|i| json!({
                "productId": i.product_id,
                "productName": names.get(&i.product_id),
                "quantity": i.quantity,
                "unitPrice": i.unit_price,
                "lineTotal": i.quantity * i.unit_price,
            })).collect::<Vec<_>>(),
            "subtotal": order.subtotal,
            "discount": order.discount,
            "total": order.total,
            "couponId": order.user_coupon_id,
            "createdAt": order.created_at.to_rfc3339(),
            "paidAt": order.paid_at.map(|t| t.to_rfc3339()),
            "cancelledAt": order.cancelled_at.map(|t| t.to_rfc3339()),
        }
    })
}
