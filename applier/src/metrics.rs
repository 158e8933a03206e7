//! CloudWatch metrics as embedded-metric-format (EMF) log lines.
//!
//! A line on stdout is all it takes: Lambda ships stdout to CloudWatch Logs,
//! which extracts the metrics, so the hot path makes no API call. The worker
//! prints the same lines, which `regis lag` and the local demo read back.
//! Formatting is a pure function of the counts and the time.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::records::Outcome;

/// The CloudWatch namespace of every regis metric.
pub const NAMESPACE: &str = "Regis";

/// Most values one metric may carry in one EMF document.
/// Source: CloudWatch embedded metric format specification ("arrays of up
/// to 100 values").
pub const EMF_MAX_VALUES_PER_METRIC: usize = 100;

/// Counts of one invocation (or one worker cycle).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CycleMetrics {
    /// Commands written (in applied batches, less those skipped as older
    /// or refused for a type conflict).
    pub commands_applied: usize,
    /// Batches applied.
    pub batches: usize,
    /// Replication lag of each applied batch, milliseconds.
    pub lag_ms: Vec<u64>,
    /// Records left for SQS to deliver again (retryable failures and
    /// permanent failures that could not be parked).
    pub retryable_failures: usize,
    /// Records that failed for good (parked or not).
    pub permanent_failures: usize,
    /// Commands skipped because the region held a newer version.
    pub skipped_older: usize,
    /// Element writes skipped because the key holds another data type
    /// (last-writer-wins keeps a key's type; see `docs/lww.md`).
    pub type_conflicts: usize,
    /// Permanent failures by reason code (the DLQ copy's `reason`).
    pub permanent_by_reason: BTreeMap<&'static str, usize>,
}

impl CycleMetrics {
    /// Counts `outcomes`.
    pub fn from_outcomes(outcomes: &[Outcome]) -> Self {
        let mut m = Self::default();
        for outcome in outcomes {
            match outcome {
                Outcome::Applied { applied, lag_ms, .. } => {
                    m.batches += 1;
                    m.commands_applied += applied
                        .commands
                        .saturating_sub(applied.skipped_older + applied.type_conflicts);
                    m.skipped_older += applied.skipped_older;
                    m.type_conflicts += applied.type_conflicts;
                    m.lag_ms.push(*lag_ms);
                }
                Outcome::Parked { reason, .. } => {
                    m.permanent_failures += 1;
                    *m.permanent_by_reason.entry(reason).or_default() += 1;
                }
                Outcome::Retry { .. } => m.retryable_failures += 1,
                Outcome::ParkFailed { reason, .. } => {
                    m.permanent_failures += 1;
                    m.retryable_failures += 1;
                    *m.permanent_by_reason.entry(reason).or_default() += 1;
                }
            }
        }
        m
    }

    /// True when there is nothing to report.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The EMF lines for `metrics`, observed in `region` at `timestamp_ms`.
///
/// Normally one line. EMF allows at most
/// [`EMF_MAX_VALUES_PER_METRIC`] values per metric in a document, so when
/// more batches were applied the lag values continue on further lines
/// (which carry only lag values; the counters are on the first). Permanent
/// failures are also counted per reason, one further line per reason with
/// the dimensions `Region` and `Reason`, so a dashboard shows failures by
/// kind.
pub fn emf_lines(region: &str, timestamp_ms: u64, metrics: &CycleMetrics) -> Vec<String> {
    let counters = [
        ("CommandsApplied", metrics.commands_applied),
        ("Batches", metrics.batches),
        ("RetryableFailures", metrics.retryable_failures),
        ("PermanentFailures", metrics.permanent_failures),
        ("SkippedOlder", metrics.skipped_older),
        ("TypeConflicts", metrics.type_conflicts),
    ];
    let mut chunks = metrics.lag_ms.chunks(EMF_MAX_VALUES_PER_METRIC);
    let mut lines = Vec::new();

    let mut first = document(region, timestamp_ms);
    let mut definitions: Vec<Value> = counters
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    for (name, value) in counters {
        first[name] = json!(value);
    }
    if let Some(lags) = chunks.next() {
        definitions.push(json!({"Name": "ReplicationLagMs", "Unit": "Milliseconds"}));
        first["ReplicationLagMs"] = json!(lags);
    }
    first["_aws"]["CloudWatchMetrics"][0]["Metrics"] = Value::Array(definitions);
    lines.push(first.to_string());

    for lags in chunks {
        let mut more = document(region, timestamp_ms);
        more["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!([{"Name": "ReplicationLagMs", "Unit": "Milliseconds"}]);
        more["ReplicationLagMs"] = json!(lags);
        lines.push(more.to_string());
    }
    for (reason, count) in &metrics.permanent_by_reason {
        let mut by_reason = document(region, timestamp_ms);
        by_reason["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([["Region", "Reason"]]);
        by_reason["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!([{"Name": "PermanentFailures", "Unit": "Count"}]);
        by_reason["Reason"] = json!(reason);
        by_reason["PermanentFailures"] = json!(count);
        lines.push(by_reason.to_string());
    }
    lines
}

fn document(region: &str, timestamp_ms: u64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["Region"]], "Metrics": []}],
        },
        "Region": region,
    })
}

