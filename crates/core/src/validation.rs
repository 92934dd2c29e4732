//! Validation of names as kube-apiserver does it per kind.

/// The rule an object name must follow, as kube-apiserver validates it per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 DNS label: namespaces.
    DnsLabel,
    /// RFC 1123 DNS subdomain: most kinds.
    DnsSubdomain,
    /// Any string usable as a URL path segment: RBAC kinds.
    PathSegment,
}

/// Whether `s` is an RFC 1123 DNS label: lower-case letters, digits and `-`, alphanumeric at both
/// ends, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is an RFC 1123 DNS subdomain: DNS labels joined by `.`, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Whether `s` is an RFC 1035 DNS label: a DNS label that starts with a letter (CRD plurals,
/// kinds, version names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// A name that breaks its [`NameRule`]; it displays as kube-apiserver words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.rule, .name))]
pub struct InvalidName {
    /// The rule broken.
    pub rule: NameRule,
    /// The name.
    pub name: String,
}

/// Checks a name against a rule.
pub fn validate_name(name: &str, rule: NameRule) -> Result<(), InvalidName> {
    let ok = match rule {
        NameRule::DnsLabel => is_dns_label(name),
        NameRule::DnsSubdomain => is_dns_subdomain(name),
        NameRule::PathSegment => {
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%', '\\', '\0'])
        }
    };
    if ok { Ok(()) } else { Err(InvalidName { rule, name: name.to_string() }) }
}

fn describe(rule: &NameRule, name: &str) -> String {
    match rule {
        NameRule::DnsLabel => format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), got {name:?}"
        ),
        NameRule::DnsSubdomain => format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com'), got {name:?}"
        ),
        NameRule::PathSegment => {
            format!("may not be '.' or '..' and may not contain '/', '%' or '\\', got {name:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_per_kind() {
        for bad in ["../etc", "a/b", "..", "Upper", "-a", "a-", "", "a..b"] {
            assert!(validate_name(bad, NameRule::DnsSubdomain).is_err(), "{bad}");
        }
        assert!(validate_name("web.example-1", NameRule::DnsSubdomain).is_ok());
        assert!(validate_name("a.b", NameRule::DnsLabel).is_err());
        assert!(validate_name("system:controller", NameRule::PathSegment).is_ok());
        for bad in ["..", ".", "a/b", "a%2F"] {
            assert!(validate_name(bad, NameRule::PathSegment).is_err(), "{bad}");
        }
    }
}
