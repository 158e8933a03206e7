//! Encoding and decoding of batches.
//!
//! The message is UTF-8 JSON (SNS carries text):
//!
//! ```json
//! {"regis":1,"id":"…","origin":"eu-west-1","ts":1764560000000,"tenant":"acme",
//!  "mode":"lww","enc":"zstd","n":2,"cmds":"KLUv/Q…","sig":{"kid":"k1","mac":"…"}}
//! ```
//!
//! `cmds` is the JSON array of commands (`"enc":"json"`) or that array
//! compressed with zstd and then base64-encoded (`"enc":"zstd"`). `sig` is
//! optional. The decoder reads the format version before anything else, so
//! a future version is reported as such rather than as garbage, and it
//! checks every size before it allocates for it.

use std::io::Read as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::batch::{Batch, BatchHeader, FORMAT_VERSION, Mode};
use crate::command::{UNKNOWN_OP_MARKER, VersionedCommand};
use crate::error::{DecodeError, EncodeError, Limit};
use crate::signing::{Keyring, SigningKey};

/// SNS's default maximum message size, attributes included (256 KiB).
/// Source: Amazon SNS quotas, "Message size".
pub const SNS_DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The largest maximum message size a topic can be configured with (1 MiB).
/// Source: Amazon SNS developer guide, "Publishing large messages": a topic's
/// `MaximumMessageSize` attribute may be set from 1,024 to 1,048,576 bytes;
/// topics are created with 262,144 (the default above), which did not change.
pub const SNS_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Whether to compress the command list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Never compress.
    None,
    /// Always compress at this zstd level.
    Zstd(i32),
    /// Compress at this zstd level when the list is at least `min_bytes`
    /// long and compression makes it smaller.
    Auto {
        /// zstd level (1 is fast and good for JSON).
        level: i32,
        /// Below this many bytes of JSON, do not try.
        min_bytes: usize,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Self::Auto {
            level: 1,
            min_bytes: 512,
        }
    }
}

/// How to encode a batch.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// Compression of the command list.
    pub compression: Compression,
    /// Key to sign with, if any.
    pub signing_key: Option<SigningKey>,
}

/// Limits the decoder enforces before it allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Longest message text accepted.
    pub max_message_bytes: usize,
    /// Longest command list accepted after decompression.
    pub max_decompressed_bytes: usize,
    /// Most commands accepted in one batch.
    pub max_commands: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: SNS_MAX_MESSAGE_BYTES,
            max_decompressed_bytes: 32 * 1024 * 1024,
            max_commands: 200_000,
        }
    }
}

/// A growing, serialized command list: each command is turned into JSON
/// once, when it is pushed, so a publisher knows a batch's size as it fills.
#[derive(Debug, Clone, Default)]
pub struct CommandList {
    json: Vec<u8>,
    count: usize,
}

impl CommandList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a command; returns how many bytes it added.
    pub fn push(&mut self, command: &VersionedCommand) -> Result<usize, EncodeError> {
        command.command.validate()?;
        let before = self.json.len();
        self.json.push(if self.count == 0 { b'[' } else { b',' });
        serde_json::to_writer(&mut self.json, command)?;
        self.count += 1;
        Ok(self.json.len() - before)
    }

    /// Commands pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Length in bytes of the list's JSON once closed.
    pub fn json_len(&self) -> usize {
        if self.count == 0 { 2 } else { self.json.len() + 1 }
    }

    /// Bytes the command would add if pushed (without pushing it).
    pub fn encoded_len(command: &VersionedCommand) -> usize {
        let mut counter = ByteCounter(0);
        // Writing to a counter cannot fail; a serialization error would be
        // caught again on push.
        let _ = serde_json::to_writer(&mut counter, command);
        counter.0 + 1
    }

    /// The list's JSON, closed, without copying it.
    fn into_closed(self) -> Vec<u8> {
        if self.count == 0 {
            return b"[]".to_vec();
        }
        let mut json = self.json;
        json.push(b']');
        json
    }
}

struct ByteCounter(usize);
impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An encoded batch and what it took.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The message text.
    pub text: String,
    /// Length of the command list's JSON before compression.
    pub uncompressed_bytes: usize,
    /// Whether the list was compressed.
    pub compressed: bool,
}

/// Fixed length of everything in the message but the header strings and
/// the payload: an upper bound used for size planning.
pub const ENVELOPE_OVERHEAD_BYTES: usize = 200;

/// Encodes a batch.
pub fn encode(batch: &Batch, options: &EncodeOptions) -> Result<Encoded, EncodeError> {
    let mut list = CommandList::new();
    for command in &batch.commands {
        list.push(command)?;
    }
    encode_owned_list(&batch.header, list, options)
}

/// Encodes a header and an already serialized command list.
pub fn encode_list(header: &BatchHeader, list: &CommandList, options: &EncodeOptions) -> Result<Encoded, EncodeError> {
    encode_owned_list(header, list.clone(), options)
}

