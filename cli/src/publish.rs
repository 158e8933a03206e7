//! `regis publish`: publish commands from the shell through the publisher
//! library, as a service would.
//!
//! One command comes from the arguments (`regis publish --tenant acme SET
//! user:1 alice EX 60`), many from a file or stdin, one per line, in
//! `redis-cli` syntax (quotes and `\xHH` escapes; empty lines and lines
//! starting with `#` are skipped). Commands are parsed by the wire crate,
//! which refuses what is not idempotent with the reason and the
//! alternative.
//!
//! A file is all or nothing: every line is parsed before anything is
//! published, and if any line is refused, the refused line numbers are
//! reported and nothing is published (exit 2). Publishing the valid rest
//! would leave the operator to work out which part of a file went out;
//! fixing the file and running it again is simpler, and safe because every
//! accepted command is idempotent.
//!
//! The command waits until SNS has acknowledged every message (the
//! publisher's `flush`) before it exits, and prints how many commands went
//! out in how many messages.

use std::io::Read as _;
use std::path::PathBuf;

use regis_publisher::{AwsSns, Command, Publisher, PublisherConfig, SigningKey};
use regis_wire::ParseError;
use serde_json::json;

use crate::local_env::{EnvArgs, LocalEnv, pick, sdk_config};
use crate::output::{OpsError, Outcome, print_json};
pub use regis_aws::clock::now_ms;

/// Where to publish: the topic, and who the publisher says it is.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TopicArgs {
    /// The replication topic [default: the environment file's].
    #[arg(long, env = "REGIS_TOPIC_ARN", value_name = "ARN")]
    pub topic_arn: Option<String>,
    /// The region of the topic, for the SNS client [default: the environment
    /// file's topic region, else the ARN's region].
    #[arg(long, env = "REGIS_TOPIC_REGION", value_name = "REGION")]
    pub topic_region: Option<String>,
    /// The region this publisher writes from (the batches' `origin`)
    /// [default: the topic's region].
    #[arg(long, env = "REGIS_ORIGIN", value_name = "REGION")]
    pub origin: Option<String>,
    /// The origin's rank, the last tie-break of versions [default: the
    /// origin's rank in the environment file, else 0].
    #[arg(long, env = "REGIS_RANK")]
    pub rank: Option<u16>,
    /// The tenant registry as inline JSON (`{"t": {"regions": [...], "prefixes": [...]}}`)
    /// [default: the environment file's]. Tenants not in it are refused.
    #[arg(long, env = "REGIS_TENANTS", value_name = "JSON")]
    pub tenants: Option<String>,
    /// Sign batches with this key, `id:base64secret`.
    #[arg(long, env = "REGIS_SIGNING_KEY", value_name = "ID:SECRET", hide_env_values = true)]
    pub signing_key: Option<String>,
}

impl TopicArgs {
    /// The topic ARN and the region of its SNS client: from the flags,
    /// else from the environment file, else (the region) from the ARN.
    pub fn topic(&self, env: Option<&LocalEnv>) -> Result<(String, String), OpsError> {
        let topic_arn = pick(
            self.topic_arn.as_deref(),
            env.and_then(|e| e.topic_arn.as_deref()),
            "topic ARN",
            "--topic-arn",
        )?;
        let region = self
            .topic_region
            .clone()
            .or_else(|| env.and_then(|e| e.topic_region.clone()))
            .or_else(|| arn_region(&topic_arn).map(str::to_owned))
            .ok_or_else(|| OpsError::Usage("no topic region: give --topic-region".into()))?;
        Ok((topic_arn, region))
    }
}

/// `regis publish`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    long_about = "Publish idempotent Redis commands to the replication topic, as a service would through the \
publisher library. One command from the arguments, or many from a file (or stdin, with `-`), one per line in \
redis-cli syntax. Commands that are not idempotent (INCR, APPEND, LPUSH, ...) are refused with the reason and \
what to use instead; relative expiries (EX, PX, EXPIRE) become absolute at publish time. A file is all or \
nothing: if any line is refused, its line number is reported and nothing is published. Waits until SNS has \
acknowledged everything, then prints how many commands went out in how many messages.",
    after_help = "Examples:
  regis publish --tenant acme SET user:1 alice EX 60
  regis publish --tenant acme HSET room:7 status clean floor 3
  regis publish --tenant acme --file cmds.txt
  printf 'SET a 1\\nDEL b\\n' | regis publish --tenant acme --file -

