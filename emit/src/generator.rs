//! A realistic audit workload: the use cases compliance teams ask about, over tenants with a
//! skewed (Zipf) mix, with malformed records planted at a chosen ratio.
//!
//! Generation is deterministic for a seed, and every sensitive value planted in an event is
//! reported, so tests can prove none of them reaches storage.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use sealtrail_core::avro::Framed;
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Change, Evidence, Outcome, OutcomeStatus, Resource};

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
const FLAGS: &[&str] = &[
    "checkout_v2",
    "dark_mode",
    "new_pricing",
    "export_parquet",
    "sso_enforced",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "okhttp/4.12.0",
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

    /// The next record: malformed with probability `bad_ratio`, otherwise one of the use cases.
    pub fn next_record(&mut self) -> Generated {
        if self.rng.random_bool(self.workload.bad_ratio.clamp(0.0, 1.0)) {
            let kind = BadKind::ALL[self.rng.random_range(0..BadKind::ALL.len())];
            return self.bad(kind);
        }
        Generated::Good(Box::new(self.event()))
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

    fn event(&mut self) -> AuditEvent {
        let tenant = self.tenant();
        match self.rng.random_range(0..100) {
            0..45 => self.login(&tenant),
            45..65 => self.config_change(&tenant),
            65..77 => self.refund(&tenant),
            77..87 => self.support_action(&tenant),
            _ => self.export(&tenant),
        }
    }

    fn login(&mut self, tenant: &str) -> AuditEvent {
        let mut event = self.base_event(tenant, "user.login");
        let (email, name) = self.person(tenant);
        let email = self.plant(email);
        let ip = self.ip();
        let ip = self.plant(ip);
        let denied = self.rng.random_bool(0.15);
        event.actor = Actor {
            id: email,
            kind: ActorType::User,
            display_name: Some(name),
            authority: None,
            on_behalf_of: None,
        };
        event.resource = Resource {
            kind: "account".into(),
            id: format!("acct-{}", self.rng.random_range(1000..9999)),
            path: None,
        };
        event.outcome = if denied {
            Outcome {
                status: OutcomeStatus::Denied,
                reason_code: Some("mfa_required".into()),
                reason_text: Some("second factor missing; access policy requires MFA for this role".into()),
            }
        } else {
            Outcome {
                status: OutcomeStatus::Success,
                reason_code: Some("password_and_totp".into()),
                reason_text: None,
            }
        };
        event.policy_version = Some("access-policy-42".into());
        event.session_id = Some(format!("sess_{:012x}", self.rng.random::<u64>() >> 16));
        event.attributes = vec![
            ("ip".into(), ip),
            (
                "user_agent".into(),
                USER_AGENTS[self.rng.random_range(0..USER_AGENTS.len())].into(),
            ),
            ("mfa_method".into(), "totp".into()),
        ];
        event
    }

    fn config_change(&mut self, tenant: &str) -> AuditEvent {
        let action = if self.rng.random_bool(0.5) {
            "feature_flag.updated"
        } else {
            "configuration.changed"
        };
        let mut event = self.base_event(tenant, action);
        let (email, name) = self.person(tenant);
        let email = self.plant(email);
        let flag = FLAGS[self.rng.random_range(0..FLAGS.len())];
        let before = self.rng.random_range(0..5) * 10;
        event.actor = Actor {
            id: email,
            kind: ActorType::User,
            display_name: Some(name),
            authority: Some("org_admin".into()),
            on_behalf_of: None,
        };
        event.resource = Resource {
            kind: "feature_flag".into(),
            id: flag.into(),
            path: Some(format!("orgs/{tenant}/flags/{flag}")),
        };
        event.outcome.status = OutcomeStatus::Success;
        event.changes = vec![
            Change {
                field: "rollout_percent".into(),
                before: Some(before.to_string()),
                after: Some((before + 25).to_string()),
            },
            Change {
                field: "enabled".into(),
                before: Some("false".into()),
                after: Some("true".into()),
            },
        ];
        event.evidence = vec![Evidence {
            kind: "change_request".into(),
            uri: format!("https://changes.example/CR-{}", self.rng.random_range(100..999)),
            sha256: None,
        }];
        // Unique per action, as a producer's retry key is: repeats are what deduplication drops.
        event.idempotency_key = Some(format!("cfg-{}", event.event_id));
        event
    }

    fn refund(&mut self, tenant: &str) -> AuditEvent {
        let mut event = self.base_event(tenant, "billing.refund.posted");
        let (customer, _) = self.person(tenant);
        let customer = self.plant(customer);
        let card = self.card();
        let card = self.plant(card);
        let amount = format!("{}.{:02}", self.rng.random_range(5..500), self.rng.random_range(0..100));
        event.actor = Actor {
            id: "billing-service".into(),
            kind: ActorType::Service,
            display_name: None,
            authority: Some("refunds:write".into()),
            on_behalf_of: None,
        };
        event.resource = Resource {
            kind: "invoice".into(),
            id: format!("inv-{}", self.rng.random_range(10_000..99_999)),
            path: None,
        };
        event.outcome = Outcome {
            status: OutcomeStatus::Success,
            reason_code: Some("customer_request".into()),
            reason_text: Some(format!("refund requested by {customer} for a duplicate charge")),
        };
        event.attributes = vec![
            ("amount".into(), amount),
            ("currency".into(), "EUR".into()),
            ("card_number".into(), card),
        ];
        if self.rng.random_bool(0.3) {
            let iban = self.plant("DE89 3704 0044 0532 0130 00".to_owned());
            event.attributes.push(("payout_iban".into(), iban));
        }
        event
    }

    fn support_action(&mut self, tenant: &str) -> AuditEvent {
        let mut event = self.base_event(tenant, "support.action.performed");
        let (customer, _) = self.person(tenant);
        let customer = self.plant(customer);
        let phone = self.phone();
        let phone = self.plant(phone);
        event.actor = Actor {
            id: format!("agent-{}", self.rng.random_range(10..99)),
            kind: ActorType::SupportAgent,
            display_name: Some("Support Agent".into()),
            authority: Some("support:impersonate".into()),
            on_behalf_of: Some(customer),
        };
        event.resource = Resource {
            kind: "ticket".into(),
            id: format!("SUP-{}", self.rng.random_range(1000..9999)),
            path: None,
        };
        event.outcome = Outcome {
            status: OutcomeStatus::Success,
            reason_code: Some("customer_consent".into()),
            reason_text: Some(format!(
                "customer called from {phone} about a failed export and approved a session"
            )),
        };
        event.evidence = vec![Evidence {
            kind: "ticket".into(),
            uri: format!("https://support.example/tickets/{}", event.resource.id),
            sha256: None,
        }];
        event
    }

    fn export(&mut self, tenant: &str) -> AuditEvent {
        let mut event = self.base_event(tenant, "data.exported");
        let (email, name) = self.person(tenant);
        let email = self.plant(email);
        event.actor = Actor {
            id: email,
            kind: ActorType::User,
            display_name: Some(name),
            authority: Some("analyst".into()),
            on_behalf_of: None,
        };
        event.resource = Resource {
            kind: "dataset".into(),
            id: "customers".into(),
            path: Some(format!("warehouse/{tenant}/customers")),
        };
        event.outcome.status = OutcomeStatus::Success;
        event.attributes = vec![
            ("format".into(), "parquet".into()),
            ("rows".into(), self.rng.random_range(100..1_000_000).to_string()),
            ("destination".into(), "s3://exports-bucket/q4/".into()),
        ];
        if self.rng.random_bool(0.2) {
            let secret = self.secret();
            let secret = self.plant(secret);
            event
                .attributes
                .push(("request_header".into(), format!("Authorization: Bearer {secret}")));
        }
        event
    }

    fn bad(&mut self, kind: BadKind) -> Generated {
        let tenant = self.tenant();
        let (key, payload) = match kind {
            BadKind::NotAvro => (
                Some(tenant.into_bytes()),
                Payload::Bytes(b"{\"this\": \"is json, not avro\"}".to_vec()),
            ),
            BadKind::UnknownSchema => (
                Some(tenant.into_bytes()),
                Payload::Bytes(Framed::frame(2_000_000_000, b"\x02\x00")),
            ),
            BadKind::MissingTenant => {
                let event = self.base_event(&tenant, "user.logout");
                (None, Payload::Event(Box::new(event)))
            }
            BadKind::Oversized => (
                Some(tenant.into_bytes()),
                Payload::Bytes(Framed::frame(1, &vec![b'x'; 80 * 1024])),
            ),
            BadKind::FutureTimestamp => {
                let mut event = self.login(&tenant);
                // The login planted values, but this event never reaches storage; keep them
                // counted anyway: stricter for the tests.
                event.occurred_at = self.workload.now_ms + 86_400_000;
                (Some(tenant.into_bytes()), Payload::Event(Box::new(event)))
            }
        };
        Generated::Bad { kind, key, payload }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(bad_ratio: f64) -> Workload {
        Workload {
            tenants: 50,
            bad_ratio,
            seed: 7,
            now_ms: 1_763_856_000_000,
            tenant_prefix: String::new(),
        }
    }

    #[test]
    fn the_workload_is_deterministic_and_skewed() {
        let mut a = Generator::new(workload(0.0)).keeping_planted();
        let mut b = Generator::new(workload(0.0));
        let mut counts = std::collections::HashMap::new();
        for _ in 0..5000 {
            let (Generated::Good(x), Generated::Good(y)) = (a.next_record(), b.next_record()) else {
                panic!("no bad records at ratio 0");
            };
            assert_eq!(x, y);
            assert!(sealtrail_core::validate::is_valid_ulid(&x.event_id), "{}", x.event_id);
            *counts.entry(x.tenant_id.clone()).or_insert(0) += 1;
        }
        let top = counts.values().max().copied().unwrap_or_default();
        let bottom = counts.values().min().copied().unwrap_or_default();
        assert!(top > 10 * bottom.max(1), "Zipf skew: top {top}, bottom {bottom}");
        assert!(!a.planted().is_empty());
    }

    #[test]
    fn bad_records_come_at_the_requested_ratio_and_of_every_kind() {
        let mut generator = Generator::new(workload(0.1));
        let mut kinds = std::collections::HashSet::new();
        let bad = (0..10_000)
            .filter(|_| match generator.next_record() {
                Generated::Bad { kind, .. } => {
                    kinds.insert(kind);
                    true
                }
                Generated::Good(_) => false,
            })
            .count();
        assert!((800..1200).contains(&bad), "{bad}");
        assert_eq!(kinds.len(), BadKind::ALL.len());
    }
}
