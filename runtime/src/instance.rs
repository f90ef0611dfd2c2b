//! The handle to a running instance: its ID, its health, the shutdown switch.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::health::{Health, HealthReport};
use crate::service::{Service, Settings};

const NO_OVERRIDE: u8 = u8::MAX;

/// A handle to one running instance of a service.
///
/// Each serve call runs an instance with an ID of its own: mint one with
/// [`Service::new_instance`](crate::Service::new_instance) to hand it to the app before
/// serving it, or read the one a serve call minted with
/// [`Serve::instance`](crate::Serve::instance). Cheap to clone; keep one in your handlers'
/// state to read the instance's Consul ID, to set its health by hand (an operator endpoint,
/// a test), or to end long-lived responses when shutdown begins.
///
/// ```
/// use discoverable::{Health, Service};
///
/// let service = Service::builder("cool_app").build().unwrap();
/// let instance = service.new_instance();
/// assert!(instance.id().starts_with("cool_app-"));
/// instance.set_health(Health::Degraded); // Consul: warning; Fabio stops routing to it
/// assert_eq!(instance.health(), Health::Degraded);
/// instance.clear_health();
/// assert_eq!(instance.health(), Health::Up);
/// ```
#[derive(Clone)]
pub struct Instance {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) id: String,
    /// The description this is an instance of.
    pub(crate) settings: Arc<Settings>,
    manual: AtomicU8,
    shutting_down: AtomicBool,
    registered: AtomicBool,
    /// Taken by the serve call that runs this instance: one instance, one serve call.
    claimed: AtomicBool,
    /// Every request in flight, and the app's own work counted with them, holds a clone of
    /// this token; the clones beyond this one are the count. One atomic operation when a
    /// request starts and one when it ends.
    in_flight: Arc<()>,
    shutdown: watch::Sender<bool>,
    /// Turns true when shutdown begins; [`Instance::shutting_down`] waits on it.
    began: watch::Sender<bool>,
}

impl Instance {
    /// A new instance of the service `settings` describe, with a new ID.
    pub(crate) fn new(settings: Arc<Settings>) -> Self {
        Instance {
            shared: Arc::new(Shared {
                id: mint_id(&settings.name),
                settings,
                manual: AtomicU8::new(NO_OVERRIDE),
                shutting_down: AtomicBool::new(false),
                registered: AtomicBool::new(false),
                claimed: AtomicBool::new(false),
                in_flight: Arc::new(()),
                shutdown: watch::channel(false).0,
                began: watch::channel(false).0,
            }),
        }
    }

    /// Takes this instance for one serve call: `true` the first time.
    pub(crate) fn claim(&self) -> bool {
        !self.shared.claimed.swap(true, Ordering::AcqRel)
    }

    /// What the service's description says.
    pub(crate) fn settings(&self) -> &Arc<Settings> {
        &self.shared.settings
    }

