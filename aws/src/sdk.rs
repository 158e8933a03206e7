//! The AWS SDK configuration, built one way everywhere.
//!
//! Production code takes credentials and the endpoint from the SDK's own
//! chain (instance or Lambda role, `AWS_ENDPOINT_URL`); the local
//! environment and the tests name the LocalStack endpoint and give static
//! test credentials. Which of these applies is the caller's decision (the
//! `main` or the CLI reads the environment); this module only assembles.

/// Credentials LocalStack accepts (it checks none).
pub const LOCAL_ACCESS_KEY: &str = "test";

/// Where the SDK should talk to, and as whom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// An explicit endpoint URL (LocalStack); `None`: the SDK's default,
    /// which itself honours `AWS_ENDPOINT_URL`.
    pub url: Option<String>,
    /// Static test credentials instead of the default provider chain
    /// (always true for LocalStack, which needs some but checks none).
    pub test_credentials: bool,
}

impl Endpoint {
    /// The SDK's defaults: real AWS (or whatever `AWS_ENDPOINT_URL` says).
    pub fn aws() -> Self {
        Self::default()
    }

    /// LocalStack (or any emulator) at `url`, with test credentials.
    pub fn local(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            test_credentials: true,
        }
    }
}

/// The SDK configuration for `region` and `endpoint`.
pub async fn config(region: &str, endpoint: &Endpoint) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(region.to_owned()));
    if let Some(url) = &endpoint.url {
        loader = loader.endpoint_url(url);
    }
    if endpoint.test_credentials {
        loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
            LOCAL_ACCESS_KEY,
            LOCAL_ACCESS_KEY,
            None,
            None,
            "regis-local",
        ));
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_endpoint_is_used_with_test_credentials() {
        let sdk = config("eu-west-1", &Endpoint::local("http://127.0.0.1:4566")).await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:4566"));
        assert!(sdk.credentials_provider().is_some());
    }
}
