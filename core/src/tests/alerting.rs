//! Security alert rules on sealed events.

use super::{Harness, sample_event};
use crate::alerting::{AlertRule, AlertRules, BurstRule, SecurityWatch};
use crate::event::{AuditEvent, OutcomeStatus};
use crate::sealed::SealedEvent;

fn sealed(h: &mut Harness, offset: i64, event: &AuditEvent) -> SealedEvent {
    h.seal(offset, event)
}

fn privileged(n: u32, actor: &str) -> AuditEvent {
    let mut event = sample_event("acme", n);
    event.actor.id = actor.to_owned();
    event.actor.authority = Some("admin".to_owned());
    event
}

fn refused(n: u32, reason: &str) -> AuditEvent {
    let mut event = sample_event("acme", n);
    event.action = "audit.events.read".to_owned();
    event.actor.id = "mallory".to_owned();
    event.actor.authority = None;
    event.outcome.status = OutcomeStatus::Denied;
    event.outcome.reason_code = Some(reason.to_owned());
    event
}

fn fired(alerts: &[crate::alerting::SecurityAlert]) -> Vec<AlertRule> {
    alerts.iter().map(|alert| alert.rule).collect()
}

#[test]
fn a_burst_of_privileged_actions_by_one_actor_fires_once_per_window() {
    let rules = AlertRules {
        privileged_burst: BurstRule {
            enabled: true,
            threshold: 3,
            window_secs: 60,
        },
        ..AlertRules::default()
    };
    let mut h = Harness::new();
    let mut watch = SecurityWatch::default();
    let mut all = Vec::new();
    for n in 0..5_u32 {
        let event = sealed(&mut h, i64::from(n), &privileged(n, "dana"));
        all.push(fired(&watch.observe(&event, &rules)));
    }
    assert_eq!(
        all.iter().filter(|f| f.contains(&AlertRule::PrivilegedBurst)).count(),
        1
    );
    assert_eq!(all[2], vec![AlertRule::PrivilegedBurst], "at the third");
    // Another actor's actions are counted apart.
    let other = sealed(&mut h, 5, &privileged(5, "erin"));
    assert!(watch.observe(&other, &rules).is_empty());
}

#[test]
fn refusals_cross_tenant_reads_first_exports_and_removed_policies_fire() {
    let rules = AlertRules {
        refused_burst: BurstRule {
            enabled: true,
            threshold: 2,
            window_secs: 60,
        },
        ..AlertRules::default()
    };
    let mut h = Harness::new();
    let mut watch = SecurityWatch::default();
    let first = sealed(&mut h, 0, &refused(0, "forbidden"));
    assert!(watch.observe(&first, &rules).is_empty());
    let second = sealed(&mut h, 1, &refused(1, "other_tenant"));
    assert_eq!(
        fired(&watch.observe(&second, &rules)),
        vec![AlertRule::RefusedBurst, AlertRule::CrossTenant]
    );
    let mut export = sample_event("acme", 2);
    export.action = "export.requested".to_owned();
    export.actor.authority = None;
    let export = sealed(&mut h, 2, &export);
    assert_eq!(fired(&watch.observe(&export, &rules)), vec![AlertRule::FirstExport]);
    let mut again = export.clone();
    again.event.event_id = "01JD7Z8Y9X0W1V2K3T4S999999".to_owned();
    assert!(watch.observe(&again, &rules).is_empty(), "not the first any more");
    let mut removed = sample_event("acme", 3);
    removed.action = "retention.policy_removed".to_owned();
    removed.actor.authority = None;
    let removed = sealed(&mut h, 3, &removed);
    assert_eq!(
        fired(&watch.observe(&removed, &rules)),
        vec![AlertRule::RetentionPolicyRemoved]
    );
    let off = AlertRules {
        retention_policy_removed: false,
        ..rules
    };
    assert!(watch.observe(&removed, &off).is_empty(), "a tenant may turn a rule off");
}

#[test]
fn rules_read_from_partial_json_keep_the_defaults_and_refuse_nonsense() {
    let rules: AlertRules = serde_json::from_str(r#"{"first_export": false}"#).expect("partial rules");
    assert!(!rules.first_export);
    assert_eq!(rules.privileged_burst, AlertRules::default().privileged_burst);
    assert!(serde_json::from_str::<AlertRules>(r#"{"no_such_rule": true}"#).is_err());
    let silly = AlertRules {
        refused_burst: BurstRule {
            enabled: true,
            threshold: 0,
            window_secs: 60,
        },
        ..AlertRules::default()
    };
    assert!(silly.check().is_err());
    assert_eq!(AlertRules::default().check(), Ok(()));
}
