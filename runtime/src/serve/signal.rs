//! The process signals that start a graceful shutdown: SIGTERM and SIGINT (Ctrl-C); a second
//! one ends the process at once.

/// Listens for SIGTERM and SIGINT from now on (the handlers are installed when this is
/// called, so a signal that comes before the future is first polled is not lost, nor does it
/// end the process), and completes on the first. If a handler cannot be installed, that signal
/// is logged and ignored rather than failing the service.
pub(crate) fn listen() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let installed = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}; it will not shut down gracefully");
                None
            }
        };
        let term = installed(SignalKind::terminate(), "SIGTERM");
        let int = installed(SignalKind::interrupt(), "SIGINT");
        let received = |s: Option<tokio::signal::unix::Signal>, name: &'static str| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                    tracing::info!("{name} received");
                }
                None => std::future::pending::<()>().await,
            }
        };
        async move {
            tokio::select! {
                () = received(term, "SIGTERM") => {}
                () = received(int, "SIGINT") => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C; it will not shut down gracefully");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received");
    }
}

/// After the first signal: a second SIGINT or SIGTERM ends the process at once (exit code
/// 130), without waiting for the grace period and the drain, as users of a terminal expect.
/// The task ends with the runtime.
pub(crate) fn exit_on_second_signal() {
    use tracing::instrument::WithSubscriber as _;
    tokio::spawn(
        async {
            listen().await;
            tracing::warn!(
                "second signal: exiting now, without waiting for the grace period and the drain"
            );
            std::process::exit(130);
        }
        .with_current_subscriber(),
    );
}
