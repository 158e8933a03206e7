//! The local environment file (`.regis/env.json`, written by `make up`) and
//! the AWS SDK configuration the operator subcommands build from it.
//!
//! Every subcommand that needs a region's queues or Redis takes them from
//! flags first and falls back to this file, so that against the local
//! environment `regis dlq list --region eu-west-1` needs nothing else, and
//! against real AWS the flags (or `REGIS_*` variables) say everything.

use std::path::{Path, PathBuf};

use regis_aws::deployment::{DEFAULT_ENV_FILE, Deployment};
use regis_aws::sdk::Endpoint;

use crate::output::OpsError;

/// The content of the environment file ([`regis_aws::deployment`] reads it
/// for every component; every field is optional, flags fill the gaps).
pub type LocalEnv = Deployment;

/// One region of the environment file.
pub type RegionEnv = regis_aws::deployment::Region;

/// The `--env-file` flag every operator subcommand has.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EnvArgs {
    /// The local environment file, for regions, queues, Redis URLs and the
    /// topic not given by flags [default: .regis/env.json, if it exists].
    #[arg(long, env = "REGIS_ENV_FILE", value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

impl EnvArgs {
    /// Reads the environment file: the one named (which must exist), else
    /// the default one if it exists, else none.
    pub fn load(&self) -> Result<Option<LocalEnv>, OpsError> {
        let path = match &self.env_file {
            Some(path) => path.as_path(),
            None if Path::new(DEFAULT_ENV_FILE).exists() => Path::new(DEFAULT_ENV_FILE),
            None => return Ok(None),
        };
        Ok(Some(Deployment::read(path)?))
    }
}

/// Takes a setting from its flag, else from the environment file, else
/// fails with a message naming both.
pub fn pick(flag: Option<&str>, from_env: Option<&str>, what: &str, flag_name: &str) -> Result<String, OpsError> {
    flag.or(from_env).map(str::to_owned).ok_or_else(|| {
        OpsError::Usage(format!(
            "no {what}: give {flag_name}, or an environment file (--env-file) that has it"
        ))
    })
}

/// SDK configuration for `region`. The endpoint is the SDK's own
/// `AWS_ENDPOINT_URL` when set, else the environment file's; with the
/// file's endpoint (LocalStack) and no credentials in the environment, the
/// test credentials LocalStack accepts are used.
pub async fn sdk_config(region: &str, env: Option<&LocalEnv>) -> aws_config::SdkConfig {
    let set = |name: &str| std::env::var_os(name).is_some();
    let endpoint = endpoint(
        env,
        set("AWS_ENDPOINT_URL"),
        set("AWS_ACCESS_KEY_ID") || set("AWS_PROFILE"),
    );
    regis_aws::sdk::config(region, &endpoint).await
}

/// The endpoint to use given the environment file and whether the process
/// environment names an endpoint (`AWS_ENDPOINT_URL`) or credentials of
/// its own.
fn endpoint(env: Option<&LocalEnv>, endpoint_set: bool, credentials_set: bool) -> Endpoint {
    match env.and_then(|e| e.endpoint_url.as_deref()) {
        Some(url) if !endpoint_set => Endpoint {
            url: Some(url.to_owned()),
            test_credentials: !credentials_set,
        },
        _ => Endpoint::aws(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_files_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("env.json");
        std::fs::write(&broken, "{").unwrap();
        let e = EnvArgs {
            env_file: Some(broken.clone()),
        }
        .load()
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(&broken.display().to_string()), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "the parse error is kept");
        let missing = EnvArgs {
            env_file: Some(PathBuf::from("does/not/exist.json")),
        };
        assert_eq!(missing.load().unwrap_err().exit_code(), 2);
    }

    #[test]
    fn flags_win_over_the_file() {
        assert_eq!(pick(Some("a"), Some("b"), "x", "--x").unwrap(), "a");
        assert_eq!(pick(None, Some("b"), "x", "--x").unwrap(), "b");
        let e = pick(None, None, "DLQ URL", "--dlq-url").unwrap_err();
        assert!(e.to_string().contains("--dlq-url"), "{e}");
    }

    #[test]
    fn the_files_endpoint_yields_to_the_process_environment() {
        let env = LocalEnv {
            endpoint_url: Some("http://127.0.0.1:4566".into()),
            ..LocalEnv::default()
        };
        assert_eq!(
            endpoint(Some(&env), false, false),
            Endpoint::local("http://127.0.0.1:4566")
        );
        // Credentials of the process's own are kept.
        assert_eq!(
            endpoint(Some(&env), false, true),
            Endpoint {
                url: Some("http://127.0.0.1:4566".into()),
                test_credentials: false
            }
        );
        // AWS_ENDPOINT_URL wins: the SDK reads it itself.
        assert_eq!(endpoint(Some(&env), true, false), Endpoint::aws());
        assert_eq!(endpoint(None, false, false), Endpoint::aws());
        assert_eq!(endpoint(Some(&LocalEnv::default()), false, false), Endpoint::aws());
    }
}
