//! The `User` type and `me`: the viewer's own data across domains (balance and its history,
//! orders, coupons).

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::user;

use crate::auth::Role;
use crate::balance::graphql::BalanceEntry;
use crate::balance::service::BalanceService;
use crate::coupon::graphql::{Coupon, CouponStatus, coupons_of};
use crate::coupon::service::CouponService;
use crate::error::AppError;
use crate::graphql::context::viewer;
use crate::graphql::pagination::{IdConnection, connection, page_request};
use crate::graphql::scalars::Won;
use crate::ordering::graphql::{Order, OrderStatus};
use crate::ordering::service::OrderingService;
use crate::users::service::UserService;

/// A shopper or administrator.
#[derive(Clone, Debug)]
pub struct User {
    id: i64,
    name: String,
    /// As stored: an unknown one is an error when asked for, never a guess.
    role: String,
    created_at: DateTime<Utc>,
}

impl From<user::Model> for User {
    fn from(row: user::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            role: row.role,
            created_at: row.created_at,
        }
    }
}

/// A shopper or administrator, with their balance, orders and coupons.
#[Object]
impl User {
    /// The user's id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// The user's display name.
    async fn name(&self) -> &str {
        &self.name
    }

    /// CUSTOMER or ADMIN.
    async fn role(&self) -> async_graphql::Result<Role> {
        Role::parse(&self.role).ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "user {} has the unknown role {:?}",
                self.id,
                self.role
            ))
            .into()
        })
    }

    /// When the user was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The prepaid balance in won, exact at the time of the query.
    async fn balance(&self, ctx: &Context<'_>) -> async_graphql::Result<Won> {
        let amount = ctx
            .data_unchecked::<BalanceService>()
            .balance_of(self.id)
            .await
            .map_err(AppError::from)?;
        Ok(Won(amount.unwrap_or(0)))
    }

    /// Every charge, payment and refund, newest first.
    #[graphql(complexity = "2 + first.clamp(0, 100) as usize * child_complexity")]
    async fn balance_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, 1 to 100 (else BAD_USER_INPUT).")] first: i32,
        #[graphql(
            desc = "The `pageInfo.endCursor` of the previous page; omit for the first page."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<IdConnection<BalanceEntry>> {
        let request = page_request(first, after.as_deref())?;
        let page = ctx
            .data_unchecked::<BalanceService>()
            .history(self.id, request)
            .await
            .map_err(AppError::from)?;
        Ok(connection(page, request.after.is_some(), |row| {
            (row.id, BalanceEntry::from(row))
        }))
    }

    /// The user's coupons, newest first (at most 500), optionally of one status.
    async fn coupons(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Only coupons in this status (as shown: an AVAILABLE coupon past \
                          `expiresAt` is EXPIRED); omit for all."
        )]
        status: Option<CouponStatus>,
    ) -> async_graphql::Result<Vec<Coupon>> {
        Ok(coupons_of(ctx.data_unchecked::<CouponService>(), self.id, status).await?)
    }

    /// The user's orders, newest first, optionally of one status.
    #[graphql(complexity = "2 + first.clamp(0, 100) as usize * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, 1 to 100 (else BAD_USER_INPUT).")] first: i32,
        #[graphql(
            desc = "The `pageInfo.endCursor` of the previous page; omit for the first page."
        )]
        after: Option<String>,
        #[graphql(desc = "Only orders in this status; omit for all.")] status: Option<OrderStatus>,
    ) -> async_graphql::Result<IdConnection<Order>> {
        let request = page_request(first, after.as_deref())?;
        let page = ctx
            .data_unchecked::<OrderingService>()
            .list_for_user(self.id, status.map(Into::into), request)
            .await
            .map_err(AppError::from)?;
        Ok(connection(page, request.after.is_some(), |row| {
            (row.id, Order::from(row))
        }))
    }
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user (UNAUTHENTICATED without credentials).
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(signed_in(ctx).await?)
    }
}

/// The signed-in user, as stored now (UNAUTHENTICATED without credentials, or for a user who
/// no longer exists).
pub async fn signed_in(ctx: &Context<'_>) -> Result<User, AppError> {
    let user_id = viewer(ctx).require_user()?;
    let user = ctx
        .data_unchecked::<UserService>()
        .get(user_id)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    Ok(user.into())
}
