//! Integration tests: every test goes through the real HTTP and WebSocket endpoints of a server
//! started in-process, on every backend the harness finds (see `harness`).

mod harness;
mod ws_client;

mod admission;
mod auth;
mod backup;
mod balance;
mod batches;
mod catalog;
mod clients;
mod cluster;
mod conformance;
mod cors;
mod coupons;
mod disk;
mod faults;
mod feeds;
mod fuzz;
mod hostile;
mod instances;
mod network;
mod operations;
mod orders;
mod outbox;
mod persisted;
mod protocol;
mod ranking;
mod replicas;
mod schema;
mod soak;
mod traces;
mod trusted;
mod verify;
mod websocket;
