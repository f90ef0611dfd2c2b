//! The process signals that start a graceful shutdown: SIGTERM and SIGINT (Ctrl-C); a second
//! one ends the process at once.

/// Completes on the first SIGTERM or SIGINT. If a handler cannot be installed, that signal is
/// logged and ignored rather than failing the service.
pub(crate) async fn terminate() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C; SIGINT will not shut down gracefully");
            std::future::pending::<()>().await;
        }
        tracing::info!("SIGINT received");
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                tracing::info!("SIGTERM received");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; it will not shut down gracefully");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// After the first signal: a second SIGINT or SIGTERM ends the process at once (exit code
/// 130), without waiting for the grace period and the drain, as users of a terminal expect.
/// The task ends with the runtime.
pub(crate) fn exit_on_second_signal() {
    use tracing::instrument::WithSubscriber as _;
    tokio::spawn(
        async {
            terminate().await;
            tracing::warn!(
                "second signal: exiting now, without waiting for the grace period and the drain"
            );
            std::process::exit(130);
        }
        .with_current_subscriber(),
    );
}
