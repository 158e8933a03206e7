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

use std::borrow::Cow;
use std::io::Read as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{DeserializeSeed, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::batch::{Batch, BatchHeader, FORMAT_VERSION, Mode};
use crate::command::VersionedCommand;
use crate::de::{Commands, Ctx};
use crate::error::{DecodeError, EncodeError, Limit};
use crate::limits::DecodeLimits;
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
        command.validate()?;
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

/// The `regis` member alone, read without building anything for the rest.
#[derive(Deserialize)]
struct Probe {
    regis: Option<FormatVersion>,
}

/// A format version: a whole, non-negative JSON number, refused otherwise
/// without reading (or allocating for) whatever it is instead.
struct FormatVersion(u64);

impl<'de> Deserialize<'de> for FormatVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Whole;
        impl Visitor<'_> for Whole {
            type Value = FormatVersion;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"regis\" as a whole number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FormatVersion, E> {
                Ok(FormatVersion(v))
            }
        }
        d.deserialize_u64(Whole)
    }
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
    #[serde(borrow)]
    mode: Cow<'a, str>,
    #[serde(borrow)]
    enc: Cow<'a, str>,
    n: usize,
    #[serde(borrow)]
    cmds: &'a RawValue,
    #[serde(default, borrow)]
    sig: Option<Signature<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Signature<'a> {
    #[serde(borrow)]
    kid: Cow<'a, str>,
    #[serde(borrow)]
    mac: Cow<'a, str>,
}

/// Reads the format version of a message without decoding the rest.
pub fn peek_format_version(text: &str) -> Result<u64, DecodeError> {
    let probe: Probe = serde_json::from_str(text).map_err(DecodeError::malformed)?;
    match probe.regis {
        Some(FormatVersion(version)) => Ok(version),
        None => Err(DecodeError::Malformed("no \"regis\" format version".into())),
    }
}

/// Decodes and verifies a message. `keys` empty means signatures are not
/// required (a signature that is present is then not checked either).
///
/// Every limit of `limits` is checked before what it limits is allocated;
/// the heap used stays under [`DecodeLimits::peak_bytes`]. The envelope's
/// members may come in any order. A batch that decodes may still be refused
/// by the applier's checks ([`crate::check_reserved_keys`],
/// [`crate::check_clock_skew`], [`crate::check_horizon`]).
pub fn decode(text: &str, limits: &DecodeLimits, keys: &Keyring) -> Result<Batch, DecodeError> {
    limits.check(Limit::MessageBytes, text.len())?;
    let version = peek_format_version(text)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let env: Envelope<'_> = serde_json::from_str(text).map_err(DecodeError::malformed)?;
    let mode = env.mode.parse::<Mode>().map_err(DecodeError::malformed)?;
    limits.check(Limit::Commands, env.n)?;
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
            &header.tenant,
        )?;
    }
    let json: Cow<'_, [u8]> = match env.enc.as_ref() {
        "json" => {
            limits.check(Limit::DecompressedBytes, raw_payload.len())?;
            Cow::Borrowed(raw_payload.as_bytes())
        }
        "zstd" => Cow::Owned(decompress(raw_payload, limits)?),
        other => return Err(DecodeError::UnknownEncoding(crate::error::bounded(other))),
    };
    let ctx = Ctx::new(limits);
    let mut de = serde_json::Deserializer::from_slice(&json);
    let commands = Commands { ctx: &ctx, n: env.n }
        .deserialize(&mut de)
        .and_then(|c| de.end().map(|()| c))
        .map_err(|e| ctx.into_error(&e))?;
    Ok(Batch { header, commands })
}

/// Decompresses the base64 zstd payload, refusing more than the limit.
///
/// When the payload is one frame that states its size (every one-shot
/// compressor writes it), a size over the limit is refused before anything
/// is allocated, and the output is allocated once and decompressed into in
/// one pass (no window buffer). Otherwise (several frames, or a streamed
/// frame) the stream is read with zstd's window capped to the limit and
/// stops one byte past it.
fn decompress(raw_payload: &str, limits: &DecodeLimits) -> Result<Vec<u8>, DecodeError> {
    let b64: &str = serde_json::from_str(raw_payload)
        .map_err(|_| DecodeError::Malformed("compressed \"cmds\" must be a base64 string without escapes".into()))?;
    let packed = BASE64
        .decode(b64)
        .map_err(|e| DecodeError::Corrupt(format!("base64: {e}")))?;
    let max = limits.max_decompressed_bytes;
    let single_frame = zstd::zstd_safe::find_frame_compressed_size(&packed).is_ok_and(|len| len == packed.len());
    match zstd::zstd_safe::get_frame_content_size(&packed) {
        Ok(Some(size)) if single_frame => {
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            limits.check(Limit::DecompressedBytes, size)?;
            let mut out = Vec::with_capacity(size);
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(&packed[..], &mut out))
                .map_err(|e| DecodeError::Corrupt(format!("zstd: {e}")))?;
            if out.len() != size {
                return Err(DecodeError::Corrupt(format!(
                    "zstd: the frames state {size} bytes, they hold {}",
                    out.len()
                )));
            }
            Ok(out)
        }
        Ok(_) => decompress_stream(&packed, max),
        Err(_) => Err(DecodeError::Corrupt("zstd: not a valid frame".into())),
    }
}

/// The smallest window cap of streamed frames: 8 MiB, what zstd's levels
/// 1 to 19 use at most.
const STREAM_WINDOW_LOG_MIN: u32 = 23;

/// Streaming decompression of frames that do not state their size.
fn decompress_stream(packed: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |e: std::io::Error| DecodeError::Corrupt(format!("zstd: {e}"));
    let mut decoder = zstd::stream::read::Decoder::new(packed).map_err(corrupt)?;
    // zstd allocates its window from the frame header; a hostile header may
    // ask for up to 2^31 bytes. The window is capped at the output limit, or
    // at 8 MiB (2^23, the largest window of zstd's levels 1 to 19) when the
    // limit is smaller, so every standard level decodes; a frame asking for
    // more is corrupt.
    let limit_log = usize::BITS - max.max(1).next_power_of_two().leading_zeros() - 1;
    let window_log = limit_log.clamp(STREAM_WINDOW_LOG_MIN, 31);
    decoder.window_log_max(window_log).map_err(corrupt)?;
    // Read up to one byte past the limit, growing the buffer by doubling
    // but never beyond that.
    let cap = max.saturating_add(1);
    let mut out = Vec::new();
    loop {
        if out.len() == out.capacity() {
            let grow = out.capacity().max(64 * 1024).min(cap - out.len());
            if grow == 0 {
                break;
            }
            out.reserve_exact(grow);
        }
        let filled = out.len();
        out.resize(out.capacity(), 0);
        let read = decoder.read(&mut out[filled..]).map_err(corrupt)?;
        out.truncate(filled + read);
        if read == 0 {
            break;
        }
    }
    if out.len() > max {
        return Err(DecodeError::OverLimit {
            limit: Limit::DecompressedBytes,
            max,
            // At least this much: decompression stopped one byte past the limit.
            actual: out.len(),
        });
    }
    Ok(out)
}
