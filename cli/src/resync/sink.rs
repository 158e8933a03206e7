//! Where a resync's batches go: one region's apply queue (through the
//! shared [`QueueClient`]) or the topic (through the publisher's
//! [`SnsClient`]), paced to a rate and retried.
//!
//! Both take messages in calls of at most ten, planned by the one
//! [`regis_aws::plan_batches`]. A message whose call or entry failed is
//! sent again, up to [`SEND_ATTEMPTS`] times with a doubling pause; what
//! is still unsent then stops the resync with the last error as its
//! cause. A resent message may arrive twice: harmless, apply is
//! idempotent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regis_aws::{Attribute, BATCH_MAX_ENTRIES, OutgoingMessage, QueueClient, SqsQueue, plan_batches};
use regis_publisher::{AwsSns, SnsClient, message_size, routing_attributes};

use super::ResyncArgs;
use crate::local_env::{LocalEnv, pick, sdk_config};
use crate::output::{Cause, OpsError};

/// Attempts per message before giving up.
pub const SEND_ATTEMPTS: u32 = 6;

/// The pause before the second attempt; it doubles for each further one.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(400);

/// Where the batches go.
pub enum Sink {
    /// One region's apply queue.
    Queue {
        /// The client.
        queue: Arc<dyn QueueClient>,
        /// The queue.
        url: String,
        /// `tenant` and `origin`, as the subscription's raw delivery would set them.
        attributes: BTreeMap<String, Attribute>,
    },
    /// The topic, for every region.
    Topic {
        /// The client.
        sns: Arc<dyn SnsClient>,
        /// The topic.
        topic_arn: String,
        /// The routing attributes (`tenant`, `origin`, `regions`).
        attributes: Arc<[regis_publisher::Attribute]>,
    },
}

impl Sink {
    /// The apply queue at `url`, for batches of `tenant` from `origin`.
    pub fn queue(queue: Arc<dyn QueueClient>, url: String, tenant: &str, origin: &str) -> Self {
        let attributes = BTreeMap::from([
            ("tenant".to_owned(), Attribute::string(tenant)),
            ("origin".to_owned(), Attribute::string(origin)),
        ]);
        Self::Queue { queue, url, attributes }
    }

    /// The topic, for batches of `tenant` from `origin` allowed in `regions`.
    pub fn topic(sns: Arc<dyn SnsClient>, topic_arn: String, tenant: &str, origin: &str, regions: Vec<String>) -> Self {
        Self::Topic {
            sns,
            topic_arn,
            attributes: routing_attributes(tenant, origin, regions).into(),
        }
    }

    /// Sends message texts, retrying what failed; errors when something
    /// could not be sent after every attempt.
    pub async fn send(&self, texts: &[String]) -> Result<(), OpsError> {
        let mut pending: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut last_error: Option<Cause> = None;
        for attempt in 0..SEND_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(FIRST_RETRY_PAUSE * 2u32.pow(attempt - 1)).await;
            }
            let results = self.send_once(&pending).await;
            let mut failed = Vec::new();
            for (text, result) in pending.into_iter().zip(results) {
                if let Err(e) = result {
                    last_error = Some(e);
                    failed.push(text);
                }
            }
            pending = failed;
        }
        match last_error {
            Some(source) if !pending.is_empty() => Err(OpsError::Service {
                context: format!("{} message(s) could not be sent", pending.len()),
                source,
            }),
            _ => Ok(()),
        }
    }

    /// One attempt at every text: one result per text.
    async fn send_once(&self, texts: &[&str]) -> Vec<Result<(), Cause>> {
        match self {
            Self::Queue { queue, url, attributes } => {
                let messages: Vec<OutgoingMessage> = texts
                    .iter()
                    .map(|text| OutgoingMessage {
                        body: (*text).to_owned(),
                        attributes: attributes.clone(),
                    })
                    .collect();
                let results = queue.send_all(url, &messages).await;
                results
                    .into_iter()
                    .map(|r| r.map_err(|e| Arc::new(e) as Cause))
                    .collect()
            }
            Self::Topic {
                sns,
                topic_arn,
                attributes,
            } => {
                let messages: Vec<regis_publisher::OutgoingMessage> = texts
                    .iter()
                    .enumerate()
                    .map(|(i, text)| regis_publisher::OutgoingMessage {
                        id: i.to_string(),
                        body: (*text).to_owned(),
                        attributes: Arc::clone(attributes),
                    })
                    .collect();
                let mut results = Vec::with_capacity(messages.len());
                for group in plan_batches(texts.iter().map(|t| message_size(t, attributes))) {
                    let refs: Vec<&regis_publisher::OutgoingMessage> = messages[group].iter().collect();
                    results.extend(publish_group(sns.as_ref(), topic_arn, &refs).await);
                }
                results
            }
        }
    }

    /// Sends texts with their command counts in calls of at most ten,
    /// paced by `pace`; returns the commands and messages sent.
    pub async fn send_paced(&self, texts: &[(String, usize)], pace: &mut Pace) -> Result<(u64, u64), OpsError> {
        let (mut commands, mut messages) = (0, 0);
        for slice in texts.chunks(BATCH_MAX_ENTRIES) {
            let count: usize = slice.iter().map(|(_, n)| n).sum();
            pace.before(count as u64).await;
            let bodies: Vec<String> = slice.iter().map(|(t, _)| t.clone()).collect();
            self.send(&bodies).await?;
            commands += count as u64;
            messages += slice.len() as u64;
        }
        Ok((commands, messages))
    }
}