/// Prints `metrics` as EMF lines on stdout, unless there is nothing to say.
pub fn emit(region: &str, timestamp_ms: u64, metrics: &CycleMetrics) {
    if metrics.is_empty() {
        return;
    }
    for line in emf_lines(region, timestamp_ms, metrics) {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Applied;

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn a_line_is_a_valid_emf_document() {
        let metrics = CycleMetrics {
            commands_applied: 42,
            batches: 3,
            lag_ms: vec![120, 80, 95],
            retryable_failures: 1,
            permanent_failures: 2,
            skipped_older: 4,
            type_conflicts: 5,
            permanent_by_reason: BTreeMap::from([("malformed", 1), ("reserved-key", 1)]),
        };
        let lines = emf_lines("ap-south-1", 1_700_000_000_123, &metrics);
        assert_eq!(lines.len(), 3, "the counters, then one line per reason");
        let doc = parse(&lines[0]);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Regis");
        assert_eq!(directive["Dimensions"], json!([["Region"]]));
        assert_eq!(doc["Region"], "ap-south-1");
        // Every declared metric has a member of the same name at the root.
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "CommandsApplied",
                "Batches",
                "RetryableFailures",
                "PermanentFailures",
                "SkippedOlder",
                "TypeConflicts",
                "ReplicationLagMs"
            ]
        );
        assert_eq!(doc["CommandsApplied"], 42);
        assert_eq!(doc["Batches"], 3);
        assert_eq!(doc["RetryableFailures"], 1);
        assert_eq!(doc["PermanentFailures"], 2);
        assert_eq!(doc["SkippedOlder"], 4);
        assert_eq!(doc["TypeConflicts"], 5);
        assert_eq!(doc["ReplicationLagMs"], json!([120, 80, 95]));
        assert_eq!(directive["Metrics"][6]["Unit"], "Milliseconds");
        let reason = parse(&lines[2]);
        assert_eq!(
            reason["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Region", "Reason"]])
        );
        assert_eq!(
            (reason["Reason"].as_str(), reason["PermanentFailures"].as_u64()),
            (Some("reserved-key"), Some(1))
        );
    }

    #[test]
    fn more_than_a_hundred_lag_values_continue_on_further_lines() {
        let metrics = CycleMetrics {
            batches: 250,
            lag_ms: (0..250).collect(),
            ..Default::default()
        };
        let lines = emf_lines("eu-west-1", 1, &metrics);
        assert_eq!(lines.len(), 3);
        let docs: Vec<Value> = lines.iter().map(|l| parse(l)).collect();
        let lags: Vec<u64> = docs
            .iter()
            .flat_map(|d| {
                d["ReplicationLagMs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
            })
            .collect();
        assert_eq!(lags, (0..250).collect::<Vec<_>>());
        assert_eq!(docs[0]["Batches"], 250);
        assert!(docs[1].get("Batches").is_none());
        assert_eq!(
            docs[2]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "ReplicationLagMs"
        );
    }

    #[test]
    fn a_cycle_without_applied_batches_declares_no_lag() {
        let metrics = CycleMetrics {
            retryable_failures: 10,
            ..Default::default()
        };
        let doc = parse(&emf_lines("eu-west-1", 1, &metrics)[0]);
        assert!(doc.get("ReplicationLagMs").is_none());
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(),
            6
        );
    }

    #[test]
    fn counts_outcomes() {
        let applied = |commands, skipped_older, lag_ms| Outcome::Applied {
            batch_id: "b".into(),
            applied: Applied {
                commands,
                skipped_older,
                type_conflicts: 1,
            },
            lag_ms,
        };
        let outcomes = [
            applied(10, 2, 50),
            applied(5, 0, 70),
            Outcome::Parked {
                reason: "malformed",
                detail: String::new(),
            },
            Outcome::Retry {
                reason: "redis-unavailable",
                detail: String::new(),
            },
            Outcome::ParkFailed {
                reason: "malformed",
                detail: String::new(),
                dlq_error: String::new(),
            },
        ];
        let m = CycleMetrics::from_outcomes(&outcomes);
        assert_eq!(
            m,
            CycleMetrics {
                commands_applied: 11,
                batches: 2,
                lag_ms: vec![50, 70],
                retryable_failures: 2,
                permanent_failures: 2,
                skipped_older: 2,
                type_conflicts: 2,
                permanent_by_reason: BTreeMap::from([("malformed", 2)]),
            }
        );
        assert!(CycleMetrics::from_outcomes(&[]).is_empty());
    }
}
