//! What every resolver reads from the request besides its service: the viewer.

/// The viewer of the request (anonymous when the transport attached none).
pub fn viewer(ctx: &async_graphql::Context<'_>) -> crate::auth::Viewer {
    ctx.data_opt::<crate::auth::Viewer>()
        .copied()
        .unwrap_or(crate::auth::Viewer::ANONYMOUS)
}
