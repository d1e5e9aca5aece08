//! A capturing SMTP server on loopback for tests, shared by the library's
//! unit tests (`src/mail`) and the integration harness (`tests/api`).
//!
//! It speaks just enough ESMTP for lettre (EHLO, HELO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT), keeps every message it accepts, can refuse recipients
//! with a chosen reply code, and can be stopped and started again on the
//! same port to play an outage. Stopping also cuts open sessions, because
//! lettre pools connections and a pooled connection would otherwise outlive
//! the "outage".
//!
//! It runs on plain threads with blocking I/O, so it works under any tokio
//! runtime flavour. No TLS and no AUTH: use [`TestSmtp::url`]. All methods
//! take `&self`, so the server can be shared behind an `Arc`.
//!
//! [`CapturedMail`] also decodes what it captured (RFC 2047 headers,
//! quoted-printable, base64, multipart) for assertions on subjects and bodies.

// Compiled into two crates (lib unit tests and the `api` integration test),
// each using a different part of it.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use base64::Engine;

/// One message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedMail {
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets.
    pub to: Vec<String>,
    /// The message after `DATA`, dot-unstuffed, without the final `.` line.
    pub raw: String,
}

/// A running (or stopped) capturing SMTP server on a loopback port.
pub struct TestSmtp {
    /// Where it listens (or will listen once started); the same across
    /// stop and restart.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<CapturedMail>>,
    /// When set, every `RCPT TO` is answered with this code.
    reject_recipients: Mutex<Option<u16>>,
}

/// Open sessions by id, so stopping can cut them and a finished session can
/// drop its handle (and really close its socket).
type Sessions = Arc<Mutex<HashMap<u64, TcpStream>>>;

struct Running {
    stop: Arc<AtomicBool>,
    sessions: Sessions,
    acceptor: JoinHandle<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking session thread must not hide the mail already captured.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TestSmtp {
    /// Starts a server on a free loopback port.
    pub fn start() -> TestSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let smtp = TestSmtp::unstarted(addr);
        smtp.serve(listener);
        smtp
    }

    /// A server not listening yet, on a port that was free a moment ago:
    /// connections are refused until [`TestSmtp::restart`].
    pub fn stopped() -> TestSmtp {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free loopback port");
        TestSmtp::unstarted(addr)
    }

    fn unstarted(addr: SocketAddr) -> TestSmtp {
        TestSmtp {
            addr,
            shared: Arc::default(),
            running: Mutex::new(None),
        }
    }

    /// The transport URL to deliver to this server (`smtp://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far, oldest first (kept across restarts).
    pub fn messages(&self) -> Vec<CapturedMail> {
        lock(&self.shared.mails).clone()
    }

    /// Answers every `RCPT TO` with `code` (550, 451, …), or accepts again
    /// with `None`.
    pub fn reject_recipients(&self, code: Option<u16>) {
        *lock(&self.shared.reject_recipients) = code;
    }

    /// Stops listening and cuts every open session; mail sent now fails to
    /// connect. Does nothing when already stopped.
    pub fn stop(&self) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        running.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so it sees the flag; the listener closes
        // when the acceptor thread returns.
        let _ = TcpStream::connect(self.addr);
        let _ = running.acceptor.join();
        for (_, session) in lock(&running.sessions).drain() {
            let _ = session.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same address. Does nothing when already running.
    pub fn restart(&self) {
        let mut running = lock(&self.running);
        if running.is_some() {
            return;
        }
        // Rebinding normally works at once on Unix, because the standard
        // library sets `SO_REUSEADDR` on listeners; retry a little anyway.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => panic!("cannot rebind the test SMTP port: {err}"),
            }
        };
        *running = Some(self.spawn_acceptor(listener));
    }

    fn serve(&self, listener: TcpListener) {
        *lock(&self.running) = Some(self.spawn_acceptor(listener));
    }

    fn spawn_acceptor(&self, listener: TcpListener) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let sessions: Sessions = Arc::default();
        let acceptor = {
            let stop = Arc::clone(&stop);
            let sessions = Arc::clone(&sessions);
            let shared = Arc::clone(&self.shared);
            std::thread::spawn(move || {
                let next_id = AtomicU64::new(0);
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    if let Ok(handle) = stream.try_clone() {
                        lock(&sessions).insert(id, handle);
                    }
                    let shared = Arc::clone(&shared);
                    let sessions = Arc::clone(&sessions);
                    std::thread::spawn(move || {
                        // A client hanging up mid-session is not a failure.
                        let _ = session(stream, &shared);
                        lock(&sessions).remove(&id);
                    });
                }
            })
        };
        Running {
            stop,
            sessions,
            acceptor,
        }
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The text between `<` and `>` after a `MAIL FROM:` / `RCPT TO:` verb.
fn path_argument(rest: &str) -> String {
    let start = rest.find('<').map_or(0, |i| i + 1);
    let end = rest[start..].find('>').map_or(rest.len(), |i| start + i);
    rest[start..end].trim().to_owned()
}

