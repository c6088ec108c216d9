//! Follows HTTP/1.1 request framing in the bytes a connection delivers, to find a request head
//! that carries both `Content-Length` and `Transfer-Encoding`.
//!
//! Why: hyper frames such a request by `Transfer-Encoding` and quietly drops the length (RFC 9112
//! §6.3 allows that), so no handler can tell. Such a request is the classic smuggling probe and
//! the gateway refuses it. The tracker walks heads (with `httparse`, as hyper does), skips
//! `Content-Length` bodies by arithmetic and walks chunked bodies with hyper's grammar, so its
//! n-th head is hyper's n-th request. Anything it cannot follow is something hyper refuses
//! too (and then closes the connection); the tracker stops there and reports it, so the gateway
//! fails closed rather than guessing.

use std::mem::MaybeUninit;

/// hyper's default limit on buffered head bytes (`8192 + 4096 * 100`); a longer head is refused.
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// hyper's default limit on the number of headers in a request.
const MAX_HEADERS: usize = 100;

/// Why requests from some point of a connection on must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The head carries both `Content-Length` and `Transfer-Encoding`.
    ConflictingFraming,
    /// The bytes could not be followed as HTTP/1.1 requests (hyper refuses them as well).
    Unframed,
}

/// The first request of a connection that must be refused, with all that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 1-based position of the request on its connection.
    pub ordinal: u64,
    /// Why.
    pub reason: RefusalReason,
}

/// Where the tracker is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Fixed(u64),
    Chunked(Chunk),
    Stopped,
}

/// hyper's chunked decoder states (proto/h1/decode.rs), with the numbers they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Start,
    Size(u64),
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

/// How a complete head frames its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Conflicting,
    Invalid,
}

/// Follows one connection's request bytes. Feed it every byte read, in order.
#[derive(Debug)]
pub struct FramingTracker {
    phase: Phase,
    heads: u64,
    /// A head split across reads, kept until it is complete.
    partial: Vec<u8>,
    refusal: Option<Refusal>,
}

impl Default for FramingTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl FramingTracker {
    /// A tracker at the start of a connection.
    pub fn new() -> Self {
        Self {
            phase: Phase::Head,
            heads: 0,
            partial: Vec::new(),
            refusal: None,
        }
    }

    /// Complete request heads seen so far.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// The position of the request head the connection owes: the first until it is complete, or
    /// a later one once its first bytes arrived. `None` between requests, in a body, or stopped.
    pub fn head_in_progress(&self) -> Option<u64> {
        (self.phase == Phase::Head && (self.heads == 0 || !self.partial.is_empty()))
            .then_some(self.heads + 1)
    }

    /// The refusal found, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
    }

    /// Whether the tracker has stopped (after a refusal nothing more is looked at).
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Follows `bytes`, the next bytes read from the connection. Returns the refusal when this
    /// call finds it.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<Refusal> {
        while !bytes.is_empty() {
            bytes = match self.phase {
                Phase::Stopped => return None,
                Phase::Head => self.head(bytes),
                Phase::Fixed(left) => {
                    let skip = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    let left = left - skip as u64;
                    self.phase = if left == 0 {
                        Phase::Head
                    } else {
                        Phase::Fixed(left)
                    };
                    &bytes[skip..]
                }
                Phase::Chunked(chunk) => self.chunked(chunk, bytes),
            };
            if let Some(refusal) = self.refusal {
                return Some(refusal);
            }
        }
        None
    }

    fn stop(&mut self, ordinal: u64, reason: RefusalReason) {
        self.phase = Phase::Stopped;
        self.refusal = Some(Refusal { ordinal, reason });
        self.partial = Vec::new();
    }

    /// Reads a head from `input` (after any partial one kept); returns what follows it.
    fn head<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        if self.heads == 0 && self.h2_preface(input) {
            return &[];
        }
        let (framing, rest) = if self.partial.is_empty() {
            match parse_head(input) {
                // A head is never empty; were it, the loop in `feed` would not move on.
                Ok(Some((len, framing))) if (1..=MAX_HEAD_BYTES).contains(&len) => {
                    (framing, &input[len..])
                }
                Ok(None) if input.len() < MAX_HEAD_BYTES => {
                    self.partial.extend_from_slice(input);
                    return &[];
                }
                // Longer than hyper would buffer, so hyper refuses it whatever follows.
                Ok(_) | Err(()) => {
                    self.stop(self.heads + 1, RefusalReason::Unframed);
                    return &[];
                }
            }
        } else {
            let kept = self.partial.len();
            let take = input.len().min(MAX_HEAD_BYTES - kept);
            self.partial.extend_from_slice(&input[..take]);
            let full = self.partial.len() >= MAX_HEAD_BYTES;
            // Re-parsed whole on every read, as hyper does: an error shows at once, not at the
            // next line end, so how the bytes were split never changes the answer.
            match parse_head(&self.partial) {
                Ok(Some((len, framing))) => {
                    // The kept bytes held no complete head, so this one ends in `input`.
                    let Some(rest) = len.checked_sub(kept).and_then(|at| input.get(at..)) else {
                        self.stop(self.heads + 1, RefusalReason::Unframed);
                        return &[];
                    };
                    self.partial.clear();
                    if self.partial.capacity() > 16 * 1024 {
                        self.partial = Vec::new();
                    }
                    (framing, rest)
                }
                Ok(None) if !full => return &input[take..],
                Ok(None) | Err(()) => {
                    self.stop(self.heads + 1, RefusalReason::Unframed);
                    return &[];
                }
            }
        };
        self.heads += 1;
        match framing {
            Framing::Length(0) => self.phase = Phase::Head,
            Framing::Length(n) => self.phase = Phase::Fixed(n),
            Framing::Chunked => self.phase = Phase::Chunked(Chunk::Start),
            Framing::Conflicting => self.stop(self.heads, RefusalReason::ConflictingFraming),
            Framing::Invalid => self.stop(self.heads, RefusalReason::Unframed),
        }
        rest
    }

    /// Whether the connection opens with HTTP/2's preface (so far): such a connection has no
    /// HTTP/1.1 framing to follow, and the tracker steps aside without refusing anything. (The
    /// server speaks HTTP/1 only today; a build with HTTP/2 must not have every h2c request
    /// refused.) Consumes `input` when it answers yes.
    fn h2_preface(&mut self, input: &[u8]) -> bool {
        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let Some(wanted) = PREFACE.strip_prefix(self.partial.as_slice()) else {
            return false;
        };
        let arrived = &input[..input.len().min(wanted.len())];
        if !wanted.starts_with(arrived) {
            return false;
        }
        if arrived.len() == wanted.len() {
            self.phase = Phase::Stopped;
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(input);
        }
        true
    }

    /// Walks a chunked body from state `chunk`; returns what follows the part consumed.
    fn chunked<'a>(&mut self, mut chunk: Chunk, mut bytes: &'a [u8]) -> &'a [u8] {
        while let Some((&byte, rest)) = bytes.split_first() {
            if let Chunk::Data(left) = chunk {
                let skip = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                let left = left - skip as u64;
                chunk = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                bytes = &bytes[skip..];
                continue;
            }
            bytes = rest;
            match step(chunk, byte) {
                Some(Some(next)) => chunk = next,
                Some(None) => {
                    self.phase = Phase::Head;
                    return bytes;
                }
                None => {
                    self.stop(self.heads + 1, RefusalReason::Unframed);
                    return &[];
                }
            }
        }
        self.phase = Phase::Chunked(chunk);
        bytes
    }
}

