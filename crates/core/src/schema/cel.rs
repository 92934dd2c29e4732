//! CEL validation rules (`x-kubernetes-validations`), evaluated with cel-rust as apiextensions
//! evaluates them with cel-go: `self` is the value at the rule's schema node, `oldSelf` the value
//! it replaces (transition rules run only on updates, or always with `optionalOldSelf`), and a
//! failed rule reports its `message`, `messageExpression`, `fieldPath` and `reason`.
//!
//! Besides CEL's standard library and cel-rust's strings and lists extensions, the Kubernetes
//! functions rules use in practice: `isSorted`, `sum`, `min`, `max`, `indexOf` on lists; `find`,
//! `findAll` on strings; `url`, `isURL` and the URL getters; `quantity`, `isQuantity` and the
//! comparisons of quantities (a quantity is carried as its approximate number); the `format`
//! library (`format.dns1123Label().validate(s)`, `format.named(name)`).
//!
//! A rule's cost is bounded before it runs: the size of `self` raised to one more than the number
//! of comprehensions in the rule must stay under Kubernetes' per-call limit, so no rule can stall
//! the server on a large object.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use cel::extractors::This;
use cel::{Context, Env, ExecutionError, Program};
use serde_json::Value;

use super::Node;
use crate::field::{FieldError, FieldErrorType};

/// Kubernetes' `PerCallLimit`: the most a single rule may cost.
const PER_CALL_LIMIT: u64 = 1_000_000;
/// Compiled rules kept; a cache, cleared when full.
const MAX_PROGRAMS: usize = 4096;
/// The longest rule compiled (Kubernetes bounds rules by cost; this bounds the parser).
const MAX_RULE_LEN: usize = 16 * 1024;

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // Declarations of fixed overloads: they cannot fail on a fresh standard library.
    let _ = env.add_extension(cel::extensions::strings);
    let _ = env.add_extension(cel::extensions::lists);
    let _ = env.add_extension(format_library);
    Arc::new(env)
});

/// Kubernetes' `format` library: `format.dns1123Label().validate(s)` is `optional.none()` when `s`
/// is one, else the list of what is wrong; `format.named("uuid")` finds a format by name. A format
/// is carried as its name.
type CowVal<'b, 'v> = cel::common::value::CowVal<'b, 'v>;
type Overload = for<'b, 'v> fn(Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError>;

/// The formats, and one constructor each (`format.uuid()`): CEL overloads are plain functions.
macro_rules! formats {
    ($($name:literal),* $(,)?) => {
        const FORMATS: &[&str] = &[$($name),*];

        fn constructors() -> Vec<(&'static str, Overload)> {
            vec![$({
                fn constructor<'b, 'v>(_: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
                    Ok(CowVal::owned(cel::common::types::CelString::from($name)))
                }
                ($name, constructor as Overload)
            }),*]
        }
    };
}

formats!(
    "dns1123Label",
    "dns1123Subdomain",
    "dns1035Label",
    "qualifiedName",
    "dns1123LabelPrefix",
    "dns1123SubdomainPrefix",
    "dns1035LabelPrefix",
    "labelValue",
    "uri",
    "uuid",
    "byte",
    "date",
    "datetime",
);

fn format_library(env: &mut Env) -> Result<(), cel::DeclarationError> {
    use cel::common::types::STRING_TYPE;
    let constructors = constructors();
    for (name, constructor) in constructors {
        env.add_overload(&format!("format.{name}"), &format!("format_{name}"), vec![], constructor)?;
    }
    env.add_overload("format.named", "format_named", vec![STRING_TYPE], format_named)?;
    env.add_member_overload("validate", "format_validate", STRING_TYPE, vec![STRING_TYPE], format_validate)?;
    Ok(())
}

fn string_arg<'a>(args: &'a [CowVal<'_, '_>], i: usize) -> Result<&'a str, ExecutionError> {
    args.get(i)
        .and_then(|a| a.downcast_ref::<cel::common::types::CelString>())
        .map(|s| s.inner())
        .ok_or_else(|| ExecutionError::function_error("format", "expected a string"))
}

fn format_named<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    use cel::common::types::{CelOptional, CelString};
    let name = string_arg(&args, 0)?;
    Ok(match FORMATS.contains(&name) {
        true => CowVal::owned(CelOptional::of(Box::new(CelString::from(name.to_string())))),
        false => CowVal::owned(CelOptional::none()),
    })
}

