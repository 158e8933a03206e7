//! What replicating a million commands costs on AWS, from counted traffic.
//!
//! The inputs are what the end-to-end runs counted (SNS publish requests and
//! their payloads, the messages every region received and their sizes) and
//! what the apply benchmark measured (milliseconds of decode and apply per
//! record). The model runs the applier as it would run on AWS: an SQS event
//! source mapping hands a Lambda function of [`LAMBDA_MEMORY_GB`] up to
//! [`LAMBDA_BATCH_SIZE`] records per invocation, and deletes them after it
//! returns. Prices are us-east-1 list prices without free tiers.

use serde::Serialize;

/// Date the prices below were read.
pub const PRICES_AS_OF: &str = "2026-06";

/// SNS standard topic: dollars per million publish requests, each 64 KiB
/// chunk of payload counted as one request.
/// Source: <https://aws.amazon.com/sns/pricing/> (us-east-1, "API Requests").
pub const SNS_PUBLISH_USD_PER_MILLION: f64 = 0.50;
/// SNS deliveries to SQS queues are free of charge.
/// Source: <https://aws.amazon.com/sns/pricing/> ("Notification deliveries": SQS $0.00).
pub const SNS_TO_SQS_DELIVERY_USD_PER_MILLION: f64 = 0.0;
/// SQS standard queue: dollars per million requests, each 64 KiB chunk of
/// payload counted as one request.
/// Source: <https://aws.amazon.com/sqs/pricing/> (us-east-1, standard queues, first tier).
pub const SQS_USD_PER_MILLION: f64 = 0.40;
/// Lambda: dollars per million invocations.
/// Source: <https://aws.amazon.com/lambda/pricing/> (us-east-1, x86, "Requests").
pub const LAMBDA_USD_PER_MILLION_INVOCATIONS: f64 = 0.20;
/// Lambda: dollars per GB-second of billed duration.
/// Source: <https://aws.amazon.com/lambda/pricing/> (us-east-1, x86, first tier).
pub const LAMBDA_USD_PER_GB_SECOND: f64 = 0.000_016_666_7;
/// Data sent from SNS in one region to a queue in another: dollars per GB.
/// Source: <https://aws.amazon.com/sns/pricing/> ("Data transfer", inter-region,
/// as on <https://aws.amazon.com/ec2/pricing/on-demand/>).
pub const INTER_REGION_USD_PER_GB: f64 = 0.02;

/// SNS and SQS bill each started 64 KiB of a request's payload as one request.
/// Source: the SNS and SQS pricing pages above.
pub const BILLING_CHUNK_BYTES: u64 = 64 * 1024;
/// Records per Lambda invocation: the SQS event source mapping's batch size.
pub const LAMBDA_BATCH_SIZE: usize = 10;
/// Memory of the modelled Lambda function.
pub const LAMBDA_MEMORY_GB: f64 = 0.25;
/// Lambda bills duration in whole milliseconds, rounded up.
/// Source: <https://aws.amazon.com/lambda/pricing/> ("rounded up to the nearest 1 ms").
pub const LAMBDA_BILLING_GRANULARITY_MS: f64 = 1.0;

/// Bytes in a GB as AWS bills transfer.
const GB: f64 = 1_000_000_000.0;

/// The traffic of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// Commands replicated.
    pub commands: u64,
    /// Regions every message reaches (each applies every command).
    pub regions: u32,
    /// Of those, regions other than the publisher's (data crosses a region border).
    pub remote_regions: u32,
    /// Payload bytes of each SNS publish request (`Publish` or `PublishBatch`).
    pub publish_request_bytes: Vec<u64>,
    /// Size of each SNS message (body and attributes): each reaches every region.
    pub message_bytes: Vec<u64>,
    /// Measured milliseconds to decode and apply one record of this run.
    pub apply_ms_per_record: f64,
}

/// Requests and dollars, for the whole run and per million commands per region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// SNS publish requests, in 64 KiB units.
    pub sns_publish_units: u64,
    /// SQS receive requests (all regions), in 64 KiB units.
    pub sqs_receive_units: u64,
    /// SQS `DeleteMessageBatch` requests (all regions).
    pub sqs_delete_requests: u64,
    /// SQS `ChangeMessageVisibility` requests (all regions): none, as long
    /// as an invocation ends well within the visibility timeout.
    pub sqs_change_visibility_requests: u64,
    /// Lambda invocations (all regions).
    pub lambda_invocations: u64,
    /// Billed Lambda GB-seconds (all regions).
    pub lambda_gb_seconds: f64,
    /// Bytes sent across region borders.
    pub inter_region_bytes: u64,
    /// Dollars for the run, by item.
    pub sns_usd: f64,
    /// SQS dollars for the run.
    pub sqs_usd: f64,
    /// Lambda dollars for the run.
    pub lambda_usd: f64,
    /// Transfer dollars for the run.
    pub transfer_usd: f64,
    /// Dollars for the run, all items.
    pub total_usd: f64,
    /// Dollars per million commands replicated into one region.
    pub usd_per_million_per_region: f64,
}

/// 64 KiB units a request of `bytes` is billed as (at least one).
pub fn billing_units(bytes: u64) -> u64 {
    bytes.div_ceil(BILLING_CHUNK_BYTES).max(1)
}

