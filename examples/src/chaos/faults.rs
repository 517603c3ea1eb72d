//! The faults of a chaos run: its own PostgreSQL server (restarted fast or immediate), and
//! the fleet of engine and worker processes it SIGKILLs and starts again.

use super::*;

/// The run's own PostgreSQL, in a folder of its own: it is restarted at will, and the tests
/// that share the project's cluster must never see that.
pub(super) struct Server {
    pub(super) dev: DevPostgres,
    pub(super) dir: PathBuf,
    pub(super) url: String,
    /// Keep the folder (server log, hosts' log) for a look after a failed run.
    pub(super) keep: AtomicBool,
}

impl Server {
    pub(super) fn create(dir: PathBuf) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&dir)?;
        let dev = DevPostgres::in_dir(&dir)?;
        let url = dev.ensure_running()?.url;
        Ok(Server {
            dev,
            dir,
            url,
            keep: AtomicBool::new(false),
        })
    }

    /// Restarts the server, blocking until it accepts connections; returns how long it took.
    pub(super) fn restart(&self, mode: StopMode) -> anyhow::Result<Duration> {
        let began = std::time::Instant::now();
        self.dev.restart(mode)?;
        Ok(began.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.dev.stop();
        if !self.keep.load(Ordering::Relaxed) {
            let _ = std::fs::remove_dir_all(&self.dir);
            // The cluster moves to `/tmp/reprise-<hash>` when the server user cannot reach
            // the folder (as root): that one goes too.
            let root = self.dev.root();
            if !root.starts_with(&self.dir) {
                let _ = std::fs::remove_dir_all(root.parent().unwrap_or(root));
            }
        }
    }
}

/// A host process and its role.
pub(super) struct Host {
    pub(super) role: HostRole,
    pub(super) child: Child,
}

/// What the fleet went through.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Kills {
    pub(super) engines: u32,
    pub(super) workers: u32,
    /// Hosts that exited on their own (one that started while the server was down).
    pub(super) exited: u32,
}

/// Starts `reprise-chaos host <role>` processes on the run's database, logging to one file.
pub(super) struct Spawner {
    pub(super) exe: PathBuf,
    pub(super) url: String,
    pub(super) log: PathBuf,
}

impl Spawner {
    pub(super) fn spawn(&self, role: HostRole) -> anyhow::Result<Child> {
        let log = File::options().create(true).append(true).open(&self.log)?;
        Command::new(&self.exe)
            .args(["host", role.arg()])
            .env("DATABASE_URL", &self.url)
            // Saves each engine hashing its (large, debug) executable at start.
            .env("REPRISE_BUILD", "chaos")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {}", self.exe.display()))
    }
}

/// The engine and worker processes; dropped, it kills them all.
pub(super) struct Fleet {
    pub(super) spawner: Spawner,
    pub(super) hosts: Vec<Host>,
    pub(super) kills: Kills,
}

impl Fleet {
    pub(super) fn start(spawner: Spawner, roles: &[HostRole]) -> anyhow::Result<Fleet> {
        let hosts = roles.iter().map(|&role| {
            Ok(Host {
                role,
                child: spawner.spawn(role)?,
            })
        });
        let hosts = hosts.collect::<anyhow::Result<_>>()?;
        Ok(Fleet {
            spawner,
            hosts,
            kills: Kills::default(),
        })
    }

    /// SIGKILLs one host at random (never the steady worker) and starts another in its place.
    pub(super) fn kill_one(&mut self, rng: &mut Rng) -> anyhow::Result<()> {
        let mut killable: Vec<&mut Host> = self
            .hosts
            .iter_mut()
            .filter(|h| h.role != HostRole::SteadyWorker)
            .collect();
        let i = rng.below(killable.len() as u64) as usize;
        let Some(host) = killable.get_mut(i) else {
            return Ok(());
        };
        host.child.kill()?; // SIGKILL: leases, open transactions and all
        host.child.wait()?;
        host.child = self.spawner.spawn(host.role)?;
        match host.role {
            HostRole::Engine => self.kills.engines += 1,
            HostRole::ChaosWorker | HostRole::SteadyWorker => self.kills.workers += 1,
        }
        Ok(())
    }

    /// Starts again every host that exited on its own.
    pub(super) fn respawn_exited(&mut self) -> anyhow::Result<()> {
        for host in &mut self.hosts {
            if host.child.try_wait()?.is_some() {
                host.child = self.spawner.spawn(host.role)?;
                self.kills.exited += 1;
            }
        }
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            let _ = host.child.kill();
            let _ = host.child.wait();
        }
    }
}

/// Kills a host every so often until `faults_end`, then only restarts hosts that exit, until
/// stopped (after the audit); returns what the fleet went through and drops it (killing all).
pub(super) async fn supervise(
    mut fleet: Fleet,
    mut rng: Rng,
    every: RangeInclusive<Duration>,
    faults_end: Instant,
    stop: CancellationToken,
) -> anyhow::Result<Kills> {
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(fleet.kills),
            () = tokio::time::sleep(rng.pause(&every)) => {}
        }
        fleet.respawn_exited()?;
        if Instant::now() < faults_end {
            fleet.kill_one(&mut rng)?;
        }
    }
}

/// Restarts PostgreSQL on schedule (while kills go on); returns the modes done and the
/// longest restart.
pub(super) async fn restart(
    server: Arc<Server>,
    schedule: Vec<Restart>,
    began: Instant,
) -> anyhow::Result<(Vec<StopMode>, Duration)> {
    let (mut done, mut longest) = (Vec::new(), Duration::ZERO);
    for Restart { at, mode } in schedule {
        tokio::time::sleep_until(began + at).await;
        let server = server.clone();
        longest = longest.max(tokio::task::spawn_blocking(move || server.restart(mode)).await??);
        done.push(mode);
    }
    Ok((done, longest))
}
