//! Decoding of the command list, straight from JSON text into commands.
//!
//! There is no intermediate tree: every key, value, field and member is
//! copied once, from the text into the `Vec<u8>` the command keeps, and
//! every limit of [`DecodeLimits`] is checked as the parser reaches the
//! thing it limits (a string's length before it is copied, an element
//! count before the element is stored), so a message over a limit costs no
//! more than the limit. The members of a command object may come in any
//! order: `f` and `m` items are read by their own shape (a blob, or a
//! two-element array) and matched against the op at the end.
//!
//! serde errors are strings; the typed [`DecodeError`] of a failure is kept
//! on the side, in [`Ctx`], and returned instead of the string.

use std::cell::{Cell, RefCell};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::blob::B64_TAG;
use crate::command::{Command, VersionedCommand};
use crate::error::{DecodeError, Limit, bounded};
use crate::limits::DecodeLimits;
use crate::version::Version;

/// Decoding state shared by the visitors of one command list.
pub(crate) struct Ctx<'l> {
    limits: &'l DecodeLimits,
    /// Elements decoded so far in the batch.
    elements: Cell<usize>,
    /// Position of the command being decoded.
    index: Cell<usize>,
    /// The first typed failure.
    failure: RefCell<Option<DecodeError>>,
}

impl<'l> Ctx<'l> {
    pub(crate) fn new(limits: &'l DecodeLimits) -> Self {
        Self {
            limits,
            elements: Cell::new(0),
            index: Cell::new(0),
            failure: RefCell::new(None),
        }
    }

    /// Keeps `error` (unless one is kept already) and returns a serde error
    /// with its text, which unwinds the parser.
    fn fail<E: de::Error>(&self, error: DecodeError) -> E {
        let text = error.to_string();
        self.failure.borrow_mut().get_or_insert(error);
        E::custom(text)
    }

    fn check<E: de::Error>(&self, limit: Limit, actual: usize) -> Result<(), E> {
        self.limits.check(limit, actual).map_err(|over| self.fail(over.into()))
    }

    /// The typed failure behind a parser error, or the error as malformed.
    pub(crate) fn into_error(self, error: &serde_json::Error) -> DecodeError {
        self.failure
            .into_inner()
            .unwrap_or_else(|| DecodeError::malformed(error))
    }
}

/// The command array: exactly `n` commands (the envelope's count, already
/// checked against the limit), so its vector is allocated once.
pub(crate) struct Commands<'c, 'l> {
    pub(crate) ctx: &'c Ctx<'l>,
    pub(crate) n: usize,
}

impl<'de> DeserializeSeed<'de> for Commands<'_, '_> {
    type Value = Vec<VersionedCommand>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Commands<'_, '_> {
    type Value = Vec<VersionedCommand>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of commands")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(self.n);
        while out.len() < self.n {
            self.ctx.index.set(out.len());
            match seq.next_element_seed(CommandSeed { ctx: self.ctx })? {
                Some(command) => out.push(command),
                None => {
                    return Err(self.ctx.fail(DecodeError::malformed(format_args!(
                        "\"n\" says {} commands, the list has {}",
                        self.n,
                        out.len()
                    ))));
                }
            }
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(self.ctx.fail(DecodeError::malformed(format_args!(
                "\"n\" says {} commands, the list has more",
                self.n
            ))));
        }
        Ok(out)
    }
}

/// The names of a command object's members.
enum Member {
    Op,
    K,
    V,
    F,
    M,
    At,
    Ver,
    Other(String),
}

struct MemberSeed;

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Member;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Member, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for MemberSeed {
    type Value = Member;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Member, E> {
        Ok(match v {
            "op" => Member::Op,
            "k" => Member::K,
            "v" => Member::V,
            "f" => Member::F,
            "m" => Member::M,
            "at" => Member::At,
            "ver" => Member::Ver,
            other => Member::Other(bounded(other)),
        })
    }
}

/// The command names of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Del,
    HSet,
    HDel,
    SAdd,
    SRem,
    ZAdd,
    ZRem,
    PExpireAt,
    Persist,
    HReplace,
    SReplace,
    ZReplace,
}

