//! User use cases: look-up and admin creation (the user and an empty balance, in one transaction).

use chrono::Utc;
use entity::{balance, user};
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, Set};

use crate::auth::Role;
use crate::catalog::service::required_text;
use crate::error::InvalidInput;
use crate::infra::db::{AttemptError, Database};

#[derive(Clone)]
pub struct UserService {
    db: Database,
}

#[derive(Debug, thiserror::Error)]
pub enum UserAdminError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl UserService {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn get(&self, id: i64) -> Result<Option<user::Model>, DbErr> {
        user::Entity::find_by_id(id).one(self.db.conn()).await
    }

    /// Creates a user with a zero balance.
    pub async fn create(&self, name: &str, role: Role) -> Result<user::Model, UserAdminError> {
        let name = required_text("name", name, 100)?;
        Ok(self.db.write(|| self.create_attempt(&name, role)).await?)
    }

    async fn create_attempt(&self, name: &str, role: Role) -> Result<user::Model, AttemptError> {
        let txn = self.db.begin_write().await?;
        let created = insert_user(&*txn, None, name, role).await?;
        txn.commit().await?;
        Ok(created)
    }
}

/// Inserts a user (with `id` when given) and its zero balance.
pub async fn insert_user(
    conn: &impl sea_orm::ConnectionTrait,
    id: Option<i64>,
    name: &str,
    role: Role,
) -> Result<user::Model, DbErr> {
    let now = Utc::now();
    let mut row = user::ActiveModel {
        name: Set(name.to_owned()),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
        ..Default::default()
    };
    if let Some(id) = id {
        row.id = Set(id);
    }
    let created = row.insert(conn).await?;
    balance::ActiveModel {
        user_id: Set(created.id),
        amount: Set(0),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(created)
}
