//! The decision of one order against the working rows of its batch (no database): every line
//! checked at once, then the coupon, then the balance; a refusal changes nothing.

use super::*;
use crate::error::CommonError;
use crate::ordering::model::LineProblem;
use crate::ordering::request::RawLine;

const USER: i64 = 42;

/// Products `(id, price, stock)` and balances `(user, balance)`.
fn working(products: &[(i64, i64, i64)], balances: &[(i64, i64)]) -> Working {
    Working {
        stock: products.iter().map(|&(id, _, stock)| (id, stock)).collect(),
        prices: products.iter().map(|&(id, price, _)| (id, price)).collect(),
        names: products
            .iter()
            .map(|&(id, _, _)| (id, format!("product {id}")))
            .collect(),
        balances: balances.iter().copied().collect(),
        coupons: HashMap::new(),
        orders: HashMap::new(),
        items: HashMap::new(),
    }
}

fn request(lines: &[(i64, i64)]) -> OrderRequest {
    let raw: Vec<RawLine> = lines
        .iter()
        .map(|&(id, quantity)| RawLine {
            product_id: Some(id),
            quantity,
        })
        .collect();
    OrderRequest::parse(&raw, None).expect("a valid request")
}

/// Decides command `index` of a batch: `Ok` with the new order it would insert.
fn decide(
    working: &mut Working,
    effects: &mut Effects,
    index: usize,
    lines: &[(i64, i64)],
    payment: Payment,
) -> Result<(i64, i64, i64), OrderError> {
    let answer = place(
        working,
        effects,
        index,
        USER,
        &request(lines),
        payment,
        Utc::now(),
    )?;
    assert!(matches!(answer, Answer::Order(id) if id == placeholder(index)));
    let (_, new) = effects.new_orders.last().expect("an order to insert");
    Ok((new.subtotal, new.discount, new.total))
}

fn unchanged(working: &Working, effects: &Effects, stock: &[(i64, i64)], balance: i64) {
    for &(id, expected) in stock {
        assert_eq!(working.stock[&id], expected, "stock of {id}");
    }
    assert_eq!(working.balances[&USER], balance);
    assert!(effects.new_orders.is_empty() && effects.stock.is_empty());
    assert!(effects.movements.is_empty());
}

#[test]
fn a_served_order_takes_its_stock_and_its_total() {
    let mut working = working(&[(1, 3_000, 5), (2, 1_500, 10)], &[(USER, 20_000)]);
    let mut effects = Effects::default();
    let totals = decide(
        &mut working,
        &mut effects,
        0,
        &[(1, 2), (2, 4)],
        Payment::Now,
    );
    assert_eq!(totals.unwrap(), (12_000, 0, 12_000));
    assert_eq!((working.stock[&1], working.stock[&2]), (3, 6));
    assert_eq!(effects.stock, BTreeMap::from([(1, -2), (2, -4)]));
    assert_eq!(working.balances[&USER], 8_000);
    let [(0, payment)] = effects.movements.as_slice() else {
        panic!("one payment")
    };
    assert_eq!(
        (payment.amount, payment.balance_after, payment.order_id),
        (-12_000, 8_000, None)
    );
}

#[test]
fn the_last_unit_and_the_last_won_can_be_spent() {
    let mut working = working(&[(1, 5_000, 2)], &[(USER, 10_000)]);
    let mut effects = Effects::default();
    let totals = decide(&mut working, &mut effects, 0, &[(1, 2)], Payment::Now).unwrap();
    assert_eq!(totals, (10_000, 0, 10_000));
    assert_eq!((working.stock[&1], working.balances[&USER]), (0, 0));
}

#[test]
fn every_line_that_cannot_be_served_is_reported_and_nothing_changes() {
    let mut working = working(
        &[(1, 1_000, 1), (2, 1_000, 0), (3, 1_000, 10)],
        &[(USER, 1_000_000)],
    );
    let mut effects = Effects::default();
    let refused = decide(
        &mut working,
        &mut effects,
        0,
        &[(1, 2), (2, 1), (3, 1), (4, 1)],
        Payment::Now,
    );
    let Err(OrderError::Lines(problems)) = refused else {
        panic!("refused by its lines: {refused:?}")
    };
    assert_eq!(
        problems,
        vec![
            LineProblem::OutOfStock {
                product_id: 1,
                requested: 2,
                available: 1
            },
            LineProblem::OutOfStock {
                product_id: 2,
                requested: 1,
                available: 0
            },
            LineProblem::ProductNotFound { product_id: 4 },
        ]
    );
    unchanged(&working, &effects, &[(1, 1), (2, 0), (3, 10)], 1_000_000);
}

#[test]
fn lines_are_checked_before_the_balance() {
    let mut working = working(&[(1, 1_000, 0)], &[(USER, 0)]);
    let mut effects = Effects::default();
    let refused = decide(&mut working, &mut effects, 0, &[(1, 1)], Payment::Now);
    assert!(matches!(refused, Err(OrderError::Lines(_))), "{refused:?}");
}