fn format_validate<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    use cel::common::types::{CelList, CelOptional, CelString};
    use cel::common::value::Val;
    let (format, value) = (string_arg(&args, 0)?, string_arg(&args, 1)?);
    let errors = format_errors(format, value);
    Ok(match errors.is_empty() {
        true => CowVal::owned(CelOptional::none()),
        false => {
            let list: Vec<Box<dyn Val>> =
                errors.into_iter().map(|e| Box::new(CelString::from(e)) as Box<dyn Val>).collect();
            CowVal::owned(CelOptional::of(Box::new(CelList::from(list))))
        }
    })
}

/// What is wrong with `value` in `format`, as Kubernetes' validators word it.
fn format_errors(format: &str, value: &str) -> Vec<String> {
    use crate::validation::{NameRule, is_dns1035_label, validate_label_value, validate_name, validate_qualified_name};
    let prefix = |s: &str| format!("{s}a");
    let dns1035 = |s: &str| {
        match is_dns1035_label(s) {
        true => Vec::new(),
        false => vec!["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character".to_string()],
    }
    };
    let name = |s: &str, rule| validate_name(s, rule).err().map(|e| e.to_string()).into_iter().collect::<Vec<_>>();
    match format {
        "dns1123Label" => name(value, NameRule::DnsLabel),
        "dns1123LabelPrefix" => name(&prefix(value), NameRule::DnsLabel),
        "dns1123Subdomain" => name(value, NameRule::DnsSubdomain),
        "dns1123SubdomainPrefix" => name(&prefix(value), NameRule::DnsSubdomain),
        "dns1035Label" => dns1035(value),
        "dns1035LabelPrefix" => dns1035(&prefix(value)),
        "qualifiedName" => validate_qualified_name(value).err().map(|e| e.to_string()).into_iter().collect(),
        "labelValue" => validate_label_value(value).err().map(|e| e.to_string()).into_iter().collect(),
        "uri" | "uuid" | "byte" | "date" | "datetime" => match super::validate::is_format(format, value) {
            true => Vec::new(),
            false => vec![format!("does not match the {format} format")],
        },
        _ => vec![format!("unknown format {format}")],
    }
}

/// A rule compiled, or why it does not compile.
type Compiled = Result<Arc<Program>, RuleError>;

/// Why a rule cannot be compiled.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum RuleError {
    /// Longer than [`MAX_RULE_LEN`].
    #[error("the rule is longer than {MAX_RULE_LEN} bytes")]
    TooLong,
    /// cel's parse errors, as text: the cache keeps them, and they are not `Clone`.
    #[error("{0}")]
    Syntax(String),
}

static PROGRAMS: LazyLock<Mutex<HashMap<String, Compiled>>> = LazyLock::new(Mutex::default);

/// The rule compiled, or why it does not compile.
pub(crate) fn compile(rule: &str) -> Compiled {
    if rule.len() > MAX_RULE_LEN {
        return Err(RuleError::TooLong);
    }
    let mut cache = PROGRAMS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(compiled) = cache.get(rule) {
        return compiled.clone();
    }
    if cache.len() >= MAX_PROGRAMS {
        cache.clear();
    }
    let compiled = ENV.compile(rule).map(Arc::new).map_err(|e| RuleError::Syntax(e.to_string()));
    cache.insert(rule.to_string(), compiled.clone());
    compiled
}

/// The compilation errors of the rules of one schema node, at `path` (the node's path).
pub(super) fn rule_errors(schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let rules = schema.get("x-kubernetes-validations").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}.x-kubernetes-validations[{i}]");
        for key in ["rule", "messageExpression"] {
            let Some(source) = rule.get(key).and_then(Value::as_str) else { continue };
            if let Err(e) = compile(source) {
                let detail = format!("compilation failed: {e}");
                errors.push(FieldError::invalid(format!("{at}.{key}"), Value::String(source.to_string()), detail));
            }
        }
    }
}

