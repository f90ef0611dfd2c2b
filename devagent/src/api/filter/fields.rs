//! The selectable fields of the Go types Consul 1.14 filters, as go-bexpr derives them from those
//! types (exported fields, less those tagged `bexpr:"-"`): what a selector may name, which
//! operators apply and how a value is read for it.

/// What kind of Go value a field holds, which decides its operators and its value's coercion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string: `==`, `!=`, `in`/`contains` (substring), `matches`.
    Str,
    /// An integer: `==`, `!=`; values read as Go's `strconv.ParseInt`.
    Int,
    /// A bool: `==`, `!=`; values read as Go's `strconv.ParseBool`.
    Bool,
    /// A list of strings: `in`, `not in`, `is empty`, `is not empty`.
    Strings,
    /// A map with string keys: `is empty`, `is not empty`, `in`, `not in` (its keys); its values
    /// under the field `*` (any key).
    Map,
    /// A struct: no operator, only its fields.
    Struct,
    /// A list of structs: `is empty`, `is not empty`; its elements' fields apply to any element.
    List,
}

/// The fields of one filtered type: mounts of field lists (`(prefix, fields)`), each field a
/// path of names below its mount (`*` for any map key).
pub(crate) struct Schema(&'static [(&'static str, &'static [(&'static str, Kind)])]);

use Kind::{Bool, Int, List, Map, Str, Strings, Struct};

/// A service (`structs.NodeService`, and `api.AgentService`, which has the same selectable
/// fields), less its `Proxy`.
const SERVICE: &[(&str, Kind)] = &[
    ("Address", Str),
    ("Connect", Struct),
    ("Connect.Native", Bool),
    ("EnableTagOverride", Bool),
    ("ID", Str),
    ("Kind", Str),
    ("Meta", Map),
    ("Meta.*", Str),
    ("PeerName", Str),
    ("Port", Int),
    ("Proxy", Struct),
    ("Service", Str),
    ("SocketPath", Str),
    ("TaggedAddresses", Map),
    ("TaggedAddresses.*", Struct),
    ("TaggedAddresses.*.Address", Str),
    ("TaggedAddresses.*.Port", Int),
    ("Tags", Strings),
    ("Weights", Struct),
    ("Weights.Passing", Int),
    ("Weights.Warning", Int),
];

/// A service's proxy configuration (`structs.ConnectProxyConfig`).
const PROXY: &[(&str, Kind)] = &[
    ("DestinationServiceID", Str),
    ("DestinationServiceName", Str),
    ("Expose", Struct),
    ("Expose.Checks", Bool),
    ("Expose.Paths", List),
    ("Expose.Paths.ListenerPort", Int),
    ("Expose.Paths.LocalPathPort", Int),
    ("Expose.Paths.ParsedFromCheck", Bool),
    ("Expose.Paths.Path", Str),
    ("Expose.Paths.Protocol", Str),
    ("LocalServiceAddress", Str),
    ("LocalServicePort", Int),
    ("LocalServiceSocketPath", Str),
    ("MeshGateway", Struct),
    ("MeshGateway.Mode", Str),
    ("Mode", Str),
    ("TransparentProxy", Struct),
    ("TransparentProxy.DialedDirectly", Bool),
    ("TransparentProxy.OutboundListenerPort", Int),
    ("Upstreams", List),
    ("Upstreams.Datacenter", Str),
    ("Upstreams.DestinationName", Str),
    ("Upstreams.DestinationNamespace", Str),
    ("Upstreams.DestinationPartition", Str),
    ("Upstreams.DestinationPeer", Str),
    ("Upstreams.DestinationType", Str),
    ("Upstreams.LocalBindAddress", Str),
    ("Upstreams.LocalBindPort", Int),
    ("Upstreams.LocalBindSocketMode", Str),
    ("Upstreams.LocalBindSocketPath", Str),
    ("Upstreams.MeshGateway", Struct),
    ("Upstreams.MeshGateway.Mode", Str),
];

/// A check (`structs.HealthCheck`; its `Definition` and indexes are not selectable).
const CHECK: &[(&str, Kind)] = &[
    ("CheckID", Str),
    ("ExposedPort", Int),
    ("Interval", Str),
    ("Name", Str),
    ("Node", Str),
    ("Notes", Str),
    ("Output", Str),
    ("PeerName", Str),
    ("ServiceID", Str),
    ("ServiceName", Str),
    ("ServiceTags", Strings),
    ("Status", Str),
    ("Timeout", Str),
    ("Type", Str),
];

