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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product_id: i64, quantity: i64) -> RawLine {
        RawLine {
            product_id: Some(product_id),
            quantity,
        }
    }

    fn parse(raw: &[RawLine]) -> Result<OrderRequest, InvalidInput> {
        OrderRequest::parse(raw, None)
    }

    /// The field a refusal names (the path under the mutation's `input`).
    fn refused_field(raw: &[RawLine]) -> String {
        parse(raw).expect_err("refused").field
    }

    #[test]
    fn an_order_holds_one_to_a_hundred_lines() {
        assert_eq!(refused_field(&[]), "items");
        let most: Vec<RawLine> = (1..=MAX_LINES as i64).map(|id| line(id, 1)).collect();
        assert_eq!(parse(&most).unwrap().lines.len(), MAX_LINES);
        let too_many: Vec<RawLine> = (1..=MAX_LINES as i64 + 1).map(|id| line(id, 1)).collect();
        assert_eq!(refused_field(&too_many), "items");
        // the line count is judged as sent, before duplicates are merged
        assert_eq!(refused_field(&vec![line(1, 1); MAX_LINES + 1]), "items");
    }

    #[test]
    fn a_quantity_is_between_one_and_the_maximum() {
        for quantity in [0, -1, MAX_QUANTITY + 1, i64::MIN, i64::MAX] {
            assert_eq!(
                refused_field(&[line(1, 2), line(2, quantity)]),
                "items.1.quantity",
                "{quantity}"
            );
        }
        for quantity in [1, MAX_QUANTITY] {
            assert_eq!(
                parse(&[line(1, quantity)]).unwrap().lines[0].quantity,
                quantity
            );
        }
    }

    #[test]
    fn a_line_without_a_valid_product_id_names_its_index() {
        let raw = [
            line(1, 1),
            line(2, 1),
            RawLine {
                product_id: None,
                quantity: 1,
            },
        ];
        assert_eq!(refused_field(&raw), "items.2.productId");
    }

    #[test]
    fn the_first_bad_line_is_the_one_reported() {
        let raw = [
            line(1, 0),
            RawLine {
                product_id: None,
                quantity: 1,
            },
        ];
        assert_eq!(refused_field(&raw), "items.0.quantity");
    }

    #[test]
    fn duplicate_products_are_merged_and_sorted_by_id_the_lock_order() {
        let request = parse(&[line(9, 1), line(3, 2), line(9, 4), line(5, 1), line(3, 1)]).unwrap();
        assert_eq!(
            request.lines,
            vec![
                OrderLine {
                    product_id: 3,
                    quantity: 3
                },
                OrderLine {
                    product_id: 5,
                    quantity: 1
                },
                OrderLine {
                    product_id: 9,
                    quantity: 5
                },
            ]
        );
        assert_eq!(request.product_ids(), vec![3, 5, 9]);
    }

    #[test]
    fn merged_quantities_may_reach_but_not_pass_the_maximum() {
        let half = MAX_QUANTITY / 2;
        let merged = parse(&[line(7, half), line(7, MAX_QUANTITY - half)]).unwrap();
        assert_eq!(
            merged.lines,
            vec![OrderLine {
                product_id: 7,
                quantity: MAX_QUANTITY
            }]
        );
        let over = parse(&[line(7, 600), line(8, 1), line(7, 600)]).expect_err("over the maximum");
        assert_eq!(over.field, "items");
        assert!(over.message.contains("product 7"), "{}", over.message);
        assert!(over.message.contains("1200"), "{}", over.message);
    }

    #[test]
    fn a_hundred_maximal_lines_of_one_product_do_not_overflow() {
        let raw = vec![line(1, MAX_QUANTITY); MAX_LINES];
        let refused = parse(&raw).expect_err("over the maximum in all");
        assert_eq!(refused.field, "items");
        assert!(
            refused
                .message
                .contains(&(MAX_QUANTITY * MAX_LINES as i64).to_string())
        );
    }

    #[test]
    fn the_coupon_is_absent_valid_or_refused() {
        let raw = [line(1, 1)];
        assert_eq!(OrderRequest::parse(&raw, None).unwrap().coupon_id, None);
        assert_eq!(
            OrderRequest::parse(&raw, Some(Some(42))).unwrap().coupon_id,
            Some(42)
        );
        assert_eq!(
            OrderRequest::parse(&raw, Some(None))
                .expect_err("not an id")
                .field,
            "couponId"
        );
        // the lines are judged first
        assert_eq!(
            OrderRequest::parse(&[line(1, 0)], Some(None))
                .expect_err("refused")
                .field,
            "items.0.quantity"
        );
    }
}