std::thread_local! {
    /// A compression context and output buffer per thread, kept between
    /// messages: a fresh context per call allocates (and the kernel zeroes)
    /// its tables and a bound-sized output every time.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses `json` at `level` and appends the base64 of the result, in
/// quotes, to `text` when `keep(base64_len)` says so.
fn compress_into(
    json: &[u8],
    level: i32,
    text: &mut String,
    keep: impl FnOnce(usize) -> bool,
) -> Result<bool, EncodeError> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(l, _, _)| *l != level) {
            *cell = Some((level, zstd::bulk::Compressor::new(level)?, Vec::new()));
        }
        let (_, compressor, out) = cell.as_mut().expect("just set");
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(json.len()));
        compressor.compress_to_buffer(json, out)?;
        let b64_len = out.len().div_ceil(3) * 4 + 2;
        if !keep(b64_len) {
            return Ok(false);
        }
        text.reserve(b64_len);
        // Base64 needs no JSON escaping: quoting it makes the JSON string.
        text.push('"');
        BASE64.encode_string(&out[..], text);
        text.push('"');
        Ok(true)
    })
}

/// [`encode_list`] taking the list by value, so its JSON is closed and
/// compressed in place rather than copied.
pub fn encode_owned_list(
    header: &BatchHeader,
    list: CommandList,
    options: &EncodeOptions,
) -> Result<Encoded, EncodeError> {
    let n = list.len().to_string();
    let json = list.into_closed();
    let uncompressed_bytes = json.len();
    let level = match options.compression {
        Compression::None => None,
        Compression::Zstd(level) => Some(level),
        Compression::Auto { level, min_bytes } => (json.len() >= min_bytes).then_some(level),
    };
    let always = matches!(options.compression, Compression::Zstd(_));
    let mut payload = String::new();
    let compressed = match level {
        Some(level) => compress_into(&json, level, &mut payload, |b64_len| always || b64_len < json.len())?,
        None => false,
    };
    let (enc, payload) = if compressed {
        ("zstd", payload)
    } else {
        // The list is JSON made by serde_json, hence UTF-8.
        ("json", String::from_utf8(json).expect("serde_json writes UTF-8"))
    };
    let ts = header.published_at_ms.to_string();
    let mut text =
        String::with_capacity(payload.len() + ENVELOPE_OVERHEAD_BYTES + header.id.len() + header.tenant.len());
    text.push_str("{\"regis\":");
    text.push_str(&FORMAT_VERSION.to_string());
    for (name, value) in [
        ("id", &header.id),
        ("origin", &header.origin),
        ("tenant", &header.tenant),
    ] {
        text.push_str(",\"");
        text.push_str(name);
        text.push_str("\":");
        text.push_str(&serde_json::to_string(value)?);
    }
    text.push_str(",\"ts\":");
    text.push_str(&ts);
    text.push_str(",\"mode\":\"");
    text.push_str(header.mode.as_str());
    text.push_str("\",\"enc\":\"");
    text.push_str(enc);
    text.push_str("\",\"n\":");
    text.push_str(&n);
    text.push_str(",\"cmds\":");
    text.push_str(&payload);
    if let Some(key) = &options.signing_key {
        let mac = key.sign(&signed_parts(header, &ts, enc, &n, payload.as_bytes()));
        text.push_str(",\"sig\":{\"kid\":");
        text.push_str(&serde_json::to_string(&key.id)?);
        text.push_str(",\"mac\":\"");
        text.push_str(&mac);
        text.push_str("\"}");
    }
    text.push('}');
    Ok(Encoded {
        text,
        uncompressed_bytes,
        compressed,
    })
}

fn signed_parts<'a>(
    header: &'a BatchHeader,
    ts: &'a str,
    enc: &'a str,
    n: &'a str,
    payload: &'a [u8],
) -> [&'a [u8]; 9] {
    [
        b"regis/1",
        header.id.as_bytes(),
        header.origin.as_bytes(),
        header.tenant.as_bytes(),
        ts.as_bytes(),
        header.mode.as_str().as_bytes(),
        enc.as_bytes(),
        n.as_bytes(),
        payload,
    ]
}

#[derive(Deserialize)]
struct Probe {
    regis: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[allow(dead_code)]
    regis: u64,
    id: String,
    origin: String,
    tenant: String,
    ts: u64,
    mode: String,
    enc: String,
    n: usize,
    #[serde(borrow)]
    cmds: &'a RawValue,
    #[serde(default)]
    sig: Option<Signature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Signature {
    kid: String,
    mac: String,
}

/// Reads the format version of a message without decoding the rest.
pub fn peek_format_version(text: &str) -> Result<u64, DecodeError> {
    let probe: Probe = serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    match probe.regis {
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| DecodeError::Malformed("\"regis\" is not a whole number".into())),
        Some(_) => Err(DecodeError::Malformed("\"regis\" is not a number".into())),
        None => Err(DecodeError::Malformed("no \"regis\" format version".into())),
    }
}

