//! A computed top-sellers ranking, and how two rankings differ for a subscriber.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// How many products a snapshot keeps (the largest `limit` a client may ask for).
pub const MAX_ENTRIES: usize = 50;

/// Top sellers over `days` business days ending today (`from..=to`), best first: by units
/// sold, then revenue, then product id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankingSnapshot {
    pub days: u32,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub computed_at: DateTime<Utc>,
    pub total_quantity: i64,
    pub total_revenue: i64,
    pub entries: Vec<RankedProduct>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankedProduct {
    pub product_id: i64,
    pub quantity: i64,
    pub revenue: i64,
}

impl RankingSnapshot {
    /// The same ranking, ignoring when it was computed.
    pub fn same_ranking(&self, other: &RankingSnapshot) -> bool {
        self.from == other.from
            && self.to == other.to
            && self.entries == other.entries
            && self.total_quantity == other.total_quantity
            && self.total_revenue == other.total_revenue
    }

    /// The product ids of the first `limit` places.
    pub fn top_ids(&self, limit: usize) -> Vec<i64> {
        self.entries
            .iter()
            .take(limit)
            .map(|e| e.product_id)
            .collect()
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Movement {
    Up,
    Down,
    Same,
    New,
    Dropped,
}

/// One product's place before and after (1-based ranks).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub product_id: i64,
    pub rank: Option<usize>,
    pub previous_rank: Option<usize>,
    pub movement: Movement,
}

/// What moved between two top-`limit` lists of product ids: every product of the new list, then
/// the ones that dropped out.
pub fn changes(previous: &[i64], current: &[i64]) -> Vec<Change> {
    let place = |list: &[i64], id: i64| list.iter().position(|p| *p == id).map(|i| i + 1);
    let mut changes: Vec<Change> = current
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let rank = index + 1;
            let previous_rank = place(previous, *id);
            let movement = match previous_rank {
                None => Movement::New,
                Some(before) if before > rank => Movement::Up,
                Some(before) if before < rank => Movement::Down,
                Some(_) => Movement::Same,
            };
            Change {
                product_id: *id,
                rank: Some(rank),
                previous_rank,
                movement,
            }
        })
        .collect();
    changes.extend(
        previous
            .iter()
            .enumerate()
            .filter(|(_, id)| !current.contains(id))
            .map(|(index, id)| Change {
                product_id: *id,
                rank: None,
                previous_rank: Some(index + 1),
                movement: Movement::Dropped,
            }),
    );
    changes
}
