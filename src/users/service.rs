//! User use cases: look-up, the check that credentials name an existing user, and admin creation
//! (the user and an empty balance, in one transaction).

use std::time::Duration;

use chrono::Utc;
use entity::{balance, user};
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, QuerySelect, Set};

use crate::auth::Role;
use crate::error::CommonError;
use crate::infra::db::Database;
use crate::infra::transact::Abort;
use crate::text::required_text;

/// Users remembered as existing (the application never deletes one; an operator may, by SQL:
/// then the domains' own checks answer until the entry ages out).
const KNOWN_USERS: u64 = 200_000;
const KNOWN_FOR: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct UserService {
    db: Database,
    known: moka::sync::Cache<i64, ()>,
}

impl UserService {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            known: moka::sync::Cache::builder()
                .max_capacity(KNOWN_USERS)
                .time_to_live(KNOWN_FOR)
                .build(),
        }
    }

    pub async fn get(&self, id: i64) -> Result<Option<user::Model>, DbErr> {
        user::Entity::find_by_id(id).one(self.db.conn()).await
    }

    /// True when the user exists (remembered for a while, so a busy user costs no query).
    pub async fn exists(&self, id: i64) -> Result<bool, DbErr> {
        if self.known.contains_key(&id) {
            return Ok(true);
        }
        let found: Option<i64> = user::Entity::find_by_id(id)
            .select_only()
            .column(user::Column::Id)
            .into_tuple()
            .one(self.db.conn())
            .await?;
        if found.is_some() {
            self.known.insert(id, ());
        }
        Ok(found.is_some())
    }

    /// Creates a user with a zero balance.
    pub async fn create(&self, name: &str, role: Role) -> Result<user::Model, CommonError> {
        let name = required_text("name", name, 100)?;
        let name = name.as_str();
        let created: user::Model = self
            .db
            .transact(|txn| async move {
                Ok::<_, Abort<CommonError>>(insert_user(&*txn, None, name, role).await?)
            })
            .await?;
        self.known.insert(created.id, ());
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
