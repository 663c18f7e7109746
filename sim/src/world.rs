//! Builds a turmoil world from a scenario and runs it: the DNS host, the server host, the
//! actors; then steps the simulation, warping the clock over idle stretches.
//!
//! Quiescence (safe to warp) is decided only from the world's own state: nothing in flight on
//! any link and no Env activity during the last step. Never from wall time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use mailsim_server::env::Timestamp;
use mailsim_server::server::{RunOptions, Server};
use turmoil::fs::FsHandle;

use crate::actor::{self, ActorCtx, ActorLogs};
use crate::clock::SimClock;
use crate::env::{Activity, SimEnv};
use crate::remote::{self, RemoteLogs};
use crate::scenario::LoadedScenario;
use crate::trace::Trace;

mod faults;
use faults::{Faults, WorldEvent};

/// Steps with nothing in flight and no activity after the actors finish before we stop.
const DRAIN_QUIET_STEPS: u32 = 5;

/// What a finished world hands to the checks.
pub struct WorldResult {
    pub trace: Trace,
    pub logs: ActorLogs,
    /// What each remote MTA received.
    pub remote_logs: RemoteLogs,
    /// The server host's filesystem, to inspect mailboxes.
    pub server_fs: Option<FsHandle>,
    /// Simulated time at the end (warps included).
    pub sim_elapsed: Duration,
    pub warped: Duration,
    pub steps: u64,
    pub wall: Duration,
    /// A host failed (its software returned an error or panicked).
    pub error: Option<String>,
    /// What the consistency check found on the disk before each restart.
    pub consistency: Vec<crate::check::Failure>,
}

