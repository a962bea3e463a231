//! GraphQL surface of users: admin `createUser`, the viewer (`me`, and `viewer` on the payloads
//! of the mutations that change the viewer).

mod payloads;
pub mod viewer;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use entity::user;

use crate::auth::Role;
use crate::error::CommonError;
use crate::graphql::context::viewer;
use crate::graphql::errors::{Counted, Outcomes, Payload, UserError};
use crate::users::service::UserService;
use viewer::User;

/// A new user.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// One line, 1 to 100 characters (trimmed).
    pub name: String,
    /// CUSTOMER unless given.
    #[graphql(default_with = "Role::Customer")]
    pub role: Role,
}

/// The result of `createUser`: the user as stored, or why none was created.
#[derive(SimpleObject)]
pub struct CreateUserPayload {
    /// The user created; null when refused.
    pub user: Option<User>,
    /// Why no user was created; empty on success.
    pub user_errors: Vec<UserError>,
}

impl Payload<user::Model> for CreateUserPayload {
    fn success(row: user::Model) -> Self {
        Self {
            user: Some(row.into()),
            user_errors: vec![],
        }
    }

    fn failure(user_errors: Vec<UserError>) -> Self {
        Self {
            user: None,
            user_errors,
        }
    }
}

#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
    /// Creates a user with a zero balance. Admin only (FORBIDDEN otherwise). `userErrors`:
    /// INVALID_INPUT.
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to create.")] input: CreateUserInput,
    ) -> async_graphql::Result<CreateUserPayload> {
        viewer(ctx).require_admin()?;
        CreateUserPayload::resolve(
            &CREATE_USER,
            ctx.data_unchecked::<UserService>()
                .create(&input.name, input.role)
                .await,
        )
    }
}

const CREATE_USER: Counted<CommonError> = Counted::new("createUser");

/// The mutations of users whose outcomes are counted.
pub static COUNTED: [Outcomes; 1] = [CREATE_USER.outcomes()];