impl Node<'_> {
    /// Evaluates the node's `x-kubernetes-validations` on `value` (replacing `old`).
    pub(super) fn check_rules(&self, value: &Value, old: Option<&Value>, path: &str, errors: &mut Vec<FieldError>) {
        let Some(rules) = self.value.get("x-kubernetes-validations").and_then(Value::as_array) else { return };
        // Timed by the bench's `write-costs` (issue 15).
        let _cost = tracing::trace_span!(target: "gitbacked::cost", "cel").entered();
        let this = self.cel_value(value, 0);
        let before = old.map(|o| self.cel_value(o, 0));
        let size = nodes(value, PER_CALL_LIMIT);
        let type_name = self.str("type").unwrap_or("object");
        for rule in rules {
            let source = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            let Ok(program) = compile(source) else { continue };
            let transition = program.references().has_variable("oldSelf");
            let optional_old = rule.get("optionalOldSelf").and_then(Value::as_bool) == Some(true);
            if transition && before.is_none() && !optional_old {
                continue;
            }
            let at = match rule.get("fieldPath").and_then(Value::as_str) {
                Some(relative) if path.is_empty() => relative.trim_start_matches('.').to_string(),
                Some(relative) => format!("{path}{relative}"),
                None => path.to_string(),
            };
            let invalid = |detail: String| FieldError::invalid(at.clone(), Value::String(type_name.into()), detail);
            if cost(source, size) > PER_CALL_LIMIT {
                errors.push(invalid(format!("call cost exceeds limit for rule: {source}")));
                continue;
            }
            let context = context(&this, before.as_ref(), transition && optional_old);
            match program.execute(&context) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => {
                    let message = rule_message(rule, &context, source);
                    errors.push(match rule.get("reason").and_then(Value::as_str) {
                        Some("FieldValueForbidden") => FieldError::forbidden(at.clone(), message),
                        Some("FieldValueRequired") => FieldError::required(at.clone(), message),
                        Some("FieldValueDuplicate") => FieldError {
                            field: at.clone(),
                            kind: FieldErrorType::Duplicate(Value::String(type_name.into())),
                            detail: message,
                        },
                        _ => invalid(message),
                    });
                }
                Ok(other) => {
                    errors.push(invalid(format!("rule did not evaluate to a boolean but to {other:?}: {source}")))
                }
                Err(e) => errors.push(invalid(format!("{e} evaluating rule: {source}"))),
            }
        }
    }

    /// `value` as CEL sees it: declared property names escaped (`x-foo` is `self.x__dash__foo`),
    /// numbers of a `number` schema as doubles, `date-time` strings as timestamps and `duration`
    /// strings as durations.
    fn cel_value(&self, value: &Value, depth: usize) -> cel::Value {
        if depth > crate::limits::MAX_DEPTH {
            return cel::Value::Null;
        }
        match value {
            Value::Null => cel::Value::Null,
            Value::Bool(b) => cel::Value::Bool(*b),
            Value::Number(n) if self.str("type") == Some("number") => cel::Value::Float(n.as_f64().unwrap_or_default()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => cel::Value::Int(i),
                None => n
                    .as_u64()
                    .map(cel::Value::UInt)
                    .unwrap_or_else(|| cel::Value::Float(n.as_f64().unwrap_or_default())),
            },
            Value::String(s) => match self.str("format") {
                Some("date-time") => chrono::DateTime::parse_from_rfc3339(s)
                    .map(cel::Value::Timestamp)
                    .unwrap_or_else(|_| cel::Value::String(Arc::new(s.clone()))),
                _ => cel::Value::String(Arc::new(s.clone())),
            },
            Value::Array(items) => {
                let node = self.items();
                let item = |v: &Value| node.map_or_else(|| json_to_cel(v, depth + 1), |n| n.cel_value(v, depth + 1));
                cel::Value::List(Arc::new(items.iter().map(item).collect()))
            }
            Value::Object(map) => {
                let declared = self.properties();
                let entries = map.iter().map(|(key, child)| {
                    let name = match declared.is_some_and(|p| p.contains_key(key)) {
                        true => escape(key),
                        false => key.clone(),
                    };
                    let converted = match self.field(key) {
                        Some(node) if !(self.holds_object() && key == "metadata") => node.cel_value(child, depth + 1),
                        _ => json_to_cel(child, depth + 1),
                    };
                    (cel::objects::Key::String(Arc::new(name)), converted)
                });
                cel::Value::Map(cel::objects::Map { map: Arc::new(entries.collect()) })
            }
        }
    }
}

/// A value with no schema, as CEL sees JSON.
fn json_to_cel(value: &Value, depth: usize) -> cel::Value {
    static OPEN: Value = Value::Null;
    Node::resolve(&OPEN).cel_value(value, depth)
}

