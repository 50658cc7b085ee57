//! Test helpers: omen in-process on 127.0.0.1:0, a fake downstream that records what it
//! receives and answers whatever a test tells it, and a small HTTP client.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use omen::app::App;
use omen::config::Config;
use omen::metrics::Metrics;
use omen::proto;

/// What the fake downstream answers to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, &'static str)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: String::new(),
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }
    pub fn header(mut self, name: &'static str, value: &'static str) -> Reply {
        self.headers.push((name, value));
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

/// A request the fake downstream received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    /// The snappy-decoded body.
    pub raw: Vec<u8>,
    pub request: proto::WriteRequest,
}

/// A downstream receiver for tests: answers from a queue of replies (then the default).
#[derive(Clone)]
pub struct FakeDownstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
}

impl FakeDownstream {
    pub async fn start() -> FakeDownstream {
        FakeDownstream::start_with(None).await
    }

    /// A fake downstream behind TLS (HTTPS) with this server config.
    pub async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> FakeDownstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeDownstream {
            addr: listener.local_addr().unwrap(),
            received: Arc::default(),
            replies: Arc::default(),
            default: Arc::new(Mutex::new(Reply::status(200))),
        };
        let f = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let f = f.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let f = f.clone();
                        async move { Ok::<_, std::convert::Infallible>(f.answer(req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => drop(http.serve_connection(TokioIo::new(stream), svc).await),
                        Some(cfg) => {
                            if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await
                            {
                                drop(http.serve_connection(TokioIo::new(s), svc).await);
                            }
                        }
                    }
                });
            }
        });
        fake
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .expect("omen sends snappy block format");
        let request =
            proto::WriteRequest::decode(&raw[..]).expect("omen sends a valid WriteRequest");
        self.received.lock().unwrap().push(Received {
            headers: parts.headers,
            raw,
            request,
        });
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.default.lock().unwrap().clone());
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
        *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap();
        for (n, v) in reply.headers {
            resp.headers_mut().insert(n, v.parse().unwrap());
        }
        resp
    }

    /// Queues a reply for the next request.
    pub fn reply(&self, r: Reply) {
        self.replies.lock().unwrap().push_back(r);
    }

    /// The reply once the queue is empty.
    pub fn set_default(&self, r: Reply) {
        *self.default.lock().unwrap() = r;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/push", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://localhost:{}/api/v1/push", self.addr.port())
    }
}

/// omen running in-process.
pub struct Omen {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    pub done: Option<tokio::task::JoinHandle<()>>,
}

impl Omen {
    /// Starts omen with a YAML config; `DOWNSTREAM` in the text is replaced by `url`.
    pub async fn start(yaml: &str, url: &str) -> Omen {
        Omen::start_at(yaml, url, Path::new("test.yaml")).await
    }

    pub async fn start_at(yaml: &str, url: &str, path: &Path) -> Omen {
        let text = yaml.replace("DOWNSTREAM", url);
        let config = Config::parse(&text, path).expect("test config is valid");
        let grace = config.server.shutdown_grace;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Arc::new(App::new(config, path.to_path_buf(), Metrics::new()));
        let (tx, rx) = oneshot::channel();
        let done = tokio::spawn(omen::server::run(
            listener,
            app.clone(),
            async { drop(rx.await) },
            grace,
        ));
        Omen {
            addr,
            app,
            stop: Some(tx),
            done: Some(done),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Signals shutdown (as SIGTERM does).
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Omen {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An HTTP answer as seen by a test.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// POSTs a body with the given headers.
pub async fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut req = Request::post(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    send(req.body(Full::new(Bytes::from(body))).unwrap()).await
}

pub async fn get(url: &str) -> Answer {
    send(Request::get(url).body(Full::default()).unwrap()).await
}

/// Sends a request on a fresh client and reads the whole answer.
async fn send(req: Request<Full<Bytes>>) -> Answer {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(req).await.expect("omen answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub const RW_HEADERS: [(&str, &str); 3] = [
    ("content-type", "application/x-protobuf"),
    ("content-encoding", "snappy"),
    ("x-prometheus-remote-write-version", "0.1.0"),
];

/// POSTs a WriteRequest as Prometheus does.
pub async fn write(omen: &Omen, req: &proto::WriteRequest) -> Answer {
    write_with(omen, req, &[]).await
}

pub async fn write_with(omen: &Omen, req: &proto::WriteRequest, extra: &[(&str, &str)]) -> Answer {
    write_to(&omen.url("/api/v1/write"), req, extra).await
}

/// POSTs a WriteRequest to `url` as Prometheus does, with `extra` headers.
pub async fn write_to(url: &str, req: &proto::WriteRequest, extra: &[(&str, &str)]) -> Answer {
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let mut headers = RW_HEADERS.to_vec();
    headers.extend_from_slice(extra);
    post(url, &headers, body).await
}

/// POSTs a WriteRequest to an omen process on 127.0.0.1:`port`; returns the status.
pub async fn write_port(port: u16, req: &proto::WriteRequest) -> u16 {
    write_to(&format!("http://127.0.0.1:{port}/api/v1/write"), req, &[])
        .await
        .status
}

/// A port free on 127.0.0.1 now, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An omen process (the binary under test), killed and reaped when dropped.
pub struct OmenProcess(pub std::process::Child);

impl Drop for OmenProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `omen serve --config CONFIG` (listening on 127.0.0.1:`port`, stderr to `log` or
/// nowhere) and waits up to 20 s for `/-/ready` to answer 200.
pub async fn start_omen_process(config: &Path, port: u16, log: Option<&Path>) -> OmenProcess {
    let stderr = match log {
        Some(log) => std::process::Stdio::from(std::fs::File::create(log).unwrap()),
        None => std::process::Stdio::null(),
    };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_omen"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("omen starts");
    // Owned at once, so a timeout below kills and reaps it.
    let process = OmenProcess(child);
    let started = std::time::Instant::now();
    loop {
        // `get` panics on a refused connection: wait for the listener first.
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let ready = tokio::time::timeout(
                Duration::from_millis(500),
                get(&format!("http://127.0.0.1:{port}/-/ready")),
            )
            .await;
            if matches!(ready, Ok(a) if a.status == 200) {
                return process;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "omen did not become ready{}",
            log.map(|l| format!("; see {}", l.display()))
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::TimeSeries {
    proto::TimeSeries {
        labels: pairs
            .iter()
            .map(|(n, v)| proto::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| proto::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

pub fn request(series: Vec<proto::TimeSeries>) -> proto::WriteRequest {
    proto::WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
}

/// The value of a counter or gauge line in omen's /metrics (0 if absent).
pub async fn metric(omen: &Omen, line_prefix: &str) -> f64 {
    let text = get(&omen.url("/metrics")).await.body;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line_prefix)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}