impl Op {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "set" => Self::Set,
            "del" => Self::Del,
            "hset" => Self::HSet,
            "hdel" => Self::HDel,
            "sadd" => Self::SAdd,
            "srem" => Self::SRem,
            "zadd" => Self::ZAdd,
            "zrem" => Self::ZRem,
            "pexpireat" => Self::PExpireAt,
            "persist" => Self::Persist,
            "hreplace" => Self::HReplace,
            "sreplace" => Self::SReplace,
            "zreplace" => Self::ZReplace,
            _ => return None,
        })
    }

    /// Which members the op takes besides `op`, `k` and `ver`: `v`, `f`
    /// (pairs or names), `m` (scored or names), `at` (required or allowed).
    fn shape(self) -> Shape {
        let (v, f, m, at) = match self {
            Self::Set => (true, None, None, Some(false)),
            Self::Del | Self::Persist => (false, None, None, None),
            Self::HSet => (false, Some(Kind::Pairs), None, None),
            Self::HReplace => (false, Some(Kind::Pairs), None, Some(false)),
            Self::HDel => (false, Some(Kind::Names), None, None),
            Self::SAdd | Self::SRem | Self::ZRem => (false, None, Some(Kind::Names), None),
            Self::SReplace => (false, None, Some(Kind::Names), Some(false)),
            Self::ZAdd => (false, None, Some(Kind::Scored), None),
            Self::ZReplace => (false, None, Some(Kind::Scored), Some(false)),
            Self::PExpireAt => (false, None, None, Some(true)),
        };
        Shape { v, f, m, at }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Del => "del",
            Self::HSet => "hset",
            Self::HDel => "hdel",
            Self::SAdd => "sadd",
            Self::SRem => "srem",
            Self::ZAdd => "zadd",
            Self::ZRem => "zrem",
            Self::PExpireAt => "pexpireat",
            Self::Persist => "persist",
            Self::HReplace => "hreplace",
            Self::SReplace => "sreplace",
            Self::ZReplace => "zreplace",
        }
    }
}

/// The members an op takes: `v` required or not, the kind of `f` and `m`
/// items (absent: the member is not allowed), `at` required (`true`),
/// optional (`false`) or not allowed.
struct Shape {
    v: bool,
    f: Option<Kind>,
    m: Option<Kind>,
    at: Option<bool>,
}

/// What the items of an `f` or `m` array are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Blobs: fields (`hdel`) or members.
    Names,
    /// `[field, value]` (`hset`, `hreplace`).
    Pairs,
    /// `[score, member]` (`zadd`, `zreplace`).
    Scored,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Self::Names => "blobs",
            Self::Pairs => "[field, value] pairs",
            Self::Scored => "[score, member] pairs",
        }
    }
}

struct OpSeed;

impl<'de> DeserializeSeed<'de> for OpSeed {
    type Value = Result<Op, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for OpSeed {
    type Value = Result<Op, String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Op::from_name(v).ok_or_else(|| bounded(v)))
    }
}

/// One command object.
struct CommandSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> DeserializeSeed<'de> for CommandSeed<'_, '_> {
    type Value = VersionedCommand;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<VersionedCommand, D::Error> {
        d.deserialize_map(self)
    }
}

/// Refuses a second occurrence of a member.
fn once<T, E: de::Error>(slot: &Option<T>, name: &str) -> Result<(), E> {
    match slot {
        Some(_) => Err(E::custom(format_args!("duplicate member \"{name}\""))),
        None => Ok(()),
    }
}