/// One write per reply: a reply split into two small writes meets Nagle's
/// algorithm on this side and a delayed ACK on the client's, which cost
/// about 40 ms per SMTP command (about 250 ms per mail).
fn reply(writer: &mut TcpStream, text: &str) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(text.len() + 2);
    line.extend_from_slice(text.as_bytes());
    line.extend_from_slice(b"\r\n");
    writer.write_all(&line)?;
    writer.flush()
}

fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    reply(&mut writer, "220 localhost ESMTP custos-test")?;

    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end_matches(['\r', '\n']);
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            reply(&mut writer, "250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8")?;
        } else if upper.starts_with("HELO") {
            reply(&mut writer, "250 localhost")?;
        } else if upper.starts_with("MAIL FROM:") {
            from = Some(path_argument(&command["MAIL FROM:".len()..]));
            to.clear();
            reply(&mut writer, "250 2.1.0 OK")?;
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                reply(&mut writer, "503 5.5.1 MAIL first")?;
            } else if let Some(code) = *lock(&shared.reject_recipients) {
                reply(
                    &mut writer,
                    &format!("{code} recipient refused by test server"),
                )?;
            } else {
                to.push(path_argument(&command["RCPT TO:".len()..]));
                reply(&mut writer, "250 2.1.5 OK")?;
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                reply(&mut writer, "503 5.5.1 RCPT first")?;
                continue;
            }
            reply(&mut writer, "354 end data with <CR><LF>.<CR><LF>")?;
            let mut raw = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                if line == b".\r\n" || line == b".\n" {
                    break;
                }
                // RFC 5321 4.5.2: the client doubled a leading dot.
                let data = if line.starts_with(b"..") {
                    &line[1..]
                } else {
                    &line[..]
                };
                raw.extend_from_slice(data);
            }
            lock(&shared.mails).push(CapturedMail {
                from: from.take().unwrap_or_default(),
                to: std::mem::take(&mut to),
                raw: String::from_utf8_lossy(&raw).into_owned(),
            });
            reply(&mut writer, "250 2.0.0 OK queued")?;
        } else if upper == "RSET" {
            from = None;
            to.clear();
            reply(&mut writer, "250 2.0.0 OK")?;
        } else if upper.starts_with("NOOP") {
            reply(&mut writer, "250 2.0.0 OK")?;
        } else if upper == "QUIT" {
            reply(&mut writer, "221 2.0.0 Bye")?;
            return Ok(());
        } else {
            reply(&mut writer, "502 5.5.2 command not implemented")?;
        }
    }
}

// ---- Decoding what was captured ----

impl CapturedMail {
    /// The decoded `Subject` header.
    pub fn subject(&self) -> String {
        let (headers, _) = split_head(&self.raw);
        header_value(headers, "subject")
            .map(|v| decode_words(&v))
            .unwrap_or_default()
    }

    /// A header's raw value (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = split_head(&self.raw);
        header_value(headers, name)
    }

    /// The decoded `text/plain` part (or the whole body of a one-part mail).
    pub fn decoded_text(&self) -> String {
        part_with_type(&self.raw, "text/plain").unwrap_or_default()
    }

    /// The decoded `text/html` part, if any.
    pub fn decoded_html(&self) -> Option<String> {
        part_with_type(&self.raw, "text/html")
    }
}

fn split_head(raw: &str) -> (&str, &str) {
    raw.split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap_or((raw, ""))
}

