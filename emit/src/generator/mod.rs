//! A realistic audit workload: the use cases compliance teams ask about, over tenants with a
//! skewed (Zipf) mix, with malformed records planted at a chosen ratio.
//!
//! Generation is deterministic for a seed, and every sensitive value planted in an event is
//! reported, so tests can prove none of them reaches storage.

mod use_cases;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use sealtrail_core::event::AuditEvent;

/// Kinds of malformed record the generator plants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadKind {
    /// Bytes that are not Confluent-framed Avro.
    NotAvro,
    /// Framed with a schema id the registry does not know.
    UnknownSchema,
    /// No record key, so no tenant.
    MissingTenant,
    /// Larger than the processors accept.
    Oversized,
    /// A timestamp a day ahead of the clock.
    FutureTimestamp,
}

impl BadKind {
    pub const ALL: [Self; 5] = [
        Self::NotAvro,
        Self::UnknownSchema,
        Self::MissingTenant,
        Self::Oversized,
        Self::FutureTimestamp,
    ];

    /// The DLQ reason the seal processor gives this kind.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAvro => "not_avro",
            Self::UnknownSchema => "unknown_schema",
            Self::MissingTenant => "missing_tenant",
            Self::Oversized => "oversized",
            Self::FutureTimestamp => "future_timestamp",
        }
    }
}

/// One record to send.
#[derive(Debug, Clone)]
pub enum Generated {
    Good(Box<AuditEvent>),
    /// A malformed record: its key and bytes (the bytes are framed by the caller for
    /// `FutureTimestamp`, which is a well-formed event that validation must refuse).
    Bad {
        kind: BadKind,
        key: Option<Vec<u8>>,
        payload: Payload,
    },
}

#[derive(Debug, Clone)]
pub enum Payload {
    Bytes(Vec<u8>),
    Event(Box<AuditEvent>),
}

/// Settings of a workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub tenants: usize,
    pub bad_ratio: f64,
    pub seed: u64,
    /// The clock events are stamped against, in ms since the epoch.
    pub now_ms: i64,
    /// Prefix of tenant ids, so concurrent workloads do not share tenants.
    pub tenant_prefix: String,
}

const COMPANIES: &[&str] = &[
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
    "massive",
    "vandelay",
    "prestige",
    "monarch",
    "oscorp",
    "gringotts",
    "dunder",
    "pied-piper",
];
const FIRST_NAMES: &[&str] = &[
    "maria", "jamal", "wei", "olga", "kofi", "ines", "arjun", "lena", "tomas", "aiko",
];
const LAST_NAMES: &[&str] = &[
    "gomez", "okafor", "zhang", "petrova", "mensah", "silva", "patel", "novak", "berg", "sato",
];

/// Makes the records of a workload, one at a time.
#[derive(Debug)]
pub struct Generator {
    workload: Workload,
    rng: StdRng,
    zipf: Zipf<f64>,
    tenant_ids: Vec<String>,
    /// Every raw sensitive value put into a good event so far, when asked to keep them (tests
    /// do; `produce` of millions of events must not).
    planted: Option<Vec<String>>,
}

impl Generator {
    pub fn new(workload: Workload) -> Self {
        let tenants = workload.tenants.max(1);
        let tenant_ids = (0..tenants)
            .map(|i| {
                let base = COMPANIES
                    .get(i)
                    .map_or_else(|| format!("tenant-{i:04}"), |name| (*name).to_owned());
                format!("{}{base}", workload.tenant_prefix)
            })
            .collect();
        let zipf = Zipf::new(tenants as f64, 1.1).expect("valid Zipf parameters");
        Self {
            rng: StdRng::seed_from_u64(workload.seed),
            zipf,
            tenant_ids,
            planted: None,
            workload,
        }
    }

    pub fn tenant_ids(&self) -> &[String] {
        &self.tenant_ids
    }

    /// Keeps every planted sensitive value, for `planted`.
    #[must_use]
    pub fn keeping_planted(mut self) -> Self {
        self.planted.get_or_insert_with(Vec::new);
        self
    }

    /// Raw sensitive values planted in good events so far (e-mails, cards, IBANs, phones,
    /// tokens, IPs), if `keeping_planted`: none may appear in sealed data.
    pub fn planted(&self) -> &[String] {
        self.planted.as_deref().unwrap_or_default()
    }

    fn tenant(&mut self) -> String {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "Zipf samples are 1..=n"
        )]
        let rank = self.zipf.sample(&mut self.rng) as usize;
        self.tenant_ids[rank.clamp(1, self.tenant_ids.len()) - 1].clone()
    }

    fn ulid(&mut self, at_ms: i64) -> String {
        let random: u128 = self.rng.random::<u128>() & ((1 << 80) - 1);
        ulid::Ulid::from_parts(u64::try_from(at_ms).unwrap_or_default(), random).to_string()
    }

    fn person(&mut self, tenant: &str) -> (String, String) {
        let first = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
        let email = format!(
            "{first}.{last}{}@{}.example",
            self.rng.random_range(1..99),
            tenant.replace('.', "-")
        );
        let mut name = format!("{first} {last}");
        if let Some(initial) = name.get_mut(0..1) {
            initial.make_ascii_uppercase();
        }
        let name = self.plant(name);
        (email, name)
    }

    fn plant(&mut self, value: String) -> String {
        if let Some(planted) = &mut self.planted {
            planted.push(value.clone());
        }
        value
    }

    fn ip(&mut self) -> String {
        format!(
            "203.0.{}.{}",
            self.rng.random_range(0..255),
            self.rng.random_range(1..255)
        )
    }

    fn card(&mut self) -> String {
        let mut digits: Vec<u32> = vec![4];
        digits.extend((0..14).map(|_| self.rng.random_range(0..10)));
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                if i % 2 == 0 {
                    if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                } else {
                    d
                }
            })
            .sum();
        digits.push((10 - sum % 10) % 10);
        digits
            .chunks(4)
            .map(|group| group.iter().map(u32::to_string).collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn phone(&mut self) -> String {
        format!("+44 20 7946 {:04}", self.rng.random_range(0..10_000))
    }

    fn secret(&mut self) -> String {
        let body: String = (0..24)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[self.rng.random_range(0..36)]))
            .collect();
        format!("sk_live_{body}")
    }

    fn base_event(&mut self, tenant: &str, action: &str) -> AuditEvent {
        let occurred_at = self.workload.now_ms - self.rng.random_range(0..60_000);
        let trace: u128 = self.rng.random::<u128>() | 1;
        let span: u64 = self.rng.random::<u64>() | 1;
        AuditEvent {
            event_id: self.ulid(occurred_at),
            tenant_id: tenant.to_owned(),
            occurred_at,
            action: action.to_owned(),
            correlation_id: Some(format!("req-{:016x}", self.rng.random::<u64>())),
            trace_id: Some(format!("{trace:032x}")),
            span_id: Some(format!("{span:016x}")),
            ..AuditEvent::default()
        }
    }
}

#[cfg(test)]
mod tests;
