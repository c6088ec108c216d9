use super::*;

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const BOTH_TE_FIRST: &[u8] =
    b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
const BOTH_CL_FIRST: &[u8] =
    b"POST /b HTTP/1.1\r\nHost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";

/// Feeds `bytes` whole, then again one byte at a time; both must agree.
fn follow(bytes: &[u8]) -> (u64, Option<Refusal>) {
    let mut whole = FramingTracker::new();
    whole.feed(bytes);
    let mut bytewise = FramingTracker::new();
    for byte in bytes {
        bytewise.feed(std::slice::from_ref(byte));
    }
    assert_eq!(
        (whole.heads(), whole.refusal()),
        (bytewise.heads(), bytewise.refusal()),
        "whole and byte-wise feeding disagree on {:?}",
        String::from_utf8_lossy(bytes)
    );
    (whole.heads(), whole.refusal())
}

fn refused(ordinal: u64, reason: RefusalReason) -> Option<Refusal> {
    Some(Refusal { ordinal, reason })
}

#[test]
fn plain_requests_pass_and_are_counted() {
    let sized = b"POST /c HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    let chunked = b"POST /d HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n3 \r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n";
    let stream = [GET, &sized[..], &chunked[..], b"\r\n", GET].concat();
    assert_eq!(follow(&stream), (4, None));
}

#[test]
fn both_headers_are_refused_in_either_order() {
    let conflict = RefusalReason::ConflictingFraming;
    assert_eq!(follow(BOTH_TE_FIRST), (1, refused(1, conflict)));
    assert_eq!(follow(BOTH_CL_FIRST), (1, refused(1, conflict)));
    let pipelined = [
        GET,
        b"POST /e HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
        BOTH_TE_FIRST,
    ]
    .concat();
    assert_eq!(follow(&pipelined), (3, refused(3, conflict)));
}

#[test]
fn heads_inside_bodies_are_not_heads() {
    let body = BOTH_TE_FIRST;
    let sized = [
        format!("POST /f HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        body,
        GET,
    ]
    .concat();
    assert_eq!(follow(&sized), (2, None));
    let chunked = [
        format!(
            "POST /g HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            body.len()
        )
        .as_bytes(),
        body,
        b"\r\n0\r\n\r\n",
        GET,
    ]
    .concat();
    assert_eq!(follow(&chunked), (2, None));
}

#[test]
fn what_hyper_refuses_stops_the_tracker() {
    let unframed = RefusalReason::Unframed;
    for (bytes, expected) in [
        (
            &b"GET / HTTP/1.1\r\nHost x\r\n\r\n"[..],
            (0, refused(1, unframed)),
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            (1, refused(1, unframed)),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            (1, refused(1, unframed)),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            (1, refused(1, unframed)),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            (1, refused(1, unframed)),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            (1, refused(2, unframed)),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            (1, refused(2, unframed)),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
            (1, refused(2, unframed)),
        ),
    ] {
        assert_eq!(
            follow(bytes),
            expected,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let same_twice = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(
        follow(same_twice),
        (1, None),
        "equal lengths are one length (as in hyper)"
    );
}

#[test]
fn an_endless_head_stops_at_hypers_limit() {
    let mut tracker = FramingTracker::new();
    tracker.feed(b"GET / HTTP/1.1\r\n");
    let filler = [b'a'; 4096];
    for _ in 0..(MAX_HEAD_BYTES / filler.len() + 1) {
        tracker.feed(&filler);
    }
    assert_eq!(tracker.refusal(), refused(1, RefusalReason::Unframed));
    assert!(tracker.is_stopped());
}

#[test]
fn nothing_is_looked_at_after_a_refusal() {
    let mut tracker = FramingTracker::new();
    assert!(tracker.feed(BOTH_CL_FIRST).is_some());
    assert_eq!(tracker.feed(GET), None);
    assert_eq!(tracker.heads(), 1);
}

#[test]
fn an_error_in_a_read_without_a_line_end_is_found_at_once() {
    // Regression: a re-parse used to wait for the next `\n`, so the answer depended on how the
    // bytes were split into reads.
    let mut tracker = FramingTracker::new();
    tracker.feed(b"GET / HTTP/1.1\r\n");
    assert_eq!(tracker.feed(b"Ho\0st"), refused(1, RefusalReason::Unframed));
}

#[test]
fn an_http2_connection_is_left_alone() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00";
    assert_eq!(follow(preface), (0, None));
    let mut tracker = FramingTracker::new();
    tracker.feed(preface);
    assert!(tracker.is_stopped());
    // Only at the start of a connection, and only the exact preface.
    let later = [GET, &preface[..]].concat();
    assert_eq!(follow(&later), (1, refused(2, RefusalReason::Unframed)));
    let lookalike = b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n";
    assert_eq!(follow(lookalike), (0, refused(1, RefusalReason::Unframed)));
}
