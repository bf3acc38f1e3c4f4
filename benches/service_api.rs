//! What the REST API adds to the engine: on a server whose disk has 4 GiB
//! allocated, the median `POST /snapshots/` + `DELETE` round trip against
//! the in-process engine create + delete plus one loopback HTTP no-op
//! (`GET /api/v1/ping/`), all measured in this one run.
//!
//! `cargo bench --bench service_api`; `COWSNAP_BENCH_GIB` changes the
//! allocated size, `COWSNAP_BENCH_ROUNDS` the sample count.

use cowsnap::service::{run, Disk, NewServer, Service};
use cowsnap::Pool;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Fill the first `bytes` of the server's disk with non-zero data.
fn allocate(pool: &Pool, volume: &str, bytes: u64) {
    let vol = pool.volume(volume).unwrap();
    let chunk = vec![0x5Au8; 8 << 20];
    let mut at = 0;
    while at < bytes {
        vol.write_at(&chunk, at).unwrap();
        at += chunk.len() as u64;
    }
    vol.flush().unwrap();
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a quick smoke
    // run then, not 4 GiB of writes.
    let full = std::env::args().any(|a| a == "--bench");
    let gib = if full {
        env_u64("COWSNAP_BENCH_GIB", 4)
    } else {
        0
    };
    let rounds = if full {
        env_u64("COWSNAP_BENCH_ROUNDS", 101) as usize
    } else {
        3
    };
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("pool"), cowsnap::DEFAULT_BLOCK_SIZE).unwrap();
    let svc = Arc::new(Service::open(pool.clone()).unwrap());
    svc.ensure_admin().unwrap();
    svc.create_account("bench").unwrap();
    let token = svc.create_token("bench").unwrap().token;
    svc.create_server(NewServer {
        id: 1,
        name: "big".into(),
        account: "bench".into(),
        disk: Disk::Size((gib + 1) << 30),
    })
    .unwrap();
    let started = Instant::now();
    allocate(&pool, "srv-1", gib << 30);
    eprintln!(
        "allocated {gib} GiB in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The three are interleaved within each round, in A B C / C B A order,
    // so the machine's noise falls on all of them alike.
    let (engine, noop, api) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(run::serve(svc.clone(), listener, async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::new();
        let (mut engine, mut noop, mut api) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rounds {
            for step in if i % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] } {
                match step {
                    0 => {
                        // The plain call, on this thread: no hand-off to
                        // a blocking thread is charged to the engine.
                        let t = Instant::now();
                        tokio::task::block_in_place(|| {
                            let s = pool
                                .create_snapshot_limited("srv-1", &format!("e{i}"), "", Some(5))
                                .unwrap();
                            pool.delete_snapshot(s.id).unwrap();
                        });
                        engine.push(t.elapsed());
                    }
                    1 => {
                        let t = Instant::now();
                        let r = http
                            .get(format!("{url}/ping/"))
                            .bearer_auth(&token)
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success());
                        r.bytes().await.unwrap();
                        noop.push(t.elapsed());
                    }
                    _ => {
                        let t = Instant::now();
                        let r = http
                            .post(format!("{url}/snapshots/"))
                            .bearer_auth(&token)
                            .json(&serde_json::json!({"server_id": 1, "name": format!("h{i}")}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 201);
                        let body: serde_json::Value = r.json().await.unwrap();
                        let id = body["id"].as_u64().unwrap();
                        let r = http
                            .delete(format!("{url}/snapshots/{id}/"))
                            .bearer_auth(&token)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 204);
                        api.push(t.elapsed());
                    }
                }
            }
        }
        let _ = tx.send(());
        served.await.unwrap().unwrap();
        (engine, noop, api)
    });

    let (engine, noop, api) = (median(engine), median(noop), median(api));
    let budget = 2 * (engine + noop);
    println!("disk allocated:                 {gib} GiB");
    println!("rounds:                         {rounds}");
    println!("engine create+delete (median):  {:.3} ms", ms(engine));
    println!("HTTP no-op ping (median):       {:.3} ms", ms(noop));
    println!("HTTP POST+DELETE (median):      {:.3} ms", ms(api));
    println!(
        "ratio to engine + no-op:        {:.2} (target <= 2.00: {})",
        api.as_secs_f64() / (engine + noop).as_secs_f64(),
        if api <= budget { "met" } else { "MISSED" }
    );
}
