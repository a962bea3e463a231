//! The order writer: `placeOrder`, `createOrder` and `payOrder` of this instance are applied many
//! per transaction ([`placing`]) by a [`BatchWriter`] (group commit: see
//! [`crate::infra::batching`]); each commit is then announced ([`Announcer`]) and counted for
//! the order tables' statistics ([`StatisticsWatch`]).

use sea_orm::{DatabaseTransaction, DbErr};

use super::announce::{Aftermath, Announcer};
use super::model::{OrderError, OrderSettings};
use super::placing::{self, Command, Outcome};
use super::statistics::StatisticsWatch;
use crate::error::CommonError;
use crate::infra::batching::{Applied, Batch, BatchSettings, BatchWriter};
use crate::infra::db::{AttemptError, Database};

/// Orders and payments, applied together.
pub struct OrderBatch {
    orders: OrderSettings,
    announcer: Announcer,
    statistics: StatisticsWatch,
}

impl Batch for OrderBatch {
    type Command = Command;
    type Outcome = Outcome;
    /// What to announce, and how many orders the batch placed.
    type Aftermath = (Aftermath, u64);
    const NAME: &'static str = "orders";

    fn route(command: &Command) -> i64 {
        command.lock_key()
    }

    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        commands: &[Command],
    ) -> Result<Applied<Outcome, (Aftermath, u64)>, AttemptError> {
        let applied = placing::apply(txn, commands, &self.orders).await?;
        let placed = commands
            .iter()
            .zip(&applied.outcomes)
            .filter(|(command, outcome)| {
                matches!(command, Command::Place { .. }) && outcome.is_ok()
            })
            .count() as u64;
        Ok(Applied {
            outcomes: applied.outcomes,
            aftermath: (applied.aftermath, placed),
            locking: applied.locking,
        })
    }

    fn committed(&self, (aftermath, placed): (Aftermath, u64)) {
        self.announcer.announce(&aftermath);
        self.statistics.placed(placed);
    }

    fn unconfirmed(&self) -> Outcome {
        Err(OrderError::Common(CommonError::Unconfirmed))
    }

    fn failed(&self, _: &Command, err: DbErr) -> Outcome {
        Err(OrderError::from(err))
    }

    fn overloaded(&self) -> Outcome {
        Err(OrderError::Common(CommonError::Overloaded))
    }
}

/// The handle requests submit their orders and payments to.
#[derive(Clone)]
pub struct OrderWriter(BatchWriter<OrderBatch>);

impl OrderWriter {
    pub fn start(
        db: Database,
        orders: OrderSettings,
        batches: BatchSettings,
        announcer: Announcer,
    ) -> std::io::Result<Self> {
        let statistics = StatisticsWatch::new(db.clone());
        BatchWriter::start(
            db,
            batches,
            OrderBatch {
                orders,
                announcer,
                statistics,
            },
        )
        .map(Self)
    }

    /// Applies one command with whatever else is waiting; its outcome once committed.
    pub async fn submit(&self, command: Command) -> Outcome {
        self.0.submit(command).await.unwrap_or_else(|| {
            Err(OrderError::from(DbErr::Custom(
                "the order writer has stopped".into(),
            )))
        })
    }
}