/// Runs the scenario's world with `seed` and returns what happened.
pub fn run(scn: &LoadedScenario, seed: u64) -> WorldResult {
    // The report's wall-clock figure; it never feeds back into the world.
    #[allow(clippy::disallowed_methods)]
    let wall_start = Instant::now();
    let s = &scn.scenario;
    let clock = SimClock::new(Timestamp::from_secs(s.world.start_unix));
    let trace = Trace::new(clock.clone());
    let activity = Activity::default();
    let logs: ActorLogs = Arc::new(Mutex::new(Default::default()));
    let tick = Duration::from_millis(s.world.tick_ms.max(1));
    let duration = Duration::from_secs_f64(s.world.duration_secs.max(0.0));

    let mut builder = turmoil::Builder::new();
    builder
        .tick_duration(tick)
        // Warps do not count against turmoil's limit; give its own budget ample room.
        .simulation_duration(duration + Duration::from_secs(3600))
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(s.world.start_unix))
        .min_message_latency(Duration::from_millis(s.world.min_latency_ms))
        .max_message_latency(Duration::from_millis(
            s.world.max_latency_ms.max(s.world.min_latency_ms),
        ));
    builder.fs().sync_probability(s.world.fs_sync_probability);
    let mut sim = builder.build();

    trace.record(
        "world",
        "world",
        format_args!("scenario {} seed {seed}", scn.name),
    );

    // --- DNS host ---
    let dns_addr = SocketAddr::new(s.dns_ip(), 53);
    let changes: Vec<_> = s.dns.change.iter().map(|c| c.get_ref().clone()).collect();
    let epochs = crate::dns::zone::epochs(&s.dns.zones, &changes, seed).expect("validated at load");
    {
        let (epochs, faults, clock, trace) =
            (epochs, s.dns.fault.clone(), clock.clone(), trace.clone());
        sim.host(s.dns_ip(), move || {
            crate::dns::server::serve_changing(
                epochs.clone(),
                faults.clone(),
                clock.clone(),
                trace.clone(),
                "dns".into(),
            )
        });
    }

    // --- the world's PKI: a CA the actors trust and the server's certificate ---
    let hostname = s.server.get_ref().config.hostname.clone();
    let certs = match crate::certs::WorldCerts::generate(&hostname) {
        Ok(c) => c,
        Err(e) => panic!("TLS certificate for the server {hostname}: {e}"),
    };

    // --- faults: every time picked now, from the seed ---
    let mut faults = Faults::plan(s, seed, |name| host_ip(s, name));

    // --- server host ---
    let fs_slot: Arc<Mutex<Option<FsHandle>>> = Arc::new(Mutex::new(None));
    {
        let mut config = s.server.get_ref().config.clone();
        config.listen.smtp = s.server_addr();
        // The submission listeners live on the server host too, on the ports asked for.
        let ip = s.server_ip();
        let listen = &mut config.listen;
        for a in [&mut listen.submission, &mut listen.submissions]
            .into_iter()
            .flatten()
        {
            a.set_ip(ip);
        }
        // A scenario that brings its own certificate keeps it (the actors, trusting only the
        // world's CA, will then refuse it: a way to test that).
        let tls = &mut config.tls;
        if tls.cert.is_none() && tls.cert_pem.is_none() && tls.key_pem.is_none() {
            tls.cert_pem = Some(certs.server_cert_pem.clone());
            tls.key_pem = Some(certs.server_key_pem.clone());
        }
        let boots = Arc::new(AtomicU64::new(0));
        let fs_latency = Duration::from_secs_f64(s.world.fs_latency_ms / 1000.0);
        let (clock, trace, activity, fs_slot, disk) = (
            clock.clone(),
            trace.clone(),
            activity.clone(),
            fs_slot.clone(),
            faults.disk.clone(),
        );
        sim.host(s.server_ip(), move || {
            // Each boot gets its own RNG stream (derived from the seed), so ids chosen after
            // a restart never collide with ids from before it.
            let boot = boots.fetch_add(1, Ordering::Relaxed);
            let env = SimEnv::new(
                "server",
                clock.clone(),
                trace.clone(),
                seed ^ 0x5EED_0000_0000_0000 ^ boot.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                dns_addr,
                activity.clone(),
            )
            .with_fs_latency(fs_latency)
            .with_disk_faults(disk.clone());
            let config = config.clone();
            let fs_slot = fs_slot.clone();
            let disk = disk.clone();
            async move {
                use mailsim_server::env::Env;
                *fs_slot.lock().unwrap() = Some(FsHandle::current());
                env.trace("server", format_args!("boot {boot}"));
                let server = loop {
                    match Server::start(env.clone(), &config, RunOptions::default()).await {
                        Ok(server) => break server,
                        // A server that cannot open its store on a failing disk exits; a
                        // supervisor (systemd's Restart=on-failure) starts it again a
                        // second later. Only while an injected disk fault is on: any other
                        // start failure is the scenario's and fails the run.
                        Err(e) if disk.any_on() => {
                            env.trace(
                                "server",
                                format_args!("start failed: {e} (starting again in 1s)"),
                            );
                            env.sleep_until(env.now().plus(Duration::from_secs(1)))
                                .await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                server.run().await?;
                Ok(())
            }
        });
    }

    // --- remote MTAs ---
    let remote_logs: RemoteLogs = Arc::new(Mutex::new(Default::default()));
    for r in &s.remote {
        let spec = r.get_ref().clone();
        // A remote offering STARTTLS gets its certificate once, here, not per (re)boot.
        let tls = if spec.offers_starttls() {
            match remote::RemoteTls::generate(&spec.name, &clock) {
                Ok(tls) => Some(tls),
                Err(e) => panic!("TLS certificate for remote {}: {e}", spec.name),
            }
        } else {
            None
        };
        let (clock, trace, logs) = (clock.clone(), trace.clone(), remote_logs.clone());
        sim.host(spec.address, move || {
            remote::serve_with_tls(
                spec.clone(),
                clock.clone(),
                trace.clone(),
                logs.clone(),
                tls.clone(),
            )
        });
    }

    // --- actors ---
    let ctx = ActorCtx {
        clock: clock.clone(),
        trace: trace.clone(),
        dns: dns_addr,
        logs: logs.clone(),
        seed,
        tls: match certs.client_config(&clock) {
            Ok(c) => c,
            Err(e) => panic!("TLS client config for the actors: {e}"),
        },
        server_name: hostname,
    };
    // One client host per address; actors sharing one run side by side on it, each with its
    // own connection, started in scenario order (the host's runtime is single-threaded, so
    // the order is deterministic).
    let mut hosts: std::collections::BTreeMap<std::net::IpAddr, Vec<crate::scenario::Actor>> =
        Default::default();
    for a in &s.actor {
        hosts
            .entry(*a.address.get_ref())
            .or_default()
            .push(a.clone());
    }
    for (ip, actors) in hosts {
        let ctx = ctx.clone();
        sim.client(ip, async move {
            let tasks: Vec<_> = actors
                .into_iter()
                .map(|a| {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { actor::run(a, ctx).await.map_err(|e| e.to_string()) })
                })
                .collect();
            for t in tasks {
                t.await??;
            }
            Ok(())
        });
    }

    // --- run ---
    let mut steps = 0u64;
    let mut error = None;
    let mut consistency = Vec::new();
    let mut quiet = 0u32;
    let mut idle_streak = 0u32;
    loop {
        while let Some(event) = faults.due(clock.elapsed()) {
            if matches!(event, WorldEvent::Restart) {
                consistency.extend(check_before_restart(s, &fs_slot, &trace));
            }
            trace.record("world", "fault", faults::describe(&event));
            apply(&mut sim, s, &faults.disk, &event);
        }
        let before = (activity.get(), trace.len());
        let finished = match sim.step() {
            Ok(f) => f,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        steps += 1;
        clock.observe_turmoil_elapsed(sim.elapsed());
        let now = clock.elapsed();
        if faults.disk.take_crash() {
            trace.record(
                "world",
                "fault",
                "crash server after a torn write (unsynced writes are lost)",
            );
            sim.crash(s.server_ip());
            faults.torn_restart(s, seed, now);
        }
        faults.scan(&trace, now);
        if now >= duration {
            trace.record(
                "world",
                "world",
                format_args!("duration of {}s reached", duration.as_secs_f64()),
            );
            break;
        }
        let mut in_flight = 0usize;
        sim.links(|links| {
            for link in links {
                in_flight += link.count();
            }
        });
        // Idle for two steps in a row: a task woken by a host that runs later in a step only
        // runs in the next one (turmoil polls hosts in order), so one quiet step is not proof
        // that nobody is runnable.
        let quiet_step = in_flight == 0 && (activity.get(), trace.len()) == before;
        idle_streak = if quiet_step { idle_streak + 1 } else { 0 };
        let idle = idle_streak >= 2;
        let next_event = faults.next_at();
        let next = match (clock.next_deadline(), next_event) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if !idle {
            quiet = 0;
            continue;
        }
        match next {
            // Someone waits on a timer (a retry days away, an actor's pause, a fault):
            // jump there instead of stepping through idle ticks.
            Some(next) => {
                quiet = 0;
                let target = next.min(duration);
                if target > now + tick {
                    let by = target - now;
                    trace.record(
                        "world",
                        "world",
                        format_args!("warp +{:.3}s (idle until the next timer)", by.as_secs_f64()),
                    );
                    clock.warp(by);
                }
            }
            // No timer, nothing in flight, nobody active: once the actors are done and this
            // holds for a few steps, the world has nothing left to do.
            None if finished => {
                quiet += 1;
                if quiet >= DRAIN_QUIET_STEPS {
                    break;
                }
            }
            None => {}
        }
    }
    let sim_elapsed = clock.elapsed();
    trace.record("world", "world", format_args!("end after {steps} steps"));
    let server_fs = fs_slot.lock().unwrap().take();
    WorldResult {
        trace,
        logs,
        remote_logs,
        server_fs,
        sim_elapsed,
        warped: clock.warped(),
        steps,
        wall: wall_start.elapsed(),
        error,
        consistency,
    }
}

/// The consistency check on the crash image the next boot will recover from.
fn check_before_restart(
    s: &crate::scenario::Scenario,
    fs_slot: &Mutex<Option<FsHandle>>,
    trace: &Trace,
) -> Vec<crate::check::Failure> {
    let slot = fs_slot.lock().unwrap();
    let (Some(fs), Ok(directory)) = (slot.as_ref(), s.server.get_ref().config.validate()) else {
        return Vec::new();
    };
    let _guard = fs.enter();
    let moment = crate::consistency::Moment::Restart;
    crate::consistency::check(&directory, &trace.lines(), moment)
}

/// The address of a host the scenario names (`server`, `dns`, an actor, a remote); names
/// are checked at load.
fn host_ip(s: &crate::scenario::Scenario, name: &str) -> std::net::IpAddr {
    match name {
        "server" => s.server_ip(),
        "dns" => s.dns_ip(),
        _ => s
            .actor
            .iter()
            .find(|a| a.name.get_ref() == name)
            .map(|a| *a.address.get_ref())
            .or_else(|| {
                s.remote
                    .iter()
                    .find(|r| r.get_ref().name == name)
                    .map(|r| r.get_ref().address)
            })
            .unwrap_or_else(|| s.server_ip()),
    }
}

/// Applies one fault event to the simulation.
fn apply(
    sim: &mut turmoil::Sim<'_>,
    s: &crate::scenario::Scenario,
    disk: &crate::env::disk::DiskFaults,
    event: &WorldEvent,
) {
    match event {
        WorldEvent::Crash => sim.crash(s.server_ip()),
        WorldEvent::Restart => sim.bounce(s.server_ip()),
        WorldEvent::Disk { fault, kind, on } => disk.switch(*fault, *kind, *on),
        WorldEvent::ArmTorn => disk.arm_torn(crate::env::disk::TornAt::Armed),
        WorldEvent::Partition { link, one_way, on } => link.each(|a, b| match (one_way, on) {
            (false, true) => sim.partition(a, b),
            (false, false) => sim.repair(a, b),
            (true, true) => sim.partition_oneway(a, b),
            (true, false) => sim.repair_oneway(a, b),
        }),
        WorldEvent::Latency { link, set } => {
            let (min, max) = set.unwrap_or((
                Duration::from_millis(s.world.min_latency_ms),
                Duration::from_millis(s.world.max_latency_ms.max(s.world.min_latency_ms)),
            ));
            link.each(|a, b| {
                sim.set_link_latency(a, b, min);
                sim.set_link_max_message_latency(a, b, max);
            });
        }
    }
}