/// A property name as a CEL identifier, escaped as Kubernetes escapes it.
fn escape(name: &str) -> String {
    const RESERVED: [&str; 18] = [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
    ];
    if RESERVED.contains(&name) {
        return format!("__{name}__");
    }
    let mut escaped = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        let (piece, len) = match c {
            '_' if rest.starts_with("__") => ("__underscores__", 2),
            '.' => ("__dot__", 1),
            '-' => ("__dash__", 1),
            '/' => ("__slash__", 1),
            _ => {
                escaped.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
        };
        escaped.push_str(piece);
        rest = &rest[len..];
    }
    escaped
}

/// How many values `value` holds, counted up to `cap`.
fn nodes(value: &Value, cap: u64) -> u64 {
    let mut count = 0u64;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        count += 1;
        if count >= cap {
            return cap;
        }
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    count
}

/// An upper bound of a rule's cost on a value of `size` nodes: each comprehension may visit
/// every node for each visit of the one around it.
fn cost(rule: &str, size: u64) -> u64 {
    let comprehensions = ["all(", "exists(", "exists_one(", "map(", "filter(", "sortBy("]
        .iter()
        .map(|m| rule.matches(&format!(".{m}")).count() as u32)
        .sum::<u32>();
    size.max(1).saturating_pow(comprehensions + 1)
}

/// The rule's message: its `messageExpression` when that evaluates to a non-empty string, its
/// `message`, or `failed rule: <rule>`.
fn rule_message(rule: &Value, context: &Context<'_, '_>, source: &str) -> String {
    let evaluated = rule
        .get("messageExpression")
        .and_then(Value::as_str)
        .and_then(|e| compile(e).ok())
        .and_then(|p| p.execute(context).ok())
        .and_then(|v| match v {
            cel::Value::String(s) if !s.trim().is_empty() => Some(s.to_string()),
            _ => None,
        });
    evaluated
        .or_else(|| rule.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| format!("failed rule: {source}"))
}

/// A context with `self`, `oldSelf` (an optional with `optionalOldSelf`) and the Kubernetes
/// functions.
fn context(this: &cel::Value, old: Option<&cel::Value>, optional_old: bool) -> Context<'static, 'static> {
    let mut context = Context::with_env(ENV.clone());
    context.add_variable_from_value("self", this.clone());
    match (old, optional_old) {
        (Some(old), false) => context.add_variable_from_value("oldSelf", old.clone()),
        (old, true) => {
            let inner = old.and_then(|o| Box::<dyn cel::common::value::Val>::try_from(o.clone()).ok());
            context.add_variable_as_val("oldSelf", Box::new(cel::common::types::CelOptional::from(inner)));
        }
        (None, false) => {}
    }
    kubernetes_library(&mut context);
    context
}

type CelResult = Result<cel::Value, ExecutionError>;

