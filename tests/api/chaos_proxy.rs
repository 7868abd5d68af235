//! A loopback TCP proxy for outage tests (the idea of crates.io's chaosproxy): the database
//! or a provider's collector becomes unreachable, or its answers are lost, on demand.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A loopback TCP proxy that can cut every connection (`up` false: the target is
/// unreachable) or swallow the target's answers (`answers` false: requests arrive, then the
/// connection is cut before the client hears back).
pub struct ChaosProxy {
    pub port: u16,
    pub up: Arc<AtomicBool>,
    pub answers: Arc<AtomicBool>,
}

impl ChaosProxy {
    pub fn start(target_port: u16) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let answers = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&up);
        let answering = Arc::clone(&answers);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                for (mut from, mut to, answer) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        false,
                    ),
                    (server, client, true),
                ] {
                    let flag = Arc::clone(&flag);
                    let answering = Arc::clone(&answering);
                    std::thread::spawn(move || {
                        from.set_read_timeout(Some(Duration::from_millis(100)))
                            .unwrap();
                        let mut buf = [0u8; 16384];
                        loop {
                            if !flag.load(Ordering::SeqCst) {
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => {
                                    let _ = to.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                                Ok(_) if answer && !answering.load(Ordering::SeqCst) => {
                                    let _ = from.shutdown(std::net::Shutdown::Both);
                                    let _ = to.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => {
                                    let _ = to.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                            }
                        }
                    });
                }
            }
        });
        Self { port, up, answers }
    }
}
