//! The coupon gate: turns away requests for an exhausted event, or from a user who already holds
//! its coupon, without touching the database; and lets at most as many requests through as the
//! event has coupons left.
//!
//! Per event it keeps: a counter of slots left (built from the database: total - issued), the set
//! of users admitted or holding a coupon, and an "exhausted" flag set only when the database said
//! so. A request that passes takes a slot; the database then decides, and [`CouponGate::settle`]
//! gives the slot back unless a coupon was issued. With Redis (shared by every instance) this is
//! one Lua script per request, whose keys share the event's hash tag so that it runs on a Redis
//! Cluster too; without, a mutex-guarded map. An event the database said is exhausted stays so
//! (coupons never go back to an event, and its total never changes): each instance remembers
//! that and turns its requests away without asking Redis. The Redis state is rebuilt from the
//! database when its keys are missing (restart, flush) and at least every
//! [`REBUILD_EVERY_SECS`], so a slot lost to a crash between gate and database comes back. A
//! failing Redis makes the gate let everything through to the database: slower, never wrong.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use redis::Script;
use tokio::sync::Mutex;

use crate::infra::redis::RedisConnection;

/// The Redis picture of an event is rebuilt at least this often.
pub const REBUILD_EVERY_SECS: u64 = 10;
/// Longest wait for Redis before the gate lets the request through to the database.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// Gate keys live this long without use.
const KEY_TTL_SECS: u64 = 86_400;

/// The database's view of an event, to (re)build the gate from.
#[derive(Clone, Debug)]
pub struct EventSnapshot {
    pub remaining: i64,
    pub holders: Vec<i64>,
}

/// What the gate says about a request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go to the database; `reserved` tells whether a slot was taken (to settle).
    Proceed {
        reserved: bool,
    },
    Exhausted,
    AlreadyIssued,
}

/// What the database decided, to settle a [`Verdict::Proceed`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    Issued,
    /// Issued the event's last coupon.
    IssuedLast,
    Exhausted,
    AlreadyIssued,
    /// Refused for another reason, or failed: the slot and the user are released.
    Released,
}

#[derive(Clone)]
pub enum CouponGate {
    InProcess(Arc<Mutex<HashMap<i64, LocalEvent>>>),
    Redis {
        conn: RedisConnection,
        prefix: String,
        /// Events the database said are exhausted, as this instance learnt.
        exhausted: Arc<RwLock<HashSet<i64>>>,
        /// One rebuild at a time in this process: the first request of a storm that finds the
        /// gate unbuilt loads the event from the database; the others wait for it instead of
        /// each loading it again.
        rebuilding: Arc<Mutex<()>>,
    },
}

#[derive(Debug)]
pub struct LocalEvent {
    remaining: i64,
    exhausted: bool,
    users: HashSet<i64>,
}

static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT_LUA));
static BUILD: LazyLock<Script> = LazyLock::new(|| Script::new(BUILD_LUA));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE_LUA));

const ADMIT_LUA: &str = r#"
-- KEYS: exhausted flag, users set, remaining counter, built marker; ARGV: user id
-- 4: exhausted as the database said; 1: no slot left now
if redis.call('EXISTS', KEYS[1]) == 1 then return 4 end
if redis.call('EXISTS', KEYS[4]) == 0 then return 3 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 2 end
if redis.call('DECR', KEYS[3]) < 0 then
  redis.call('INCR', KEYS[3])
  return 1
end
redis.call('SADD', KEYS[2], ARGV[1])
return 0
"#;

const BUILD_LUA: &str = r#"
-- KEYS: exhausted flag, users set, remaining counter, built marker
-- ARGV: remaining, rebuild seconds, key ttl, user ids...
redis.call('DEL', KEYS[2])
for i = 4, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[4], '1', 'EX', ARGV[2])
if tonumber(ARGV[1]) <= 0 then redis.call('SET', KEYS[1], '1', 'EX', ARGV[3]) end
return 0
"#;

const SETTLE_LUA: &str = r#"
-- KEYS: exhausted flag, users set, remaining counter; ARGV: user id, outcome, key ttl
local outcome = ARGV[2]
if outcome == 'last' then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
elseif outcome == 'exhausted' then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
  redis.call('SREM', KEYS[2], ARGV[1])
