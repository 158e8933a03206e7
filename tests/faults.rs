//! End-to-end tests that break one region on purpose: its Redis stops, or
//! its worker is killed. They run one at a time (a lock), and after the
//! other end-to-end tests (cargo runs test binaries one after another), and
//! always put the region back the way `make up` starts it.

mod common;

use std::time::{Duration, Instant};

use common::{
    OPEN_TENANT, Restart, expected, kill, prefix, publish_all, recorded_pid, snapshot, wait_converged, wait_dead,
    workload,
};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const CONVERGE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_whose_redis_was_down_converges_when_it_returns() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = common::load_env();
    let region = env.regions[1].name.clone();
    let p = prefix("redis-outage");
    let commands = workload(&p, 200, 40, 0x0ff_11e);
    let want = expected(&commands);
    let publisher = common::publisher(&env).await;

    let pid = recorded_pid(&format!("redis-{region}"));
    kill(pid, "KILL");
    wait_dead(pid).await;
    let outage = Instant::now();
    {
        let _restart = Restart {
            env: &env,
            script: "redis.sh",
            region: region.clone(),
        };
        publish_all(&publisher, OPEN_TENANT, &commands).await;
        // Long enough for the worker to receive the batches and fail on
        // them, short enough that they are not received max_receive_count
        // times (which would move them to the DLQ).
        let down_for = env.visibility_timeout() / 3;
        tokio::time::sleep(down_for.saturating_sub(outage.elapsed())).await;
        // Dropping `_restart` starts the region's Redis again, empty.
    }
    eprintln!("{region}'s Redis was down for {:?}", outage.elapsed());
    let mut conn = common::redis(&env, &region).await;
    let right_after = snapshot(&mut conn, &p).await.expect("snapshot").len();
    let took = wait_converged(&env, &env.region_names(), &p, &want, CONVERGE).await;
    eprintln!(
        "{region}: {right_after} of {} keys right after Redis returned, converged {took:?} later",
        want.len()
    );
    publisher.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = common::load_env();
    let region = env.regions[0].name.clone();
    let p = prefix("worker-kill");
    let commands = workload(&p, 600, 150, 0x00c0_ffee);
    let want = expected(&commands);
    let publisher = common::publisher(&env).await;

    // Many small messages, so the worker is busy with a stream of batches
    // rather than one: flush every 10 commands.
    let sender = {
        let publisher = publisher.clone();
        let commands = commands.clone();
        tokio::spawn(async move {
            for chunk in commands.chunks(10) {
                publish_all(&publisher, OPEN_TENANT, chunk).await;
            }
        })
    };

    // Kill the worker as soon as the region has applied something.
    let mut conn = common::redis(&env, &region).await;
    let deadline = Instant::now() + CONVERGE;
    let applied_at_kill = loop {
        let n = snapshot(&mut conn, &p).await.expect("snapshot").len();
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "{region} applied nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let pid = recorded_pid(&format!("worker-{region}"));
    {
        let _restart = Restart {
            env: &env,
            script: "worker.sh",
            region: region.clone(),
        };
        kill(pid, "KILL");
        wait_dead(pid).await;
        let publishing_done = sender.is_finished();
        eprintln!(
            "killed {region}'s worker with {applied_at_kill} of {} keys applied (publishing done: {publishing_done})",
            want.len()
        );
        assert!(
            applied_at_kill < want.len(),
            "the worker was killed only after it had applied everything"
        );
        sender.await.expect("publishing task");
        // Dropping `_restart` starts the worker again, as `make up` does.
    }
    let took = wait_converged(&env, &env.region_names(), &p, &want, CONVERGE).await;
    eprintln!("{region} converged {took:?} after its worker was restarted");
    publisher.shutdown().await.expect("shutdown");
}