/// Prices the traffic.
pub fn model(traffic: &Traffic) -> Cost {
    let regions = u64::from(traffic.regions);
    let sns_publish_units: u64 = traffic.publish_request_bytes.iter().map(|&b| billing_units(b)).sum();

    // One region: the event source mapping receives up to 10 records per
    // request and invokes the function with them, then deletes them in one
    // batch request.
    let mut receive_units = 0;
    let mut invocations = 0;
    let mut billed_ms = 0.0;
    for group in traffic.message_bytes.chunks(LAMBDA_BATCH_SIZE) {
        receive_units += billing_units(group.iter().sum());
        invocations += 1;
        let ms = traffic.apply_ms_per_record * group.len() as f64;
        billed_ms += (ms / LAMBDA_BILLING_GRANULARITY_MS).ceil().max(1.0) * LAMBDA_BILLING_GRANULARITY_MS;
    }
    let sqs_receive_units = receive_units * regions;
    let sqs_delete_requests = invocations * regions;
    let lambda_invocations = invocations * regions;
    let lambda_gb_seconds = billed_ms / 1000.0 * LAMBDA_MEMORY_GB * regions as f64;
    let inter_region_bytes = traffic.message_bytes.iter().sum::<u64>() * u64::from(traffic.remote_regions);

    let per_million = |n: u64, price: f64| n as f64 / 1e6 * price;
    let sns_usd = per_million(sns_publish_units, SNS_PUBLISH_USD_PER_MILLION)
        + per_million(
            traffic.message_bytes.len() as u64 * regions,
            SNS_TO_SQS_DELIVERY_USD_PER_MILLION,
        );
    let sqs_usd = per_million(sqs_receive_units + sqs_delete_requests, SQS_USD_PER_MILLION);
    let lambda_usd = per_million(lambda_invocations, LAMBDA_USD_PER_MILLION_INVOCATIONS)
        + lambda_gb_seconds * LAMBDA_USD_PER_GB_SECOND;
    let transfer_usd = inter_region_bytes as f64 / GB * INTER_REGION_USD_PER_GB;
    let total_usd = sns_usd + sqs_usd + lambda_usd + transfer_usd;
    let replicated = traffic.commands as f64 * traffic.regions as f64;
    let usd_per_million_per_region = if replicated > 0.0 {
        total_usd / replicated * 1e6
    } else {
        0.0
    };
    Cost {
        sns_publish_units,
        sqs_receive_units,
        sqs_delete_requests,
        sqs_change_visibility_requests: 0,
        lambda_invocations,
        lambda_gb_seconds,
        inter_region_bytes,
        sns_usd,
        sqs_usd,
        lambda_usd,
        transfer_usd,
        total_usd,
        usd_per_million_per_region,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn payloads_are_billed_per_started_64_kib() {
        assert_eq!(billing_units(0), 1);
        assert_eq!(billing_units(1), 1);
        assert_eq!(billing_units(65_536), 1);
        assert_eq!(billing_units(65_537), 2);
        assert_eq!(billing_units(256 * 1024), 4);
    }

    #[test]
    fn one_command_per_message_is_priced_by_hand() {
        // 20 commands, one 500-byte message each, one Publish each, three
        // regions of which two are remote, 0.05 ms per record.
        let traffic = Traffic {
            commands: 20,
            regions: 3,
            remote_regions: 2,
            publish_request_bytes: vec![500; 20],
            message_bytes: vec![500; 20],
            apply_ms_per_record: 0.05,
        };
        let cost = model(&traffic);
        assert_eq!(cost.sns_publish_units, 20);
        // Two invocations of 10 records per region, each 0.5 ms, billed 1 ms.
        assert_eq!(cost.lambda_invocations, 6);
        assert_eq!(cost.sqs_receive_units, 6);
        assert_eq!(cost.sqs_delete_requests, 6);
        assert!(close(cost.lambda_gb_seconds, 6.0 * 0.001 * 0.25));
        assert_eq!(cost.inter_region_bytes, 20 * 500 * 2);
        let expected = 20.0 * 0.50 / 1e6
            + 12.0 * 0.40 / 1e6
            + (6.0 * 0.20 / 1e6 + 6.0 * 0.001 * 0.25 * 0.000_016_666_7)
            + 20_000.0 / 1e9 * 0.02;
        assert!(close(cost.total_usd, expected), "{} != {expected}", cost.total_usd);
        assert!(close(cost.usd_per_million_per_region, expected / 60.0 * 1e6));
    }

    #[test]
    fn large_batches_pay_per_chunk_and_per_millisecond() {
        // 2 messages of 200 KiB holding 3000 commands each, sent in one
        // PublishBatch of 400 KiB; 12.4 ms per record; one region.
        let traffic = Traffic {
            commands: 6000,
            regions: 1,
            remote_regions: 0,
            publish_request_bytes: vec![400 * 1024],
            message_bytes: vec![200 * 1024, 200 * 1024],
            apply_ms_per_record: 12.4,
        };
        let cost = model(&traffic);
        assert_eq!(cost.sns_publish_units, 7);
        assert_eq!(cost.sqs_receive_units, 7);
        assert_eq!(cost.lambda_invocations, 1);
        // 24.8 ms billed as 25 ms.
        assert!(close(cost.lambda_gb_seconds, 0.025 * 0.25));
        assert_eq!(cost.inter_region_bytes, 0);
        assert!(close(
            cost.total_usd,
            7.0 * 0.5 / 1e6 + 8.0 * 0.4 / 1e6 + 0.2 / 1e6 + 0.025 * 0.25 * 0.000_016_666_7
        ));
    }

    #[test]
    fn nothing_replicated_costs_nothing_per_command() {
        let cost = model(&Traffic {
            commands: 0,
            regions: 3,
            remote_regions: 2,
            publish_request_bytes: vec![],
            message_bytes: vec![],
            apply_ms_per_record: 1.0,
        });
        assert_eq!(cost.total_usd, 0.0);
        assert_eq!(cost.usd_per_million_per_region, 0.0);
    }
}