elseif outcome == 'already' then
  redis.call('INCR', KEYS[3])
elseif outcome == 'released' then
  redis.call('INCR', KEYS[3])
  redis.call('SREM', KEYS[2], ARGV[1])
end
return 0
"#;

impl CouponGate {
    pub fn in_process() -> Self {
        CouponGate::InProcess(Arc::new(Mutex::new(HashMap::new())))
    }

    pub fn redis(conn: RedisConnection, prefix: &str) -> Self {
        CouponGate::Redis {
            conn,
            prefix: prefix.to_owned(),
            exhausted: Arc::default(),
            rebuilding: Arc::new(Mutex::new(())),
        }
    }

    /// Decides whether a request reaches the database. `snapshot` loads the event's state from
    /// the database when the gate has none.
    pub async fn admit<F, Fut>(&self, event_id: i64, user_id: i64, snapshot: F) -> Verdict
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<EventSnapshot>>,
    {
        match self {
            CouponGate::InProcess(events) => {
                admit_in_process(events, event_id, user_id, snapshot).await
            }
            CouponGate::Redis {
                conn,
                prefix,
                exhausted,
                rebuilding,
            } => {
                let gate = (conn, prefix.as_str(), &**exhausted, &**rebuilding);
                admit_in_redis(gate, event_id, user_id, snapshot).await
            }
        }
    }

    /// Records what the database decided for an admitted request.
    pub async fn settle(&self, event_id: i64, user_id: i64, reserved: bool, outcome: Settlement) {
        match self {
            CouponGate::InProcess(events) => {
                let mut events = events.lock().await;
                let Some(event) = events.get_mut(&event_id) else {
                    return;
                };
                match outcome {
                    Settlement::Issued => {}
                    Settlement::IssuedLast => event.exhausted = true,
                    Settlement::Exhausted => {
                        event.exhausted = true;
                        event.users.remove(&user_id);
                    }
                    Settlement::AlreadyIssued => {
                        event.users.insert(user_id);
                        if reserved {
                            event.remaining += 1;
                        }
                    }
                    Settlement::Released => {
                        if reserved {
                            event.remaining += 1;
                            event.users.remove(&user_id);
                        }
                    }
                }
            }
            CouponGate::Redis {
                conn,
                prefix,
                exhausted,
                ..
            } => {
                if matches!(outcome, Settlement::IssuedLast | Settlement::Exhausted) {
                    learn_exhausted(exhausted, event_id);
                }
                let word = match (outcome, reserved) {
                    (Settlement::Issued, _) => return,
                    (Settlement::IssuedLast, _) => "last",
                    (Settlement::Exhausted, _) => "exhausted",
                    (Settlement::AlreadyIssued, true) => "already",
                    (Settlement::Released, true) => "released",
                    (_, false) => return,
                };
                let keys = keys(prefix, event_id);
                let mut conn = conn.clone();
                let mut settle = SETTLE.key(&keys[..3]);
                settle.arg(user_id).arg(word).arg(KEY_TTL_SECS);
                let settled =
                    tokio::time::timeout(REDIS_TIMEOUT, settle.invoke_async::<i64>(&mut conn))
                        .await;
                if !matches!(settled, Ok(Ok(_))) {
                    tracing::warn!(
                        "coupon gate: cannot settle in Redis; it is rebuilt from the database"
                    );
                }
            }
        }
    }
}

/// [`CouponGate::admit`] with the gate in this process.
async fn admit_in_process<F, Fut>(
    events: &Mutex<HashMap<i64, LocalEvent>>,
    event_id: i64,
    user_id: i64,
    snapshot: F,
) -> Verdict
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<EventSnapshot>>,
{
    let mut events = events.lock().await;
    let event = match events.entry(event_id) {
        Entry::Occupied(known) => known.into_mut(),
        Entry::Vacant(slot) => {
            let Some(snapshot) = snapshot().await else {
                return Verdict::Proceed { reserved: false };
            };
            slot.insert(LocalEvent {
                remaining: snapshot.remaining,
                exhausted: snapshot.remaining <= 0,
                users: snapshot.holders.into_iter().collect(),
            })
        }
    };
    if event.exhausted || event.remaining <= 0 {
        Verdict::Exhausted
    } else if !event.users.insert(user_id) {
        Verdict::AlreadyIssued
    } else {
        event.remaining -= 1;
        Verdict::Proceed { reserved: true }
    }
}

