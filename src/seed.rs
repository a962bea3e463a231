//! Demo data of the scenarios in `shared/seeds/`: 김철수 and 이영희 with zero balances, an
//! administrator, and the products they shop for (무선 마우스 is id 101 at 25,000 won with 50 in
//! stock; 게이밍 마우스 has 1), and the coupon events of scenarios 2 and 5 (501: 10% off, 502: 20%
//! off, 503: 5% off). Seeded only into an empty database.

use chrono::Utc;
use entity::coupon_event::{self, DiscountType};
use entity::{product, user};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, Set,
};

use crate::auth::Role;
use crate::infra::db::Database;
use crate::users::service::insert_user;

/// (id, name, role)
const USERS: [(i64, &str, Role); 3] = [
    (1, "김철수", Role::Customer),
    (2, "이영희", Role::Customer),
    (3, "관리자", Role::Admin),
];

/// (id, name, category, price, stock, description)
const PRODUCTS: [(i64, &str, &str, i64, i64, &str); 7] = [
    (
        101,
        "무선 마우스",
        "마우스",
        25_000,
        50,
        "2.4GHz 무선 마우스",
    ),
    (
        102,
        "블루투스 키보드",
        "키보드",
        45_000,
        100,
        "멀티 페어링 블루투스 키보드",
    ),
    (
        103,
        "게이밍 마우스",
        "마우스",
        65_000,
        1,
        "16000 DPI 게이밍 마우스",
    ),
    (104, "모니터", "모니터", 120_000, 30, "27인치 QHD 모니터"),
    (105, "웹캠", "카메라", 30_000, 80, "1080p 웹캠"),
    (106, "이어폰", "오디오", 30_000, 200, "노이즈 캔슬링 이어폰"),
    (
        107,
        "무선 키보드",
        "키보드",
        45_000,
        120,
        "저소음 무선 키보드",
    ),
];

/// (id, name, percent off, coupons)
const COUPON_EVENTS: [(i64, &str, i64, i64); 3] = [
    (501, "선착순 10% 할인", 10, 100),
    (502, "선착순 20% 할인", 20, 100),
    (503, "5% 할인", 5, 1_000),
];

/// Seeds the demo data when the database has no users yet; returns whether it did.
pub async fn seed_demo(db: &Database) -> Result<bool, DbErr> {
    if user::Entity::find().count(db.conn()).await? > 0 {
        return Ok(false);
    }
    let txn = db.begin_write().await?;
    for (id, name, role) in USERS {
        insert_user(&*txn, Some(id), name, role).await?;
    }
    let now = Utc::now();
    for (id, name, category, price, stock, description) in PRODUCTS {
        product::ActiveModel {
            id: Set(id),
            name: Set(name.to_owned()),
            description: Set(description.to_owned()),
            category: Set(category.to_owned()),
            price: Set(price),
            stock: Set(stock),
            received: Set(stock),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&*txn)
        .await?;
    }
    for (id, name, percent, quantity) in COUPON_EVENTS {
        coupon_event::ActiveModel {
            id: Set(id),
            name: Set(name.to_owned()),
            discount_type: Set(DiscountType::Percent),
            discount_value: Set(percent),
            total_quantity: Set(quantity),
            issued_quantity: Set(0),
            starts_at: Set(now),
            ends_at: Set(None),
            valid_days: Set(Some(30)),
            valid_until: Set(None),
            min_order_amount: Set(0),
            created_at: Set(now),
        }
        .insert(&*txn)
        .await?;
    }
    if db.backend() == DbBackend::Postgres {
        // explicit ids do not advance PostgreSQL sequences
        for table in ["users", "products", "coupon_events"] {
            txn.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            ))
            .await?;
        }
    }
    txn.commit().await?;
    Ok(true)
}
