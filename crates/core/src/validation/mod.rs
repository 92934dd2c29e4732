//! Validation as kube-apiserver does it: names per kind, label and annotation syntax (here), and
//! the rules of built-in kinds ([`kinds`]).

pub mod kinds;

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

/// Whether `s` is the name part of a qualified name: at most 63 characters, alphanumerics, `-`,
/// `_` and `.`, alphanumeric at both ends.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label key or value, or an annotation key, that breaks kube-apiserver's syntax; it displays as
/// kube-apiserver words the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSyntax(&'static str);

/// Checks a qualified name (label and annotation keys, finalizers): `[prefix/]name`, the prefix a
/// DNS subdomain.
pub fn validate_qualified_name(key: &str) -> Result<(), InvalidSyntax> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|p| p.is_empty() || !is_dns_subdomain(p)) {
        return Err(InvalidSyntax(
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
        ));
    }
    if !is_qualified_name_part(name) {
        return Err(InvalidSyntax(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc'), and be at most 63 characters",
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or a qualified name part.
pub fn validate_label_value(value: &str) -> Result<(), InvalidSyntax> {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(InvalidSyntax(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345'), and be at most 63 characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values_are_validated_as_kube_apiserver_does() {
        for ok in ["app", "app.kubernetes.io/name", "a_b.c-d", "example.com/A1"] {
            assert!(validate_qualified_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "/a", "Example.com/a", "a/b/c", &"x".repeat(64)] {
            assert!(validate_qualified_name(bad).is_err(), "{bad}");
        }
        assert!(validate_label_value("").is_ok() && validate_label_value("v1.2_x").is_ok());
        assert!(validate_label_value("bad value").is_err() && validate_label_value(&"x".repeat(64)).is_err());
    }

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
