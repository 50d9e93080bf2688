//! Security alerts on the trail itself (docs/security-alerts.md): rules evaluated on sealed events
//! as they flow, configurable per tenant. Pure: events and rules in, alerts out; the monitor runs
//! it and seals, sends and counts what it returns.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::event::OutcomeStatus;
use crate::sealed::SealedEvent;

/// The actor and action sealtrail's own alerts carry: never evaluated again.
pub const ALERT_ACTION: &str = "security.alert";
pub const MONITOR_ACTOR: &str = "sealtrail-monitor";

/// Many events of one kind by one actor within a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstRule {
    pub enabled: bool,
    /// Alert at this many events...
    pub threshold: u32,
    /// ...within this many seconds.
    pub window_secs: u64,
}

/// One tenant's rules; every field has a default (see [`Default`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// Privileged actions by one actor: an event whose `actor.authority` is one of
    /// `privileged_authorities`, or whose action starts with one of `privileged_action_prefixes`.
    pub privileged_burst: BurstRule,
    pub privileged_authorities: Vec<String>,
    pub privileged_action_prefixes: Vec<String>,
    /// Reads the API refused (403 and other 4xx after authentication, sealed as `audit.*` events
    /// with a `DENIED` or `FAILURE` outcome) by one actor.
    pub refused_burst: BurstRule,
    /// A request the API refused because it named another tenant (reason `other_tenant`).
    pub cross_tenant: bool,
    /// An export requested by a principal who never requested one in this tenant before.
    pub first_export: bool,
    /// A retention policy removed.
    pub retention_policy_removed: bool,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            privileged_burst: BurstRule {
                enabled: true,
                threshold: 20,
                window_secs: 300,
            },
            privileged_authorities: ["admin", "root", "superuser", "break_glass", "platform_admin"]
                .map(str::to_owned)
                .to_vec(),
            privileged_action_prefixes: ["iam.", "admin.", "role.", "permission.", "key."]
                .map(str::to_owned)
                .to_vec(),
            refused_burst: BurstRule {
                enabled: true,
                threshold: 10,
                window_secs: 300,
            },
            cross_tenant: true,
            first_export: true,
            retention_policy_removed: true,
        }
    }
}

impl AlertRules {
    /// Why these rules cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        for (name, rule) in [
            ("privileged_burst", &self.privileged_burst),
            ("refused_burst", &self.refused_burst),
        ] {
            if !(1..=100_000).contains(&rule.threshold) {
                return Err(format!("{name}.threshold must be between 1 and 100000"));
            }
            if !(10..=86_400).contains(&rule.window_secs) {
                return Err(format!("{name}.window_secs must be between 10 and 86400"));
            }
        }
        let lists = [&self.privileged_authorities, &self.privileged_action_prefixes];
        if lists
            .iter()
            .any(|list| list.len() > 100 || list.iter().any(|item| item.is_empty() || item.len() > 100))
        {
            return Err("privileged lists hold at most 100 non-empty entries of at most 100 characters".to_owned());
        }
        Ok(())
    }
}

/// Which rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertRule {
    PrivilegedBurst,
    RefusedBurst,
    CrossTenant,
    FirstExport,
    RetentionPolicyRemoved,
}

impl AlertRule {
    pub const ALL: [Self; 5] = [
        Self::PrivilegedBurst,
        Self::RefusedBurst,
        Self::CrossTenant,
        Self::FirstExport,
        Self::RetentionPolicyRemoved,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::PrivilegedBurst => "privileged_burst",
            Self::RefusedBurst => "refused_burst",
            Self::CrossTenant => "cross_tenant",
            Self::FirstExport => "first_export",
            Self::RetentionPolicyRemoved => "retention_policy_removed",
        }
    }
}

/// An alert: the rule, the tenant and actor, and the event that tripped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityAlert {
    pub rule: AlertRule,
    pub tenant: String,
    /// The actor's id as sealed (already tokenized where the policy says so).
    pub actor: String,
    pub trigger_event_id: String,
    pub trigger_seq: u64,
    /// Events counted (1 for a single-event rule).
    pub count: u32,
    pub detail: String,
}

/// The state of the rules across events: sliding windows per actor, exporters seen.
#[derive(Debug, Default)]
pub struct SecurityWatch {
    windows: HashMap<(AlertRule, String, String), VecDeque<i64>>,
    /// Until when a burst of `(rule, tenant, actor)` does not fire again.
    quiet_until: HashMap<(AlertRule, String, String), i64>,
    exporters: HashSet<(String, String)>,
}

