//! Machine callers authenticated by a client certificate (mTLS): the API's TLS asks for one and
//! checks it against the client CA it was given (`--tls-client-ca`); this file maps each
//! certificate's common name to the tenant and roles it may act as. A certificate whose name is
//! not mapped identifies nobody: its caller is refused unless it also sends a bearer credential,
//! which then decides.

use std::collections::HashMap;

use sealtrail_http::ClientCertificate;

use super::{Caller, Role};

/// Common name -> (tenant, roles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentities {
    by_name: HashMap<String, (String, Vec<Role>)>,
}

/// Why an identities file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("client identities line {line}: {problem} (expected `<certificate common name> <tenant> <role>[,<role>...]`)")]
pub struct IdentitiesError {
    pub line: usize,
    pub problem: String,
}

impl ClientIdentities {
    /// One `<common name> <tenant> <role>[,<role>...]` per line; blank lines and `#` comments are
    /// skipped.
    pub fn parse(text: &str) -> Result<Self, IdentitiesError> {
        let mut by_name = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let refuse = |problem: String| IdentitiesError {
                line: index + 1,
                problem,
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, tenant, roles] = fields[..] else {
                return Err(refuse("three fields".to_owned()));
            };
            if !sealtrail_core::validate::is_valid_tenant_id(tenant) {
                return Err(refuse(format!("`{tenant}` is not a valid tenant id")));
            }
            let roles = roles
                .split(',')
                .map(|role| Role::from_name(role).ok_or_else(|| refuse(format!("unknown role `{role}`"))))
                .collect::<Result<Vec<_>, _>>()?;
            if by_name.insert(name.to_owned(), (tenant.to_owned(), roles)).is_some() {
                return Err(refuse(format!("`{name}` is mapped twice")));
            }
        }
        Ok(Self { by_name })
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The caller a verified certificate stands for, if its name is mapped.
    pub fn caller(&self, certificate: &ClientCertificate) -> Option<Caller> {
        let (tenant, roles) = self.by_name.get(&certificate.common_name)?;
        Some(Caller {
            subject: format!("cert:{}", certificate.common_name),
            tenant: tenant.clone(),
            roles: roles.clone(),
            platform_tenants: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_a_tenant_and_roles_and_mistakes_are_named() {
        let identities = ClientIdentities::parse("# machines\nexporter-1 acme compliance,auditor\n").expect("parsed");
        let caller = identities
            .caller(&ClientCertificate {
                common_name: "exporter-1".to_owned(),
            })
            .expect("mapped");
        assert_eq!(caller.tenant, "acme");
        assert_eq!(caller.roles, vec![Role::Compliance, Role::Auditor]);
        assert!(
            identities
                .caller(&ClientCertificate {
                    common_name: "other".to_owned()
                })
                .is_none()
        );
        assert_eq!(ClientIdentities::parse("a acme janitor").expect_err("refused").line, 1);
        assert!(
            ClientIdentities::parse("a acme auditor\na globex auditor").is_err(),
            "mapped twice"
        );
    }
}