#[test]
fn one_won_short_is_refused_with_the_balance_and_the_total() {
    let mut working = working(&[(1, 2_500, 10)], &[(USER, 4_999)]);
    let mut effects = Effects::default();
    let refused = decide(&mut working, &mut effects, 0, &[(1, 2)], Payment::Now);
    assert!(
        matches!(
            refused,
            Err(OrderError::InsufficientBalance {
                balance: 4_999,
                required: 5_000
            })
        ),
        "{refused:?}"
    );
    unchanged(&working, &effects, &[(1, 10)], 4_999);
}

#[test]
fn a_user_without_a_balance_row_is_unknown() {
    let mut working = working(&[(1, 1_000, 10)], &[(USER, 0)]);
    working.balances.clear();
    let mut effects = Effects::default();
    let refused = decide(&mut working, &mut effects, 0, &[(1, 1)], Payment::Now);
    assert!(
        matches!(refused, Err(OrderError::Common(CommonError::UnknownUser))),
        "{refused:?}"
    );
    assert_eq!(working.stock[&1], 10);
}

#[test]
fn a_free_product_is_served_to_an_empty_balance() {
    let mut working = working(&[(1, 0, 3)], &[(USER, 0)]);
    let mut effects = Effects::default();
    let totals = decide(&mut working, &mut effects, 0, &[(1, 3)], Payment::Now).unwrap();
    assert_eq!(totals, (0, 0, 0));
    assert_eq!((working.stock[&1], working.balances[&USER]), (0, 0));
}

#[test]
fn the_largest_order_is_priced_without_overflow() {
    // 100 lines of 1,000 units at the largest price (1,000,000,000 won, catalog's MAX_PRICE)
    let products: Vec<(i64, i64, i64)> = (1..=100).map(|id| (id, 1_000_000_000, 1_000)).collect();
    let lines: Vec<(i64, i64)> = (1..=100).map(|id| (id, 1_000)).collect();
    let largest = 100 * 1_000 * 1_000_000_000;
    let mut working = working(&products, &[(USER, largest)]);
    let mut effects = Effects::default();
    let totals = decide(&mut working, &mut effects, 0, &lines, Payment::Now).unwrap();
    assert_eq!(totals, (largest, 0, largest));
    assert_eq!(working.balances[&USER], 0);
}

#[test]
fn a_pending_order_holds_stock_but_takes_no_money() {
    let mut working = working(&[(1, 7_000, 4)], &[(USER, 1_000)]);
    let mut effects = Effects::default();
    // not paid yet: the balance is judged now (a pending order must be payable)
    let refused = decide(&mut working, &mut effects, 0, &[(1, 1)], Payment::Later);
    assert!(
        matches!(refused, Err(OrderError::InsufficientBalance { .. })),
        "{refused:?}"
    );
    working.balances.insert(USER, 7_000);
    let totals = decide(&mut working, &mut effects, 0, &[(1, 1)], Payment::Later).unwrap();
    assert_eq!(totals, (7_000, 0, 7_000));
    assert_eq!((working.stock[&1], working.balances[&USER]), (3, 7_000));
    assert!(effects.movements.is_empty());
}

#[test]
fn a_later_command_of_the_batch_sees_what_the_earlier_ones_left() {
    let mut working = working(&[(1, 6_000, 3)], &[(USER, 10_000)]);
    let mut effects = Effects::default();
    assert!(decide(&mut working, &mut effects, 0, &[(1, 1)], Payment::Now).is_ok());
    let second = decide(&mut working, &mut effects, 1, &[(1, 1)], Payment::Now);
    assert!(
        matches!(
            second,
            Err(OrderError::InsufficientBalance {
                balance: 4_000,
                required: 6_000
            })
        ),
        "{second:?}"
    );
    // the second left nothing behind; a third that fits is served from what the first left
    assert_eq!(effects.new_orders.len(), 1);
    working.balances.insert(USER, 4_000 + 12_000);
    assert!(decide(&mut working, &mut effects, 2, &[(1, 2)], Payment::Now).is_ok());
    let over = decide(&mut working, &mut effects, 3, &[(1, 1)], Payment::Now);
    assert!(
        matches!(&over, Err(OrderError::Lines(p)) if p == &[LineProblem::OutOfStock { product_id: 1, requested: 1, available: 0 }]),
        "{over:?}"
    );
    assert_eq!(effects.stock, BTreeMap::from([(1, -3)]));
    assert_eq!(
        effects
            .new_orders
            .iter()
            .map(|(index, _)| *index)
            .collect::<Vec<_>>(),
        vec![0, 2]
    );
}

#[test]
fn placeholders_never_collide_with_real_ids() {
    assert_eq!(placeholder(0), -1);
    assert!((0..10_000).map(placeholder).all(|id| id < 0));
    assert_ne!(placeholder(1), placeholder(2));
}