/// Decodes and verifies a message. `keys` empty means signatures are not
/// required (a signature that is present is then not checked either).
pub fn decode(text: &str, limits: &DecodeLimits, keys: &Keyring) -> Result<Batch, DecodeError> {
    if text.len() > limits.max_message_bytes {
        return Err(DecodeError::OverLimit {
            limit: Limit::MessageBytes,
            max: limits.max_message_bytes,
            actual: text.len(),
        });
    }
    let version = peek_format_version(text)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let env: Envelope<'_> = serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let mode = env.mode.parse::<Mode>().map_err(DecodeError::Malformed)?;
    if env.n > limits.max_commands {
        return Err(DecodeError::OverLimit {
            limit: Limit::Commands,
            max: limits.max_commands,
            actual: env.n,
        });
    }
    let header = BatchHeader {
        id: env.id,
        origin: env.origin,
        published_at_ms: env.ts,
        tenant: env.tenant,
        mode,
    };
    let raw_payload = env.cmds.get();
    if !keys.is_empty() {
        let sig = env.sig.as_ref().ok_or(DecodeError::Unsigned)?;
        let (ts, n) = (env.ts.to_string(), env.n.to_string());
        keys.verify(
            &sig.kid,
            &sig.mac,
            &signed_parts(&header, &ts, &env.enc, &n, raw_payload.as_bytes()),
        )?;
    }
    let json: std::borrow::Cow<'_, [u8]> = match env.enc.as_str() {
        "json" => {
            if raw_payload.len() > limits.max_decompressed_bytes {
                return Err(DecodeError::OverLimit {
                    limit: Limit::DecompressedBytes,
                    max: limits.max_decompressed_bytes,
                    actual: raw_payload.len(),
                });
            }
            std::borrow::Cow::Borrowed(raw_payload.as_bytes())
        }
        "zstd" => std::borrow::Cow::Owned(decompress(raw_payload, limits)?),
        other => return Err(DecodeError::UnknownEncoding(other.to_owned())),
    };
    let mut de = serde_json::Deserializer::from_slice(&json);
    let commands = BoundedCommands {
        max: limits.max_commands,
    }
    .deserialize(&mut de)
    .and_then(|c| de.end().map(|()| c))
    .map_err(|e| command_error(&e, limits))?;
    if commands.len() != env.n {
        return Err(DecodeError::Malformed(format!(
            "\"n\" says {} commands, found {}",
            env.n,
            commands.len()
        )));
    }
    Ok(Batch { header, commands })
}

fn decompress(raw_payload: &str, limits: &DecodeLimits) -> Result<Vec<u8>, DecodeError> {
    let b64: &str = serde_json::from_str(raw_payload)
        .map_err(|_| DecodeError::Malformed("compressed \"cmds\" must be a base64 string without escapes".into()))?;
    let packed = BASE64
        .decode(b64)
        .map_err(|e| DecodeError::Corrupt(format!("base64: {e}")))?;
    let decoder =
        zstd::stream::read::Decoder::new(packed.as_slice()).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let mut out = Vec::new();
    let cap = limits.max_decompressed_bytes as u64 + 1;
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Corrupt(format!("zstd: {e}")))?;
    if out.len() > limits.max_decompressed_bytes {
        return Err(DecodeError::OverLimit {
            limit: Limit::DecompressedBytes,
            max: limits.max_decompressed_bytes,
            // At least this much: decompression stopped at the limit.
            actual: out.len(),
        });
    }
    Ok(out)
}

fn command_error(e: &serde_json::Error, limits: &DecodeLimits) -> DecodeError {
    let text = e.to_string();
    match text.find(UNKNOWN_OP_MARKER) {
        Some(at) => {
            let rest = &text[at + UNKNOWN_OP_MARKER.len()..];
            let op = rest.split(" at line ").next().unwrap_or(rest);
            DecodeError::UnknownCommand(op.to_owned())
        }
        None if text.starts_with(TOO_MANY) => DecodeError::OverLimit {
            limit: Limit::Commands,
            max: limits.max_commands,
            actual: limits.max_commands + 1,
        },
        None => DecodeError::Malformed(text),
    }
}

const TOO_MANY: &str = "too many commands";

/// Reads the command array but stops at `max` elements, so a lying `"n"`
/// cannot make the decoder allocate without bound.
struct BoundedCommands {
    max: usize,
}

impl<'de> DeserializeSeed<'de> for BoundedCommands {
    type Value = Vec<VersionedCommand>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedCommands {
    type Value = Vec<VersionedCommand>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of commands")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(4096));
        while let Some(cmd) = seq.next_element::<VersionedCommand>()? {
            if out.len() == self.max {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            out.push(cmd);
        }
        Ok(out)
    }
}