impl<'de> Visitor<'de> for CommandSeed<'_, '_> {
    type Value = VersionedCommand;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VersionedCommand, A::Error> {
        let ctx = self.ctx;
        let mut op: Option<Result<Op, String>> = None;
        let mut key = None;
        let mut value = None;
        let mut f: Option<Elements> = None;
        let mut m: Option<Elements> = None;
        let mut at: Option<u64> = None;
        let mut ver: Option<Version> = None;
        let mut unknown: Option<String> = None;
        while let Some(member) = map.next_key_seed(MemberSeed)? {
            match member {
                Member::Op => {
                    once::<_, A::Error>(&op, "op")?;
                    op = Some(map.next_value_seed(OpSeed)?);
                }
                Member::K => {
                    once::<_, A::Error>(&key, "k")?;
                    key = Some(map.next_value_seed(BlobSeed {
                        ctx,
                        limit: Limit::ElementBytes,
                    })?);
                }
                Member::V => {
                    once::<_, A::Error>(&value, "v")?;
                    value = Some(map.next_value_seed(BlobSeed {
                        ctx,
                        limit: Limit::ValueBytes,
                    })?);
                }
                Member::F => {
                    once::<_, A::Error>(&f, "f")?;
                    f = Some(map.next_value_seed(ElementsSeed { ctx, fields: true })?);
                }
                Member::M => {
                    once::<_, A::Error>(&m, "m")?;
                    m = Some(map.next_value_seed(ElementsSeed { ctx, fields: false })?);
                }
                Member::At => {
                    once::<_, A::Error>(&at, "at")?;
                    at = Some(map.next_value()?);
                }
                Member::Ver => {
                    once::<_, A::Error>(&ver, "ver")?;
                    let (millis, counter, rank) = map.next_value::<(u64, u32, u16)>()?;
                    let version = Version::new(millis, counter, rank);
                    if let Err(error) = version.check() {
                        return Err(ctx.fail(DecodeError::Invalid {
                            index: ctx.index.get(),
                            error,
                        }));
                    }
                    ver = Some(version);
                }
                Member::Other(name) => {
                    // Skipped without allocating; refused once the op is
                    // known, so an unknown op is reported as such whatever
                    // the order of the members.
                    map.next_value::<IgnoredAny>()?;
                    unknown.get_or_insert(name);
                }
            }
        }
        let op = match op {
            None => return Err(de::Error::missing_field("op")),
            Some(Err(name)) => return Err(ctx.fail(DecodeError::UnknownCommand(name))),
            Some(Ok(op)) => op,
        };
        let name = op.name();
        if let Some(member) = unknown {
            return Err(de::Error::custom(format_args!("{name}: unexpected member {member:?}")));
        }
        let missing = |member: &str| <A::Error as de::Error>::custom(format_args!("{name}: missing \"{member}\""));
        let key = key.ok_or_else(|| missing("k"))?;
        let version = ver.ok_or_else(|| missing("ver"))?;
        let shape = op.shape();
        let unexpected = |present: bool, member: &str| -> Result<(), A::Error> {
            if present {
                Err(de::Error::custom(format_args!("{name}: unexpected \"{member}\"")))
            } else {
                Ok(())
            }
        };
        unexpected(value.is_some() && !shape.v, "v")?;
        unexpected(f.is_some() && shape.f.is_none(), "f")?;
        unexpected(m.is_some() && shape.m.is_none(), "m")?;
        unexpected(at.is_some() && shape.at.is_none(), "at")?;
        if shape.at == Some(true) && at.is_none() {
            return Err(missing("at"));
        }
        let value = match (shape.v, value) {
            (true, None) => return Err(missing("v")),
            (_, value) => value.unwrap_or_default(),
        };
        let elements = match (shape.f, f, shape.m, m) {
            (Some(kind), Some(items), _, _) | (_, _, Some(kind), Some(items)) => {
                if !items.fits(kind) {
                    let member = if shape.f.is_some() { "f" } else { "m" };
                    return Err(de::Error::custom(format_args!(
                        "{name}: \"{member}\" must hold {}",
                        kind.describe()
                    )));
                }
                items
            }
            (Some(_), None, _, _) => return Err(missing("f")),
            (_, _, Some(_), None) => return Err(missing("m")),
            _ => Elements::Empty,
        };
        let command = match op {
            Op::Set => Command::Set {
                key,
                value,
                expire_at_ms: at,
            },
            Op::Del => Command::Del { key },
            Op::Persist => Command::Persist { key },
            Op::PExpireAt => Command::PExpireAt {
                key,
                at_ms: at.unwrap_or_default(),
            },
            Op::HSet => Command::HSet {
                key,
                fields: elements.into_pairs(),
            },
            Op::HReplace => Command::HReplace {
                key,
                fields: elements.into_pairs(),
                expire_at_ms: at,
            },
            Op::HDel => Command::HDel {
                key,
                fields: elements.into_names(),
            },
            Op::SAdd => Command::SAdd {
                key,
                members: elements.into_names(),
            },
            Op::SRem => Command::SRem {
                key,
                members: elements.into_names(),
            },
            Op::ZRem => Command::ZRem {
                key,
                members: elements.into_names(),
            },
            Op::SReplace => Command::SReplace {
                key,
                members: elements.into_names(),
                expire_at_ms: at,
            },
            Op::ZAdd => Command::ZAdd {
                key,
                members: elements.into_scored(),
            },
            Op::ZReplace => Command::ZReplace {
                key,
                members: elements.into_scored(),
                expire_at_ms: at,
            },
        };
        let command = VersionedCommand::new(version, command);
        if let Err(error) = command.validate() {
            return Err(ctx.fail(DecodeError::Invalid {
                index: ctx.index.get(),
                error,
            }));
        }
        Ok(command)
    }
}

