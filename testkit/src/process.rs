//! Peer processes: started with their output in a log file, killed on drop, and deadline
//! waits.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, picked by the kernel (bound once and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Polls `probe` every 20 ms until it gives `Some` or `within` passes; `Err` carries the
/// last thing `probe` said was wrong.
pub fn wait_until<T>(
    within: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + within;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(why) if Instant::now() >= deadline => {
                return Err(format!("not within {within:?}: {why}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A scratch directory under the system's temp dir, unique per process and call.
pub(crate) fn scratch_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "discoverable-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running peer process. Dropping it kills the process.
#[derive(Debug)]
pub struct Peer {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Peer {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Peer {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out);
        die_with_parent(&mut cmd);
        let child = spawn_from_keeper(cmd).unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Peer {
            child: Some(child),
            name: name.to_owned(),
            log: log.to_owned(),
        }
    }

    /// The process ID (0 once killed).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends `signal` (for example `libc::SIGSTOP`).
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            send_signal(child.id() as i32, signal);
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen process still dies of SIGKILL.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `within` for the exit; kills it after that. Returns
    /// whether it exited by itself.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        send_signal(child.id() as i32, libc::SIGTERM);
        let exited = wait_until(within, || match child.try_wait() {
            Ok(Some(_)) => Ok(()),
            _ => Err("still running".into()),
        })
        .is_ok();
        self.kill();
        exited
    }

    /// `Err` if the process has exited, with its status and the end of its log.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => Ok(()),
            other => Err(format!(
                "{} exited ({other:?}); its log ends:\n{}",
                self.name,
                self.log_tail(30)
            )),
        }
    }

    /// The last `lines` lines of the process's output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[allow(unsafe_code)]
pub(crate) fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory effects; a pid that is gone gives ESRCH, ignored.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Spawns `cmd` from one thread that lives as long as the test process: the parent-death
/// signal fires when the spawning *thread* ends, and test threads end while a peer shared
/// between tests is still in use.
fn spawn_from_keeper(cmd: Command) -> Result<Child, String> {
    use std::sync::mpsc::{Sender, channel};
    use std::sync::{Mutex, OnceLock};
    type Job = (Command, Sender<Result<Child, String>>);
    static KEEPER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn().map_err(|e| format!("{cmd:?}: {e}")));
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = channel();
    keeper
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .map_err(|_| "spawner thread is gone".to_owned())?;
    rx.recv().map_err(|_| "spawner thread is gone".to_owned())?
}

/// Asks the kernel to SIGKILL the child when the test process dies, so an aborted test run
/// leaves no peer running.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent; this is the
    // documented use of pre_exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
