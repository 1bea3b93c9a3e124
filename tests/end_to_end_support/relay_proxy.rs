//! A TCP proxy between the gateway's e-mail notifier and aiosmtpd that can
//! hold back the relay's acceptance of a message: with [`RelayProxy::hold`]
//! on, a reply saying the message was queued (aiosmtpd's `250 2.0.0 OK
//! queued`) is not passed on until the hold is lifted. The relay then has
//! the message while the gateway still waits to hear so: the moment to
//! kill it for a delivery to be made again after the restart.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// The running proxy (its threads end with the test's process).
pub struct RelayProxy {
    /// The loopback port it listens on.
    pub port: u16,
    hold: Arc<AtomicBool>,
}

impl RelayProxy {
    /// Forwards each connection on a free loopback port to `upstream`.
    pub fn start(upstream: u16) -> RelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("the proxy's address").port();
        let hold = Arc::new(AtomicBool::new(false));
        let held = hold.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(client_w), Ok(server_r)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                std::thread::spawn(move || pipe(client, server, None));
                let held = held.clone();
                std::thread::spawn(move || pipe(server_r, client_w, Some(held)));
            }
        });
        RelayProxy { port, hold }
    }

    /// Holds back (or, with `false`, passes on) the relay's "queued" replies.
    pub fn hold(&self, on: bool) {
        self.hold.store(on, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either ends; with `hold`, a chunk saying a
/// message was queued waits while the hold is on.
fn pipe(mut from: TcpStream, mut to: TcpStream, hold: Option<Arc<AtomicBool>>) {
    const QUEUED: &[u8] = b"OK queued";
    let mut buf = [0u8; 16 * 1024];
    // The end of the previous chunk, for a reply split between two reads.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(hold) = &hold {
            tail.extend_from_slice(&buf[..n]);
            let queued = tail.windows(QUEUED.len()).any(|w| w == QUEUED);
            tail.drain(..tail.len().saturating_sub(QUEUED.len() - 1));
            while queued && hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