/// [`CouponGate::admit`] with the gate in Redis: its connection, key prefix, the events known
/// exhausted, and the one rebuild at a time.
async fn admit_in_redis<F, Fut>(
    (conn, prefix, exhausted, rebuilding): (
        &RedisConnection,
        &str,
        &RwLock<HashSet<i64>>,
        &Mutex<()>,
    ),
    event_id: i64,
    user_id: i64,
    snapshot: F,
) -> Verdict
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<EventSnapshot>>,
{
    if known_exhausted(exhausted, event_id) {
        return Verdict::Exhausted;
    }
    let keys = keys(prefix, event_id);
    let mut conn = conn.clone();
    let mut verdict = run_admit(&mut conn, &keys, user_id).await;
    let _rebuilding = if verdict == Ok(3) {
        let turn = rebuilding.lock().await;
        // another request may have rebuilt it while this one waited
        verdict = run_admit(&mut conn, &keys, user_id).await;
        Some(turn)
    } else {
        None
    };
    if verdict == Ok(3) {
        let Some(snapshot) = snapshot().await else {
            return Verdict::Proceed { reserved: false };
        };
        let mut build = BUILD.key(&keys[..4]);
        build
            .arg(snapshot.remaining)
            .arg(REBUILD_EVERY_SECS)
            .arg(KEY_TTL_SECS);
        for holder in &snapshot.holders {
            build.arg(*holder);
        }
        let built = tokio::time::timeout(REDIS_TIMEOUT, build.invoke_async::<i64>(&mut conn)).await;
        if !matches!(built, Ok(Ok(_))) {
            tracing::warn!("coupon gate: cannot rebuild in Redis; using the database");
            return Verdict::Proceed { reserved: false };
        }
        verdict = run_admit(&mut conn, &keys, user_id).await;
    }
    match verdict {
        Ok(0) => Verdict::Proceed { reserved: true },
        Ok(1) => Verdict::Exhausted,
        Ok(4) => {
            learn_exhausted(exhausted, event_id);
            Verdict::Exhausted
        }
        Ok(2) => Verdict::AlreadyIssued,
        Ok(_) => Verdict::Proceed { reserved: false },
        Err(err) => {
            tracing::warn!(error = %err, "coupon gate: Redis unavailable; using the database");
            Verdict::Proceed { reserved: false }
        }
    }
}

fn known_exhausted(exhausted: &RwLock<HashSet<i64>>, event_id: i64) -> bool {
    exhausted
        .read()
        .is_ok_and(|events| events.contains(&event_id))
}

fn learn_exhausted(exhausted: &RwLock<HashSet<i64>>, event_id: i64) {
    if let Ok(mut events) = exhausted.write() {
        events.insert(event_id);
    }
}

/// The event's keys, in the order the scripts take them. `{event_id}` is a hash tag: on a Redis
/// Cluster all four live in one slot, as a script's keys must, and events spread over the nodes.
fn keys(prefix: &str, event_id: i64) -> [String; 4] {
    ["exhausted", "users", "remaining", "built"]
        .map(|key| format!("{prefix}coupon:{{{event_id}}}:{key}"))
}

#[tracing::instrument(
    name = "redis coupon gate",
    skip_all,
    fields(otel.kind = "client", db.system = "redis")
)]
async fn run_admit(
    conn: &mut RedisConnection,
    keys: &[String; 4],
    user_id: i64,
) -> Result<i64, redis::RedisError> {
    let mut admit = ADMIT.key(&keys[..]);
    admit.arg(user_id);
    match tokio::time::timeout(REDIS_TIMEOUT, admit.invoke_async::<i64>(conn)).await {
        Ok(answer) => answer,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "coupon gate: Redis timed out",
        ))),
    }
}