fn header_value(headers: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    let mut collecting = false;
    for line in headers.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            // A folded continuation: unfold by dropping the line break only.
            if collecting && let Some(v) = value.as_mut() {
                v.push_str(line.trim_end_matches('\r'));
            }
            continue;
        }
        collecting = false;
        if value.is_none()
            && let Some((key, rest)) = line.split_once(':')
            && key.eq_ignore_ascii_case(name)
        {
            value = Some(rest.trim().to_string());
            collecting = true;
        }
    }
    value
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`).
/// Whitespace between two encoded words is dropped, as the RFC says, and
/// their bytes are joined before UTF-8 decoding, so a character split across
/// words survives.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut previous_encoded = false;
    for word in value.split_whitespace() {
        if let Some(bytes) = encoded_word(word) {
            if !previous_encoded && !out.is_empty() {
                out.push(' ');
            }
            pending.extend_from_slice(&bytes);
            previous_encoded = true;
            continue;
        }
        out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut pending)));
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        previous_encoded = false;
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out
}

/// The bytes of one RFC 2047 encoded word, or `None` when `word` is not one.
fn encoded_word(word: &str) -> Option<Vec<u8>> {
    let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let (_charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
    if encoding.eq_ignore_ascii_case("b") {
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    } else if encoding.eq_ignore_ascii_case("q") {
        Some(decode_qp(&text.replace('_', " ")))
    } else {
        None
    }
}

fn decode_qp(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let (Some(high), Some(low)) =
                (hex_digit(bytes.get(i + 1)), hex_digit(bytes.get(i + 2)))
            {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_digit(byte: Option<&u8>) -> Option<u8> {
    byte.and_then(|b| char::from(*b).to_digit(16))
        .and_then(|d| u8::try_from(d).ok())
}

fn decode_body(headers: &str, body: &str) -> String {
    let encoding = header_value(headers, "content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap_or_default(),
            )
            .into_owned()
        }
        "quoted-printable" => String::from_utf8_lossy(&decode_qp(body)).into_owned(),
        _ => body.to_string(),
    }
}

/// Finds the first part of `mime` type in a (possibly multipart) message.
fn part_with_type(raw: &str, mime: &str) -> Option<String> {
    let (headers, body) = split_head(raw);
    let content_type = header_value(headers, "content-type").unwrap_or_else(|| "text/plain".into());
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("multipart/") {
        let boundary = content_type
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .map(|b| b.trim_matches('"').to_string())?;
        let delimiter = format!("--{boundary}");
        for part in body.split(&delimiter).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let part = part.trim_start_matches(['\r', '\n']);
            if let Some(found) = part_with_type(part, mime) {
                return Some(found);
            }
        }
        None
    } else if lower.starts_with(mime) {
        Some(decode_body(headers, body))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::CapturedMail;
    use lettre::message::{Message, MultiPart};

    fn captured(message: &Message) -> CapturedMail {
        CapturedMail {
            from: String::new(),
            to: Vec::new(),
            raw: String::from_utf8_lossy(&message.formatted()).into_owned(),
        }
    }

    #[test]
    fn decodes_what_lettre_encodes() {
        let subject = "Hello 主题 — a rather long subject that lettre has to fold ✓✓✓✓";
        let text = "Ünïcode text, line one.\nA second line with a = sign and 中文.";
        let html = "<p>Ünïcode <b>html</b> 中文</p>";
        let message = Message::builder()
            .from("no-reply@custos.test".parse().unwrap())
            .to("alice@example.org".parse().unwrap())
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(
                text.to_owned(),
                html.to_owned(),
            ))
            .unwrap();
        let mail = captured(&message);
        assert_eq!(mail.subject(), subject);
        assert_eq!(mail.decoded_text().replace("\r\n", "\n").trim_end(), text);
        assert_eq!(mail.decoded_html().unwrap().trim_end(), html);
        assert_eq!(mail.header("TO").as_deref(), Some("alice@example.org"));

        let plain = Message::builder()
            .from("no-reply@custos.test".parse().unwrap())
            .to("alice@example.org".parse().unwrap())
            .subject("Plain subject")
            .body("just ascii".to_owned())
            .unwrap();
        let mail = captured(&plain);
        assert_eq!(mail.subject(), "Plain subject");
        assert_eq!(mail.decoded_text().trim_end(), "just ascii");
        assert_eq!(mail.decoded_html(), None);
    }
}
