//! Plain mode's runner: the commands as they are, in one pipeline.

use super::{ApplyError, Engine, Item, ItemResult, lww, plain};

impl Engine {
    /// Sends `group` as one pipeline of plain commands; one result per command.
    /// An expiry already passed at `now_ms` and extended later in the same
    /// group is applied as extended ([`plain::extended_expiries`]).
    pub(super) async fn run_plain(&self, group: &[Item<'_>], now_ms: u64) -> Vec<ItemResult> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let expiries = plain::extended_expiries(group.iter().map(|i| i.command), now_ms);
        for (item, expiry) in group.iter().zip(expiries) {
            plain::push(&mut pipe, &item.command.command, expiry);
        }
        let mut conn = self.inner.conn.clone();
        match conn.query(&pipe).await {
            Ok(replies) if replies.len() == group.len() => group
                .iter()
                .zip(&replies)
                .map(|(item, reply)| plain::check_reply(reply, &item.command.command).map(|()| lww::Code::Applied))
                .collect(),
            Ok(replies) => {
                let err =
                    ApplyError::UnexpectedReply(format!("{} replies for {} commands", replies.len(), group.len()));
                vec![Err(err); group.len()]
            }
            Err(e) => vec![Err(ApplyError::from_redis(e, "pipeline")); group.len()],
        }
    }
}
