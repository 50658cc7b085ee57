//! Sending a request downstream and deciding what its answer means: the client with its
//! keep-alive pool ([`Forwarder`]) and the one table that maps downstream answers to
//! omen's answer and to whether model updates commit ([`Outcome`]).

mod client;
mod outcome;

pub use client::{Forwarder, ForwarderSettings, TENANT_HEADER};
pub use outcome::Outcome;
