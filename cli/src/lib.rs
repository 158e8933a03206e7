//! The regis operator's tool, as a library so its commands can be tested
//! in-process. The `regis` binary (`main.rs`) only parses the command line
//! and dispatches here.
#![warn(missing_docs)]

pub mod dlq;
pub mod lag;
pub mod local_env;
pub mod output;
pub mod publish;
pub mod resync;
#[cfg(test)]
mod testing;
pub mod verify;
pub mod worker;
