//! The connection framing tracker on arbitrary bytes: it never panics, gives the same answer
//! however the bytes are split into reads, and agrees with httparse on the first head.
#![no_main]

use breakerbox::server::framing::{FramingTracker, MAX_HEAD_BYTES, Refusal, RefusalReason};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let mut whole = FramingTracker::new();
    whole.feed(bytes);
    let mut pieces = FramingTracker::new();
    for piece in bytes.chunks(usize::from(split).max(1)) {
        pieces.feed(piece);
    }
    assert_eq!(
        (whole.heads(), whole.refusal()),
        (pieces.heads(), pieces.refusal())
    );

    // A connection opening with HTTP/2's preface is left alone (httparse refuses it).
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if PREFACE.starts_with(&bytes[..bytes.len().min(PREFACE.len())]) {
        assert_eq!((whole.heads(), whole.refusal()), (0, None));
        return;
    }

    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Err(_) => {
            assert_eq!(whole.heads(), 0);
            let unframed = Refusal {
                ordinal: 1,
                reason: RefusalReason::Unframed,
            };
            assert_eq!(whole.refusal(), Some(unframed));
        }
        Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD_BYTES => {
            assert_eq!((whole.heads(), whole.refusal()), (0, None));
        }
        Ok(httparse::Status::Partial) => {}
        Ok(httparse::Status::Complete(_)) => {
            assert!(whole.heads() >= 1);
            let has = |name: &str| {
                request
                    .headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(name))
            };
            let both = has("content-length") && has("transfer-encoding");
            let first_refused = whole.refusal().filter(|r| r.ordinal == 1);
            match first_refused {
                Some(r) if r.reason == RefusalReason::ConflictingFraming => assert!(both),
                Some(_) => assert!(!both),
                None => assert!(!both, "a head with both headers passed"),
            }
        }
    }
});