/// The items of an `f` or `m` array, in their final form.
enum Elements {
    Empty,
    Names(Vec<Vec<u8>>),
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
    Scored(Vec<(f64, Vec<u8>)>),
}

impl Elements {
    fn fits(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Self::Empty, _)
                | (Self::Names(_), Kind::Names)
                | (Self::Pairs(_), Kind::Pairs)
                | (Self::Scored(_), Kind::Scored)
        )
    }

    fn into_names(self) -> Vec<Vec<u8>> {
        match self {
            Self::Names(items) => items,
            _ => Vec::new(),
        }
    }

    fn into_pairs(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        match self {
            Self::Pairs(items) => items,
            _ => Vec::new(),
        }
    }

    fn into_scored(self) -> Vec<(f64, Vec<u8>)> {
        match self {
            Self::Scored(items) => items,
            _ => Vec::new(),
        }
    }

    /// Appends an item; `false` when it is not of the kind of those before.
    fn push(&mut self, item: Item) -> bool {
        if let Self::Empty = self {
            *self = match item {
                Item::Name(name) => Self::Names(vec![name]),
                Item::Pair(field, value) => Self::Pairs(vec![(field, value)]),
                Item::Scored(score, member) => Self::Scored(vec![(score, member)]),
            };
            return true;
        }
        match (self, item) {
            (Self::Names(items), Item::Name(name)) => {
                items.push(name);
                true
            }
            (Self::Pairs(items), Item::Pair(field, value)) => {
                items.push((field, value));
                true
            }
            (Self::Scored(items), Item::Scored(score, member)) => {
                items.push((score, member));
                true
            }
            _ => false,
        }
    }
}

/// One item of an `f` or `m` array.
enum Item {
    Name(Vec<u8>),
    Pair(Vec<u8>, Vec<u8>),
    Scored(f64, Vec<u8>),
}

/// An `f` (`fields`) or `m` array.
struct ElementsSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    fields: bool,
}

impl<'de> DeserializeSeed<'de> for ElementsSeed<'_, '_> {
    type Value = Elements;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Elements, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ElementsSeed<'_, '_> {
    type Value = Elements;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of fields or members")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Elements, A::Error> {
        let ctx = self.ctx;
        let mut items = Elements::Empty;
        let mut count = 0usize;
        while let Some(item) = seq.next_element_seed(ItemSeed {
            ctx,
            fields: self.fields,
        })? {
            count += 1;
            ctx.check::<A::Error>(Limit::ElementsPerCommand, count)?;
            let total = ctx.elements.get() + 1;
            ctx.check::<A::Error>(Limit::ElementsPerBatch, total)?;
            ctx.elements.set(total);
            if !items.push(item) {
                return Err(de::Error::custom("an array mixes blobs and pairs"));
            }
        }
        Ok(items)
    }
}

