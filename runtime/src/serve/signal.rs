//! The process signals that start a graceful shutdown: SIGTERM and SIGINT (Ctrl-C).

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
