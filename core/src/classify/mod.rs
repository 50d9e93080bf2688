//! Classify an event and redact it per policy, in one pass over its free-text fields.
//!
//! Structural fields (ids, tenant, action, trace context, digests) are validated, not scanned;
//! every field that can carry free text is scanned, and what is found there is labelled and
//! handled as the tenant's rules say. The event keeps its shape: a redacted value is replaced in
//! place by a token, a mask, a network prefix or a drop marker.

pub mod detect;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::AuditEvent;
use crate::policy::{Label, RedactionMethod, TenantRules};
use crate::sealed::{Classification, Redaction};
use crate::tokenize::Tokenizer;

/// Classifies `event` and redacts it in place under `rules`.
pub fn classify_and_redact(
    event: &mut AuditEvent,
    rules: &TenantRules,
    tokenizer: &mut Tokenizer,
) -> (Classification, Vec<Redaction>) {
    let (category, baseline) = rules.category(&event.action);
    let mut pass = Pass {
        tenant_id: &event.tenant_id,
        rules,
        tokenizer,
        found: [false; 8],
        redactions: Vec::new(),
    };
    pass.text(FieldPath::Named("actor.id"), &mut event.actor.id);
    pass.optional(FieldPath::Named("actor.display_name"), &mut event.actor.display_name);
    pass.optional(FieldPath::Named("actor.authority"), &mut event.actor.authority);
    pass.optional(FieldPath::Named("actor.on_behalf_of"), &mut event.actor.on_behalf_of);
    pass.text(FieldPath::Named("resource.id"), &mut event.resource.id);
    pass.optional(FieldPath::Named("resource.path"), &mut event.resource.path);
    pass.optional(FieldPath::Named("outcome.reason_code"), &mut event.outcome.reason_code);
    pass.optional(FieldPath::Named("outcome.reason_text"), &mut event.outcome.reason_text);
    pass.optional(FieldPath::Named("idempotency_key"), &mut event.idempotency_key);
    pass.optional(FieldPath::Named("session_id"), &mut event.session_id);
    for (index, evidence) in event.evidence.iter_mut().enumerate() {
        pass.text(FieldPath::Item("evidence", index, "uri"), &mut evidence.uri);
    }
    for (index, change) in event.changes.iter_mut().enumerate() {
        pass.optional(FieldPath::Item("changes", index, "before"), &mut change.before);
        pass.optional(FieldPath::Item("changes", index, "after"), &mut change.after);
    }
    for (key, value) in &mut event.attributes {
        if rules.is_secret_key(key) && !value.is_empty() {
            *value = drop_marker(Label::Secret);
            pass.record(FieldPath::Attribute(key), Label::Secret, RedactionMethod::Drop);
        } else {
            pass.text(FieldPath::Attribute(key), value);
        }
    }

    let mut data_class = baseline;
    let mut labels = Vec::new();
    for label in Label::ALL {
        if pass.found[label as usize] {
            data_class = data_class.max(rules.class_of(label));
            labels.push(label.name().to_owned());
        }
    }
    labels.sort_unstable();
    let classification = Classification {
        category: category.to_owned(),
        data_class,
        labels,
        policy_version: rules.version.clone(),
    };
    (classification, pass.redactions)
}

/// Where a value sits in the event; rendered only when something there is redacted.
#[derive(Clone, Copy)]
enum FieldPath<'k> {
    Named(&'static str),
    Item(&'static str, usize, &'static str),
    Attribute(&'k str),
}

impl FieldPath<'_> {
    fn render(&self) -> String {
        match self {
            Self::Named(name) => (*name).to_owned(),
            Self::Item(list, index, field) => format!("{list}[{index}].{field}"),
            Self::Attribute(key) => format!("attributes.{key}"),
        }
    }
}

struct Pass<'a> {
    tenant_id: &'a str,
    rules: &'a TenantRules,
    tokenizer: &'a mut Tokenizer,
    found: [bool; 8],
    redactions: Vec<Redaction>,
}

impl Pass<'_> {
    fn optional(&mut self, path: FieldPath<'_>, value: &mut Option<String>) {
        if let Some(text) = value {
            self.text(path, text);
        }
    }

    fn text(&mut self, path: FieldPath<'_>, value: &mut String) {
        if let FieldPath::Named(name) = path
            && let Some(label) = self.rules.field_label(name)
        {
            self.whole(path, label, value);
            return;
        }
        let findings = detect::scan(value);
        if findings.is_empty() {
            return;
        }
        let mut redacted = String::with_capacity(value.len());
        let mut copied_up_to = 0;
        for finding in findings {
            self.found[finding.label as usize] = true;
            let method = self.rules.method(finding.label);
            let original = &value[finding.range.clone()];
            let replacement = match method {
                RedactionMethod::Keep => continue,
                RedactionMethod::Drop => drop_marker(finding.label),
                RedactionMethod::Mask => mask(finding.label, original),
                RedactionMethod::Tokenize => self.tokenizer.token(self.tenant_id, finding.label, original),
                RedactionMethod::Generalize => generalize(original),
            };
            redacted.push_str(&value[copied_up_to..finding.range.start]);
            redacted.push_str(&replacement);
            copied_up_to = finding.range.end;
            self.record(path, finding.label, method);
        }
        if copied_up_to > 0 {
            redacted.push_str(&value[copied_up_to..]);
            *value = redacted;
        }
    }

    /// Handles a value that carries `label` as a whole.
    fn whole(&mut self, path: FieldPath<'_>, label: Label, value: &mut String) {
        if value.is_empty() {
            return;
        }
        self.found[label as usize] = true;
        let method = self.rules.method(label);
        let replacement = match method {
            RedactionMethod::Keep => return,
            RedactionMethod::Drop => drop_marker(label),
            RedactionMethod::Mask => mask(label, value),
            RedactionMethod::Tokenize => self.tokenizer.token(self.tenant_id, label, value),
            RedactionMethod::Generalize => generalize(value),
        };
        *value = replacement;
        self.record(path, label, method);
    }

    fn record(&mut self, path: FieldPath<'_>, label: Label, method: RedactionMethod) {
        self.found[label as usize] = true;
        let path = path.render();
        let exists = self
            .redactions
            .iter()
            .any(|r| r.path == path && r.label == label.name() && r.method == method.name());
        if !exists {
            self.redactions.push(Redaction {
                path,
                label: label.name().to_owned(),
                method: method.name().to_owned(),
            });
        }
    }
}