fn is_refused_read(event: &SealedEvent) -> bool {
    event.event.action.starts_with("audit.")
        && matches!(
            event.event.outcome.status,
            OutcomeStatus::Denied | OutcomeStatus::Failure
        )
}

impl SecurityWatch {
    /// Evaluates `rules` on the next sealed event of a tenant (in sealing order).
    pub fn observe(&mut self, event: &SealedEvent, rules: &AlertRules) -> Vec<SecurityAlert> {
        let e = &event.event;
        if e.action == ALERT_ACTION || e.actor.id == MONITOR_ACTOR {
            return Vec::new();
        }
        let mut alerts = Vec::new();
        let alert = |rule: AlertRule, count: u32, detail: String| SecurityAlert {
            rule,
            tenant: e.tenant_id.clone(),
            actor: e.actor.id.clone(),
            trigger_event_id: e.event_id.clone(),
            trigger_seq: event.seal.tenant_seq,
            count,
            detail,
        };
        let privileged = e
            .actor
            .authority
            .as_ref()
            .is_some_and(|authority| rules.privileged_authorities.contains(authority))
            || rules
                .privileged_action_prefixes
                .iter()
                .any(|prefix| e.action.starts_with(prefix.as_str()));
        if privileged && rules.privileged_burst.enabled {
            alerts.extend(
                self.burst(AlertRule::PrivilegedBurst, event, &rules.privileged_burst)
                    .map(|count| {
                        alert(
                            AlertRule::PrivilegedBurst,
                            count,
                            format!(
                                "{count} privileged actions by one actor within {} s (threshold {})",
                                rules.privileged_burst.window_secs, rules.privileged_burst.threshold
                            ),
                        )
                    }),
            );
        }
        if is_refused_read(event) && rules.refused_burst.enabled {
            alerts.extend(
                self.burst(AlertRule::RefusedBurst, event, &rules.refused_burst)
                    .map(|count| {
                        alert(
                            AlertRule::RefusedBurst,
                            count,
                            format!(
                                "{count} requests refused to one actor within {} s (threshold {})",
                                rules.refused_burst.window_secs, rules.refused_burst.threshold
                            ),
                        )
                    }),
            );
        }
        if rules.cross_tenant && is_refused_read(event) && e.outcome.reason_code.as_deref() == Some("other_tenant") {
            alerts.push(alert(
                AlertRule::CrossTenant,
                1,
                format!(
                    "a request named another tenant at {}",
                    e.resource.path.as_deref().unwrap_or("?")
                ),
            ));
        }
        if e.action == "export.requested"
            && self.exporters.insert((e.tenant_id.clone(), e.actor.id.clone()))
            && rules.first_export
        {
            alerts.push(alert(
                AlertRule::FirstExport,
                1,
                "the first export this principal ever requested in this tenant".to_owned(),
            ));
        }
        if rules.retention_policy_removed && e.action == "retention.policy_removed" {
            alerts.push(alert(
                AlertRule::RetentionPolicyRemoved,
                1,
                format!("retention policy {} removed", e.resource.id),
            ));
        }
        alerts
    }

    /// Forgets windows with nothing newer than `before_ms` (an actor gone quiet), so the state
    /// stays bounded by the active actors.
    pub fn forget_quiet(&mut self, before_ms: i64) {
        self.windows
            .retain(|_, times| times.back().is_some_and(|last| *last >= before_ms));
        self.quiet_until.retain(|_, until| *until >= before_ms);
    }

    /// Counts the event in its actor's window; the count when it reaches the threshold (then
    /// the burst stays quiet for one window).
    fn burst(&mut self, rule: AlertRule, event: &SealedEvent, settings: &BurstRule) -> Option<u32> {
        let key = (rule, event.event.tenant_id.clone(), event.event.actor.id.clone());
        let now = event.sealed_at;
        let window_ms = i64::try_from(settings.window_secs)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1000);
        let times = self.windows.entry(key.clone()).or_default();
        times.push_back(now);
        while times.front().is_some_and(|first| *first <= now - window_ms) {
            times.pop_front();
        }
        let count = u32::try_from(times.len()).unwrap_or(u32::MAX);
        if count < settings.threshold || self.quiet_until.get(&key).is_some_and(|until| now < *until) {
            return None;
        }
        self.quiet_until.insert(key, now + window_ms);
        Some(count)
    }
}
