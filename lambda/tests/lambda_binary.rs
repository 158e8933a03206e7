//! The real `regis-lambda` binary, driven through the Lambda Runtime API.
//!
//! The test plays the Lambda service: a small HTTP server implements the
//! runtime API (`GET /2018-06-01/runtime/invocation/next` hands out an SQS
//! event, `POST .../{id}/response` takes the answer), and the binary is
//! started with `AWS_LAMBDA_RUNTIME_API` pointing at it, against a real
//! redis-server and a real DLQ in LocalStack.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use regis_aws::clock::now_ms;
use regis_testkit::RedisServer;
use regis_testkit::localstack;
use regis_wire::{Batch, BatchHeader, Command, EncodeOptions, HybridClock, Mode, VersionedCommand};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

const REGION: &str = "eu-west-1";
const QUEUE_ARN: &str = "arn:aws:sqs:eu-west-1:000000000000:regis-eu-west-1";

/// What the function sent back for one invocation.
#[derive(Debug)]
struct Answer {
    request_id: String,
    /// `response` or `error`.
    kind: String,
    body: Value,
}

/// A minimal Lambda Runtime API: invocations are queued with [`invoke`],
/// answers come out of `answers`.
struct RuntimeApi {
    address: String,
    events: mpsc::UnboundedSender<(String, Value)>,
    answers: mpsc::UnboundedReceiver<Answer>,
}

impl RuntimeApi {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (events, pending) = mpsc::unbounded_channel::<(String, Value)>();
        let (answer_tx, answers) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(pending));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, Arc::clone(&pending), answer_tx.clone()));
            }
        });
        Self {
            address,
            events,
            answers,
        }
    }

    async fn invoke(&mut self, request_id: &str, event: Value) -> Answer {
        self.events.send((request_id.to_owned(), event)).unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), self.answers.recv())
            .await
            .expect("the function answers within a minute")
            .expect("runtime API running");
        assert_eq!(answer.request_id, request_id);
        answer
    }
}

async fn serve_connection(
    stream: TcpStream,
    pending: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    answers: mpsc::UnboundedSender<Answer>,
) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if read.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            read.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let body = read_body(&mut read, &headers).await;

        let response = if method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            // Long poll, as the real API does, until an invocation is queued.
            let Some((request_id, event)) = pending.lock().await.recv().await else {
                return;
            };
            let body = event.to_string();
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {request_id}\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:{REGION}:000000000000:function:regis-applier\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n{body}",
                body.len(),
                deadline = now_ms() + 60_000,
            )
        } else if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") {
            let (request_id, kind) = rest.split_once('/').unwrap_or((rest, ""));
            let body =
                serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
            let _ = answers.send(Answer {
                request_id: request_id.to_owned(),
                kind: kind.to_owned(),
                body,
            });
            "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}"
                .to_owned()
        } else {
            // Initialization errors and anything else.
            let body = String::from_utf8_lossy(&body).into_owned();
            let _ = answers.send(Answer {
                request_id: String::new(),
                kind: path.clone(),
                body: Value::String(body),
            });
            "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_owned()
        };
        if write.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn read_body<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R, headers: &HashMap<String, String>) -> Vec<u8> {
    if let Some(length) = headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        let mut body = vec![0; length];
        read.read_exact(&mut body).await.unwrap();
        return body;
    }
    let mut body = Vec::new();
    if headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            read.read_line(&mut size).await.unwrap();
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            read.read_exact(&mut chunk).await.unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    body
}

fn batch_text(id: &str, key: &str, clock: &mut HybridClock) -> String {
    let now = now_ms();
    let batch = Batch {
        header: BatchHeader {
            id: id.into(),
            origin: "ap-south-1".into(),
            published_at_ms: now,
            tenant: "acme".into(),
            mode: Mode::Lww,
        },
        commands: vec![VersionedCommand::new(
            clock.tick(now),
            Command::Set {
                key: key.as_bytes().to_vec(),
                value: format!("value of {key}").into_bytes(),
                expire_at_ms: None,
            },
        )],
    };
    regis_wire::encode(&batch, &EncodeOptions::default()).unwrap().text
}