    /// The ID this instance registers under in Consul: `<name>-<uuid v4>`.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.shared.settings.name
    }

    /// The path the health route answers on.
    pub fn health_path(&self) -> &str {
        &self.shared.settings.health_path
    }

    /// How long the health route's indicators (and Consul's check) may take.
    pub(crate) fn check_timeout(&self) -> Duration {
        self.shared.settings.check_timeout()
    }

    /// Sets the instance's own health by hand, until [`clear_health`](Self::clear_health):
    /// `Degraded` takes it out of rotation (Consul: warning) while it stays registered, `Down`
    /// makes its check critical.
    ///
    /// Indicators still count: the health route reports the worst of both.
    pub fn set_health(&self, health: Health) {
        self.shared.manual.store(health.to_u8(), Ordering::Relaxed);
    }

    /// Returns the instance's health to automatic: up, unless an indicator says otherwise.
    pub fn clear_health(&self) {
        self.shared.manual.store(NO_OVERRIDE, Ordering::Relaxed);
    }

    /// The instance's own health, without running indicators: `Down` once shutdown began,
    /// else the manual setting, else `Up`.
    pub fn health(&self) -> Health {
        if self.is_shutting_down() {
            return Health::Down;
        }
        Health::from_u8(self.shared.manual.load(Ordering::Relaxed)).unwrap_or(Health::Up)
    }

    /// Runs the indicators (each cut at four fifths of the check's timeout) and reports the
    /// overall state.
    ///
    /// The indicators' bound is below the check's own, so a hung indicator is reported by
    /// name in the health route's answer before Consul gives up on the check; cut at the
    /// check's timeout, Consul would only record `context deadline exceeded`.
    pub async fn report(&self) -> HealthReport {
        HealthReport::collect(
            self.health(),
            &self.shared.settings.indicators,
            indicator_bound(self.check_timeout()),
        )
        .await
    }

    /// True once shutdown has begun (the health route answers 503 from then on).
    ///
    /// ```
    /// use axum::{Router, extract::State, routing::get};
    /// use discoverable::{Instance, Service};
    ///
    /// async fn state(State(instance): State<Instance>) -> &'static str {
    ///     if instance.is_shutting_down() { "stopping" } else { "running" }
    /// }
    ///
    /// let instance = Service::builder("cool_app").build()?.new_instance();
    /// assert!(!instance.is_shutting_down());
    /// assert_eq!(instance.health_path(), "/health");
    /// let app: Router = Router::new().route("/state", get(state)).with_state(instance);
    /// # let _ = app;
    /// # Ok::<(), discoverable::Error>(())
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::Acquire)
    }

    /// True while Consul holds this instance's registration, as far as the runtime knows.
    pub fn is_registered(&self) -> bool {
        self.shared.registered.load(Ordering::Acquire)
    }

    /// Requests in flight (the health route not counted): each from the moment it reaches
    /// the app until its response is ready, or, when the response's body streams (server-sent
    /// events, a file, a gRPC stream), until that body has ended or was dropped. A WebSocket
    /// counts until its `101` answer: the upgraded connection is the app's, counted while
    /// its handler holds [`count_in_flight`](Self::count_in_flight) (and closed by the
    /// handler when [`shutting_down`](Self::shutting_down) completes).
    pub fn in_flight(&self) -> usize {
        Arc::strong_count(&self.shared.in_flight) - 1
    }

    /// Counts work of the app's own as a request in flight until the returned guard is
    /// dropped: [`in_flight`](Self::in_flight) includes it, and `serve`'s drain waits for it
    /// (within the drain's bound) as for a request.
    ///
    /// For what outlives its request: a WebSocket, whose connection is the handler's once the
    /// `101` is sent, holds one for as long as the socket is open, so shutdown lets it close
    /// instead of ending the process under it.
    ///
    /// ```
    /// use axum::{Router, extract::{State, WebSocketUpgrade}, response::Response, routing::get};
    /// use discoverable::Instance;
    ///
    /// async fn echo(State(instance): State<Instance>, upgrade: WebSocketUpgrade) -> Response {
    ///     let counted = instance.count_in_flight();
    ///     upgrade.on_upgrade(move |mut socket| async move {
    ///         let _counted = counted; // until the socket closes
    ///         while let Some(Ok(message)) = socket.recv().await {
    ///             if socket.send(message).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     })
    /// }
    ///
    /// let instance = discoverable::Service::builder("echo").build()?.new_instance();
    /// let app: Router = Router::new().route("/echo", get(echo)).with_state(instance);
    /// # let _ = app;
    /// # Ok::<(), discoverable::Error>(())
    /// ```
    #[must_use = "the work is counted until the guard is dropped"]
    pub fn count_in_flight(&self) -> InFlight {
        self.request_started()
    }

    /// Waits until nothing is in flight. Polled, every 10 ms: it runs only while `serve`
    /// drains, and a count that wakes a waiter would cost every request its check.
    pub(crate) async fn idle(&self) {
        while self.in_flight() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Starts a graceful shutdown, the same path SIGTERM takes: health 503, deregister, grace
    /// period, drain, then `serve` returns.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    pub(crate) fn shutdown_requested(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    /// Completes once shutdown has begun (SIGTERM, Ctrl-C, the user's shutdown future or
    /// [`Instance::shutdown`]): the moment for a long-lived response (a server-sent event
    /// stream, a WebSocket, a gRPC stream) to end cleanly, with a last event, a close frame or
    /// a status, instead of being cut when the drain's bound runs out. Completes at once when
    /// shutdown has begun already.
    ///
    /// ```
    /// use discoverable::Service;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let service = Service::builder("ticker").build().unwrap();
    /// let instance = service.new_instance();
    /// // In a streaming handler: send until shutdown begins, then end the stream cleanly.
    /// let (tx, mut rx) = tokio::sync::mpsc::channel::<&str>(8);
    /// let shutting_down = instance.shutting_down();
    /// tokio::spawn(async move {
    ///     tokio::pin!(shutting_down);
    ///     loop {
    ///         tokio::select! {
    ///             () = &mut shutting_down => {
    ///                 let _ = tx.send("event: bye\n\n").await;
    ///                 return; // the last event; the response's body ends here
    ///             }
    ///             sent = tx.send("data: tick\n\n") => if sent.is_err() { return },
    ///         }
    ///     }
    /// });
    /// # drop(rx);
    /// # }
    /// ```
    pub fn shutting_down(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut began = self.shared.began.subscribe();
        async move {
            // The sender lives as long as the instance; should it go, so has the instance.
            let _ = began.wait_for(|b| *b).await;
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        self.shared.began.send_replace(true);
    }

    pub(crate) fn set_registered(&self, registered: bool) {
        self.shared.registered.store(registered, Ordering::Release);
    }

    pub(crate) fn request_started(&self) -> InFlight {
        InFlight(self.shared.in_flight.clone())
    }
}

impl Service {
    /// A new instance of this service, with an ID of its own: hand it to the app (to set its
    /// health, or to end long-lived responses when shutdown begins), then serve it with
    /// [`serve`](crate::serve). Serving the `Service` itself mints an instance the same way,
    /// which [`Serve::instance`](crate::Serve::instance) returns.
    ///
    /// ```
    /// use discoverable::Service;
    ///
    /// let service = Service::builder("cool_app").build()?;
    /// let (a, b) = (service.new_instance(), service.new_instance());
    /// assert!(a.id().starts_with("cool_app-"));
    /// assert_ne!(a.id(), b.id());
    /// # Ok::<(), discoverable::Error>(())
    /// ```
    pub fn new_instance(&self) -> Instance {
        Instance::new(self.settings.clone())
    }
}

/// A new instance of the service, as [`Service::new_instance`] mints: what
/// [`serve`](crate::serve) does with a `Service`.
impl From<Service> for Instance {
    fn from(service: Service) -> Self {
        Instance::new(service.settings)
    }
}

/// A new instance of the service, as [`Service::new_instance`] mints.
impl From<&Service> for Instance {
    fn from(service: &Service) -> Self {
        service.new_instance()
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.shared.id)
            .field("health", &self.health())
            .field("registered", &self.is_registered())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// Counts one request (or the app's own work, [`Instance::count_in_flight`]) in flight
/// until dropped.
#[must_use = "the work is counted until the guard is dropped"]
pub struct InFlight(#[allow(dead_code, reason = "held for its count")] Arc<()>);

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("in_flight", &(Arc::strong_count(&self.0) - 1))
            .finish()
    }
}

/// How long health indicators may take, for a check that waits `check_timeout` for the
/// health route's answer: four fifths of it, the rest left for the answer to travel.
pub(crate) fn indicator_bound(check_timeout: Duration) -> Duration {
    check_timeout * 4 / 5
}

/// A new instance ID: `<name>-<uuid v4>`.
pub(crate) fn mint_id(name: &str) -> String {
    let random = crate::random::u128().to_le_bytes();
    format!(
        "{name}-{}",
        uuid::Builder::from_random_bytes(random).into_uuid()
    )
}
