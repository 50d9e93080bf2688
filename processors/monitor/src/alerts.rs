//! Security alerts on the trail (docs/security-alerts.md): the rules of
//! `sealtrail_core::alerting` run on every sealed event the monitor reads. A tenant's rules come
//! from its tenant administrators (`PUT /v1/security/alert-rules`, kept in ClickHouse), else from
//! the monitor's rules file (`SEALTRAIL_ALERT_RULES`), else the defaults.
//!
//! The monitor reads each partition from its first record, so it meets old events again at every
//! start: alerts found before a partition is caught up (below the end it had when assigned) are
//! held, and dropped if the trail shows they were raised already (a `security.alert` event of the
//! same rule and trigger), so an alert is raised once, even one missed while the monitor was down.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use sealtrail_core::alerting::{ALERT_ACTION, AlertRules, MONITOR_ACTOR, SecurityAlert, SecurityWatch};
use sealtrail_core::sealed::SealedEvent;
use serde::Deserialize;

use crate::processor::MonitorProcessor;

/// How often tenant administrators' rules are read again from ClickHouse.
const REFRESH: Duration = Duration::from_secs(15);

/// The rules file: `[defaults]` and `[tenants.<id>]` tables of [`AlertRules`] fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRulesFile {
    #[serde(default)]
    pub defaults: AlertRules,
    #[serde(default)]
    pub tenants: BTreeMap<String, AlertRules>,
}

impl AlertRulesFile {
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (tenant, rules) in std::iter::once(("[defaults]", &file.defaults))
            .chain(file.tenants.iter().map(|(tenant, rules)| (tenant.as_str(), rules)))
        {
            rules
                .check()
                .map_err(|reason| format!("{}: {tenant}: {reason}", path.display()))?;
        }
        Ok(file)
    }
}

/// The rules in force, and the state of the alerts.
#[derive(Debug, Default)]
pub(crate) struct Alerting {
    pub(crate) file: AlertRulesFile,
    /// Set by tenant administrators through the API.
    from_api: HashMap<String, AlertRules>,
    refreshed: Option<Instant>,
    watch: SecurityWatch,
    /// `(tenant, rule, trigger event)` of every alert raised, as the trail shows.
    raised: HashSet<(String, String, String)>,
    /// Found while a partition was catching up: raised once it is caught up, unless raised before.
    held: BTreeMap<i32, Vec<SecurityAlert>>,
    /// The end offset of each partition when it was assigned.
    pub(crate) live_from: HashMap<i32, i64>,
}

impl Alerting {
    pub(crate) fn new(file: AlertRulesFile) -> Self {
        Self {
            file,
            ..Self::default()
        }
    }

    fn rules_for(&self, tenant: &str) -> &AlertRules {
        self.from_api
            .get(tenant)
            .or_else(|| self.file.tenants.get(tenant))
            .unwrap_or(&self.file.defaults)
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct StoredRules {
    tenant_id: String,
    rules: String,
}

impl MonitorProcessor {
    /// Runs the rules on the next event of `partition`, read at `offset`.
    pub(crate) fn watch_event(&mut self, partition: i32, offset: i64, event: &SealedEvent) {
        let alerting = &mut self.alerting;
        if event.event.action == ALERT_ACTION && event.event.actor.id == MONITOR_ACTOR {
            let attribute = |name: &str| {
                event
                    .event
                    .attributes
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default()
            };
            alerting.raised.insert((
                event.event.tenant_id.clone(),
                attribute("rule"),
                attribute("trigger_event_id"),
            ));
            return;
        }
        let rules = alerting.rules_for(&event.event.tenant_id).clone();
        let found = alerting.watch.observe(event, &rules);
        alerting.held.entry(partition).or_default().extend(found);
        self.release_alerts(partition, offset);
    }

    /// Raises what `partition` holds once it is caught up (`offset` is the record just read).
    pub(crate) fn release_alerts(&mut self, partition: i32, offset: i64) {
        let live = self
            .alerting
            .live_from
            .get(&partition)
            .is_none_or(|end| offset + 1 >= *end);
        if live && let Some(held) = self.alerting.held.remove(&partition) {
            for alert in held {
                self.raise_alert(&alert);
            }
        }
    }

    fn raise_alert(&mut self, alert: &SecurityAlert) {
        let identity = (
            alert.tenant.clone(),
            alert.rule.name().to_owned(),
            alert.trigger_event_id.clone(),
        );
        if !self.alerting.raised.insert(identity) {
            return;
        }
        self.config.metrics.assurance().security_alert(alert.rule.name());
        tracing::warn!(
            rule = alert.rule.name(),
            tenant = %alert.tenant,
            actor = %alert.actor,
            trigger = %alert.trigger_event_id,
            detail = %alert.detail,
            "security alert"
        );
        self.incidents.security_alert(alert);
    }

    /// Reads the tenant administrators' rules again when due; forgets quiet actors' windows.
    pub(crate) fn refresh_alert_rules(&mut self) {
        if self.alerting.refreshed.is_some_and(|at| at.elapsed() < REFRESH) {
            return;
        }
        self.alerting.refreshed = Some(Instant::now());
        let client = self.projection.client();
        let stored = self.projection.bounded(
            client
                .query("SELECT tenant_id, argMax(rules, changed_at) AS rules FROM alert_rules GROUP BY tenant_id")
                .fetch_all::<StoredRules>(),
        );
        match stored {
            Ok(rows) => {
                self.alerting.from_api = rows
                    .into_iter()
                    .filter_map(|row| {
                        let rules: AlertRules = serde_json::from_str(&row.rules).ok()?;
                        rules.check().ok()?;
                        Some((row.tenant_id, rules))
                    })
                    .collect();
                self.config
                    .metrics
                    .assurance()
                    .rule_tenants(self.alerting.from_api.len());
            }
            Err(error) => tracing::warn!(%error, "cannot read the tenants' alert rules; keeping the last ones"),
        }
        let day_ago = crate::now_ms() - 86_400_000;
        self.alerting.watch.forget_quiet(day_ago);
    }
}