Exit codes: 0 published, 1 SNS did not take everything, 2 refused command or missing setting (nothing published)."
)]
pub struct PublishArgs {
    /// The tenant the commands belong to (selects the regions they reach).
    #[arg(long, env = "REGIS_TENANT")]
    pub tenant: String,
    /// Read commands from this file, one per line (`-` for stdin).
    #[arg(long, short = 'f', value_name = "PATH", conflicts_with = "command")]
    pub file: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The topic and the publisher's identity.
    #[command(flatten)]
    pub topic: TopicArgs,
    /// The local environment file.
    #[command(flatten)]
    pub env: EnvArgs,
    /// The command and its arguments (`SET key value EX 60`).
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// A line of a file that was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 1-based line number.
    pub line: usize,
    /// Why.
    pub error: ParseError,
}

/// The refused lines of a file: the error `regis publish --file` stops
/// with, each line's own error kept (the first is the `source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedLines(pub Vec<Refusal>);

impl std::fmt::Display for RefusedLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line(s) refused, nothing published:", self.0.len())?;
        for r in &self.0 {
            write!(f, "\n  line {}: {}", r.line, r.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for RefusedLines {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.first().map(|r| &r.error as _)
    }
}

/// Parses a file of commands, one per line; empty lines and `#` comments
/// are skipped. Returns every command, or every refusal.
pub fn parse_lines(text: &str, now_ms: u64) -> Result<Vec<Command>, Vec<Refusal>> {
    let mut commands = Vec::new();
    let mut refusals = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match regis_wire::split_line(trimmed).and_then(|args| regis_wire::parse_command(&args, now_ms)) {
            Ok(command) => commands.push(command),
            Err(error) => refusals.push(Refusal { line: i + 1, error }),
        }
    }
    if refusals.is_empty() {
        Ok(commands)
    } else {
        Err(refusals)
    }
}

/// The region in an SNS topic ARN (`arn:aws:sns:REGION:ACCOUNT:NAME`).
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Builds a publisher for the topic from flags and the environment file.
/// The environment file's tenant registry is the publisher's, so a tenant's
/// batches carry its allowed regions and keys outside its prefixes are
/// refused before publishing.
pub async fn connect(topic: &TopicArgs, env: Option<&LocalEnv>) -> Result<Publisher, OpsError> {
    let (topic_arn, region) = topic.topic(env)?;
    let origin = topic.origin.clone().unwrap_or_else(|| region.clone());
    let rank = topic
        .rank
        .or_else(|| env.and_then(|e| e.region(&origin)).map(|r| r.rank))
        .unwrap_or(0);
    let mut config = PublisherConfig::new(topic_arn, origin, rank);
    if let Some(json) = &topic.tenants {
        config.tenants = regis_wire::TenantRegistry::parse(json).map_err(|e| OpsError::invalid("--tenants", e))?;
    } else if let Some(env) = env {
        config.tenants = env.tenants.clone();
    }
    if let Some(spec) = &topic.signing_key {
        config.signing_key = Some(SigningKey::parse(spec).map_err(|e| OpsError::invalid("--signing-key", e))?);
    }
    let sdk = sdk_config(&region, env).await;
    Publisher::new(config, AwsSns::from_sdk_config(&sdk)).map_err(|e| OpsError::invalid("publisher", e))
}

fn read_source(file: &PathBuf) -> Result<String, OpsError> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| OpsError::invalid("cannot read stdin", e))?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).map_err(|e| OpsError::invalid(format!("cannot read {}", file.display()), e))
    }
}

