//! Who holds a host port: a container of the engine, or a local process (from /proc).

use std::net::TcpListener;

pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// The process listening on `port`, as "name (pid N)", found through /proc/net/tcp{,6}
/// and the processes' socket file descriptors. `None` when it cannot be told (another
/// user's process, or a container's proxy that we name elsewhere).
pub fn process_holding(port: u16) -> Option<String> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|f| listening_inode(f, port))?;
    let needle = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("{} (pid {pid})", comm.trim()));
            }
        }
    }
    None
}

/// The inode of the socket in state LISTEN (0A) on `port`, from a /proc/net/tcp table.
fn listening_inode(table: &str, port: u16) -> Option<String> {
    let text = std::fs::read_to_string(table).ok()?;
    parse_listening_inode(&text, port)
}

pub fn parse_listening_inode(text: &str, port: u16) -> Option<String> {
    let want = format!("{port:04X}");
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let local = cols.get(1)?;
        let state = cols.get(3)?;
        let inode = cols.get(9)?;
        (local.rsplit(':').next() == Some(want.as_str()) && *state == "0A")
            .then(|| (*inode).to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listener_of_a_port_in_a_proc_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(parse_listening_inode(table, 8080).as_deref(), Some("12345"));
        assert_eq!(
            parse_listening_inode(table, 8081),
            None,
            "established, not listening"
        );
    }

    #[test]
    fn names_this_test_process_as_the_holder_of_its_port() {
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!is_free(port));
        let holder = process_holding(port).unwrap();
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
    }
}
