//! Label and field selectors, parsed as kube-apiserver parses them.

use crate::status::{ApiResult, StatusError};

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Exists,
    DoesNotExist,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    GreaterThan(i64),
    LessThan(i64),
}

/// A `metav1.LabelSelector` (or a plain map of labels, as a ReplicationController's selector) in
/// the selector syntax, requirements ordered by key as kube-apiserver prints them
/// (`app=web,tier in (a,b),!old`); `None` for an operator or a value it cannot have.
pub fn label_selector_text(selector: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let structured = selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some();
    let labels = if structured { selector.get("matchLabels") } else { Some(selector) };
    let mut terms: Vec<(String, String)> = Vec::new();
    for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
        terms.push((k.clone(), format!("{k}={}", v.as_str()?)));
    }
    for expression in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expression.get("key")?.as_str()?;
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let term = match expression.get("operator")?.as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        terms.push((key.to_string(), term));
    }
    terms.sort_by(|a, b| a.0.cmp(&b.0));
    Some(terms.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(","))
}

/// A label selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<(String, Op)>,
}

fn is_key(s: &str) -> bool {
    let (prefix, name) = s.rsplit_once('/').map_or((None, s), |(p, n)| (Some(p), n));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    });
    name_ok && prefix_ok
}

fn is_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),!h,i`.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let bad = |why: String| StatusError::bad_request(format!("unable to parse requirement: {why}"));
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector { requirements });
        }
        for part in split_top_level(s) {
            let part = part.trim();
            let (key, op) = if let Some(key) = part.strip_prefix('!') {
                (key.trim(), Op::DoesNotExist)
            } else if let Some((key, rest)) = split_word(part, " notin ") {
                (key, Op::NotIn(parse_set(rest).ok_or_else(|| bad(format!("invalid set in {part:?}")))?))
            } else if let Some((key, rest)) = split_word(part, " in ") {
                (key, Op::In(parse_set(rest).ok_or_else(|| bad(format!("invalid set in {part:?}")))?))
            } else if let Some((key, value)) = part.split_once("!=") {
                (key.trim(), Op::NotEquals(value.trim().to_string()))
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (key.trim(), Op::Equals(value.trim().to_string()))
            } else if let Some((key, value)) = part.split_once('>') {
                (
                    key.trim(),
                    Op::GreaterThan(value.trim().parse().map_err(|_| bad(format!("{value:?} is not an integer")))?),
                )
            } else if let Some((key, value)) = part.split_once('<') {
                (
                    key.trim(),
                    Op::LessThan(value.trim().parse().map_err(|_| bad(format!("{value:?} is not an integer")))?),
                )
            } else {
                (part, Op::Exists)
            };
            if !is_key(key) {
                return Err(bad(format!("invalid label key {key:?}")));
            }
            let values: Vec<&String> = match &op {
                Op::Equals(v) | Op::NotEquals(v) => vec![v],
                Op::In(vs) | Op::NotIn(vs) => vs.iter().collect(),
                _ => vec![],
            };
            if let Some(v) = values.into_iter().find(|v| !is_value(v)) {
                return Err(bad(format!("invalid label value {v:?}")));
            }
            requirements.push((key.to_string(), op));
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether the labels, looked up by `label`, satisfy every requirement.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|(key, op)| {
            let value = label(key);
            match op {
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::Equals(v) => value == Some(v.as_str()),
                Op::NotEquals(v) => value != Some(v.as_str()),
                Op::In(vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
                Op::NotIn(vs) => value.is_none_or(|x| !vs.iter().any(|v| v == x)),
                Op::GreaterThan(n) => value.and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x > *n),
                Op::LessThan(n) => value.and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x < *n),
            }
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn split_word<'a>(s: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    s.split_once(word).map(|(k, r)| (k.trim(), r.trim()))
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

/// A field selector: `field=value`, `field==value`, `field!=value`, comma-separated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses a field selector, accepting only the fields in `supported`.
    pub fn parse(s: &str, supported: &[&str]) -> ApiResult<Self> {
        let mut requirements = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(StatusError::bad_request(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(StatusError::bad_request(format!("field label not supported: {field}")));
            }
            requirements.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the object's fields satisfy every requirement; `field` reads a field's value.
    pub fn matches(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|(name, equal, value)| {
            let actual = field(name).unwrap_or_default();
            (actual == *value) == *equal
        })
    }

    /// The fields the selector reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|(f, _, _)| f.as_str())
    }

    /// The value required for `field` with `=`, when there is one (used to narrow a lookup).
    pub fn equal_to(&self, field: &str) -> Option<&str> {
        self.requirements.iter().find(|(f, eq, _)| f == field && *eq).map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::status::Reason;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_label_operator() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        for (sel, expected) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web,db)", false),
            ("tier notin (back)", true),
            ("app,tier", true),
            ("!app", false),
            ("!missing", true),
            ("missing", false),
            ("n>3", true),
            ("n<3", false),
            ("app=web,tier in (front, back),!x", true),
            ("example.com/key!=v", true),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(|k| l.get(k).map(String::as_str)), expected, "{sel}");
        }
        for bad in ["app in (web", "=x", "a b=c", "app=in valid", "n>x", "-a=b"] {
            let e = LabelSelector::parse(bad).unwrap_err();
            assert_eq!((e.code, e.reason), (400, Reason::BadRequest), "{bad}");
        }
    }

    #[test]
    fn field_selectors_reject_unknown_fields() {
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=b", &["metadata.name", "metadata.namespace"])
            .unwrap();
        assert!(f.matches(|n| Some(if n == "metadata.name" { "a" } else { "c" }.into())));
        assert!(!f.matches(|_| Some("b".into())));
        assert_eq!(f.equal_to("metadata.name"), Some("a"));
        let e = FieldSelector::parse("spec.foo=1", &["metadata.name"]).unwrap_err();
        assert_eq!((e.code, e.reason), (400, Reason::BadRequest));
        assert!(FieldSelector::parse("garbage", &["metadata.name"]).is_err());
    }
}