/// `regis publish`.
pub async fn run(args: PublishArgs) -> Result<Outcome, OpsError> {
    let env = args.env.load()?;
    let now = now_ms();
    let commands = match &args.file {
        Some(file) => {
            parse_lines(&read_source(file)?, now).map_err(|refusals| OpsError::invalid("", RefusedLines(refusals)))?
        }
        None if args.command.is_empty() => {
            return Err(OpsError::Usage("nothing to publish: give a command, or --file".into()));
        }
        None => {
            let argv: Vec<Vec<u8>> = args.command.iter().map(|a| a.as_bytes().to_vec()).collect();
            vec![regis_wire::parse_command(&argv, now).map_err(|e| OpsError::invalid("", e))?]
        }
    };
    if commands.is_empty() {
        return Err(OpsError::Usage("the file holds no commands".into()));
    }
    let publisher = connect(&args.topic, env.as_ref()).await?;
    for command in commands {
        publisher.publish_for(&args.tenant, command).await.map_err(|e| {
            if e.is_retryable() {
                OpsError::service("", e)
            } else {
                OpsError::invalid("", e)
            }
        })?;
    }
    let flushed = publisher.shutdown().await;
    let stats = publisher.stats();
    if args.json {
        print_json(&json!({
            "commands": stats.commands,
            "messages": stats.messages_published,
            "failed_commands": stats.failed_commands,
            "failed_messages": stats.failed_messages,
        }));
    } else {
        println!(
            "published {} commands in {} messages",
            stats.commands, stats.messages_published
        );
    }
    match flushed {
        Ok(()) => Ok(Outcome::Clean),
        Err(e) => Err(OpsError::service("not everything was published", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_parsed_line_by_line_with_comments_and_blank_lines_skipped() {
        let text = "# seed data\nSET user:1 alice EX 60\n\n  HSET room:7 status \"very clean\"\nDEL old\n";
        let commands = parse_lines(text, 1_000).unwrap();
        assert_eq!(commands.len(), 3);
        assert_eq!(
            commands[0],
            Command::Set {
                key: b"user:1".to_vec(),
                value: b"alice".to_vec(),
                expire_at_ms: Some(61_000)
            }
        );
        assert_eq!(
            commands[1],
            Command::HSet {
                key: b"room:7".to_vec(),
                fields: vec![(b"status".to_vec(), b"very clean".to_vec())]
            }
        );
    }

    #[test]
    fn every_refused_line_is_reported_with_its_number() {
        let text = "SET a 1\nINCR visits\nSET b 2\nLPUSH q x\nSET \"unterminated\n";
        let refusals = parse_lines(text, 0).unwrap_err();
        assert_eq!(refusals.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 4, 5]);
        assert!(
            refusals[0].error.to_string().contains("not idempotent"),
            "{}",
            refusals[0].error
        );
        assert!(matches!(refusals[2].error, ParseError::BadArguments { .. }));
        let e = OpsError::invalid("", RefusedLines(refusals));
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .starts_with("3 line(s) refused, nothing published:\n  line 2: "),
            "{e}"
        );
        let lines = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<RefusedLines>());
        assert_eq!(lines.map(|l| l.0.len()), Some(3), "the refusals are kept");
        let first = lines.and_then(std::error::Error::source);
        assert!(
            first.is_some_and(|s| s.is::<ParseError>()),
            "the first refusal is the source"
        );
    }

    #[test]
    fn topic_arns_name_their_region() {
        assert_eq!(arn_region("arn:aws:sns:eu-west-1:000000000000:t"), Some("eu-west-1"));
        assert_eq!(arn_region("not-an-arn"), None);
    }

    #[test]
    fn the_topic_comes_from_flags_then_the_file_then_the_arn() {
        let arn = "arn:aws:sns:eu-west-1:000000000000:t";
        let env = LocalEnv {
            topic_arn: Some(arn.into()),
            ..LocalEnv::default()
        };
        let none = TopicArgs::default();
        assert_eq!(
            none.topic(Some(&env)).unwrap(),
            (arn.to_owned(), "eu-west-1".to_owned())
        );
        let flags = TopicArgs {
            topic_arn: Some("arn:other".into()),
            topic_region: Some("ap-south-1".into()),
            ..TopicArgs::default()
        };
        assert_eq!(
            flags.topic(Some(&env)).unwrap(),
            ("arn:other".to_owned(), "ap-south-1".to_owned())
        );
        assert_eq!(none.topic(None).unwrap_err().exit_code(), 2);
        let regionless = TopicArgs {
            topic_arn: Some("arn:other".into()),
            ..TopicArgs::default()
        };
        assert!(
            regionless
                .topic(None)
                .unwrap_err()
                .to_string()
                .contains("--topic-region")
        );
    }
}
