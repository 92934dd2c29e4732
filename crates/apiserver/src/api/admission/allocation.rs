//! What the Service registry allocates: a `clusterIP` from the service CIDR, and a `nodePort`
//! from 30000–32767 for each port of a NodePort or LoadBalancer Service.
//!
//! An address is free when no Service in the store holds it and no write of this process took it
//! for another Service in the last minute (writes batched into one commit do not see each other
//! in the store). Across processes the remote decides: a write runs admission again on every
//! replay, so one that lost a push race to a Service taking the same address allocates anew.
//! The search starts at a hash of the Service's name, so Services made at once by different
//! processes rarely collide in the first place.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use gitbacked_core::registry::GroupKind;
use gitbacked_core::storage::Storage;
use gitbacked_core::{FieldError, ObjectKey};

/// The node ports kube-apiserver allocates from by default (`--service-node-port-range`).
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// How long an address taken by a write stays reserved for its Service without being in the store.
const RESERVATION: Duration = Duration::from_secs(60);

/// An IPv4 range in CIDR notation, the service cluster IP range (`10.96.0.0/12` by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceCidr {
    network: u32,
    prefix: u8,
}

impl Default for ServiceCidr {
    fn default() -> Self {
        ServiceCidr { network: u32::from(Ipv4Addr::new(10, 96, 0, 0)), prefix: 12 }
    }
}

/// A service CIDR that does not parse, or leaves no address to allocate.
#[derive(Debug, thiserror::Error)]
#[error("invalid service CIDR {0:?}: expected an IPv4 range such as 10.96.0.0/12, with a prefix of at most 30 bits")]
pub struct InvalidServiceCidr(String);

impl std::str::FromStr for ServiceCidr {
    type Err = InvalidServiceCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidServiceCidr(s.to_string());
        let (ip, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().ok().filter(|p| (1..=30).contains(p)).ok_or_else(invalid)?;
        let mask = u32::MAX << (32 - prefix);
        Ok(ServiceCidr { network: u32::from(ip) & mask, prefix })
    }
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

impl ServiceCidr {
    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & (u32::MAX << (32 - self.prefix)) == self.network
    }

    /// The address at `offset`; the first usable one (`.1`) is `default/kubernetes`'s.
    fn at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network + offset)
    }
}

/// Allocates Service addresses and node ports (see the module's documentation).
#[derive(Debug, Default)]
pub struct ServiceAllocator {
    cidr: ServiceCidr,
    /// Addresses (`10.96.0.7`) and ports (`:30007`) taken by recent writes: for which Service, when.
    reserved: Mutex<HashMap<String, (ObjectKey, Instant)>>,
}

impl ServiceAllocator {
    /// An allocator for `cidr`.
    pub fn new(cidr: ServiceCidr) -> Self {
        ServiceAllocator { cidr, reserved: Mutex::default() }
    }