/// One byte of hyper's chunked grammar: the next state, `Some(None)` at the body's end, `None`
/// for bytes hyper refuses.
fn step(chunk: Chunk, byte: u8) -> Option<Option<Chunk>> {
    let hex = |size: u64| {
        let digit = char::from(byte).to_digit(16)?;
        size.checked_mul(16)?.checked_add(u64::from(digit))
    };
    let next = match (chunk, byte) {
        (Chunk::Start, _) => Chunk::Size(hex(0)?),
        (Chunk::Size(size), b'\t' | b' ') | (Chunk::SizeLws(size), b'\t' | b' ') => {
            Chunk::SizeLws(size)
        }
        (Chunk::Size(size) | Chunk::SizeLws(size) | Chunk::Extension(size), b'\r') => {
            Chunk::SizeLf(size)
        }
        (Chunk::Size(size) | Chunk::SizeLws(size), b';') => Chunk::Extension(size),
        (Chunk::Size(size), _) => Chunk::Size(hex(size)?),
        (Chunk::SizeLws(_), _) | (Chunk::Extension(_), b'\n') => return None,
        (Chunk::Extension(size), _) => Chunk::Extension(size),
        (Chunk::SizeLf(0), b'\n') => Chunk::EndCr,
        (Chunk::SizeLf(size), b'\n') => Chunk::Data(size),
        (Chunk::DataCr, b'\r') => Chunk::DataLf,
        (Chunk::DataLf, b'\n') => Chunk::Start,
        (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
        (Chunk::Trailer, _) => Chunk::Trailer,
        (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
        (Chunk::EndCr, b'\r') => Chunk::EndLf,
        (Chunk::EndCr, _) => Chunk::Trailer,
        (Chunk::EndLf, b'\n') => return Some(None),
        // Data bytes are skipped in bulk by the caller and never come here.
        (
            Chunk::SizeLf(_)
            | Chunk::DataCr
            | Chunk::DataLf
            | Chunk::TrailerLf
            | Chunk::EndLf
            | Chunk::Data(_),
            _,
        ) => return None,
    };
    Some(Some(next))
}

/// Parses a request head as hyper does: `Ok(None)` while incomplete, `Err` for a head hyper
/// refuses outright.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, Framing)>, ()> {
    // Uninitialised slots, as hyper uses: nothing to clear before every parse.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let http11 = request.version == Some(1);
    let mut length: Option<Option<u64>> = None;
    let mut chunked: Option<bool> = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = Some(ends_in_chunked(header.value));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let this = digits(header.value);
            length = Some(match length {
                None => this,
                Some(before) if before == this => this,
                Some(_) => None,
            });
        }
    }
    let framing = match (chunked, length) {
        (Some(_), Some(_)) => Framing::Conflicting,
        (Some(true), None) if http11 => Framing::Chunked,
        (Some(_), None) => Framing::Invalid,
        (None, Some(Some(n))) if n <= u64::MAX - 2 => Framing::Length(n),
        (None, Some(_)) => Framing::Invalid,
        (None, None) => Framing::Length(0),
    };
    Ok(Some((len, framing)))
}

/// hyper's `is_chunked_`: the value is visible ASCII and its last coding is `chunked`.
fn ends_in_chunked(value: &[u8]) -> bool {
    let visible = value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b));
    visible
        && value
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// hyper's `from_digits`: one or more ASCII digits, no sign, no overflow.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let digit = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
