//! The sealing policy: how events are classified and redacted, versioned, with per-tenant
//! overrides (`schemas/policy.toml`).

use std::collections::BTreeMap;

use foldhash::HashMap;

use serde::Deserialize;

use crate::sealed::DataClass;

/// Kinds of sensitive content the classifier detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Email,
    Phone,
    PaymentCard,
    Iban,
    NationalId,
    IpAddress,
    Secret,
    /// A person's name; not detected in text, but assigned to fields that hold names.
    PersonName,
}

impl Label {
    pub const ALL: [Self; 8] = [
        Self::Email,
        Self::Phone,
        Self::PaymentCard,
        Self::Iban,
        Self::NationalId,
        Self::IpAddress,
        Self::Secret,
        Self::PersonName,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::PaymentCard => "payment_card",
            Self::Iban => "iban",
            Self::NationalId => "national_id",
            Self::IpAddress => "ip_address",
            Self::Secret => "secret",
            Self::PersonName => "person_name",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|label| label.name() == name)
    }

    /// The label's position in `ALL` (declaration order), for per-label tables.
    const fn index(self) -> usize {
        self as usize
    }
}

/// What redaction does with detected content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMethod {
    /// Leave the value as it is (never allowed for secrets).
    Keep,
    /// Remove the value, leaving a marker.
    Drop,
    /// Keep only the last four characters (the last four digits of a card).
    Mask,
    /// Replace with a per-tenant keyed HMAC-SHA256 token: equal values give equal tokens.
    Tokenize,
    /// Keep only the network: an IPv4 /24 or an IPv6 /48.
    Generalize,
}

