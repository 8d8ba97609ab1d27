//! Duties that run on one instance only among those sharing a database: alert evaluation,
//! health sampling and store maintenance. Each is a [`Role`] leased in the store
//! ([`LeaseStore`]) for [`LEASE_TTL`] and renewed every [`RENEW_EVERY`]; the other
//! instances stand by and take a role over once its lease has expired (the holder died) or
//! been given up (the holder shut down). Every instance serves every read and write, and
//! every instance's dispatcher sends the outbox (each message is claimed by the one
//! sending it, in the store).
//!
//! An instance counts a role as held only until the expiry of its last successful renewal,
//! by its own clock: one that cannot reach the database stops evaluating by itself before
//! another can take the lease. The alert engine's writes are also fenced in the store by
//! the lease ([`voicemon_store::AlertingTick::lease`]), so an instance that lost the role
//! in the middle of an evaluation cannot queue a notification the new holder queues too.

use crate::telemetry::Telemetry;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use voicemon_core::clock::Clock;
use voicemon_store::{LeaseClaim, LeaseStore};

/// How long a lease runs without renewal: the longest a dead holder's duties wait.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the holder renews (and a standby instance tries to take) each lease. A
/// takeover comes at most `LEASE_TTL + RENEW_EVERY` after the holder's last renewal.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A duty that runs on one instance at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The alert engine: rule evaluation, the notification log, queuing messages.
    Alerting,
    /// The per-minute health samples.
    HealthSampling,
    /// Store housekeeping: partitions ahead, retention, journals of dead instances.
    Maintenance,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Alerting, Role::HealthSampling, Role::Maintenance];

    /// The role's name in the `leases` table and in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Alerting => "alerting",
            Role::HealthSampling => "health_sampling",
            Role::Maintenance => "maintenance",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// This instance's name and the roles it holds; cheap to clone.
#[derive(Debug, Clone)]
pub struct Roles {
    instance: Arc<str>,
    /// Per role: until when (unix ms, this instance's clock) the last renewal holds it.
    held_until_ms: Arc<[AtomicI64; 3]>,
    clock: Arc<dyn Clock>,
}

impl Roles {
    /// Takes the roles that are free, then keeps renewing and trying them every
    /// [`RENEW_EVERY`] until `shutdown`, when it gives up those it holds; the task ends
    /// once they are given up.
    pub async fn start(
        store: Arc<dyn LeaseStore>,
        clock: Arc<dyn Clock>,
        telemetry: Telemetry,
        shutdown: watch::Receiver<bool>,
    ) -> (Roles, tokio::task::JoinHandle<()>) {
        let roles = Roles {
            instance: Arc::from(instance_name()),
            held_until_ms: Arc::new([AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)]),
            clock,
        };
        roles.renew(store.as_ref(), &telemetry).await;
        let task = tokio::spawn(roles.clone().keep_renewing(store, telemetry, shutdown));
        (roles, task)
    }

    /// This instance's name, as the `leases` table and `/metrics` show it.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether this instance runs `role` now.
    pub fn holds(&self, role: Role) -> bool {
        self.clock.now_ms() < self.held_until_ms[role.index()].load(Ordering::SeqCst)
    }

    /// The lease a write of `role`'s is fenced by.
    pub fn claim(&self, role: Role) -> LeaseClaim {
        LeaseClaim { role: role.as_str().to_owned(), holder: self.instance.to_string() }
    }

    async fn keep_renewing(
        self,
        store: Arc<dyn LeaseStore>,
        telemetry: Telemetry,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.renew(store.as_ref(), &telemetry).await,
                _ = shutdown.changed() => break,
            }
        }
        self.give_up(store.as_ref(), &telemetry).await;
    }

    /// Renews the roles held and tries the others.
    async fn renew(&self, store: &dyn LeaseStore, telemetry: &Telemetry) {
        for role in Role::ALL {
            let was_held = self.holds(role);
            let now_ms = self.clock.now_ms();
            let ttl_ms = LEASE_TTL.as_millis() as i64;
            match store.acquire_lease(role.as_str(), &self.instance, now_ms, ttl_ms).await {
                Ok(true) => self.held_until_ms[role.index()].store(now_ms + ttl_ms, Ordering::SeqCst),
                Ok(false) => self.held_until_ms[role.index()].store(0, Ordering::SeqCst),
                // Held until the last renewal's expiry, then let go without a word from the store.
                Err(err) => {
                    tracing::warn!(role = role.as_str(), error = %err, "cannot renew or take a lease")
                }
            }
            let held = self.holds(role);
            if held != was_held {
                let (instance, role) = (&*self.instance, role.as_str());
                if held {
                    tracing::info!(instance, role, "this instance now runs {role}");
                } else {
                    tracing::warn!(instance, role, "this instance no longer runs {role}");
                }
            }
            telemetry.role_held(role.as_str(), &self.instance, held);
        }
    }

    /// Gives up the roles held, so another instance takes them at once.
    async fn give_up(&self, store: &dyn LeaseStore, telemetry: &Telemetry) {
        for role in Role::ALL {
            if !self.holds(role) {
                continue;
            }
            self.held_until_ms[role.index()].store(0, Ordering::SeqCst);
            telemetry.role_held(role.as_str(), &self.instance, false);
            match store.release_lease(role.as_str(), &self.instance).await {
                Ok(()) => tracing::info!(role = role.as_str(), "gave up {} at shutdown", role.as_str()),
                Err(err) => {
                    tracing::warn!(role = role.as_str(), error = %err, "cannot give up a lease; it expires")
                }
            }
        }
    }
}

/// This process's name among the instances sharing a database: `<host>/<pid>`, unique
/// among them and readable in logs and `/metrics`.
pub fn instance_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "voicemon".to_owned());
        format!("{host}/{}", std::process::id())
    })
}
