//! A DLQ message as `regis dlq` reads it ([`Letter`]), grouped by reason,
//! decoded for `show`, and printed as text or JSON.

use std::collections::BTreeMap;

use regis_aws::{Attribute, OutgoingMessage, ReceivedMessage};
use regis_wire::{DecodeLimits, Keyring};
use serde_json::{Value, json};

use crate::output::{print_json, show_bytes};

/// The message attributes the DLQ copy carries about the failure
/// (docs/ARCHITECTURE.md); a redrive drops them.
pub const BOOKKEEPING_ATTRIBUTES: [&str; 5] = ["reason", "detail", "source-queue", "message-id", "failed-at"];

/// Reason given to messages that carry none: the queue's redrive policy
/// moved them after `maxReceiveCount` failed receives (retryable failures).
pub const NO_REASON: &str = "max-receives";

/// One DLQ message as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    /// The DLQ copy's SQS message id.
    pub message_id: String,
    /// The receipt handle of the last receive.
    pub receipt_handle: String,
    /// The body (the original batch text).
    pub body: String,
    /// The `reason` attribute ([`NO_REASON`] when absent: moved by the redrive policy).
    pub reason: String,
    /// The `detail` attribute.
    pub detail: Option<String>,
    /// The `source-queue` attribute.
    pub source_queue: Option<String>,
    /// The original message id (`message-id` attribute).
    pub original_id: Option<String>,
    /// When it failed (`failed-at`), else when it was sent to the DLQ.
    pub failed_at_ms: Option<u64>,
    /// All message attributes as received.
    pub attributes: BTreeMap<String, Attribute>,
}

impl Letter {
    /// The wall-clock time of the oldest command version in the batch, when
    /// the body decodes (signatures are not checked: this only looks).
    pub fn oldest_version_ms(&self) -> Option<u64> {
        let batch = regis_wire::decode(&self.body, &DecodeLimits::default(), &Keyring::default()).ok()?;
        batch.commands.iter().map(|c| c.version.millis).min()
    }

    /// True when the batch holds a command older than `horizon_ms` at
    /// `now_ms`: an applier refuses it (`beyond-horizon`), because the
    /// tombstones it should lose to may be gone and applying it could bring
    /// deleted data back in one region.
    pub fn is_beyond_horizon(&self, now_ms: u64, horizon_ms: u64) -> bool {
        self.oldest_version_ms()
            .is_some_and(|oldest| now_ms.saturating_sub(oldest) > horizon_ms)
    }

    /// Reads a received message.
    pub fn from_message(message: ReceivedMessage) -> Self {
        let text = |name: &str| message.attributes.get(name).map(|a| a.value.clone());
        Self {
            reason: text("reason").unwrap_or_else(|| NO_REASON.to_owned()),
            detail: text("detail"),
            source_queue: text("source-queue"),
            original_id: text("message-id"),
            failed_at_ms: text("failed-at").and_then(|v| v.parse().ok()).or(message.sent_at_ms),
            message_id: message.message_id,
            receipt_handle: message.receipt_handle,
            body: message.body,
            attributes: message.attributes,
        }
    }

    /// Whether `id` names this letter: its DLQ message id or its original one.
    pub fn is(&self, id: &str) -> bool {
        self.message_id == id || self.original_id.as_deref() == Some(id)
    }

    /// The copy a redrive sends to the apply queue: the body unchanged,
    /// every attribute but the DLQ bookkeeping.
    pub fn forwarded(&self) -> OutgoingMessage {
        OutgoingMessage {
            body: self.body.clone(),
            attributes: self
                .attributes
                .iter()
                .filter(|(name, _)| !BOOKKEEPING_ATTRIBUTES.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        }
    }
}

/// What one reason accounts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonGroup {
    /// The reason code.
    pub reason: String,
    /// How many messages.
    pub count: usize,
    /// Failure time of the oldest, epoch ms.
    pub oldest_ms: Option<u64>,
    /// Failure time of the newest, epoch ms.
    pub newest_ms: Option<u64>,
}

/// Groups letters by reason, largest group first (then by name).
pub fn group_by_reason(letters: &[Letter]) -> Vec<ReasonGroup> {
    let mut groups: BTreeMap<&str, ReasonGroup> = BTreeMap::new();
    for letter in letters {
        let group = groups.entry(&letter.reason).or_insert_with(|| ReasonGroup {
            reason: letter.reason.clone(),
            count: 0,
            oldest_ms: None,
            newest_ms: None,
        });
        group.count += 1;
        if let Some(at) = letter.failed_at_ms {
            group.oldest_ms = Some(group.oldest_ms.map_or(at, |o| o.min(at)));
            group.newest_ms = Some(group.newest_ms.map_or(at, |n| n.max(at)));
        }
    }
    let mut out: Vec<ReasonGroup> = groups.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    out
}