impl RedactionMethod {
    pub fn name(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Drop => "drop",
            Self::Mask => "mask",
            Self::Tokenize => "tokenize",
            Self::Generalize => "generalize",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelRule {
    action: RedactionMethod,
    class: ClassName,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelOverride {
    action: Option<RedactionMethod>,
    class: Option<ClassName>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryRule {
    category: String,
    class: ClassName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClassName {
    Public,
    Internal,
    Confidential,
    Restricted,
}

impl From<ClassName> for DataClass {
    fn from(name: ClassName) -> Self {
        match name {
            ClassName::Public => Self::Public,
            ClassName::Internal => Self::Internal,
            ClassName::Confidential => Self::Confidential,
            ClassName::Restricted => Self::Restricted,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantOverride {
    version: String,
    #[serde(default)]
    labels: BTreeMap<Label, LabelOverride>,
    #[serde(default)]
    categories: BTreeMap<String, CategoryRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: String,
    default_category: String,
    default_class: ClassName,
    #[serde(default)]
    secret_attribute_keys: Vec<String>,
    /// Fields whose whole value carries a label, whatever it looks like.
    #[serde(default)]
    fields: BTreeMap<String, Label>,
    categories: BTreeMap<String, CategoryRule>,
    labels: BTreeMap<Label, LabelRule>,
    #[serde(default)]
    tenants: BTreeMap<String, TenantOverride>,
}

/// Why a policy file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy file does not parse: {0}")]
    Parse(String),
    #[error("the policy has no rule for label {0}")]
    MissingLabel(&'static str),
    #[error("{scope}: secrets must be dropped, not handled with `{method}`")]
    SecretNotDropped { scope: String, method: &'static str },
    #[error("{scope}: `generalize` only applies to ip_address, not {label}")]
    CannotGeneralize { scope: String, label: &'static str },
}

/// The rules that apply to one tenant's events.
#[derive(Debug, Clone)]
pub struct TenantRules {
    /// The policy version recorded on every event sealed under these rules.
    pub version: String,
    label_methods: [RedactionMethod; 8],
    label_classes: [DataClass; 8],
    field_labels: Vec<(String, Label)>,
    categories: HashMap<String, (String, DataClass)>,
    default_category: String,
    default_class: DataClass,
    secret_attribute_keys: Vec<String>,
}

impl TenantRules {
    pub fn method(&self, label: Label) -> RedactionMethod {
        self.label_methods[label.index()]
    }

    pub fn class_of(&self, label: Label) -> DataClass {
        self.label_classes[label.index()]
    }

    /// The category of an action and its baseline class, from the action's namespace.
    pub fn category(&self, action: &str) -> (&str, DataClass) {
        let namespace = action.split('.').next().unwrap_or_default();
        self.categories.get(namespace).map_or(
            (self.default_category.as_str(), self.default_class),
            |(category, class)| (category.as_str(), *class),
        )
    }

    /// The label a field's whole value carries by policy, if any (for example names).
    pub fn field_label(&self, path: &str) -> Option<Label> {
        self.field_labels
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, label)| *label)
    }

    /// Whether an attribute with this key holds a secret whatever its content looks like.
    pub fn is_secret_key(&self, key: &str) -> bool {
        self.secret_attribute_keys
            .iter()
            .any(|secret| secret.eq_ignore_ascii_case(key))
    }
}

/// A loaded policy: default rules and the rules of tenants with overrides.
#[derive(Debug, Clone)]
pub struct Policy {
    default: TenantRules,
    tenants: HashMap<String, TenantRules>,
}

impl Policy {
    /// The policy shipped with sealtrail.
    pub const DEFAULT_TOML: &'static str = include_str!("../../schemas/policy.toml");

    pub fn default_policy() -> Self {
        Self::from_toml(Self::DEFAULT_TOML).expect("the shipped policy is valid")
    }

    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        let mut label_methods = [RedactionMethod::Keep; 8];
        let mut label_classes = [DataClass::Internal; 8];
        for label in Label::ALL {
            let rule = file.labels.get(&label).ok_or(PolicyError::MissingLabel(label.name()))?;
            label_methods[label.index()] = rule.action;
            label_classes[label.index()] = rule.class.into();
        }
        let categories: HashMap<String, (String, DataClass)> = file
            .categories
            .iter()
            .map(|(namespace, rule)| (namespace.clone(), (rule.category.clone(), rule.class.into())))
            .collect();
        let default = TenantRules {
            version: file.version.clone(),
            label_methods,
            label_classes,
            field_labels: file.fields.iter().map(|(path, label)| (path.clone(), *label)).collect(),
            categories,
            default_category: file.default_category.clone(),
            default_class: file.default_class.into(),
            secret_attribute_keys: file.secret_attribute_keys.clone(),
        };
        check_rules(&default, "the default rules")?;
        let mut tenants = HashMap::default();
        for (tenant, overrides) in &file.tenants {
            let mut rules = default.clone();
            rules.version = format!("{}+{tenant}.{}", file.version, overrides.version);
            for (label, rule) in &overrides.labels {
                if let Some(action) = rule.action {
                    rules.label_methods[label.index()] = action;
                }
                if let Some(class) = rule.class {
                    rules.label_classes[label.index()] = class.into();
                }
            }
            for (namespace, rule) in &overrides.categories {
                rules
                    .categories
                    .insert(namespace.clone(), (rule.category.clone(), rule.class.into()));
            }
            check_rules(&rules, &format!("the rules of tenant {tenant}"))?;
            tenants.insert(tenant.clone(), rules);
        }
        Ok(Self { default, tenants })
    }

    pub fn rules_for(&self, tenant_id: &str) -> &TenantRules {
        self.tenants.get(tenant_id).unwrap_or(&self.default)
    }

    pub fn version(&self) -> &str {
        &self.default.version
    }
}

fn check_rules(rules: &TenantRules, scope: &str) -> Result<(), PolicyError> {
    let secret = rules.method(Label::Secret);
    if secret != RedactionMethod::Drop {
        return Err(PolicyError::SecretNotDropped {
            scope: scope.to_owned(),
            method: secret.name(),
        });
    }
    for label in Label::ALL {
        if rules.method(label) == RedactionMethod::Generalize && label != Label::IpAddress {
            return Err(PolicyError::CannotGeneralize {
                scope: scope.to_owned(),
                label: label.name(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_indexes_its_place_in_all() {
        for (position, label) in Label::ALL.into_iter().enumerate() {
            assert_eq!(label.index(), position, "{label:?}");
        }
    }

    #[test]
    fn the_shipped_policy_loads_with_its_tenant_overrides() {
        let policy = Policy::default_policy();
        let default = policy.rules_for("any-tenant");
        assert_eq!(default.method(Label::PaymentCard), RedactionMethod::Mask);
        assert_eq!(default.method(Label::Secret), RedactionMethod::Drop);
        assert_eq!(default.category("billing.refund.posted").0, "billing");
        assert_eq!(default.category("unheard.of").0, "other");
        let bank = policy.rules_for("acme-bank");
        assert_ne!(bank.version, default.version);
        assert!(bank.version.starts_with(&default.version));
    }

    #[test]
    fn a_policy_that_keeps_secrets_is_refused() {
        let text = Policy::DEFAULT_TOML.replace("secret = { action = \"drop\"", "secret = { action = \"keep\"");
        assert!(matches!(
            Policy::from_toml(&text),
            Err(PolicyError::SecretNotDropped { .. })
        ));
    }
}
