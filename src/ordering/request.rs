//! A validated order request: lines merged per product and sorted by product id (the lock order).

use serde::Serialize;

use crate::error::InvalidInput;

/// Most lines in one order.
pub const MAX_LINES: usize = 100;
/// Most units of one product in one order.
pub const MAX_QUANTITY: i64 = 1_000;

/// An order line as the client sent it; `product_id` is `None` when it was not a valid id.
#[derive(Clone, Debug)]
pub struct RawLine {
    pub product_id: Option<i64>,
    pub quantity: i64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderLine {
    pub product_id: i64,
    pub quantity: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct OrderRequest {
    /// One line per product, ascending product id.
    pub lines: Vec<OrderLine>,
    pub coupon_id: Option<i64>,
}

impl OrderRequest {
    /// Validates the lines and merges duplicate products (their quantities add up).
    pub fn parse(raw: &[RawLine], coupon_id: Option<Option<i64>>) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(InvalidInput::new("items", "must hold at least one line"));
        }
        if raw.len() > MAX_LINES {
            return Err(InvalidInput::new(
                "items",
                format!("must hold at most {MAX_LINES} lines"),
            ));
        }
        let mut lines: Vec<OrderLine> = Vec::with_capacity(raw.len());
        for (index, line) in raw.iter().enumerate() {
            let product_id = line.product_id.ok_or_else(|| {
                InvalidInput::new(format!("items.{index}.productId"), "is not a product id")
            })?;
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                return Err(InvalidInput::new(
                    format!("items.{index}.quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
            match lines.iter_mut().find(|l| l.product_id == product_id) {
                Some(existing) => existing.quantity += line.quantity,
                None => lines.push(OrderLine {
                    product_id,
                    quantity: line.quantity,
                }),
            }
        }
        if let Some(line) = lines.iter().find(|l| l.quantity > MAX_QUANTITY) {
            return Err(InvalidInput::new(
                "items",
                format!(
                    "product {} is ordered {} times in all: at most {MAX_QUANTITY}",
                    line.product_id, line.quantity
                ),
            ));
        }
        lines.sort_by_key(|l| l.product_id);
        let coupon_id = match coupon_id {
            None => None,
            Some(None) => return Err(InvalidInput::new("couponId", "is not a coupon id")),
            Some(Some(id)) => Some(id),
        };
        Ok(Self { lines, coupon_id })
    }

    pub fn product_ids(&self) -> Vec<i64> {
        self.lines.iter().map(|l| l.product_id).collect()
    }
}
