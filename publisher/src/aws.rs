//! [`SnsClient`] over the AWS SDK.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sns::config::retry::RetryConfig;
use aws_sdk_sns::config::timeout::TimeoutConfig;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use crate::error::{SnsError, is_throttling_code};
use crate::sns::{Attribute, BatchOutcome, EntryFailure, OutgoingMessage, SnsClient};

/// Time allowed for one SNS request before it counts as a (retryable)
/// timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The real SNS (or LocalStack, through the SDK's endpoint setting).
#[derive(Debug, Clone)]
pub struct AwsSns {
    client: aws_sdk_sns::Client,
}

impl AwsSns {
    /// Uses a client as configured. The publisher retries on its own, so a
    /// client with SDK retries disabled avoids retrying twice; see
    /// [`AwsSns::from_sdk_config`].
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }

    /// A client from shared SDK configuration (region, credentials,
    /// endpoint), with SDK retries off (the publisher's [`crate::RetryPolicy`]
    /// governs) and a per-attempt timeout of [`ATTEMPT_TIMEOUT`].
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        let conf = aws_sdk_sns::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        Self::new(aws_sdk_sns::Client::from_conf(conf))
    }
}

fn attributes(attributes: &[Attribute]) -> Result<HashMap<String, MessageAttributeValue>, SnsError> {
    attributes
        .iter()
        .map(|a| {
            let value = MessageAttributeValue::builder()
                .data_type(a.value.data_type())
                .string_value(a.value.wire_value())
                .build()
                .map_err(|e| SnsError::Rejected {
                    code: "BuildError".into(),
                    message: e.to_string(),
                })?;
            Ok((a.name.clone(), value))
        })
        .collect()
}

/// Sorts an SDK error into retryable kinds.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: &SdkError<E, aws_sdk_sns::config::http::HttpResponse>,
) -> SnsError {
    let code = error.code().unwrap_or("Unknown").to_owned();
    let message = error.message().map_or_else(|| error.to_string(), str::to_owned);
    match error {
        SdkError::TimeoutError(_) => SnsError::Timeout(format!("{error:?}")),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => SnsError::Timeout(format!("{failure:?}")),
        SdkError::DispatchFailure(failure) if failure.is_user() => SnsError::Rejected {
            code: "DispatchFailure".into(),
            message: format!("{failure:?}"),
        },
        SdkError::DispatchFailure(failure) => SnsError::Connection(format!("{failure:?}")),
        SdkError::ResponseError(_) => SnsError::Server {
            code: "ResponseError".into(),
            message: format!("{error:?}"),
        },
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            if status == 429 || is_throttling_code(&code) {
                SnsError::Throttled { code, message }
            } else if status >= 500 {
                SnsError::Server { code, message }
            } else {
                SnsError::Rejected { code, message }
            }
        }
        // A request that could not be built is wrong whatever the retries.
        _ => SnsError::Rejected {
            code: "ConstructionFailure".into(),
            message: format!("{error:?}"),
        },
    }
}

#[async_trait]
impl SnsClient for AwsSns {
    async fn publish(&self, topic_arn: &str, message: &OutgoingMessage) -> Result<(), SnsError> {
        self.client
            .publish()
            .topic_arn(topic_arn)
            .message(&message.body)
            .set_message_attributes(Some(attributes(&message.attributes)?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn publish_batch(&self, topic_arn: &str, messages: &[&OutgoingMessage]) -> Result<BatchOutcome, SnsError> {
        let entries = messages
            .iter()
            .map(|m| {
                PublishBatchRequestEntry::builder()
                    .id(&m.id)
                    .message(&m.body)
                    .set_message_attributes(Some(attributes(&m.attributes)?))
                    .build()
                    .map_err(|e| SnsError::Rejected {
                        code: "BuildError".into(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .publish_batch()
            .topic_arn(topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(BatchOutcome {
            successful: output
                .successful()
                .iter()
                .filter_map(|s| s.id().map(str::to_owned))
                .collect(),
            failed: output
                .failed()
                .iter()
                .map(|f| EntryFailure {
                    id: f.id().to_owned(),
                    code: f.code().to_owned(),
                    message: f.message().unwrap_or_default().to_owned(),
                    sender_fault: f.sender_fault(),
                })
                .collect(),
        })
    }
}
