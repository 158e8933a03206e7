//! The part of SNS the publisher uses, behind a small trait.
//!
//! The batching logic talks to [`SnsClient`] with plain structs, so it is
//! tested in-process ([`crate::MemorySns`]) and runs against the real service
//! through [`crate::AwsSns`].

use async_trait::async_trait;

use crate::error::SnsError;

/// Most entries in one `PublishBatch` request.
/// Source: Amazon SNS API Reference, PublishBatch ("Publishes up to 10
/// messages"; more gives `TooManyEntriesInBatchRequest`). The same page says
/// that the combined size of all entries, bodies and attributes included,
/// must not exceed the topic's `MaximumMessageSize`: the publisher groups
/// entries under its configured maximum message size.
pub const PUBLISH_BATCH_MAX_ENTRIES: usize = 10;

/// The value of a message attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttributeValue {
    /// SNS data type `String`.
    String(String),
    /// SNS data type `String.Array`: sent as a JSON array of strings.
    StringArray(Vec<String>),
}

impl AttributeValue {
    /// The SNS data type name.
    pub fn data_type(&self) -> &'static str {
        match self {
            Self::String(_) => "String",
            Self::StringArray(_) => "String.Array",
        }
    }

    /// The `StringValue` as sent to SNS.
    pub fn wire_value(&self) -> String {
        match self {
            Self::String(s) => s.clone(),
            Self::StringArray(items) => serde_json::to_string(items).expect("a list of strings serializes"),
        }
    }
}

/// One message attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute name.
    pub name: String,
    /// Its value.
    pub value: AttributeValue,
}

impl Attribute {
    /// Bytes this attribute counts toward the message size: name, data type
    /// and value. Source: Amazon SNS API Reference, MessageAttributeValue
    /// ("All parts of the message attribute, including name, type, and value,
    /// are included in the message size restriction").
    pub fn size(&self) -> usize {
        self.name.len() + self.value.data_type().len() + self.value.wire_value().len()
    }
}

/// The attributes every batch carries, which the regional subscriptions'
/// filter policies match (docs/ARCHITECTURE.md): `tenant`, `origin`, and
/// `regions` (the tenant's allowed regions, `["*"]` when unrestricted).
pub fn routing_attributes(tenant: &str, origin: &str, regions: Vec<String>) -> Vec<Attribute> {
    vec![
        Attribute {
            name: "tenant".into(),
            value: AttributeValue::String(tenant.to_owned()),
        },
        Attribute {
            name: "origin".into(),
            value: AttributeValue::String(origin.to_owned()),
        },
        Attribute {
            name: "regions".into(),
            value: AttributeValue::StringArray(regions),
        },
    ]
}

/// Bytes a message counts toward the topic's maximum message size.
pub fn message_size(body: &str, attributes: &[Attribute]) -> usize {
    body.len() + attributes.iter().map(Attribute::size).sum::<usize>()
}

/// One SNS message: one encoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The batch id; also the entry id in a `PublishBatch` request (32 hex
    /// digits: within SNS's 80-character alphanumeric limit).
    pub id: String,
    /// The encoded batch.
    pub body: String,
    /// The message attributes (`tenant`, `origin`, `regions`).
    pub attributes: std::sync::Arc<[Attribute]>,
}

impl OutgoingMessage {
    /// Bytes this message counts toward the topic's maximum message size.
    pub fn size(&self) -> usize {
        message_size(&self.body, &self.attributes)
    }
}

/// Why SNS refused one entry of a `PublishBatch` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// The entry id ([`OutgoingMessage::id`]).
    pub id: String,
    /// SNS's error code.
    pub code: String,
    /// SNS's explanation.
    pub message: String,
    /// True when the request was wrong (not worth retrying); false when SNS
    /// failed (worth retrying).
    pub sender_fault: bool,
}

impl EntryFailure {
    /// The failure as an error, classified for retrying.
    pub fn to_error(&self) -> SnsError {
        let (code, message) = (self.code.clone(), self.message.clone());
        if self.sender_fault {
            SnsError::Rejected { code, message }
        } else if crate::error::is_throttling_code(&self.code) {
            SnsError::Throttled { code, message }
        } else {
            SnsError::Server { code, message }
        }
    }
}

/// What a `PublishBatch` request reported, entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Ids of the entries SNS accepted.
    pub successful: Vec<String>,
    /// Entries SNS refused.
    pub failed: Vec<EntryFailure>,
}

/// The SNS operations the publisher needs.
#[async_trait]
pub trait SnsClient: Send + Sync + 'static {
    /// `Publish`: one message. `Ok` means SNS stored it.
    async fn publish(&self, topic_arn: &str, message: &OutgoingMessage) -> Result<(), SnsError>;

    /// `PublishBatch`: up to [`PUBLISH_BATCH_MAX_ENTRIES`] messages. `Err`
    /// means the whole request failed; `Ok` still has to be read entry by
    /// entry.
    async fn publish_batch(&self, topic_arn: &str, messages: &[&OutgoingMessage]) -> Result<BatchOutcome, SnsError>;
}

#[async_trait]
impl<T: SnsClient + ?Sized> SnsClient for std::sync::Arc<T> {
    async fn publish(&self, topic_arn: &str, message: &OutgoingMessage) -> Result<(), SnsError> {
        (**self).publish(topic_arn, message).await
    }

    async fn publish_batch(&self, topic_arn: &str, messages: &[&OutgoingMessage]) -> Result<BatchOutcome, SnsError> {
        (**self).publish_batch(topic_arn, messages).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_size_counts_name_type_and_value() {
        let tenant = Attribute {
            name: "tenant".into(),
            value: AttributeValue::String("acme".into()),
        };
        assert_eq!(tenant.size(), 6 + 6 + 4);
        let regions = Attribute {
            name: "regions".into(),
            value: AttributeValue::StringArray(vec!["eu-west-1".into(), "ap-south-1".into()]),
        };
        assert_eq!(regions.value.wire_value(), r#"["eu-west-1","ap-south-1"]"#);
        assert_eq!(regions.size(), 7 + 12 + 26);
        assert_eq!(message_size("abc", &[tenant, regions]), 3 + 16 + 45);
    }

    #[test]
    fn entry_failures_are_classified() {
        let failure = |code: &str, sender_fault| EntryFailure {
            id: "a".into(),
            code: code.into(),
            message: "m".into(),
            sender_fault,
        };
        assert!(!failure("InvalidParameter", true).to_error().is_retryable());
        assert!(matches!(
            failure("Throttled", false).to_error(),
            SnsError::Throttled { .. }
        ));
        assert!(matches!(
            failure("InternalError", false).to_error(),
            SnsError::Server { .. }
        ));
        assert!(failure("InternalError", false).to_error().is_retryable());
    }
}
