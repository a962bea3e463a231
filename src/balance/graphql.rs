//! GraphQL surface of balances: `chargeBalance` and the ledger entry type.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::balance_ledger::{self, LedgerKind};

use super::service::BalanceError;
use crate::balance::service::BalanceService;
use crate::graphql::errors::{
    BalanceLimitError, Counted, ErrorCode, Failure, Outcomes, Payload, Refusal, UserError,
};
use crate::graphql::scalars::Won;

/// What moved a balance.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum BalanceEntryKind {
    /// Won added by `chargeBalance`.
    Charge,
    /// Won taken to pay an order (`placeOrder` or `payOrder`).
    Payment,
    /// Won given back when a COMPLETED order was cancelled (`cancelOrder`).
    Refund,
}

/// One movement of a balance.
#[derive(Clone, Debug, SimpleObject)]
pub struct BalanceEntry {
    /// The entry's id.
    pub id: ID,
    /// What moved the balance.
    pub kind: BalanceEntryKind,
    /// Signed: positive for charges and refunds, negative for payments.
    pub amount: Won,
    /// The balance in won right after this movement.
    pub balance_after: Won,
    /// The order paid or refunded; null for a charge.
    pub order_id: Option<ID>,
    /// When the balance moved.
    pub created_at: DateTime<Utc>,
}

impl From<LedgerKind> for BalanceEntryKind {
    fn from(kind: LedgerKind) -> Self {
        match kind {
            LedgerKind::Charge => BalanceEntryKind::Charge,
            LedgerKind::Payment => BalanceEntryKind::Payment,
            LedgerKind::Refund => BalanceEntryKind::Refund,
        }
    }
}

impl From<balance_ledger::Model> for BalanceEntry {
    fn from(row: balance_ledger::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            kind: row.kind.into(),
            amount: Won(row.amount),
            balance_after: Won(row.balance_after),
            order_id: row.order_id.map(|id| ID(id.to_string())),
            created_at: row.created_at,
        }
    }
}

/// A charge of the viewer's prepaid balance.
#[derive(InputObject)]
pub struct ChargeBalanceInput {
    /// Won to add: positive, at most the per-charge limit.
    pub amount: Won,
    /// Optional key (1 to 200 characters): sending the same charge again with it returns the
    /// first result.
    pub idempotency_key: Option<String>,
}

/// The result of `chargeBalance`: the new balance and its ledger entry, or why nothing was
/// charged.
// (its `viewer` field is resolved in users::graphql::payloads, next to `User`)
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ChargeBalancePayload {
    /// The balance right after this charge, in won; null when refused.
    pub balance: Option<Won>,
    /// The CHARGE entry written; null when refused.
    pub entry: Option<BalanceEntry>,
    /// Why nothing was charged; empty on success.
    pub user_errors: Vec<UserError>,
}

impl Payload<balance_ledger::Model> for ChargeBalancePayload {
    fn success(entry: balance_ledger::Model) -> Self {
        Self {
            balance: Some(Won(entry.balance_after)),
            entry: Some(entry.into()),
            user_errors: vec![],
        }
    }

    fn failure(user_errors: Vec<UserError>) -> Self {
        Self {
            balance: None,
            entry: None,
            user_errors,
        }
    }
}

#[derive(Default)]
pub struct BalanceMutation;

#[Object]
impl BalanceMutation {
    /// Adds won to the viewer's prepaid balance (signed-in users). `userErrors`: INVALID_INPUT
    /// (an amount that is not positive or above the per-charge limit, a malformed key),
    /// IDEMPOTENCY_KEY_REUSED, BALANCE_LIMIT_EXCEEDED.
    async fn charge_balance(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The amount to charge.")] input: ChargeBalanceInput,
    ) -> async_graphql::Result<ChargeBalancePayload> {
        let user_id = crate::graphql::context::viewer(ctx).require_user()?;
        ChargeBalancePayload::resolve(
            &CHARGE_BALANCE,
            ctx.data_unchecked::<BalanceService>()
                .charge(user_id, input.amount.0, input.idempotency_key.as_deref())
                .await,
        )
    }
}

const CHARGE_BALANCE: Counted<BalanceError> = Counted::new("chargeBalance");

/// The mutations of balances whose outcomes are counted.
pub static COUNTED: [Outcomes; 1] = [CHARGE_BALANCE.outcomes()];

/// The codes that `From<BalanceError> for Failure` below comes to.
impl Refusal for BalanceError {
    const CODES: &'static [ErrorCode] = &[ErrorCode::BalanceLimitExceeded];
}

/// What a client sees of each refusal.
impl From<BalanceError> for Failure {
    fn from(err: BalanceError) -> Self {
        match err {
            BalanceError::Common(err) => err.into(),
            BalanceError::LimitExceeded { balance, max } => {
                Failure::user(UserError::BalanceLimit(BalanceLimitError {
                    code: ErrorCode::BalanceLimitExceeded,
                    message: format!("a balance may not exceed {max} won"),
                    field: Some(vec!["input".into(), "amount".into()]),
                    balance: Won(balance),
                    max_balance: Won(max),
                }))
            }
        }
    }
}
