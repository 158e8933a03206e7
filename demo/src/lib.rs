//! What the demo and the end-to-end tests share: the local environment
//! described by `.regis/env.json` ([`env`]), and a model of the state every
//! region's Redis must reach, compared against snapshots of a region
//! ([`model`]).

pub mod env;
pub mod model;
