//! Plain mode's runner: the commands as they are, in one pipeline.

use super::{ApplyError, Engine, Item, ItemResult, lww, plain};

impl Engine {
    /// Sends `group` as one pipeline of plain commands; one result per command.
    pub(super) async fn run_plain(&self, group: &[Item<'_>]) -> Vec<ItemResult> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for item in group {
            plain::push(&mut pipe, &item.command.command);
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