/// An age in a short human form (`45s`, `12m3s`, `2h5m`, `3d4h`).
pub fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// What `regis dlq list` read.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    /// The region.
    pub region: &'a str,
    /// Its DLQ.
    pub dlq_url: &'a str,
    /// The letters read.
    pub letters: &'a [Letter],
    /// Whether the read is believed complete.
    pub complete: bool,
    /// The tombstone horizon, milliseconds: batches older are flagged.
    pub horizon_ms: u64,
}

/// Prints `regis dlq list`: groups by reason with their ages at `now_ms`,
/// and with `json`, one entry per message too.
pub fn print_list(listing: &Listing<'_>, json: bool, now_ms: u64) {
    let Listing {
        region,
        dlq_url,
        letters,
        complete,
        horizon_ms,
    } = *listing;
    let beyond = letters
        .iter()
        .filter(|l| l.is_beyond_horizon(now_ms, horizon_ms))
        .count();
    let groups = group_by_reason(letters);
    let age = |at: Option<u64>| at.map(|at| now_ms.saturating_sub(at));
    if json {
        let reasons: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "reason": g.reason, "count": g.count,
                    "oldest_failed_at_ms": g.oldest_ms, "newest_failed_at_ms": g.newest_ms,
                    "oldest_age_ms": age(g.oldest_ms), "newest_age_ms": age(g.newest_ms),
                })
            })
            .collect();
        let messages: Vec<Value> = letters
            .iter()
            .map(|l| {
                json!({
                    "message_id": l.message_id, "original_message_id": l.original_id,
                    "reason": l.reason, "failed_at_ms": l.failed_at_ms, "source_queue": l.source_queue,
                    "beyond_horizon": l.is_beyond_horizon(now_ms, horizon_ms),
                })
            })
            .collect();
        print_json(&json!({
            "region": region, "dlq_url": dlq_url, "total": letters.len(),
            "complete": complete, "reasons": reasons, "messages": messages,
            "beyond_horizon": beyond, "horizon_ms": horizon_ms,
        }));
        return;
    }
    println!(
        "{} message(s) in the DLQ of {}{}",
        letters.len(),
        region,
        if complete {
            ""
        } else {
            " (at least: the read stopped at --max-receives)"
        }
    );
    if beyond > 0 {
        println!(
            "{beyond} of them hold commands older than the tombstone horizon ({}): an applier refuses them \
             (beyond-horizon) and `regis dlq redrive` leaves them unless given --include-beyond-horizon",
            human_age(horizon_ms)
        );
    }
    if !groups.is_empty() {
        println!("{:<20} {:>7} {:>10} {:>10}", "reason", "count", "oldest", "newest");
        for g in &groups {
            let show = |at| age(at).map_or_else(|| "-".to_owned(), human_age);
            println!(
                "{:<20} {:>7} {:>10} {:>10}",
                g.reason,
                g.count,
                show(g.oldest_ms),
                show(g.newest_ms)
            );
        }
    }
}

/// A decoded view of one letter, for `show`.
pub fn describe(letter: &Letter) -> Value {
    let mut out = json!({
        "message_id": letter.message_id,
        "original_message_id": letter.original_id,
        "reason": letter.reason,
        "detail": letter.detail,
        "source_queue": letter.source_queue,
        "failed_at_ms": letter.failed_at_ms,
    });
    match regis_wire::decode(&letter.body, &DecodeLimits::default(), &Keyring::default()) {
        Ok(batch) => {
            let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
            for c in &batch.commands {
                *by_name.entry(c.command.name()).or_default() += 1;
            }
            let first: Vec<Value> = batch
                .commands
                .iter()
                .take(10)
                .map(|c| {
                    json!({
                        "op": c.command.name(),
                        "key": show_bytes(c.command.key()),
                        "version": c.version.to_string(),
                    })
                })
                .collect();
            out["batch"] = json!({
                "id": batch.header.id, "origin": batch.header.origin, "tenant": batch.header.tenant,
                "published_at_ms": batch.header.published_at_ms, "mode": batch.header.mode.as_str(),
                "commands": batch.commands.len(), "by_command": by_name, "first_commands": first,
            });
        }
        Err(e) => {
            out["decode_error"] = json!(e.to_string());
            out["raw"] = json!(letter.body);
        }
    }
    out
}

