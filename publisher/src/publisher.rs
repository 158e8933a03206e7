//! The `Publisher` handle.
//!
//! `publish` does the per-command work in the caller's task, under one
//! briefly held lock: stamp the version, serialize into the tenant's open
//! batch, hand back a receipt. Everything slower (compression, signing,
//! SNS calls, retries) happens in a background sender task, and a linger
//! task closes batches whose time is up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use regis_wire::{
    Command, CommandList, EncodeOptions, HybridClock, Limit, MAX_VERSION_MILLIS, Version, VersionedCommand,
    is_reserved_key,
};
use tokio::sync::{Notify, Semaphore, TryAcquireError, mpsc};
use tokio::task::JoinHandle;

use crate::batch::{ClosedBatch, OpenBatch, Planner, Sealer, TenantInfo};
use crate::config::{Overflow, PublisherConfig};
use crate::error::{ConfigError, FlushError, PublishError};
use crate::receipt::{BatchSlot, Receipt, Registry, lock};
use crate::sender::{self, SendContext};
use crate::sns::SnsClient;
use crate::stats::{Counters, Stats, add};
use regis_aws::clock::{Clock, SystemClock};

/// Upper bound of any version's serialized size, for reserving buffer bytes
/// before the real version is known.
const WIDEST_VERSION: Version = Version::new(MAX_VERSION_MILLIS, u32::MAX, u16::MAX);

/// Unknown tenants remembered (their attributes and sizes) at most.
const UNKNOWN_TENANT_CACHE: usize = 1024;

/// Publishes idempotent Redis commands to SNS in batches.
///
/// Cheap to clone; every clone feeds the same batches. Dropping the last
/// clone closes the open batches and lets the background task deliver them;
/// call [`Publisher::shutdown`] to wait for that.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic_arn", &self.inner.shared.config.topic_arn)
            .finish_non_exhaustive()
    }
}

/// Sets up a [`Publisher`]: the SNS client, and the clock and random seed
/// (injectable so tests are deterministic).
pub struct PublisherBuilder {
    config: PublisherConfig,
    sns: Arc<dyn SnsClient>,
    clock: Arc<dyn Clock>,
    seed: Option<u64>,
}

impl PublisherBuilder {
    /// The wall clock used for versions, publish times and relative expiry.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Seeds batch ids and retry jitter (random by default). For tests:
    /// publishers started with the same seed produce the same batch ids.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the configuration and starts the background tasks. Must be
    /// called within a tokio runtime.
    pub fn start(self) -> Result<Publisher, ConfigError> {
        let Self {
            config,
            sns,
            clock,
            seed,
        } = self;
        config.validate()?;
        let seed = seed.unwrap_or_else(rand::random);
        let key = config.signing_key.as_ref();
        let tenants = config
            .tenants
            .names()
            .map(|name| {
                (
                    name.to_owned(),
                    Arc::new(TenantInfo::new(
                        name,
                        config.tenants.get(name),
                        &config.origin_region,
                        key,
                    )),
                )
            })
            .collect();
        let planner = Arc::new(Planner::new(
            config.max_message_bytes,
            config.compression,
            config.max_buffered_bytes,
            &config.limits,
        ));
        let counters = Arc::new(Counters::default());
        let options = EncodeOptions {
            compression: config.compression,
            signing_key: config.signing_key.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let sealer = Sealer {
            origin: config.origin_region.clone(),
            mode: config.mode,
            options: options.clone(),
            max_message_bytes: config.max_message_bytes,
            clock: Arc::clone(&clock),
            rng: Sealer::new_rng(seed),
            planner: Arc::clone(&planner),
            counters: Arc::clone(&counters),
        };
        let ctx = Arc::new(SendContext {
            sns,
            topic_arn: config.topic_arn.clone(),
            retry: config.retry,
            max_message_bytes: config.max_message_bytes,
            counters: Arc::clone(&counters),
            jitter: Mutex::new(Sealer::new_rng(seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15)),
            requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        });
        let shared = Arc::new(Shared {
            tenants,
            unknown_tenants: RwLock::default(),
            clock,
            planner,
            options,
            semaphore: Arc::new(Semaphore::new(config.max_buffered_bytes)),
            counters,
            registry: Arc::default(),
            state: Mutex::new(State {
                hlc: HybridClock::new(config.origin_rank)
                    .with_max_lead_ms(u64::try_from(config.max_clock_skew.as_millis()).unwrap_or(u64::MAX)),
                open: HashMap::new(),
                next_seq: 0,
                tx: Some(tx),
            }),
            linger_wake: Notify::new(),
            closed: AtomicBool::new(false),
            sender_task: Mutex::new(None),
            config,
        });
        *lock(&shared.sender_task) = Some(tokio::spawn(sender::run(rx, sealer, ctx)));
        tokio::spawn(linger(Arc::clone(&shared)));
        Ok(Publisher {
            inner: Arc::new(Inner { shared }),
        })
    }
}

struct Inner {
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

struct Shared {
    config: PublisherConfig,
    tenants: HashMap<String, Arc<TenantInfo>>,
    unknown_tenants: RwLock<HashMap<String, Arc<TenantInfo>>>,
    clock: Arc<dyn Clock>,
    planner: Arc<Planner>,
    options: EncodeOptions,
    /// One permit per buffered byte.
    semaphore: Arc<Semaphore>,
    counters: Arc<Counters>,
    registry: Arc<Registry>,
    state: Mutex<State>,
    linger_wake: Notify,
    closed: AtomicBool,
    sender_task: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    hlc: HybridClock,
    /// One open batch per tenant.
    open: HashMap<String, OpenBatch>,
    next_seq: u64,
    /// To the sender task; `None` once closed.
    tx: Option<mpsc::UnboundedSender<ClosedBatch>>,
}

impl Shared {
    fn tenant(&self, name: &str) -> Result<Arc<TenantInfo>, PublishError> {
        if let Some(key) = &self.config.signing_key {
            if !key.tenants().allows(name) {
                return Err(PublishError::KeyNotForTenant {
                    key: key.id.clone(),
                    tenant: name.to_owned(),
                });
            }
        }
        if let Some(info) = self.tenants.get(name) {
            return Ok(Arc::clone(info));
        }
        if !self.config.allow_unknown_tenants {
            return Err(PublishError::UnknownTenant(name.to_owned()));
        }
        if name.is_empty() {
            return Err(PublishError::NoTenant);
        }
        if let Some(info) = self
            .unknown_tenants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
        {
            return Ok(Arc::clone(info));
        }
        let info = Arc::new(TenantInfo::new(
            name,
            None,
            &self.config.origin_region,
            self.config.signing_key.as_ref(),
        ));
        let mut cache = self
            .unknown_tenants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() < UNKNOWN_TENANT_CACHE {
            cache.insert(name.to_owned(), Arc::clone(&info));
        }
        Ok(info)
    }

