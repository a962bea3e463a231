//! `viewer` on the payloads of the mutations that change what the viewer sees of themselves
//! (their balance, their orders): a normalized client cache (Apollo, urql's graphcache, Relay)
//! updates the signed-in user from the payload, with no second query. The payload types live
//! with their domains, below users; their `viewer` field lives here, with `User`.

use async_graphql::{ComplexObject, Context};

use super::viewer::{User, signed_in};
use crate::balance::graphql::ChargeBalancePayload;
use crate::ordering::graphql::OrderPayload;

#[ComplexObject]
impl OrderPayload {
    /// The signed-in user as this mutation left them: their balance after paying or being
    /// refunded (read after the mutation, so it is the new one even when it was refused).
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(Some(signed_in(ctx).await?))
    }
}

#[ComplexObject]
impl ChargeBalancePayload {
    /// The signed-in user as this charge left them: their new balance.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(Some(signed_in(ctx).await?))
    }
}
