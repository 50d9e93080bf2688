//! The use cases a workload is made of, and its malformed records.

use rand::Rng;
use sealtrail_core::avro::Framed;
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Change, Evidence, Outcome, OutcomeStatus, Resource};

use super::{BadKind, Generated, Generator, Payload};

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

impl Generator {
    /// The next record: malformed with probability `bad_ratio`, otherwise one of the use cases.
    pub fn next_record(&mut self) -> Generated {
        if self.rng.random_bool(self.workload.bad_ratio.clamp(0.0, 1.0)) {
            let kind = BadKind::ALL[self.rng.random_range(0..BadKind::ALL.len())];
            return self.bad(kind);
        }
        Generated::Good(Box::new(self.event()))
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