    /// Hands a batch to the sender (or, once closed, reports it abandoned
    /// by dropping it).
    fn close_batch(&self, tx: Option<&mpsc::UnboundedSender<ClosedBatch>>, batch: OpenBatch) {
        add(&self.counters.batches, 1);
        let closed = batch.close(&self.semaphore);
        if let Some(tx) = tx {
            // A send error drops the batch: its tracker reports it abandoned.
            let _ = tx.send(closed);
        }
    }

    fn close_all_open(&self, st: &mut State) {
        let State { open, tx, .. } = st;
        for (_, batch) in open.drain() {
            self.close_batch(tx.as_ref(), batch);
        }
    }

    /// Stops accepting, closes every open batch and lets the sender finish.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.semaphore.close();
        let mut st = lock(&self.state);
        self.close_all_open(&mut st);
        st.tx = None;
        drop(st);
        self.linger_wake.notify_one();
    }

    /// Puts a command (whose buffer bytes are reserved) into its tenant's
    /// open batch.
    fn accept(
        &self,
        tenant: &Arc<TenantInfo>,
        mut command: VersionedCommand,
        reserved: usize,
    ) -> Result<Receipt, PublishError> {
        let mut st = lock(&self.state);
        if st.tx.is_none() {
            drop(st);
            self.semaphore.add_permits(reserved);
            return Err(PublishError::Closed);
        }
        command.version = match st.hlc.try_tick(self.clock.now_ms()) {
            Ok(version) => version,
            Err(e) => {
                drop(st);
                self.semaphore.add_permits(reserved);
                add(&self.counters.clock_refusals, 1);
                return Err(e.into());
            }
        };
        let name: &str = &tenant.name;
        let elements = command.command.elements();
        if st
            .open
            .get(name)
            .is_some_and(|b| !self.planner.fits(b, reserved, elements))
        {
            let full = st.open.remove(name).expect("checked");
            self.close_batch(st.tx.as_ref(), full);
        }
        let mut opened = false;
        if !st.open.contains_key(name) {
            let seq = st.next_seq;
            st.next_seq += 1;
            let slot = BatchSlot::open(seq, Arc::clone(&tenant.name), &self.registry);
            st.open
                .insert(name.to_owned(), OpenBatch::new(Arc::clone(tenant), slot));
            opened = true;
        }
        let batch = st.open.get_mut(name).expect("just ensured");
        let added = match batch.list.push(&command) {
            Ok(added) => added,
            Err(e) => {
                drop(st);
                self.semaphore.add_permits(reserved);
                return Err(e.into());
            }
        };
        batch.commands.push(command);
        batch.permits += added;
        batch.elements += elements;
        let receipt = Receipt::new(Arc::clone(&batch.slot), batch.commands.len() - 1);
        if self.planner.is_full(batch) {
            let full = st.open.remove(name).expect("present");
            self.close_batch(st.tx.as_ref(), full);
        }
        drop(st);
        // The reservation assumed the widest version.
        self.semaphore.add_permits(reserved.saturating_sub(added));
        add(&self.counters.commands, 1);
        if opened {
            self.linger_wake.notify_one();
        }
        Ok(receipt)
    }
}

/// Closes batches whose linger time has passed.
async fn linger(shared: Arc<Shared>) {
    let linger = shared.config.linger;
    loop {
        let next = {
            let mut st = lock(&shared.state);
            if st.tx.is_none() {
                return;
            }
            let now = tokio::time::Instant::now();
            let expired: Vec<String> = st
                .open
                .iter()
                .filter(|(_, b)| b.opened_at + linger <= now)
                .map(|(name, _)| name.clone())
                .collect();
            for name in expired {
                if let Some(batch) = st.open.remove(&name) {
                    shared.close_batch(st.tx.as_ref(), batch);
                }
            }
            st.open.values().map(|b| b.opened_at + linger).min()
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.linger_wake.notified() => {}
                }
            }
            None => shared.linger_wake.notified().await,
        }
    }
}

