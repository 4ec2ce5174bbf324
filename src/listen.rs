//! Whether a local listener has accepted its pending connections: `vigil drill --hold` waits for
//! that before its SIGTERM, so the held connections are the app's clients (a postgres backend
//! forked for each), not entries still queued in the kernel that the app would only see after it
//! began to stop (postgres then forks a "dead-end" backend that its shutdown does not end).
//!
//! The kernel shows a listening socket's accept queue as its `rx_queue` in /proc/net/tcp and
//! /proc/net/tcp6 (`sk_ack_backlog` for state 0A, LISTEN), for the reader's network namespace.

/// The connections queued, not yet accepted, on the listeners of `port` in this network
/// namespace; None when there is no such listener here (a remote target: nothing to tell).
pub fn backlog(port: u16) -> Option<u32> {
    let mut total = None;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table)
            && let Some(n) = queued(&text, port)
        {
            total = Some(total.unwrap_or(0) + n);
        }
    }
    total
}

/// `backlog` for one table's text.
pub fn queued(table: &str, port: u16) -> Option<u32> {
    let mut total = None;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(&"0A"), Some(queues)) = (f.get(1), f.get(3), f.get(4)) else {
            continue;
        };
        let listens_on = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            == Some(port);
        let rx = queues
            .split_once(':')
            .and_then(|(_, rx)| u32::from_str_radix(rx, 16).ok());
        if let (true, Some(rx)) = (listens_on, rx) {
            total = Some(total.unwrap_or(0) + rx);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:D8A8 00000000:0000 0A 00000000:00000002 00:00000000 00000000   101        0 1 1 0 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:D8A8 0100007F:8CA0 01 00000000:00000005 00:00000000 00000000   101        0 3 1 0 20 4 30 10 -1
";

    #[test]
    fn the_accept_queue_of_the_listener_on_the_port() {
        assert_eq!(
            queued(TABLE, 0xD8A8),
            Some(2),
            "the established line is not counted"
        );
        assert_eq!(queued(TABLE, 8080), Some(0));
        assert_eq!(queued(TABLE, 5432), None);
        assert_eq!(queued("", 1), None);
        assert_eq!(queued("header\n garbage 0A", 1), None);
    }

    #[test]
    fn a_real_listener_shows_its_queue() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(backlog(port), Some(0));
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(backlog(port), Some(1), "connected, not yet accepted");
        let _s = l.accept().unwrap();
        assert_eq!(backlog(port), Some(0));
    }
}
