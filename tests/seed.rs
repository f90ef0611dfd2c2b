//! The Go service of the seed's recipe (`peers/seed`: registers before listening, an HTTP
//! check every minute, deregisters only when `ListenAndServe` fails) beside `cool_app`, under
//! the same real Consul and real Fabio. The recipe's two faults, shown on the real thing:
//! it becomes routable only after Consul's first scheduled check, and after SIGTERM Fabio
//! keeps routing to it (requests fail) and its registration stays behind. `cool_app` has
//! neither.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use discoverable_testkit::{Consul, Fabio, free_port, http, peers, wait_until};
use support::{Proc, blocking, example, spawn};

/// Requests through Fabio to `/oops/` for `window`, one at a time: (ok, failed).
fn failed_through(fabio: &Fabio, window: Duration) -> (usize, usize) {
    fabio.answers_within("/oops/", window, Duration::from_millis(20))
}

fn registered(consul: &Consul) -> usize {
    consul.registered("cool_app")
}

/// Time from `started` until Fabio routes `/oops` to `port`.
fn routed_after(fabio: &Fabio, port: u16, started: Instant, within: Duration) -> Duration {
    wait_until(within, || {
        if fabio.routes_to("/oops", port) {
            Ok(started.elapsed())
        } else {
            Err(format!("routes: {:?}", fabio.routes()))
        }
    })
    .unwrap_or_else(|e| panic!("port {port} not routed through Fabio: {e}"))
}

fn deregister_all(consul: &Consul, fabio: &Fabio) {
    let services = consul.get("/v1/agent/services").unwrap().json().unwrap();
    for id in services.as_object().unwrap().keys() {
        // No body: Consul does not read one here, and closing with it unread would reset
        // the connection before its answer could be read.
        let gone = http::request(
            consul.http_addr(),
            "PUT",
            &format!("/v1/agent/service/deregister/{id}"),
            &[],
            b"",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(gone.status, 200, "{}", gone.body);
    }
    wait_until(Duration::from_secs(10), || {
        if fabio.destinations("/oops").is_empty() {
            Ok(())
        } else {
            Err("still in Fabio's table".to_owned())
        }
    })
    .unwrap();
}

/// One side of the comparison: how long each of two instances took to be routed, then the
/// failed requests in the 5 s after the first one got SIGTERM (the second stays up), and
/// how many registrations of exited instances were left behind.
struct Side {
    routable: Vec<Duration>,
    ok: usize,
    failed: usize,
    left: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fabio_seed_recipe_beside_cool_app_on_real_consul() {
    let Some(peers) = peers::require("real_fabio_seed_recipe_beside_cool_app_on_real_consul")
    else {
        return;
    };
    let consul = blocking(|| Consul::start(&peers, Default::default()));
    let fabio = blocking(|| Fabio::start(&peers, consul.http_addr(), None));

    // The seed's recipe: fixed ports, as it registers before it listens. Its first check runs
    // at a random point within its 1 min interval, so routing waits up to a minute.
    let seed = blocking(|| {
        let started = Instant::now();
        let mut procs: Vec<(Proc, u16)> = (0..2)
            .map(|_| {
                let port = free_port();
                let mut cmd = Command::new(&peers.seed);
                cmd.env("BIND_ADDR", format!("127.0.0.1:{port}"))
                    .env("CONSUL_HTTP_ADDR", consul.url());
                (spawn("seed", cmd), port)
            })
            .collect();
        let routable = procs
            .iter()
            .map(|(_, port)| routed_after(&fabio, *port, started, Duration::from_secs(75)))
            .collect();
        let (mut first, _) = procs.remove(0);
        first.signal("TERM");
        first.wait_exit(Duration::from_secs(10));
        let (ok, failed) = failed_through(&fabio, Duration::from_secs(5));
        let left = registered(&consul) - 1;
        deregister_all(&consul, &fabio);
        Side {
            routable,
            ok,
            failed,
            left,
        }
    });

    let ours = blocking(|| {
        let mut procs: Vec<(Proc, u16, Duration)> = (0..2)
            .map(|_| {
                let (app, url) = example("cool_app", &consul.url(), &[]);
                let started = Instant::now();
                let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
                let took = routed_after(&fabio, port, started, Duration::from_secs(10));
                (app, port, took)
            })
            .collect();
        let routable = procs.iter().map(|(_, _, t)| *t).collect();
        let (mut first, _, _) = procs.remove(0);
        first.signal("TERM");
        let (ok, failed) = failed_through(&fabio, Duration::from_secs(5));
        assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
        let left = registered(&consul) - 1;
        Side {
            routable,
            ok,
            failed,
            left,
        }
    });

    for (who, side) in [("seed recipe", &seed), ("cool_app", &ours)] {
        println!(
            "{who}: routable through Fabio after {:?}; in the 5 s after one of two got SIGTERM: \
             {} ok, {} failed; registrations left behind: {}",
            side.routable, side.ok, side.failed, side.left
        );
    }
    assert!(
        seed.failed > 0,
        "Fabio kept routing to the exited seed instance"
    );
    assert_eq!(seed.left, 1, "the recipe leaves its registration behind");
    assert_eq!(ours.failed, 0, "no request failed after cool_app's SIGTERM");
    assert_eq!(ours.left, 0, "cool_app deregistered");
    assert!(ours.ok > 0 && seed.ok > 0);
    assert!(
        ours.routable.iter().all(|t| *t < Duration::from_secs(2)),
        "{:?}",
        ours.routable
    );
}