fn drop_marker(label: Label) -> String {
    format!("[dropped:{}]", label.name())
}

/// Keeps the last four digits (cards, accounts) or characters, hiding the rest.
fn mask(label: Label, value: &str) -> String {
    let kept: Vec<char> = match label {
        Label::PaymentCard | Label::Phone | Label::Iban | Label::NationalId => {
            value.chars().filter(char::is_ascii_alphanumeric).collect()
        }
        _ => value.chars().collect(),
    };
    let last: String = kept[kept.len().saturating_sub(4)..].iter().collect();
    format!("****{last}")
}

/// IPv4 to its /24, IPv6 to its /48.
fn generalize(value: &str) -> String {
    match value.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{}/24", Ipv4Addr::new(a, b, c, 0))
        }
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
        Err(_) => drop_marker(Label::IpAddress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Change;
    use crate::policy::Policy;
    use crate::sealed::DataClass;

    fn refund() -> AuditEvent {
        let mut event = AuditEvent {
            event_id: "01JD7Z8Y9X0W1V2K3T4S5R6Q7P".into(),
            tenant_id: "globex".into(),
            action: "billing.refund.posted".into(),
            ..AuditEvent::default()
        };
        event.actor.id = "Alice@Example.com".into();
        event.outcome.reason_text = Some("refund to card 4111 1111 1111 1111 requested from 203.0.113.77".into());
        event.attributes = vec![
            ("amount".into(), "129.90".into()),
            ("api_key".into(), "whatever-it-is".into()),
            (
                "note".into(),
                "call +44 20 7946 0958, auth Bearer abcdef0123456789xyz".into(),
            ),
        ];
        event.changes.push(Change {
            field: "iban".into(),
            before: None,
            after: Some("DE89 3704 0044 0532 0130 00".into()),
        });
        event
    }

    #[test]
    fn a_refund_is_classified_restricted_and_keeps_no_raw_value() {
        let policy = Policy::default_policy();
        let mut tokenizer = Tokenizer::new(&[9; 32]).expect("key");
        let mut event = refund();
        let (classification, redactions) = classify_and_redact(&mut event, policy.rules_for("globex"), &mut tokenizer);
        assert_eq!(classification.category, "billing");
        assert_eq!(classification.data_class, DataClass::Restricted);
        assert_eq!(
            classification.labels,
            vec!["email", "iban", "ip_address", "payment_card", "phone", "secret"]
        );
        let rendered = format!("{event:?}");
        for raw in [
            "Alice@Example.com",
            "4111 1111 1111 1111",
            "203.0.113.77",
            "whatever-it-is",
            "7946 0958",
            "abcdef0123456789xyz",
            "0532 0130 00",
        ] {
            assert!(!rendered.contains(raw), "{raw} survived: {rendered}");
        }
        assert!(event.actor.id.starts_with("tok:email:"));
        assert!(
            event
                .outcome
                .reason_text
                .as_deref()
                .unwrap_or_default()
                .contains("****1111")
        );
        assert!(
            event
                .outcome
                .reason_text
                .as_deref()
                .unwrap_or_default()
                .contains("203.0.113.0/24")
        );
        assert_eq!(event.attributes[0].1, "129.90", "non-sensitive values are untouched");
        assert_eq!(event.attributes[1].1, "[dropped:secret]");
        assert!(
            redactions
                .iter()
                .any(|r| r.path == "changes[0].after" && r.label == "iban" && r.method == "tokenize")
        );
        // Tokens are stable, so an analyst can still find this actor.
        assert_eq!(
            event.actor.id,
            tokenizer.token("globex", Label::Email, "alice@example.com")
        );
    }

    #[test]
    fn tenant_overrides_change_the_method_and_the_recorded_version() {
        let policy = Policy::default_policy();
        let mut tokenizer = Tokenizer::new(&[9; 32]).expect("key");
        let mut event = refund();
        event.tenant_id = "acme-bank".into();
        let (classification, _) = classify_and_redact(&mut event, policy.rules_for("acme-bank"), &mut tokenizer);
        assert!(
            event
                .outcome
                .reason_text
                .as_deref()
                .unwrap_or_default()
                .contains("tok:ip_address:")
        );
        assert!(classification.policy_version.contains("acme-bank"));
    }
}