    /// Fills in the addresses a Service written as `service` (replacing `old`) needs, keeping
    /// those it had; refuses addresses taken by another Service or outside the ranges.
    pub(super) fn allocate(
        &self,
        storage: &dyn Storage,
        key: &ObjectKey,
        old: Option<&Value>,
        service: &mut Value,
    ) -> Result<(), Vec<FieldError>> {
        let Some(spec) = service.get_mut("spec").filter(|s| s.is_object()) else { return Ok(()) };
        let old_spec = old.and_then(|o| o.get("spec"));
        keep_allocated(spec, old_spec);
        let kind = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
        let wants_ip = kind != "ExternalName";
        let wants_ports = kind == "NodePort"
            || (kind == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts") != Some(&Value::Bool(false)));
        let has_ports = spec.pointer("/ports/0/nodePort").is_some() || wants_ports;
        if !wants_ip && !has_ports {
            return Ok(());
        }
        let (used_ips, used_ports) = self.in_use(storage, key);
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        reserved.retain(|_, (_, at)| at.elapsed() < RESERVATION);
        let taken = |name: &str, used: &HashSet<String>, reserved: &HashMap<String, (ObjectKey, Instant)>| {
            used.contains(name) || reserved.get(name).is_some_and(|(owner, _)| owner != key)
        };
        let mut errors = Vec::new();
        let old_ip = old_spec.and_then(|s| s.get("clusterIP")).and_then(Value::as_str);
        let ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or_default().to_string();
        if wants_ip && ip != "None" {
            if ip.is_empty() {
                match self.free_ip(key, |candidate| taken(candidate, &used_ips, &reserved)) {
                    Some(free) => {
                        spec["clusterIP"] = json!(free);
                        reserved.insert(free, (key.clone(), Instant::now()));
                    }
                    None => errors.push(FieldError::invalid(
                        "spec.clusterIPs",
                        json!([]),
                        format!("failed to allocate a serviceIP: range is full ({})", self.cidr),
                    )),
                }
            } else if old_ip != Some(ip.as_str()) {
                let problem = match ip.parse::<Ipv4Addr>() {
                    Ok(parsed) if !self.cidr.contains(parsed) => Some(format!(
                        "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                        self.cidr
                    )),
                    Ok(_) if taken(&ip, &used_ips, &reserved) => Some("provided IP is already allocated".to_string()),
                    Ok(_) => None,
                    // Validation words a malformed address.
                    Err(_) => None,
                };
                match problem {
                    Some(why) => errors.push(FieldError::invalid(
                        "spec.clusterIPs[0]",
                        json!(ip),
                        format!("failed to allocate IP {ip}: {why}"),
                    )),
                    None => {
                        reserved.insert(ip.clone(), (key.clone(), Instant::now()));
                    }
                }
            }
        }
        let old_ports: HashSet<i64> = old_spec
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
            .collect();
        let ports = spec.get_mut("ports").and_then(Value::as_array_mut).map(|p| p.iter_mut()).into_iter().flatten();
        for (i, port) in ports.enumerate().filter(|(_, p)| p.is_object()) {
            match port.get("nodePort").and_then(Value::as_i64).filter(|p| *p != 0) {
                Some(n) if old_ports.contains(&n) => {}
                Some(n) => {
                    let name = format!(":{n}");
                    let why = match u16::try_from(n).ok().filter(|n| NODE_PORTS.contains(n)) {
                        None => Some(format!(
                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                            NODE_PORTS.start(),
                            NODE_PORTS.end()
                        )),
                        Some(_) if taken(&name, &used_ports, &reserved) => {
                            Some("provided port is already allocated".into())
                        }
                        Some(_) => None,
                    };
                    match why {
                        Some(why) => {
                            errors.push(FieldError::invalid(format!("spec.ports[{i}].nodePort"), json!(n), why))
                        }
                        None => {
                            reserved.insert(name, (key.clone(), Instant::now()));
                        }
                    }
                }
                None if wants_ports => match self.free_port(key, i, |c| taken(c, &used_ports, &reserved)) {
                    Some(n) => {
                        port["nodePort"] = json!(n);
                        reserved.insert(format!(":{n}"), (key.clone(), Instant::now()));
                    }
                    None => errors.push(FieldError::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        json!(0),
                        "failed to allocate a nodePort: range is full",
                    )),
                },
                None => {}
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The addresses (`10.96.0.7`) and node ports (`:30007`) the store's other Services hold.
    fn in_use(&self, storage: &dyn Storage, key: &ObjectKey) -> (HashSet<String>, HashSet<String>) {
        let gk = GroupKind { group: String::new(), kind: "Service".into() };
        let (_, services) = storage.list(&gk, None);
        let (mut ips, mut ports) = (HashSet::new(), HashSet::new());
        // The first address is the `kubernetes` Service's, as kube-apiserver reserves it.
        ips.insert(self.cidr.at(1).to_string());
        for service in services.iter().filter(|s| s.key != *key) {
            let value = service.value();
            let Some(spec) = value.get("spec") else { continue };
            let addresses = spec.get("clusterIPs").and_then(Value::as_array).into_iter().flatten();
            ips.extend(addresses.chain(spec.get("clusterIP")).filter_map(Value::as_str).map(str::to_string));
            let node_ports = spec.get("ports").and_then(Value::as_array).into_iter().flatten();
            ports.extend(node_ports.filter_map(|p| p.get("nodePort")?.as_i64()).map(|n| format!(":{n}")));
        }
        (ips, ports)
    }

    /// A free address, searched from a point that depends on the Service's identity.
    fn free_ip(&self, key: &ObjectKey, taken: impl Fn(&str) -> bool) -> Option<String> {
        // Neither the network's nor the broadcast address.
        let usable = self.cidr.size().saturating_sub(2);
        let start = (start_of(key, 0) % u64::from(usable)) as u32;
        (0..usable).map(|i| self.cidr.at(1 + (start + i) % usable).to_string()).find(|ip| !taken(ip))
    }

    /// A free node port for the `index`th port.
    fn free_port(&self, key: &ObjectKey, index: usize, taken: impl Fn(&str) -> bool) -> Option<u16> {
        let size = u64::from(NODE_PORTS.end() - NODE_PORTS.start()) + 1;
        let start = start_of(key, index) % size;
        (0..size).map(|i| NODE_PORTS.start() + ((start + i) % size) as u16).find(|n| !taken(&format!(":{n}")))
    }
}

/// Where a search for the Service's `index`th value starts: the same in every process.
fn start_of(key: &ObjectKey, index: usize) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    (&*key.namespace, key.name.as_str(), index).hash(&mut hasher);
    hasher.finish()
}

/// A write that leaves out the addresses the Service has keeps them, as kube-apiserver's Service
/// registry does (a client replacing a Service need not know its clusterIP or node ports).
fn keep_allocated(spec: &mut Value, old: Option<&Value>) {
    let Some(old) = old else { return };
    let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v == "");
    let same_type = spec.get("type") == old.get("type");
    if empty(spec.get("clusterIP")) && !empty(old.get("clusterIP")) && same_type {
        spec["clusterIP"] = old["clusterIP"].clone();
    }
    let old_ports = old.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten().filter(|p| p.is_object()) {
        if !empty(port.get("nodePort")) {
            continue;
        }
        let protocol = |p: &Value| p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string();
        let previous = old_ports.iter().find(|o| o.get("port") == port.get("port") && protocol(o) == protocol(port));
        if let Some(n) = previous.and_then(|o| o.get("nodePort")).filter(|n| !n.is_null()) {
            port["nodePort"] = n.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_cidrs_parse_and_name_their_addresses() {
        let cidr: ServiceCidr = "10.96.3.4/12".parse().unwrap();
        assert_eq!(cidr.to_string(), "10.96.0.0/12");
        assert_eq!(cidr.at(1), Ipv4Addr::new(10, 96, 0, 1));
        assert!(cidr.contains(Ipv4Addr::new(10, 111, 255, 254)) && !cidr.contains(Ipv4Addr::new(10, 112, 0, 1)));
        for bad in ["10.96.0.0", "10.96.0.0/31", "fd00::/108", "x/12", "10.96.0.0/"] {
            assert!(bad.parse::<ServiceCidr>().is_err(), "{bad}");
        }
        assert_eq!(ServiceCidr::default(), "10.96.0.0/12".parse().unwrap());
    }
}
