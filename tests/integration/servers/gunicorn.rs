//! gunicorn, the Python WSGI server, with a plain WSGI app: SIGTTIN sent to vigil reaches the
//! arbiter, which adds a worker (gunicorn scales with TTIN/TTOU, contract "What vigil does" 5),
//! and SIGTERM with a slow request in flight lets the worker finish that request before gunicorn
//! exits 0.

use super::{
    Checks, check_clean_drain, check_dropped, check_unready, children, chown_tree, end_drain,
    http_get, server, start, stderr_has, usable,
};
use crate::util::{CEILING, SLACK, Scratch, poll_until, secs, wait_until};
use nix::sys::signal::Signal;
use std::time::Instant;

const GUNICORN: &str = "/usr/bin/gunicorn";

/// `/slow` leaves a marker when it starts, then takes 2 s; anything else answers at once.
const APP: &str = r#"import os
import time


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/slow":
        open(os.path.join(os.path.dirname(__file__), "slow.started"), "w").close()
        time.sleep(2)
        body = b"slow done\n"
    else:
        body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"#;

/// gunicorn as www-data, one sync worker: TTIN makes two, a SIGTERM during `/slow` finishes it.
#[test]
fn gunicorn_ttin_then_term_mid_request() {
    let Some(acct) = usable(&[GUNICORN, "/usr/bin/python3"], "www-data") else {
        return;
    };
    let s = Scratch::new();
    std::fs::write(s.path("app.py"), APP).expect("write app.py");
    chown_tree(&s.dir, &acct);
    let dir = s.dir.to_string_lossy().into_owned();
    let opts = [
        "--probe-http",
        "http://127.0.0.1:8000/",
        "--drain-timeout",
        "8",
    ];
    let cmd = [
        GUNICORN,
        "--chdir",
        &dir,
        "--worker-tmp-dir",
        &dir,
        "--workers",
        "1",
        "--bind",
        "127.0.0.1:8000",
        "--graceful-timeout",
        "6",
        "app:app",
    ];
    let (mut v, net) = start(server(&acct, &s.dir, &opts, &cmd));
    let mut c = Checks::new();
    net.wait_ready(&mut v);
    let app = v.app();
    assert_eq!(children(app.pid).len(), 1, "one worker\n{}", v.dump());

    v.signal(Signal::SIGTTIN);
    let grew = poll_until(CEILING, || children(app.pid).len() == 2);
    c.check(grew, || {
        format!(
            "SIGTTIN to vigil did not add a worker: {} worker(s)",
            children(app.pid).len()
        )
    });
    c.check(stderr_has(&v, "Handling signal: ttin"), || {
        "gunicorn did not log the TTIN".into()
    });
    check_dropped(&mut c, &v, app, &acct);

    let slow = net.spawn(|| {
        let answer = http_get(8000, "/slow", secs(20.0), None);
        (answer, Instant::now())
    });
    wait_until("the slow request has started", CEILING, || {
        s.path("slow.started").exists()
    });
    let t0 = v.signal(Signal::SIGTERM);
    check_unready(&mut c, &net, t0);
    let d = end_drain(&mut c, &mut v, t0, secs(8.5) + CEILING);
    check_clean_drain(&mut c, &v, &d, ("SIGTERM", "SIGTERM"), 8.0);
    let (answer, done) = slow.join().expect("the request thread");
    c.check(d.at + SLACK >= done, || {
        format!("vigil was gone {:?} before the request ended", done - d.at)
    });
    c.check(
        answer
            .as_ref()
            .is_ok_and(|a| a.code == 200 && a.body == b"slow done\n"),
        || format!("the request in flight did not finish: {answer:?}"),
    );
    c.finish(&v);
}
