//! What a committed order change announces, after commit and never under a lock: the new stock
//! of each product changed (`stockChanged`, other instances through the bus), new sales for the
//! ranking, new events for the outbox relay, and the money metrics.

use std::collections::BTreeMap;

use crate::infra::bus::{DomainEvent, EventBus};
use crate::infra::meters::{REFUNDED_WON, REVENUE_WON};
use crate::outbox::relay::OutboxSignal;
use crate::ranking::service::SalesSignal;

/// What one committed transaction changed that others want to hear about.
#[derive(Debug, Default)]
pub struct Aftermath {
    /// The new stock of every product that changed.
    pub stock: BTreeMap<i64, i64>,
    /// Won paid for orders.
    pub revenue: i64,
    /// Won refunded.
    pub refunded: i64,
    /// Sales were recorded or reversed, and outbox events written.
    pub sales_changed: bool,
}

#[derive(Clone)]
pub struct Announcer {
    bus: EventBus,
    sales: SalesSignal,
    deliveries: OutboxSignal,
}

impl Announcer {
    pub fn new(bus: EventBus, sales: SalesSignal, deliveries: OutboxSignal) -> Self {
        Self {
            bus,
            sales,
            deliveries,
        }
    }

    pub fn announce(&self, aftermath: &Aftermath) {
        if aftermath.sales_changed {
            self.sales.sales_changed();
            self.deliveries.wake();
        }
        if aftermath.revenue > 0 {
            metrics::counter!(REVENUE_WON).increment(aftermath.revenue as u64);
        }
        if aftermath.refunded > 0 {
            metrics::counter!(REFUNDED_WON).increment(aftermath.refunded as u64);
        }
        for (&product_id, &stock) in &aftermath.stock {
            self.bus
                .publish(DomainEvent::StockChanged { product_id, stock });
        }
    }
}