/// One `PublishBatch` call: one result per message.
async fn publish_group(
    sns: &dyn SnsClient,
    topic_arn: &str,
    group: &[&regis_publisher::OutgoingMessage],
) -> Vec<Result<(), Cause>> {
    match sns.publish_batch(topic_arn, group).await {
        Ok(outcome) => group
            .iter()
            .map(|m| match outcome.failed.iter().find(|f| f.id == m.id) {
                Some(failure) => Err(Arc::new(failure.to_error()) as Cause),
                None => Ok(()),
            })
            .collect(),
        Err(e) => {
            let cause: Cause = Arc::new(e);
            vec![Err(cause); group.len()]
        }
    }
}

/// The sink `args` ask for: `--to-region`'s apply queue, else the topic.
pub async fn open(args: &ResyncArgs, env: Option<&LocalEnv>, origin: &str) -> Result<Sink, OpsError> {
    if let Some(region) = &args.to_region {
        let url = pick(
            args.queue_url.as_deref(),
            env.and_then(|e| e.region(region)).and_then(|r| r.queue_url.as_deref()),
            &format!("apply queue URL for region {region}"),
            "--queue-url",
        )?;
        let queue = Arc::new(SqsQueue::new(&sdk_config(region, env).await));
        return Ok(Sink::queue(queue, url, &args.tenant, origin));
    }
    let (topic_arn, region) = args.topic.topic(env)?;
    let regions = env.and_then(|e| e.tenants.get(&args.tenant)).map_or_else(
        || vec![regis_wire::ANY_REGION.to_owned()],
        regis_wire::Tenant::region_attribute,
    );
    let sns = Arc::new(AwsSns::from_sdk_config(&sdk_config(&region, env).await));
    Ok(Sink::topic(sns, topic_arn, &args.tenant, origin, regions))
}

/// Paces sends to `rate` commands per second (0: no limit).
#[derive(Debug)]
pub struct Pace {
    rate: u64,
    started: Instant,
    sent: u64,
}

impl Pace {
    /// Starts pacing now.
    pub fn new(rate: u64) -> Self {
        Self {
            rate,
            started: Instant::now(),
            sent: 0,
        }
    }

    /// Waits until `commands` more may be sent.
    pub async fn before(&mut self, commands: u64) {
        if self.rate > 0 {
            let due = self.started + Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        self.sent += commands;
    }
}

#[cfg(test)]
mod tests {
    use regis_aws::QueueError;
    use regis_publisher::{EntryFault, MemorySns, SnsError};

    use super::*;
    use crate::testing::FaultyQueue;

    const APPLY: &str = "apply";

    fn texts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("batch-{i}")).collect()
    }

    fn to_queue(queue: &Arc<FaultyQueue>) -> Sink {
        Sink::queue(queue.clone(), APPLY.into(), "acme", "regis-resync")
    }

    #[tokio::test(start_paused = true)]
    async fn batches_reach_the_queue_with_their_routing_attributes() {
        let queue = FaultyQueue::new();
        let sent: Vec<(String, usize)> = texts(25).into_iter().map(|t| (t, 2)).collect();
        let counts = to_queue(&queue).send_paced(&sent, &mut Pace::new(0)).await.unwrap();
        assert_eq!(counts, (50, 25));
        let messages = queue.memory.messages(APPLY);
        assert_eq!(messages.len(), 25);
        assert_eq!(messages[0].attributes["tenant"], Attribute::string("acme"));
        assert_eq!(messages[0].attributes["origin"], Attribute::string("regis-resync"));
        assert_eq!(queue.memory.send_calls(APPLY), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_retried_and_each_message_arrives_once() {
        let queue = FaultyQueue::new();
        queue.faults().failing_sends = SEND_ATTEMPTS as usize - 1;
        to_queue(&queue).send(&texts(3)).await.unwrap();
        let mut bodies: Vec<String> = queue.memory.messages(APPLY).into_iter().map(|m| m.body).collect();
        bodies.sort();
        assert_eq!(bodies, texts(3));
    }

    #[tokio::test(start_paused = true)]
    async fn what_stays_refused_stops_the_resync_with_the_cause() {
        let queue = FaultyQueue::new();
        queue.faults().refused_bodies.insert("batch-1".into());
        let e = to_queue(&queue).send(&texts(3)).await.unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().starts_with("1 message(s) could not be sent: "), "{e}");
        let cause = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<QueueError>());
        assert!(matches!(cause, Some(QueueError::Refused { .. })), "{e:?}");
        assert_eq!(queue.memory.messages(APPLY).len(), 2, "the others went");
    }

    #[tokio::test(start_paused = true)]
    async fn the_topic_gets_routing_attributes_and_failed_entries_again() {
        let sns = Arc::new(MemorySns::new());
        sns.fail_entries(
            2,
            EntryFault {
                code: "InternalError".into(),
                sender_fault: false,
            },
        );
        sns.fail_requests(1, SnsError::Connection("refused".into()));
        let sink = Sink::topic(sns.clone(), "arn:topic".into(), "acme", "o", vec!["eu-west-1".into()]);
        sink.send(&texts(12)).await.unwrap();
        let messages = sns.messages();
        let mut bodies: Vec<String> = messages.iter().map(|m| m.body.clone()).collect();
        bodies.sort();
        let mut expected = texts(12);
        expected.sort();
        assert_eq!(bodies, expected, "every message once");
        let names: Vec<&str> = messages[0].attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["tenant", "origin", "regions"]);
    }
}