fn sqs_event(records: &[(&str, String)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": now_ms().to_string()},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

fn failures(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.kind, "response", "{answer:?}");
    answer.body["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {answer:?}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_answers_sqs_events_with_batch_item_failures() {
    localstack::ensure_running().await;
    let mut redis = RedisServer::start();
    let sqs = localstack::sqs(REGION).await;
    let dlq = localstack::create_queue(&sqs, &localstack::unique_name("lambda-dlq"), HashMap::new()).await;
    let mut api = RuntimeApi::start().await;

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_regis-lambda"))
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "regis-applier")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", localstack::endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("REGIS_REGION", REGION)
        .env("REGIS_REDIS_URL", redis.url())
        .env("REGIS_DLQ_URL", &dlq.url)
        .env("REGIS_MODE", "lww")
        .env_remove("SENTRY_DSN")
        .env_remove("REGIS_SIGNING_KEYS")
        .env("REGIS_ALLOW_UNSIGNED", "true")
        .env("REGIS_ALLOW_ANY_TENANT", "true")
        .env_remove("REGIS_REDIS_CLUSTER")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the regis-lambda binary starts");
    let mut child = KillOnDrop(child);

    // Three good records and a malformed one: the good ones are applied,
    // the bad one parked, and no record is reported as failed.
    let mut clock = HybridClock::new(2);
    let records = [
        ("m1", batch_text("b1", "lambda:1", &mut clock)),
        ("m2", batch_text("b2", "lambda:2", &mut clock)),
        ("bad", "not json at all".to_owned()),
        ("m3", batch_text("b3", "lambda:3", &mut clock)),
    ];
    let answer = api.invoke("req-1", sqs_event(&records)).await;
    assert_eq!(failures(&answer), Vec::<String>::new());

    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    for key in ["lambda:1", "lambda:2", "lambda:3"] {
        let value: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await.unwrap();
        assert_eq!(value.as_deref(), Some(format!("value of {key}").as_str()));
    }
    let parked = localstack::receive_all(&sqs, &dlq.url, 1, Duration::from_secs(20)).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body(), Some("not json at all"));
    let reason = parked[0]
        .message_attributes()
        .and_then(|a| a.get("reason"))
        .and_then(|v| v.string_value());
    assert_eq!(reason, Some("malformed"));
    let source = parked[0]
        .message_attributes()
        .and_then(|a| a.get("source-queue"))
        .and_then(|v| v.string_value());
    assert_eq!(source, Some(QUEUE_ARN));

    // Redis down: every record comes back.
    redis.stop();
    let records = [
        ("m4", batch_text("b4", "lambda:4", &mut clock)),
        ("m5", batch_text("b5", "lambda:5", &mut clock)),
    ];
    let answer = api.invoke("req-2", sqs_event(&records)).await;
    assert_eq!(failures(&answer), ["m4", "m5"]);

    // One metric line per invocation on stdout.
    let _ = child.0.kill();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let emf: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some() && v.get("Reason").is_none())
        .collect();
    assert_eq!(emf.len(), 2, "{stdout}");
    assert!(
        stdout.contains(r#""Reason":"malformed""#),
        "permanent failures are also counted by reason: {stdout}"
    );
    assert_eq!(emf[0]["Region"], REGION);
    assert_eq!(emf[0]["Batches"], 3);
    assert_eq!(emf[0]["PermanentFailures"], 1);
    assert_eq!(emf[0]["ReplicationLagMs"].as_array().map(Vec::len), Some(3));
    assert_eq!(emf[1]["RetryableFailures"], 2);

    // Structured JSON logs: every line about a batch names its message and batch.
    let logs: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "regis_applier::records")
        .collect();
    assert_eq!(logs.len(), 6, "{stdout}");
    let applied: Vec<(&str, &str)> = logs
        .iter()
        .filter(|l| l["fields"]["message"] == "applied")
        .map(|l| {
            (
                l["span"]["message_id"].as_str().unwrap(),
                l["span"]["batch_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(applied, [("m1", "b1"), ("m2", "b2"), ("m3", "b3")]);
    assert!(logs.iter().all(|l| l["span"]["message_id"].is_string()), "{stdout}");
}
