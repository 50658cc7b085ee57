//! Background fitting (DESIGN §3.4).

pub mod estimate;