/// One item: a blob, or a two-element array (`[field, value]` in `f`,
/// `[score, member]` in `m`).
struct ItemSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    fields: bool,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_> {
    type Value = Item;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, '_> {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a blob or a two-element array")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
        let blob = BlobSeed {
            ctx: self.ctx,
            limit: Limit::ElementBytes,
        };
        blob.visit_str(v).map(Item::Name)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        let blob = BlobSeed {
            ctx: self.ctx,
            limit: Limit::ElementBytes,
        };
        blob.visit_map(map).map(Item::Name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        let ctx = self.ctx;
        let short = |len: usize| <A::Error as de::Error>::invalid_length(len, &"a two-element array");
        let item = if self.fields {
            let field = seq
                .next_element_seed(BlobSeed {
                    ctx,
                    limit: Limit::ElementBytes,
                })?
                .ok_or_else(|| short(0))?;
            let value = seq
                .next_element_seed(BlobSeed {
                    ctx,
                    limit: Limit::ValueBytes,
                })?
                .ok_or_else(|| short(1))?;
            Item::Pair(field, value)
        } else {
            let score: f64 = seq.next_element()?.ok_or_else(|| short(0))?;
            let member = seq
                .next_element_seed(BlobSeed {
                    ctx,
                    limit: Limit::ElementBytes,
                })?
                .ok_or_else(|| short(1))?;
            Item::Scored(score, member)
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(short(3));
        }
        Ok(item)
    }
}

/// A blob: a JSON string (its UTF-8 bytes) or `{"b64": "..."}` (any bytes),
/// refused when longer than `limit`.
pub(crate) struct BlobSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    limit: Limit,
}

impl<'de> DeserializeSeed<'de> for BlobSeed<'_, '_> {
    type Value = Vec<u8>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BlobSeed<'_, '_> {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an object {\"b64\": string}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        self.ctx.check::<E>(self.limit, v.len())?;
        Ok(v.as_bytes().to_vec())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u8>, A::Error> {
        let Some(tag) = map.next_key_seed(MemberSeed)? else {
            return Err(de::Error::custom("empty blob object"));
        };
        if !matches!(&tag, Member::Other(name) if name == B64_TAG) {
            return Err(de::Error::custom("a blob object has the single member \"b64\""));
        }
        let bytes = map.next_value_seed(Base64Seed {
            ctx: self.ctx,
            limit: self.limit,
        })?;
        if map.next_key_seed(MemberSeed)?.is_some() {
            return Err(de::Error::custom("a blob object has the single member \"b64\""));
        }
        Ok(bytes)
    }
}

/// The base64 text of a `{"b64": ...}` blob, decoded from the parser's
/// string without copying it first.
struct Base64Seed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    limit: Limit,
}

impl<'de> DeserializeSeed<'de> for Base64Seed<'_, '_> {
    type Value = Vec<u8>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Base64Seed<'_, '_> {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        // Padded base64: 4 characters for every 3 bytes or part of them.
        self.ctx.check::<E>(self.limit, v.len() / 4 * 3)?;
        BASE64
            .decode(v)
            .map_err(|e| E::custom(format_args!("bad base64 in blob: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(text: &str) -> Result<Vec<u8>, DecodeError> {
        let limits = DecodeLimits::default();
        let ctx = Ctx::new(&limits);
        let mut de = serde_json::Deserializer::from_str(text);
        BlobSeed {
            ctx: &ctx,
            limit: Limit::ValueBytes,
        }
        .deserialize(&mut de)
        .and_then(|b| de.end().map(|()| b))
        .map_err(|e| ctx.into_error(&e))
    }

    #[test]
    fn both_blob_forms_read_back() {
        assert_eq!(blob("\"h\\u00e9\"").unwrap(), "hé".as_bytes());
        assert_eq!(blob("{\"b64\":\"/wA=\"}").unwrap(), vec![0xff, 0x00]);
        assert_eq!(blob("\"\"").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn malformed_blobs_are_errors() {
        for bad in [
            "{}",
            "{\"x\":\"a\"}",
            "{\"b64\":\"!!\"}",
            "{\"b64\":\"AA==\",\"y\":1}",
            "{\"b64\":1}",
            "3",
            "null",
            "[\"a\"]",
        ] {
            assert!(matches!(blob(bad), Err(DecodeError::Malformed(_))), "{bad}");
        }
    }
}
