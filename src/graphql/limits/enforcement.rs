//! Every request passes the limits before async-graphql looks at its document: as an extension,
//! whatever the transport.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Request, ServerError, ServerResult};

use super::document::check_document;
use super::text::check_text;
use super::{DocumentLimits, LimitError};

/// Refuses a request over any limit; otherwise leaves its parsed document in it.
pub fn enforce(request: &mut Request, limits: &DocumentLimits) -> Result<(), ServerError> {
    check_text(&request.query, limits).map_err(LimitError::into_server_error)?;
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        // execution parses it again and reports the syntax error (GRAPHQL_PARSE_FAILED)
        return Ok(());
    };
    check_document(document, operation_name.as_deref(), limits)
        .map_err(LimitError::into_server_error)
}

/// The extension that applies [`enforce`] to every request, whatever its transport.
pub struct DocumentLimitsExtension(pub DocumentLimits);

impl ExtensionFactory for DocumentLimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Enforcer(self.0))
    }
}

struct Enforcer(DocumentLimits);

#[async_graphql::async_trait::async_trait]
impl Extension for Enforcer {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        enforce(&mut request, &self.0)?;
        next.run(ctx, request).await
    }
}