/// The Kubernetes CEL libraries (lists, regex, URLs, quantities) that cel-rust lacks. Each is
/// declared once on a fresh context; a name clash would be a programming error, so it is skipped.
fn kubernetes_library(context: &mut Context<'_, '_>) {
    let _ = context.add_function("isSorted", |This(list): This<Arc<Vec<cel::Value>>>| {
        list.windows(2).all(|w| w[0].partial_cmp(&w[1]).is_some_and(|o| o.is_le()))
    });
    let _ = context.add_function("sum", |This(list): This<Arc<Vec<cel::Value>>>| -> CelResult {
        let mut ints = 0i64;
        let mut floats = 0f64;
        let mut any_float = false;
        for item in list.iter() {
            match item {
                cel::Value::Int(i) => {
                    ints = ints.checked_add(*i).ok_or_else(|| ExecutionError::function_error("sum", "overflow"))?
                }
                cel::Value::UInt(u) => ints = ints.saturating_add(i64::try_from(*u).unwrap_or(i64::MAX)),
                cel::Value::Float(f) => {
                    floats += f;
                    any_float = true;
                }
                other => return Err(ExecutionError::function_error("sum", format!("cannot sum {other:?}"))),
            }
        }
        Ok(if any_float { cel::Value::Float(floats + ints as f64) } else { cel::Value::Int(ints) })
    });
    let _ = context.add_function("indexOf", |This(list): This<Arc<Vec<cel::Value>>>, item: cel::Value| {
        list.iter().position(|v| *v == item).map_or(-1, |i| i as i64)
    });
    let _ = context.add_function("lastIndexOf", |This(list): This<Arc<Vec<cel::Value>>>, item: cel::Value| {
        list.iter().rposition(|v| *v == item).map_or(-1, |i| i as i64)
    });
    let _ = context.add_function("find", |This(s): This<Arc<String>>, pattern: Arc<String>| -> CelResult {
        let found = regex(&pattern)?.find(&s).map(|m| m.as_str().to_string()).unwrap_or_default();
        Ok(cel::Value::String(Arc::new(found)))
    });
    let _ = context.add_function("findAll", |This(s): This<Arc<String>>, pattern: Arc<String>| -> CelResult {
        let compiled = regex(&pattern)?;
        let all = compiled.find_iter(&s).map(|m| cel::Value::String(Arc::new(m.as_str().to_string())));
        Ok(cel::Value::List(Arc::new(all.collect())))
    });
    let _ = context.add_function("isURL", |s: Arc<String>| parse_url(&s).is_some());
    let _ = context.add_function("url", |s: Arc<String>| -> CelResult {
        parse_url(&s)
            .map(|_| cel::Value::String(s.clone()))
            .ok_or_else(|| ExecutionError::function_error("url", format!("URL parse error: {s}")))
    });
    for (name, part) in
        [("getScheme", 0), ("getHost", 1), ("getHostname", 2), ("getPort", 3), ("getEscapedPath", 4), ("getQuery", 5)]
    {
        let _ = context.add_function(name, move |This(s): This<Arc<String>>| {
            parse_url(&s).map(|parts| parts[part].clone()).unwrap_or_default()
        });
    }
    let _ = context.add_function("isQuantity", |s: Arc<String>| crate::quantity::parse(&s).is_some());
    let _ = context.add_function("quantity", |s: Arc<String>| -> CelResult {
        crate::quantity::parse(&s)
            .map(cel::Value::Float)
            .ok_or_else(|| ExecutionError::function_error("quantity", format!("invalid quantity: {s}")))
    });
    let _ = context.add_function("isLessThan", |This(a): This<f64>, b: f64| a < b);
    let _ = context.add_function("isGreaterThan", |This(a): This<f64>, b: f64| a > b);
    let _ = context.add_function("compareTo", |This(a): This<f64>, b: f64| a.partial_cmp(&b).map_or(0, |o| o as i64));
    let _ = context.add_function("asApproximateFloat", |This(a): This<f64>| a);
    let _ = context.add_function("isInteger", |This(a): This<f64>| a.fract() == 0.0 && a.abs() < 9.2e18);
    let _ = context.add_function("asInteger", |This(a): This<f64>| -> CelResult {
        match a.fract() == 0.0 && a.abs() < 9.2e18 {
            true => Ok(cel::Value::Int(a as i64)),
            false => Err(ExecutionError::function_error("asInteger", "cannot convert value to integer")),
        }
    });
    let _ = context.add_function("sign", |This(a): This<f64>| {
        if a > 0.0 {
            1i64
        } else if a < 0.0 {
            -1
        } else {
            0
        }
    });
}

fn regex(pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().map_err(|e| ExecutionError::function_error("find", e))
}

