//! A controllable HTTP proxy for the fault tests, placed between omen and the
//! real receiver: it passes requests through, or plays a downstream that
//! rate-limits (429), answers too late, or holds requests while the test
//! signals omen. Every request is logged with a hash of its body, so a test can
//! tell a retry (the same bytes again) from new data.
//!
//! One request per connection (`Connection: close` both ways): omen's pool
//! opens a new connection for the next request, which keeps the proxy simple.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the receiver and relay its answer; if the receiver is down,
    /// close the connection without an answer (omen sees a connection error).
    Pass,
    /// Answer `429 Too Many Requests` with `Retry-After: 1`; forward nothing.
    RateLimit,
    /// Forward, then answer only after the given delay (longer than omen's
    /// downstream timeout): the receiver has the data, omen has given up.
    Slow(Duration),
    /// Forward, then hold the receiver's answer until the mode changes.
    HoldAnswer,
    /// Forward nothing; hold the request until the mode changes, then close
    /// the connection without an answer.
    HoldRequest,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Hash of the request body (the snappy-compressed write request).
    pub body: u64,
    /// The mode when the request arrived.
    pub mode: Mode,
    /// The receiver's status if the request was forwarded and answered.
    pub receiver_status: Option<u16>,
    /// When the request arrived.
    pub at: Instant,
}

struct Shared {
    mode: Mutex<Mode>,
    changed: Condvar,
    log: Mutex<Vec<Record>>,
    /// Requests currently held (`HoldAnswer` or `HoldRequest`).
    held: Mutex<Vec<u64>>,
}

/// A running proxy; its threads live as long as the test process.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:<receiver_port>`.
    pub fn start(receiver_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            changed: Condvar::new(),
            log: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || handle(conn, receiver_port, &s));
            }
        });
        Proxy { port, shared }
    }

    /// The URL omen should use as `downstream.url`.
    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        self.shared.changed.notify_all();
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.lock().unwrap()
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Record> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Body hashes of the requests held right now.
    pub fn held(&self) -> Vec<u64> {
        self.shared.held.lock().unwrap().clone()
    }
}

fn handle(mut conn: TcpStream, receiver_port: u16, s: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((head, body)) = read_request(&conn) else {
        return;
    };
    let hash = {
        let mut h = DefaultHasher::new();
        body.hash(&mut h);
        h.finish()
    };
    let mode = *s.mode.lock().unwrap();
    let at = Instant::now();
    let log = |receiver_status| {
        s.log.lock().unwrap().push(Record {
            body: hash,
            mode,
            receiver_status,
            at,
        })
    };
    match mode {
        Mode::RateLimit => {
            log(None);
            let msg = "rate limited by the e2e proxy";
            let _ = write!(
                conn,
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            );
        }
        Mode::HoldRequest => {
            log(None);
            wait_while(s, hash, Mode::HoldRequest);
            let _ = conn.shutdown(Shutdown::Both);
        }
        Mode::Pass | Mode::Slow(_) | Mode::HoldAnswer => {
            let Some(answer) = forward(receiver_port, &head, &body) else {
                log(None);
                let _ = conn.shutdown(Shutdown::Both);
                return;
            };
            log(status_of(&answer));
            match mode {
                Mode::Slow(d) => std::thread::sleep(d),
                Mode::HoldAnswer => wait_while(s, hash, Mode::HoldAnswer),
                _ => {}
            }
            let _ = conn.write_all(&answer);
        }
    }
}

/// Blocks while the mode is `mode`, listed as held.
fn wait_while(s: &Shared, hash: u64, mode: Mode) {
    s.held.lock().unwrap().push(hash);
    let mut m = s.mode.lock().unwrap();
    while *m == mode {
        m = s.changed.wait(m).unwrap();
    }
    drop(m);
    let mut held = s.held.lock().unwrap();
    if let Some(i) = held.iter().position(|h| *h == hash) {
        held.remove(i);
    }
}

/// Reads one request: its head with `Connection` replaced by `close`, and its body.
fn read_request(conn: &TcpStream) -> Option<(String, Vec<u8>)> {
    let mut r = BufReader::new(conn);
    let mut head = String::new();
    let mut len = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head.push_str(&line);
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Sends the request to the receiver and returns its whole answer, or `None`
/// when the receiver cannot be reached or does not answer.
fn forward(port: u16, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", port)).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    (!answer.is_empty()).then_some(answer)
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