/// Prints `regis dlq show` for one letter, its age taken at `now_ms`.
pub fn print_letter(letter: &Letter, json: bool, now_ms: u64) {
    let view = describe(letter);
    if json {
        print_json(&view);
        return;
    }
    println!("message      {}", letter.message_id);
    if let Some(original) = &letter.original_id {
        println!("original id  {original}");
    }
    println!("reason       {}", letter.reason);
    if let Some(detail) = &letter.detail {
        println!("detail       {detail}");
    }
    if let Some(source) = &letter.source_queue {
        println!("from queue   {source}");
    }
    if let Some(at) = letter.failed_at_ms {
        println!("failed       {} ago ({at} ms)", human_age(now_ms.saturating_sub(at)));
    }
    if let Some(batch) = view.get("batch") {
        println!(
            "batch        {} from {} for tenant {}, mode {}, published at {} ms",
            batch["id"].as_str().unwrap_or_default(),
            batch["origin"].as_str().unwrap_or_default(),
            batch["tenant"].as_str().unwrap_or_default(),
            batch["mode"].as_str().unwrap_or_default(),
            batch["published_at_ms"]
        );
        let summary: Vec<String> = batch["by_command"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{v} {k}")).collect())
            .unwrap_or_default();
        println!("commands     {} ({})", batch["commands"], summary.join(", "));
        for c in batch["first_commands"].as_array().into_iter().flatten() {
            println!(
                "  {} {} @ {}",
                c["op"].as_str().unwrap_or_default(),
                c["key"].as_str().unwrap_or_default(),
                c["version"].as_str().unwrap_or_default()
            );
        }
    } else {
        println!("undecodable  {}", view["decode_error"].as_str().unwrap_or_default());
        println!("raw body:\n{}", letter.body);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use regis_testkit::batches;
    use regis_wire::{Command, Mode, Version, VersionedCommand};

    use super::*;

    /// A DLQ message as the worker parks it (attributes `reason`,
    /// `failed-at`, `message-id`), plus a routing attribute `tenant`.
    pub(crate) fn parked(id: &str, reason: Option<&str>, failed_at: Option<u64>) -> OutgoingMessage {
        let mut attributes = BTreeMap::from([
            ("tenant".to_owned(), Attribute::string("acme")),
            ("message-id".to_owned(), Attribute::string(format!("orig-{id}"))),
        ]);
        if let Some(reason) = reason {
            attributes.insert("reason".into(), Attribute::string(reason));
        }
        if let Some(at) = failed_at {
            attributes.insert("failed-at".into(), Attribute::number(at));
        }
        OutgoingMessage {
            body: format!("body-{id}"),
            attributes,
        }
    }

    fn received(id: &str, reason: Option<&str>, failed_at: Option<u64>) -> ReceivedMessage {
        let message = parked(id, reason, failed_at);
        ReceivedMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: message.body,
            attributes: message.attributes,
            receive_count: 1,
            sent_at_ms: Some(500),
        }
    }

    #[test]
    fn letters_read_the_dlq_attributes() {
        let letter = Letter::from_message(received("m1", Some("malformed"), Some(1_000)));
        assert_eq!(letter.reason, "malformed");
        assert_eq!(letter.original_id.as_deref(), Some("orig-m1"));
        assert_eq!(letter.failed_at_ms, Some(1_000));
        assert!(letter.is("m1") && letter.is("orig-m1") && !letter.is("m2"));
        let forwarded = letter.forwarded();
        assert_eq!(forwarded.attributes.keys().collect::<Vec<_>>(), ["tenant"]);
        assert_eq!(forwarded.body, "body-m1");
        // Moved by the redrive policy: no reason, failure time = sent time.
        let plain = Letter::from_message(received("m2", None, None));
        assert_eq!((plain.reason.as_str(), plain.failed_at_ms), (NO_REASON, Some(500)));
    }

    #[test]
    fn groups_count_and_span_their_reasons() {
        let letters: Vec<Letter> = [
            ("a", "malformed", 300),
            ("b", "bad-signature", 100),
            ("c", "malformed", 200),
        ]
        .iter()
        .map(|(id, r, at)| Letter::from_message(received(id, Some(r), Some(*at))))
        .collect();
        let groups = group_by_reason(&letters);
        assert_eq!(
            groups,
            [
                ReasonGroup {
                    reason: "malformed".into(),
                    count: 2,
                    oldest_ms: Some(200),
                    newest_ms: Some(300)
                },
                ReasonGroup {
                    reason: "bad-signature".into(),
                    count: 1,
                    oldest_ms: Some(100),
                    newest_ms: Some(100)
                },
            ]
        );
    }

    #[test]
    fn undecodable_bodies_are_shown_raw_and_batches_summarised() {
        let mut letter = Letter::from_message(received("m", Some("malformed"), Some(1)));
        letter.body = "not json".into();
        let view = describe(&letter);
        assert_eq!(view["raw"], "not json");
        assert!(view["decode_error"].as_str().unwrap().contains("malformed"));

        let del = |ms, key: &[u8]| VersionedCommand::new(Version::new(ms, 0, 1), Command::Del { key: key.to_vec() });
        letter.body = batches::text(&batches::batch("b1", Mode::Lww, 7, vec![del(1, b"a"), del(2, b"b")]));
        let view = describe(&letter);
        assert_eq!(view["batch"]["commands"], 2);
        assert_eq!(view["batch"]["by_command"]["del"], 2);
        assert_eq!(view["batch"]["first_commands"][1]["key"], "b");
        assert_eq!(view["batch"]["tenant"], batches::TENANT);
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(human_age(45_000), "45s");
        assert_eq!(human_age(723_000), "12m3s");
        assert_eq!(human_age(2 * 3_600_000 + 300_000), "2h5m");
        assert_eq!(human_age(3 * 86_400_000 + 4 * 3_600_000), "3d4h");
    }
}
