//! Last-writer-wins mode's runner: the Lua script, called with chunks of
//! commands in one pipeline, reloaded when the script cache was emptied, and
//! split by batch when a call mixing batches is refused, so only the guilty
//! batch fails.

use redis::Value;

use super::connection::Conn;
use super::error;
use super::{ApplyError, Engine, Item, ItemResult, lww};

impl Engine {
    /// Applies `group` with the script, chunked; one result per command.
    pub(super) async fn run_lww(&self, group: &[Item<'_>], now_ms: u64) -> Vec<ItemResult> {
        let per_call = self.inner.options.max_commands_per_script;
        // Chunks as index ranges into `group`.
        let chunks: Vec<std::ops::Range<usize>> = (0..group.len())
            .step_by(per_call)
            .map(|start| start..(start + per_call).min(group.len()))
            .collect();
        let mut results: Vec<Option<ItemResult>> = vec![None; group.len()];
        let mut conn = self.inner.conn.clone();

        let first = self.run_chunks(&mut conn, group, &chunks, now_ms).await;
        let mut noscript = Vec::new();
        let mut split = Vec::new();
        for (range, outcome) in chunks.iter().zip(first) {
            match outcome {
                ChunkOutcome::NoScript => noscript.push(range.clone()),
                ChunkOutcome::Failed(err) if !err.is_retryable() && spans_batches(&group[range.clone()]) => {
                    split.extend(split_by_batch(group, range.clone()))
                }
                other => other.store(&mut results[range.clone()]),
            }
        }
        if !noscript.is_empty() {
            // The script cache was emptied (restart, failover, SCRIPT FLUSH):
            // load it again and retry those calls once. Nothing of a call that
            // got NOSCRIPT ran, so retrying is safe.
            match conn.load(&self.inner.script).await {
                Ok(_) => {
                    let again = self.run_chunks(&mut conn, group, &noscript, now_ms).await;
                    for (range, outcome) in noscript.iter().zip(again) {
                        match outcome {
                            ChunkOutcome::Failed(err)
                                if !err.is_retryable() && spans_batches(&group[range.clone()]) =>
                            {
                                split.extend(split_by_batch(group, range.clone()))
                            }
                            other => other.store(&mut results[range.clone()]),
                        }
                    }
                }
                Err(e) => {
                    let err = ApplyError::from_redis(e, "script");
                    for range in &noscript {
                        ChunkOutcome::Failed(err.clone()).store(&mut results[range.clone()]);
                    }
                }
            }
        }
        if !split.is_empty() {
            // A call mixing several batches was refused for its content: run
            // each batch's part alone, so only the guilty batch fails. Writes
            // are idempotent, so re-running what already applied is harmless.
            let again = self.run_chunks(&mut conn, group, &split, now_ms).await;
            for (range, outcome) in split.iter().zip(again) {
                outcome.store(&mut results[range.clone()]);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ApplyError::UnexpectedReply("command left without a result".into()))))
            .collect()
    }

    /// Sends one pipeline with one `EVALSHA` per chunk.
    async fn run_chunks(
        &self,
        conn: &mut Conn,
        group: &[Item<'_>],
        chunks: &[std::ops::Range<usize>],
        now_ms: u64,
    ) -> Vec<ChunkOutcome> {
        let sha = self.inner.script.get_hash();
        let horizon_ms = u64::try_from(self.inner.options.tombstone_horizon.as_millis()).unwrap_or(u64::MAX);
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for range in chunks {
            pipe.add_command(lww::call(
                sha,
                group[range.clone()].iter().map(|i| i.command),
                now_ms,
                horizon_ms,
            ));
        }
        match conn.query(&pipe).await {
            Ok(replies) if replies.len() == chunks.len() => chunks
                .iter()
                .zip(&replies)
                .map(|(range, reply)| match reply {
                    Value::ServerError(err) if error::is_noscript(err) => ChunkOutcome::NoScript,
                    Value::ServerError(err) => ChunkOutcome::Failed(ApplyError::from_server(err, "script")),
                    reply => match lww::codes(reply, range.len()) {
                        Ok(codes) => ChunkOutcome::Done(codes),
                        Err(err) => ChunkOutcome::Failed(err),
                    },
                })
                .collect(),
            Ok(replies) => {
                let err =
                    ApplyError::UnexpectedReply(format!("{} replies for {} script calls", replies.len(), chunks.len()));
                vec![ChunkOutcome::Failed(err); chunks.len()]
            }
            Err(e) => vec![ChunkOutcome::Failed(ApplyError::from_redis(e, "script")); chunks.len()],
        }
    }
}

/// The result of one script call.
#[derive(Clone)]
enum ChunkOutcome {
    Done(Vec<lww::Code>),
    NoScript,
    Failed(ApplyError),
}

impl ChunkOutcome {
    fn store(self, slots: &mut [Option<ItemResult>]) {
        match self {
            Self::Done(codes) => {
                for (slot, code) in slots.iter_mut().zip(codes) {
                    *slot = Some(Ok(code));
                }
            }
            Self::NoScript => {
                let err = ApplyError::Busy {
                    code: "NOSCRIPT".into(),
                    detail: "script cache emptied again".into(),
                };
                slots.iter_mut().for_each(|slot| *slot = Some(Err(err.clone())));
            }
            Self::Failed(err) => slots.iter_mut().for_each(|slot| *slot = Some(Err(err.clone()))),
        }
    }
}

fn spans_batches(items: &[Item<'_>]) -> bool {
    items.windows(2).any(|w| w[0].batch != w[1].batch)
}

/// Splits a range of `group` into maximal runs of one batch each.
fn split_by_batch(group: &[Item<'_>], range: std::ops::Range<usize>) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = range.start;
    for i in range.start + 1..range.end {
        if group[i].batch != group[i - 1].batch {
            out.push(start..i);
            start = i;
        }
    }
    out.push(start..range.end);
    out
}
