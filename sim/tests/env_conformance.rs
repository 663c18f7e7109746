//! The Env conformance test (`mailsim_server::env::conformance`) against the simulated Env,
//! inside a turmoil host with its simulated filesystem: the same body the real Env (temp
//! dir) and the in-memory test Env pass in the server's unit tests.

use std::net::SocketAddr;
use std::time::Duration;

use mailsim::clock::SimClock;
use mailsim::env::{Activity, SimEnv};
use mailsim::trace::Trace;
use mailsim_server::env::{conformance, Timestamp};

#[test]
fn the_simulated_env_conforms() {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(60))
        .build();
    let clock = SimClock::new(Timestamp::from_secs(1_767_225_600));
    let trace = Trace::new(clock.clone());
    let dns: SocketAddr = "192.0.2.53:53".parse().unwrap();
    sim.client("server", async move {
        let env = SimEnv::new("server", clock, trace, 1, dns, Activity::default());
        conformance::run(&env).await;
        Ok(())
    });
    sim.run().unwrap();
}