/// An absolute URL's scheme, host, hostname, port, escaped path and query.
fn parse_url(s: &str) -> Option<[String; 6]> {
    let (scheme, rest) = s.split_once("://")?;
    let valid_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid_scheme || s.contains(char::is_whitespace) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..end].rsplit_once('@').map_or(&rest[..end], |(_, h)| h);
    let (hostname, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let (address, after) = v6.split_once(']')?;
            (address, after.strip_prefix(':').unwrap_or_default())
        }
        None => host.split_once(':').unwrap_or((host, "")),
    };
    if !port.is_empty() && port.parse::<u16>().is_err() {
        return None;
    }
    let tail = &rest[end..];
    let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    Some([scheme, host, hostname, port, path, query].map(str::to_string))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::registry::crd_resource_type;
    use crate::schema::Node;

    fn check(schema: serde_json::Value, value: serde_json::Value, old: Option<serde_json::Value>) -> Vec<String> {
        let rt =
            crd_resource_type(&json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com",
            "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": schema}}}}]}}))
            .unwrap();
        let node = Node::of(&rt, "v1").unwrap();
        let old = old.map(|o| json!({"spec": o}));
        node.validate(&json!({"spec": value}), old.as_ref()).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rules_report_as_kubernetes_does() {
        let schema = json!({"type": "object", "properties": {
            "replicas": {"type": "integer"}, "maxReplicas": {"type": "integer"},
            "x-name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
            "memory": {"type": "string"}, "endpoint": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "self.replicas <= self.maxReplicas", "message": "replicas must not exceed maxReplicas"},
            {"rule": "self.x__dash__name.startsWith('a')", "fieldPath": ".x-name", "reason": "FieldValueForbidden"},
            {"rule": "self.tags.isSorted() && size(self.tags) == self.tags.distinct().size()",
                "messageExpression": "'tags must be sorted, got ' + self.tags.join(',')"},
            {"rule": "quantity(self.memory).isLessThan(quantity('1Gi'))", "message": "too much memory"},
            {"rule": "isURL(self.endpoint) && url(self.endpoint).getScheme() == 'https'"},
            {"rule": "self.replicas >= oldSelf.replicas", "message": "cannot scale down"},
        ]});
        let value = json!({"replicas": 5, "maxReplicas": 3, "x-name": "bob", "tags": ["b", "a"], "memory": "2Gi",
            "endpoint": "http://example.com/x"});
        assert_eq!(
            check(schema.clone(), value.clone(), None),
            [
                "spec: Invalid value: \"object\": replicas must not exceed maxReplicas",
                "spec.x-name: Forbidden: failed rule: self.x__dash__name.startsWith('a')",
                "spec: Invalid value: \"object\": tags must be sorted, got b,a",
                "spec: Invalid value: \"object\": too much memory",
                "spec: Invalid value: \"object\": failed rule: isURL(self.endpoint) && url(self.endpoint).getScheme() == 'https'",
            ]
        );
        let good = json!({"replicas": 2, "maxReplicas": 3, "x-name": "al", "tags": ["a", "b"], "memory": "512Mi",
            "endpoint": "https://example.com:8443/x?y=1"});
        assert!(check(schema.clone(), good.clone(), None).is_empty());
        // A transition rule runs on updates only.
        let mut fewer = good.clone();
        fewer["replicas"] = json!(1);
        assert_eq!(check(schema, fewer, Some(good)), ["spec: Invalid value: \"object\": cannot scale down"]);
    }

    #[test]
    fn the_format_library_validates_names_and_formats() {
        let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "id": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "!format.dns1123Label().validate(self.name).hasValue()", "message": "name is not a DNS label"},
            {"rule": "format.named('uuid').value().validate(self.id).orValue([]).size() == 0", "message": "id is not a uuid"},
            {"rule": "!format.named('nonsense').hasValue()"},
        ]});
        assert!(
            check(schema.clone(), json!({"name": "web-1", "id": "123e4567-e89b-12d3-a456-426614174000"}), None)
                .is_empty()
        );
        assert_eq!(
            check(schema, json!({"name": "Web_1", "id": "x"}), None),
            [
                "spec: Invalid value: \"object\": name is not a DNS label",
                "spec: Invalid value: \"object\": id is not a uuid"
            ]
        );
    }

    #[test]
    fn optional_old_self_and_costs() {
        let schema = json!({"type": "object", "properties": {"id": {"type": "string"},
            "items": {"type": "array", "items": {"type": "integer"}}},
        "x-kubernetes-validations": [
            {"rule": "!oldSelf.hasValue() || oldSelf.value().id == self.id", "optionalOldSelf": true,
                "message": "id is immutable"},
            {"rule": "self.items.all(a, self.items.all(b, self.items.all(c, a + b + c >= 0)))"},
        ]});
        assert!(check(schema.clone(), json!({"id": "a", "items": [1, 2]}), None).is_empty());
        assert_eq!(
            check(schema.clone(), json!({"id": "b", "items": [1]}), Some(json!({"id": "a", "items": [1]}))),
            ["spec: Invalid value: \"object\": id is immutable"]
        );
        let many: Vec<i64> = (0..100).collect();
        let refused = check(schema, json!({"id": "a", "items": many}), None);
        assert_eq!(refused.len(), 1);
        assert!(refused[0].contains("call cost exceeds limit"), "{refused:?}");
    }
}