/// A node (`structs.Node`).
const NODE: &[(&str, Kind)] = &[
    ("Address", Str),
    ("Datacenter", Str),
    ("ID", Str),
    ("Meta", Map),
    ("Meta.*", Str),
    ("Node", Str),
    ("Partition", Str),
    ("PeerName", Str),
    ("TaggedAddresses", Map),
    ("TaggedAddresses.*", Str),
];

/// A catalog entry (`structs.ServiceNode`), less its `ServiceProxy`.
const SERVICE_NODE: &[(&str, Kind)] = &[
    ("Address", Str),
    ("Datacenter", Str),
    ("ID", Str),
    ("Node", Str),
    ("NodeMeta", Map),
    ("NodeMeta.*", Str),
    ("PeerName", Str),
    ("ServiceAddress", Str),
    ("ServiceConnect", Struct),
    ("ServiceConnect.Native", Bool),
    ("ServiceEnableTagOverride", Bool),
    ("ServiceID", Str),
    ("ServiceKind", Str),
    ("ServiceMeta", Map),
    ("ServiceMeta.*", Str),
    ("ServiceName", Str),
    ("ServicePort", Int),
    ("ServiceProxy", Struct),
    ("ServiceSocketPath", Str),
    ("ServiceTaggedAddresses", Map),
    ("ServiceTaggedAddresses.*", Struct),
    ("ServiceTaggedAddresses.*.Address", Str),
    ("ServiceTaggedAddresses.*.Port", Int),
    ("ServiceTags", Strings),
    ("ServiceWeights", Struct),
    ("ServiceWeights.Passing", Int),
    ("ServiceWeights.Warning", Int),
    ("TaggedAddresses", Map),
    ("TaggedAddresses.*", Str),
];

/// `/v1/agent/services` (`api.AgentService`).
pub(crate) const AGENT_SERVICE: Schema = Schema(&[("", SERVICE), ("Proxy", PROXY)]);
/// `/v1/agent/checks`, `/v1/health/{checks,state,node}` (`structs.HealthCheck`).
pub(crate) const HEALTH_CHECK: Schema = Schema(&[("", CHECK)]);
/// `/v1/health/service/:name` (`structs.CheckServiceNode`).
pub(crate) const CHECK_SERVICE_NODE: Schema = Schema(&[
    (
        "",
        &[("Checks", List), ("Node", Struct), ("Service", Struct)],
    ),
    ("Checks", CHECK),
    ("Node", NODE),
    ("Service", SERVICE),
    ("Service.Proxy", PROXY),
]);
/// `/v1/catalog/service/:name` and `/v1/catalog/services` (`structs.ServiceNode`).
pub(crate) const SERVICE_NODE_FIELDS: Schema =
    Schema(&[("", SERVICE_NODE), ("ServiceProxy", PROXY)]);
/// `/v1/catalog/nodes` (`structs.Node`).
pub(crate) const NODE_FIELDS: Schema = Schema(&[("", NODE)]);

impl Schema {
    /// The field `name` below the field at `parent` (`""`: the top), or the any-key field `*`
    /// there: its path and kind. `None` if neither exists.
    pub(crate) fn child(&self, parent: &str, name: &str) -> Option<(String, Kind)> {
        let join = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_owned()
            } else {
                format!("{a}.{b}")
            }
        };
        let exact = join(parent, name);
        let any = join(parent, "*");
        let find = |want: &str| {
            self.0.iter().find_map(|(mount, fields)| {
                fields
                    .iter()
                    .find(|(path, _)| join(mount, path) == want)
                    .map(|(_, kind)| *kind)
            })
        };
        find(&exact)
            .map(|k| (exact.clone(), k))
            .or_else(|| find(&any).map(|k| (any.clone(), k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_through_mounts_and_any_keys() {
        let s = &CHECK_SERVICE_NODE;
        assert_eq!(s.child("", "Service"), Some(("Service".into(), Struct)));
        assert_eq!(
            s.child("Service", "Port"),
            Some(("Service.Port".into(), Int))
        );
        assert_eq!(
            s.child("Service.Proxy", "Upstreams"),
            Some(("Service.Proxy.Upstreams".into(), List))
        );
        assert_eq!(
            s.child("Service.Meta", "version"),
            Some(("Service.Meta.*".into(), Str))
        );
        assert_eq!(
            s.child("Service.TaggedAddresses.*", "Port"),
            Some(("Service.TaggedAddresses.*.Port".into(), Int))
        );
        assert_eq!(
            s.child("Checks", "Status"),
            Some(("Checks.Status".into(), Str))
        );
        assert_eq!(s.child("", "Port"), None);
        assert_eq!(AGENT_SERVICE.child("Service", "Port"), None);
        assert_eq!(AGENT_SERVICE.child("", "Port"), Some(("Port".into(), Int)));
    }
}
