//! The balanced gRPC channel (feature `grpc`): a tonic `Channel` over a service's passing
//! instances, following a [`Watch`](super::Watch); over TLS with the `tls` feature.

use std::collections::BTreeMap;

use tracing::instrument::WithSubscriber as _;

/// How each connection of a channel to instances served over TLS is made.
#[cfg(feature = "tls")]
type ChannelTls = tonic::transport::ClientTlsConfig;
/// Without the `tls` feature a channel speaks plaintext only.
#[cfg(not(feature = "tls"))]
type ChannelTls = std::convert::Infallible;

impl super::Discovery {
    /// A tonic `Channel` balanced over the passing instances of `service`, following Consul:
    /// an instance is added when it turns passing and removed when it leaves (deregistered,
    /// critical, in maintenance); while Consul cannot be reached, the last instances it
    /// reported stay in. Calls made before the first answer wait for an instance.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    ///
    /// let discovery = discoverable::Discovery::from_env()?;
    /// let mut health = HealthClient::new(discovery.grpc_channel("greeter"));
    /// let answer = health.check(HealthCheckRequest { service: String::new() }).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn grpc_channel(&self, service: impl Into<String>) -> tonic::transport::Channel {
        self.balanced(service.into(), None)
    }

    /// [`grpc_channel`](Self::grpc_channel) to instances served over TLS
    /// ([`Routes::tls`](crate::grpc::Routes::tls)): each connection verifies the instance's certificate with `tls`
    /// (its roots, and the name to verify, since instances are reached by address:
    /// `ClientTlsConfig::new().ca_certificate(ca).domain_name("greeter.internal")`).
    ///
    /// ```no_run
    /// # async fn run(ca_pem: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// use tonic::transport::{Certificate, ClientTlsConfig};
    ///
    /// let discovery = discoverable::Discovery::from_env()?;
    /// let tls = ClientTlsConfig::new()
    ///     .ca_certificate(Certificate::from_pem(ca_pem))
    ///     .domain_name("greeter.internal");
    /// let channel = discovery.grpc_channel_tls("greeter", tls);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn grpc_channel_tls(
        &self,
        service: impl Into<String>,
        tls: tonic::transport::ClientTlsConfig,
    ) -> tonic::transport::Channel {
        self.balanced(service.into(), Some(tls))
    }

    fn balanced(&self, service: String, tls: Option<ChannelTls>) -> tonic::transport::Channel {
        let watch = self.watch(service).start();
        let (channel, changes) = tonic::transport::Channel::balance_channel(CHANGES_BUFFER);
        tokio::spawn(follow(watch, changes, tls).with_subscriber(crate::log::dispatch()));
        channel
    }
}

/// The endpoint of the instance at `authority`: `http://`, or `https://` with `tls`.
fn endpoint(
    authority: &str,
    tls: Option<&ChannelTls>,
) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    use tonic::transport::Endpoint;
    match tls {
        None => Endpoint::from_shared(format!("http://{authority}")),
        #[cfg(feature = "tls")]
        Some(tls) => Endpoint::from_shared(format!("https://{authority}"))?.tls_config(tls.clone()),
        #[cfg(not(feature = "tls"))]
        Some(never) => match *never {},
    }
}

/// Changes queued for a balanced channel before the watch waits for it to take them.
const CHANGES_BUFFER: usize = 64;

type Changes = tokio::sync::mpsc::Sender<
    tonic::transport::channel::Change<String, tonic::transport::Endpoint>,
>;

/// Feeds a balanced channel the watch's instances, keyed by instance ID, until the channel is
/// dropped.
async fn follow(mut watch: super::Watch, changes: Changes, tls: Option<ChannelTls>) {
    use tonic::transport::channel::Change;
    let mut inserted: BTreeMap<String, String> = BTreeMap::new();
    let mut set = watch.current();
    loop {
        if set.is_known() {
            let wanted: BTreeMap<String, String> = set
                .endpoints()
                .iter()
                .map(|e| (e.id.clone(), e.authority()))
                .collect();
            for (id, authority) in &inserted {
                if wanted.get(id) != Some(authority)
                    && changes.send(Change::Remove(id.clone())).await.is_err()
                {
                    return;
                }
            }
            inserted.retain(|id, authority| wanted.get(id) == Some(authority));
            for (id, authority) in wanted {
                if inserted.contains_key(&id) {
                    continue;
                }
                let endpoint = match endpoint(&authority, tls.as_ref()) {
                    Ok(endpoint) => endpoint,
                    Err(e) => {
                        tracing::warn!(%id, %authority, error = %e, "instance address is not a URI authority, or the TLS configuration cannot be used; leaving it out of the channel");
                        continue;
                    }
                };
                if changes
                    .send(Change::Insert(id.clone(), endpoint))
                    .await
                    .is_err()
                {
                    return;
                }
                inserted.insert(id, authority);
            }
        }
        tokio::select! {
            () = changes.closed() => return,
            next = watch.changed() => set = next,
        }
    }
}