impl Publisher {
    /// A builder with the system clock and a random seed.
    pub fn builder(config: PublisherConfig, sns: impl SnsClient) -> PublisherBuilder {
        PublisherBuilder {
            config,
            sns: Arc::new(sns),
            clock: Arc::new(SystemClock),
            seed: None,
        }
    }

    /// Starts a publisher with the system clock (within a tokio runtime).
    pub fn new(config: PublisherConfig, sns: impl SnsClient) -> Result<Self, ConfigError> {
        Self::builder(config, sns).start()
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Publishes a command for the default tenant. Returns once the command
    /// is in a batch (waiting first if the send buffer is full and the
    /// configuration says [`Overflow::Wait`]); await the receipt to know
    /// that SNS has it.
    pub async fn publish(&self, command: Command) -> Result<Receipt, PublishError> {
        let tenant = self
            .shared()
            .config
            .default_tenant
            .as_deref()
            .ok_or(PublishError::NoTenant)?;
        self.publish_for(tenant, command).await
    }

    /// Publishes a command for a tenant.
    pub async fn publish_for(&self, tenant: &str, command: Command) -> Result<Receipt, PublishError> {
        let shared = self.shared();
        if shared.closed.load(Ordering::Acquire) {
            return Err(PublishError::Closed);
        }
        let info = shared.tenant(tenant)?;
        info.check_key(command.key())?;
        if is_reserved_key(command.key()) {
            return Err(PublishError::ReservedKey {
                key: command.key().to_vec(),
            });
        }
        command.validate()?;
        let limits = &shared.config.limits;
        limits.check_command(&command)?;
        let command = VersionedCommand::new(WIDEST_VERSION, command);
        let bytes = CommandList::encoded_len(&command);
        // The list's brackets come on top of the command (and its comma).
        limits.check(Limit::DecompressedBytes, bytes + 1)?;
        let max = shared.config.max_message_bytes;
        if bytes + info.fixed_bytes > max
            && !shared
                .planner
                .fits_alone(&info, &command, &shared.options, &shared.config.origin_region)?
        {
            return Err(PublishError::TooLarge { bytes, max });
        }
        let cap = shared.config.max_buffered_bytes;
        if bytes > cap {
            return Err(PublishError::LargerThanBuffer { bytes, max: cap });
        }
        // `bytes` is at most 1 MiB-ish or the buffer cap: checked above
        // against both, and the message limit is at most 1 MiB... unless
        // compression let a larger command through, hence the conversion.
        let permits = u32::try_from(bytes).map_err(|_| PublishError::LargerThanBuffer { bytes, max: cap })?;
        let permit = match shared.config.overflow {
            Overflow::Wait => shared
                .semaphore
                .acquire_many(permits)
                .await
                .map_err(|_| PublishError::Closed)?,
            Overflow::FailFast => shared.semaphore.try_acquire_many(permits).map_err(|e| match e {
                TryAcquireError::Closed => PublishError::Closed,
                TryAcquireError::NoPermits => PublishError::BufferFull { max: cap },
            })?,
        };
        permit.forget();
        shared.accept(&info, command, bytes)
    }

    /// Parses a Redis-style argument list (`["SET", "k", "v", "EX", "10"]`)
    /// and publishes it for the default tenant. Relative expiries become
    /// absolute now; commands that are not idempotent (INCR, APPEND, LPUSH,
    /// ...) are refused with the reason and what to use instead.
    pub async fn publish_raw(&self, args: &[Vec<u8>]) -> Result<Receipt, PublishError> {
        let command = regis_wire::parse_command(args, self.shared().clock.now_ms())?;
        self.publish(command).await
    }

    /// [`Publisher::publish_raw`] for a tenant.
    pub async fn publish_raw_for(&self, tenant: &str, args: &[Vec<u8>]) -> Result<Receipt, PublishError> {
        let command = regis_wire::parse_command(args, self.shared().clock.now_ms())?;
        self.publish_for(tenant, command).await
    }

    /// Publishes one line of `redis-cli`-style text (`SET "a key" v PX 500`)
    /// for the default tenant; see [`Publisher::publish_raw`].
    pub async fn publish_line(&self, line: &str) -> Result<Receipt, PublishError> {
        self.publish_raw(&regis_wire::split_line(line)?).await
    }

    /// [`Publisher::publish_line`] for a tenant.
    pub async fn publish_line_for(&self, tenant: &str, line: &str) -> Result<Receipt, PublishError> {
        self.publish_raw_for(tenant, &regis_wire::split_line(line)?).await
    }

    /// The absolute expiry (epoch ms) `ttl` from now on the publisher's clock.
    pub fn expiry_in(&self, ttl: Duration) -> u64 {
        self.shared().clock.now_ms().saturating_add(ttl.as_millis() as u64)
    }

    /// `SET key value` expiring `ttl` from now (the `EX`/`PX` of Redis, made
    /// absolute so a delayed batch does not extend the key's life).
    pub fn set_ex(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, ttl: Duration) -> Command {
        Command::Set {
            key: key.into(),
            value: value.into(),
            expire_at_ms: Some(self.expiry_in(ttl)),
        }
    }

    /// `PEXPIREAT key` at `ttl` from now (the `EXPIRE`/`PEXPIRE` of Redis).
    pub fn expire(&self, key: impl Into<Vec<u8>>, ttl: Duration) -> Command {
        Command::PExpireAt {
            key: key.into(),
            at_ms: self.expiry_in(ttl),
        }
    }

    /// Closes every open batch now and waits until SNS has acknowledged (or
    /// the publisher has given up on) everything published before the call.
    /// Reports the failures among those batches; failures of batches that
    /// were already resolved are in their receipts and in [`Stats`].
    pub async fn flush(&self) -> Result<(), FlushError> {
        let shared = self.shared();
        let target = {
            let mut st = lock(&shared.state);
            shared.close_all_open(&mut st);
            st.next_seq
        };
        let slots: Vec<_> = lock(&shared.registry)
            .range(..target)
            .map(|(_, s)| Arc::clone(s))
            .collect();
        let (mut failed_commands, mut failed_messages, mut first) = (0, 0, None);
        for slot in slots {
            let outcome = slot.wait().await;
            failed_commands += outcome.failed_commands();
            for error in outcome.failures() {
                failed_messages += 1;
                first.get_or_insert_with(|| error.clone());
            }
        }
        match first {
            None => Ok(()),
            Some(first) => Err(FlushError {
                failed_commands,
                failed_messages,
                first,
            }),
        }
    }

    /// Stops accepting commands (publishers waiting for buffer space get
    /// [`PublishError::Closed`]), delivers everything buffered, and stops the
    /// background tasks. Every clone of the publisher is shut down.
    pub async fn shutdown(&self) -> Result<(), FlushError> {
        let shared = self.shared();
        shared.closed.store(true, Ordering::Release);
        shared.semaphore.close();
        let result = self.flush().await;
        shared.close();
        let task = lock(&shared.sender_task).take();
        if let Some(task) = task {
            // A panic in the sender has already resolved its receipts as
            // abandoned; there is nothing more to report here.
            let _ = task.await;
        }
        result
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let buffered = shared
            .config
            .max_buffered_bytes
            .saturating_sub(shared.semaphore.available_permits());
        shared.counters.snapshot(buffered as u64)
    }

    /// The configuration in use.
    pub fn config(&self) -> &PublisherConfig {
        &self.shared().config
    }
}

#[cfg(test)]
mod tests;
